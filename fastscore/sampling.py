"""Langevin samplers driven by a score function: plain, annealed (NCSN) and Metropolis-adjusted.

All samplers run many chains at once: ``x0`` has a leading chain axis and any trailing
shape (points ``(n_chains, d)``, images ``(n_chains, H, W)``, …), and the score callable maps
an array of that shape to an array of the same shape. Randomness comes only from ``rng``
(``None``, an int seed or a ``numpy.random.Generator``): the same seed gives the same chains.
The working dtype follows ``x0`` (float32 or float64; integers become float64), and the noise
is drawn in that dtype.

Each sampler returns a :class:`SamplingResult` with the final samples and, when
``trace_every`` is given, a thinned trace of the chains.
"""

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, check_int, check_rng, check_scalar

__all__ = ["SamplingResult", "langevin", "annealed_langevin", "mala"]


@dataclass
class SamplingResult:
    """Output of a sampler.

    Attributes
    ----------
    samples : ndarray, shape of ``x0``
        The chains after the last step (after the final denoising step of
        :func:`annealed_langevin` when it is on).
    trace : ndarray of shape (n_saved,) + x0.shape, or None
        The chains at the steps in ``trace_steps`` (``trace_every`` given), else ``None``.
    trace_steps : ndarray of int, shape (n_saved,), or None
        Step numbers of the trace entries; 0 is the initial state.
    n_steps : int
        Steps performed (fewer than asked when a callback stopped the run).
    acceptance_rate : float or None
        Fraction of accepted proposals over all chains and steps (:func:`mala` only).
    """

    samples: np.ndarray
    trace: np.ndarray = None
    trace_steps: np.ndarray = None
    n_steps: int = 0
    acceptance_rate: float = None


def _schedule(value, n_steps, name, *, allow_zero=False):
    """A step-size schedule (scalar, length-`n_steps` array or callable t -> value) as floats."""
    if callable(value):
        values = np.array([value(t) for t in range(n_steps)], dtype=np.float64)
        if values.shape != (n_steps,):
            raise ValueError(f"`{name}` must return one real number per step; got values "
                             f"of shape {values.shape[1:]}.")
    else:
        arr = as_float_array(value, name, ndim=(0, 1), allow_empty=True)
        arr = arr.astype(np.float64).reshape(np.shape(value))   # keep 0-d scalars 0-d
        if arr.ndim == 1 and arr.shape != (n_steps,):
            raise ValueError(
                f"`{name}` as an array must have one entry per step ({n_steps}); got "
                f"shape {arr.shape}.")
        values = np.broadcast_to(arr, (n_steps,))
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite at every step.")
    bad = values < 0 if allow_zero else values <= 0
    if np.any(bad):
        t = int(np.flatnonzero(bad)[0])
        want = "non-negative" if allow_zero else "positive"
        raise ValueError(f"`{name}` must be {want} at every step; got {float(values[t])!r} "
                         f"at step {t}.")
    return values


def _check_x0(x0):
    if np.ndim(x0) < 1:
        raise ValueError("`x0` must have a leading chain axis, shape (n_chains, ...); got a "
                         "scalar.")
    return as_float_array(x0, "x0", finite=True).copy()


def _call_score(score, x, *args):
    s = score(x, *args)
    s = np.asarray(s)
    if s.shape != x.shape:
        raise ValueError(f"`score` must return an array of the shape of x, {x.shape}; "
                         f"got {s.shape}.")
    return s


class _Trace:
    """Thinned record of the chains: step 0 and every `every`-th step."""

    def __init__(self, every, x):
        self.every = None if every is None else check_int(every, "trace_every", low=1)
        self.states, self.steps = [], []
        self.add(0, x)

    def add(self, t, x):
        if self.every is not None and t % self.every == 0:
            self.states.append(x.copy())
            self.steps.append(t)

    def result(self, x, n_steps, acceptance_rate=None):
        if self.every is None:
            return SamplingResult(x, None, None, n_steps, acceptance_rate)
        return SamplingResult(x, np.stack(self.states), np.asarray(self.steps, dtype=np.intp),
                              n_steps, acceptance_rate)


def _check_finite_state(x, t, sampler):
    if not np.isfinite(x).all():
        raise FloatingPointError(
            f"{sampler}: the chains reached NaN/Inf at step {t}; reduce the step size or "
            "check the score function.")


def langevin(score, x0, n_steps, step_size, noise_scale=None, rng=None, *, callback=None,
             trace_every=None):
    """Unadjusted Langevin dynamics for a batch of chains.

    .. math::

        x_t = x_{t-1} + \\alpha_t\\, s(x_{t-1}) + \\beta_t\\, \\xi_t, \\qquad
        \\xi_t \\sim \\mathcal N(0, I), \\quad t = 1, \\dots, T

    With the default :math:`\\beta_t = \\sqrt{2\\alpha_t}` and a constant small step this
    samples :math:`p \\propto e^{\\log p}` approximately (bias of order :math:`\\alpha`);
    ``noise_scale=0`` gives gradient ascent on :math:`\\log p`.

    Parameters
    ----------
    score : callable
        ``score(x) -> array of x.shape``, :math:`s(x) = \\nabla \\log p(x)` for every chain.
    x0 : array_like of shape (n_chains, ...)
        Initial states, finite.
    n_steps : int >= 0
        :math:`T`.
    step_size : float > 0, array_like of shape (n_steps,), or callable
        :math:`\\alpha_t`; a callable is called as ``step_size(t)`` for ``t = 0 … T-1``
        (the ``t``-th update).
    noise_scale : float >= 0, array_like of shape (n_steps,), callable, or None
        :math:`\\beta_t`; ``None`` uses :math:`\\sqrt{2\\alpha_t}`.
    rng : None, int or numpy.random.Generator
    callback : callable, optional
        ``callback(t, x)`` after each update ``t = 1 … T``; returning ``True`` stops.
    trace_every : int >= 1, optional
        Keep the chains at step 0 and every ``trace_every``-th step.

    Returns
    -------
    SamplingResult
        ``samples`` of the shape of ``x0``, the trace when asked.

    Raises
    ------
    ValueError
        Non-finite ``x0``, a non-positive step size, a schedule of the wrong length, a score
        of the wrong shape.
    FloatingPointError
        If the chains diverge to NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.sampling import langevin
    >>> res = langevin(lambda x: -x, np.zeros((2000, 1)), 300, 0.05, rng=0)
    >>> round(float(res.samples.std()), 1)
    1.0
    """
    x = _check_x0(x0)
    n_steps = check_int(n_steps, "n_steps", low=0)
    alpha = _schedule(step_size, n_steps, "step_size")
    beta = (np.sqrt(2.0 * alpha) if noise_scale is None
            else _schedule(noise_scale, n_steps, "noise_scale", allow_zero=True))
    rng = check_rng(rng)
    trace = _Trace(trace_every, x)
    t = 0
    while t < n_steps:
        s = _call_score(score, x)
        with np.errstate(over="ignore", invalid="ignore"):   # divergence is checked below
            x = x + (alpha[t] * s).astype(x.dtype, copy=False)
        if beta[t] > 0:
            x += beta[t] * rng.standard_normal(x.shape, dtype=x.dtype)
        t += 1
        _check_finite_state(x, t, "langevin")
        trace.add(t, x)
        if callback is not None and callback(t, x) is True:
            break
    return trace.result(x, t)


def annealed_langevin(score, sigmas, steps_per_sigma, eps, x0, rng=None, *,
                      final_denoise=True, callback=None, trace_every=None):
    """Annealed Langevin dynamics over a decreasing noise ladder (Song & Ermon 2019, Alg. 1).

    For :math:`i = 1 … L` with :math:`\\alpha_i = \\epsilon\\, \\sigma_i^2 / \\sigma_L^2`, run
    ``steps_per_sigma`` updates

    .. math::

        x \\leftarrow x + \\frac{\\alpha_i}{2}\\, s(x, \\sigma_i) + \\sqrt{\\alpha_i}\\, z,
        \\qquad z \\sim \\mathcal N(0, I)

    (the paper's convention, so its ε values carry over; it is :func:`langevin` with step
    :math:`\\alpha_i / 2`). With ``final_denoise`` the last iterate is replaced by the
    Tweedie / MMSE estimate :math:`x + \\sigma_L^2\\, s(x, \\sigma_L)`, which removes the
    residual noise of level :math:`\\sigma_L`.

    Parameters
    ----------
    score : callable
        ``score(x, sigma) -> array of x.shape``: the score of the data convolved with
        :math:`\\mathcal N(0, \\sigma^2 I)`; ``sigma`` is passed as a Python float.
    sigmas : array_like of shape (L,)
        :math:`\\sigma_1 \\ge … \\ge \\sigma_L > 0`.
    steps_per_sigma : int >= 1
        :math:`T`, updates per noise level.
    eps : float > 0
        :math:`\\epsilon`, the step at the smallest noise level.
    x0 : array_like of shape (n_chains, ...)
        Initial states (typically uniform or :math:`\\mathcal N(0, \\sigma_1^2)` noise).
    rng : None, int or numpy.random.Generator
    final_denoise : bool, default True
        Apply the Tweedie step at :math:`\\sigma_L` at the end.
    callback : callable, optional
        ``callback(t, x)`` after each update (``t`` counts all updates, 1 … L·T);
        returning ``True`` stops (no final denoising then).
    trace_every : int >= 1, optional
        Keep the chains at step 0 and every ``trace_every``-th update (Langevin iterates,
        before the final denoising).

    Returns
    -------
    SamplingResult
        ``n_steps`` counts the Langevin updates (the denoising step is not one).

    References
    ----------
    Y. Song and S. Ermon, "Generative modeling by estimating gradients of the data
    distribution", NeurIPS 2019.
    """
    x = _check_x0(x0)
    sigmas = as_float_array(sigmas, "sigmas", ndim=1, finite=True).astype(np.float64)
    if np.any(sigmas <= 0):
        raise ValueError(f"`sigmas` must be positive; got minimum {sigmas.min()!r}.")
    if np.any(np.diff(sigmas) > 0):
        raise ValueError("`sigmas` must be non-increasing (largest noise level first); "
                         f"got {sigmas.tolist()}.")
    steps_per_sigma = check_int(steps_per_sigma, "steps_per_sigma", low=1)
    eps = check_scalar(eps, "eps", low=0, low_inclusive=False)
    rng = check_rng(rng)
    trace = _Trace(trace_every, x)
    t = 0
    stopped = False
    for sigma in sigmas:
        alpha = eps * sigma ** 2 / sigmas[-1] ** 2
        noise = np.sqrt(alpha)
        for _ in range(steps_per_sigma):
            s = _call_score(score, x, float(sigma))
            with np.errstate(over="ignore", invalid="ignore"):
                x = x + (0.5 * alpha * s).astype(x.dtype, copy=False)
            x += noise * rng.standard_normal(x.shape, dtype=x.dtype)
            t += 1
            _check_finite_state(x, t, "annealed_langevin")
            trace.add(t, x)
            if callback is not None and callback(t, x) is True:
                stopped = True
                break
        if stopped:
            break
    if final_denoise and not stopped:
        sigma = float(sigmas[-1])
        x = x + (sigma ** 2 * _call_score(score, x, sigma)).astype(x.dtype, copy=False)
        _check_finite_state(x, t, "annealed_langevin (final denoising)")
    return trace.result(x, t)


def _sum_rest(a):
    """Sum over every axis but the first (chain) axis."""
    return a.reshape(a.shape[0], -1).sum(axis=1)


def mala(logpdf, score, x0, n_steps, step_size, rng=None, *, callback=None, trace_every=None):
    """Metropolis-adjusted Langevin algorithm: Langevin proposals with an accept/reject step.

    Proposal :math:`y = x + \\alpha_t s(x) + \\sqrt{2\\alpha_t}\\, \\xi`, accepted with
    probability

    .. math::

        \\min\\Big(1, \\frac{p(y)\\, q(x \\mid y)}{p(x)\\, q(y \\mid x)}\\Big), \\qquad
        \\log q(y \\mid x) = -\\frac{\\| y - x - \\alpha_t s(x) \\|^2}{4\\alpha_t} + c

    per chain, so the chains target :math:`p` exactly (no step-size bias); only the log-density
    up to a constant is needed.

    Parameters
    ----------
    logpdf : callable
        ``logpdf(x) -> (n_chains,)``, :math:`\\log p` up to an additive constant.
    score : callable
        ``score(x) -> array of x.shape``, :math:`\\nabla \\log p`.
    x0 : array_like of shape (n_chains, ...)
        Initial states, with finite ``logpdf``.
    n_steps : int >= 0
    step_size : float > 0, array_like of shape (n_steps,), or callable
        :math:`\\alpha_t`, as in :func:`langevin`.
    rng : None, int or numpy.random.Generator
    callback : callable, optional
        ``callback(t, x)`` after each step; returning ``True`` stops.
    trace_every : int >= 1, optional

    Returns
    -------
    SamplingResult
        With ``acceptance_rate``, the fraction of accepted proposals over chains and steps
        (aim for about 0.5–0.6).
    """
    x = _check_x0(x0)
    n_steps = check_int(n_steps, "n_steps", low=0)
    alpha = _schedule(step_size, n_steps, "step_size")
    rng = check_rng(rng)
    n_chains = x.shape[0]

    def evaluate(z):
        lp = np.asarray(logpdf(z), dtype=np.float64)
        if lp.shape != (n_chains,):
            raise ValueError(f"`logpdf` must return shape ({n_chains},) (one value per chain); "
                             f"got {lp.shape}.")
        return lp, np.array(_call_score(score, z))   # a copy: updated in place below

    log_p, s = evaluate(x)
    if not np.all(np.isfinite(log_p)):
        raise ValueError("`logpdf(x0)` must be finite for every chain (start inside the "
                         "support).")
    trace = _Trace(trace_every, x)
    accepted = 0
    t = 0
    while t < n_steps:
        a = alpha[t]
        mean_x = x + a * s
        y = (mean_x + np.sqrt(2.0 * a) * rng.standard_normal(x.shape, dtype=x.dtype)).astype(
            x.dtype, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):
            log_p_y, s_y = evaluate(y)
            forward = -_sum_rest((y - mean_x) ** 2) / (4.0 * a)
            backward = -_sum_rest((x - y - a * s_y) ** 2) / (4.0 * a)
            log_ratio = log_p_y - log_p + backward - forward
            accept = np.log(rng.random(n_chains)) < log_ratio   # NaN compares False: reject
        accept &= np.isfinite(log_p_y)
        x[accept] = y[accept]
        s[accept] = s_y[accept]
        log_p[accept] = log_p_y[accept]
        accepted += int(accept.sum())
        t += 1
        trace.add(t, x)
        if callback is not None and callback(t, x) is True:
            break
    rate = accepted / (n_chains * t) if t > 0 else float("nan")
    return trace.result(x, t, acceptance_rate=rate)

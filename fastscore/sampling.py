"""Samplers driven by a score function: Langevin (plain, annealed, Metropolis-adjusted),
annealed Hamiltonian Monte Carlo, and the reverse-diffusion samplers of the variance-exploding
SDE (predictor–corrector and the probability-flow ODE).

All samplers run many chains at once: ``x0`` has a leading chain axis and any trailing
shape (points ``(n_chains, d)``, images ``(n_chains, H, W)``, …), and the score callable maps
an array of that shape to an array of the same shape. Randomness comes only from ``rng``
(``None``, an int seed or a ``numpy.random.Generator``): the same seed gives the same chains.
The working dtype follows ``x0`` (float32 or float64; integers become float64), and the noise
is drawn in that dtype.

Each sampler returns a :class:`SamplingResult` with the final samples and, when
``trace_every`` is given, a thinned trace of the chains. Every sampler takes ``rng``
keyword-only and calls ``callback(k, x, info) -> bool`` after update ``k`` (from 1) with
the chains ``x`` and a dict ``info`` holding at least ``step_size`` (and ``sigma`` for the
annealed samplers); returning ``True`` stops (``docs/conventions.rst``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._deprecation import adapt_callback, keyword_only, renamed_arguments, warn_deprecated
from ._validation import as_float_array, check_int, check_rng, check_scalar

Callback = Callable[[int, np.ndarray, dict], Any]
Schedule = float | ArrayLike | Callable[[int], float]
RNG = int | np.random.Generator | None

__all__ = [
    "SamplingResult",
    "annealed_hmc",
    "annealed_langevin",
    "langevin",
    "mala",
    "predictor_corrector",
    "probability_flow",
]


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
        Fraction of accepted proposals over all chains and steps (:func:`mala`,
        :func:`annealed_hmc`; for the unadjusted HMC variant, the mean of the estimated
        acceptance probabilities).
    n_score_evals : int
        Score evaluations per chain (the unit of work of the annealed samplers; 0 when not
        counted).
    """

    samples: np.ndarray
    trace: np.ndarray | None = None
    trace_steps: np.ndarray | None = None
    n_steps: int = 0
    acceptance_rate: float | None = None
    n_score_evals: int = 0


def _per_step_values(value: Any, n_steps: int, name: str, *,
                     allow_zero: bool = False) -> np.ndarray:
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


def _check_x0(x0: ArrayLike) -> np.ndarray:
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

    def result(self, x, n_steps, acceptance_rate=None, n_score_evals=0):
        if self.every is None:
            return SamplingResult(x, None, None, n_steps, acceptance_rate, n_score_evals)
        return SamplingResult(x, np.stack(self.states), np.asarray(self.steps, dtype=np.intp),
                              n_steps, acceptance_rate, n_score_evals)


def _check_finite_state(x, t, sampler):
    if not np.isfinite(x).all():
        raise FloatingPointError(
            f"{sampler}: the chains reached NaN/Inf at step {t}; reduce the step size or "
            "check the score function.")


@keyword_only("noise_scale", "rng")
def langevin(score: Callable[[np.ndarray], np.ndarray], x0: ArrayLike, n_steps: int,
             step_size: Schedule, *, noise_scale: Schedule | None = None, rng: RNG = None,
             callback: Callback | None = None, trace_every: int | None = None
             ) -> SamplingResult:
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
        ``callback(k, x, info) -> bool`` after each update ``k = 1 … T``, ``info`` with
        ``step_size`` (:math:`\\alpha_k`) and ``noise_scale`` (:math:`\\beta_k`);
        returning ``True`` stops.
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
    alpha = _per_step_values(step_size, n_steps, "step_size")
    beta = (np.sqrt(2.0 * alpha) if noise_scale is None
            else _per_step_values(noise_scale, n_steps, "noise_scale", allow_zero=True))
    rng = check_rng(rng)
    callback = adapt_callback(callback, "langevin")
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
        if callback is not None and callback(t, x, {"step_size": float(alpha[t - 1]),
                                                    "noise_scale": float(beta[t - 1])}):
            break
    return trace.result(x, t)


@keyword_only("rng")
@renamed_arguments(eps="step_size")
def annealed_langevin(score: Callable[[np.ndarray, float], np.ndarray], sigmas: ArrayLike,
                      steps_per_sigma: int, step_size: float, x0: ArrayLike, *,
                      rng: RNG = None, final_denoise: bool = True,
                      callback: Callback | None = None, trace_every: int | None = None
                      ) -> SamplingResult:
    """Annealed Langevin dynamics over a decreasing noise ladder (Song & Ermon 2019, Alg. 1).

    For :math:`i = 1 … L` with :math:`\\alpha_i = \\epsilon\\, \\sigma_i^2 / \\sigma_L^2`
    (:math:`\\epsilon` = ``step_size``), run
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
    step_size : float > 0
        :math:`\\epsilon`, the step at the smallest noise level (formerly ``eps``).
    x0 : array_like of shape (n_chains, ...)
        Initial states (typically uniform or :math:`\\mathcal N(0, \\sigma_1^2)` noise).
    rng : None, int or numpy.random.Generator
    final_denoise : bool, default True
        Apply the Tweedie step at :math:`\\sigma_L` at the end.
    callback : callable, optional
        ``callback(k, x, info) -> bool`` after each update (``k`` counts all updates,
        1 … L·T), ``info`` with ``sigma`` (:math:`\\sigma_i`) and ``step_size``
        (:math:`\\alpha_i`); returning ``True`` stops (no final denoising then).
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
    sigmas = _check_ladder(sigmas)
    steps_per_sigma = check_int(steps_per_sigma, "steps_per_sigma", low=1)
    eps = check_scalar(step_size, "step_size", low=0, low_inclusive=False)
    rng = check_rng(rng)
    callback = adapt_callback(callback, "annealed_langevin")
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
            if callback is not None and callback(t, x, {"sigma": float(sigma),
                                                        "step_size": float(alpha)}):
                stopped = True
                break
        if stopped:
            break
    if final_denoise and not stopped:
        sigma = float(sigmas[-1])
        x = x + (sigma ** 2 * _call_score(score, x, sigma)).astype(x.dtype, copy=False)
        _check_finite_state(x, t, "annealed_langevin (final denoising)")
    return trace.result(x, t)


def _check_ladder(sigmas: ArrayLike, *, monotone: str = "non-increasing") -> np.ndarray:
    """A noise ladder as float64: positive, and non-increasing (or monotone either way)."""
    sigmas = as_float_array(sigmas, "sigmas", ndim=1, finite=True).astype(np.float64)
    if sigmas.size == 0:
        raise ValueError("`sigmas` must hold at least one noise level; got an empty array.")
    if np.any(sigmas <= 0):
        raise ValueError(f"`sigmas` must be positive; got minimum {sigmas.min()!r}.")
    diff = np.diff(sigmas)
    if monotone == "non-increasing" and np.any(diff > 0):
        raise ValueError("`sigmas` must be non-increasing (largest noise level first); "
                         f"got {sigmas.tolist()}.")
    if monotone == "either" and np.any(diff > 0) and np.any(diff < 0):
        raise ValueError(f"`sigmas` must be monotone; got {sigmas.tolist()}.")
    return sigmas


def _sum_rest(a):
    """Sum over every axis but the first (chain) axis."""
    return a.reshape(a.shape[0], -1).sum(axis=1)


@keyword_only("rng")
@renamed_arguments(logpdf="log_density")
def mala(log_density: Callable[[np.ndarray], ArrayLike],
         score: Callable[[np.ndarray], np.ndarray], x0: ArrayLike, n_steps: int,
         step_size: Schedule, *, rng: RNG = None, callback: Callback | None = None,
         trace_every: int | None = None) -> SamplingResult:
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
    log_density : callable
        ``log_density(x) -> (n_chains,)``, :math:`\\log p` up to an additive constant
        (formerly ``logpdf``).
    score : callable
        ``score(x) -> array of x.shape``, :math:`\\nabla \\log p`.
    x0 : array_like of shape (n_chains, ...)
        Initial states, with finite ``log_density``.
    n_steps : int >= 0
    step_size : float > 0, array_like of shape (n_steps,), or callable
        :math:`\\alpha_t`, as in :func:`langevin`.
    rng : None, int or numpy.random.Generator
    callback : callable, optional
        ``callback(k, x, info) -> bool`` after each step, ``info`` with ``step_size``
        (:math:`\\alpha_k`) and ``acceptance`` (fraction of chains that accepted at step
        ``k``); returning ``True`` stops.
    trace_every : int >= 1, optional

    Returns
    -------
    SamplingResult
        With ``acceptance_rate``, the fraction of accepted proposals over chains and steps
        (aim for about 0.5–0.6).
    """
    x = _check_x0(x0)
    n_steps = check_int(n_steps, "n_steps", low=0)
    alpha = _per_step_values(step_size, n_steps, "step_size")
    rng = check_rng(rng)
    callback = adapt_callback(callback, "mala")
    n_chains = x.shape[0]

    def evaluate(z):
        lp = np.asarray(log_density(z), dtype=np.float64)
        if lp.shape != (n_chains,):
            raise ValueError(f"`log_density` must return shape ({n_chains},) (one value per "
                             f"chain); got {lp.shape}.")
        return lp, np.array(_call_score(score, z))   # a copy: updated in place below

    log_p, s = evaluate(x)
    if not np.all(np.isfinite(log_p)):
        raise ValueError("`log_density(x0)` must be finite for every chain (start inside the "
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
        if callback is not None and callback(t, x, {"step_size": float(a), "acceptance":
                                                    float(np.mean(accept))}):
            break
    rate = accepted / (n_chains * t) if t > 0 else float("nan")
    return trace.result(x, t, acceptance_rate=rate)


def _chain_norm(a):
    """Euclidean norm of each chain, shape (n_chains,) float64."""
    return np.sqrt(_sum_rest(np.square(a, dtype=np.float64)))


def _call_log_density(log_density, x, sigma):
    lp = np.asarray(log_density(x, sigma), dtype=np.float64)
    if lp.shape != (x.shape[0],):
        raise ValueError(f"`log_density` must return shape ({x.shape[0]},) (one value per "
                         f"chain); got {lp.shape}.")
    return lp


_DIVERGENT = 1e-3   # unadjusted HMC drops trajectories whose estimated acceptance is below


class _IdentityMass:
    """Unit mass matrix: momenta N(0, I), velocity M⁻¹p = p."""

    def sample(self, x, *, rng):
        return rng.standard_normal(x.shape, dtype=x.dtype)

    def solve(self, p):
        return p


def _momentum_sampler(mass):
    """``(x, rng) -> p ~ N(0, M)`` by ``mass.sample(x, *, rng)`` (old ``sample(rng, x)`` warns)."""
    try:
        inspect.signature(mass.sample).bind(None, rng=None)
    except TypeError:
        warn_deprecated("annealed_hmc(): a mass object with sample(rng, x) is deprecated; "
                        "define sample(x, *, rng).")
        return lambda x, rng: mass.sample(rng, x)
    except ValueError:              # no signature: assume the current protocol
        pass
    return lambda x, rng: mass.sample(x, rng=rng)


def annealed_hmc(score, sigmas, x0, *, n_steps=10, n_leapfrog=5, step_size=0.5,
                 log_density=None, mass=None, target_acceptance=None, adapt=True, rng=None,
                 callback=None, trace_every=None):
    """Annealed Hamiltonian Monte Carlo over a decreasing noise ladder.

    At level σ_i the target is ``π_i ∝ exp(U_i)`` with ``∇U_i = score(·, σ_i)``. Each step
    draws momenta ``p ~ N(0, M)`` and runs `n_leapfrog` leapfrog steps of length ε_i,

    .. math::

        p ← p + \\tfrac{ε}{2} ∇U(x), \\quad x ← x + ε M^{-1} p, \\quad
        p ← p + \\tfrac{ε}{2} ∇U(x),

    then, when `log_density` is given, accepts the end point per chain with probability
    ``min(1, exp(ΔU − ΔK))``, ``K = ½ pᵀM⁻¹p`` (exact Metropolis correction: the chains
    target π_i exactly at any step size). Without it the move is unadjusted (always
    accepted) and ΔU is estimated by the trapezoid rule along the trajectory,
    ``ΔU ≈ Σ_k ½⟨∇U(x_k) + ∇U(x_{k+1}), x_{k+1} − x_k⟩`` (exact for Gaussian targets),
    which drives the step-size adaptation; only divergent trajectories (estimated
    acceptance below 1e-3) are dropped. The step size is adapted by
    ``log ε ← log ε + ½ (a − target)`` (a the mean acceptance probability over the chains)
    during the first half of each level's steps with the Metropolis correction, so the last
    states are draws of a fixed Markov kernel, and at every step without it; the adapted
    factor carries over to the next level.

    Parameters
    ----------
    score : callable
        ``score(x, sigma) -> array of x.shape``, ``∇ log π_i``.
    sigmas : array_like of shape (L,)
        Non-increasing ladder σ_1 ≥ … ≥ σ_L > 0.
    x0 : array_like of shape (n_chains, ...)
    n_steps : int >= 1
        HMC steps per level.
    n_leapfrog : int >= 1
        Leapfrog steps per HMC step (score evaluations per step).
    step_size : float > 0 or callable sigma -> float
        Initial leapfrog step ε_i; a float means ``step_size · σ_i`` (the natural length
        at level σ_i for a unit mass).
    log_density : callable, optional
        ``log_density(x, sigma) -> (n_chains,)``, log π_i up to a constant.
    mass : callable, optional
        ``mass(sigma)`` returning an object with ``sample(x, *, rng) -> p ~ N(0, M)`` and
        ``solve(p) -> M⁻¹p`` (per chain); default the identity.
    target_acceptance : float in (0, 1), optional
        Default 0.65 with the Metropolis correction; 0.95 without it, where the step
        size sets the bias (for a Gaussian of variance v the unadjusted stationary
        variance is ``v / (1 − ε²/(4v))``: small energy errors are needed).
    adapt : bool
    rng : None, int or numpy.random.Generator
    callback : callable, optional
        ``callback(k, x, info) -> bool`` after each HMC step (k = 1 … L·n_steps), info
        with ``sigma``, ``step_size`` and ``acceptance`` (mean over chains); True stops.
    trace_every : int >= 1, optional

    Returns
    -------
    SamplingResult
        With ``acceptance_rate`` (mean over all steps) and ``n_score_evals``.

    References
    ----------
    R. M. Neal, "MCMC using Hamiltonian dynamics", Handbook of MCMC, 2011.
    """
    x = _check_x0(x0)
    sigmas = _check_ladder(sigmas)
    n_steps = check_int(n_steps, "n_steps", low=1)
    n_leapfrog = check_int(n_leapfrog, "n_leapfrog", low=1)
    if not callable(step_size):
        step_size = check_scalar(step_size, "step_size", low=0, low_inclusive=False)
    if target_acceptance is None:
        target_acceptance = 0.95 if log_density is None else 0.65
    target_acceptance = check_scalar(target_acceptance, "target_acceptance", low=0, high=1,
                                     low_inclusive=False, high_inclusive=False)
    rng = check_rng(rng)
    trace = _Trace(trace_every, x)
    n_chains = x.shape[0]
    log_factor, t, evals, acc_sum = 0.0, 0, 0, 0.0
    for sigma in map(float, sigmas):
        base = float(step_size(sigma)) if callable(step_size) else step_size * sigma
        M = _IdentityMass() if mass is None else mass(sigma)
        draw_momenta = _momentum_sampler(M)
        g = np.array(_call_score(score, x, sigma))
        evals += 1
        lp = None if log_density is None else _call_log_density(log_density, x, sigma)
        for j in range(n_steps):
            eps = base * np.exp(log_factor)
            p = draw_momenta(x, rng)
            v = M.solve(p)
            kinetic0 = 0.5 * _sum_rest(p * v)
            xn, gn, pn, du = x, g, p, np.zeros(n_chains)
            with np.errstate(over="ignore", invalid="ignore"):
                for _ in range(n_leapfrog):
                    pn = pn + x.dtype.type(0.5 * eps) * gn
                    step = x.dtype.type(eps) * M.solve(pn)
                    xn_next = xn + step
                    gn_next = np.asarray(_call_score(score, xn_next, sigma))
                    du += 0.5 * _sum_rest((gn + gn_next) * step)
                    pn = pn + x.dtype.type(0.5 * eps) * gn_next
                    xn, gn = xn_next, gn_next
                evals += n_leapfrog
                kinetic1 = 0.5 * _sum_rest(pn * M.solve(pn))
                if log_density is not None:
                    lp_new = _call_log_density(log_density, xn, sigma)
                    du = lp_new - lp
                log_ratio = du - kinetic1 + kinetic0
                prob = np.where(np.isfinite(log_ratio), np.exp(np.minimum(log_ratio, 0.0)), 0.0)
            finite = _sum_rest(~np.isfinite(xn)) == 0
            if log_density is not None:
                accept = (rng.random(n_chains) < prob) & finite & np.isfinite(lp_new)
                x, g = x.copy(), g.copy()
                x[accept], g[accept], lp[accept] = xn[accept], gn[accept], lp_new[accept]
                rate = float(np.mean(accept))
            else:
                accept = finite & (prob > _DIVERGENT)
                x, g = x.copy(), g.copy()
                x[accept], g[accept] = xn[accept], gn[accept]
                rate = float(np.mean(prob))
            acc_sum += rate
            if adapt and (log_density is None or j < n_steps // 2):
                log_factor += 0.5 * (float(np.mean(prob)) - target_acceptance)
            t += 1
            trace.add(t, x)
            if callback is not None and callback(t, x, {"sigma": sigma, "step_size": eps,
                                                        "acceptance": rate}):
                return trace.result(x, t, acc_sum / t, evals)
    return trace.result(x, t, acc_sum / max(t, 1), evals)


from ._diffusion import predictor_corrector, probability_flow

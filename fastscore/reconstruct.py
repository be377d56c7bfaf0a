"""Reconstruction with score priors: MAP estimates, posterior samples, uncertainty maps.

For measurements ``y = A x + n``, n ~ N(0, σ_n² I), the posterior score is

.. math::  ∇ \\log p(x \\mid y) = \\frac{A^*(y - A x)}{σ_n^2} + s(x; σ)

with ``s`` an image prior's score at prior noise level σ (:mod:`fastscore.prior`).

- :func:`map_estimate` ascends the log posterior (``method="gradient"``, the tutorial's
  scheme with automatic steps, optional Nesterov momentum and σ annealed from large to
  small), or alternates Tweedie patch denoising with a least-squares data step
  (``method="hqs"``, half-quadratic splitting as in EPLL).
- :func:`posterior_sample` runs annealed Langevin dynamics on ``p(x | y)`` for several
  chains at once, by default preconditioned with ``(A*A/σ_n² + c I)⁻¹`` (an exact Gaussian
  draw of the data term per step, by conjugate gradients), so ill-conditioned problems (MRI,
  sparse-view CT) converge in as few steps as HQS; :func:`posterior_summary` turns samples
  into the MMSE estimate, a pixelwise standard deviation (uncertainty map) and credible
  intervals.
- :func:`noise_realizations` is the other uncertainty picture: the spread of the MAP
  estimate over repeated noise draws.
"""

import dataclasses
import time

import numpy as np

from ._progress import progress_range
from ._validation import (as_float_array, check_choice, check_int, check_rng, check_scalar,
                          check_scale)
from .operators import GaussianLikelihood, LinearOperator

__all__ = ["Reconstruction", "PosteriorSamples", "map_estimate", "posterior_sample",
           "posterior_summary", "noise_realizations", "sigma_ladder"]


@dataclasses.dataclass
class Reconstruction:
    """A MAP estimate and how it was reached.

    Attributes
    ----------
    x : ndarray, the estimate (image shape, or batch of images).
    history : dict of lists, one entry per iteration: ``sigma`` (prior noise level),
        ``step_size``, ``log_likelihood``, ``score_norm`` (RMS of the posterior score, the
        objective proxy), ``rel_change`` and ``time`` (seconds since the start).
    n_iter : int, iterations run (fewer than asked when the stopping rule fired).
    """
    x: np.ndarray
    history: dict
    n_iter: int


@dataclasses.dataclass
class PosteriorSamples:
    """Posterior samples with their summary.

    Attributes
    ----------
    samples : ndarray of shape (n_samples, *image_shape)
    mean : ndarray, the MMSE estimate (sample mean; Tweedie-denoised for the
        preconditioned sampler, see :func:`posterior_sample`)
    std : ndarray, pixelwise standard deviation (the uncertainty map)
    trace : ndarray or None, thinned chain states (n_saved, n_samples, *image_shape)
    """
    samples: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    trace: np.ndarray = None


def sigma_ladder(sigma_max, sigma_min, n):
    """Geometric noise ladder ``σ_max … σ_min`` of `n` levels (decreasing)."""
    sigma_max = check_scalar(sigma_max, "sigma_max", low=0, low_inclusive=False)
    sigma_min = check_scalar(sigma_min, "sigma_min", low=0, high=sigma_max,
                             low_inclusive=False)
    n = check_int(n, "n", low=1)
    if n == 1:
        return np.array([sigma_min])
    return np.geomspace(sigma_max, sigma_min, n)


def _prior_sigma_floor(prior):
    """The smallest σ the prior was trained for (0 when it does not say)."""
    for obj in (prior, getattr(prior, "patch_score", None)):
        value = getattr(obj, "sigma_min", None)
        if value is not None:
            return float(value)
    return 0.0


def _schedule(sigma_schedule, noise_sigma, n_steps, prior):
    """Per-iteration prior noise levels (length n_steps), never below the prior's floor.

    None → geometric 2σ_n → σ_n/4 (the annealing that works for patch priors on the toy
    rectangles); float → fixed; (start, end) → geometric; array or callable k → σ_k.
    """
    if sigma_schedule is None:
        values = np.geomspace(2.0 * noise_sigma, noise_sigma / 4.0, n_steps)
    elif callable(sigma_schedule):
        values = np.array([float(sigma_schedule(k)) for k in range(n_steps)])
    elif np.ndim(sigma_schedule) == 0:
        values = np.full(n_steps, check_scalar(sigma_schedule, "sigma_schedule", low=0,
                                               low_inclusive=False))
    else:
        arr = np.asarray(sigma_schedule, dtype=np.float64)
        if arr.shape == (2,):
            values = np.geomspace(arr[0], arr[1], n_steps)
        elif arr.shape == (n_steps,):
            values = arr
        else:
            raise ValueError(f"`sigma_schedule` must be a float, (start, end), an array of "
                             f"n_steps={n_steps} values or a callable; got shape {arr.shape}.")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("`sigma_schedule` values must be finite and > 0.")
    return np.maximum(values, _prior_sigma_floor(prior))


def _setup(y, operator, noise_sigma, x0):
    if not isinstance(operator, LinearOperator):
        raise TypeError(f"`operator` must be a fastscore.operators.LinearOperator; got "
                        f"{type(operator).__name__}.")
    if operator.complex_domain:
        raise TypeError(f"the image priors reconstruct real images, but {operator!r} has a "
                        "complex image domain; use a real-image operator (e.g. "
                        "MRI(mask, complex_image=False)).")
    likelihood = GaussianLikelihood(operator, y, noise_sigma)
    dtype = likelihood.dtype
    if x0 is None:
        fbp = getattr(operator, "fbp", None)
        if callable(fbp):
            x = np.asarray(fbp(likelihood.y), dtype=dtype)
        else:
            x = operator.adjoint(likelihood.y).real.astype(dtype)
            x /= dtype.type(operator.norm_squared())
    else:
        x = as_float_array(x0, "x0", finite=True, dtype=dtype).copy()
        want = likelihood.y.shape[:likelihood.y.ndim - len(operator.shape_out)] + tuple(
            operator.shape_in)
        if x.shape != want:
            raise ValueError(f"`x0` must have shape {want}; got {x.shape}.")
    return likelihood, np.ascontiguousarray(x)


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


def _cg(apply, rhs, x, n_iter, tol, precondition=None):
    """Conjugate gradients for the SPD system apply(x) = rhs (all arrays image-shaped),
    stopped when ``‖rhs − apply(x)‖ ≤ tol ‖rhs‖`` or after `n_iter` iterations.

    `precondition` (optional): ``r ↦ M r`` with M ≈ apply⁻¹ symmetric positive definite
    (standard PCG: ``z = M r``, ``β = ⟨r', z'⟩ / ⟨r, z⟩``); None is plain CG."""
    if precondition is not None:
        return _pcg(apply, rhs, x, n_iter, tol, precondition)
    r = rhs - apply(x)
    p = r.copy()
    rr = float(np.vdot(r, r).real)
    stop = tol ** 2 * max(float(np.vdot(rhs, rhs).real), 1e-300)
    for _ in range(n_iter):
        if rr <= stop:
            break
        Ap = apply(p)
        alpha = rr / float(np.vdot(p, Ap).real)
        x += alpha * p
        r -= alpha * Ap
        rr_new = float(np.vdot(r, r).real)
        p *= rr_new / rr
        p += r
        rr = rr_new
    return x


def _pcg(apply, rhs, x, n_iter, tol, precondition):
    r = rhs - apply(x)
    z = precondition(r)
    p = z.copy()
    rz = float(np.vdot(r, z).real)
    stop = tol ** 2 * max(float(np.vdot(rhs, rhs).real), 1e-300)
    for _ in range(n_iter):
        if float(np.vdot(r, r).real) <= stop or rz <= 0:
            break
        Ap = apply(p)
        alpha = rz / float(np.vdot(p, Ap).real)
        x += alpha * p
        r -= alpha * Ap
        z = precondition(r)
        rz_new = float(np.vdot(r, z).real)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x


def _gram_preconditioner(operator, weight, shift):
    """``operator.gram_preconditioner(weight, shift)`` (≈ (weight A*A + shift I)⁻¹), None
    when shift is not > 0."""
    return operator.gram_preconditioner(weight, shift) if shift > 0 else None


def _measurement_noise(likelihood, n, rng):
    """White N(0, 1) noise on every real component of `n` measurements (A* of it has
    covariance A*A); shape (n, *operator.shape_out)."""
    y = likelihood.y
    shape = (n,) + y.shape
    real = likelihood.dtype
    noise = rng.standard_normal(shape, dtype=real)
    if y.dtype.kind == "c":
        noise = noise + 1j * rng.standard_normal(shape, dtype=real)
    measured = likelihood.operator.measured
    if measured is not None:
        noise *= measured
    return noise.astype(y.dtype, copy=False)


def map_estimate(y, operator, noise_sigma, prior, *, method="gradient", n_steps=100,
                 step_size="auto", x0=None, sigma_schedule=None, momentum=False, tol=1e-5,
                 cg_iter=30, rng=None, callback=None, progress=False):
    """MAP estimate ``argmax_x log p(y | x) + log p(x)`` with a score prior.

    ``method="gradient"`` iterates

    .. math::  x_{k+1} = x_k + α_k \\left(\\frac{A^*(y - A x_k)}{σ_n^2} + s(x_k; σ_k)\\right)

    with ``α_k = step_size / L_k``, ``L_k = ‖A‖²/σ_n² + L_prior(σ_k)`` (the Lipschitz
    bound of the posterior score), optionally with Nesterov momentum. ``method="hqs"``
    alternates ``z = x + σ_k² s(x; σ_k)`` (Tweedie denoising, patches averaged) with the
    data step ``x = argmin ‖y − A x‖²/(2σ_n²) + ‖x − z‖²/(2σ_k²)`` (conjugate gradients).

    Parameters
    ----------
    y : ndarray of shape operator.shape_out (or with a batch axis)
    operator : fastscore.operators.LinearOperator
    noise_sigma : float > 0
        σ_n, standard deviation of the measurement noise.
    prior : image prior with ``score(x, sigma)`` (e.g. :class:`fastscore.prior.PatchPrior`)
    method : {"gradient", "hqs"}
    n_steps : int >= 1
    step_size : "auto" or float in (0, 2)
        Fraction of ``1/L_k`` (gradient method); "auto" is 1.
    x0 : ndarray, optional
        Start; default FBP for CT operators, else ``A*y / ‖A‖²``.
    sigma_schedule : None, float, (start, end), array of n_steps, or callable k -> σ_k
        Prior noise level per iteration; default geometric ``2σ_n → σ_n/4``. Values below
        the prior's ``sigma_min`` (a trained model's smallest noise level) are raised to it.
    momentum : bool
        Nesterov acceleration (gradient method).
    tol : float >= 0
        Stop when ``‖x_{k+1} − x_k‖ / ‖x_k‖ < tol`` once σ has reached its last value.
    cg_iter : int >= 1
        Conjugate-gradient iterations per HQS data step (relative tolerance 1e-6),
        preconditioned by ``operator.gram_preconditioner(1/σ_n², 1/σ_k²)`` when the
        operator has one (exact, i.e. one iteration, for Identity, Mask, periodic Blur,
        Downsample and MRI).
    rng : None, int or Generator
        For priors with random tiling.
    callback : callable(k, x, info) -> bool, optional
        Called after each iteration; returning True stops.
    progress : bool
        Show a progress bar (tqdm when installed).

    Returns
    -------
    Reconstruction
    """
    method = check_choice(method, "method", ("gradient", "hqs"))
    n_steps = check_int(n_steps, "n_steps", low=1)
    tol = check_scalar(tol, "tol", low=0)
    if step_size != "auto":
        step_size = check_scalar(step_size, "step_size", low=0, high=2, low_inclusive=False,
                                 high_inclusive=False)
    cg_iter = check_int(cg_iter, "cg_iter", low=1)
    likelihood, x = _setup(y, operator, noise_sigma, x0)
    sigmas = _schedule(sigma_schedule, likelihood.noise_sigma, n_steps, prior)
    check_scale(sigmas, "sigma_schedule", x.dtype)
    rng = check_rng(rng)
    fraction = 1.0 if step_size == "auto" else step_size
    L_lik = likelihood.lipschitz()
    image_shape = tuple(operator.shape_in)
    history = {k: [] for k in ("sigma", "step_size", "log_likelihood", "score_norm",
                               "rel_change", "time")}
    t0 = time.perf_counter()
    x_prev = x.copy()
    velocity_point = x.copy()
    inv_n2 = 1.0 / likelihood.noise_sigma ** 2
    data_rhs = (operator.adjoint(likelihood.y).real * inv_n2).astype(x.dtype) \
        if method == "hqs" else None                       # A*y/σ_n², constant
    n_iter = 0
    for k in progress_range(n_steps, "MAP", progress):
        sigma = float(sigmas[k])
        if method == "gradient":
            point = velocity_point if momentum else x
            grad = likelihood.score(point) + prior.score(point, sigma, rng=rng)
            alpha = fraction / (L_lik + prior.lipschitz(image_shape, sigma))
            x_new = point + x.dtype.type(alpha) * grad
            if momentum:
                velocity_point = x_new + x.dtype.type(k / (k + 3.0)) * (x_new - x)
        else:
            z = prior.denoise(x, sigma, rng=rng)
            inv_s2 = 1.0 / sigma ** 2
            rhs = data_rhs + (z * inv_s2).astype(x.dtype)
            apply = lambda v: (operator.adjoint(operator.forward(v)).real * inv_n2
                               + v * inv_s2).astype(x.dtype)
            x_new = _cg(apply, rhs, z.copy(), cg_iter, 1e-6,
                        _gram_preconditioner(operator, inv_n2, inv_s2))
            alpha = sigma ** 2
            grad = x_new - x
        change = _rms(x_new - x) / max(_rms(x), 1e-30)
        x_prev, x = x, np.ascontiguousarray(x_new, dtype=x.dtype)
        n_iter = k + 1
        history["sigma"].append(sigma)
        history["step_size"].append(float(alpha))
        history["log_likelihood"].append(likelihood.log_likelihood(x) if x.ndim == len(
            image_shape) else float(np.sum(likelihood.log_likelihood(x))))
        history["score_norm"].append(_rms(grad))
        history["rel_change"].append(change)
        history["time"].append(time.perf_counter() - t0)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(
                f"map_estimate diverged at iteration {k} (sigma={sigma:.3g}, step "
                f"{alpha:.3g}); try a smaller step_size or a larger final sigma.")
        if callback is not None and callback(k, x, {h: v[-1] for h, v in history.items()}):
            break
        if tol > 0 and change < tol and sigma == sigmas[-1]:
            break
    del x_prev
    return Reconstruction(x=x, history=history, n_iter=n_iter)


def posterior_sample(y, operator, noise_sigma, prior, *, n_samples=8, sigmas=None,
                     steps_per_sigma=20, eps=None, x0=None, rng=None, trace_every=None,
                     callback=None, progress=False, method="preconditioned", cg_iter=100):
    """Sample ``p(x | y)`` with `n_samples` chains at once, annealed over a σ ladder.

    ``method="preconditioned"`` (default): at level σ_i the target is
    ``π_i(x) ∝ p(y | x) p_σi(x)``; with ``Q = A*A/σ_n² + c I``, ``c = L_prior(σ_i)`` (for a
    Tweedie-consistent prior ``c = 1/σ_i²``), each step is the exact solution over time
    ``h = −log(1 − ε)`` of the Langevin SDE preconditioned by ``Q⁻¹``, with the drift frozen:

    .. math::

        x ← x + ε\\, Q^{-1} ∇\\log π_i(x) + \\sqrt{ε (2 − ε)}\\; Q^{-1/2} ξ

    computed by one conjugate-gradient solve ``Q v = ε ∇log π_i(x) + \\sqrt{ε(2−ε)}
    (A*ξ₁/σ_n + \\sqrt{c} ξ₂)`` (perturbation-optimisation: the right-hand noise has
    covariance Q). The data term is exact, so directions that ``A`` measures sharply cost
    nothing and the null space of A moves at the prior's pace; ε = 1 is an HQS step
    (:func:`map_estimate`) plus ``N(0, Q⁻¹)``. For a Gaussian target the stationary mean is
    exact and a variance is scaled by ``(2 − ε)/(2 − ελ)`` (λ ∈ (0, 1] the eigenvalue of
    ``Q⁻¹ ∇²(−log π)``: exact for λ = 1, at worst ``1 − ε/2``).

    ``method="langevin"``: unadjusted Langevin with the likelihood tempered by σ_i,

    .. math::

        x ← x + α_i \\left(\\frac{A^*(y - A x)}{σ_n^2 + σ_i^2} + s(x; σ_i)\\right)
              + \\sqrt{2 α_i}\\, ξ,  \\qquad α_i = \\frac{ε}{L_i},
              \\quad L_i = \\frac{‖A‖^2}{σ_n^2 + σ_i^2} + L_{prior}(σ_i)

    Parameters
    ----------
    y, operator, noise_sigma, prior : as in :func:`map_estimate`
    n_samples : int
        Number of chains (a batch axis through the prior and the operator).
    sigmas : array, optional
        Non-increasing ladder; default ``sigma_ladder(max(4σ_n, …), max(σ_n/4, prior floor), 8)``.
    steps_per_sigma : int
    eps : float in (0, 1], optional
        Step: ε above ("preconditioned", default 1) or the fraction of ``1/L_i``
        ("langevin", default 0.5).
    x0 : ndarray, optional
        Common start of the chains (default as in :func:`map_estimate`) plus ladder noise.
    rng : None, int or Generator
    trace_every : int >= 1, optional
        Keep every k-th state of all chains.
    method : {"preconditioned", "langevin"}
    cg_iter : int
        Conjugate-gradient iterations per step ("preconditioned"; relative tolerance 1e-6),
        preconditioned by ``operator.gram_preconditioner(1/σ_n², c)`` when available.

    Returns
    -------
    PosteriorSamples
        ``samples`` (n_samples, *image_shape): the chains' last states, draws of π at the
        last level. ``mean``: "langevin", their average; "preconditioned", the
        Rao–Blackwellised MMSE estimate ``mean of x + σ² s(x; σ)`` (Tweedie: E[clean | x])
        over the chains and the states of the last level (``steps_per_sigma`` of them),
        i.e. the posterior mean of the clean image z for ``p(z) N(y; A z, σ_n² I + σ² A A*)``.
        ``std``: pixelwise std of ``samples``.
    """
    n_samples = check_int(n_samples, "n_samples", low=1)
    steps_per_sigma = check_int(steps_per_sigma, "steps_per_sigma", low=1)
    method = check_choice(method, "method", ("preconditioned", "langevin"))
    if eps is None:
        eps = 1.0 if method == "preconditioned" else 0.5
    eps = check_scalar(eps, "eps", low=0, high=1, low_inclusive=False)
    cg_iter = check_int(cg_iter, "cg_iter", low=1)
    if trace_every is not None:
        trace_every = check_int(trace_every, "trace_every", low=1)
    rng = check_rng(rng)
    likelihood, x_start = _setup(y, operator, noise_sigma, x0)
    if likelihood.y.ndim != len(operator.shape_out):
        raise ValueError("posterior_sample takes one measurement `y` (the chains form the "
                         f"batch axis); got y of shape {likelihood.y.shape}.")
    floor = _prior_sigma_floor(prior)
    if sigmas is None:
        sigmas = sigma_ladder(max(4 * likelihood.noise_sigma, 2 * floor),
                              max(likelihood.noise_sigma / 4, floor), 8)
    sigmas = as_float_array(sigmas, "sigmas", ndim=1, finite=True).astype(np.float64)
    if np.any(sigmas <= 0) or np.any(np.diff(sigmas) > 0):
        raise ValueError("`sigmas` must be positive and non-increasing.")
    check_scale(sigmas, "sigmas", x_start.dtype)
    dtype = x_start.dtype
    image_shape = tuple(operator.shape_in)
    x = np.repeat(x_start[np.newaxis], n_samples, axis=0)
    x += dtype.type(sigmas[0]) * rng.standard_normal(x.shape).astype(dtype)
    norm2 = operator.norm_squared()
    noise_var = likelihood.noise_sigma ** 2
    inv_n2 = 1.0 / noise_var
    noise_scale = dtype.type(np.sqrt(eps * (2 - eps)))
    tweedie_sum, n_tweedie = np.zeros_like(x), 0
    trace = []
    total = len(sigmas) * steps_per_sigma
    for t in progress_range(total, "posterior", progress):
        sigma = float(sigmas[t // steps_per_sigma])
        if method == "langevin":
            var = noise_var + sigma ** 2
            L = norm2 / var + prior.lipschitz(image_shape, sigma)
            alpha = eps / L
            # tempered likelihood: A*(y − A x)/(σ_n² + σ²) = score · σ_n²/(σ_n² + σ²)
            drift = likelihood.score(x) * dtype.type(noise_var / var)
            drift += prior.score(x, sigma, rng=rng)
            x += dtype.type(alpha) * drift
            x += dtype.type(np.sqrt(2 * alpha)) * rng.standard_normal(x.shape).astype(dtype)
        else:
            c = prior.lipschitz(image_shape, sigma)
            s_prior = prior.score(x, sigma, rng=rng)
            if t >= total - steps_per_sigma:                # last level
                tweedie_sum += x + dtype.type(sigma ** 2) * s_prior      # E[clean | x]
                n_tweedie += 1
            # Q v = ε ∇log π(x) + sqrt(ε(2−ε)) (A*ξ₁/σ_n + sqrt(c) ξ₂), cov of (…) = Q
            rhs = operator.adjoint(_measurement_noise(likelihood, n_samples, rng)).real
            rhs = (rhs * likelihood.noise_sigma * inv_n2).astype(dtype)
            rhs += dtype.type(np.sqrt(c)) * rng.standard_normal(x.shape).astype(dtype)
            rhs *= noise_scale
            rhs += dtype.type(eps) * (likelihood.score(x) + s_prior)
            apply = lambda v: (operator.adjoint(operator.forward(v)).real * inv_n2
                               + v * c).astype(dtype)
            x = x + _cg(apply, rhs, np.zeros_like(x), cg_iter, 1e-6,
                        _gram_preconditioner(operator, inv_n2, c))
            alpha = eps / c
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"posterior_sample diverged at step {t} "
                                     f"(sigma={sigma:.3g}); use a smaller eps.")
        if trace_every and t % trace_every == 0:
            trace.append(x.copy())
        if callback is not None and callback(t, x, {"sigma": sigma, "step_size": alpha}):
            break
    std = x.std(axis=0, ddof=1 if n_samples > 1 else 0)
    mean = tweedie_sum.mean(axis=0) / n_tweedie if n_tweedie else x.mean(axis=0)
    return PosteriorSamples(samples=x, mean=mean.astype(dtype, copy=False), std=std,
                            trace=np.stack(trace) if trace else None)


def posterior_summary(samples, *, credible=0.9):
    """Mean (MMSE estimate), pixelwise std and a central credible interval.

    Parameters
    ----------
    samples : ndarray of shape (n_samples, *image_shape), n_samples >= 2
    credible : float in (0, 1)
        Mass of the central interval.

    Returns
    -------
    dict with ``mean``, ``std``, ``lower``, ``upper`` (each image-shaped).
    """
    arr = as_float_array(samples, "samples", finite=True)
    if arr.ndim < 2 or arr.shape[0] < 2:
        raise ValueError(f"`samples` must have shape (n_samples >= 2, ...); got {arr.shape}.")
    credible = check_scalar(credible, "credible", low=0, high=1, low_inclusive=False,
                            high_inclusive=False)
    lo, hi = np.quantile(arr, [(1 - credible) / 2, (1 + credible) / 2], axis=0)
    return {"mean": arr.mean(axis=0), "std": arr.std(axis=0, ddof=1),
            "lower": lo.astype(arr.dtype), "upper": hi.astype(arr.dtype)}


def noise_realizations(x, operator, noise_sigma, prior, *, n=30, rng=None, map_options=None):
    """Spread of the MAP estimate over `n` noise draws of the same clean image.

    Simulates ``y_j = A x + n_j`` and runs :func:`map_estimate` on each (all at once,
    as a batch); the pixelwise std of the estimates is the tutorial's uncertainty map.

    Parameters
    ----------
    x : ndarray of shape operator.shape_in, the clean image
    operator, noise_sigma, prior : as in :func:`map_estimate`
    n : int >= 2
    rng : None, int or Generator
    map_options : dict, optional
        Keyword arguments of :func:`map_estimate` (n_steps, method, sigma_schedule, …).

    Returns
    -------
    dict with ``mean``, ``std`` (image-shaped) and ``estimates`` (n, *image_shape).
    """
    n = check_int(n, "n", low=2)
    rng = check_rng(rng)
    x = as_float_array(x, "x", finite=True)
    y = operator.simulate(np.repeat(x[np.newaxis], n, axis=0), noise_sigma, rng=rng)
    result = map_estimate(y, operator, noise_sigma, prior, rng=rng, **(map_options or {}))
    est = result.x
    return {"mean": est.mean(axis=0), "std": est.std(axis=0, ddof=1), "estimates": est}

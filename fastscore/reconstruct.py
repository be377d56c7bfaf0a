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

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._cg import conjugate_gradient
from ._deprecation import adapt_callback, deprecated_attribute, renamed_arguments
from ._progress import progress_range
from ._validation import (as_float_array, check_choice, check_int, check_rng, check_scalar,
                          check_scale)
from ._sigma_ladder import (_anneal_start, _prior_sigma_floor, _prior_sigmas, _refine,
                            sigma_ladder)
from .operators import GaussianLikelihood, LinearOperator
from . import posterior as _posterior
from .posterior import gram_preconditioner as _gram_preconditioner

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
    n_steps : int, iterations run (fewer than asked when the stopping rule fired; formerly
        ``n_iter``, a deprecated alias).
    """
    x: np.ndarray
    history: dict
    n_steps: int

    n_iter = deprecated_attribute("n_steps", "n_iter")


@dataclasses.dataclass
class PosteriorSamples:
    """Posterior samples with their summary.

    Attributes
    ----------
    samples : ndarray of shape ``(n_samples, *image_shape)``
    mean : ndarray, the MMSE estimate (sample mean; Tweedie-denoised for the
        preconditioned sampler, see :func:`posterior_sample`)
    std : ndarray, pixelwise standard deviation (the uncertainty map)
    trace : ndarray or None, thinned chain states ``(n_saved, n_samples, *image_shape)``
    n_score_evals : int, prior score evaluations per chain (the unit of work)
    """
    samples: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    trace: np.ndarray | None = None
    n_score_evals: int = 0


def _setup(y, operator, noise_sigma, x0):
    if not isinstance(operator, LinearOperator):
        raise TypeError(f"`operator` must be a fastscore.operators.LinearOperator; got "
                        f"{type(operator).__name__}.")
    likelihood = GaussianLikelihood(operator, y, noise_sigma)
    dtype = likelihood.dtype
    if operator.complex_domain:      # complex images end to end (MRI, SENSE)
        dtype = np.result_type(dtype, np.complex64)
    if x0 is None:
        fbp = getattr(operator, "fbp", None)
        if callable(fbp):
            x = np.asarray(fbp(likelihood.y), dtype=dtype)
        else:
            x = _image_part(operator, operator.adjoint(likelihood.y)).astype(dtype)
            x /= x.real.dtype.type(operator.norm_squared())
    else:
        x = as_float_array(x0, "x0", finite=True, allow_complex=operator.complex_domain)
        x = x.astype(dtype)
        want = likelihood.y.shape[:likelihood.y.ndim - len(operator.shape_out)] + tuple(
            operator.shape_in)
        if x.shape != want:
            raise ValueError(f"`x0` must have shape {want}; got {x.shape}.")
    return likelihood, np.ascontiguousarray(x)


def _image_part(operator, v):
    """`v` for a complex-image operator, else its real part."""
    return v if operator.complex_domain else v.real


def _rms(a):
    a = np.asarray(a)
    return float(np.sqrt(np.vdot(a, a).real / max(a.size, 1)))


def map_estimate(y: ArrayLike, operator: LinearOperator, noise_sigma: float, prior: Any, *,
                 method: str = "gradient", n_steps: int = 100,
                 step_size: str | float = "auto", x0: ArrayLike | None = None,
                 sigma_schedule: Any = None, momentum: bool = False, tol: float = 1e-5,
                 cg_iter: int = 30, rng: int | np.random.Generator | None = None,
                 callback: Callable[[int, np.ndarray, dict], Any] | None = None,
                 progress: bool = False) -> Reconstruction:
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
        Prior noise level per iteration; default geometric ``σ_start → σ_n/4`` with
        ``σ_start = 2σ_n`` for denoising (Identity) and, for any other operator, the spread
        ``std(x0)`` of the start image (at most the prior's ``sigma_max``, at least 2σ_n):
        aliasing and streaks must be treated as noise first. Values below
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
        Called after iteration ``k`` (from 0) with the current estimate and ``info``, the
        iteration's entries of ``history``: ``sigma``, ``step_size``, ``log_likelihood``,
        ``score_norm``, ``rel_change``, ``time``; returning True stops.
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
    sigmas = _prior_sigmas(sigma_schedule, likelihood.noise_sigma, n_steps, prior,
                       _anneal_start(operator, x, likelihood.noise_sigma, prior))
    check_scale(sigmas, "sigma_schedule", x.dtype)
    rng = check_rng(rng)
    callback = adapt_callback(callback, "map_estimate")
    fraction = 1.0 if step_size == "auto" else step_size
    L_lik = likelihood.lipschitz()
    image_shape = tuple(operator.shape_in)
    history: dict[str, list[float]] = {
        k: [] for k in ("sigma", "step_size", "log_likelihood", "score_norm", "rel_change",
                        "time")}
    t0 = time.perf_counter()
    x_prev = x.copy()
    velocity_point = x.copy()
    inv_n2 = 1.0 / likelihood.noise_sigma ** 2
    data_rhs = (_image_part(operator, operator.adjoint(likelihood.y)) * inv_n2).astype(
        x.dtype) if method == "hqs" else None                       # A*y/σ_n², constant
    n_done = 0
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
            apply = lambda v, inv_s2=inv_s2, dtype=x.dtype: (
                _image_part(operator, operator.adjoint(operator.forward(v)))
                * inv_n2 + v * inv_s2).astype(dtype)
            x_new = conjugate_gradient(
                apply, rhs, z.copy(), cg_iter=cg_iter, tol=1e-6,
                precondition=_gram_preconditioner(operator, inv_n2, inv_s2),
                n_batch=x.ndim - len(image_shape))
            alpha = sigma ** 2
            grad = x_new - x
        change = _rms(x_new - x) / max(_rms(x), 1e-30)
        x_prev, x = x, np.ascontiguousarray(x_new, dtype=x.dtype)
        n_done = k + 1
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
    return Reconstruction(x=x, history=history, n_steps=n_done)


_METHODS = ("preconditioned", "langevin", "hmc", "pc", "ode", "dps", "diffpir", "laplace")
_OPTIONS = {"hmc": ("n_leapfrog", "mass", "target_acceptance"), "diffpir": ("lam",),
            "laplace": ("map_options",)}
# preconditioned 0.5: a variance is scaled by (2 − ε)/(2 − ελ) ∈ [1 − ε/2, 1], so ε = 1
# halves it in prior-dominated directions (λ → 0); with ε = 0.5 at most by a quarter
# (coverage of 90% intervals on validation rectangles, 20 steps per level: 0.880)
_DEFAULT_EPS = {"preconditioned": 0.5, "langevin": 0.5, "hmc": 1.0, "pc": 0.16, "dps": 1.0,
                "diffpir": 1.0}


@renamed_arguments(eps="step_size")
def posterior_sample(y: ArrayLike, operator: LinearOperator, noise_sigma: float, prior: Any, *,
                     n_samples: int = 8, sigmas: ArrayLike | None = None,
                     steps_per_sigma: int = 20, step_size: float | None = None,
                     x0: ArrayLike | None = None, rng: int | np.random.Generator | None = None,
                     trace_every: int | None = None,
                     callback: Callable[[int, np.ndarray, dict], Any] | None = None,
                     progress: bool = False, method: str = "preconditioned",
                     cg_iter: int = 100, options: dict | None = None,
                     init: str = "start") -> PosteriorSamples:
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

    ``method="langevin"``: unadjusted Langevin (:func:`fastscore.sampling.langevin` per
    level) with the likelihood tempered by σ_i,

    .. math::

        x ← x + α_i \\left(\\frac{A^*(y - A x)}{σ_n^2 + σ_i^2} + s(x; σ_i)\\right)
              + \\sqrt{2 α_i}\\, ξ,  \\qquad α_i = \\frac{ε}{L_i},
              \\quad L_i = \\frac{‖A‖^2}{σ_n^2 + σ_i^2} + L_{prior}(σ_i)

    The other methods are in :mod:`fastscore.posterior`: ``"hmc"`` (annealed HMC on π_i,
    Metropolis-adjusted when the prior has a log-density; `steps_per_sigma` HMC steps of
    ``options["n_leapfrog"]`` (5) leapfrog steps, ``options["mass"]`` "preconditioned"
    (Q above, default) or "identity", initial step `step_size`), ``"pc"`` (predictor–corrector,
    one corrector step per level with signal-to-noise ratio `step_size`), ``"ode"``
    (probability-flow ODE, Heun), ``"dps"`` (diffusion posterior sampling, guidance weight
    `step_size`) and ``"diffpir"`` (HQS inside the reverse diffusion, noise mix ζ = `step_size`,
    ``options["lam"]`` = 1); these four run on the ladder refined with `steps_per_sigma`
    geometric sub-steps per interval. ``"laplace"``: the Gaussian
    approximation around the MAP estimate (:func:`map_estimate` with
    ``options["map_options"]``, default HQS, 8 steps ``2σ_n → σ_n/4``) whose precision
    is the data term plus the patch Hessians at the last σ (:func:`fastscore.posterior.laplace`);
    ``samples`` are exact draws of that Gaussian and ``mean`` is the MAP estimate.

    Parameters
    ----------
    y, operator, noise_sigma, prior : as in :func:`map_estimate`
    n_samples : int
        Number of chains (a batch axis through the prior and the operator).
    sigmas : array, optional
        Non-increasing ladder; default ``sigma_ladder(max(2 σ_start, 2 · floor),
        max(σ_n/4, floor), 8)`` with σ_start as in :func:`map_estimate` (2σ_n for
        denoising; σ_n with ``init="map"``) and floor the prior's ``sigma_min``.
    steps_per_sigma : int
    step_size : float in (0, 1], optional
        The method's step ε (see above; formerly ``eps``); defaults: preconditioned 0.5,
        langevin 0.5, hmc 1, pc 0.16, dps 1, diffpir 1.
    x0 : ndarray, optional
        Common start of the chains (default as in :func:`map_estimate`) plus ladder noise.
    rng : None, int or Generator
    trace_every : int >= 1, optional
        Keep every k-th state of all chains.
    callback : callable(k, x, info) -> bool, optional
        Called after each step (k = steps done, from 1) with the chains and a dict
        holding at least ``sigma`` (the level) and ``step_size`` (the step taken: ε/c for
        "preconditioned", α_i for "langevin", the leapfrog step for "hmc"; "hmc" adds
        ``acceptance``); returning True stops.
    progress : bool
        Progress bar ("preconditioned" only).
    method : {"preconditioned", "langevin", "hmc", "pc", "ode", "dps", "diffpir", "laplace"}
    cg_iter : int
        Conjugate-gradient iterations per data solve (relative tolerance 1e-6),
        preconditioned by ``operator.gram_preconditioner(1/σ_n², c)`` when available.
    options : dict, optional
        Method-specific settings named above.
    init : {"start", "map"}
        Where the chains start. "start": `x0` (default as in :func:`map_estimate`) plus
        ladder noise. "map": the MAP estimate (:func:`map_estimate`, HQS, 8 steps
        ``max(2σ_n, σ_start) → σ_n/4`` from `x0`, σ_start as below;
        ``options["map_options"]`` overrides) plus ladder noise, and the default ladder starts at ``2σ_n`` (the MAP
        has no structured error left to anneal away). Its 8 score evaluations are
        included in ``n_score_evals``. Not used by "laplace" (always at the MAP).

    Returns
    -------
    PosteriorSamples
        ``samples`` ``(n_samples, *image_shape)``: the chains' last states, draws of π at the
        last level. ``mean``: "preconditioned", the average over the chains and the states
        of the last level (``steps_per_sigma`` of them), an estimate of ``E_π[x]`` for
        ``π ∝ p_σ(x) p(y | x)`` at the last σ, which tends to the posterior mean as σ → 0.
        (The Tweedie average of ``x + σ² s(x; σ)`` is, by contrast, the posterior mean of
        the clean image under the inflated likelihood ``N(y; A z, σ_n² I + σ² A A*)``: on
        30-view CT ``σ² ‖A‖²`` is ~10³ σ_n², and that mean was 0.5 dB (CT) and 0.3 dB
        (denoising) worse on validation images; benchmarks/README.md.) "laplace", the MAP
        estimate;
        otherwise the average of the samples. ``std``: pixelwise std of ``samples``.
        ``n_score_evals``: prior score evaluations per chain.
    """
    if not getattr(prior, "density_score", True):
        raise TypeError(f"`prior` {type(prior).__name__} has no density score (its score "
                        "is a fused denoiser's residual, for map_estimate); sample with its "
                        "single-level prior (`prior.prior`, or "
                        "fastscore.pretrained.prior(name, levels=1)).")
    n_samples = check_int(n_samples, "n_samples", low=1)
    steps_per_sigma = check_int(steps_per_sigma, "steps_per_sigma", low=1)
    method = check_choice(method, "method", _METHODS)
    init = check_choice(init, "init", ("start", "map"))
    options = dict(options or {})
    map_options = options.pop("map_options", None)
    if map_options is not None and method != "laplace" and init != "map":
        raise ValueError("`options['map_options']` is used by method='laplace' and "
                         f"init='map'; got method={method!r}, init={init!r}.")
    unknown = set(options) - set(_OPTIONS.get(method, ())) - {"map_options"}
    if unknown:
        raise ValueError(f"`options` for method={method!r} take {list(_OPTIONS.get(method, ()))}; "
                         f"got unknown {sorted(unknown)}.")
    if step_size is None:
        step_size = _DEFAULT_EPS.get(method, 1.0)
    eps = check_scalar(step_size, "step_size", low=0, high=1, low_inclusive=False)
    cg_iter = check_int(cg_iter, "cg_iter", low=1)
    if trace_every is not None:
        trace_every = check_int(trace_every, "trace_every", low=1)
    rng = check_rng(rng)
    callback = adapt_callback(callback, "posterior_sample")
    likelihood, x_start = _setup(y, operator, noise_sigma, x0)
    if likelihood.y.ndim != len(operator.shape_out):
        raise ValueError("posterior_sample takes one measurement `y` (the chains form the "
                         f"batch axis); got y of shape {likelihood.y.shape}.")
    floor = _prior_sigma_floor(prior)
    if sigmas is None:
        start = (likelihood.noise_sigma if init == "map" else
                 _anneal_start(operator, x_start, likelihood.noise_sigma, prior))
        sigmas = sigma_ladder(max(2 * start, 2 * floor),
                              max(likelihood.noise_sigma / 4, floor), 8)
    sigmas = as_float_array(sigmas, "sigmas", ndim=1, finite=True).astype(np.float64)
    if np.any(sigmas <= 0) or np.any(np.diff(sigmas) > 0):
        raise ValueError("`sigmas` must be positive and non-increasing.")
    check_scale(sigmas, "sigmas", x_start.dtype)
    dtype = x_start.dtype
    if operator.complex_domain and method != "preconditioned":
        raise NotImplementedError(
            f"posterior_sample(method={method!r}) samples real images; complex images "
            "(a complex-domain operator such as MRI(..., complex_image=True) or SENSE) "
            "use method='preconditioned'.")
    problem = _posterior.Problem(likelihood, prior, rng, cg_iter)
    if method == "laplace":
        x_map = _sampling_map(likelihood, operator, prior, x0, rng, cg_iter, map_options)
        sigma_last = float(x_map.history["sigma"][-1])
        samples, mean, n_evals, _ = _posterior.laplace(problem, x_map.x, sigma_last,
                                                       n_samples)
        return _summarise(samples, mean, None, n_evals + x_map.n_steps)
    if init == "map":
        top = max(2 * likelihood.noise_sigma,
                  _anneal_start(operator, x_start, likelihood.noise_sigma, prior))
        x_map = _sampling_map(likelihood, operator, prior, x_start, rng, cg_iter,
                              map_options, top)
        x_start = x_map.x.astype(dtype, copy=False)
        problem.n_evals += x_map.n_steps
    x = np.repeat(x_start[np.newaxis], n_samples, axis=0)
    x += problem.white(x.shape) * x.real.dtype.type(sigmas[0])
    if method != "preconditioned":
        kwargs: dict[str, Any] = dict(trace_every=trace_every, callback=callback)
        fine = _refine(sigmas, steps_per_sigma)
        if method == "hmc":
            out = _posterior.hmc(problem, x, sigmas, steps_per_sigma=steps_per_sigma,
                                 step_size=eps, **options, **kwargs)
        elif method == "langevin":
            out = _posterior.langevin(problem, x, sigmas, step_size=eps,
                                      steps_per_sigma=steps_per_sigma, **kwargs)
        elif method == "ode":
            out = _posterior.ode(problem, x, fine, **kwargs)
        else:
            knob = {"pc": "snr", "dps": "guidance", "diffpir": "noise_mix"}[method]
            out = getattr(_posterior, method)(problem, x, fine, **{knob: eps}, **options,
                                              **kwargs)
        samples, mean, n_evals, trace = out
        return _summarise(samples, mean, trace, n_evals)
    inv_n2 = 1.0 / likelihood.noise_sigma ** 2
    noise_scale = dtype.type(np.sqrt(eps * (2 - eps)))
    last_sum, n_last = np.zeros_like(x), 0
    states: list[np.ndarray] = []
    total = len(sigmas) * steps_per_sigma
    for t in progress_range(total, "posterior", progress):
        sigma = float(sigmas[t // steps_per_sigma])
        c = prior.lipschitz(tuple(operator.shape_in), sigma)
        s_prior = problem.prior_score(x, sigma)
        # Q v = ε ∇log π(x) + sqrt(ε(2−ε)) (A*ξ₁/σ_n + sqrt(c) ξ₂), cov of (…) = Q
        rhs = problem.gram_noise(n_samples, c)
        rhs *= noise_scale
        rhs += dtype.type(eps) * (likelihood.score(x) + s_prior)
        x = x + problem.solve(rhs, inv_n2, c)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"posterior_sample diverged at step {t} "
                                     f"(sigma={sigma:.3g}); use a smaller step_size.")
        if t >= total - steps_per_sigma:                # the states of the last level
            last_sum += x
            n_last += 1
        if trace_every and t % trace_every == 0:
            states.append(x.copy())
        if callback is not None and callback(t + 1, x, {"sigma": sigma,
                                                        "step_size": eps / c}):
            break
    mean = last_sum.mean(axis=0) / n_last if n_last else x.mean(axis=0)
    return _summarise(x, mean, np.stack(states) if states else None, problem.n_evals)


def _sampling_map(likelihood, operator, prior, x0, rng, cg_iter, overrides, top=None):
    """The MAP estimate the Laplace approximation and ``init="map"`` start from: HQS,
    8 steps ``top → σ_n/4`` (default top 2σ_n; `overrides` update these settings)."""
    top = 2 * likelihood.noise_sigma if top is None else top
    settings: dict[str, Any] = dict(method="hqs", n_steps=8, cg_iter=cg_iter,
                                    sigma_schedule=(top, likelihood.noise_sigma / 4))
    settings.update(overrides or {})
    return map_estimate(likelihood.y, operator, likelihood.noise_sigma, prior, x0=x0,
                        rng=rng, **settings)


def _summarise(samples, mean, trace, n_evals):
    n = samples.shape[0]
    std = samples.std(axis=0, ddof=1 if n > 1 else 0)
    return PosteriorSamples(samples=samples, mean=mean.astype(samples.dtype, copy=False),
                            std=std, trace=trace, n_score_evals=int(n_evals))


def posterior_summary(samples, *, credible=0.9):
    """Mean (MMSE estimate), pixelwise std and a central credible interval.

    Parameters
    ----------
    samples : ndarray of shape ``(n_samples, *image_shape)``, n_samples >= 2
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
    dict with ``mean``, ``std`` (image-shaped) and ``estimates`` ``(n, *image_shape)``.
    """
    n = check_int(n, "n", low=2)
    rng = check_rng(rng)
    x = as_float_array(x, "x", finite=True)
    y = operator.simulate(np.repeat(x[np.newaxis], n, axis=0), noise_sigma, rng=rng)
    result = map_estimate(y, operator, noise_sigma, prior, rng=rng, **(map_options or {}))
    est = result.x
    return {"mean": est.mean(axis=0), "std": est.std(axis=0, ddof=1), "estimates": est}

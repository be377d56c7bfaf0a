"""Posterior samplers for ``y = A x + n`` with a score prior (the engines behind
:func:`fastscore.reconstruct.posterior_sample`).

Every sampler runs a batch of chains ``x`` of shape ``(n_chains, *image_shape)`` over a
decreasing prior noise ladder σ_1 ≥ … ≥ σ_L and uses one of two families of targets:

- the **smoothed-prior posterior** ``π_i(x) ∝ p_σi(x) p(y | x)`` (exact likelihood, prior
  smoothed at σ_i): annealed HMC (:func:`hmc`), the Laplace approximation
  (:func:`laplace`) and the preconditioned sampler of :mod:`fastscore.reconstruct`;
- the **reverse diffusion** of the VE SDE, whose level-σ posterior score is approximated by
  the prior score plus a likelihood whose variance grows with σ,

  .. math::  ∇\\log p_σ(x \\mid y) ≈ s(x; σ) + \\frac{A^*(y - A x)}{σ_n^2 + σ^2},

  (annealed Langevin :func:`langevin`, predictor–corrector :func:`pc`, probability-flow ODE
  :func:`ode`), or by the likelihood of the Tweedie mean ``x̂₀ = x + σ² s(x; σ)``
  (:func:`dps`) or by a half-quadratic data step on it (:func:`diffpir`).

Each function returns ``(samples, mean, n_score_evals)`` with ``n_score_evals`` the prior
score evaluations per chain (the unit of work: one 256² evaluation of the tutorial network
is ≈ 31 GFLOP). Traces and callbacks follow :mod:`fastscore.sampling`
(``callback(k, x, info) -> bool``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import sampling
from ._cg import conjugate_gradient
from ._deprecation import adapt_callback, renamed_arguments

Callback = Callable[[int, np.ndarray, dict], Any] | None
Result = tuple[np.ndarray, np.ndarray, int, np.ndarray | None]   # samples, mean, evals, trace

__all__ = ["diffpir", "dps", "hmc", "langevin", "laplace", "ode", "pc"]


def gram_preconditioner(operator, weight, shift):
    """``operator.gram_preconditioner(weight, shift)`` (≈ (weight A*A + shift I)⁻¹), None
    when shift is not > 0."""
    return operator.gram_preconditioner(weight, shift) if shift > 0 else None


def measurement_noise(likelihood, n, rng):
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


class Problem:
    """A posterior ``p(x | y) ∝ p(y | x) p(x)`` and its building blocks for a batch of chains.

    Parameters
    ----------
    likelihood : fastscore.operators.GaussianLikelihood (one measurement)
    prior : image prior with ``score(x, sigma, rng=)`` and ``lipschitz(shape, sigma)``
    rng : numpy.random.Generator
    cg_iter : int
        Conjugate-gradient iterations of the data solves (relative tolerance 1e-6).
    """

    def __init__(self, likelihood, prior, rng, cg_iter):
        self.likelihood = likelihood
        self.prior = prior
        self.operator = likelihood.operator
        self.rng = rng
        self.cg_iter = cg_iter
        self.image_shape = tuple(self.operator.shape_in)
        self.complex = bool(self.operator.complex_domain)     # complex images (MRI, SENSE)
        self.dtype = (np.dtype(np.result_type(likelihood.dtype, np.complex64)) if self.complex
                      else np.dtype(likelihood.dtype))
        self.real_dtype = np.dtype(likelihood.dtype)
        self.noise_var = likelihood.noise_sigma ** 2
        self.n_evals = 0

    def prior_score(self, x, sigma):
        self.n_evals += 1
        return self.prior.score(x, sigma, rng=self.rng)

    def tempered_score(self, x, sigma):
        """``s(x; σ) + A*(y − A x)/(σ_n² + σ²)``."""
        out = self.likelihood.score(x) * self.dtype.type(
            self.noise_var / (self.noise_var + sigma ** 2))
        out += self.prior_score(x, sigma)
        return out

    def score(self, x, sigma):
        """``s(x; σ) + A*(y − A x)/σ_n²`` (the gradient of log π_σ)."""
        out = self.likelihood.score(x)
        out += self.prior_score(x, sigma)
        return out

    def log_density(self):
        """``(x, σ) ↦ log p_σ(x) + log p(y | x)`` per chain, or None when the prior has no
        log-density (a score estimate only)."""
        probe = np.zeros(self.image_shape, dtype=self.dtype)
        try:
            self.prior.log_density(probe, 1.0)
        except (NotImplementedError, AttributeError):
            return None

        def log_density(x, sigma):
            prior = np.array([self.prior.log_density(xi, sigma) for xi in x])
            return prior + self.likelihood.log_likelihood(x)
        return log_density

    def apply_gram(self, weight, shift):
        """``v ↦ weight A*A v + shift v`` in the working dtype."""
        op, image = self.operator, self.image_part
        return lambda v: (image(op.adjoint(op.forward(v))) * weight + v * shift).astype(
            self.dtype)

    def image_part(self, v):
        """`v` for complex images, else its real part."""
        return v if self.complex else v.real

    def white(self, shape):
        """N(0, 1) on every real component of an image batch of `shape`."""
        out = self.rng.standard_normal(shape, dtype=self.real_dtype)
        if self.complex:
            out = out + 1j * self.rng.standard_normal(shape, dtype=self.real_dtype)
        return out.astype(self.dtype, copy=False)

    def solve(self, rhs, weight, shift, x=None):
        """``(weight A*A + shift I)⁻¹ rhs`` per chain (preconditioned CG); `shift` a scalar
        or one value per chain (shape (n, 1, …); the preconditioner then takes their
        mean)."""
        x = np.zeros_like(rhs) if x is None else x
        shift = shift if np.ndim(shift) == 0 else np.asarray(shift, dtype=self.real_dtype)
        return conjugate_gradient(self.apply_gram(weight, shift), rhs, x, cg_iter=self.cg_iter,
                                  tol=1e-6, precondition=gram_preconditioner(
                                      self.operator, weight, float(np.mean(shift))), n_batch=1)

    def data_step(self, v, h, sigma):
        """The proximal map of h × the tempered negative log-likelihood,
        ``argmin_z ‖y − A z‖²/(2(σ_n² + σ²)) + ‖z − v‖²/(2h)``, i.e. the solution of
        ``(A*A/(σ_n² + σ²) + I/h) z = A*y/(σ_n² + σ²) + v/h`` (CG from v); `h` a scalar or
        one value per chain. The implicit data step of :func:`pc`."""
        var = self.noise_var + sigma ** 2
        shift = 1.0 / np.asarray(h, dtype=np.float64)
        data = self.image_part(self.operator.adjoint(self.likelihood.y)) * (1.0 / var)
        rhs = (v * shift.astype(self.real_dtype) + data).astype(self.dtype, copy=False)
        return self.solve(rhs, 1.0 / var, shift if shift.ndim else float(shift), v.copy())

    def gram_noise(self, n, shift):
        """``A*ξ₁/σ_n + sqrt(shift) ξ₂``: covariance ``A*A/σ_n² + shift I``."""
        lik = self.likelihood
        out = self.image_part(self.operator.adjoint(measurement_noise(lik, n, self.rng)))
        out = (out * (1.0 / lik.noise_sigma)).astype(self.dtype)
        out += self.real_dtype.type(np.sqrt(shift)) * self.white(out.shape)
        return out

    def guided_score(self, x, sigma, weight=1.0, cap=None):
        """``s(x; σ) + ζ g`` (ζ = `weight`): the prior score plus the likelihood gradient
        through the Tweedie mean ``x̂₀ = x + σ² s(x; σ)``,

        .. math::

            g = J^\\top \\frac{A^*(y − A x̂₀)}{σ_n^2 + σ^2 κ}, \\qquad J = \\frac{∂x̂₀}{∂x}
            = I + σ^2 ∇s, \\qquad κ = \\frac{⟨r, J r⟩}{⟨r, r⟩},\\; r = A^*(y − A x̂₀)

        i.e. ``∇ log N(y; A x̂₀, σ_n² I + A Cov[x₀ | x] A*)`` with the Tweedie covariance
        ``Cov[x₀ | x] = σ² J`` replaced by its Rayleigh quotient along the residual (exact for
        A = I and an isotropic Gaussian prior). With `cap` (a function of the variance
        ``σ_n² + σ² κ`` per chain) the weight is ``min(ζ, cap(var))`` (the step guard of
        :func:`dps`). Three score evaluations."""
        dt = self.dtype
        s = self.prior_score(x, sigma)
        x0 = x + dt.type(sigma ** 2) * s
        r = self.likelihood.score(x0) * dt.type(self.noise_var)        # A*(y − A x̂₀)
        Jr = r + dt.type(sigma ** 2) * self.score_jvp(x, sigma, r)
        axes = tuple(range(1, x.ndim))
        kappa = np.sum(r * Jr, axis=axes, dtype=np.float64) / np.maximum(
            np.sum(r * r, axis=axes, dtype=np.float64), 1e-300)
        kappa = np.clip(kappa, 0.0, 1.0)
        var = self.noise_var + sigma ** 2 * kappa
        scale = (weight if cap is None else np.minimum(weight, cap(var))) / var
        s += Jr * scale.reshape((-1,) + (1,) * (x.ndim - 1)).astype(dt)
        return s

    def score_jvp(self, x, sigma, v):
        """``∇s(x; σ) · v`` per chain: the prior's exact vector-Jacobian product
        (``prior.score_vjp``, the network's backward pass; equal to the Jacobian-vector
        product because the Jacobian of a score is a Hessian, symmetric). Counted as two
        score evaluations (a forward pass keeping the activations and a backward pass)."""
        vjp = getattr(self.prior, "score_vjp", None)
        if vjp is None:
            raise NotImplementedError(
                f"the Tweedie-guided samplers (dps, ode) need prior.score_vjp(x, sigma, v); "
                f"{type(self.prior).__name__} has none.")
        self.n_evals += 2
        return np.asarray(vjp(x, sigma, v, rng=self.rng), dtype=self.dtype)


class _PreconditionedMass:
    """HMC mass matrix ``M = A*A/σ_n² + c I`` (the data term plus the prior's curvature
    bound): momenta ``p = A*ξ₁/σ_n + √c ξ₂`` and velocities ``M⁻¹p`` by CG."""

    def __init__(self, problem, shift):
        self.problem, self.shift = problem, shift

    def sample(self, x, *, rng):
        return self.problem.gram_noise(x.shape[0], self.shift)

    def solve(self, p):
        return self.problem.solve(p, 1.0 / self.problem.noise_var, self.shift)


def _result(problem, res):
    return res.samples, res.samples.mean(axis=0), problem.n_evals, res.trace


@renamed_arguments(eps="step_size")
def hmc(problem: Problem, x: np.ndarray, sigmas: np.ndarray, *, steps_per_sigma: int,
        step_size: float, n_leapfrog: int = 5, mass: str = "preconditioned",
        target_acceptance: float | None = None, trace_every: int | None = None,
        callback: Callback = None) -> Result:
    """Annealed HMC on ``π_i ∝ p_σi(x) p(y|x)`` (:func:`fastscore.sampling.annealed_hmc`).

    Metropolis-adjusted when the prior has a log-density, unadjusted otherwise. With
    ``mass="preconditioned"`` the mass matrix is ``A*A/σ_n² + L_prior(σ_i) I`` and the
    initial leapfrog step is `step_size`; with ``"identity"`` it is
    ``step_size / sqrt(L_i)``,
    ``L_i = ‖A‖²/σ_n² + L_prior(σ_i)``.
    """
    prior, shape = problem.prior, problem.image_shape
    if mass == "preconditioned":
        mass_fn = lambda s: _PreconditionedMass(problem, prior.lipschitz(shape, s))
        step = lambda s: step_size
    else:
        mass_fn = None
        norm2 = problem.operator.norm_squared()
        step = lambda s: step_size / np.sqrt(norm2 / problem.noise_var
                                             + prior.lipschitz(shape, s))
    res = sampling.annealed_hmc(problem.score, sigmas, x, n_steps=steps_per_sigma,
                                n_leapfrog=n_leapfrog, step_size=step,
                                log_density=problem.log_density(), mass=mass_fn,
                                target_acceptance=target_acceptance, rng=problem.rng,
                                callback=callback, trace_every=trace_every)
    return _result(problem, res)


@renamed_arguments(eps="step_size")
def langevin(problem: Problem, x: np.ndarray, sigmas: np.ndarray, *, steps_per_sigma: int,
             step_size: float, trace_every: int | None = None,
             callback: Callback = None) -> Result:
    """Annealed unadjusted Langevin on the tempered posterior score
    (:func:`fastscore.sampling.langevin` per level), step ``α_i = step_size / L_i`` with
    ``L_i = ‖A‖²/(σ_n² + σ_i²) + L_prior(σ_i)``."""
    callback = adapt_callback(callback, "posterior.langevin")
    norm2 = problem.operator.norm_squared()
    states: list[np.ndarray] = []
    t = 0
    for sigma in map(float, sigmas):
        L = norm2 / (problem.noise_var + sigma ** 2) + problem.prior.lipschitz(
            problem.image_shape, sigma)
        alpha = step_size / L

        def cb(k, xk, _, offset=t, info={"sigma": sigma, "step_size": alpha}):  # noqa: B006
            return callback is not None and callback(offset + k, xk, info)

        def drift(z, sigma=sigma):
            return problem.tempered_score(z, sigma)

        res = sampling.langevin(drift, x, steps_per_sigma, alpha, rng=problem.rng,
                                callback=cb, trace_every=trace_every)
        x, t = res.samples, t + res.n_steps
        if res.trace is not None:
            states.append(res.trace[1:] if states else res.trace)
        if res.n_steps < steps_per_sigma:
            break
    trace = np.concatenate(states) if states else None
    return x, x.mean(axis=0), problem.n_evals, trace


@renamed_arguments(eps="snr")
def pc(problem: Problem, x: np.ndarray, sigmas: np.ndarray, *, snr: float,
       trace_every: int | None = None, callback: Callback = None) -> Result:
    """Predictor–corrector on the tempered posterior score: a reverse-SDE predictor step
    between consecutive levels of the (refined) ladder, then one Langevin corrector step
    with signal-to-noise ratio `snr` (:func:`fastscore.sampling.predictor_corrector`); two
    score evaluations per level.

    The prior score is taken explicitly and the likelihood term implicitly
    (:meth:`Problem.data_step`, one CG solve per update, no score evaluation): an explicit
    step h on the likelihood is stable only for ``h ‖A‖²/(σ_n² + σ²) < 2``, which a
    reverse-SDE step ``h = σ_i² − σ_{i+1}²`` breaks by orders of magnitude on stiff
    problems (sparse-view CT with small σ_n); the proximal step is stable for every h.
    """
    res = sampling.predictor_corrector(problem.prior_score, sigmas, x, n_corrector=1,
                                       snr=snr, final_denoise=False,
                                       data_step=problem.data_step, rng=problem.rng,
                                       callback=callback, trace_every=trace_every)
    return _result(problem, res)


def ode(problem, x, sigmas, *, trace_every=None, callback=None):
    """Probability-flow ODE (Heun) on the guided posterior score
    (:meth:`Problem.guided_score`, 3 score evaluations per call, 6 per step); the
    randomness is the start's (:func:`fastscore.sampling.probability_flow`).

    Step guard as in :func:`dps`: an evaluation at σ moves x by ``h_σ = |σ_k − σ_{k+1}| σ``
    times the score (the larger of the two intervals σ bounds), so the guidance weight is
    ``min(1, (σ_n² + σ²κ)/(h_σ ‖A‖²))`` per chain — 1 where the likelihood is mild, capped
    where it is stiff (sparse-view CT, where the uncapped step diverges)."""
    norm2 = problem.operator.norm_squared()
    steps: dict[float, float] = {}
    for a, b in zip(sigmas[:-1], sigmas[1:]):
        for level in (float(a), float(b)):
            steps[level] = max(steps.get(level, 0.0), abs(float(a) - float(b)) * level)

    def guided(z, sigma):
        h = max(steps.get(float(sigma), 0.0), 1e-300)
        return problem.guided_score(z, sigma, 1.0, cap=lambda var: var / (h * norm2))
    res = sampling.probability_flow(guided, sigmas, x, callback=callback,
                                    trace_every=trace_every)
    return _result(problem, res)


def _trace_and_callback(trace_every, callback):
    callback = adapt_callback(callback, "posterior_sample")
    states = []

    def report(k, x, info):
        if trace_every and k % trace_every == 0:
            states.append(x.copy())
        return callback is not None and callback(k, x, info)
    return states, report


@renamed_arguments(eps="guidance")
def dps(problem: Problem, x: np.ndarray, sigmas: np.ndarray, *, guidance: float,
        trace_every: int | None = None, callback: Callback = None) -> Result:
    """Diffusion posterior sampling: the reverse VE SDE (predictor only) with the
    likelihood gradient taken through the Tweedie mean,

    .. math::

        x ← x + (σ_i^2 − σ_{i+1}^2)\\big(s(x; σ_i) + ζ g\\big)
              + \\sqrt{σ_i^2 − σ_{i+1}^2}\\, z

    with g of :meth:`Problem.guided_score` (ζ = `guidance`; three score evaluations per
    level). Where DPS normalises its step by ``ζ/‖y − A x̂₀‖``, the likelihood variance
    here is ``σ_n² + σ² κ`` (the Tweedie covariance along the residual), exact for an
    isotropic Gaussian prior and A = I.

    Step guard: the guidance term's Jacobian is ``−ζ Jᵀ A*A J/(σ_n² + σ²κ)``, of norm at
    most ``ζ ‖A‖²/(σ_n² + σ²κ)`` (``‖J‖ ≤ 1`` for a Tweedie Jacobian ``Cov[x₀|x]/σ²`` of a
    log-concave prior), and the explicit step ``h = σ_i² − σ_{i+1}²`` is monotone along every
    data direction only while ``h ζ ‖A‖²/(σ_n² + σ²κ) ≤ 1``. The weight is therefore
    ``ζ_i = min(ζ, (σ_n² + σ_i² κ)/(h ‖A‖²))`` per chain: unchanged where the likelihood is
    mild, capped where it is stiff (sparse-view CT at small σ_n, where the uncapped step
    diverges).
    """
    norm2 = problem.operator.norm_squared()
    steps = {float(a): float(a) ** 2 - float(b) ** 2 for a, b in zip(sigmas[:-1], sigmas[1:])}

    def guided(z, sigma):
        h = max(steps.get(float(sigma), 0.0), 1e-300)
        return problem.guided_score(z, sigma, guidance, cap=lambda var: var / (h * norm2))
    res = sampling.predictor_corrector(
        guided, sigmas, x, n_corrector=0,
        final_denoise=False, rng=problem.rng, callback=callback, trace_every=trace_every)
    return _result(problem, res)


@renamed_arguments(eps="noise_mix")
def diffpir(problem: Problem, x: np.ndarray, sigmas: np.ndarray, *, noise_mix: float,
            lam: float = 1.0, trace_every: int | None = None,
            callback: Callback = None) -> Result:
    """DiffPIR: half-quadratic splitting inside the reverse diffusion (VE form).

    At level σ_i: Tweedie ``x̂₀ = x + σ_i² s(x; σ_i)``; data step
    ``z = argmin ‖y − A z‖²/(2σ_n²) + λ‖z − x̂₀‖²/(2σ_i²)`` (preconditioned CG); then
    re-noising to the next level with the effective noise ``ε̂ = (x − z)/σ_i`` and fresh
    noise ξ mixed by ζ = `noise_mix`: ``x ← z + σ_{i+1}(\\sqrt{1 − ζ} ε̂ + \\sqrt{ζ} ξ)``. The
    result is the last data-consistent estimate z. One score evaluation per level.
    """
    states, report = _trace_and_callback(trace_every, callback)
    lik, dt = problem.likelihood, problem.dtype
    inv_n2 = 1.0 / problem.noise_var
    data_rhs = (problem.operator.adjoint(lik.y).real * inv_n2).astype(dt)
    z = x
    for i in range(len(sigmas)):
        sigma = float(sigmas[i])
        x0 = x + dt.type(sigma ** 2) * problem.prior_score(x, sigma)
        shift = lam / sigma ** 2
        z = problem.solve(data_rhs + dt.type(shift) * x0, inv_n2, shift, x0.copy())
        if i + 1 < len(sigmas):
            nxt = float(sigmas[i + 1])
            noise = problem.rng.standard_normal(x.shape, dtype=dt)
            x = z + dt.type(nxt) * (dt.type(np.sqrt(1 - noise_mix) / sigma) * (x - z)
                                    + dt.type(np.sqrt(noise_mix)) * noise)
            sampling._check_finite_state(x, i + 1, "diffpir")
            if report(i + 1, x, {"sigma": nxt, "step_size": shift}):
                break
    return z, z.mean(axis=0), problem.n_evals, np.stack(states) if states else None


from ._laplace import laplace

"""Reverse-diffusion samplers of the variance-exploding SDE (re-exported by
:mod:`fastscore.sampling`).

The VE SDE ``dx = sqrt(d[σ²]/dt) dw`` adds Gaussian noise of growing level σ to the data;
its marginals are ``p_σ = p * N(0, σ² I)``, whose score the noise-conditional model gives.
Running it backwards from σ_max to σ_min (Song et al. 2021):

- :func:`predictor_corrector` — the reverse SDE discretised on the ladder (predictor)
  followed by Langevin steps at each level with the signal-to-noise step rule (corrector);
- :func:`probability_flow` — the deterministic ODE ``dx/dσ = −σ s(x; σ)`` with the same
  marginals, integrated by Heun's method; run on an increasing ladder it encodes data to
  noise, on the reversed ladder it decodes back.
"""

import numpy as np

from ._deprecation import adapt_callback
from ._validation import check_int, check_rng, check_scalar

__all__ = ["predictor_corrector", "probability_flow"]


def predictor_corrector(score, sigmas, x0, *, n_corrector=1, snr=0.16, final_denoise=True,
                        data_step=None, rng=None, callback=None, trace_every=None):
    """Predictor–corrector sampling of the reverse VE SDE (Song et al. 2021, Alg. 2).

    For i = 1 … L, the predictor moves the chains from level σ_{i−1} to σ_i by the reverse
    SDE (Euler–Maruyama on the ladder; skipped for i = 1, where `x0` should be a draw at
    σ_1):

    .. math::  x ← x + (σ_{i-1}^2 − σ_i^2)\\, s(x; σ_{i-1}) + \\sqrt{σ_{i-1}^2 − σ_i^2}\\; z

    then `n_corrector` Langevin steps at σ_i with the signal-to-noise rule, per chain,

    .. math::

        x ← x + ε\\, s(x; σ_i) + \\sqrt{2ε}\\; z, \\qquad
        ε = 2 \\left(r \\frac{‖z‖}{‖s(x; σ_i)‖}\\right)^2

    (r = `snr`). With `final_denoise` the result is the Tweedie estimate
    ``x + σ_L² s(x; σ_L)``.

    With `data_step` the drift is split into an explicit part (`score`, e.g. the prior) and
    a stiff part ``−∇ℓ_σ`` (e.g. a likelihood) taken implicitly: each update above, of step
    h (``σ_{i−1}² − σ_i²`` or ε) and result v, becomes ``x = data_step(v, h, σ)``

    .. math::  x = \\arg\\min_z\\; ℓ_σ(z) + \\frac{‖z − v‖^2}{2h}

    (semi-implicit Euler–Maruyama: the proximal map of h ℓ_σ). For a quadratic ℓ_σ of
    curvature L the explicit step is stable only for h L < 2; the implicit one for every h,
    and it agrees with the explicit step to first order in h.

    Parameters
    ----------
    score : callable
        ``score(x, sigma) -> array of x.shape``, the score of the level-σ marginal.
    sigmas : array_like of shape (L,), non-increasing, > 0
    x0 : array_like of shape (n_chains, ...)
    n_corrector : int >= 0
    snr : float > 0
        r above (0.16 is Song et al.'s value for images; smaller is more accurate and
        slower to mix).
    final_denoise : bool
    data_step : callable, optional
        ``data_step(v, h, sigma) -> x`` of the shape of `v` (the proximal map above); the
        corrector's step rule then uses the explicit score alone.
    rng : None, int or numpy.random.Generator
    callback : callable, optional
        ``callback(k, x, info) -> bool`` after each predictor or corrector update,
        ``info`` with ``sigma``, ``step_size`` (mean over chains) and ``stage``
        ("predictor" or "corrector"); True stops (no final denoising then).
    trace_every : int >= 1, optional

    Returns
    -------
    SamplingResult
        ``n_score_evals`` per chain: (L − 1) + L·n_corrector (+ 1 with the denoising).

    References
    ----------
    Y. Song et al., "Score-based generative modeling through stochastic differential
    equations", ICLR 2021.
    """
    x = _check_x0(x0)
    sigmas = _check_ladder(sigmas)
    callback = adapt_callback(callback, "predictor_corrector")
    n_corrector = check_int(n_corrector, "n_corrector", low=0)
    snr = check_scalar(snr, "snr", low=0, low_inclusive=False)
    rng = check_rng(rng)
    trace = _Trace(trace_every, x)
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    t, evals = 0, 0

    def report(sigma, step, stage):
        nonlocal t
        t += 1
        _check_finite_state(x, t, "predictor_corrector")
        trace.add(t, x)
        return callback is not None and callback(
            t, x, {"sigma": sigma, "step_size": step, "stage": stage})

    for i, sigma in enumerate(map(float, sigmas)):
        if i > 0:
            prev = float(sigmas[i - 1])
            d2 = prev ** 2 - sigma ** 2
            s = _call_score(score, x, prev)
            evals += 1
            with np.errstate(over="ignore", invalid="ignore"):
                x = x + (d2 * s).astype(x.dtype, copy=False)
            x += x.dtype.type(np.sqrt(d2)) * rng.standard_normal(x.shape, dtype=x.dtype)
            if data_step is not None:
                x = _call_data_step(data_step, x, d2, prev)
            if report(sigma, d2, "predictor"):
                return trace.result(x, t, None, evals)
        for _ in range(n_corrector):
            s = _call_score(score, x, sigma)
            evals += 1
            z = rng.standard_normal(x.shape, dtype=x.dtype)
            eps = 2.0 * (snr * _chain_norm(z) / np.maximum(_chain_norm(s), 1e-300)) ** 2
            e = eps.reshape(shape)
            with np.errstate(over="ignore", invalid="ignore"):
                x = x + (e * s).astype(x.dtype, copy=False)
                x += np.sqrt(2.0 * e).astype(x.dtype) * z
            if data_step is not None:
                x = _call_data_step(data_step, x, e, sigma)
            if report(sigma, float(np.mean(eps)), "corrector"):
                return trace.result(x, t, None, evals)
    if final_denoise:
        sigma = float(sigmas[-1])
        x = x + (sigma ** 2 * _call_score(score, x, sigma)).astype(x.dtype, copy=False)
        evals += 1
        _check_finite_state(x, t, "predictor_corrector (final denoising)")
    return trace.result(x, t, None, evals)


def _call_data_step(data_step, v, h, sigma):
    """``data_step(v, h, σ)`` checked; `h` a scalar or one value per chain."""
    out = np.asarray(data_step(v, h, sigma))
    if out.shape != v.shape:
        raise ValueError(f"`data_step` returned shape {out.shape} for chains of shape "
                         f"{v.shape}.")
    return out.astype(v.dtype, copy=False)


def probability_flow(score, sigmas, x0, *, callback=None, trace_every=None):
    """Integrate the probability-flow ODE of the VE SDE along a ladder (Heun's method).

    .. math::  \\frac{dx}{dσ} = −σ\\, s(x; σ)

    From σ_k to σ_{k+1} (h = σ_{k+1} − σ_k): ``d = −σ_k s(x; σ_k)``,
    ``x̃ = x + h d``, ``x ← x + h (d − σ_{k+1} s(x̃; σ_{k+1}))/2`` — second order, two
    score evaluations per step. A decreasing ladder maps a draw of ``p_{σ_1}`` to a draw of
    ``p_{σ_L}`` (decoding, sampling); an increasing ladder maps data to noise (encoding).
    Deterministic: encoding then decoding on the reversed ladder returns the input up to
    the O(h²) discretisation error.

    Parameters
    ----------
    score : callable
        ``score(x, sigma) -> array of x.shape``.
    sigmas : array_like of shape (L,), monotone, > 0
    x0 : array_like of shape (n_chains, ...)
    callback : callable, optional
        ``callback(k, x, info) -> bool`` after each step (info: ``sigma``, ``step_size``);
        True stops.
    trace_every : int >= 1, optional

    Returns
    -------
    SamplingResult
        ``n_score_evals = 2 (L − 1)``.

    References
    ----------
    Y. Song et al., ICLR 2021 (probability flow); T. Karras et al., "Elucidating the design
    space of diffusion-based generative models", NeurIPS 2022 (Heun steps).
    """
    x = _check_x0(x0)
    sigmas = _check_ladder(sigmas, monotone="either")
    callback = adapt_callback(callback, "probability_flow")
    trace = _Trace(trace_every, x)
    evals = 0
    d = None
    for k in range(len(sigmas) - 1):
        s0, s1 = float(sigmas[k]), float(sigmas[k + 1])
        h = s1 - s0
        if d is None:
            d = -s0 * _call_score(score, x, s0)
            evals += 1
        with np.errstate(over="ignore", invalid="ignore"):
            x_euler = x + (h * d).astype(x.dtype, copy=False)
            d1 = -s1 * _call_score(score, x_euler, s1)
            x = x + (0.5 * h * (d + d1)).astype(x.dtype, copy=False)
        evals += 1
        d = None
        _check_finite_state(x, k + 1, "probability_flow")
        trace.add(k + 1, x)
        if callback is not None and callback(k + 1, x, {"sigma": s1, "step_size": h}):
            return trace.result(x, k + 1, None, evals)
    return trace.result(x, len(sigmas) - 1, None, evals)


# Imported last: fastscore.sampling re-exports this module's functions from its own end, so
# either module can be imported first (the helpers are used only when the functions run).
from .sampling import (
    _call_score,
    _chain_norm,
    _check_finite_state,
    _check_ladder,
    _check_x0,
    _Trace,
)

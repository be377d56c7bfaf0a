"""Score-matching objectives and their parameter gradients.

Every objective takes a score model, a parameter vector ``params`` and data ``x`` of shape
``(N, d)`` (one-dimensional data as ``(N, 1)``) and returns ``(loss, grad_params)``: the
loss as a float and its gradient with respect to ``params``, a float64 array of shape
``(model.n_params,)``. Losses are means over the data points (and over noise draws or
projections), so they do not grow with ``N``.

Score-model protocol
--------------------
A model is any object with::

    model.n_params : int; model.get_weights() -> 1-D float array (copy); model.set_weights(theta)
    model.score(x, params, sigma=None) -> (N, d)            s(x; θ) (sigma: None or (N,) noise levels for noise-conditional models)
    model.score_vjp(x, params, grad, sigma=None) -> (n_params,)   Σ_{n,i} grad[n,i] ∂s_i(x_n; θ)/∂θ
    model.jacobian_diagonal(x, params, sigma=None) -> (N, d)      ∂s_i/∂x_i   (needed by ism, rsm)
    model.jacobian_diagonal_vjp(x, params, grad, sigma=None) -> (n_params,)   (ism, rsm gradients)
    optional for sliced_sm: model.jvp(x, params, v, sigma=None) -> (N, d) and model.jvp_vjp(x, params, v, grad, sigma=None) -> (n_params,)

A model that lacks a method an objective needs makes the objective raise
``NotImplementedError`` naming the method and the objective. A model is
*noise-conditional* when it has the attribute ``noise_conditional = True``; it then
receives the per-sample noise levels as ``sigma`` (an ``(N,)`` array) in :func:`dsm` and
:func:`ncsm`. The other objectives (esm, ism, rsm, sliced_sm) always call the model with
``sigma=None``. :class:`fastscore.mixture.GaussianMixtureScoreModel` implements the whole
protocol analytically.

Randomness
----------
:func:`dsm`, :func:`ncsm` and :func:`sliced_sm` draw noise or projections from ``rng``
(``None``, an int seed or a ``numpy.random.Generator``) and nothing else. To minimise one of
them with a deterministic optimiser (``scipy.optimize.minimize(..., jac=True,
method="L-BFGS-B")``) pass an **int seed**: every call then redraws the same noise, so the
objective is a fixed function of ``params``; pass a ``Generator`` for fresh noise per call
(stochastic-gradient training).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._deprecation import keyword_only, warn_deprecated
from ._validation import as_float_array, check_choice, check_int, check_rng, check_scalar
from .invariance import map_back, normalize_patches

__all__ = ["esm", "ism", "rsm", "dsm", "ncsm", "ncsm_loss", "sliced_sm",
           "draw_noise_levels"]


def _require(model, methods, objective):
    for method in methods:
        if not callable(getattr(model, method, None)):
            raise NotImplementedError(
                f"`{objective}` needs `model.{method}(...)`, which "
                f"{type(model).__name__} does not provide.")


def _check_params(model: Any, params: ArrayLike) -> np.ndarray:
    theta = as_float_array(params, "params", ndim=1, finite=True)
    n_params = getattr(model, "n_params", None)
    if n_params is not None and theta.shape != (n_params,):
        raise ValueError(f"`params` must have shape ({n_params},) (model.n_params); "
                         f"got {theta.shape}.")
    return theta


def _check_data(x: ArrayLike) -> np.ndarray:
    return as_float_array(x, "x", ndim=2, finite=True)


def _is_noise_conditional(model):
    return bool(getattr(model, "noise_conditional", False))


def _grad(g):
    return np.asarray(g, dtype=np.float64)


def esm(model, params, x, target_score):
    """Explicit score matching against a known target score.

    .. math::

        L(\\theta) = \\frac1N \\sum_n \\tfrac12 \\| s(x_n;\\theta) - t(x_n) \\|^2

    Parameters
    ----------
    model : score model (protocol in the module docstring)
    params : ndarray of shape (n_params,)
        :math:`\\theta`.
    x : ndarray of shape (N, d)
        Points :math:`x_n`, finite.
    target_score : ndarray of shape (N, d)
        :math:`t(x_n)`, e.g. the true score or a KDE score at ``x``.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), float64
    """
    _require(model, ("score", "score_vjp"), "esm")
    theta, x = _check_params(model, params), _check_data(x)
    target = as_float_array(target_score, "target_score", ndim=2, finite=True)
    if target.shape != x.shape:
        raise ValueError(f"`target_score` must have the shape of x, {x.shape}; "
                         f"got {target.shape}.")
    n = x.shape[0]
    residual = model.score(x, theta) - target
    loss = 0.5 * np.sum(residual ** 2) / n
    return float(loss), _grad(model.score_vjp(x, theta, residual / n))


def _ism_terms(model, theta, x, objective):
    _require(model, ("score", "score_vjp", "jacobian_diagonal", "jacobian_diagonal_vjp"),
             objective)
    return model.score(x, theta), model.jacobian_diagonal(x, theta)


def ism(model, params, x):
    """Implicit score matching (Hyvärinen 2005): no target score needed.

    .. math::

        L(\\theta) = \\frac1N \\sum_n \\sum_i \\Big[ \\partial_i s_i(x_n;\\theta)
        + \\tfrac12 s_i(x_n;\\theta)^2 \\Big]

    equal to the explicit objective up to a constant independent of :math:`\\theta`
    (for data whose density vanishes at infinity). Needs ``jacobian_diagonal`` and its VJP.

    Parameters
    ----------
    model : score model
    params : ndarray of shape (n_params,)
    x : ndarray of shape (N, d)

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), float64

    References
    ----------
    A. Hyvärinen, "Estimation of non-normalized statistical models by score matching",
    JMLR 6, 2005.
    """
    return _curvature_penalised(model, params, x, 0.0, "ism")


def rsm(model, params, x, lam):
    """Regularised score matching (Kingma & LeCun 2010): ISM plus a curvature penalty.

    .. math::

        L(\\theta) = \\frac1N \\sum_n \\sum_i \\Big[ \\partial_i s_i + \\tfrac12 s_i^2
        + \\lambda\\, (\\partial_i s_i)^2 \\Big](x_n;\\theta)

    The penalty is the second-order term of the ISM objective averaged over small Gaussian
    perturbations of the data; it keeps ISM from overfitting spiky densities to few samples.

    Parameters
    ----------
    model : score model
    params : ndarray of shape (n_params,)
    x : ndarray of shape (N, d)
    lam : float >= 0
        :math:`\\lambda` (``lam = 0`` is ISM).

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), float64

    References
    ----------
    D. P. Kingma and Y. LeCun, "Regularized estimation of image statistics by score
    matching", NeurIPS 2010.
    """
    return _curvature_penalised(model, params, x, check_scalar(lam, "lam", low=0), "rsm")


def _curvature_penalised(model, params, x, lam, objective):
    """ISM plus λ Σ (∂_i s_i)² and its gradient (λ = 0: ISM)."""
    theta, x = _check_params(model, params), _check_data(x)
    s, jac_diag = _ism_terms(model, theta, x, objective)
    n = x.shape[0]
    loss = (np.sum(jac_diag) + 0.5 * np.sum(s ** 2) + lam * np.sum(jac_diag ** 2)) / n
    grad = (model.jacobian_diagonal_vjp(x, theta, (1.0 + 2.0 * lam * jac_diag) / n)
            + model.score_vjp(x, theta, s / n))
    return float(loss), _grad(grad)


def _noisy_copies(x, n_noise, rng):
    """(x repeated n_noise times, standard normal z), both of shape (n_noise·N, d)."""
    z = rng.standard_normal((n_noise,) + x.shape).astype(x.dtype, copy=False)
    return np.broadcast_to(x, z.shape).reshape(-1, x.shape[1]), z.reshape(-1, x.shape[1])


@keyword_only("n_noise", "rng")
def dsm(model: Any, params: ArrayLike, x: ArrayLike, sigma: float, *, n_noise: int = 1,
        rng: int | np.random.Generator | None = None) -> tuple[float, np.ndarray]:
    """Denoising score matching at one noise level (Vincent 2011).

    .. math::

        L(\\theta) = \\frac{1}{NM} \\sum_{n,m} \\tfrac12 \\Big\\| s(\\tilde x_{nm};\\theta)
        + \\frac{\\tilde x_{nm} - x_n}{\\sigma^2} \\Big\\|^2, \\qquad
        \\tilde x_{nm} = x_n + \\sigma z_{nm}, \\quad z_{nm} \\sim \\mathcal N(0, I)

    Its minimiser is the score of the noisy density :math:`p_\\sigma = p * \\mathcal
    N(0, \\sigma^2 I)`; it equals explicit score matching against :math:`\\nabla \\log
    p_\\sigma` up to a constant. A noise-conditional model is called with
    ``sigma = full(N·M, sigma)``.

    Parameters
    ----------
    model : score model
    params : ndarray of shape (n_params,)
    x : ndarray of shape (N, d)
        Clean data :math:`x_n`.
    sigma : float > 0
        Noise standard deviation :math:`\\sigma`.
    n_noise : int >= 1, default 1
        Noise draws per data point, :math:`M`.
    rng : None, int or numpy.random.Generator
        Source of :math:`z`, drawn as ``standard_normal((M, N, d))``.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), float64

    References
    ----------
    P. Vincent, "A connection between score matching and denoising autoencoders",
    Neural Computation 23(7), 2011.
    """
    _require(model, ("score", "score_vjp"), "dsm")
    theta, x = _check_params(model, params), _check_data(x)
    sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
    n_noise = check_int(n_noise, "n_noise", low=1)
    rng = check_rng(rng)
    x_rep, z = _noisy_copies(x, n_noise, rng)
    x_noisy = x_rep + sigma * z
    sig = np.full(x_noisy.shape[0], sigma) if _is_noise_conditional(model) else None
    residual = model.score(x_noisy, theta, sigma=sig) + z / sigma   # (x~ - x)/sigma^2 = z/sigma
    count = x_noisy.shape[0]
    loss = 0.5 * np.sum(residual ** 2) / count
    return float(loss), _grad(model.score_vjp(x_noisy, theta, residual / count, sigma=sig))


def draw_noise_levels(size, rng, *, sigma_range=None, ladder=None):
    """Noise levels σ for `size` samples: log-uniform over a range, or uniform over a ladder.

    .. math::

        \\log σ = \\log σ_{\\min} + u\\,(\\log σ_{\\max} - \\log σ_{\\min}),
        \\quad u \\sim \\mathcal U[0, 1) \\qquad\\text{or}\\qquad
        σ = σ_k,\\quad k \\sim \\mathcal U\\{1, …, L\\}

    The one σ sampler of :func:`ncsm` and :func:`fastscore.train.fit_patch_score`.

    Parameters
    ----------
    size : int >= 0
    rng : numpy.random.Generator
        One ``rng.random(size)`` (range) or ``rng.integers(0, L, size)`` (ladder) draw.
    sigma_range : (float, float), checked ``0 < σ_min <= σ_max``
    ladder : ndarray of shape (L,), checked positive
        Exactly one of `sigma_range` and `ladder`.

    Returns
    -------
    ndarray of shape (size,), float64
    """
    if ladder is not None:
        return np.asarray(ladder, dtype=np.float64)[rng.integers(0, len(ladder), size=size)]
    log_lo, log_hi = math.log(sigma_range[0]), math.log(sigma_range[1])
    return np.exp(log_lo + rng.random(size) * (log_hi - log_lo))


def _draw_sigmas(sigmas, sigma_range, size, rng):
    """Per-sample noise levels of :func:`ncsm`: log-uniform over `sigma_range`, else uniform
    over the ladder `sigmas`."""
    if sigma_range is not None:
        if np.shape(sigma_range) != (2,):
            raise ValueError("`sigma_range` must be (sigma_min, sigma_max); got "
                             f"{sigma_range!r}.")
        lo = check_scalar(sigma_range[0], "sigma_range[0] (sigma_min)", low=0,
                          low_inclusive=False)
        hi = check_scalar(sigma_range[1], "sigma_range[1] (sigma_max)", low=lo)
        return draw_noise_levels(size, rng, sigma_range=(lo, hi))
    ladder = as_float_array(sigmas, "sigmas", ndim=1, finite=True).astype(np.float64)
    if np.any(ladder <= 0):
        raise ValueError(f"`sigmas` must be positive; got minimum {ladder.min()!r}.")
    return draw_noise_levels(size, rng, ladder=ladder)


class _ScaledScore:
    """The scaled score ``h = σ s(x; σ)`` of a model and the parameter gradient of
    ``Σ g·h``: the one interface of :func:`ncsm` to the three kinds of model it trains.

    - ``params`` given, noise-conditional model: ``h = σ · model.score(x, params, sigma=σ)``,
      gradient ``model.score_vjp(x, params, σ g, sigma=σ)``;
    - ``params`` given, plain model: the :math:`\\tilde s/\\sigma` parametrisation, so
      ``h = model.score(x, params)`` and the gradient ``model.score_vjp(x, params, g)``;
    - ``params=None``: the model's own weights through its training passes
      (``scaled_score(keep=True)`` / ``scaled_score_backward``), no copy of the weights,
      the gradient written into ``model.net.grad`` and returned as that buffer.
    """

    def __init__(self, model, params):
        self.model, self.params = model, params
        self.conditional = _is_noise_conditional(model)

    def forward(self, x, sigma, *, keep):
        self.x, self.sigma = x, sigma
        if self.params is None:
            return self.model.scaled_score(x, sigma, keep=keep)
        if self.conditional:
            return sigma[:, None] * self.model.score(x, self.params, sigma=sigma)
        return self.model.score(x, self.params)

    def backward(self, g):
        if self.params is None:
            self.model.scaled_score_backward(g)
            return self.model.net.grad
        if self.conditional:
            return _grad(self.model.score_vjp(self.x, self.params, g * self.sigma[:, None],
                                              sigma=self.sigma))
        return _grad(self.model.score_vjp(self.x, self.params, g))


def _check_draws(draws, x):
    """The given ``(sigma, noise)`` of :func:`ncsm`: levels (N,) > 0 and noise (N, d)."""
    if not isinstance(draws, tuple) or len(draws) != 2:
        raise TypeError("`draws` must be a tuple (sigma, noise); got "
                        f"{type(draws).__name__}.")
    sigma = as_float_array(draws[0], "draws[0] (sigma)", ndim=1)
    noise = as_float_array(draws[1], "draws[1] (noise)", ndim=2)
    if sigma.shape != x.shape[:1] or noise.shape != x.shape:
        raise ValueError(f"`draws` must be (sigma of shape {x.shape[:1]}, noise of shape "
                         f"{x.shape}) for `x` of shape {x.shape}; got {sigma.shape} and "
                         f"{noise.shape}.")
    return sigma, noise


@keyword_only("weighting", "n_noise", "rng")
def ncsm(model: Any, params: ArrayLike | None, x: ArrayLike,
         sigmas: ArrayLike | None = None, *, sigma_range: tuple[float, float] | None = None,
         draws: tuple[ArrayLike, ArrayLike] | None = None, weighting: str = "sigma2",
         n_noise: int = 1, rng: int | np.random.Generator | None = None,
         grad: bool = True, dc: bool = False, contrast: bool = False,
         contrast_eps: float = 1e-2) -> tuple[float, np.ndarray | None]:
    """Noise-conditional score matching over many noise levels (Song & Ermon 2019).

    Each noisy copy :math:`\\tilde x_{nm} = x_n + \\sigma_{nm} z_{nm}` gets its own noise
    level :math:`\\sigma_{nm}`, drawn uniformly from a ladder (`sigmas`), log-uniformly
    from a range (`sigma_range`), or given with its noise (`draws`):

    .. math::

        L(\\theta) = \\frac{1}{NM} \\sum_{n,m} \\frac{\\lambda(\\sigma_{nm})}{\\sigma_{nm}^2}
        \\, \\tfrac12 \\Big\\| \\sigma_{nm}\\, s(\\tilde x_{nm}; \\sigma_{nm}, \\theta)
        + z_{nm} \\Big\\|^2, \\qquad \\lambda(\\sigma) = \\sigma^2 \\ (\\text{"sigma2"})
        \\text{ or } 1 \\ (\\text{"uniform"})

    (the residual of DSM, :math:`s + (\\tilde x - x)/\\sigma^2`, times :math:`\\sigma`).
    The score at level :math:`\\sigma` is

    - for a noise-conditional model (``model.noise_conditional`` true):
      ``model.score(x~, params, sigma=σ_nm)``;
    - otherwise the parametrisation :math:`s(\\tilde x; \\sigma, \\theta) =
      \\tilde s(\\tilde x; \\theta)/\\sigma` with :math:`\\tilde s` = ``model.score(x~,
      params)``: the model learns :math:`\\sigma` times the noisy score, which for
      :math:`\\sigma`-weighting makes every term :math:`\\tfrac12\\|\\tilde s(\\tilde x) +
      z\\|^2` of the same scale. To use such a model at level :math:`\\sigma`, divide its
      score by :math:`\\sigma`.

    With `dc` / `contrast` the score is the invariant composite ``s(v) = J s̃(u(v); σ_u)``
    of :mod:`fastscore.invariance` (the model is s̃); the gradient flows through ``J``.
    This one function is also the training loss of :func:`fastscore.train.fit_patch_score`
    (``params=None``, given `draws`).

    Parameters
    ----------
    model : score model
    params : ndarray of shape (n_params,) or None
        The parameters θ. ``None``: the model's own weights through its training passes
        (a :class:`fastscore.noise_conditional.NoiseConditionalScore`: ``scaled_score``
        and ``scaled_score_backward``), without copying them; the gradient is then the
        network's buffer ``model.net.grad`` (overwritten by the next call).
    x : ndarray of shape (N, d)
        Clean data.
    sigmas : array_like of shape (L,), optional
        A noise ladder :math:`\\sigma_1, …, \\sigma_L > 0` (any sequence or array; a
        scalar is a one-level ladder), each noisy copy drawing one level uniformly.
        (Deprecated: a tuple of two is read as `sigma_range`, with a warning.)
    sigma_range : (sigma_min, sigma_max), optional
        A range instead of a ladder: levels drawn log-uniformly in
        :math:`[\\sigma_{min}, \\sigma_{max}]`.
    draws : (ndarray of shape (N,), ndarray of shape (N, d)), optional
        Given levels :math:`\\sigma_n` and unit noise :math:`z_n` (one copy per point,
        `rng` unused). Exactly one of `sigmas`, `sigma_range`, `draws`.
    weighting : {"sigma2", "uniform"}, default "sigma2"
        :math:`\\lambda(\\sigma)`.
    n_noise : int >= 1, default 1
        Noisy copies per data point, :math:`M` (1 with `draws`).
    rng : None, int or numpy.random.Generator
        Levels are drawn first (shape ``(M·N,)``, by :func:`draw_noise_levels`), then
        ``standard_normal((M, N, d))``.
    grad : bool, default True
        Also compute the gradient (``False``: returned as None; with ``params=None`` it is
        also skipped, the buffer left as it was, when the loss is not finite).
    dc, contrast : bool, default False
        Train the invariant composite (patch mean removed / contrast normalised).
    contrast_eps : float, default 1e-2
        Contrast floor of the normalisation.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,) or None
        float64 for given `params`; the network's gradient buffer for ``params=None``.

    References
    ----------
    Y. Song and S. Ermon, "Generative modeling by estimating gradients of the data
    distribution", NeurIPS 2019; "Improved techniques for training score-based generative
    models", NeurIPS 2020 (the :math:`\\tilde s/\\sigma` parametrisation).
    """
    if params is None:
        _require(model, ("scaled_score", "scaled_score_backward"), "ncsm(params=None)")
        theta, x = None, as_float_array(x, "x", ndim=2)
    else:
        _require(model, ("score", "score_vjp"), "ncsm")
        theta, x = _check_params(model, params), _check_data(x)
    check_choice(weighting, "weighting", ("sigma2", "uniform"))
    n_noise = check_int(n_noise, "n_noise", low=1)
    if isinstance(sigmas, tuple) and len(sigmas) == 2 and sigma_range is None:
        warn_deprecated("ncsm(): a tuple of two `sigmas` as a (min, max) range is "
                        "deprecated; use sigma_range=(sigma_min, sigma_max) (a ladder is "
                        "any other array).")
        sigmas, sigma_range = None, sigmas
    if sum(arg is not None for arg in (sigmas, sigma_range, draws)) != 1:
        raise TypeError("ncsm() takes exactly one of `sigmas` (a ladder), `sigma_range` "
                        "(sigma_min, sigma_max) and `draws` (sigma, noise).")
    if sigmas is not None and not isinstance(sigmas, (tuple, list, np.ndarray,
                                                      numbers.Real)):
        raise TypeError("`sigmas` must be an array of noise levels; got "
                        f"{type(sigmas).__name__}.")
    if draws is not None:
        if n_noise != 1:
            raise ValueError(f"`draws` gives one noisy copy per point; got n_noise={n_noise}.")
        sig, z = _check_draws(draws, x)
    else:
        rng = check_rng(rng)
        sig = _draw_sigmas(sigmas if not isinstance(sigmas, numbers.Real) else [sigmas],
                           sigma_range, n_noise * x.shape[0], rng)
        x, z = _noisy_copies(x, n_noise, rng)
    weight = None if weighting == "sigma2" else 1.0 / sig ** 2      # λ(σ)/σ²
    return _ncsm_residual(_ScaledScore(model, theta), x, sig, z, weight, grad=grad, dc=dc,
                          contrast=contrast, contrast_eps=contrast_eps)


def _ncsm_residual(scaled, patches, sigma, noise, weight, *, grad, dc, contrast,
                   contrast_eps):
    """Loss ``½ mean w ‖σ s(v + σ z; σ) + z‖²`` (w = 1 if `weight` is None) and its
    parameter gradient through ``scaled`` (a :class:`_ScaledScore`)."""
    noisy = patches + sigma[:, None] * noise
    if not (dc or contrast):
        residual = scaled.forward(noisy, sigma, keep=grad) + noise    # σ s(ṽ; σ) + z
    else:
        u, sigma_u, c = normalize_patches(noisy, sigma, dc=dc, contrast=contrast,
                                          contrast_eps=contrast_eps)
        h = scaled.forward(u, sigma_u, keep=grad)                   # σ_u s̃(u; σ_u)
        ratio = (sigma / sigma_u)[:, None]                          # 1, or c
        residual = map_back(h * ratio, u, c) + noise                # σ J s̃ + z
    norms = np.einsum("ij,ij->i", residual, residual, dtype=np.float64)
    loss = 0.5 * float(np.mean(norms if weight is None else weight * norms))
    if not grad or (scaled.params is None and not math.isfinite(loss)):
        return loss, None                   # (training stops on a non-finite loss)
    residual *= residual.dtype.type(1.0 / len(patches))
    if weight is not None:
        residual *= weight.astype(residual.dtype)[:, None]
    if dc or contrast:                                              # ∂/∂h = (σ/σ_u) J r
        residual = map_back(residual, u, c) * ratio
    return loss, scaled.backward(residual)


def ncsm_loss(model, patches, sigma, noise, *, grad=True, dc=False, contrast=False,
              contrast_eps=1e-2):
    """Deprecated: ``ncsm(model, None, patches, draws=(sigma, noise), ...)[0]``.

    The training loss of a noise-conditional model on given levels and noise (gradient
    into ``model.net.grad``) is :func:`ncsm` with ``params=None``; this name is removed in
    fastscore 0.2.
    """
    warn_deprecated("losses.ncsm_loss(model, patches, sigma, noise) is deprecated; use "
                    "losses.ncsm(model, None, patches, draws=(sigma, noise))[0].")
    return ncsm(model, None, patches, draws=(sigma, noise), grad=grad, dc=dc,
                contrast=contrast, contrast_eps=contrast_eps)[0]


@keyword_only("n_projections", "rng")
def sliced_sm(model: Any, params: ArrayLike, x: ArrayLike, *, n_projections: int = 1,
              rng: int | np.random.Generator | None = None,
              variance_reduction: bool = False) -> tuple[float, np.ndarray]:
    """Sliced score matching (Song et al. 2019): ISM along random directions.

    .. math::

        L(\\theta) = \\frac{1}{NP} \\sum_{n,p} \\Big[ v_{np}^\\top J(x_n;\\theta)\\, v_{np}
        + \\tfrac12 \\big(v_{np}^\\top s(x_n;\\theta)\\big)^2 \\Big], \\qquad
        v_{np} \\sim \\mathcal N(0, I)

    with :math:`J = \\partial s/\\partial x`. Its expectation over :math:`v` is the ISM
    objective, at the cost of one Jacobian-vector product per projection instead of the
    full Jacobian diagonal, which is what makes it scale with the dimension. With
    ``variance_reduction=True`` (SSM-VR) the second term is replaced by its expectation
    :math:`\\tfrac12 \\|s\\|^2`. Needs ``model.jvp`` and ``model.jvp_vjp``.

    Parameters
    ----------
    model : score model
    params : ndarray of shape (n_params,)
    x : ndarray of shape (N, d)
    n_projections : int >= 1, default 1
        :math:`P`, projections per data point.
    rng : None, int or numpy.random.Generator
        Source of :math:`v`, drawn as ``standard_normal((P, N, d))``.
    variance_reduction : bool, default False

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), float64

    References
    ----------
    Y. Song, S. Garg, J. Shi and S. Ermon, "Sliced score matching: a scalable approach to
    density and score estimation", UAI 2019.
    """
    _require(model, ("score", "score_vjp", "jvp", "jvp_vjp"), "sliced_sm")
    theta, x = _check_params(model, params), _check_data(x)
    n_projections = check_int(n_projections, "n_projections", low=1)
    rng = check_rng(rng)
    x_rep, v = _noisy_copies(x, n_projections, rng)
    count = x_rep.shape[0]
    s = model.score(x_rep, theta)
    jv = model.jvp(x_rep, theta, v)
    curvature = np.sum(v * jv)
    if variance_reduction:
        loss = (curvature + 0.5 * np.sum(s ** 2)) / count
        s_bar = s / count
    else:
        vs = np.sum(v * s, axis=1, keepdims=True)
        loss = (curvature + 0.5 * np.sum(vs ** 2)) / count
        s_bar = vs * v / count
    grad = model.jvp_vjp(x_rep, theta, v, v / count) + model.score_vjp(x_rep, theta, s_bar)
    return float(loss), _grad(grad)

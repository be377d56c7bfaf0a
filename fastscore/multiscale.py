"""Multi-scale priors: one image prior applied on the levels of a Haar (mean) pyramid.

Level ``l`` of the pyramid is ``D_l = D^l``, where ``D`` averages the blocks of 2 pixels
per axis (the Haar approximation band up to scale; a block cut by an odd border averages
the pixels it has). The prior's log-density is the weighted sum of the level priors, and
its score follows by the chain rule with the exact adjoint ``D_lᵀ``:

.. math::  \\log p(x) = \\sum_l w_l \\log p_l(D_l x), \\qquad
           s(x; σ) = \\sum_l w_l\\, D_l^\\top s(D_l x;\\ σ_l), \\quad
           σ_l = σ / 2^{l\\,n/2}

(``n`` spatial axes: averaging ``2ⁿ`` pixels divides white noise by ``2^{n/2}``). With
weights summing to one, Tweedie's step ``x + σ² s(x; σ)`` adds the levels' denoising
corrections, each brought back to the fine grid, in those proportions.

:class:`MultiScaleFusion` combines the levels' denoisers by frequency band instead: the
coarse level's estimate replaces the coarse band of the fine one (see the class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_float_array, check_int, check_scalar
from .prior import _Prior

__all__ = ["MultiScaleFusion", "MultiScalePrior", "mean_pool", "mean_pool_adjoint",
           "upsample_linear"]


def _spatial(arr, ndim):
    return arr.shape[arr.ndim - ndim:]


def _counts(shape):
    """Pixels per block of the pooled grid (shape of the pooled image)."""
    out = np.ones(1)
    for n in shape:
        per_axis = np.full((n + 1) // 2, 2.0)
        if n % 2:
            per_axis[-1] = 1.0
        out = np.multiply.outer(out, per_axis)
    return out.reshape(tuple((n + 1) // 2 for n in shape))


def _check_pyramid_input(x, ndim, levels):
    """`x` as a float array with `ndim` spatial axes large enough for `levels` levels."""
    arr = as_float_array(x, "x", finite=True)
    if arr.ndim < ndim:
        raise ValueError(f"`x` must have at least {ndim} axes; got shape {arr.shape}.")
    if min(_spatial(arr, ndim)) < 2 ** (levels - 1):
        raise ValueError(f"`x` of shape {arr.shape} is too small for {levels} levels.")
    return arr


def mean_pool(x: ArrayLike, ndim: int = 2) -> NDArray[Any]:
    """``D x``: means of 2-pixel blocks along the last `ndim` axes (leading axes batch).

    Shape ``(…, n_1, …, n_k) → (…, ⌈n_1/2⌉, …, ⌈n_k/2⌉)``; a block cut by an odd border
    averages the pixels it has.
    """
    arr = as_float_array(x, "x", finite=True)
    ndim = check_int(ndim, "ndim", low=1, high=arr.ndim)
    shape = _spatial(arr, ndim)
    lead = arr.ndim - ndim
    pad = [(0, 0)] * lead + [(0, n % 2) for n in shape]
    a = np.pad(arr, pad)
    for k in range(ndim):
        axis = lead + k
        a = a.take(range(0, a.shape[axis], 2), axis=axis) + \
            a.take(range(1, a.shape[axis], 2), axis=axis)
    return (a / _counts(shape)).astype(arr.dtype, copy=False)


def mean_pool_adjoint(y: ArrayLike, shape: Sequence[int]) -> NDArray[Any]:
    """``Dᵀ y``: each block's value divided by its pixel count, spread over its pixels;
    `shape` is the fine grid's spatial shape (the exact adjoint of :func:`mean_pool`)."""
    arr = as_float_array(y, "y", finite=True)
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    coarse = tuple((n + 1) // 2 for n in shape)
    if _spatial(arr, ndim) != coarse:
        raise ValueError(f"`y` must end with the pooled shape {coarse} of {shape}; got "
                         f"{arr.shape}.")
    a = arr / _counts(shape)
    lead = arr.ndim - ndim
    for k in range(ndim):
        a = np.repeat(a, 2, axis=lead + k)
    crop = (Ellipsis,) + tuple(slice(0, n) for n in shape)
    return np.ascontiguousarray(a[crop], dtype=arr.dtype)


class MultiScalePrior(_Prior):
    """``s(x; σ) = Σ_l w_l D_lᵀ s(D_l x; σ_l)``: `prior` on `levels` pyramid levels.

    Parameters
    ----------
    prior : image prior
        Has ``score(x, sigma, *, rng=None, weight=None)`` (e.g.
        :class:`fastscore.prior.PatchPrior`); used on every level.
    levels : int >= 1
        Number of levels (1 is the prior itself).
    weights : sequence of `levels` floats > 0, optional
        ``w_l``; default ``(1 − c, c)`` for two levels with ``c = 0.3``, in general
        ``w_0 = 1 − c`` and ``c`` shared equally by the coarser levels.
    ndim : int, default 2
        Spatial axes (leading axes are a batch).
    """

    def __init__(self, prior: Any, levels: int = 2, weights: Sequence[float] | None = None, *,
                 ndim: int = 2) -> None:
        if not callable(getattr(prior, "score", None)):
            raise TypeError(f"`prior` must have a method score(x, sigma); got "
                            f"{type(prior).__name__}.")
        self.prior = prior
        self.levels = check_int(levels, "levels", low=1, high=8)
        self.ndim = check_int(ndim, "ndim", low=1, high=3)
        if weights is None:
            weights = [1.0] if self.levels == 1 else \
                [0.7] + [0.3 / (self.levels - 1)] * (self.levels - 1)
        w = [check_scalar(v, "weights", low=0, low_inclusive=False) for v in weights]
        if len(w) != self.levels:
            raise ValueError(f"`weights` must have {self.levels} values (one per level); "
                             f"got {len(w)}.")
        self.weights = tuple(w)
        self.sigma_min = getattr(prior, "sigma_min", None) or \
            getattr(getattr(prior, "patch_score", None), "sigma_min", None)
        self._noise_factor = 2.0 ** (self.ndim / 2.0)

    def _check_x(self, x):
        return _check_pyramid_input(x, self.ndim, self.levels)

    def _pyramid(self, arr):
        out = [arr]
        for _ in range(1, self.levels):
            out.append(mean_pool(out[-1], self.ndim))
        return out

    def score(self, x: ArrayLike, sigma: float | None = None, *,
              rng: int | np.random.Generator | None = None,
              weight: str | float | None = None) -> NDArray[Any]:
        """Image score (see the class formula); same shape and dtype as `x`."""
        arr = self._check_x(x)
        total: NDArray[Any] | None = None
        levels = self._pyramid(arr)
        for l in range(self.levels - 1, -1, -1):             # coarse to fine
            s_l = None if sigma is None else sigma / self._noise_factor ** l
            g = np.asarray(self.prior.score(levels[l], s_l, rng=rng, weight=weight),
                           dtype=arr.dtype) * arr.dtype.type(self.weights[l])
            total = g if total is None else g + total
            if l > 0:
                total = mean_pool_adjoint(total, _spatial(levels[l - 1], self.ndim))
        return cast(NDArray[Any], total)            # levels >= 1: set by the loop

    def log_density(self, x: ArrayLike, sigma: float | None = None) -> Any:
        """``Σ_l w_l log p(D_l x; σ_l)`` (needs the prior's ``log_density``)."""
        arr = self._check_x(x)
        return sum(w * self.prior.log_density(
            level, None if sigma is None else sigma / self._noise_factor ** l)
            for l, (w, level) in enumerate(zip(self.weights, self._pyramid(arr))))

    def lipschitz(self, image_shape: Sequence[int], sigma: float) -> float:
        """``Σ_l w_l ‖D_l‖² L_l(σ_l)`` with ``‖D_l‖² = 2^{−l n}``."""
        shape = tuple(image_shape)
        total = 0.0
        for l, w in enumerate(self.weights):
            total += w * 2.0 ** (-l * self.ndim) * self.prior.lipschitz(
                shape, sigma / self._noise_factor ** l)
            shape = tuple((n + 1) // 2 for n in shape)
        return total

    def __repr__(self) -> str:
        return f"MultiScalePrior({self.prior!r}, levels={self.levels}, weights={self.weights})"


def upsample_linear(y: ArrayLike, shape: Sequence[int]) -> NDArray[Any]:
    """``U y``: linear interpolation of a pooled grid (``⌈n/2⌉`` per axis) back to the
    fine spatial `shape` (the last ``len(shape)`` axes; leading axes batch).

    The coarse samples sit at the centres of their 2-pixel blocks (half-pixel grid), the
    borders repeat the edge value; a constant maps to the same constant.
    """
    from scipy import ndimage

    arr = as_float_array(y, "y", finite=True)
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if _spatial(arr, ndim) != tuple((n + 1) // 2 for n in shape):
        raise ValueError(f"`y` must end with the pooled shape of {shape}; got {arr.shape}.")
    zoom = (1,) * (arr.ndim - ndim) + (2,) * ndim
    up = ndimage.zoom(arr, zoom, order=1, grid_mode=True, mode="nearest")
    crop = (Ellipsis,) + tuple(slice(0, n) for n in shape)
    return np.ascontiguousarray(up[crop], dtype=arr.dtype)


class MultiScaleFusion(_Prior):
    """Denoiser fused across `levels` pyramid levels by frequency band.

    With ``z(x; σ)`` the prior's Tweedie denoiser, ``D`` the 2-pixel mean
    (:func:`mean_pool`), ``U`` linear up-sampling (:func:`upsample_linear`) and ``G`` a
    Gaussian blur of `blur` coarse pixels,

    .. math::  z_1 = z, \\qquad z_L(x; σ) = z(x; σ) + U G \\left(z_{L-1}(D x;\\ σ/2^{n/2})
               - D z(x; σ)\\right)

    (``n`` spatial axes): the coarse band of the fine estimate is replaced by the estimate
    made at the coarse level, where the same noise is ``2^{n/2}`` times weaker and a patch
    covers ``2ⁿ`` times the area. A level is used only if its image still holds one patch
    of the prior (its ``patch_size``; 2 pixels per axis for a prior without one), so a
    small image gets fewer levels. A prior of DC-removed patches cannot see noise below
    about one cycle per patch; each level moves that limit down by an octave. The score is
    ``(z_L(x; σ) − x)/σ²``, so HQS (``map_estimate(method="hqs")``) uses ``z_L`` as its
    denoising step. ``levels=1`` is the prior itself. Measured on validation images:
    ``benchmarks/README.md`` (denoise, multi-scale fusion).

    Parameters
    ----------
    prior : image prior
        Has ``denoise(x, sigma, *, rng=None)`` (every fastscore prior), used on every
        level.
    levels : int >= 1, default 3
    blur : float >= 0, default 1.0
        ``G``'s standard deviation in coarse pixels (0: no blur; without it the 2-pixel
        structure of the coarse correction costs more than the band gains).
    ndim : int, default 2
        Spatial axes (leading axes are a batch).
    """

    #: Its score is the residual of a fused denoiser, not the score of one density:
    #: for MAP / HQS; :func:`fastscore.reconstruct.posterior_sample` refuses it (sample
    #: with ``.prior``; fused, the chains' mean was 5 dB worse on validation photographs).
    density_score = False

    def __init__(self, prior: Any, levels: int = 3, blur: float = 1.0, *,
                 ndim: int = 2) -> None:
        if not callable(getattr(prior, "denoise", None)):
            raise TypeError(f"`prior` must have a method denoise(x, sigma); got "
                            f"{type(prior).__name__}.")
        self.prior = prior
        self.levels = check_int(levels, "levels", low=1, high=8)
        self.blur = float(check_scalar(blur, "blur", low=0))
        self.ndim = check_int(ndim, "ndim", low=1, high=3)
        self.sigma_min = getattr(prior, "sigma_min", None) or \
            getattr(getattr(prior, "patch_score", None), "sigma_min", None)
        self._noise_factor = 2.0 ** (self.ndim / 2.0)

    def _check_x(self, x):
        return _check_pyramid_input(x, self.ndim, 1)

    def _levels_for(self, shape):
        """Levels used for spatial `shape`: at most `levels`, while the pooled image still
        holds one patch of the prior."""
        patch = np.atleast_1d(getattr(self.prior, "patch_size", None) or 2)
        patch = np.broadcast_to(patch[len(patch) - min(len(patch), self.ndim):], self.ndim)
        used = 1
        while used < self.levels:
            shape = tuple((n + 1) // 2 for n in shape)
            if any(n < p for n, p in zip(shape, patch)):
                break
            used += 1
        return used

    def _fused(self, x, sigma, levels, rng):
        z = np.asarray(self.prior.denoise(x, sigma, rng=rng), dtype=x.dtype)
        if levels == 1:
            return z
        shape = _spatial(x, self.ndim)
        diff = self._fused(mean_pool(x, self.ndim), sigma / self._noise_factor,
                           levels - 1, rng) - mean_pool(z, self.ndim)
        if self.blur:
            from scipy import ndimage

            spread = (0.0,) * (diff.ndim - self.ndim) + (self.blur,) * self.ndim
            diff = ndimage.gaussian_filter(diff, spread, mode="nearest")
        return z + upsample_linear(diff, shape)

    def denoise(self, x: ArrayLike, sigma: float, *,
                rng: int | np.random.Generator | None = None) -> NDArray[Any]:
        """``z_L(x; σ)`` (the class formula); same shape and dtype as `x`."""
        sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
        arr = self._check_x(x)
        levels = self._levels_for(_spatial(arr, self.ndim))
        return cast(NDArray[Any], self._fused(arr, sigma, levels, rng))

    def score(self, x: ArrayLike, sigma: float | None = None, *,
              rng: int | np.random.Generator | None = None,
              weight: str | float | None = None) -> NDArray[Any]:
        """``(z_L(x; σ) − x)/σ²``; `sigma` is required, `weight` must be None or "mean"
        (the levels' denoisers average their patches)."""
        if sigma is None:
            raise ValueError("MultiScaleFusion.score needs `sigma` (its denoisers are "
                             "noise-level dependent).")
        if weight not in (None, "mean"):
            raise ValueError(f"`weight` of MultiScaleFusion.score must be None or 'mean'; "
                             f"got {weight!r}.")
        sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
        arr = self._check_x(x)
        levels = self._levels_for(_spatial(arr, self.ndim))
        fused = self._fused(arr, sigma, levels, rng)              # validated once
        return ((fused - arr) / arr.dtype.type(sigma * sigma)).astype(arr.dtype, copy=False)

    def lipschitz(self, image_shape: Sequence[int], sigma: float) -> float:
        """A bound of the fused score's Lipschitz constant (the gradient method's step and
        the samplers' mass). With ``J`` Jacobians, ``‖J_z‖ <= 1 + σ² L_0(σ)`` (Tweedie)
        and ``‖U G‖ ‖D‖ <= 1``, the class formula gives, level by level,
        ``L(σ) = L_0(σ) + (2 + σ² L_0(σ) + σ_1² L'(σ_1)) / σ²`` with ``L'`` the bound of
        the coarser levels at ``σ_1 = σ / 2^{n/2}`` (``L = L_0`` on one level)."""
        shape = tuple(image_shape)
        return self._lipschitz(shape, float(sigma),
                               self._levels_for(shape[len(shape) - self.ndim:]))

    def _lipschitz(self, shape, sigma, levels):
        fine = self.prior.lipschitz(shape, sigma)
        if levels == 1:
            return fine
        lead = len(shape) - self.ndim
        coarse_sigma = sigma / self._noise_factor
        coarse = self._lipschitz(shape[:lead] + tuple((n + 1) // 2 for n in shape[lead:]),
                                 coarse_sigma, levels - 1)
        return fine + (2.0 + sigma ** 2 * fine + coarse_sigma ** 2 * coarse) / sigma ** 2

    def __repr__(self) -> str:
        return (f"MultiScaleFusion({self.prior!r}, levels={self.levels}, "
                f"blur={self.blur})")

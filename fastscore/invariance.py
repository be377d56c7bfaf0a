"""Exact invariances of patch priors: DC offset, contrast, rotations/flips, image scale.

A learned score is not invariant to intensity offset, scale, rotation or flips unless the
method makes it so. These wrappers make a patch score (``score(patches, sigma)`` on
``(n, patch_dim)`` arrays) or an image prior exactly invariant, through the chain rule of
the transformation applied before the score:

- **DC offset.** ``s(v) = P s̃(P v)`` with ``P = I − 11ᵀ/n`` the centring projection: the
  exact gradient of ``log p̃(P v)``. Adding a constant to an image then leaves every patch
  score, hence the image score, unchanged, and the image score has no component along
  constant images locally.
- **Contrast.** ``u(v) = P v / c(v)``, ``c(v) = sqrt(‖P v‖²/n + ε²)``: the patch is centred
  and scaled to unit RMS before scoring, at noise level ``σ / c(v)``; the score is mapped
  back with the exact Jacobian ``J = (P − u uᵀ/n) / c`` (symmetric): ``s(v) = J s̃(u)``.
- **Rotations and flips.** ``s(v) = (1/|T|) Σ_T Tᵀ s̃(T v)`` over the dihedral group of the
  patch (8 transforms of a square 2-D patch; 4 flips of a rectangle; the 8 axis flips of a
  3-D patch): the symmetrised score is exactly equivariant.
- **Image scale** (:class:`ScaleInvariantPrior`). The image is divided by a robust scale
  estimate ``c(x)`` (equivariant: ``c(k x) = k c(x)``) and the score mapped back,
  ``s(x; σ) = s̃(x/c; σ/c)/c``, so that ``s(k x; k σ) = s(x; σ)/k`` exactly.
"""

import math

import numpy as np

from ._validation import as_float_array, check_choice, check_scalar
from .data import _dihedral_permutations, _flip_permutations

__all__ = ["InvariantPatchScore", "ScaleInvariantPrior", "symmetry_permutations",
           "robust_scale"]


def symmetry_permutations(patch_shape):
    """Index permutations (n_transforms, patch_dim) of the patch's symmetry group."""
    patch_shape = tuple(patch_shape)
    if len(patch_shape) == 2:
        return _dihedral_permutations(*patch_shape)
    if len(patch_shape) == 3:
        return _flip_permutations(patch_shape)
    raise ValueError(f"`patch_shape` must have 2 or 3 entries; got {patch_shape}.")


class InvariantPatchScore:
    """A patch score made exactly invariant to DC offset, contrast and/or rotations/flips.

    Parameters
    ----------
    patch_score : object with ``score(patches, sigma)``
        The inner score s̃ (σ may be a scalar or, with ``contrast=True``, an array of one
        noise level per patch).
    patch_shape : tuple of int
    dc : bool
        Score the centred patch and project the score (``s = P s̃(P v)``).
    contrast : bool
        Score the centred patch scaled to unit RMS (implies the DC invariance), with the
        exact Jacobian of the normalisation.
    symmetrize : bool
        Average ``Tᵀ s̃(T v)`` over the patch's symmetry group.
    eps : float > 0
        Floor of the contrast ``c(v)`` (flat patches), in intensity units.
    """

    def __init__(self, patch_score, patch_shape, *, dc=False, contrast=False, symmetrize=False,
                 eps=1e-2):
        if not callable(getattr(patch_score, "score", None)):
            raise TypeError("`patch_score` must have a method score(patches, sigma).")
        self.patch_score = patch_score
        self.patch_shape = tuple(int(p) for p in patch_shape)
        self.dc = bool(dc) or bool(contrast)
        self.contrast = bool(contrast)
        self.symmetrize = bool(symmetrize)
        self.eps = check_scalar(eps, "eps", low=0, low_inclusive=False)
        self._perms = symmetry_permutations(self.patch_shape) if symmetrize else None
        if self._perms is not None:
            self._inverse = np.argsort(self._perms, axis=1)
        for name in ("sigma_min", "sigma_max"):
            if hasattr(patch_score, name):
                setattr(self, name, getattr(patch_score, name))

    def _symmetric_score(self, patches, sigma):
        if self._perms is None:
            return self.patch_score.score(patches, sigma)
        total = np.zeros_like(patches)
        for perm, inverse in zip(self._perms, self._inverse):
            total += self.patch_score.score(patches[:, perm], sigma)[:, inverse]
        total /= patches.dtype.type(len(self._perms))
        return total

    def score(self, patches, sigma):
        """Invariant patch score, shape and dtype of `patches`."""
        v = np.asarray(patches)
        if v.ndim != 2 or v.shape[1] != math.prod(self.patch_shape):
            raise ValueError(f"`patches` must have shape (n, {math.prod(self.patch_shape)}); "
                             f"got {v.shape}.")
        if not self.dc:
            return self._symmetric_score(v, sigma)
        centred = v - v.mean(axis=1, keepdims=True)
        if not self.contrast:
            s = self._symmetric_score(centred, sigma)
            return s - s.mean(axis=1, keepdims=True)                  # P s̃(P v)
        n = v.shape[1]
        c = np.sqrt(np.mean(centred ** 2, axis=1, keepdims=True) + self.eps ** 2)
        u = centred / c
        sigma_u = None if sigma is None else (np.asarray(sigma, dtype=v.dtype) / c[:, 0])
        g = self._symmetric_score(u, sigma_u)
        Pg = g - g.mean(axis=1, keepdims=True)
        return (Pg - u * (np.sum(u * g, axis=1, keepdims=True) / n)) / c   # J s̃(u)


def robust_scale(x, *, method="range"):
    """Scale-equivariant intensity scale of each image: ``c(k x) = |k| c(x)``.

    method "range": the spread between the 1st and 99th percentiles (robust to a few
    outliers, insensitive to offsets); "std": the standard deviation; one value for the
    whole array. For denoising, pass the noisy measurement: the noise adds little to the
    range of an image whose contrast is well above σ.
    """
    method = check_choice(method, "method", ("range", "std"))
    arr = as_float_array(x, "x", finite=True)
    if method == "std":
        value = arr.std()
    else:
        lo, hi = np.percentile(arr, [1.0, 99.0])
        value = hi - lo
    if not np.isfinite(value) or value <= 0:
        raise ValueError("cannot estimate the intensity scale of a constant image; pass "
                         "`scale=` explicitly.")
    return float(value)


class ScaleInvariantPrior:
    """Image prior made invariant to a global intensity scale.

    .. math::  s(x; σ) = \\frac{1}{c}\\, \\tilde s\\!\\left(\\frac{x}{c}; \\frac{σ}{c}\\right)

    with ``c = scale`` if given, else ``reference_scale`` × (robust scale of `x`) /
    (robust scale of the training data, `reference_scale`): images are brought to the
    intensity scale the inner prior was trained at, and the score mapped back.

    Parameters
    ----------
    prior : image prior with ``score(x, sigma, rng=None)`` and ``lipschitz(shape, sigma)``
    reference_scale : float > 0
        Robust scale (:func:`robust_scale`) of typical training images.
    method : {"range", "std"}
    scale : float, optional
        Fixed scale instead of estimating it from each `x` (e.g. estimated once from the
        measurement before the reconstruction starts — recommended: the estimate then stays
        fixed through the iterations).
    """

    def __init__(self, prior, reference_scale, *, method="range", scale=None):
        self.prior = prior
        self.reference_scale = check_scalar(reference_scale, "reference_scale", low=0,
                                            low_inclusive=False)
        self.method = check_choice(method, "method", ("range", "std"))
        self.scale = None if scale is None else check_scalar(scale, "scale", low=0,
                                                            low_inclusive=False)

    def factor(self, x):
        """``c``: the image's scale relative to the training scale."""
        if self.scale is not None:
            return self.scale
        self._last_factor = robust_scale(x, method=self.method) / self.reference_scale
        return self._last_factor

    def _check_x(self, x):
        return as_float_array(x, "x", finite=True)

    def score(self, x, sigma=None, *, rng=None, weight=None):
        arr = self._check_x(x)
        c = self.factor(arr)
        inner_sigma = None if sigma is None else sigma / c
        kwargs = {} if weight is None else {"weight": weight}
        out = self.prior.score(arr / arr.dtype.type(c), inner_sigma, rng=rng, **kwargs)
        out /= out.dtype.type(c)
        return out

    def denoise(self, x, sigma, *, rng=None):
        arr = self._check_x(x)
        return arr + sigma ** 2 * self.score(arr, sigma, rng=rng, weight="mean")

    def lipschitz(self, image_shape, sigma):
        """Inner bound mapped through the scale (the last estimated one when not fixed)."""
        c = self.scale if self.scale is not None else getattr(self, "_last_factor", 1.0)
        return self.prior.lipschitz(image_shape, sigma / c) / c ** 2

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
- **Image intensity** (:class:`IntensityNormalization`, used by
  :class:`fastscore.prior.PatchPrior`). The image is mapped to the intensities of the
  training images, ``x ↦ (x − b)/k``, with ``(k, b)`` estimated robustly and without noise
  bias (:class:`IntensityReference`), and the score mapped back,
  ``s(x; σ) = s̃((x − b)/k; σ/k)/k``: ``s(a x + c; a σ) = s(x; σ)/a`` exactly.
"""

import math

import numpy as np

from ._validation import as_float_array, check_choice, check_rng, check_scalar
from .data import _dihedral_permutations, _flip_permutations

__all__ = ["InvariantPatchScore", "IntensityReference", "IntensityNormalization",
           "normalize_patches", "map_back", "symmetry_permutations"]


def symmetry_permutations(patch_shape):
    """Index permutations (n_transforms, patch_dim) of the patch's symmetry group."""
    patch_shape = tuple(patch_shape)
    if len(patch_shape) == 2:
        return _dihedral_permutations(*patch_shape)
    if len(patch_shape) == 3:
        return _flip_permutations(patch_shape)
    raise ValueError(f"`patch_shape` must have 2 or 3 entries; got {patch_shape}.")


def normalize_patches(patches, sigma, *, dc=False, contrast=False, eps=1e-2):
    """``(u, σ_u, c)``: patches as an invariant score sees them, their noise level(s) and
    the per-patch contrast ``c`` (shape (n, 1); None without `contrast`).

    DC: ``u = P v``, ``σ_u = σ``. Contrast: ``u = P v / c``, ``c = sqrt(‖P v‖²/n + ε²)``,
    ``σ_u = σ / c`` (one level per patch). Neither: `patches` and `sigma` unchanged.
    """
    if not (dc or contrast):
        return patches, sigma, None
    u = patches - patches.mean(axis=1, keepdims=True)
    if not contrast:
        return u, sigma, None
    c = np.sqrt(np.mean(u ** 2, axis=1, keepdims=True) + eps ** 2)
    u /= c
    sigma_u = None if sigma is None else np.asarray(sigma, dtype=u.dtype) / c[:, 0]
    return u, sigma_u, c


def map_back(g, u, c, *, dc=True):
    """``J g``: a score `g` at the normalised patches `u` mapped back through the
    normalisation's (symmetric) Jacobian: ``P g`` (DC), ``(P g − u (uᵀg)/n) / c``
    (contrast, ``c`` from :func:`normalize_patches`), `g` itself (neither)."""
    if not dc and c is None:
        return g
    Pg = g - g.mean(axis=1, keepdims=True)
    if c is None:
        return Pg
    Pg -= u * (np.sum(u * g, axis=1, keepdims=True) / g.shape[1])
    Pg /= c
    return Pg


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

    Notes
    -----
    Holds no scratch: :meth:`score` may be called from several Python threads at once
    when the wrapped patch score allows it (a :class:`fastscore.nn.PatchScoreModel` does).
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
        """Invariant patch score ``J s̃_T(u(v); σ_u)``, shape and dtype of `patches`."""
        v = np.asarray(patches)
        if v.ndim != 2 or v.shape[1] != math.prod(self.patch_shape):
            raise ValueError(f"`patches` must have shape (n, {math.prod(self.patch_shape)}); "
                             f"got {v.shape}.")
        u, sigma_u, c = normalize_patches(v, sigma, dc=self.dc, contrast=self.contrast,
                                          eps=self.eps)
        return map_back(self._symmetric_score(u, sigma_u), u, c, dc=self.dc)


class IntensityReference:
    """Intensity statistics of the training images, for normalising test images to them.

    For a grid of noise levels σ_j (the first 0), the median over training images of the
    low and high percentiles ``q`` and ``100 − q`` of ``x + σ_j z``. A test image ``y``
    with noise level σ_n that looks like ``k x + b + σ_n z`` for a training-like ``x``
    gives back ``k`` and ``b`` (:meth:`calibrate`): the statistics are matched at the same
    *relative* noise level σ_n / k, so the noise does not bias the estimate.

    Parameters
    ----------
    sigma, low, high : array_like of shape (m,)
        Noise levels (increasing, first 0) and the median percentiles at each.
    percentile : float in (0, 50)
    """

    def __init__(self, sigma, low, high, *, percentile=1.0):
        self.sigma = np.asarray(sigma, dtype=np.float64)
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.percentile = check_scalar(percentile, "percentile", low=0, high=50,
                                       low_inclusive=False, high_inclusive=False)
        m = self.sigma.size
        if (self.sigma.ndim != 1 or m < 2 or self.low.shape != (m,) or self.high.shape != (m,)
                or self.sigma[0] != 0 or np.any(np.diff(self.sigma) <= 0)
                or not np.all(np.isfinite(self.low)) or not np.all(np.isfinite(self.high))
                or np.any(self.high - self.low <= 0)):
            raise ValueError("`sigma`, `low`, `high` must be 1-D of one length >= 2, with "
                             "sigma increasing from 0 and high > low.")

    @classmethod
    def from_images(cls, images, *, percentile=1.0, sigmas=None, n_images=256,
                    n_pixels=65536, rng=None):
        """Statistics of (up to `n_images` of) `images`, a sequence of 2-D/3-D arrays.

        sigmas : increasing positive levels; default 32 geometric levels from 1e-3 to 4
        times the median image range (any level above is extrapolated flat).
        n_pixels : larger images are represented by this many random pixels (the
        percentiles of a large random sample, at a bounded cost for volumes).
        """
        rng = check_rng(rng)
        images = list(images)
        if not images:
            raise ValueError("`images` must hold at least one image.")
        if len(images) > n_images:
            images = [images[i] for i in np.sort(rng.choice(len(images), n_images, False))]
        images = [np.asarray(im, dtype=np.float64).ravel() for im in images]
        images = [im if im.size <= n_pixels else im[rng.integers(0, im.size, n_pixels)]
                  for im in images]
        q = (percentile, 100.0 - percentile)
        clean = np.array([np.percentile(im, q) for im in images])
        spread = float(np.median(clean[:, 1] - clean[:, 0]))
        if not spread > 0:
            raise ValueError("the training images are constant: no intensity scale.")
        grid = (np.geomspace(1e-3, 4.0, 31) * spread if sigmas is None
                else np.asarray(sigmas, dtype=np.float64))
        lows, highs = [np.median(clean[:, 0])], [np.median(clean[:, 1])]
        for s in grid:
            p = np.array([np.percentile(im + s * rng.standard_normal(im.shape), q)
                          for im in images])
            lows.append(np.median(p[:, 0]))
            highs.append(np.median(p[:, 1]))
        return cls(np.concatenate([[0.0], grid]), lows, highs, percentile=percentile)

    def _at(self, sigma, values):
        """Values at noise level `sigma`, interpolated in log σ (flat beyond the grid)."""
        if sigma <= self.sigma[1]:
            t = sigma / self.sigma[1]
            return (1 - t) * values[0] + t * values[1]
        return float(np.interp(math.log(sigma), np.log(self.sigma[1:]), values[1:]))

    def calibrate(self, y, noise_sigma=0.0, *, offset=True):
        """``(k, b)`` with ``y ≈ k x + b + σ_n z`` for training-like ``x``.

        Solves ``range_q(y) = k · range_ref(σ_n / k)`` for the scale ``k`` (a fixed point,
        monotone in k), then ``b = low_q(y) − k · low_ref(σ_n / k)`` (0 unless `offset`).
        Equivariant: ``y → a y + c`` (a > 0) gives ``(a k, a b + c)`` for noise ``a σ_n``.
        """
        arr = as_float_array(y, "y", finite=True)
        noise_sigma = check_scalar(noise_sigma, "noise_sigma", low=0)
        lo, hi = np.percentile(arr, (self.percentile, 100.0 - self.percentile))
        if not hi > lo:
            raise ValueError("cannot calibrate the intensity of a constant image.")
        spread = self.high - self.low
        k = (hi - lo) / spread[0]
        for _ in range(100):
            k_new = (hi - lo) / self._at(noise_sigma / k, spread)
            if abs(k_new - k) <= 1e-12 * k:
                break
            k = k_new
        b = lo - k * self._at(noise_sigma / k, self.low) if offset else 0.0
        return float(k), float(b)

    def to_dict(self):
        return {"sigma": self.sigma.tolist(), "low": self.low.tolist(),
                "high": self.high.tolist(), "percentile": self.percentile}

    @classmethod
    def from_dict(cls, d):
        return cls(d["sigma"], d["low"], d["high"], percentile=d["percentile"])

    def __repr__(self):
        return (f"IntensityReference(percentile={self.percentile:g}, low={self.low[0]:.4g}, "
                f"high={self.high[0]:.4g}, {self.sigma.size} noise levels)")


class IntensityNormalization:
    """Global intensity invariance of an image score: ``x ↦ (x − b)/k`` before, ``1/k`` after.

    .. math::  s(x; σ) = \\frac{1}{k}\\, \\tilde s\\!\\left(\\frac{x - b}{k}; \\frac{σ}{k}\\right)

    with ``(k, b)`` from :meth:`IntensityReference.calibrate`: fixed by :meth:`calibrate`
    on the measurement (recommended for denoising: ``calibrate(y, σ_n)``), else estimated
    from each image at each call, taking the call's σ as its noise level. Since
    ``(k, b)`` is equivariant, ``s(a x + c; a σ) = s(x; σ)/a`` exactly (``b = 0``, "scale")
    and the offset ``c`` drops out ("affine").

    Parameters
    ----------
    reference : IntensityReference
    mode : {"scale", "affine"}
    """

    def __init__(self, reference, mode="affine"):
        if not isinstance(reference, IntensityReference):
            raise TypeError("`reference` must be an IntensityReference (a model trained on "
                            f"images stores one); got {type(reference).__name__}.")
        self.reference = reference
        self.mode = check_choice(mode, "mode", ("scale", "affine"))
        self.fixed = None

    def calibrate(self, images, noise_sigma):
        """Fix ``(k, b)`` per image of `images` (a list/array of images); one image's
        values then apply to every image of a batch (e.g. posterior chains)."""
        self.fixed = self._estimate(images, noise_sigma)
        return self.fixed

    def factors(self, images, sigma):
        """``[(k, b)]`` per image: the calibrated ones, or estimated at noise level σ."""
        if self.fixed is not None:
            if len(self.fixed) == 1:           # one measurement, any number of chains
                return self.fixed * len(images)
            if len(self.fixed) != len(images):
                raise ValueError(f"the prior was calibrated for {len(self.fixed)} image(s); "
                                 f"got {len(images)}.")
            return self.fixed
        return self._estimate(images, sigma or 0.0)

    def _estimate(self, images, noise_sigma):
        return [self.reference.calibrate(im, noise_sigma, offset=self.mode == "affine")
                for im in images]

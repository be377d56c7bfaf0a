"""Image priors built from patch scores (Markov-random-field patch priors).

A patch score ``s_V(v; σ)`` (the score of small patches ``v`` smoothed by Gaussian noise of
level σ) becomes an image score by gathering the patches of the image, scoring them and
scatter-adding the results back:

.. math::  s(x; σ) = w \\odot \\sum_q G_q^\\top s_V(G_q x; σ)

``PatchPrior`` streams this in chunks of patches (gather → patch score → scatter-add), so
its memory is a few image-sized buffers plus one chunk, whatever the image size.

Patch scores are small objects with ``score(patches, sigma) -> array`` on
``(n_patches, patch_dim)`` arrays; here: :class:`GaussianPatchScore` (closed form),
:class:`KDEPatchScore` (nonparametric), :class:`DistributionPatchScore` (any analytic
distribution, e.g. the TV pair prior); the learned one is
:class:`fastscore.nn.PatchScoreModel`.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
from typing import Any

import numpy as np

from ._deprecation import warn_deprecated
from ._validation import (as_float_array, check_choice, check_int, check_int_tuple, check_rng,
                          check_scalar, check_scale)
from .intensity import IntensityNormalization
from .patches import PatchOperator

__all__ = ["PatchPrior", "SumPrior", "GaussianPatchScore", "KDEPatchScore",
           "DistributionPatchScore", "tv_prior"]


class _Prior:
    """Shared behaviour of image priors: addition, Tweedie denoising."""

    def __add__(self, other):
        return SumPrior([self, other])

    def denoise(self, x, sigma, *, rng=None):
        """One pass of Tweedie averaging: ``x + σ² s(x; σ)`` with the mean weighting.

        For a patch prior this is the average over covering patches of the patch MMSE
        denoiser ``D_σ(v) = v + σ² s_V(v; σ)``.
        """
        sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
        arr = self._check_x(x)
        check_scale(sigma, "sigma", arr.dtype)
        return arr + arr.dtype.type(sigma) ** 2 * self.score(arr, sigma, rng=rng,
                                                             weight="mean")


def _check_tiling(tiling, padding):
    tiling = check_choice(tiling, "tiling", ("overlap", "shifted_overlap", "random_shift"))
    if tiling != "overlap" and padding == "valid":
        raise ValueError(f"`tiling={tiling!r}` needs a padded mode; got padding='valid'.")
    return tiling


class PatchPrior(_Prior):
    """Image prior from a patch score: ``s(x; σ) = w ⊙ Σ_q G_qᵀ s_V(G_q x; σ)``.

    Parameters
    ----------
    patch_score : object
        Has ``score(patches, sigma) -> scores`` on arrays of shape (n, patch_dim); e.g. a
        :class:`fastscore.nn.PatchScoreModel`, :class:`KDEPatchScore`,
        :class:`GaussianPatchScore` or :class:`DistributionPatchScore`.
    patch_size : int or tuple of int
        Patch shape the patch score was made for: an int ``p`` means 2-D ``(p, p)``
        patches; a 3-tuple means volumes. Images of one more axis are a batch.
    stride : int or tuple of int, default 1
        Step between overlapping patches (``tiling="overlap"`` or ``"shifted_overlap"``).
    padding : {"reflect", "zero", "circular", "valid"}, default "reflect"
    weight : "mean", "sum" or float > 0, default "mean"
        ``w``: "mean" divides by the number of patches covering each pixel (the patch
        scores are averaged, which undoes the n-fold over-counting of overlapping
        marginal patch scores; pixels no patch covers, possible with "valid" padding and
        a stride, score 0); "sum" is ``w = 1`` (the plain MRF sum); a float β gives
        ``w = β``.
    tiling : {"overlap", "shifted_overlap", "random_shift"}, default "overlap"
        "overlap": all patches at the given stride. "shifted_overlap": the same patches on
        a grid moved at each call by an offset drawn from `rng`, uniform in
        ``[0, stride)`` per axis (cycle spinning: with a stride > 1 the block pattern of
        the grid moves between the iterations of a reconstruction). "random_shift": non-overlapping
        patches on a grid whose origin is drawn afresh at each call from `rng` (PaDIS), so
        each pixel is scored by exactly one patch per call and block edges move around;
        padded pixels are read (reflected, wrapped or zero) but their scores dropped.
    chunk_size : int, default 32768
        Patches per chunk (memory ≈ 2 · chunk_size · patch_dim values).
    rng : None, int or Generator
        Source of the random shifts (used when ``score`` is called without `rng`).
    n_threads : int, optional
    intensity : {"none", "scale", "affine"}, optional
        Global intensity invariance (:class:`fastscore.invariance.IntensityNormalization`):
        each image is brought to the training intensities, ``x ↦ (x − b)/k``, before
        scoring and the score mapped back, ``s(x; σ) = s̃((x − b)/k; σ/k)/k`` ("scale":
        ``b = 0``). Default: the patch score's stored setting (a trained
        :class:`fastscore.nn.PatchScoreModel` remembers it), else "none". Call
        :meth:`calibrate` with the measurement to fix ``(k, b)``; otherwise they are
        estimated from each image at each call.
    reference : fastscore.invariance.IntensityReference, optional
        Training intensity statistics; default the patch score's ``intensity_reference``.

    Complex images (MRI, SENSE) are accepted by :meth:`score` and :meth:`denoise`; the
    score is ``∂/∂Re + i ∂/∂Im`` of the log prior. See :attr:`complex_mode`: a patch score
    trained on complex images (``channels == 2``) scores the real and imaginary parts as
    two channels of one patch; a real patch score is applied to the two parts separately
    (an approximation).

    Notes
    -----
    Thread safety: :meth:`score`, :meth:`denoise` and the reconstructions built on them
    may share one prior (and its network) between Python threads and give the serial
    results, provided each call with a moving grid (``tiling="shifted_overlap"`` or
    ``"random_shift"``) passes its own `rng`
    (the prior's default stream is shared, so the shifts would depend on the order of the
    calls); :meth:`calibrate` changes the prior for every thread.

    ``PatchPrior(...).score`` is the exact gradient of ``w Σ_q log p_V(G_q x)`` when `w`
    is a scalar and the patch score is a gradient; the "mean" weighting and the random
    shifts make it an estimate of the image score instead.
    """

    def __init__(self, patch_score, patch_size, *, stride=1, padding="reflect",
                 weight="mean", tiling="overlap", chunk_size=32768, rng=None, n_threads=None,
                 intensity=None, reference=None):
        if not callable(getattr(patch_score, "score", None)):
            raise TypeError("`patch_score` must have a method score(patches, sigma); got "
                            f"{type(patch_score).__name__}.")
        self.patch_score = patch_score
        self.patch_size = patch_size
        n_axes = 2 if isinstance(patch_size, numbers.Integral) else len(tuple(patch_size))
        if n_axes not in (2, 3):
            raise ValueError(f"`patch_size` must be an int or a tuple of 2 or 3 ints; got "
                             f"{patch_size!r}.")
        self._patch_shape = check_int_tuple(patch_size, "patch_size", n_axes, low=1)
        declared = getattr(patch_score, "patch_size", None)     # a trained model's shape
        if declared is not None and tuple(declared) != self._patch_shape:
            raise ValueError(f"`patch_size` {self._patch_shape} differs from the patch "
                             f"shape {tuple(declared)} the patch score was made for; "
                             f"use patch_size={tuple(declared)}.")
        self.stride = stride
        self.padding = check_choice(padding, "padding", ("reflect", "zero", "circular", "valid"))
        self.tiling = _check_tiling(tiling, self.padding)
        if isinstance(weight, str):
            self.weight = check_choice(weight, "weight", ("mean", "sum"))
        else:
            self.weight = check_scalar(weight, "weight", low=0, low_inclusive=False)
        self.chunk_size = check_int(chunk_size, "chunk_size", low=1)
        self._rng = check_rng(rng)
        self.n_threads = n_threads
        self._operators = {}
        self._counts = {}
        stored = getattr(patch_score, "invariances", {}).get("intensity", "none")
        intensity = check_choice(stored if intensity is None else intensity, "intensity",
                                 ("none", "scale", "affine"))
        self.intensity = None
        if intensity != "none":
            reference = getattr(patch_score, "intensity_reference", None) \
                if reference is None else reference
            if reference is None:
                raise ValueError(f"`intensity={intensity!r}` needs the training intensity "
                                 "statistics: pass `reference=` (an IntensityReference), or "
                                 "use a model trained on images.")
            self.intensity = IntensityNormalization(reference, intensity)

    def calibrate(self, y, noise_sigma):
        """Fix the intensity normalisation ``(k, b)`` from the measurement `y` (an image or a
        batch of images in image space, noise level `noise_sigma`); returns self."""
        if self.intensity is None:
            raise ValueError("calibrate needs a prior with `intensity='scale'` or 'affine'.")
        arr = self._check_x(y)
        self.intensity.calibrate(self._as_batch(arr), noise_sigma)
        return self

    def with_tiling(self, tiling):
        """A copy of this prior with another `tiling` (sharing its patch score, random
        stream and intensity calibration)."""
        other = copy.copy(self)
        other.tiling = _check_tiling(tiling, self.padding)
        other._operators, other._counts = {}, {}
        return other

    # -- operators -----------------------------------------------------------------------
    def _operator(self, image_shape, mode, origin=None, channels=None):
        key = (image_shape, mode, origin, channels)
        if key not in self._operators:
            if self.tiling != "random_shift":
                op = PatchOperator(image_shape, self.patch_size, self.stride, mode,
                                   origin=origin, channels=channels, n_threads=self.n_threads)
            else:
                op = PatchOperator(image_shape, self.patch_size, self.patch_size, mode,
                                   origin=origin, channels=channels, n_threads=self.n_threads)
            self._operators[key] = op
        return self._operators[key]

    def _check_x(self, x):
        return as_float_array(x, "x", ndim=(2, 3, 4), finite=True, allow_complex=True)

    def _image_shape(self, arr):
        k = len(self._patch_shape)
        if arr.ndim not in (k, k + 1):
            raise ValueError(f"`x` must have {k} dimensions (or {k + 1} with a batch axis) "
                             f"for patch size {self._patch_shape}; got shape {arr.shape}.")
        return arr.shape[arr.ndim - k:]

    def _operators_for(self, image_shape, rng, channels=None):
        """(gather operator, scatter operator) for one call."""
        origin = self.draw_origin(rng)
        if self.tiling != "random_shift":
            G = self._operator(image_shape, self.padding, origin, channels)
            return G, G
        # same grid, two modes: read the padding as asked, drop the scores landing on it
        return (self._operator(image_shape, self.padding, origin, channels),
                self._operator(image_shape, "zero", origin, channels))

    def _origins(self):
        """Per axis, the grid origins of ``tiling="shifted_overlap"``: the centred origin
        ``(p − 1) // 2`` moved by each offset in ``[0, stride)`` (taken back by one stride
        where it would leave ``[0, p)``)."""
        strides = check_int_tuple(self.stride, "stride", len(self._patch_shape), low=1)
        return [[o if o < p else o - step for o in range((p - 1) // 2, (p - 1) // 2
                                                          + min(step, p))]
                for p, step in zip(self._patch_shape, strides)]

    def draw_origin(self, rng):
        """The patch grid's origin for one call (what the chunked computation of
        :mod:`fastscore.distributed` draws too): None for "overlap" (the centred grid),
        uniform in ``[0, p)`` per axis for "random_shift", uniform over :meth:`_origins`
        for "shifted_overlap"."""
        if self.tiling == "overlap":
            return None
        if self.tiling == "random_shift":
            return tuple(int(o) for o in rng.integers(0, self._patch_shape))
        return tuple(axis[int(rng.integers(0, len(axis)))] for axis in self._origins())

    def counts(self, image_shape, origin=None):
        """Number of overlapping patches covering each pixel (overlap tilings; `origin`:
        the grid origin of a shifted call, default the centred grid)."""
        key = (tuple(image_shape), origin)
        if key not in self._counts:
            G = self._operator(key[0], self.padding, origin)
            self._counts[key] = G.counts()
        return self._counts[key]

    # -- the prior -----------------------------------------------------------------------
    def _patch_sum(self, arr, image_shape, sigma, rng, channels=None):
        """Σ_q G_qᵀ s_V(G_q x; σ), streamed in chunks; returns (sum, gather operator)."""
        gather, scatter = self._operators_for(image_shape, rng, channels)
        batched = arr.ndim > len(image_shape) + (0 if channels is None else 1)
        n_images = arr.shape[0] if batched else 1
        out = np.zeros(arr.shape, dtype=arr.dtype)
        buffer = np.empty((min(self.chunk_size, n_images * gather.n_patches),
                           gather.patch_dim), dtype=arr.dtype)
        for start, stop in gather.chunks(self.chunk_size, n_images):
            patches = gather.gather(arr, start, stop, out=buffer[:stop - start])
            scores = np.asarray(self.patch_score.score(patches, sigma), dtype=arr.dtype)
            if scores.shape != patches.shape:
                raise ValueError(f"patch_score.score returned shape {scores.shape} for "
                                 f"patches of shape {patches.shape}.")
            scatter.scatter_add(scores, start, out=out)
        return out, gather

    def score(self, x, sigma=None, *, rng=None, weight=None):
        """Image score ``s(x; σ)``.

        Parameters
        ----------
        x : ndarray of shape (H, W), (D, H, W) or with a leading batch axis
        sigma : float > 0 or None
            Noise level of the prior (σ of the smoothed patch density); None for
            analytic patch scores that do not use it.
        rng : None, int or Generator
            Random shifts (``tiling="random_shift"``); default the prior's own stream.
        weight : optional
            Override the prior's `weight` for this call.

        Returns
        -------
        ndarray, same shape and dtype as `x`.
        """
        arr = self._check_x(x)
        if sigma is not None:
            sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
            check_scale(sigma, "sigma", arr.dtype)
        weight = self.weight if weight is None else weight
        rng = self._rng if rng is None else check_rng(rng)
        image_shape = self._image_shape(arr)
        if arr.dtype.kind == "c":
            return self._complex_score(arr, image_shape, sigma, rng, weight)
        if self.intensity is None:
            return self._score(arr, image_shape, sigma, rng, weight)
        images = self._as_batch(arr)
        out = np.empty_like(images)
        for i, (k, b) in enumerate(self.intensity.factors(images, sigma)):
            inner = (images[i] - arr.dtype.type(b)) / arr.dtype.type(k)
            out[i] = self._score(inner, image_shape, None if sigma is None else sigma / k,
                                 rng, weight)
            out[i] /= arr.dtype.type(k)
        return out.reshape(arr.shape)

    def _as_batch(self, arr):
        """`arr` as a batch of images (a view with a leading axis)."""
        k = len(self._patch_shape)
        self._image_shape(arr)
        return arr if arr.ndim == k + 1 else arr[np.newaxis]

    @property
    def complex_mode(self):
        """How complex images are scored: "channels" when the patch score was trained on
        complex patches (``patch_score.channels == 2``: the real and imaginary parts form
        one patch of ``2 · prod(patch_size)`` values), else "separate" (a real prior
        applied to the real and imaginary parts as two independent images — an
        approximation: it ignores their correlation and is not invariant to the global
        phase)."""
        return "channels" if getattr(self.patch_score, "channels", 1) == 2 else "separate"

    def _complex_score(self, arr, image_shape, sigma, rng, weight):
        """Score of a complex image: ∂/∂Re + i ∂/∂Im of the log prior."""
        if self.intensity is not None:
            raise TypeError("intensity normalisation is defined for real images; build the "
                            "prior with intensity='none' for complex images.")
        k = len(image_shape)
        parts = np.stack([arr.real, arr.imag], axis=arr.ndim - k)   # (..., 2, *image)
        if self.complex_mode == "channels":
            total = self._score(parts, image_shape, sigma, rng, weight, channels=2)
        else:
            flat = parts.reshape((-1,) + image_shape)                # a batch of real images
            total = self._score(flat, image_shape, sigma, rng, weight).reshape(parts.shape)
        out = np.empty(arr.shape, dtype=arr.dtype)
        out.real = np.take(total, 0, axis=arr.ndim - k)
        out.imag = np.take(total, 1, axis=arr.ndim - k)
        return out

    def _score(self, arr, image_shape, sigma, rng, weight, channels=None):
        total, gather = self._patch_sum(arr, image_shape, sigma, rng, channels)
        if weight == "mean":
            if self.tiling != "random_shift":
                # pixels no patch covers ("valid" with a stride that does not fit the
                # image) have a zero sum: their score is 0, as with weight="sum"
                counts = self.counts(image_shape, gather.origin)
                np.divide(total, counts, out=total, where=counts > 0, casting="unsafe")
        elif weight != "sum":
            total *= arr.dtype.type(weight)
        return total

    def score_vjp(self, x, sigma, v, *, rng=None):
        """Exact vector-Jacobian product ``(∂s(x; σ)/∂x)ᵀ v`` of the image score.

        With ``s(x) = W Σ_q Z_qᵀ s_V(R_q x; σ)`` (R the gather, Z the scatter pattern, equal
        for overlap tiling; W the weight) it is ``Σ_q R_qᵀ J_V(R_q x)ᵀ Z_q W v``, with the
        patch score's own ``input_vjp(patches, sigma, v)`` (the network's backward pass for
        a :class:`fastscore.nn.PatchScoreModel`). The Jacobian of a log-density's gradient
        is symmetric, so this is also the Jacobian-vector product when `s` is a gradient.

        Parameters
        ----------
        x, v : ndarray of shape (H, W), (D, H, W) or with a leading batch axis; real
        sigma : float > 0 or None
        rng : None, int or Generator
            Random shifts (``tiling="random_shift"``).

        Returns
        -------
        ndarray of the shape and dtype of `x`.
        """
        vjp = getattr(self.patch_score, "input_vjp", None)
        if vjp is None or self.intensity is not None:
            raise NotImplementedError(
                "score_vjp needs a patch score with input_vjp(patches, sigma, v) and "
                f"intensity='none'; got {type(self.patch_score).__name__}"
                + ("" if self.intensity is None else " with an intensity normalisation") + ".")
        arr = self._check_x(x)
        vec = self._check_x(v).astype(arr.dtype, copy=False)
        if arr.dtype.kind == "c" or vec.shape != arr.shape:
            raise ValueError(f"`x` and `v` must be real arrays of one shape; got {arr.shape} "
                             f"{arr.dtype} and {vec.shape} {vec.dtype}.")
        if sigma is not None:
            sigma = check_scalar(sigma, "sigma", low=0, low_inclusive=False)
        image_shape = self._image_shape(arr)
        rng = self._rng if rng is None else check_rng(rng)
        gather, scatter = self._operators_for(image_shape, rng)
        if self.weight == "mean":
            if self.tiling != "random_shift":
                counts = self.counts(image_shape, gather.origin)
                vec = np.divide(vec, counts, where=counts > 0, out=np.zeros_like(vec))
        elif self.weight != "sum":
            vec = vec * arr.dtype.type(self.weight)
        n_images = arr.shape[0] if arr.ndim > len(image_shape) else 1
        out = np.zeros(arr.shape, dtype=arr.dtype)
        for start, stop in gather.chunks(self.chunk_size, n_images):
            g = vjp(gather.gather(arr, start, stop), sigma, scatter.gather(vec, start, stop))
            gather.scatter_add(np.asarray(g, dtype=arr.dtype), start, out=out)
        return out

    def log_density(self, x, sigma=None):
        """``w Σ_q log p_V(G_q x)`` (unnormalised) for a scalar weight and overlap tiling."""
        if self.weight == "mean" or self.tiling != "overlap" or self.intensity is not None:
            raise NotImplementedError(
                "log_density is defined for a scalar `weight` ('sum' or a float) with "
                "tiling='overlap' and intensity='none'; otherwise the prior is a score "
                "estimate, not a gradient.")
        log_density = getattr(self.patch_score, "log_density", None)
        if log_density is None:
            raise NotImplementedError(
                f"{type(self.patch_score).__name__} has no log_density(patches, sigma).")
        arr = self._check_x(x)
        G = self._operator(self._image_shape(arr), self.padding)
        value = float(np.sum(log_density(G.gather(arr), sigma)))
        return value * (1.0 if self.weight == "sum" else self.weight)

    def lipschitz(self, image_shape, sigma):
        """Bound on the Lipschitz constant of ``x ↦ s(x; σ)`` used for step sizes.

        The Hessian of a log-density smoothed at level σ has eigenvalues ≥ -1/σ² along
        patch directions (Tweedie), and each pixel is in ``counts`` patches, so
        ``L ≤ max(w · counts) / σ²`` (the patch score's own constant when it has one).
        With an intensity normalisation it is the inner bound at ``σ/k`` over ``k²`` (the
        largest over the calibrated images; ``k = 1`` before calibration).
        """
        if self.intensity is not None:
            factors = self.intensity.fixed or [(1.0, 0.0)]
            return max(self._lipschitz(image_shape, sigma / k) / k ** 2 for k, _ in factors)
        return self._lipschitz(image_shape, sigma)

    def _lipschitz(self, image_shape, sigma):
        per_patch = getattr(self.patch_score, "lipschitz", None)
        L_patch = per_patch(sigma) if callable(per_patch) else 1.0 / sigma ** 2
        if self.weight == "mean" or self.tiling == "random_shift":
            return L_patch
        w = 1.0 if self.weight == "sum" else self.weight
        origins = [None] if self.tiling == "overlap" else itertools.product(*self._origins())
        return w * max(float(self.counts(tuple(image_shape), o).max())
                       for o in origins) * L_patch

    def __repr__(self):
        intensity = "none" if self.intensity is None else self.intensity.mode
        return (f"PatchPrior({type(self.patch_score).__name__}, patch_size={self.patch_size}, "
                f"padding={self.padding!r}, weight={self.weight!r}, tiling={self.tiling!r}, "
                f"intensity={intensity!r})")


class SumPrior(_Prior):
    """Sum of image priors: ``s(x) = Σ_k s_k(x)`` (e.g. TV along each axis)."""

    def __init__(self, priors):
        flat = []
        for p in priors:
            flat.extend(p.priors if isinstance(p, SumPrior) else [p])
        self.priors = flat

    def _check_x(self, x):
        return self.priors[0]._check_x(x)

    def score(self, x, sigma=None, *, rng=None, weight=None):
        arr = self._check_x(x)
        rng = None if rng is None else check_rng(rng)
        total = self.priors[0].score(arr, sigma, rng=rng, weight=weight)
        for p in self.priors[1:]:
            total += p.score(arr, sigma, rng=rng, weight=weight)
        return total

    def score_vjp(self, x, sigma, v, *, rng=None):
        """``Σ_k (∂s_k/∂x)ᵀ v`` (each part's :meth:`PatchPrior.score_vjp`)."""
        rng = None if rng is None else check_rng(rng)
        return sum(p.score_vjp(x, sigma, v, rng=rng) for p in self.priors)

    def log_density(self, x, sigma=None):
        return sum(p.log_density(x, sigma) for p in self.priors)

    def lipschitz(self, image_shape, sigma):
        return sum(p.lipschitz(image_shape, sigma) for p in self.priors)

    def __repr__(self):
        return " + ".join(repr(p) for p in self.priors)


class GaussianPatchScore:
    """Closed-form Gaussian patch prior ``v ~ N(μ, C)``, smoothed: ``N(μ, C + σ² I)``.

    .. math::  s_V(v; σ) = -(C + σ^2 I)^{-1} (v - μ)

    computed through the eigendecomposition ``C = U Λ Uᵀ`` stored at :meth:`fit`.
    """

    def fit(self, patches):
        """Mean and covariance of training patches, shape (n_patches, patch_dim)."""
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        if arr.shape[0] < 2:
            raise ValueError(f"`patches` needs at least 2 rows; got {arr.shape[0]}.")
        X = arr.astype(np.float64)
        self.mean_ = X.mean(axis=0)
        cov = np.cov(X, rowvar=False, bias=True).reshape(X.shape[1], X.shape[1])
        eigval, eigvec = np.linalg.eigh(cov)
        self.eigenvalues_ = np.clip(eigval, 0.0, None)
        self.eigenvectors_ = eigvec
        return self

    def _check_fitted(self):
        if not hasattr(self, "mean_"):
            raise RuntimeError("GaussianPatchScore is not fitted; call fit(patches) first.")

    def score(self, patches, sigma):
        self._check_fitted()
        s2 = 0.0 if sigma is None else float(sigma) ** 2
        if s2 == 0.0 and self.eigenvalues_.min() <= 0:
            raise ValueError("`sigma` must be > 0 for a singular patch covariance.")
        U = self.eigenvectors_.astype(patches.dtype)
        coef = (1.0 / (self.eigenvalues_ + s2)).astype(patches.dtype)
        return -(((patches - self.mean_.astype(patches.dtype)) @ U) * coef) @ U.T

    def input_vjp(self, patches, sigma, v):
        """``Σ_i v_i ∂s_i/∂p = −(C + σ² I)⁻¹ v`` (the Jacobian is symmetric and constant)."""
        return self.score(np.asarray(v) + self.mean_.astype(np.asarray(v).dtype), sigma)

    def log_density(self, patches, sigma):
        self._check_fitted()
        s2 = 0.0 if sigma is None else float(sigma) ** 2
        lam = self.eigenvalues_ + s2
        z = (np.asarray(patches, np.float64) - self.mean_) @ self.eigenvectors_
        return -0.5 * (np.sum(z ** 2 / lam, axis=1) + np.sum(np.log(2 * np.pi * lam)))

    def lipschitz(self, sigma):
        self._check_fitted()
        return 1.0 / (self.eigenvalues_.min() + (0.0 if sigma is None else sigma ** 2))


class KDEPatchScore:
    """Nonparametric patch prior: the Gaussian-KDE score of training patches.

    At noise level σ the KDE with bandwidth ``h`` convolved with ``N(0, σ² I)`` is the KDE
    with bandwidth ``sqrt(h² + σ²)``, so

    .. math::  s_V(v; σ) = ∇ \\log \\frac{1}{T} \\sum_t g_{\\sqrt{h^2+σ^2}}(v - v_t)

    Parameters
    ----------
    patches : ndarray of shape (n_train, patch_dim)
        Training patches (the exact sum over all of them is evaluated, streamed).
    bandwidth : float >= 0, default 0
        Kernel standard deviation ``h`` of the clean-patch KDE, in intensity units: the
        same quantity as :class:`fastscore.kde.GaussianKDE`'s ``bandwidth`` (at
        ``sigma=None`` this score is ``GaussianKDE(h).fit(patches).score``; 0 is the
        empirical distribution, usable only with σ > 0). The noise level is never part
        of it: at level σ the kernel is ``sqrt(h² + σ²)``.
    n_threads : int, optional
    """

    def __init__(self, patches, bandwidth=0.0, *, n_threads=None):
        from .kde import GaussianKDE

        self.bandwidth = check_scalar(bandwidth, "bandwidth", low=0)
        self._train = as_float_array(patches, "patches", ndim=2, finite=True)
        self._kde_class = GaussianKDE
        self.n_threads = n_threads
        self._cache = {}

    def _kde(self, sigma, dtype):
        h = math.hypot(self.bandwidth, 0.0 if sigma is None else sigma)
        if h <= 0:
            raise ValueError("`sigma` must be > 0 when the KDE bandwidth is 0.")
        check_scale(h, "sqrt(bandwidth² + sigma²)", dtype)
        key = (h, np.dtype(dtype))
        kde = self._cache.get(key)
        if kde is None:
            # built before it is published, and returned from the local variable: threads
            # sharing this score may evict each other's entries but never see a half one
            kde = self._kde_class(h, n_threads=self.n_threads)
            kde.fit(self._train.astype(dtype, copy=False))
            while len(self._cache) >= 4:
                try:
                    self._cache.pop(next(iter(self._cache)), None)
                except (StopIteration, RuntimeError):   # emptied / resized by another thread
                    break
            self._cache[key] = kde
        return kde

    def score(self, patches, sigma):
        return self._kde(sigma, patches.dtype).score(patches)

    def log_density(self, patches, sigma):
        return self._kde(sigma, patches.dtype).log_density(patches)


class DistributionPatchScore:
    """Patch score of an analytic distribution (``fastscore.distributions``); σ is ignored.

    Example: ``DistributionPatchScore(GeneralizedGaussianPair(beta, alpha))`` on 2-pixel
    patches is the generalised-Gaussian (α = 1: TV) neighbour prior.
    """

    def __init__(self, distribution: Any) -> None:
        if not callable(getattr(distribution, "score", None)):
            raise TypeError("`distribution` must have a score() method.")
        if not callable(getattr(distribution, "log_density", None)):
            if not callable(getattr(distribution, "logpdf", None)):
                raise TypeError("`distribution` must have a log_density() method.")
            warn_deprecated("DistributionPatchScore: a distribution with logpdf() but no "
                            "log_density() is deprecated; name the method log_density().")
        self.distribution = distribution

    def score(self, patches, sigma=None):
        return np.asarray(self.distribution.score(patches), dtype=patches.dtype)

    def log_density(self, patches, sigma=None):
        method = getattr(self.distribution, "log_density", None)
        if not callable(method):
            method = self.distribution.logpdf        # deprecated protocol, warned at __init__
        return method(patches)


def tv_prior(beta=1.0, alpha=1.0, *, ndim=2, n_threads=None):
    """Generalised-Gaussian neighbour prior ``log p(x) = -β Σ |x_{i+e_a} - x_i|^α + const``.

    The sum runs over neighbour pairs along each of the `ndim` image axes (α = 1 is
    anisotropic total variation); built as a sum of :class:`PatchPrior` on two-pixel
    patches with the pair prior :class:`fastscore.distributions.GeneralizedGaussianPair`.
    """
    from .distributions import GeneralizedGaussianPair

    ndim = check_int(ndim, "ndim", low=2, high=3)
    pair = DistributionPatchScore(GeneralizedGaussianPair(beta, alpha))
    priors = []
    for axis in range(ndim):
        size = [1] * ndim
        size[axis] = 2
        priors.append(PatchPrior(pair, tuple(size), padding="valid", weight="sum",
                                 n_threads=n_threads))
    return SumPrior(priors)

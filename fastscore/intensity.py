"""Global intensity normalisation of images for patch priors.

A learned patch score knows the intensities of its training images only. Used by
:class:`fastscore.prior.PatchPrior`, :class:`IntensityNormalization` maps an image to the
intensities of the training images, ``x ↦ (x − b)/k``, with ``(k, b)`` estimated robustly
and without noise bias from the training statistics (:class:`IntensityReference`), and maps
the score back, ``s(x; σ) = s̃((x − b)/k; σ/k)/k``: ``s(a x + c; a σ) = s(x; σ)/a`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_float_array, check_choice, check_rng, check_scalar

__all__ = ["IntensityNormalization", "IntensityReference"]


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

    def __init__(self, sigma: ArrayLike, low: ArrayLike, high: ArrayLike, *,
                 percentile: float = 1.0) -> None:
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
    def from_images(cls, images: Iterable[ArrayLike], *, percentile: float = 1.0,
                    sigmas: ArrayLike | None = None, n_images: int = 256,
                    n_pixels: int = 65536,
                    rng: int | np.random.Generator | None = None) -> IntensityReference:
        """Statistics of (up to `n_images` of) `images`, a sequence of 2-D/3-D arrays.

        sigmas : increasing positive levels; default 32 geometric levels from 1e-3 to 4
        times the median image range (any level above is extrapolated flat).
        n_pixels : larger images are represented by this many random pixels (the
        percentiles of a large random sample, at a bounded cost for volumes).
        """
        gen = check_rng(rng)
        given = list(images)
        if not given:
            raise ValueError("`images` must hold at least one image.")
        if len(given) > n_images:
            given = [given[i] for i in np.sort(gen.choice(len(given), n_images, False))]
        flat = [np.asarray(im, dtype=np.float64).ravel() for im in given]
        pixels = [im if im.size <= n_pixels else im[gen.integers(0, im.size, n_pixels)]
                  for im in flat]
        q = (percentile, 100.0 - percentile)
        clean = np.array([np.percentile(im, q) for im in pixels])
        spread = float(np.median(clean[:, 1] - clean[:, 0]))
        if not spread > 0:
            raise ValueError("the training images are constant: no intensity scale.")
        grid = (np.geomspace(1e-3, 4.0, 31) * spread if sigmas is None
                else np.asarray(sigmas, dtype=np.float64))
        lows, highs = [np.median(clean[:, 0])], [np.median(clean[:, 1])]
        for s in grid:
            p = np.array([np.percentile(im + s * gen.standard_normal(im.shape), q)
                          for im in pixels])
            lows.append(np.median(p[:, 0]))
            highs.append(np.median(p[:, 1]))
        return cls(np.concatenate([[0.0], grid]), lows, highs, percentile=percentile)

    def _at(self, sigma, values):
        """Values at noise level `sigma`, interpolated in log σ (flat beyond the grid)."""
        if sigma <= self.sigma[1]:
            t = sigma / self.sigma[1]
            return (1 - t) * values[0] + t * values[1]
        return float(np.interp(math.log(sigma), np.log(self.sigma[1:]), values[1:]))

    def calibrate(self, y: ArrayLike, noise_sigma: float = 0.0, *,
                  offset: bool = True) -> tuple[float, float]:
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in model files); :meth:`from_dict` inverts it."""
        return {"sigma": self.sigma.tolist(), "low": self.low.tolist(),
                "high": self.high.tolist(), "percentile": self.percentile}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityReference:
        """The reference described by :meth:`to_dict` output."""
        return cls(d["sigma"], d["low"], d["high"], percentile=d["percentile"])

    def __repr__(self) -> str:
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

    def __init__(self, reference: IntensityReference, mode: str = "affine") -> None:
        if not isinstance(reference, IntensityReference):
            raise TypeError("`reference` must be an IntensityReference (a model trained on "
                            f"images stores one); got {type(reference).__name__}.")
        self.reference = reference
        self.mode = check_choice(mode, "mode", ("scale", "affine"))
        self.fixed: list[tuple[float, float]] | None = None

    def calibrate(self, images: Sequence[ArrayLike],
                  noise_sigma: float) -> list[tuple[float, float]]:
        """Fix ``(k, b)`` per image of `images` (a list/array of images); one image's
        values then apply to every image of a batch (e.g. posterior chains)."""
        fixed = self._estimate(images, noise_sigma)
        self.fixed = fixed
        return fixed

    def factors(self, images: Sequence[ArrayLike],
                sigma: float | None) -> list[tuple[float, float]]:
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

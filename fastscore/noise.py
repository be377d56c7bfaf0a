"""Noise-level estimation from a single image.

For white Gaussian noise of level σ, the finest diagonal band of the orthonormal Haar
transform (``HH = (a − b − c + d)/2`` on each 2×2 block; ``HHH`` on 2×2×2 blocks of a
volume, ``/ √8``) holds σ-level noise and little of a smooth image, and the median absolute
deviation is robust to the edges that leak into it (Donoho & Johnstone 1994):

.. math::  \\hat σ = \\operatorname{median}(|HH - \\operatorname{median} HH|) / Φ^{-1}(3/4)

Its bias and spread on the benchmark images over σ ∈ [0.01, 0.3]:
``benchmarks/README.md`` (denoise).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_float_array

__all__ = ["estimate_noise_sigma"]

_MAD_TO_SIGMA = 1.0 / 0.6744897501960817          # 1 / Φ⁻¹(3/4)


def _diagonal_band(arr: NDArray[np.float64]) -> NDArray[np.float64]:
    """The finest diagonal Haar band of a 2-D or 3-D array (even-cropped)."""
    crop = tuple(slice(0, n - n % 2) for n in arr.shape)
    a = arr[crop]
    if arr.ndim == 2:
        return (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2.0
    band = np.zeros(tuple(n // 2 for n in a.shape))
    for i in (0, 1):
        for j in (0, 1):
            for k in (0, 1):
                band += (-1.0) ** (i + j + k) * a[i::2, j::2, k::2]
    return band / np.sqrt(8.0)


def estimate_noise_sigma(image: ArrayLike) -> float:
    """Estimate the standard deviation of additive white Gaussian noise in `image`.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (D, H, W), at least 2 pixels per axis

    Returns
    -------
    float
        ``σ̂`` in the units of `image`.

    Raises
    ------
    ValueError
        The image is too small, constant, or its finest diagonal band is (almost)
        zero, so no noise can be measured.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.full((256, 256), 0.5) + 0.1 * rng.standard_normal((256, 256))
    >>> round(estimate_noise_sigma(x), 2)
    0.1
    """
    arr = as_float_array(image, "image", ndim=(2, 3), finite=True).astype(np.float64)
    if min(arr.shape) < 2:
        raise ValueError(f"`image` needs at least 2 pixels along every axis to estimate "
                         f"the noise level; got shape {arr.shape}.")
    if np.ptp(arr) == 0:
        raise ValueError("cannot estimate the noise level of a constant image (every pixel "
                         f"is {float(arr.flat[0]):g}); give the noise level explicitly.")
    band = _diagonal_band(arr).ravel()
    mad = float(np.median(np.abs(band - np.median(band))))
    if mad <= 1e-12 * float(np.max(np.abs(arr))):
        raise ValueError("cannot estimate the noise level: the finest diagonal wavelet band "
                         "of `image` is zero (a noise-free piecewise-constant image?); give "
                         "the noise level explicitly.")
    return mad * _MAD_TO_SIGMA

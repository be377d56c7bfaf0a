"""Image quality metrics: PSNR and Gaussian-window SSIM, for 2-D images and 3-D volumes.

The peak (``data_range``) defaults to the range of the clean *reference* image,
``max(reference) - min(reference)``, as DESIGN.md specifies for reporting (noise levels and
PSNR are quoted relative to the clean image). Both metrics are computed in float64 whatever
the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_float_array, check_scalar

__all__ = ["psnr", "ssim", "mse"]

# SSIM constants of Wang et al. (2004) and scikit-image's Gaussian window
_K1, _K2 = 0.01, 0.03
_SIGMA, _TRUNCATE = 1.5, 3.5


def _pair(reference: ArrayLike, estimate: ArrayLike, ndim: int | Sequence[int] | None = None
          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ref = as_float_array(reference, "reference", ndim=ndim, finite=True)
    est = as_float_array(estimate, "estimate", ndim=ndim, finite=True)
    if ref.shape != est.shape:
        raise ValueError(f"`reference` and `estimate` must have the same shape; got "
                         f"{ref.shape} and {est.shape}.")
    return ref.astype(np.float64, copy=False), est.astype(np.float64, copy=False)


def _data_range(ref: NDArray[Any], data_range: float | None) -> float:
    if data_range is None:
        value = float(ref.max() - ref.min())
        if value <= 0:
            raise ValueError("`reference` is constant, so its range (the default peak) is 0; "
                             "pass `data_range` explicitly.")
        return value
    return check_scalar(data_range, "data_range", low=0.0, low_inclusive=False)


def mse(reference: ArrayLike, estimate: ArrayLike) -> float:
    """Mean squared error :math:`\\frac1N \\sum_i (x_i - \\hat x_i)^2`, in float64."""
    ref, est = _pair(reference, estimate)
    return float(np.mean((ref - est) ** 2))


def psnr(reference: ArrayLike, estimate: ArrayLike, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB.

    .. math::

        \\mathrm{PSNR} = 10 \\log_{10} \\frac{R^2}{\\frac1N \\sum_i (x_i - \\hat x_i)^2}

    Parameters
    ----------
    reference : ndarray
        The clean image :math:`x` (any shape; all entries count).
    estimate : ndarray
        :math:`\\hat x`, same shape.
    data_range : float > 0, optional
        The peak :math:`R`; default: the range of the reference,
        ``reference.max() - reference.min()`` (an error if the reference is constant).

    Returns
    -------
    psnr : float
        In dB; ``inf`` when the images are identical.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.metrics import psnr
    >>> x = np.linspace(0, 1, 100).reshape(10, 10)
    >>> round(psnr(x, x + 0.1), 6)      # constant shift 0.1 on range 1: 20 dB
    20.0
    """
    ref, est = _pair(reference, estimate)
    R = _data_range(ref, data_range)
    err = float(np.mean((ref - est) ** 2))
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(R * R / err)


@overload
def ssim(reference: ArrayLike, estimate: ArrayLike, data_range: float | None = None, *,
         full: Literal[False] = False) -> float: ...
@overload
def ssim(reference: ArrayLike, estimate: ArrayLike, data_range: float | None = None, *,
         full: Literal[True]) -> tuple[float, NDArray[np.float64]]: ...
def ssim(reference: ArrayLike, estimate: ArrayLike, data_range: float | None = None, *,
         full: bool = False) -> float | tuple[float, NDArray[np.float64]]:
    """Structural similarity (SSIM) with a Gaussian window, for 2-D images and 3-D volumes.

    .. math::

        \\mathrm{SSIM}(p) = \\frac{(2\\mu_x\\mu_y + C_1)(2\\sigma_{xy} + C_2)}
        {(\\mu_x^2 + \\mu_y^2 + C_1)(\\sigma_x^2 + \\sigma_y^2 + C_2)}, \\qquad
        C_1 = (0.01 R)^2,\\ C_2 = (0.03 R)^2

    with local means, variances and covariance from a Gaussian window of standard deviation
    1.5 pixels truncated at 3.5 standard deviations (an 11-pixel window), population
    (not sample) covariances, and reflected borders; the result is the mean of the SSIM map
    over the pixels at least 5 away from the border. This is Wang et al. (2004) as
    implemented by scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=R)``, which it matches to rounding.

    Parameters
    ----------
    reference : ndarray of shape (H, W) or (D, H, W)
        The clean image :math:`x`; every extent at least 11.
    estimate : ndarray
        :math:`y`, same shape.
    data_range : float > 0, optional
        :math:`R`; default: the range of the reference.
    full : bool, default False
        Also return the SSIM map.

    Returns
    -------
    ssim : float
        In [-1, 1]; 1 for identical images.
    ssim_map : ndarray of float64, shape of the input
        Only with ``full=True`` (the border band is included in the map, not in the mean).

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE Trans. Image Process. 13(4), 2004.
    """
    from scipy.ndimage import gaussian_filter

    x, y = _pair(reference, estimate, ndim=(2, 3))
    radius = int(_TRUNCATE * _SIGMA + 0.5)
    win = 2 * radius + 1
    if min(x.shape) < win:
        raise ValueError(f"SSIM needs every image extent to be at least {win} (the Gaussian "
                         f"window); got shape {x.shape}.")
    R = _data_range(x, data_range)

    def blur(a: NDArray[np.float64]) -> NDArray[np.float64]:
        return gaussian_filter(a, sigma=_SIGMA, truncate=_TRUNCATE, mode="reflect")

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    C1, C2 = (_K1 * R) ** 2, (_K2 * R) ** 2
    S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux ** 2 + uy ** 2 + C1) * (vx + vy + C2))
    inner = S[tuple(slice(radius, n - radius) for n in S.shape)]
    value = float(inner.mean(dtype=np.float64))
    return (value, S) if full else value

"""Parallel-beam CT (:class:`ParallelBeamCT`, re-exported by :mod:`fastscore.operators`):
an exact ray-pixel system matrix built once, its transpose, and filtered back-projection."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse
from numpy.typing import ArrayLike, NDArray

from ._linear import LinearOperator, _check_shape, _real_of
from ._validation import as_float_array, check_choice, check_int

__all__ = ["ParallelBeamCT"]

FBP_FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")


def _ray_pixel_lengths(image_shape, cos, sin, offsets):
    """Exact intersection lengths of the rays ``{p : p·(cos, sin) = offset}`` with the pixels.

    Siddon's method, vectorised over rays: the ray ``p(t) = offset (cos, sin) + t (−sin, cos)``
    (unit speed) crosses the grid lines x = j − W/2 and y = H/2 − i at parameters t; sorted
    and clipped to the image box, consecutive crossings bound segments that lie in one
    pixel each, found from the segment midpoint (pixels are half-open, [j, j + 1)).
    Segments shorter than 1e-10 (rounding at grid vertices) are dropped.

    Returns (ray index, pixel index, length) arrays.
    """
    H, W = image_shape
    px, py = offsets * cos, offsets * sin
    dx, dy = -sin, cos
    xs = np.arange(W + 1) - W / 2
    ys = np.arange(H + 1) - H / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = (xs[None, :] - px[:, None]) / dx[:, None]
        ty = (ys[None, :] - py[:, None]) / dy[:, None]

    def slab(t, p, d, half):
        inside = (p >= -half) & (p <= half)
        lo = np.where(d != 0, np.minimum(t[:, 0], t[:, -1]), np.where(inside, -np.inf, np.inf))
        hi = np.where(d != 0, np.maximum(t[:, 0], t[:, -1]), np.where(inside, np.inf, -np.inf))
        return lo, hi

    lo_x, hi_x = slab(tx, px, dx, W / 2)
    lo_y, hi_y = slab(ty, py, dy, H / 2)
    lo, hi = np.maximum(lo_x, lo_y), np.minimum(hi_x, hi_y)
    hits = lo < hi
    lo, hi = np.where(hits, lo, 0.0), np.where(hits, hi, 0.0)
    t = np.concatenate([lo[:, None], hi[:, None], tx, ty], axis=1)
    t = np.where(np.isfinite(t), t, lo[:, None])
    np.clip(t, lo[:, None], hi[:, None], out=t)
    t.sort(axis=1)
    lengths = np.diff(t, axis=1)
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    cols = np.floor(px[:, None] + mid * dx[:, None] + W / 2).astype(np.intp)
    rows = np.floor(H / 2 - (py[:, None] + mid * dy[:, None])).astype(np.intp)
    keep = (lengths > 1e-10) & (cols >= 0) & (cols < W) & (rows >= 0) & (rows < H)
    ray = np.broadcast_to(np.arange(len(offsets))[:, None], keep.shape)[keep]
    return ray, rows[keep] * W + cols[keep], lengths[keep]


def _filtered_backprojection(arr, angles, image_shape, filter):
    """Parallel-beam FBP of a checked sinogram batch ``(n, n_angles, n_detectors)`` (bins of
    spacing 1 centred at ``(n_detectors − 1)/2``) onto an (H, W) image; see
    :meth:`ParallelBeamCT.fbp`."""
    n_angles, n_det = arr.shape[1:]
    H, W = image_shape
    size = max(64, 1 << int(math.ceil(math.log2(2 * n_det))))
    # ramp filter, spatial form (Kak & Slaney eq. 61), detector spacing 1
    h = np.zeros(size)
    h[0] = 0.25
    odd = np.concatenate([np.arange(1, size // 2 + 1, 2), np.arange(size // 2 - 1, 0, -2)])
    h[1::2] = -1.0 / (np.pi * odd) ** 2
    response = np.real(np.fft.fft(h))
    f = np.fft.fftfreq(size)
    window = {"ramp": 1.0, "shepp-logan": np.sinc(f), "cosine": np.cos(np.pi * f),
              "hamming": 0.54 + 0.46 * np.cos(2 * np.pi * f),
              "hann": 0.5 + 0.5 * np.cos(2 * np.pi * f)}[filter]
    response = response * window
    filtered = np.real(np.fft.ifft(np.fft.fft(arr, n=size, axis=-1) * response, axis=-1))
    filtered = filtered[..., :n_det]
    # angular weights: half the gaps to the neighbouring angles (mod π)
    folded = np.mod(angles, np.pi)
    order = np.argsort(folded)
    sorted_angles = folded[order]
    gaps = np.diff(np.concatenate([sorted_angles, [sorted_angles[0] + np.pi]]))
    weights = np.empty(n_angles)
    weights[order] = 0.5 * (gaps + np.roll(gaps, 1))
    # pixel-driven back-projection: linear interpolation at each pixel centre's s
    xc = np.arange(W) - W / 2 + 0.5
    yc = H / 2 - np.arange(H) - 0.5
    x_flat = np.broadcast_to(xc, (H, W)).ravel()
    y_flat = np.broadcast_to(yc[:, None], (H, W)).ravel()
    bins = np.arange(n_det)
    centre = (n_det - 1) / 2
    out = np.zeros((arr.shape[0], H * W))
    for a, angle in enumerate(angles):
        u = math.cos(angle) * x_flat + (math.sin(angle) * y_flat + centre)
        for b in range(arr.shape[0]):
            out[b] += np.interp(u, bins, weights[a] * filtered[b, a], left=0.0, right=0.0)
    return out.reshape((arr.shape[0], H, W)).astype(_real_of(arr.dtype))


def _system_matrix(image_shape, theta, offsets):
    """Sparse matrix of exact ray–pixel lengths, one row per ray ``{p : p·(cos θ, sin θ) = s}``.

    Built in chunks of rays (bounded memory) with :func:`_ray_pixel_lengths`; directions
    within 1e-12 of an axis are snapped to it so axis-aligned rays are exact.

    Parameters
    ----------
    image_shape : tuple (H, W)
    theta, offsets : ndarray of shape (n_rays,)
        Normal angle and signed distance from the image centre of each ray.

    Returns
    -------
    scipy.sparse.csr_array of shape (n_rays, H · W), float64
    """
    H, W = image_shape
    cos, sin = np.cos(theta), np.sin(theta)
    cos[np.abs(cos) < 1e-12] = 0.0   # exact axis-aligned rays
    sin[np.abs(sin) < 1e-12] = 0.0
    n_rays = len(offsets)
    chunk = max(1, (1 << 21) // (H + W + 4))
    rows, cols, vals = [], [], []
    for start in range(0, n_rays, chunk):
        part = slice(start, start + chunk)
        r, c, v = _ray_pixel_lengths((H, W), cos[part], sin[part], offsets[part])
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
    matrix = scipy.sparse.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rays, H * W))
    matrix.sum_duplicates()
    return matrix


class _SparseProjector(LinearOperator):
    """A real 2-D projector given by a sparse system matrix ``self.matrix`` (float64, set
    by the subclass): forward ``A x``, the exact transpose as adjoint, float32 copies made
    on first use, and a circulant gram preconditioner."""

    _gram_spectrum = None

    def _init_matrix(self, matrix):
        self.matrix = matrix
        self._matrices = {np.dtype(np.float64): matrix}

    def _matrix_for(self, dtype):
        dtype = np.dtype(dtype)
        if dtype not in self._matrices:
            self._matrices[dtype] = self.matrix.astype(dtype)
        return self._matrices[dtype]

    def _forward(self, x):
        A = self._matrix_for(x.dtype)
        flat = x.reshape(x.shape[0], -1)
        out = (A @ flat.T).T if flat.shape[0] > 1 else (A @ flat[0])[np.newaxis]
        return np.ascontiguousarray(out).reshape((x.shape[0],) + self.shape_out)

    def _adjoint(self, y):
        A = self._matrix_for(y.dtype)
        flat = y.reshape(y.shape[0], -1)
        out = (A.T @ flat.T).T if flat.shape[0] > 1 else (A.T @ flat[0])[np.newaxis]
        return np.ascontiguousarray(out).reshape((y.shape[0],) + self.shape_in)

    def _measured_gram_spectrum(self):
        """λ(ω) ≥ 0 on the (H, W) rfft grid: the radially averaged |DFT| of the kernel
        ``A*A e_c`` (e_c the impulse at pixel (H // 2, W // 2), centred, periodic),
        ∝ n_angles / |ω| for parallel beams; computed once."""
        if self._gram_spectrum is None:
            H, W = self.shape_in
            impulse = np.zeros((1, H, W))
            impulse[0, H // 2, W // 2] = 1.0
            kernel = np.roll(self._adjoint(self._forward(impulse))[0], (-(H // 2), -(W // 2)),
                             axis=(0, 1))
            spectrum = np.abs(np.fft.rfft2(kernel).real)
            radius = np.hypot(np.fft.fftfreq(H)[:, None], np.fft.rfftfreq(W)[None, :])
            bins = np.rint(radius * max(H, W)).astype(np.intp)
            total = np.bincount(bins.ravel(), spectrum.ravel())
            count = np.bincount(bins.ravel())
            self._gram_spectrum = (total / np.maximum(count, 1))[bins]
        return self._gram_spectrum

    def gram_preconditioner(self, weight, shift):
        """Circulant approximation (not exact): ``M v = F⁻¹ (F v / (weight · λ + shift))``,
        F the (H, W) DFT and λ the measured, radially averaged spectrum of A*A (the inverse
        ramp filter, n_angles / |ω| up to a constant). Measured on 128², 30 views: the
        residual after 10–30 iterations is 2–4× below CG's and HQS data steps reach 1e-6
        in ~110 instead of ~140 iterations; it does not model the angular gaps of few-view
        data, so the final rate stays CG's. (Zero-padding to 2× gave the same residuals at
        5× the FFT cost.)"""
        weight, shift = self._check_gram_args(weight, shift)
        H, W = self.shape_in
        inverse = 1.0 / (weight * self._measured_gram_spectrum() + shift)
        cache = {}

        def apply(v):
            v = np.asarray(v)
            if v.dtype not in cache:
                cache[v.dtype] = inverse.astype(_real_of(v.dtype))
            z = scipy.fft.rfft2(v)
            z *= cache[v.dtype]
            return scipy.fft.irfft2(z, s=(H, W)).astype(v.dtype, copy=False)
        return apply


class ParallelBeamCT(_SparseProjector):
    """Parallel-beam CT projector: a sparse system matrix of exact ray–pixel lengths.

    Geometry: pixels of size 1, the image centred at the origin; column j covers
    x ∈ [j − W/2, j + 1 − W/2), row i covers y ∈ (H/2 − i − 1, H/2 − i] (row 0 at the top,
    y up). For the angle θ and detector bin k (spacing 1, centred: offset
    ``s_k = k − (n_detectors − 1)/2``) one ray through the bin centre,
    ``{p : p·(cos θ, sin θ) = s_k}``; the measurement is the line integral of the
    piecewise-constant image along it, ``y[θ, k] = Σ_p a_{θk,p} x_p`` with ``a`` the length
    of the ray inside pixel p (Siddon's method, exact up to rounding). At θ = 0 the rays are
    vertical (column sums, s increasing with the column index); at θ = π/2 horizontal
    (s increasing upwards). The adjoint is the exact transpose.

    Parameters
    ----------
    image_shape : tuple (H, W)
    angles : int or array_like of float
        Projection angles in radians, or a number n of angles ``π k / n``, k < n.
    n_detectors : int, optional
        Detector bins per angle; default ``ceil(sqrt(H² + W²))``, which covers the image
        at every angle.

    Attributes
    ----------
    matrix : scipy.sparse.csr_array of shape (n_angles · n_detectors, H · W), float64
        The system matrix (angle-major rows).

    Notes
    -----
    The matrix is built once (vectorised over rays, in chunks of bounded memory); it holds
    about ``n_angles · n_detectors · 1.5 max(H, W)`` nonzeros. float32 inputs use a float32
    copy made on first use.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.operators import ParallelBeamCT
    >>> x = np.zeros((64, 64)); x[16:48, 16:48] = 1
    >>> A = ParallelBeamCT(x.shape, 60)                 # 60 angles in [0, π)
    >>> y = A.forward(x)
    >>> y.shape, float(y[0].max())                      # vertical rays cross 32 pixels
    ((60, 91), 32.0)
    >>> bool(np.abs(A.fbp(y) - x).mean() < 0.05)
    True
    """

    def __init__(self, image_shape: Sequence[int], angles: int | ArrayLike,
                 n_detectors: int | None = None) -> None:
        H, W = _check_shape(image_shape, "image_shape", (2,))
        if isinstance(angles, numbers.Integral) and not isinstance(angles, (bool, np.bool_)):
            n = check_int(angles, "angles", low=1)
            angles = np.pi * np.arange(n) / n
        angles = as_float_array(angles, "angles", ndim=1, dtype=np.float64, finite=True)
        self.angles = angles.copy()
        self.angles.flags.writeable = False
        self.n_detectors = (int(math.ceil(math.hypot(H, W))) if n_detectors is None
                            else check_int(n_detectors, "n_detectors", low=1))
        super().__init__((H, W), (len(self.angles), self.n_detectors))
        self._init_matrix(self._build())

    def _build(self):
        n_det = self.shape_out[1]
        offsets = np.arange(n_det) - (n_det - 1) / 2
        return _system_matrix(self.shape_in, np.repeat(self.angles, n_det),
                              np.tile(offsets, len(self.angles)))

    def fbp(self, sinogram: ArrayLike, *, filter: str = "ramp") -> NDArray[Any]:
        """Filtered back-projection: a fast approximate inverse for initialisation and comparison.

        .. math::

            \\hat x(p) = \\sum_a w_a \\, (h * y_a)(p \\cdot \\theta_a)

        with h the discrete ramp filter (Kak & Slaney, spatial form, zero-padded so there is
        no wrap-around), optionally windowed; ``(h * y_a)`` linearly interpolated at each
        pixel centre's detector coordinate; and ``w_a`` the angular spacing around angle a
        (π / n_angles for equally spaced angles in [0, π)).

        Parameters
        ----------
        sinogram : ndarray of shape (n_angles, n_detectors) or (n, n_angles, n_detectors)
        filter : {"ramp", "shepp-logan", "cosine", "hamming", "hann"}
            Window on the ramp (f in cycles per bin, ``|f| ≤ 1/2``): none; sinc(f); cos(πf);
            0.54 + 0.46 cos(2πf); 0.5 + 0.5 cos(2πf). Windows trade resolution for noise.

        Returns
        -------
        image : ndarray of shape (H, W) or (n, H, W), the dtype of `sinogram`
        """
        check_choice(filter, "filter", FBP_FILTERS)
        arr, batched = self._check(sinogram, "sinogram", self.shape_out, False, finite=True)
        out = _filtered_backprojection(arr, self.angles, self.shape_in, filter)
        return out if batched else out[0]

    def _describe(self):
        return (f"image_shape={self.shape_in}, n_angles={self.shape_out[0]}, "
                f"n_detectors={self.n_detectors}")

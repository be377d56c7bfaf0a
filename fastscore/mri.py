"""Multi-coil MRI: the SENSE forward model, coil sensitivity maps and 3-D Cartesian masks.

``SENSE(coil_maps, mask)`` maps a complex image x (2-D ``(H, W)`` or 3-D ``(D, H, W)``) to
the k-space of every coil,

.. math::  y_c = M \\odot S\\, F (s_c \\odot x), \\qquad c = 1 \\dots C

with F the orthonormal DFT over all image axes, S = ``fftshift`` (zero frequency at index
``n // 2`` on every axis, the layout of :class:`fastscore.operators.MRI`) and M the
boolean sampling mask shared by the coils. The names are re-exported by
:mod:`fastscore.operators`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._linear import LinearOperator, _Apply, _check_shape
from ._validation import as_float_array, check_int, check_rng, check_scalar

__all__ = ["SENSE", "birdcage_maps", "estimate_coil_maps", "cartesian_mask_3d"]


def _check_mask(mask: ArrayLike, shape: tuple[int, ...], name: str = "mask"
                ) -> NDArray[np.bool_]:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"`{name}` must be a boolean array; got dtype {mask.dtype}.")
    if mask.shape != tuple(shape):
        raise ValueError(f"`{name}` must have the image shape {tuple(shape)} (the coil maps' "
                         f"shape without the coil axis); got {mask.shape}.")
    if not mask.any():
        raise ValueError(f"`{name}` samples nothing (all False); at least one k-space entry "
                         "must be measured.")
    return mask


class SENSE(LinearOperator):
    """Multi-coil Cartesian MRI (SENSE): ``y_c = M ⊙ fftshift(F (s_c ⊙ x))``.

    Adjoint ``A* y = Σ_c conj(s_c) ⊙ Fᴴ ifftshift(M ⊙ y_c)``. The image is complex
    (``complex_domain``), the measurements ``(C, *image_shape)`` complex with zeros where
    the mask is False. :meth:`norm_squared` returns the bound ``max_p Σ_c |s_c(p)|² ≥ ‖A‖²``
    (exact for a full mask; 1 for maps normalised by their root sum of squares; measured
    within 1–2 % of ‖A‖² for 4× undersampling with smooth maps).

    Parameters
    ----------
    coil_maps : array_like of complex, shape (C, H, W) or (C, D, H, W)
        Coil sensitivities s_c (finite; real maps are promoted to complex).
    mask : array_like of bool, shape (H, W) or (D, H, W)
        Sampled k-space locations in the centred layout (:func:`fastscore.operators.
        cartesian_mask`, :func:`cartesian_mask_3d`); must sample something.

    Raises
    ------
    ValueError
        `coil_maps` not 3-D/4-D or empty or non-finite; `mask` of a different shape than
        the maps' image axes, or sampling nothing.
    TypeError
        `mask` not boolean; `coil_maps` not numeric.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.operators import SENSE, birdcage_maps, cartesian_mask
    >>> A = SENSE(birdcage_maps((64, 64), 4), cartesian_mask((64, 64), 4, rng=0))
    >>> x = np.ones((64, 64), dtype=np.complex64)
    >>> A.forward(x).shape, A.forward(x).dtype, A.adjoint(A.forward(x)).shape
    ((4, 64, 64), dtype('complex64'), (64, 64))
    """

    complex_domain = True
    complex_range = True

    def __init__(self, coil_maps: ArrayLike, mask: ArrayLike) -> None:
        maps = as_float_array(coil_maps, "coil_maps", ndim=(3, 4), allow_complex=True,
                              finite=True)
        if maps.shape[0] < 1 or maps.size == 0:
            raise ValueError(f"`coil_maps` must be non-empty (C, H, W) or (C, D, H, W); got "
                             f"shape {maps.shape}.")
        image_shape = maps.shape[1:]
        mask = _check_mask(mask, image_shape)
        super().__init__(image_shape, maps.shape)
        self.n_coils = maps.shape[0]
        self.coil_maps = maps.astype(np.complex128)
        self.coil_maps.flags.writeable = False
        self.mask = mask.copy()
        self.mask.flags.writeable = False
        self._axes = tuple(range(-len(image_shape), 0))
        self._mask_unshifted = np.fft.ifftshift(self.mask)
        self._maps: dict[Any, NDArray[Any]] = {}    # maps in the working dtype

    @property
    def measured(self) -> NDArray[np.bool_] | None:
        return np.broadcast_to(self.mask, self.shape_out)

    @property
    def n_measurements(self) -> int:
        return self.n_coils * int(np.count_nonzero(self.mask))

    @property
    def acceleration(self) -> float:
        """Fully sampled size over the number of sampled k-space locations."""
        return self.mask.size / int(np.count_nonzero(self.mask))

    def _maps_for(self, dtype):
        if dtype not in self._maps:
            self._maps[dtype] = self.coil_maps.astype(dtype)
        return self._maps[dtype]

    def _forward(self, x):
        # x: (n, *image); coils one at a time (bounded memory: one coil image per call)
        out = np.empty((x.shape[0],) + self.shape_out, dtype=x.dtype)
        maps = self._maps_for(x.dtype)
        for c in range(self.n_coils):
            k = scipy.fft.fftn(x * maps[c], axes=self._axes, norm="ortho", overwrite_x=True)
            k *= self._mask_unshifted
            out[:, c] = np.fft.fftshift(k, axes=self._axes)
        return out

    def _adjoint(self, y):
        out = np.zeros((y.shape[0],) + self.shape_in, dtype=y.dtype)
        maps = self._maps_for(y.dtype)
        for c in range(self.n_coils):
            k = np.fft.ifftshift(y[:, c], axes=self._axes) * self._mask_unshifted
            img = scipy.fft.ifftn(k, axes=self._axes, norm="ortho", overwrite_x=True)
            img *= maps[c].conj()
            out += img
        return out

    def _closed_form_norm_squared(self):
        # ‖A x‖² = Σ_c ‖M F s_c x‖² ≤ Σ_c ‖s_c x‖² ≤ max_p Σ_c |s_c(p)|² ‖x‖²: the bound is
        # exact for a full mask and within 1-2 % for undersampled smooth maps (the top of
        # A*A's spectrum is a cluster, so Lanczos converges slowly; the bound is safe for
        # step sizes). estimate_norm_squared() gives the iterative value.
        return float(np.max(np.sum(np.abs(self.coil_maps) ** 2, axis=0)))

    def gram_preconditioner(self, weight: float, shift: float) -> _Apply | None:
        """Exact for a fully sampled mask: then ``A*A = diag(ρ)`` with ``ρ = Σ_c |s_c|²`` and
        ``M v = v / (weight · ρ + shift)``. None for an undersampled mask: the single-coil
        Fourier preconditioner ``F⁻¹ (F v / (weight · m + shift))`` was measured to *slow*
        conjugate gradients on SENSE (64², 8 birdcage coils, 4× and 8×: 127–131 iterations
        against 111 plain), since the coils fill the unsampled frequencies and A*A is far
        better conditioned than the mask suggests."""
        weight, shift = self._check_gram_args(weight, shift)
        if not self.mask.all():
            return None
        inverse = 1.0 / (weight * np.sum(np.abs(self.coil_maps) ** 2, axis=0) + shift)
        cache = {}

        def apply(v):
            v = np.asarray(v)
            if v.dtype not in cache:
                cache[v.dtype] = inverse.astype(v.real.dtype)
            return v * cache[v.dtype]
        return apply

    def _describe(self):
        return (f"n_coils={self.n_coils}, image_shape={self.shape_in}, "
                f"acceleration={self.acceleration:.3g}")


def _grid(shape):
    """Pixel-centre coordinates in [-1, 1] on the longest axis, per axis (open grids)."""
    scale = max(shape) / 2.0
    return np.meshgrid(*[(np.arange(n) + 0.5 - n / 2.0) / scale for n in shape],
                       indexing="ij", sparse=True)


def birdcage_maps(shape: Sequence[int], n_coils: int, *, radius: float = 1.5,
                  n_rings: int | None = None, dtype: DTypeLike = np.complex64
                  ) -> NDArray[np.complexfloating]:
    """Synthetic smooth coil sensitivities of a birdcage-like array, normalised to RSS 1.

    Coil c sits at angle ``θ_c = 2π c / n_rings-per-ring`` on a circle of radius `radius`
    (image half-width units) around the field of view (3-D: on `n_rings` rings equally
    spaced along the first axis). Its raw sensitivity at point p is

    .. math::  b_c(p) = \\frac{e^{i(θ_c + \\arg(p - r_c))}}{1 + |p - r_c|^2}

    (a magnitude falling with distance and a phase winding around the coil), and the maps
    are ``s_c = b_c / \\sqrt{Σ_k |b_k|^2}`` so that ``Σ_c |s_c|² = 1`` at every pixel.

    Parameters
    ----------
    shape : tuple (H, W) or (D, H, W)
    n_coils : int >= 1
    radius : float > 0
        Distance of the coils from the centre (1 = the half-width of the longest axis).
    n_rings : int, optional
        3-D only: rings of coils along the first axis (default 2 when ``n_coils >= 4``,
        else 1); coils are spread over the rings as evenly as possible.
    dtype : complex64 or complex128

    Returns
    -------
    ndarray of shape ``(n_coils, *shape)``
    """
    shape = _check_shape(shape, "shape", (2, 3))
    n_coils = check_int(n_coils, "n_coils", low=1)
    radius = check_scalar(radius, "radius", low=0, low_inclusive=False)
    dtype = np.dtype(dtype)
    if dtype.kind != "c":
        raise TypeError(f"`dtype` must be complex64 or complex128; got {dtype}.")
    coords = _grid(shape)
    y, x = coords[-2], coords[-1]
    if len(shape) == 3:
        n_rings = (2 if n_coils >= 4 else 1) if n_rings is None else check_int(
            n_rings, "n_rings", low=1, high=n_coils)
        ring_of = np.arange(n_coils) * n_rings // n_coils
        z_extent = shape[0] / max(shape)
        ring_z = (np.arange(n_rings) + 0.5 - n_rings / 2.0) * (2 * z_extent / n_rings)
    raw = np.empty((n_coils,) + shape, dtype=np.complex128)
    for c in range(n_coils):
        if len(shape) == 3:
            members = np.flatnonzero(ring_of == ring_of[c])
            k, m = int(np.searchsorted(members, c)), len(members)
            theta = 2 * np.pi * k / m + np.pi * ring_of[c] / max(m, 1)
            dz = coords[0] - ring_z[ring_of[c]]
        else:
            theta, dz = 2 * np.pi * c / n_coils, 0.0
        dx, dy = x - radius * np.cos(theta), y - radius * np.sin(theta)
        dist2 = dx ** 2 + dy ** 2 + dz ** 2
        raw[c] = np.exp(1j * (theta + np.arctan2(dy, dx))) / (1.0 + dist2)
    raw /= np.sqrt(np.sum(np.abs(raw) ** 2, axis=0))
    return raw.astype(dtype)


def _calibration_region(mask):
    """Slices of the largest fully sampled box centred on the zero frequency."""
    centre = tuple(n // 2 for n in mask.shape)
    if not mask[centre]:
        raise ValueError("`kspace` has no sample at the zero frequency (centred layout): "
                         "cannot find a calibration region; pass `calibration_size`.")
    half = [0] * mask.ndim
    grown = True
    while grown:
        grown = False
        for a in range(mask.ndim):
            trial = list(half)
            trial[a] += 1
            box = tuple(slice(max(0, c - h), min(n, c + h + 1))
                        for c, h, n in zip(centre, trial, mask.shape))
            if trial[a] <= mask.shape[a] // 2 and mask[box].all():
                half, grown = trial, True
    return tuple(min(n, 2 * h + 1) for h, n in zip(half, mask.shape))


def estimate_coil_maps(kspace: ArrayLike, *, calibration_size: int | Sequence[int] | None = None,
                       threshold: float = 0.05) -> NDArray[np.complexfloating]:
    """Coil sensitivities from the fully sampled k-space centre (low-resolution RSS).

    The calibration region (a centred box of `calibration_size`, by default the largest
    fully sampled box around the zero frequency) is kept with a Hann taper, the rest set
    to zero; its inverse DFT gives low-resolution coil images ``I_c`` and the maps are
    ``s_c = I_c / sqrt(Σ_k |I_k|²)`` where that root sum of squares is above `threshold`
    times its maximum, 0 elsewhere (background). The maps carry the low-resolution
    phase of the object; a SENSE reconstruction with them returns the image times that
    phase's conjugate (a smooth phase, invisible in the magnitude).

    Parameters
    ----------
    kspace : ndarray of complex, shape (C, H, W) or (C, D, H, W)
        Centred k-space of every coil (zeros where unsampled).
    calibration_size : int or tuple of int, optional
        Size of the calibration box per image axis.
    threshold : float in [0, 1)
        Relative RSS level below which the maps are zero.

    Returns
    -------
    ndarray of complex, shape of `kspace`
    """
    arr = as_float_array(kspace, "kspace", ndim=(3, 4), allow_complex=True, finite=True)
    threshold = check_scalar(threshold, "threshold", low=0, high=1, high_inclusive=False)
    image_shape = arr.shape[1:]
    sampled = np.any(arr != 0, axis=0)
    if not sampled.any():
        raise ValueError("`kspace` is all zeros: nothing to estimate coil maps from.")
    if calibration_size is None:
        size = _calibration_region(sampled)
    else:
        size = tuple(check_int(s, "calibration_size", low=1, high=n) for s, n in zip(
            np.broadcast_to(calibration_size, (len(image_shape),)), image_shape))
    taper = np.ones((1,) * len(image_shape))
    box = []
    for a, (s, n) in enumerate(zip(size, image_shape)):
        lo = n // 2 - s // 2
        box.append(slice(lo, lo + s))
        w = np.hanning(s + 2)[1:-1]
        taper = taper * w.reshape((-1,) + (1,) * (len(image_shape) - 1 - a))
    low = np.zeros(arr.shape, dtype=np.complex128)
    low[(slice(None),) + tuple(box)] = arr[(slice(None),) + tuple(box)] * taper
    axes = tuple(range(1, arr.ndim))
    images = scipy.fft.ifftn(np.fft.ifftshift(low, axes=axes), axes=axes, norm="ortho")
    rss = np.sqrt(np.sum(np.abs(images) ** 2, axis=0))
    keep = rss > threshold * rss.max()
    maps = np.where(keep, images / np.where(keep, rss, 1.0), 0)
    return maps.astype(arr.dtype if arr.dtype.kind == "c" else np.complex128)


def cartesian_mask_3d(shape: Sequence[int], acceleration: float, center_fraction: float = 0.08,
                      *, rng: int | np.random.Generator | None = None) -> NDArray[np.bool_]:
    """3-D Cartesian mask: readout along the first axis, random phase encodes over the
    last two axes with a fully sampled centre.

    The (H, W) phase-encode plane keeps a centred box of ``round(H·f) × round(W·f)``
    encodes (f = `center_fraction`) plus encodes drawn uniformly without replacement from
    the rest until ``round(H·W / acceleration)`` are sampled; every encode is a full line
    along the first axis.

    Parameters
    ----------
    shape : tuple (D, H, W)
    acceleration : float >= 1
    center_fraction : float in [0, 1]
    rng : None, int or Generator

    Returns
    -------
    ndarray of bool, shape (D, H, W), centred layout (for :class:`SENSE`)
    """
    D, H, W = _check_shape(shape, "shape", (3,))
    acceleration = check_scalar(acceleration, "acceleration", low=1.0)
    center_fraction = check_scalar(center_fraction, "center_fraction", low=0.0, high=1.0)
    rng = check_rng(rng)
    n_total = max(1, int(round(H * W / acceleration)))
    ch, cw = int(round(H * center_fraction)), int(round(W * center_fraction))
    plane = np.zeros((H, W), dtype=bool)
    plane[H // 2 - ch // 2:H // 2 - ch // 2 + ch, W // 2 - cw // 2:W // 2 - cw // 2 + cw] = True
    n_centre = int(plane.sum())
    if n_centre > n_total:
        raise ValueError(
            f"`center_fraction` {center_fraction} asks for {n_centre} centre encodes but "
            f"`acceleration` {acceleration} allows only {n_total} for a {H}x{W} plane.")
    others = np.flatnonzero(~plane.ravel())
    plane.ravel()[rng.choice(others, n_total - n_centre, replace=False)] = True
    return np.broadcast_to(plane, (D, H, W)).copy()


"""Linear forward models ``y = A x`` with exact adjoints, and the Gaussian likelihood.

Every operator maps an image ``x`` of shape :attr:`~LinearOperator.shape_in` to
measurements ``y`` of shape :attr:`~LinearOperator.shape_out`; both accept one optional
leading batch axis. float32 and float64 follow the input (a real float32 image gives
float32 or complex64 measurements); int/bool inputs work in float64.

Inner products. For real images and real measurements ⟨u, v⟩ = Σ u v. Complex
measurements (:class:`MRI`) use the real inner product of ℂᴹ ≅ ℝ²ᴹ,
⟨u, v⟩ = Re Σ conj(u) v; for a *real* image the adjoint is therefore the real part of
the complex adjoint, ``A*y = Re(Aᴴ y)``, and ⟨A x, y⟩ = ⟨x, A* y⟩ holds exactly. For a
complex image (``MRI(..., complex_image=True)``) the adjoint is the ordinary Aᴴ.

Gaussian noise. ``y = A x + n`` with n ~ N(0, σ² I) on every measured real component (real
and imaginary parts each with variance σ² for complex data); then
``∇ₓ log p(y | x) = A*(y − A x) / σ²`` (:class:`GaussianLikelihood`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

from ._deprecation import keyword_only
from ._ct import ParallelBeamCT
from ._linear import (FunctionOperator, LinearOperator, _Apply, _check_shape, _complex_of,
                      _fourier_preconditioner, _real_of)
from ._validation import (as_float_array, check_choice, check_int, check_int_tuple,
                          check_rng, check_scalar, check_scale)

__all__ = [
    "LinearOperator",
    "FunctionOperator",
    "from_scipy",
    "Identity",
    "Mask",
    "Blur",
    "Downsample",
    "MRI",
    "ParallelBeamCT",
    "GaussianLikelihood",
    "cartesian_mask",
    "radial_mask",
    "SENSE",
    "birdcage_maps",
    "estimate_coil_maps",
    "cartesian_mask_3d",
    "gaussian_kernel",
]


# ----------------------------------------------------------------------------------------
# Denoising, inpainting, deblurring, super-resolution
# ----------------------------------------------------------------------------------------
class Identity(LinearOperator):
    """The identity ``A x = x`` (denoising). ‖A‖² = 1.

    Parameters
    ----------
    shape : tuple of 1 to 3 int
        Image shape.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        shape = _check_shape(shape, "shape", (1, 2, 3))
        super().__init__(shape, shape)

    def _forward(self, x):
        return x.copy()

    _adjoint = _forward

    def _closed_form_norm_squared(self):
        return 1.0

    def gram_preconditioner(self, weight: float, shift: float) -> _Apply | None:
        """Exact: ``(weight · I + shift · I)⁻¹ v = v / (weight + shift)``."""
        weight, shift = self._check_gram_args(weight, shift)
        scale = 1.0 / (weight + shift)
        return lambda v: v * np.asarray(v).real.dtype.type(scale)

    def _describe(self):
        return f"shape={self.shape_in}"


class Mask(LinearOperator):
    """Pixel selection ``A x = m ⊙ x`` (inpainting); self-adjoint, ‖A‖² = 1 (0 if empty).

    The measurements keep the image shape, with zeros where ``m`` is False.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W) or (D, H, W)
        True where a pixel is observed.
    """

    def __init__(self, mask: ArrayLike) -> None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"`mask` must be a boolean array; got dtype {mask.dtype}.")
        if mask.ndim not in (1, 2, 3) or mask.size == 0:
            raise ValueError(f"`mask` must be a non-empty 1-D to 3-D array; got shape {mask.shape}.")
        super().__init__(mask.shape, mask.shape)
        self.mask = mask.copy()   # private, read-only copy
        self.mask.flags.writeable = False

    @property
    def measured(self) -> NDArray[np.bool_] | None:
        return self.mask

    def _forward(self, x):
        return x * self.mask

    _adjoint = _forward

    def _closed_form_norm_squared(self):
        return 1.0 if self.mask.any() else 0.0

    def gram_preconditioner(self, weight: float, shift: float) -> _Apply | None:
        """Exact: A*A = diag(m), so ``M v = v / (weight · m + shift)``."""
        weight, shift = self._check_gram_args(weight, shift)
        inverse = 1.0 / (weight * self.mask + shift)
        return lambda v: v * inverse.astype(np.asarray(v).real.dtype)

    def _describe(self):
        return f"shape={self.shape_in}, observed={self.n_measurements}"


_MAX_KERNEL_ENTRIES = 2**26      # 512 MiB of float64: larger than any image it could blur


def gaussian_kernel(sigma: float, size: int | None = None, ndim: int = 2
                    ) -> NDArray[np.float64]:
    """Normalised Gaussian blur kernel (sums to 1), for :class:`Blur`.

    Parameters
    ----------
    sigma : float > 0
        Standard deviation in pixels.
    size : int, optional
        Odd kernel length per axis; default ``2 * ceil(3 sigma) + 1``.
    ndim : {1, 2, 3}
    """
    sigma = check_scalar(sigma, "sigma", low=0.0, low_inclusive=False)
    ndim = check_int(ndim, "ndim", low=1, high=3)
    if size is None and not 3 * sigma < _MAX_KERNEL_ENTRIES:
        raise ValueError(f"`sigma` {sigma!r} gives a Gaussian kernel wider than "
                         f"{_MAX_KERNEL_ENTRIES} pixels; give a smaller `sigma` or `size`.")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else check_int(size, "size", low=1)
    if size ** ndim > _MAX_KERNEL_ENTRIES:
        raise ValueError(f"a Gaussian kernel of size {size} in {ndim}-D has {size ** ndim} "
                         f"entries (at most {_MAX_KERNEL_ENTRIES}); give a smaller `sigma` "
                         f"({sigma!r}) or `size`.")
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    kernel = g
    for _ in range(ndim - 1):
        kernel = np.multiply.outer(kernel, g)
    return kernel / kernel.sum()


class Blur(LinearOperator):
    """Convolution with a given kernel, by FFT: ``y[i] = Σ_j k[j] x[i − j + c]``, c = k_shape // 2.

    The output has the image shape ("same" convolution, the kernel entry ``k[c]`` sits on
    the output pixel; for odd kernels this equals ``scipy.ndimage.convolve``).

    Parameters
    ----------
    kernel : array_like, shape (kh, kw) or (kd, kh, kw)
        Real blur kernel, at most the image size along each axis (not normalised here;
        see :func:`gaussian_kernel`).
    image_shape : tuple of int
        Image shape, same number of axes as the kernel.
    boundary : {"periodic", "zero"}, default "periodic"
        "periodic": circular convolution on the image grid (A is diagonalised by the DFT,
        ``‖A‖² = max |k̂|²``). "zero": pixels outside the image are zero; computed as a
        linear convolution on a zero-padded grid of size ``≥ n + k − 1`` per axis and cropped,
        with the exact adjoint (embed, correlate, crop); ‖A‖² by power iteration.
    """

    def __init__(self, kernel: ArrayLike, image_shape: Sequence[int],
                 boundary: str = "periodic") -> None:
        self.boundary = check_choice(boundary, "boundary", ("periodic", "zero"))
        kernel = as_float_array(kernel, "kernel", ndim=(1, 2, 3), finite=True)
        shape = _check_shape(image_shape, "image_shape", (kernel.ndim,))
        if any(k > n for k, n in zip(kernel.shape, shape)):
            raise ValueError(
                f"`kernel` must be at most the image size {shape} along every axis; "
                f"got shape {kernel.shape}.")
        super().__init__(shape, shape)
        self.kernel = kernel.astype(np.float64)
        self.kernel.flags.writeable = False
        self._axes = tuple(range(-len(shape), 0))
        centre = tuple(k // 2 for k in kernel.shape)
        if self.boundary == "periodic":
            self._fft_shape = shape
            padded = np.zeros(shape)
            padded[tuple(slice(0, k) for k in kernel.shape)] = self.kernel
            padded = np.roll(padded, [-c for c in centre], axis=tuple(range(len(shape))))
        else:
            self._fft_shape = tuple(scipy.fft.next_fast_len(n + k - 1, real=True)
                                    for n, k in zip(shape, kernel.shape))
            padded = np.zeros(self._fft_shape)
            padded[tuple(slice(0, k) for k in kernel.shape)] = self.kernel
        self._crop = tuple(slice(c, c + n) for c, n in zip(centre, shape))
        self._spectrum = {np.dtype(np.float64): scipy.fft.rfftn(padded)}

    def _spectrum_for(self, dtype):
        dtype = np.dtype(dtype)
        if dtype not in self._spectrum:
            self._spectrum[dtype] = self._spectrum[np.dtype(np.float64)].astype(_complex_of(dtype))
        return self._spectrum[dtype]

    def _filter(self, x, conjugate):
        spectrum = self._spectrum_for(x.dtype)
        if conjugate:
            spectrum = spectrum.conj()
        z = scipy.fft.rfftn(x, s=self._fft_shape, axes=self._axes)
        z *= spectrum
        return scipy.fft.irfftn(z, s=self._fft_shape, axes=self._axes)

    def _forward(self, x):
        out = self._filter(x, conjugate=False)
        if self.boundary == "zero":
            out = np.ascontiguousarray(out[(slice(None),) + self._crop])
        return out

    def _adjoint(self, y):
        if self.boundary == "zero":
            padded = np.zeros((y.shape[0],) + self._fft_shape, dtype=y.dtype)
            padded[(slice(None),) + self._crop] = y
            out = self._filter(padded, conjugate=True)
            return np.ascontiguousarray(out[(slice(None),) + tuple(slice(0, n) for n in self.shape_in)])
        return self._filter(y, conjugate=True)

    def _closed_form_norm_squared(self):
        if self.boundary == "periodic":
            return float(np.max(np.abs(self._spectrum[np.dtype(np.float64)]) ** 2))
        return None

    def gram_preconditioner(self, weight: float, shift: float) -> _Apply | None:
        """Periodic boundary: exact, ``M v = F⁻¹ (F v / (weight · |k̂|² + shift))``.
        Zero boundary: None (A*A is not circulant)."""
        weight, shift = self._check_gram_args(weight, shift)
        if self.boundary != "periodic":
            return None
        power = np.abs(self._spectrum[np.dtype(np.float64)]) ** 2
        return _fourier_preconditioner(weight * power + shift, self.shape_in, real=True)

    def _describe(self):
        return (f"kernel_shape={self.kernel.shape}, image_shape={self.shape_in}, "
                f"boundary={self.boundary!r}")


class Downsample(LinearOperator):
    """Block averaging by an integer factor per axis (super-resolution).

    ``y[i] = (1/F) Σ_{t in block i} x[t]`` with ``F = prod(factor)``; the adjoint spreads
    ``y[i] / F`` over block i; ‖A‖² = 1/F.

    Parameters
    ----------
    image_shape : tuple of 1 to 3 int
        Image shape; each axis must be divisible by its factor.
    factor : int or tuple of int
        Block size per axis (>= 1).
    """

    def __init__(self, image_shape: Sequence[int], factor: int | Sequence[int]) -> None:
        shape = _check_shape(image_shape, "image_shape", (1, 2, 3))
        self.factor = check_int_tuple(factor, "factor", len(shape), low=1)
        if any(n % f for n, f in zip(shape, self.factor)):
            raise ValueError(
                f"`image_shape` {shape} must be divisible by `factor` {self.factor} "
                "along every axis.")
        super().__init__(shape, tuple(n // f for n, f in zip(shape, self.factor)))
        self._split = tuple(v for m, f in zip(self.shape_out, self.factor) for v in (m, f))
        self._block_axes = tuple(range(2, 2 * len(shape) + 1, 2))

    def _forward(self, x):
        return x.reshape((x.shape[0],) + self._split).mean(axis=self._block_axes)

    def _adjoint(self, y):
        scale = 1.0 / math.prod(self.factor)
        expanded = np.expand_dims(y * y.dtype.type(scale), self._block_axes)
        out = np.broadcast_to(expanded, (y.shape[0],) + self._split)
        return np.ascontiguousarray(out).reshape((y.shape[0],) + self.shape_in)

    def _closed_form_norm_squared(self):
        return 1.0 / math.prod(self.factor)

    def gram_preconditioner(self, weight: float, shift: float) -> _Apply | None:
        """Exact: A*A = P / F with P the block-mean projection, so
        ``M v = v / shift + (1 / (weight / F + shift) − 1 / shift) P v``."""
        weight, shift = self._check_gram_args(weight, shift)
        F = math.prod(self.factor)
        extra = 1.0 / (weight / F + shift) - 1.0 / shift

        def apply(v):
            v = np.asarray(v)
            batch = v.shape[:v.ndim - len(self.shape_in)]
            blocks = v.reshape(batch + self._split)
            axes = tuple(a + len(batch) - 1 for a in self._block_axes)
            mean = blocks.mean(axis=axes, keepdims=True)
            out = blocks * v.real.dtype.type(1.0 / shift) + mean * v.real.dtype.type(extra)
            return out.reshape(v.shape).astype(v.dtype, copy=False)
        return apply


# ----------------------------------------------------------------------------------------
# MRI
# ----------------------------------------------------------------------------------------
class MRI(LinearOperator):
    """Undersampled Cartesian MRI: ``y = M ⊙ S F x`` with F the orthonormal 2-D DFT.

    S = ``fftshift`` puts the zero frequency at index ``(H // 2, W // 2)`` (centred
    k-space, the layout of the masks from :func:`cartesian_mask` and :func:`radial_mask`);
    M is the boolean sampling mask; unsampled entries of y are zero.

    Adjoint. For a complex image (``complex_image=True``) ``A* y = Fᴴ S⁻¹ (M ⊙ y)``.
    For a real image (default) A maps ℝᴺ to ℂᴺ and, with the real inner product
    Re⟨u, v⟩ on the measurements, ``A* y = Re(Fᴴ S⁻¹ (M ⊙ y))`` — the real part of the
    zero-filled reconstruction. ‖A‖² = 1 (if any entry is sampled); with a full mask A
    is unitary.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
        Sampled k-space locations, centred layout.
    complex_image : bool, default False
        Treat the image as complex.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.operators import MRI, cartesian_mask
    >>> A = MRI(cartesian_mask((64, 64), 4, 0.08, rng=0))
    >>> x = np.random.default_rng(0).random((64, 64))
    >>> y = A.simulate(x, 0.01, rng=1)            # complex k-space, zeros where unsampled
    >>> y.dtype, A.acceleration, A.adjoint(y).dtype
    (dtype('complex128'), 4.0, dtype('float64'))
    """

    complex_range = True

    def __init__(self, mask: ArrayLike, *, complex_image: bool = False) -> None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"`mask` must be a boolean array; got dtype {mask.dtype}.")
        if mask.ndim != 2 or mask.size == 0:
            raise ValueError(f"`mask` must be a non-empty 2-D array (H, W); got shape {mask.shape}.")
        if not mask.any():
            raise ValueError("`mask` samples nothing (all False); at least one k-space entry "
                             "must be measured.")
        super().__init__(mask.shape, mask.shape)
        self.mask = mask.copy()   # private, read-only copy
        self.mask.flags.writeable = False
        self.complex_domain = bool(complex_image)
        self._mask_unshifted = np.fft.ifftshift(self.mask)

    @property
    def measured(self) -> NDArray[np.bool_] | None:
        return self.mask

    @property
    def acceleration(self) -> float:
        """Fully sampled size over the number of sampled entries."""
        return self.mask.size / max(1, self.n_measurements)

    def _forward(self, x):
        k = scipy.fft.fft2(x, norm="ortho")
        k *= self._mask_unshifted
        return np.fft.fftshift(k, axes=(-2, -1))

    def _adjoint(self, y):
        k = np.fft.ifftshift(y, axes=(-2, -1)) * self._mask_unshifted
        x = scipy.fft.ifft2(k, norm="ortho", overwrite_x=True)
        return x if self.complex_domain else np.ascontiguousarray(x.real)

    def _closed_form_norm_squared(self):
        return 1.0 if self.mask.any() else 0.0

    def gram_preconditioner(self, weight: float, shift: float) -> _Apply | None:
        """Exact for any mask: ``M v = F⁻¹ (F v / (weight · m + shift))`` (F the DFT, m the
        uncentred mask). For a real image A*A = Re Fᴴ diag(m) F = Fᴴ diag(m_s) F with the
        symmetrised mask ``m_s(k) = (m(k) + m(−k)) / 2``, used in its place."""
        weight, shift = self._check_gram_args(weight, shift)
        m = self._mask_unshifted.astype(np.float64)
        if not self.complex_domain:
            m = 0.5 * (m + np.roll(m[::-1, ::-1], 1, axis=(0, 1)))
        return _fourier_preconditioner(weight * m + shift, self.shape_in, real=False)

    def _describe(self):
        return (f"shape={self.shape_in}, acceleration={self.acceleration:.3g}, "
                f"complex_image={self.complex_domain}")


@keyword_only("rng")
def cartesian_mask(shape: tuple[int, ...], acceleration: float, center_fraction: float = 0.08,
                   *, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Cartesian undersampling mask: fully sampled centre lines plus random lines.

    Whole columns (phase-encoding lines along the last axis) are sampled:
    ``round(W · center_fraction)`` adjacent lines around the zero frequency (index
    ``W // 2``), plus lines drawn uniformly without replacement from the rest until
    ``round(W / acceleration)`` lines are sampled.

    Parameters
    ----------
    shape : tuple (H, W)
    acceleration : float >= 1
        W over the number of sampled lines.
    center_fraction : float in [0, 1]
        Fraction of lines in the fully sampled centre.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    mask : ndarray of bool, shape (H, W), centred k-space layout (for :class:`MRI`)
    """
    H, W = _check_shape(shape, "shape", (2,))
    acceleration = check_scalar(acceleration, "acceleration", low=1.0)
    center_fraction = check_scalar(center_fraction, "center_fraction", low=0.0, high=1.0)
    rng = check_rng(rng)
    n_lines = max(1, int(round(W / acceleration)))
    n_center = int(round(W * center_fraction))
    if n_center > n_lines:
        raise ValueError(
            f"`center_fraction` {center_fraction} asks for {n_center} centre lines but "
            f"`acceleration` {acceleration} allows only {n_lines} lines in total for width {W}.")
    start = W // 2 - n_center // 2
    centre = np.arange(start, start + n_center)
    others = np.setdiff1d(np.arange(W), centre)
    chosen = rng.choice(others, n_lines - n_center, replace=False)
    lines = np.zeros(W, dtype=bool)
    lines[centre] = True
    lines[chosen] = True
    return np.broadcast_to(lines, (H, W)).copy()


def radial_mask(shape: Sequence[int], n_lines: int, *, offset: float = 0.0
                ) -> NDArray[np.bool_]:
    """Radial k-space mask: `n_lines` lines through the zero frequency, rasterised.

    Line k has angle ``offset + π k / n_lines``; points spaced half a pixel along it are
    rounded to the nearest grid location. Centred layout (zero frequency at
    ``(H // 2, W // 2)``).

    Parameters
    ----------
    shape : tuple (H, W)
    n_lines : int >= 1
    offset : float
        Angle of the first line in radians.
    """
    H, W = _check_shape(shape, "shape", (2,))
    n_lines = check_int(n_lines, "n_lines", low=1)
    offset = check_scalar(offset, "offset")
    angles = offset + np.pi * np.arange(n_lines) / n_lines
    radius = math.hypot(H, W) / 2 + 1
    r = np.arange(-radius, radius + 0.5, 0.5)
    rows = np.rint(H // 2 - np.outer(np.sin(angles), r)).astype(np.intp).ravel()
    cols = np.rint(W // 2 + np.outer(np.cos(angles), r)).astype(np.intp).ravel()
    keep = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    mask = np.zeros((H, W), dtype=bool)
    mask[rows[keep], cols[keep]] = True
    return mask


# ----------------------------------------------------------------------------------------
# Likelihood
# ----------------------------------------------------------------------------------------
class GaussianLikelihood:
    """Gaussian likelihood of linear measurements, ``y = A x + n``, n ~ N(0, σ_n² I).

    .. math::

        \\log p(y \\mid x) = -\\frac{\\lVert y - A x\\rVert^2}{2\\sigma_n^2}
            - \\frac{m}{2}\\log(2\\pi\\sigma_n^2), \\qquad
        \\nabla_x \\log p(y \\mid x) = \\frac{A^*(y - A x)}{\\sigma_n^2}

    with m the number of measured real components (2 per measured complex entry) and A*
    the adjoint of the operator (the real part of Aᴴ for a real image with complex data).

    Parameters
    ----------
    operator : LinearOperator
        The forward model A.
    y : ndarray of shape ``operator.shape_out`` or ``(n, *operator.shape_out)``
        Measurements: finite, complex only for a complex-range operator. Entries the
        operator does not measure should be zero. Its precision (float32/float64) is the
        working precision: images passed to the methods must match it.
    noise_sigma : float > 0
        σ_n, noise standard deviation per real component.

    Raises
    ------
    ValueError
        Shape of `y` not ``operator.shape_out``; NaN/Inf in `y`; `noise_sigma` <= 0.
    TypeError
        `operator` not a LinearOperator; complex `y` for a real-range operator.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.operators import GaussianLikelihood, Mask
    >>> rng = np.random.default_rng(0)
    >>> A = Mask(rng.random((16, 16)) < 0.5)
    >>> x = np.ones((16, 16))
    >>> likelihood = GaussianLikelihood(A, A.simulate(x, 0.1, rng=rng), 0.1)
    >>> likelihood.score(x).shape, round(likelihood.lipschitz(), 6)   # ‖A‖² / σ²
    ((16, 16), 100.0)
    """

    def __init__(self, operator: LinearOperator, y: ArrayLike, noise_sigma: float) -> None:
        if not isinstance(operator, LinearOperator):
            raise TypeError(
                f"`operator` must be a fastscore.operators.LinearOperator; "
                f"got {type(operator).__name__}.")
        self.operator = operator
        self.y = operator.check_measurement(y, "y")
        self.noise_sigma = check_scalar(noise_sigma, "noise_sigma", low=0.0,
                                        low_inclusive=False)
        self.dtype = _real_of(self.y.dtype)
        check_scale(self.noise_sigma, "noise_sigma", self.dtype)
        self._batched = self.y.ndim == len(operator.shape_out) + 1

    def _check_x(self, x):
        op = self.operator
        k = len(op.shape_in)
        arr = np.asarray(x)
        if arr.dtype.kind in "biu":
            arr = arr.astype(self.dtype)
        if arr.dtype.kind in "fc" and _real_of(arr.dtype) != self.dtype:
            raise TypeError(
                f"`x` has dtype {arr.dtype} but the measurements `y` are {self.y.dtype}; "
                f"pass x as {self.dtype} (cast one of them explicitly).")
        if self._batched and (arr.ndim != k + 1 or arr.shape[0] != self.y.shape[0]):
            raise ValueError(
                f"`y` holds a batch of {self.y.shape[0]} measurements, so `x` must have shape "
                f"({self.y.shape[0]}, {', '.join(map(str, op.shape_in))}); got {arr.shape}.")
        return arr

    def residual(self, x: ArrayLike) -> NDArray[Any]:
        """``y − A x``."""
        ax = self.operator.forward(self._check_x(x))
        return self.y - ax

    def log_likelihood(self, x: ArrayLike) -> float | NDArray[np.float64]:
        """log p(y | x): a float, or an array of shape (n,) for a batch of images."""
        r = self.residual(x)
        axes = tuple(range(r.ndim - len(self.operator.shape_out), r.ndim))
        sq = np.sum(r.real ** 2 + r.imag ** 2 if r.dtype.kind == "c" else r ** 2,
                    axis=axes, dtype=np.float64)
        m = self.operator.n_measurements * (2 if self.operator.complex_range else 1)
        value = -sq / (2 * self.noise_sigma ** 2) - 0.5 * m * math.log(
            2 * math.pi * self.noise_sigma ** 2)
        return float(value) if np.ndim(value) == 0 else value

    def score(self, x: ArrayLike) -> NDArray[Any]:
        """``∇ₓ log p(y | x) = A*(y − A x) / σ_n²`` (real for a real image)."""
        g = self.operator.adjoint(self.residual(x))
        g *= g.real.dtype.type(1.0 / self.noise_sigma ** 2)
        return g

    def lipschitz(self) -> float:
        """Lipschitz constant of the score, ``‖A‖² / σ_n²``."""
        return self.operator.norm_squared() / self.noise_sigma ** 2

    def __repr__(self) -> str:
        return (f"GaussianLikelihood(operator={self.operator!r}, y shape {self.y.shape}, "
                f"noise_sigma={self.noise_sigma:g})")


from_scipy = LinearOperator.from_scipy

from .mri import SENSE, birdcage_maps, cartesian_mask_3d, estimate_coil_maps  # noqa: E402

# ----------------------------------------------------------------------------------------
# Fan-beam CT (fastscore/_fanbeam.py)
# ----------------------------------------------------------------------------------------
from ._fanbeam import FanBeamCT  # re-exported

__all__ += ["FanBeamCT"]

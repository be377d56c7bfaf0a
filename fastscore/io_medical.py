"""Scanner files: NIfTI with its geometry, DICOM series, multi-page TIFF, fastMRI k-space.

Every reader checks what it reads and raises ``FileNotFoundError`` (no such file or
folder) or ``ValueError`` naming the file and what is wrong with it; the optional readers
(nibabel, pydicom, tifffile, h5py — all in ``pip install 'fastscore[io]'``) are imported
when first used, and a missing one raises ``ImportError`` naming the extra.

Geometry. A :class:`Volume` carries the 4×4 ``affine`` that maps the *array's own* index
order ``(i₀, i₁, i₂, 1)`` to world coordinates in millimetres: RAS+ for NIfTI (the file's
sform/qform, as nibabel reports it, arrays in nibabel's axis order), the DICOM patient
frame (LPS+) for DICOM series, whose arrays are ``(slice, row, column)``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._io_dicom import load_dicom, load_dicom_series
from ._io_volume import Volume, _check_exists
from ._optional import import_optional

__all__ = [
    "Volume",
    "KSpaceData",
    "load_nifti",
    "save_nifti",
    "load_dicom_series",
    "load_dicom",
    "load_tiff",
    "load_kspace",
]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")

Volume.__module__ = __name__              # documented and pickled under this module


# ------------------------------------------------------------------------------- NIfTI


def load_nifti(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI-1/2 file (``.nii``, ``.nii.gz``) with its affine and header.

    Values: the file's scaling (``scl_slope``, ``scl_inter``) applied; float64 files stay
    float64, complex files complex64/complex128, everything else becomes float32.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Volume
        ``array`` in nibabel's axis order (2-D or 3-D; a trailing axis of length 1 beyond
        the third is dropped), ``affine`` the file's best affine (sform, else qform),
        ``header`` the nibabel header.

    Raises
    ------
    FileNotFoundError, ValueError (not a readable NIfTI file; more than 3 dimensions),
    ImportError (nibabel missing).
    """
    nib = import_optional("nibabel", "io")
    path = _check_exists(path, "NIfTI file")
    try:
        image = nib.load(path)
        shape = tuple(int(n) for n in image.header.get_data_shape())
        nbytes = math.prod(shape) * image.header.get_data_dtype().itemsize
    except Exception as exc:  # nibabel raises many types for bad files
        raise ValueError(f"{path}: not a readable NIfTI file ({exc}).") from None
    # a forged header must not make us allocate: the voxels must fit in the file (gzip
    # inflates at most ~1032×)
    on_disk = os.path.getsize(path)
    if nbytes > on_disk * (1100 if path.lower().endswith(".gz") else 1):
        raise ValueError(f"{path}: the NIfTI header declares shape {shape} ({nbytes} bytes "
                         f"of voxels), more than the {on_disk}-byte file can hold: truncated "
                         "or a forged header.")
    try:
        raw = np.asanyarray(image.dataobj)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable NIfTI file ({exc}).") from None
    arr = np.asarray(raw)
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D image or 3-D volume; the NIfTI data has "
                         f"shape {np.shape(raw)}.")
    if arr.dtype.kind != "c" and arr.dtype != np.float64:
        arr = arr.astype(np.float32)
    return Volume(arr, np.asarray(image.affine, dtype=np.float64), image.header)


def save_nifti(path: str | os.PathLike[str], array: ArrayLike, affine: ArrayLike | None = None,
               header: Any = None) -> str:
    """Write an image or volume to NIfTI-1, keeping a geometry and header if given.

    The data are written in their own dtype (float32, float64, complex64 or
    complex128; ints and bools as float32), unscaled, so reading gives them back exactly.
    The header (e.g. ``Volume.header`` from :func:`load_nifti`) is copied — description,
    units, intent, qform/sform codes, … — with its data type, shape and scaling updated
    to the array; the affine is stored as sform and qform (codes from the header, or
    "scanner" (1) without one).

    Parameters
    ----------
    path : str or os.PathLike
        Ending in ``.nii`` or ``.nii.gz``; written atomically (temporary file + rename).
    array : array_like, 2-D or 3-D, real or complex, finite
    affine : array_like of shape (4, 4), optional
        Index → world (mm). Default: the header's affine, else the identity.
    header : nibabel header, optional

    Returns
    -------
    path : str
    """
    nib = import_optional("nibabel", "io")
    from .io import _atomic_nifti, _suffix

    if _suffix(path) not in _NIFTI_SUFFIXES:
        raise ValueError(f"`path` must end in .nii or .nii.gz; got {os.fspath(path)!r}.")
    arr = np.asarray(array)
    if arr.dtype.kind not in "fiubc" or arr.ndim not in (2, 3):
        raise ValueError(f"`array` must be a 2-D image or 3-D volume of numbers; got shape "
                         f"{arr.shape}, dtype {arr.dtype}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("`array` must be finite to be written as NIfTI.")
    if arr.dtype.kind in "iub" or arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if header is not None and not isinstance(header, nib.Nifti1Header):
        raise TypeError(f"`header` must be a nibabel Nifti1Header (Volume.header); got "
                        f"{type(header).__name__}.")
    if affine is None:
        affine = header.get_best_affine() if header is not None else np.eye(4)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"`affine` must be a finite 4×4 array; got shape {affine.shape}.")
    header = nib.Nifti1Header() if header is None else header.copy()
    header.set_data_dtype(arr.dtype)
    header.set_slope_inter(np.nan, np.nan)
    sform_code = int(header["sform_code"]) or 1
    qform_code = int(header["qform_code"]) or 1
    image = nib.Nifti1Image(arr, affine, header=header)
    image.set_sform(affine, code=sform_code)
    image.set_qform(affine, code=qform_code)
    return _atomic_nifti(path, image)


# -------------------------------------------------------------------------------- TIFF


def load_tiff(path: str | os.PathLike[str]) -> NDArray[Any]:
    """Read a TIFF file, every page: a multi-page file becomes a volume (tifffile).

    Values as :func:`fastscore.io.load_image`: float pages keep their values (float32 or
    float64); unsigned 8- and 16-bit pages are divided by 255 and 65535 (float32 in
    [0, 1]), other integers are converted as they are; RGB(A) pages become grey with the
    ITU-R 601 luma weights ``0.299 R + 0.587 G + 0.114 B``.

    Returns
    -------
    ndarray of shape (H, W) (one page) or (n_pages, H, W)

    Raises
    ------
    FileNotFoundError, ValueError (unreadable; pages of different shapes or types),
    ImportError (tifffile missing).
    """
    tifffile = import_optional("tifffile", "io")
    path = _check_exists(path, "TIFF file")
    try:
        with tifffile.TiffFile(path) as tif:
            pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
            if not pages:
                raise ValueError("no image pages")
            first = pages[0]
            for k, page in enumerate(pages):
                if page.shape != first.shape or page.dtype != first.dtype:
                    raise ValueError(f"page {k} is {page.shape} {page.dtype}, page 0 is "
                                     f"{first.shape} {first.dtype}; a volume needs equal "
                                     "pages")
            declared = sum(math.prod(p.shape) * p.dtype.itemsize for p in pages)
            if declared > 1100 * os.path.getsize(path):      # deflate/LZW inflate < ~1000×
                raise ValueError(f"the pages declare {declared} bytes, far more than the file "
                                 "holds (a forged header or a decompression bomb)")
            rgb = int(getattr(first, "photometric", 0)) == 2
            axes = str(getattr(first, "axes", ""))
            arr = np.stack([p.asarray() for p in pages])
            if rgb and "S" in axes and len(axes) == arr.ndim - 1:
                arr = np.moveaxis(arr, axes.index("S") + 1, -1)     # samples last
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable TIFF volume ({exc}).") from None
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise ValueError(f"{path}: not a readable TIFF file ({type(exc).__name__}: "
                         f"{exc}).") from None
    if rgb and arr.ndim == 4 and arr.shape[-1] in (3, 4):
        scale = {1: 255.0, 2: 65535.0}.get(arr.dtype.itemsize, 1.0) \
            if arr.dtype.kind == "u" else 1.0
        weights = np.array([0.299, 0.587, 0.114]) / scale
        arr = (arr[..., :3].astype(np.float64) @ weights).astype(np.float32)
    elif arr.dtype.kind == "u" and arr.dtype.itemsize <= 2:
        arr = arr.astype(np.float32) / np.float32(255 if arr.dtype.itemsize == 1 else 65535)
    elif arr.dtype.kind in "iub" or arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected grey pages of shape (H, W); got pages of shape "
                         f"{arr.shape[1:]}.")
    return arr[0] if arr.shape[0] == 1 else arr


# ---------------------------------------------------------------------- fastMRI k-space


@dataclass(frozen=True)
class KSpaceData:
    """Multi-coil k-space read by :func:`load_kspace`, in fastscore's layout.

    Attributes
    ----------
    kspace : ndarray of complex64 or complex128, shape (n_slices, n_coils, H, W)
        Centred k-space (zero frequency at ``(H // 2, W // 2)``) whose orthonormal inverse
        DFT (:class:`fastscore.operators.MRI`, ``SENSE``) is the image centred in the
        frame; zeros where not sampled.
    mask : ndarray of bool, shape (H, W)
        Sampled k-space locations (shared by slices and coils).
    coil_maps : ndarray of complex, shape (n_slices, n_coils, H, W), or None
        Estimated coil sensitivities (None when not asked for).
    slices : tuple of int
        The file's slice indices, in the order of the first axis.
    attrs : dict
        The HDF5 file's attributes (fastMRI: ``acquisition``, ``max``, ``norm``,
        ``patient_id``, ...), NumPy scalars as Python numbers.
    """

    kspace: np.ndarray
    mask: np.ndarray
    coil_maps: np.ndarray | None = None
    slices: tuple[int, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def _slice_indices(slices, n, path):
    if slices is None:
        return list(range(n))
    if isinstance(slices, slice):
        return list(range(n))[slices]
    values = [slices] if isinstance(slices, numbers.Integral) else list(slices)
    out = []
    for s in values:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
            raise TypeError(f"`slices` must be an int, a slice or a sequence of ints; got "
                            f"{slices!r}.")
        if not -n <= int(s) < n:
            raise ValueError(f"`slices` {slices!r} is out of range for {path}, which holds "
                             f"{n} slices.")
        out.append(int(s) % n)
    return out


def _fastmri_to_centred(kspace):
    """fastMRI stores ``k = fftshift(F(ifftshift(x)))``; fastscore's operators use
    ``k' = fftshift(F x)``. Per axis of length N, ``k'[c] = k[c] · exp(−2πi (c − N//2)
    (N//2) / N)``: a sign checkerboard for even N (exact), a phase ramp for odd N."""
    out = kspace
    for axis in (-2, -1):
        n = kspace.shape[axis]
        c = np.arange(n) - n // 2
        if n % 2 == 0:
            phase = np.where(c % 2 == 0, 1.0, -1.0)
        else:
            phase = np.exp(-2j * np.pi * c * (n // 2) / n)
        shape = [1] * kspace.ndim
        shape[axis] = n
        out = out * phase.reshape(shape).astype(kspace.dtype)
    return out


def load_kspace(path: str | os.PathLike[str], *, slices: int | slice | Sequence[int] | None = None,
                layout: str = "fastmri", coil_maps: bool = True,
                estimator: Callable[[NDArray[Any]], ArrayLike] | None = None) -> KSpaceData:
    """Read multi-coil k-space from an HDF5 file in the fastMRI layout.

    The file holds a dataset ``kspace`` of shape ``(n_slices, n_coils, H, W)`` (multi-coil)
    or ``(n_slices, H, W)`` (single-coil, read as one coil), complex — or real with a
    trailing axis of 2 (real, imaginary) — and optionally ``mask``, the sampled phase
    encodes: shape ``(W,)`` (lines along H, the fastMRI convention) or ``(H, W)``. Without
    a mask the sampled locations are the entries that are nonzero in some slice or coil.

    Parameters
    ----------
    path : str or os.PathLike
        An HDF5 file (``.h5``).
    slices : int, slice or sequence of int, optional
        Which slices to read (only those are read from the file); default all.
    layout : {"fastmri", "fastscore"}, default "fastmri"
        How the file's k-space is centred. ``"fastmri"``: ``k = fftshift(F ifftshift(x))``
        (fastMRI, BART's ``fftmod`` convention), converted to fastscore's
        ``k = fftshift(F x)`` by the exact phase factor ``(−1)^(c − N/2)`` per axis
        (a phase ramp for odd N); ``"fastscore"``: stored as fastscore expects.
    coil_maps : bool, default True
        Estimate coil sensitivities, slice by slice, from the fully sampled centre.
    estimator : callable, optional
        ``estimator(kspace) -> maps`` with kspace of one slice ``(n_coils, H, W)`` (in
        fastscore's layout, zeros where unsampled) and maps of the same shape; default
        :func:`fastscore.mri.estimate_coil_maps`.

    Returns
    -------
    KSpaceData

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an HDF5 file; no ``kspace`` dataset (the message lists what the file holds);
        a ``kspace`` of the wrong rank or type; a ``mask`` whose shape matches neither W
        nor (H, W); a mask that samples nothing; `slices` out of range. Each names the file.
    ImportError
        h5py missing (``pip install 'fastscore[io]'``).
    """
    h5py = import_optional("h5py", "io")
    from ._validation import check_choice

    check_choice(layout, "layout", ("fastmri", "fastscore"))
    path = _check_exists(path, "k-space file")
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({type(exc).__name__}: "
                         f"{exc}).") from None
    with handle:
        if "kspace" not in handle or not isinstance(handle["kspace"], h5py.Dataset):
            raise ValueError(f"{path}: no 'kspace' dataset; the file holds "
                             f"{sorted(handle.keys())} (expected the fastMRI layout: "
                             "kspace of shape (slices, coils, H, W)).")
        dataset = handle["kspace"]
        shape, dtype = dataset.shape, dataset.dtype
        pairs = dtype.kind == "f" and len(shape) in (4, 5) and shape[-1] == 2
        rank = len(shape) - (1 if pairs else 0)
        if rank not in (3, 4) or not (dtype.kind == "c" or pairs) or 0 in shape:
            raise ValueError(f"{path}: 'kspace' has shape {shape} and dtype {dtype}; expected "
                             "complex data of shape (slices, coils, H, W) or (slices, H, W) "
                             "(or real with a trailing axis of 2).")
        index = _slice_indices(slices, shape[0], path)
        unique, inverse = np.unique(np.asarray(index, dtype=np.intp), return_inverse=True)
        data = dataset[unique] if len(unique) else np.zeros((0,) + shape[1:], dtype)
        data = data[inverse] if len(index) else data
        mask = None
        if "mask" in handle:
            mask = np.asarray(handle["mask"][()])
        attrs = {k: (v.item() if isinstance(v, np.generic) else
                     v.decode() if isinstance(v, bytes) else v)
                 for k, v in handle.attrs.items()}
    if pairs:
        real = np.float64 if dtype == np.float64 else np.float32
        data = data[..., 0].astype(real) + 1j * data[..., 1].astype(real)
    if rank == 3:
        data = data[:, np.newaxis]
    if data.dtype not in (np.complex64, np.complex128):
        data = data.astype(np.complex128)
    H, W = data.shape[-2:]
    if mask is not None:
        if mask.dtype.kind not in "biuf" or mask.shape not in ((W,), (H, W)):
            raise ValueError(f"{path}: 'mask' has shape {mask.shape} and dtype {mask.dtype}; "
                             f"expected ({W},) (sampled phase-encode lines) or ({H}, {W}) "
                             f"for k-space of shape {tuple(data.shape)}.")
        mask = np.broadcast_to(mask != 0, (H, W)).copy()
    else:
        mask = np.any(data != 0, axis=(0, 1)) if len(data) else np.zeros((H, W), bool)
    if not mask.any():
        raise ValueError(f"{path}: the sampling mask samples nothing (no k-space entry is "
                         "measured).")
    if layout == "fastmri":
        data = _fastmri_to_centred(data)
    data = data * mask
    maps = None
    if coil_maps:
        if estimator is None:
            from .mri import estimate_coil_maps
            estimator = estimate_coil_maps
        maps = np.empty_like(data)
        for k in range(len(data)):
            estimate = np.asarray(estimator(data[k]))
            if estimate.shape != data.shape[1:]:
                raise ValueError(f"`estimator` returned coil maps of shape {estimate.shape} "
                                 f"for k-space of shape {data.shape[1:]}.")
            maps[k] = estimate
    return KSpaceData(data, mask, maps, tuple(index), attrs)

"""Array and image files; the model-file functions by their historical import path.

- Plain arrays: :func:`save_array` / :func:`load_array` (``.npy``, ``.npz``; pickles
  refused, headers checked against the file before any allocation).
- Images and volumes: :func:`load_image` / :func:`save_image` (``.npy``/``.npz``,
  PNG/TIFF/JPEG, NIfTI, DICOM; see :mod:`fastscore.io_medical` for the geometry). Image
  headers declaring more pixels than Pillow's decompression-bomb limit or NIfTI headers more
  voxels than the file can hold are refused, as is a ``fastscore-scaling`` PNG text that is
  not a valid mapping.
- Model files (:func:`write_model_file`, :func:`read_model_file`, :class:`ModelFileError`,
  :data:`FORMAT_VERSION`) are defined in :mod:`fastscore.model_file` and re-exported here.

Every write is atomic (:mod:`fastscore._atomic`): a write that fails (read-only or full
disk, missing permission) raises an ``OSError`` of the same errno naming the destination;
the temporary file is removed and a previous file is untouched.
"""

from __future__ import annotations

import errno
import importlib.util
import math
import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _atomic
from .model_file import (
    _METADATA_KEY,
    FORMAT_VERSION,
    ModelFileError,
    check_input_file,
    npy_header,
    npy_nbytes,
    read_archive,
    read_model_file,
    write_model_file,
)

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "load_array",
    "load_image",
    "read_model_file",
    "save_array",
    "save_image",
    "write_model_file",
]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz",
                   ".dcm", ".mha", ".mhd", ".nrrd")


def _suffix(path):
    name = os.path.basename(os.fspath(path)).lower()
    for suffix in (".nii.gz",):
        if name.endswith(suffix):
            return suffix
    return os.path.splitext(name)[1]


def _check_suffix(path):
    suffix = _suffix(path)
    if suffix in (".npy", ".npz"):
        return suffix
    if suffix in _IMAGE_SUFFIXES:
        raise NotImplementedError(f"`path` {os.fspath(path)!r}: {suffix} is an image format; "
                                  "use load_image / save_image for it.")
    raise ValueError(f"`path` must end in .npy or .npz; got {os.fspath(path)!r}.")


def save_array(path: str | os.PathLike[str], array: ArrayLike) -> str:
    """Save one array (an image, a volume, a stack) to ``.npy`` or ``.npz``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Ending in ``.npy`` or ``.npz`` (the array is stored under the name ``"array"``).
    array : array_like
        Any non-object dtype.

    Returns
    -------
    path : str
    """
    suffix = _check_suffix(path)
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise TypeError(f"`array` has dtype {arr.dtype}; object arrays cannot be saved.")
    if suffix == ".npy":
        return _atomic.atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))
    return _atomic.atomic_write(path, lambda f: np.savez(f, array=arr))


def load_array(path: str | os.PathLike[str], *, key: str | None = None) -> np.ndarray:
    """Load an array saved as ``.npy`` or ``.npz`` (pickles refused).

    Parameters
    ----------
    path : str or os.PathLike
    key : str, optional
        For an ``.npz`` holding several arrays, which one; not needed when it holds one.

    Returns
    -------
    array : ndarray

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Corrupt or truncated file, object array, or `key` missing/ambiguous.
    """
    suffix = _check_suffix(path)
    path = os.fspath(path)
    if suffix == ".npz":
        try:
            arrays = read_archive(path, "array file")
        except ModelFileError as exc:
            raise ValueError(f"{path}: cannot read the array file: {exc.reason}") from None
        arrays.pop(_METADATA_KEY, None)
        if key is None:
            if len(arrays) != 1:
                raise ValueError(f"{path} holds {len(arrays)} arrays {sorted(arrays)}; pass "
                                 "`key` to choose one.")
            return next(iter(arrays.values()))
        if key not in arrays:
            raise ValueError(f"{path} has no array {key!r}; it holds {sorted(arrays)}.")
        return arrays[key]
    check_input_file(path, "array file")
    try:
        with open(path, "rb") as f:
            shape, _, dtype, head = npy_header(f)
            size = os.fstat(f.fileno()).st_size
            if head + npy_nbytes(shape, dtype) != size:
                raise ValueError(f"the header declares shape {shape} of {dtype} "
                                 f"({npy_nbytes(shape, dtype)} bytes) but the file holds "
                                 f"{size - head} bytes of data")
            f.seek(0)
            arr = np.lib.format.read_array(f, allow_pickle=False)
            if f.read(1):
                raise ValueError("trailing bytes after the array")
    except (ValueError, EOFError, OSError, OverflowError, MemoryError) as exc:
        raise ValueError(f"{path}: cannot read the array file (truncated or not a .npy? "
                         f"{type(exc).__name__}: {exc}).") from None
    return arr


# ------------------------------------------------------------------------ image files
_PILLOW_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SCALING_KEY = "fastscore-scaling"


def load_image(path: str | os.PathLike[str], *, key: str | None = None) -> np.ndarray:
    """Read an image or volume from ``.npy``/``.npz``, PNG/TIFF/JPEG, NIfTI or DICOM.

    Pixel values become floats: float files keep their values (float32/float64; complex
    ``.npy``/``.npz`` data such as MRI k-space stay complex); integer
    PNG/TIFF are read as float32 in [0, 1] (8-bit / 255, 16-bit / 65535) unless the file
    records the scaling :func:`save_image` applied, which is then undone exactly (up to the
    quantisation); colour images are converted to grey (Pillow's "L" luminance). NIfTI
    (nibabel; float64 and complex files keep their type, the others become float32) and
    DICOM (pydicom, rescale slope and intercept applied, float32): a folder is read as a
    DICOM series ordered by slice position. Multi-page TIFF files are read as volumes
    (with tifffile; without it they raise ``ImportError``). For the geometry (affine,
    header) use :mod:`fastscore.io_medical`.

    Parameters
    ----------
    path : str or os.PathLike
    key : str, optional
        Which array of an ``.npz`` holding several.

    Returns
    -------
    ndarray of float32 or float64 (2-D or 3-D)

    Raises
    ------
    FileNotFoundError, IsADirectoryError (the path is a folder),
    ValueError (unreadable, truncated, forged or unsupported file; an image larger than
    Pillow's decompression-bomb limit; an invalid ``fastscore-scaling`` text),
    ImportError (the optional reader is not installed; the message names the extra).
    """
    suffix = _suffix(path)
    path = os.fspath(path)
    from . import io_medical

    if suffix in (".npy", ".npz"):
        arr = load_array(path, key=key)
    elif not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "image file not found", path)
    elif os.path.isdir(path):
        arr = io_medical.load_dicom_series(path).array
    elif suffix in (".tif", ".tiff") and importlib.util.find_spec("tifffile") is not None:
        arr = io_medical.load_tiff(path)
    elif suffix in _PILLOW_SUFFIXES:
        arr = _load_pillow(path)
    elif suffix in _NIFTI_SUFFIXES:
        _check_nifti_size(path)
        arr = io_medical.load_nifti(path).array
    elif suffix == ".dcm":
        arr = io_medical.load_dicom(path)
    else:
        raise ValueError(f"`path` {path!r}: unsupported image format {suffix or '(none)'}; use "
                         ".npy, .npz, .png, .tif, .nii, .nii.gz, .dcm or a DICOM folder.")
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiubc" or arr.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D image or 3-D volume of numbers; got "
                         f"shape {arr.shape}, dtype {arr.dtype}.")
    if arr.dtype.kind in "fc" and arr.dtype.itemsize >= 4:
        return arr                 # float32/64 and complex data (e.g. MRI k-space) kept
    return arr.astype(np.float32)


def _load_pillow(path):
    """PNG/TIFF/JPEG/BMP -> ndarray (integers scaled, see load_image); ValueError if bad."""
    from ._optional import import_optional

    Image = import_optional("PIL.Image", "io")
    try:
        with Image.open(path) as im:
            im.load()
            if getattr(im, "n_frames", 1) > 1:
                raise ImportError(f"{path} has {im.n_frames} pages; reading them as a "
                                  "volume needs tifffile: pip install 'fastscore[io]'")
            info = dict(im.info)
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L")
            arr = np.array(im)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path}: the image is too large to read safely ({exc}).") from None
    except (MemoryError, ImportError):
        raise
    except Exception as exc:  # noqa: BLE001 (Pillow raises OSError, SyntaxError, struct.error, ...)
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc}).") \
            from None
    if arr.dtype.kind not in "ui":
        return arr
    scaling = info.get(_SCALING_KEY)
    if scaling is None:
        return arr.astype(np.float32) / np.float32(255 if arr.dtype.itemsize == 1 else 65535)
    low, high, levels = _parse_scaling(path, scaling, arr.dtype)
    return (low + arr.astype(np.float64) * ((high - low) / levels)).astype(np.float32)


def _parse_scaling(path, text, dtype):
    """The ``fastscore-scaling`` text of a PNG -> (low, high, levels), checked."""
    try:
        low, high, levels = (float(v) for v in str(text).split(","))
    except ValueError:
        low = high = levels = math.nan
    full = float(np.iinfo(dtype).max)
    if not (np.isfinite(low) and np.isfinite(high) and high > low and levels == full
            and np.isfinite(high - low)):
        raise ValueError(f"{path}: invalid {_SCALING_KEY} text {str(text)[:80]!r}; expected "
                         f"'low,high,levels' with finite low < high and levels = {full:g} "
                         f"for {dtype} pixels (as written by save_image).")
    return low, high, levels


def _check_nifti_size(path):
    """A NIfTI file's declared size checked against the file before any data is read."""
    from ._optional import import_optional

    nib = import_optional("nibabel", "io")
    try:
        image = nib.load(path)
        shape = tuple(int(n) for n in image.header.get_data_shape())
        itemsize = image.header.get_data_dtype().itemsize
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 (nibabel raises many types for bad files)
        raise ValueError(f"{path}: not a readable NIfTI file ({exc}).") from None
    if len(shape) not in (2, 3):
        raise ValueError(f"{path}: expected a 2-D image or 3-D volume; the NIfTI header "
                         f"declares shape {shape}.")
    nbytes = math.prod(shape) * itemsize
    on_disk = os.path.getsize(path)
    # gzip inflates at most ~1032x; an uncompressed file must hold all the voxels
    limit = on_disk * 1100 if _suffix(path) == ".nii.gz" else on_disk
    if nbytes > limit:
        raise ValueError(f"{path}: the NIfTI header declares shape {shape} ({nbytes} bytes of "
                         f"voxels), more than the {on_disk}-byte file can hold: truncated or "
                         "a forged header.")


def save_image(path: str | os.PathLike[str], array: ArrayLike, *, bits: int = 16,
               affine: ArrayLike | None = None, header: Any = None) -> str:
    """Write an image or volume; the format follows the suffix.

    ``.npy``/``.npz``: exact (complex too). ``.tif``/``.tiff``: 2-D float32, exact.
    ``.png``: 2-D, `bits` (8 or 16) per pixel after mapping [min, max] of the array
    linearly to the full integer range; the mapping is recorded in the file and
    :func:`load_image` undoes it. ``.nii``/``.nii.gz``: 2-D or 3-D, real or complex, in
    the array's float type, with `affine` and `header` (e.g. from
    :func:`fastscore.io_medical.load_nifti`; default the identity) — see
    :func:`fastscore.io_medical.save_nifti`.

    Returns
    -------
    path : str
    """
    from ._optional import import_optional

    suffix = _suffix(path)
    arr = np.asarray(array)
    if arr.dtype.kind not in "fiubc" or arr.ndim not in (2, 3):
        raise ValueError(f"`array` must be a 2-D image or 3-D volume of numbers; got "
                         f"shape {arr.shape}, dtype {arr.dtype}.")
    if arr.dtype.kind == "c" and suffix not in (".npy", ".npz") + _NIFTI_SUFFIXES:
        raise ValueError(f"`array` is complex ({arr.dtype}); {suffix or 'this format'} holds "
                         "real images: use .npy, .npz or .nii(.gz), or save the magnitude.")
    if (affine is not None or header is not None) and suffix not in _NIFTI_SUFFIXES:
        raise ValueError(f"`affine` and `header` are for NIfTI files; got {suffix or 'no '}"
                         "suffix.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("`array` must be finite to be written as an image.")
    if suffix in (".npy", ".npz"):
        return save_array(path, arr)
    if arr.size == 0:
        raise ValueError(f"`array` is empty (shape {arr.shape}); {suffix or 'image'} files "
                         "need at least one pixel (.npy and .npz hold empty arrays).")
    if suffix in (".png", ".tif", ".tiff"):
        Image = import_optional("PIL.Image", "io")
        if arr.ndim != 2:
            raise ValueError(f"{suffix} files hold 2-D images; got shape {arr.shape} (use "
                             ".npy or .nii for volumes).")
        if suffix != ".png":
            image = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
            return _atomic.atomic_write(path, lambda f: image.save(f, format="TIFF"))
        if bits not in (8, 16):
            raise ValueError(f"`bits` must be 8 or 16; got {bits!r}.")
        PngInfo = import_optional("PIL.PngImagePlugin", "io").PngInfo
        low, high = float(arr.min()), float(arr.max())
        levels = 2 ** bits - 1
        # a constant image still needs low < high in the file: a span of 1, or of a few
        # float64 steps where 1 is below the resolution of `low` (|low| >= 2**53)
        span = high - low if high > low else max(1.0, 4 * float(np.spacing(abs(low))))
        q = np.round((arr.astype(np.float64) - low) * (levels / span))
        q = q.astype(np.uint8 if bits == 8 else np.uint16)
        meta = PngInfo()
        meta.add_text(_SCALING_KEY, f"{low!r},{low + span!r},{levels}")
        image = Image.fromarray(q)
        return _atomic.atomic_write(path, lambda f: image.save(f, format="PNG", pnginfo=meta))
    if suffix in _NIFTI_SUFFIXES:
        from .io_medical import save_nifti
        return save_nifti(path, arr, affine, header)
    raise ValueError(f"`path` {os.fspath(path)!r}: cannot write {suffix or '(no suffix)'} "
                     "files; use .npy, .npz, .png, .tif or .nii(.gz).")


def _atomic_nifti(path, image):
    """Write a NIfTI image atomically (nibabel picks the format from the suffix)."""
    suffix = _suffix(path)

    def write(f):
        if suffix == ".nii.gz":
            import gzip

            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(image.to_bytes())
        else:
            f.write(image.to_bytes())

    return _atomic.atomic_write(path, write)

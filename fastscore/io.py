"""Model files, checkpoints and array files.

A fastscore model file is an ``.npz`` archive (uncompressed by default) holding named
arrays plus one entry with JSON metadata. :func:`write_model_file` adds to the metadata the
file format version, the kind of object stored (``"patch_score_model"``, ``"checkpoint"``,
...) and the fastscore version, and writes **atomically**: the archive goes to a temporary
file in the destination folder, is flushed and ``fsync``-ed, then renamed over the final
name with ``os.replace`` (and the folder is synced), so the final name only ever holds a
complete file - the previous one survives any failure or crash during the write (a crash
may leave a hidden ``.<name>.<pid>-<host>.*.tmp`` file behind, which the next write to the
same name removes once its writer process is gone; nothing else).

:func:`read_model_file` checks everything it can before handing data out: a missing file
raises ``FileNotFoundError`` naming the path; anything that is not a complete, intact
fastscore archive of a format this version understands raises :class:`ModelFileError` (a
``ValueError``) saying what is wrong and where. Arrays are read with pickling disabled.

Hostile files are refused before any large allocation: an archive whose declared
(inflated) size exceeds 64 MiB and 100 times its size on disk (a decompression bomb), an
``.npy`` header declaring more or less data than its member or file holds, metadata over
16 MiB or nested deeper than 64 levels, image headers declaring more pixels than Pillow's
decompression-bomb limit or NIfTI headers more voxels than the file can hold, and a
``fastscore-scaling`` PNG text that is not a valid mapping. A write that fails (read-only
or full disk, missing permission) raises an ``OSError`` of the same errno naming the
destination; the temporary file is removed and a previous file is untouched.
"""

import errno
import importlib.util
import json
import math
import os
import socket
import stat
import tempfile
import zipfile
import zlib

import numpy as np

from ._version import __version__

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "write_model_file",
    "read_model_file",
    "save_array",
    "load_array",
    "load_image",
    "save_image",
]

#: Version of the model-file layout written by this fastscore; files with a higher version
#: are refused (written by a newer fastscore), lower ones are read.
FORMAT_VERSION = 1

_METADATA_KEY = "__fastscore_metadata__"
_RESERVED = ("format_version", "kind", "fastscore_version")
# hostile-file limits: an archive may inflate to at most _MAX_INFLATION times its size on
# disk once it holds more than _BOMB_FLOOR bytes (deflate reaches ~1000x only on constant
# data; fastscore writes uncompressed archives), metadata is small and shallow
_MAX_INFLATION = 100
_BOMB_FLOOR = 64 * 2**20
_MAX_MEMBERS = 10_000
_MAX_METADATA = 16 * 2**20
_MAX_METADATA_DEPTH = 64
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz",
                   ".dcm", ".mha", ".mhd", ".nrrd")


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used: not an archive, truncated, corrupt,
    without fastscore metadata, of another kind, or of a newer format.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        What is wrong with it.
    """

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------- atomic writing


def _umask():
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _fsync_folder(folder):
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_prefix(path):
    """Prefix of this process's temporary files for `path`: ``.<name>.<pid>-<host>.``."""
    host = zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF
    return f".{os.path.basename(path)}.{os.getpid()}-{host:08x}."


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # exists but belongs to someone else
        return True
    return True


def _remove_stale_temps(path):
    """Remove temporary files of earlier writes to `path` whose writer process (on this
    host) no longer runs: what a killed write leaves behind."""
    folder = os.path.dirname(os.path.abspath(path))
    base = f".{os.path.basename(path)}."
    host = _temp_prefix(path).rsplit("-", 1)[1]
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(base) and name.endswith(".tmp")):
            continue
        owner = name[len(base):].split(".", 1)[0]          # "<pid>-<host>"
        pid, _, owner_host = owner.partition("-")
        if owner_host + "." != host or not pid.isdigit() or _process_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def _atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to `path`, then rename it to `path`.

    The temporary file is in the destination folder (so the rename is atomic: same file
    system), flushed and fsync-ed before the rename; on any exception it is removed and the
    exception propagates, leaving a previous file at `path` untouched. The new file gets the
    previous file's permissions, or the default ``0o666 & ~umask``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "the destination folder does not exist",
                                folder)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "the destination is a folder", path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    _remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _write_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(exc, path) from exc
        raise
    _fsync_folder(folder)
    return path


def _write_error(exc, path):
    """An OSError of the same errno (hence class) naming the destination, not the temp file.

    ``OSError(errno, ...)`` picks the matching subclass (``PermissionError`` for EACCES,
    plain ``OSError`` for ENOSPC / EROFS), so callers can still test ``exc.errno``.
    """
    reason = exc.strerror or str(exc)
    if exc.errno is None:
        return OSError(f"cannot write {path}: {reason}; nothing was written and a "
                       "previous file at that path is unchanged.")
    return OSError(exc.errno, f"cannot write the file ({reason}); nothing was written and a "
                              "previous file at that path is unchanged", path)


# --------------------------------------------------------------------- model files


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def _check_arrays(arrays):
    if not isinstance(arrays, dict):
        raise TypeError(f"`arrays` must be a dict of name -> ndarray; got "
                        f"{type(arrays).__name__}.")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name == _METADATA_KEY or "\x00" in name:
            raise ValueError(f"array names must be non-empty strings other than "
                             f"{_METADATA_KEY!r}; got {name!r}.")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype {arr.dtype}; object arrays cannot be "
                            "stored (files are read without pickle).")
        out[name] = arr
    return out


def write_model_file(path, kind, arrays, metadata=None, *, compress=False):
    """Write arrays and JSON metadata to an ``.npz`` model file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, used exactly as given (no suffix is added; ``.npz`` is customary).
        Its folder must exist. An existing file is replaced only once the new one is
        complete on disk.
    kind : str
        What the file holds (``"patch_score_model"``, ``"checkpoint"``, ...), checked by
        :func:`read_model_file`.
    arrays : dict of str -> ndarray
        Named arrays (weights, optimiser moments, ...); any non-object dtype.
    metadata : dict, optional
        JSON-serialisable description (architecture, activations, normalisation, noise
        range, patch size, dtype, ...); NumPy scalars and small arrays are converted to
        Python numbers and lists. The keys ``format_version``, ``kind`` and
        ``fastscore_version`` are added by this function and may not be given.
    compress : bool, default False
        Deflate the arrays (smaller, slower to write and read).

    Returns
    -------
    path : str

    Raises
    ------
    TypeError
        `kind` not a string, `arrays` not a dict or holding object arrays, metadata not
        JSON-serialisable.
    ValueError
        Reserved metadata keys or invalid array names.
    FileNotFoundError
        The destination folder does not exist.
    OSError
        The write failed (read-only or full disk, permission): same errno, the message
        names `path`; nothing is left behind and a previous file is unchanged.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"`kind` must be a non-empty string; got {kind!r}.")
    arrays = _check_arrays(arrays)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise TypeError(f"`metadata` must be a dict; got {type(metadata).__name__}.")
    clash = [k for k in _RESERVED if k in metadata]
    if clash:
        raise ValueError(f"`metadata` may not set {clash}: write_model_file adds them.")
    full = {"format_version": FORMAT_VERSION, "kind": kind, "fastscore_version": __version__,
            **metadata}
    try:
        text = json.dumps(full, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`metadata` must be JSON-serialisable: {exc}.") from None
    payload = dict(arrays)
    payload[_METADATA_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    save = np.savez_compressed if compress else np.savez
    return _atomic_write(path, lambda f: save(f, **payload))


def _check_input_file(path, what):
    """FileNotFoundError / IsADirectoryError naming `path`, before anything is opened."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"expected a {what}, found a folder", path)


def _npy_header(fp):
    """Read an .npy header from `fp` -> (shape, fortran_order, dtype, header bytes).

    Only the header is read (at most ~10 kB), so a caller can check the size it declares
    before any array is allocated; raises ValueError for anything that is not an .npy
    header of a plain (non-object) dtype.
    """
    start = fp.tell()
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects (pickles are refused)")
    return shape, fortran, dtype, fp.tell() - start


def _npy_nbytes(shape, dtype):
    return math.prod(shape) * dtype.itemsize


def _check_archive_sizes(path, infos):
    """Refuse, from the zip's declared sizes alone, archives that would inflate hugely."""
    if len(infos) > _MAX_MEMBERS:
        raise ModelFileError(path, f"the archive holds {len(infos)} members (at most "
                                   f"{_MAX_MEMBERS} are read).")
    total = sum(info.file_size for info in infos)
    on_disk = os.path.getsize(path)
    if total > _BOMB_FLOOR and total > _MAX_INFLATION * on_disk:
        raise ModelFileError(
            path, f"the archive's members inflate to {total} bytes from {on_disk} bytes on "
                  f"disk (more than {_MAX_INFLATION}x): a decompression bomb? Refused "
                  "before decompressing.")


def _read_archive(path, what):
    """Every array of an .npz, fully read and CRC-checked -> dict; ModelFileError if broken.

    Before any array is allocated: the zip's declared sizes are checked against the file's
    size (decompression bombs), and each member's .npy header against the member's declared
    size (a header claiming more or less data than the member holds is refused).
    """
    path = os.fspath(path)
    _check_input_file(path, what)
    if os.path.getsize(path) == 0:
        raise ModelFileError(path, "the file is empty (0 bytes): an interrupted write by "
                                   "another program?")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            raise ModelFileError(path, "the .npz (zip) archive is truncated or damaged: its "
                                       "central directory at the end is missing.")
        raise ModelFileError(path, "not an .npz (zip) archive; a fastscore model file is an "
                                   ".npz written by fastscore.io.write_model_file.")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_archive_sizes(path, infos)
            for info in infos:
                name = info.filename
                if not name.endswith(".npy"):
                    raise ModelFileError(path, f"unexpected member {name!r} in the archive "
                                               "(an .npz holds only .npy arrays).")
                with zf.open(info) as member:
                    try:
                        shape, _, dtype, head = _npy_header(member)
                    except ValueError as exc:
                        raise ModelFileError(
                            path, f"the archive is corrupt: array {name[:-4]!r} has no valid "
                                  f".npy header ({exc}).") from None
                    if head + _npy_nbytes(shape, dtype) != info.file_size:
                        raise ModelFileError(
                            path, f"array {name[:-4]!r}: its header declares shape {shape} "
                                  f"of {dtype} ({_npy_nbytes(shape, dtype)} bytes) but the "
                                  f"member holds {info.file_size - head} bytes of data.")
                with zf.open(info) as member:
                    arr = np.lib.format.read_array(member, allow_pickle=False)
                    if member.read():     # reading to the end also checks the CRC
                        raise ModelFileError(path, f"array {name[:-4]!r} has trailing bytes.")
                arrays[name[:-4]] = arr
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError,
            NotImplementedError, RuntimeError, OverflowError, MemoryError) as exc:
        raise ModelFileError(path, f"the archive is corrupt ({type(exc).__name__}: {exc}).") \
            from exc
    return arrays


def _parse_metadata(path, raw):
    """The uint8 metadata member -> dict; ModelFileError for anything else."""
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"metadata stored as {raw.dtype} of shape {raw.shape}")
        if raw.size > _MAX_METADATA:
            raise ValueError(f"{raw.size} bytes of metadata (at most {_MAX_METADATA})")
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise ModelFileError(path, "the metadata is nested too deeply to be fastscore "
                                   "metadata.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(path, f"the metadata is not valid JSON ({exc}).") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(path, "the metadata is not a JSON object.")
    depth = _json_depth(metadata)
    if depth > _MAX_METADATA_DEPTH:
        raise ModelFileError(path, f"the metadata is nested too deeply ({depth} levels; "
                                   f"fastscore metadata has at most {_MAX_METADATA_DEPTH}).")
    return metadata


def _json_depth(obj):
    """Nesting depth of decoded JSON, iteratively (no recursion on hostile input)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            depth = max(depth, level)
            values = item.values() if isinstance(item, dict) else item
            stack.extend((v, level + 1) for v in values if isinstance(v, (dict, list)))
    return depth


def read_model_file(path, kind=None):
    """Read and validate a file written by :func:`write_model_file`.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str, optional
        The kind expected (``None`` accepts any).

    Returns
    -------
    arrays : dict of str -> ndarray
        Every stored array, fully read into memory.
    metadata : dict
        The JSON metadata, including ``format_version``, ``kind`` and
        ``fastscore_version``.

    Raises
    ------
    FileNotFoundError
        No file at `path` (the exception names it).
    ModelFileError
        Not an ``.npz`` archive; truncated; a member corrupt (CRC or format); no fastscore
        metadata or metadata that is not valid JSON (or too large or too deeply nested);
        another kind than `kind`; a format version newer than :data:`FORMAT_VERSION`
        (written by a newer fastscore); a decompression bomb or an .npy header whose
        declared size disagrees with the archive (both refused before decompressing).
    IsADirectoryError
        `path` is a folder.
    """
    arrays = _read_archive(path, "model file")
    raw = arrays.pop(_METADATA_KEY, None)
    if raw is None:
        raise ModelFileError(path, "no fastscore metadata in the archive: it is an .npz, but "
                                   "not one written by fastscore.io.write_model_file.")
    metadata = _parse_metadata(path, raw)
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(path, f"the metadata has no valid format_version (got "
                                   f"{version!r}).")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            path, f"written in file format {version} (by fastscore "
                  f"{metadata.get('fastscore_version', '?')}); this fastscore ({__version__}) "
                  f"reads formats up to {FORMAT_VERSION}: upgrade fastscore to load it.")
    found = metadata.get("kind")
    if not isinstance(found, str):
        raise ModelFileError(path, f"the metadata has no valid kind (got {found!r}).")
    if kind is not None and found != kind:
        raise ModelFileError(path, f"holds a {found!r}, not a {kind!r}.")
    return arrays, metadata


# --------------------------------------------------------------------- plain arrays


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


def save_array(path, array):
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
        return _atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))
    return _atomic_write(path, lambda f: np.savez(f, array=arr))


def load_array(path, *, key=None):
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
            arrays = _read_archive(path, "array file")
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
    _check_input_file(path, "array file")
    try:
        with open(path, "rb") as f:
            shape, _, dtype, head = _npy_header(f)
            size = os.fstat(f.fileno()).st_size
            if head + _npy_nbytes(shape, dtype) != size:
                raise ValueError(f"the header declares shape {shape} of {dtype} "
                                 f"({_npy_nbytes(shape, dtype)} bytes) but the file holds "
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


def load_image(path, *, key=None):
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
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, ... on bad files
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
    except Exception as exc:  # nibabel raises many types for bad files
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


def save_image(path, array, *, bits=16, affine=None, header=None):
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
            return _atomic_write(path, lambda f: image.save(f, format="TIFF"))
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
        return _atomic_write(path, lambda f: image.save(f, format="PNG", pnginfo=meta))
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

    return _atomic_write(path, write)

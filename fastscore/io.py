"""Model files, checkpoints and array files.

A fastscore model file is an ``.npz`` archive (uncompressed by default) holding named
arrays plus one entry with JSON metadata. :func:`write_model_file` adds to the metadata the
file format version, the kind of object stored (``"patch_score_model"``, ``"checkpoint"``,
...) and the fastscore version, and writes **atomically**: the archive goes to a temporary
file in the destination folder, is flushed and ``fsync``-ed, then renamed over the final
name with ``os.replace`` (and the folder is synced), so the final name only ever holds a
complete file - the previous one survives any failure or crash during the write (a crash
may leave a hidden ``.<name>.*.tmp`` file behind; nothing else).

:func:`read_model_file` checks everything it can before handing data out: a missing file
raises ``FileNotFoundError`` naming the path; anything that is not a complete, intact
fastscore archive of a format this version understands raises :class:`ModelFileError` (a
``ValueError``) saying what is wrong and where. Arrays are read with pickling disabled.
"""

import errno
import json
import os
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
]

#: Version of the model-file layout written by this fastscore; files with a higher version
#: are refused (written by a newer fastscore), lower ones are read.
FORMAT_VERSION = 1

_METADATA_KEY = "__fastscore_metadata__"
_RESERVED = ("format_version", "kind", "fastscore_version")
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
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    return path


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


def _read_archive(path, what):
    """Every array of an .npz, fully read and CRC-checked -> dict; ModelFileError if broken."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"expected a {what}, found a folder", path)
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
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise ModelFileError(path, f"unexpected member {name!r} in the archive "
                                               "(an .npz holds only .npy arrays).")
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
        metadata or metadata that is not valid JSON; another kind than `kind`; a format
        version newer than :data:`FORMAT_VERSION` (written by a newer fastscore).
    """
    arrays = _read_archive(path, "model file")
    raw = arrays.pop(_METADATA_KEY, None)
    if raw is None:
        raise ModelFileError(path, "no fastscore metadata in the archive: it is an .npz, but "
                                   "not one written by fastscore.io.write_model_file.")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"metadata stored as {raw.dtype} of shape {raw.shape}")
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(path, f"the metadata is not valid JSON ({exc}).") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(path, "the metadata is not a JSON object.")
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
        raise NotImplementedError(f"`path` {os.fspath(path)!r}: {suffix} files are not "
                                  "supported yet; save and load .npy or .npz.")
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
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "array file not found", path)
    try:
        with open(path, "rb") as f:
            arr = np.lib.format.read_array(f, allow_pickle=False)
            if f.read(1):
                raise ValueError("trailing bytes after the array")
    except (ValueError, EOFError, OSError, OverflowError, MemoryError) as exc:
        raise ValueError(f"{path}: cannot read the array file (truncated or not a .npy? "
                         f"{type(exc).__name__}: {exc}).") from None
    return arr

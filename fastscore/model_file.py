"""Model and checkpoint files: named arrays plus JSON metadata in one ``.npz`` archive.

A fastscore model file is an ``.npz`` archive (uncompressed by default) holding named
arrays plus one entry with JSON metadata. :func:`write_model_file` adds to the metadata the
file format version, the kind of object stored (``"patch_score_model"``, ``"checkpoint"``,
...) and the fastscore version, and writes **atomically** (:mod:`fastscore._atomic`).

:func:`read_model_file` checks everything it can before handing data out: a missing file
raises ``FileNotFoundError`` naming the path; anything that is not a complete, intact
fastscore archive of a format this version understands raises :class:`ModelFileError` (a
``ValueError``) saying what is wrong and where. Arrays are read with pickling disabled.
Hostile files are refused before any large allocation: an archive whose declared
(inflated) size exceeds 64 MiB and 100 times its size on disk (a decompression bomb), an
``.npy`` header declaring more or less data than its member holds, metadata over 16 MiB or
nested deeper than 64 levels. :func:`read_archive` (every array of any ``.npz``, checked
the same way) also serves :func:`fastscore.io.load_array`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from . import _atomic
from ._version import __version__

__all__ = ["FORMAT_VERSION", "ModelFileError", "read_archive", "read_model_file",
           "write_model_file"]

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

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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


def write_model_file(path: str | os.PathLike[str], kind: str, arrays: Mapping[str, Any],
                     metadata: Mapping[str, Any] | None = None, *,
                     compress: bool = False) -> str:
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
    return _atomic.atomic_write(path, lambda f: save(f, **payload))


def check_input_file(path: str, what: str) -> None:
    """FileNotFoundError / IsADirectoryError naming `path`, before anything is opened."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"expected a {what}, found a folder", path)


def npy_header(fp: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype, int]:
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


def npy_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of data an .npy header of `shape` and `dtype` declares."""
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


def read_archive(path: str | os.PathLike[str], what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz, fully read and CRC-checked -> dict; ModelFileError if broken.

    Before any array is allocated: the zip's declared sizes are checked against the file's
    size (decompression bombs), and each member's .npy header against the member's declared
    size (a header claiming more or less data than the member holds is refused).
    """
    path = os.fspath(path)
    check_input_file(path, what)
    if os.path.getsize(path) == 0:
        raise ModelFileError(path, "the file is empty (0 bytes): an interrupted write by "
                                   "another program?")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == b"PK\x03\x04":
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
                        shape, _, dtype, head = npy_header(member)
                    except ValueError as exc:
                        raise ModelFileError(
                            path, f"the archive is corrupt: array {name[:-4]!r} has no valid "
                                  f".npy header ({exc}).") from None
                    if head + npy_nbytes(shape, dtype) != info.file_size:
                        raise ModelFileError(
                            path, f"array {name[:-4]!r}: its header declares shape {shape} "
                                  f"of {dtype} ({npy_nbytes(shape, dtype)} bytes) but the "
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


def read_model_file(path: str | os.PathLike[str],
                    kind: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
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
    arrays = read_archive(path, "model file")
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

"""Atomic file writing: a file appears complete under its final name, or not at all.

:func:`atomic_write` writes to a temporary file in the destination folder, flushes and
``fsync``-s it, then renames it over the final name with ``os.replace`` (and syncs the
folder), so the final name only ever holds a complete file - the previous one survives any
failure or crash during the write. A crash may leave a hidden
``.<name>.<pid>-<host>.*.tmp`` file behind, which the next write to the same name removes
once its writer process is gone (nothing else). A failed write raises an ``OSError`` of the
same errno naming the destination.

Used by every writer of :mod:`fastscore.model_file`, :mod:`fastscore.io` and
:mod:`fastscore.io_medical`; they call ``_atomic.atomic_write`` through the module, so a test
can replace it in one place.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import tempfile
import zlib
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_write", "temp_prefix", "umask", "write_error"]


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def fsync_folder(folder: str) -> None:
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


def temp_prefix(path: str) -> str:
    """Prefix of this process's temporary files for `path`: ``.<name>.<pid>-<host>.``."""
    host = zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF
    return f".{os.path.basename(path)}.{os.getpid()}-{host:08x}."


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # exists but belongs to someone else
        return True
    return True


def remove_stale_temps(path: str) -> None:
    """Remove temporary files of earlier writes to `path` whose writer process (on this
    host) no longer runs: what a killed write leaves behind."""
    folder = os.path.dirname(os.path.abspath(path))
    base = f".{os.path.basename(path)}."
    host = temp_prefix(path).rsplit("-", 1)[1]
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(base) and name.endswith(".tmp")):
            continue
        owner = name[len(base):].split(".", 1)[0]          # "<pid>-<host>"
        pid, _, owner_host = owner.partition("-")
        if owner_host + "." != host or not pid.isdigit() or process_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> str:
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
        mode = 0o666 & ~umask()
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise write_error(exc, path) from exc
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
            raise write_error(exc, path) from exc
        raise
    fsync_folder(folder)
    return path


def write_error(exc: OSError, path: str) -> OSError:
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

"""The thread policy: how many threads a kernel runs, and how BLAS is kept out of the way.

One rule for every kernel:

- **The count.** ``n_threads=None`` means the process setting: :func:`set_num_threads` if
  it was called, else the environment variable ``FASTSCORE_NUM_THREADS``, else
  ``OMP_NUM_THREADS`` (its first entry), else the number of cores this process may run on.
  Negative counts are relative to the cores (``-1``: all, ``-2``: all but one); ``0`` is
  an error.
- **The bound.** A count is at most :func:`max_threads`, ``4 ×`` the available cores (and
  never below 16), so that an absurd count (``1000``, ``2**31``) is a ``ValueError`` naming
  the argument or the environment variable instead of a failed thread creation inside
  OpenMP. More threads than cores never makes a kernel faster.
- **The work.** :func:`effective_threads` gives a kernel no more threads than it has units
  of work (``work``), so tiny calls stay on one thread. Results never depend on the count
  (kernels split work statically and reduce in a fixed order).
- **BLAS.** Kernels that call BLAS from their own OpenMP threads (the MLP) hold
  :data:`single_threaded_blas` for the duration of the call: the BLAS pools found by
  ``threadpoolctl`` run one thread each inside the scope and get their previous counts
  back when the outermost scope ends (nested and concurrent scopes are counted).
  :func:`set_num_threads` caps BLAS to the same count as the kernels and returns a handle
  that undoes both (``with fastscore.set_num_threads(2): ...``); ``set_num_threads(None)``
  goes back to the default and to the BLAS counts the process had before.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

__all__ = ["available_cores", "max_threads", "check_threads", "resolve_n_threads",
           "effective_threads", "set_num_threads", "get_num_threads",
           "single_threaded_blas"]

#: A thread count may be at most this many times the available cores (see max_threads).
THREADS_PER_CORE_LIMIT = 4
#: ... and this many threads are always allowed, whatever the core count.
MIN_THREAD_LIMIT = 16

# n: the count set by set_num_threads (None: none in effect); default: the environment's
# count, cached (never taken for a setting: a handle restores "no setting", not it);
# blas: the BLAS limiter of the setting in effect
_state: dict[str, Any] = {"n": None, "default": None, "blas": None}
_lock = threading.RLock()


def available_cores() -> int:
    """Number of cores this process may run on (its CPU affinity where known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def max_threads() -> int:
    """Largest accepted thread count: ``max(16, 4 × available_cores())``."""
    return max(MIN_THREAD_LIMIT, THREADS_PER_CORE_LIMIT * available_cores())


def check_threads(n: int, name: str) -> int:
    """Validate a thread count and return it as a positive int.

    Negative counts are relative to :func:`available_cores` (``-1``: all cores); ``0`` and
    counts above :func:`max_threads` are a ``ValueError`` naming `name`.
    """
    from ._validation import check_int

    if type(n) is int and 0 < n <= MIN_THREAD_LIMIT:
        return n        # always within the bound (checked on every kernel call: no syscall)
    n = check_int(n, name)
    if n == 0:
        raise ValueError(f"`{name}` must be a positive or negative integer, not 0.")
    limit = max_threads()
    if n > limit:
        raise ValueError(
            f"`{name}` must be at most {limit} (4 x the {available_cores()} available "
            f"core(s), at least {MIN_THREAD_LIMIT}); got {n}.")
    return n if n > 0 else max(1, available_cores() + 1 + n)


def _from_environment(variable: str) -> int | None:
    value = os.environ.get(variable, "")
    if variable == "OMP_NUM_THREADS":
        value = value.split(",")[0]      # nested levels: the outermost one is ours
    if value.strip() == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {variable} must be an integer; got {value!r}.") from None
    return check_threads(n, variable)


def _default_threads() -> int:
    for variable in ("FASTSCORE_NUM_THREADS", "OMP_NUM_THREADS"):
        n = _from_environment(variable)
        if n is not None:
            return n
    return available_cores()


def get_num_threads() -> int:
    """The thread count kernels use when called with ``n_threads=None``."""
    with _lock:
        if _state["n"] is not None:
            return _state["n"]
        if _state["default"] is None:
            _state["default"] = _default_threads()
        return _state["default"]


def resolve_n_threads(n_threads: int | None, name: str = "n_threads") -> int:
    """``None`` -> :func:`get_num_threads`; otherwise :func:`check_threads`."""
    if n_threads is None:
        return get_num_threads()
    return check_threads(n_threads, name)


def effective_threads(n_threads: int | None, work: int | None = None) -> int:
    """Threads a kernel call runs: the resolved count, at most `work` (units of work that
    can run in parallel) and at least 1."""
    n = resolve_n_threads(n_threads)
    return n if work is None else max(1, min(n, int(work)))


# ------------------------------------------------------------------------------ BLAS


def _limit_blas(n):
    """Cap every BLAS pool to `n` threads; return the limiter that restores them."""
    import threadpoolctl

    return threadpoolctl.threadpool_limits(limits=n, user_api="blas")


class _Setting:
    """Returned by :func:`set_num_threads`; as a context manager, undoes that call."""

    def __init__(self, previous: int | None) -> None:
        self._previous = previous

    def __enter__(self) -> _Setting:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        _apply(self._previous)
        return False


def _apply(n: int | None) -> None:
    with _lock:
        if _state["blas"] is not None:
            _state["blas"].restore_original_limits()
            _state["blas"] = None
        _state["n"] = n
        _state["default"] = None
        if n is not None:
            _state["blas"] = _limit_blas(n)


def set_num_threads(n: int | None) -> _Setting:
    """Set the thread count of fastscore's kernels and cap BLAS to the same count.

    Parameters
    ----------
    n : int or None
        Number of threads, at most :func:`max_threads`; negative counts from the number
        of cores (-1: all cores, -2: all but one); 0 is an error. ``None`` returns to the
        default (environment, else all cores) and gives BLAS back the thread counts it had
        before fastscore changed them.

    Returns
    -------
    handle
        A context manager: ``with fastscore.set_num_threads(2): ...`` restores the
        previous setting (kernels and BLAS) when the block ends.
    """
    value = None if n is None else check_threads(n, "n")
    with _lock:
        previous = _state["n"]
        _apply(value)
    return _Setting(previous)


def _process_wide_count(lib):
    """(get, set) of an OpenBLAS's process-wide thread count, or None.

    threadpoolctl's own setter acts only from the first thread that used it (for OpenBLAS
    with its pthreads pool; later threads silently change nothing), so kernels called from
    any Python thread use the library's global ``openblas_get/set_num_threads``.
    """
    if getattr(lib, "internal_api", None) != "openblas":
        return None
    if getattr(lib, "threading_layer", None) == "openmp":
        return None      # per-thread pools: a BLAS call inside an OpenMP region is serial
    get = lib._get_symbol("openblas_get_num_threads")
    put = lib._get_symbol("openblas_set_num_threads")
    if get is None or put is None:
        return None
    return get, put


class _SingleThreadedBlas:
    """Scope in which the BLAS behind ``scipy.linalg.cython_blas`` runs one thread.

    Entered by kernels that call BLAS from their own threads. Nested and concurrent
    scopes share one limit; the outermost exit restores the previous counts.
    :attr:`available` is False when threadpoolctl finds no BLAS it can control for scipy
    (such kernels then run one thread and let BLAS parallelise).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: list[Any] = []
        self._controller: Any = None
        self._resolved = False

    def _resolve(self):
        if not self._resolved:
            with self._lock:
                if not self._resolved:
                    self._controller = self._find()
                    self._resolved = True
        return self._controller

    @staticmethod
    def _find():
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401  (loads scipy's BLAS)
        import threadpoolctl

        blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
        root = os.path.dirname(os.path.abspath(scipy.__file__))
        paths = [lib.filepath for lib in blas.lib_controllers]
        own = [p for p in paths if os.path.abspath(p).startswith((root + os.sep,
                                                                  root + ".libs"))]
        # scipy's own copy (scipy.libs, scipy/.dylibs), else the only BLAS in the process
        chosen = blas.select(filepath=own) if own else blas if len(paths) == 1 else None
        if chosen is None:
            return None
        pairs = [_process_wide_count(lib) for lib in chosen.lib_controllers]
        return pairs if all(pairs) else None

    @property
    def available(self) -> bool:
        return self._resolve() is not None

    def __enter__(self) -> _SingleThreadedBlas:
        controller = self._resolve()
        if controller is not None:
            with self._lock:
                if self._depth == 0:
                    # threadpoolctl's per-library get/set (what its limiter does, without
                    # the ~40 us of bookkeeping per call: this runs on every MLP call)
                    self._saved = [(put, get()) for get, put in controller]
                    for put, old in self._saved:
                        if old != 1:
                            put(1)
                self._depth += 1
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        if self._controller is not None:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    for put, old in self._saved:
                        if old != 1:
                            put(old)
                    self._saved = []
        return False


#: The scoped BLAS limit of kernels that call BLAS from OpenMP threads.
single_threaded_blas = _SingleThreadedBlas()

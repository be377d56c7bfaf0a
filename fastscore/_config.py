"""Thread count and build configuration.

One knob, :func:`set_num_threads`, sets the number of OpenMP threads every fastscore kernel
uses and caps the BLAS thread pool to the same number (through ``threadpoolctl`` when it is
installed), so that fastscore's own threads and BLAS threads never oversubscribe the cores.
The default comes from the environment variable ``FASTSCORE_NUM_THREADS``, else from the
number of cores this process may run on.
"""

import os
import platform
import sys

__all__ = ["set_num_threads", "get_num_threads", "resolve_n_threads", "show_config",
           "openmp_enabled"]

_state = {"n_threads": None}


def _available_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _from_environment():
    value = os.environ.get("FASTSCORE_NUM_THREADS")
    if value is None or value.strip() == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(
            f"environment variable FASTSCORE_NUM_THREADS must be an integer; got {value!r}."
        ) from None
    return _normalise(n, "FASTSCORE_NUM_THREADS")


def _normalise(n, name):
    from ._validation import check_int

    n = check_int(n, name)
    if n == 0:
        raise ValueError(f"`{name}` must be a positive or negative integer, not 0.")
    cores = _available_cores()
    return n if n > 0 else max(1, cores + 1 + n)


def _cap_blas(n):
    try:
        import threadpoolctl
    except ImportError:
        return False
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    return True


def set_num_threads(n):
    """Set the thread count of fastscore's kernels and cap BLAS to the same count.

    Parameters
    ----------
    n : int
        Number of threads; negative counts from the number of cores (-1: all cores,
        -2: all but one); 0 is an error.
    """
    _state["n_threads"] = _normalise(n, "n")
    _cap_blas(_state["n_threads"])


def get_num_threads():
    """The thread count kernels use when called with ``n_threads=None``."""
    if _state["n_threads"] is None:
        env = _from_environment()
        _state["n_threads"] = env if env is not None else _available_cores()
    return _state["n_threads"]


def resolve_n_threads(n_threads):
    """``None`` -> the global setting; otherwise validate as :func:`set_num_threads` does."""
    if n_threads is None:
        return get_num_threads()
    return _normalise(n_threads, "n_threads")


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP."""
    from ._ext import _common

    return bool(_common.openmp_enabled())


def _blas_info():
    try:
        import threadpoolctl
    except ImportError:
        return ["(install threadpoolctl to see and cap BLAS threads)"]
    rows = []
    for lib in threadpoolctl.threadpool_info():
        rows.append(f"{lib.get('internal_api')} {lib.get('version')} "
                    f"threads={lib.get('num_threads')} ({os.path.basename(lib['filepath'])})")
    return rows or ["(no BLAS found by threadpoolctl)"]


def show_config(file=None):
    """Print versions, the SIMD target the kernels dispatch to, and thread counts."""
    import numpy
    import scipy

    from . import __version__
    from ._ext import _common

    file = sys.stdout if file is None else file
    lines = [
        f"fastscore {__version__}",
        f"python    {platform.python_version()} ({platform.machine()}, {platform.system()})",
        f"numpy     {numpy.__version__}",
        f"scipy     {scipy.__version__}",
        f"SIMD      {_common.simd_target()} (runtime dispatch; compiled clones: "
        f"{_common.simd_clones()})",
        f"OpenMP    {'enabled' if _common.openmp_enabled() else 'disabled'}",
        f"threads   {get_num_threads()} (cores available: {_available_cores()}, "
        f"FASTSCORE_NUM_THREADS={os.environ.get('FASTSCORE_NUM_THREADS', 'unset')})",
    ]
    lines += [f"BLAS      {row}" for row in _blas_info()]
    print("\n".join(lines), file=file)

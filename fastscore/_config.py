"""Build configuration and the public thread knobs.

:func:`set_num_threads` / :func:`get_num_threads` are defined by the thread policy in
:mod:`fastscore._threads` (one rule for every kernel, the bound on counts, the scoped
BLAS limit); this module re-exports them and reports the build with :func:`show_config`.
"""

import os
import platform
import sys

from ._threads import (available_cores, get_num_threads, resolve_n_threads,
                       set_num_threads)

__all__ = ["set_num_threads", "get_num_threads", "resolve_n_threads", "show_config",
           "openmp_enabled"]


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP."""
    from ._ext import _common

    return bool(_common.openmp_enabled())


def _blas_info():
    import threadpoolctl

    rows = []
    for lib in threadpoolctl.threadpool_info():
        rows.append(f"{lib.get('internal_api')} {lib.get('version')} "
                    f"threads={lib.get('num_threads')} ({os.path.basename(lib['filepath'])})")
    return rows or ["(no BLAS found by threadpoolctl)"]


def show_config(file=None):
    """Print versions, the SIMD target the kernels dispatch to, and thread counts."""
    import numpy
    import scipy

    from ._ext import _common
    from ._version import __version__

    file = sys.stdout if file is None else file
    lines = [
        f"fastscore {__version__}",
        f"python    {platform.python_version()} ({platform.machine()}, {platform.system()})",
        f"numpy     {numpy.__version__}",
        f"scipy     {scipy.__version__}",
        f"SIMD      {_common.simd_target()} (runtime dispatch; compiled clones: "
        f"{_common.simd_clones()})",
        f"OpenMP    {'enabled' if _common.openmp_enabled() else 'disabled'}",
        f"threads   {get_num_threads()} (cores available: {available_cores()}, "
        f"FASTSCORE_NUM_THREADS={os.environ.get('FASTSCORE_NUM_THREADS', 'unset')}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
    ]
    lines += [f"BLAS      {row}" for row in _blas_info()]
    print("\n".join(lines), file=file)

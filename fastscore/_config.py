"""Build configuration and the public thread knobs.

:func:`set_num_threads` / :func:`get_num_threads` are defined by the thread policy in
:mod:`fastscore._threads` (one rule for every kernel, the bound on counts, the scoped
BLAS limit); this module re-exports them and reports the build with :func:`show_config`.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import TextIO

from ._threads import (available_cores, get_num_threads, resolve_n_threads,
                       set_num_threads)

__all__ = ["set_num_threads", "get_num_threads", "resolve_n_threads", "show_config",
           "openmp_enabled", "simd_report", "simd_summary"]

# FASTSCORE_SIMD value -> the highest x86-64 level the kernels may use (csrc/fs_common.c)
SIMD_CHOICES = {"avx512": 4, "avx2": 3, "baseline": 0}
# the compiled modules whose kernels dispatch at run time (each has simd_clone())
_SIMD_EXTENSIONS = ("kde", "patches", "mlp", "adam")


def simd_request() -> str | None:
    """The value of ``FASTSCORE_SIMD`` (None when unset or empty), checked.

    Raises
    ------
    ValueError
        If the variable is set to anything but ``avx512``, ``avx2`` or ``baseline``.
    """
    value = os.environ.get("FASTSCORE_SIMD", "")
    if value == "":
        return None
    if value not in SIMD_CHOICES:
        raise ValueError(
            f"environment variable FASTSCORE_SIMD must be one of "
            f"{', '.join(repr(c) for c in SIMD_CHOICES)} (or unset); got {value!r}.")
    return value


def simd_report() -> dict:
    """Which SIMD body every kernel runs, and why.

    Returns
    -------
    dict
        ``cpu``: the CPU's x86-64 level (``"x86-64-v4"``, ``"x86-64-v3"`` or
        ``"baseline"``); ``forced``: ``"FASTSCORE_SIMD=<value>"`` when that variable lowers
        the level below the CPU's, else None; ``kernels``: extension name -> the body its
        dispatch runs (an extension without a wider body runs the next lower one, e.g. the
        MLP has no AVX-512 elementwise body; its packed matrix products are named apart,
        ``"x86-64-v3 (GEMM x86-64-v4)"``).
    """
    import importlib

    from ._ext import _common

    request = simd_request()
    cpu = _common.simd_cpu_level()
    forced = request is not None and SIMD_CHOICES[request] < cpu
    return {
        "cpu": _common.LEVEL_NAMES[cpu],
        "forced": f"FASTSCORE_SIMD={request}" if forced else None,
        "kernels": {name: _body(importlib.import_module(f"fastscore._ext.{name}"))
                    for name in _SIMD_EXTENSIONS},
    }


def _body(module) -> str:
    """An extension's SIMD body; the MLP's packed matrix products may run another one."""
    body = module.simd_clone()
    gemm = getattr(module, "gemm_clone", None)
    return body if gemm is None or gemm() == body else f"{body} (GEMM {gemm()})"


def simd_summary() -> str:
    """One line: the body of every kernel, the CPU's level and whether it was forced."""
    report = simd_report()
    kernels = ", ".join(f"{name} {body}" for name, body in report["kernels"].items())
    why = f"forced by {report['forced']}" if report["forced"] else "not forced"
    return f"{kernels} (CPU {report['cpu']}; {why})"


simd_request()          # a bad FASTSCORE_SIMD fails at `import fastscore`


def openmp_enabled() -> bool:
    """True when the compiled kernels were built with OpenMP."""
    from ._ext import _common

    return bool(_common.openmp_enabled())


def _blas_info() -> list[str]:
    import threadpoolctl

    rows = []
    for lib in threadpoolctl.threadpool_info():
        rows.append(f"{lib.get('internal_api')} {lib.get('version')} "
                    f"threads={lib.get('num_threads')} ({os.path.basename(lib['filepath'])})")
    return rows or ["(no BLAS found by threadpoolctl)"]


def show_config(file: TextIO | None = None) -> None:
    """Print versions, the SIMD body every kernel runs, and thread counts."""
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
        f"SIMD      {simd_summary()}",
        f"OpenMP    {'enabled' if _common.openmp_enabled() else 'disabled'}",
        f"threads   {get_num_threads()} (cores available: {available_cores()}, "
        f"FASTSCORE_NUM_THREADS={os.environ.get('FASTSCORE_NUM_THREADS', 'unset')}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
    ]
    lines += [f"BLAS      {row}" for row in _blas_info()]
    print("\n".join(lines), file=file)

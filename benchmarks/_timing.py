"""Timing helper shared by the benchmark scripts.

``measure(fn)`` runs a warm-up call, then repeats and returns the median and minimum wall
time in seconds; ``header()`` describes the machine so every table says where it was
measured; ``Table`` prints ``case | contender | ms | ratio`` rows from one run.
"""

import argparse
import importlib
import os
import platform
import statistics
import time

import numpy as np

__all__ = ["measure", "header", "Table", "parser", "try_import", "cpu_name"]

# environment variables that cap the instruction set of the contenders (OpenBLAS under
# NumPy/SciPy, numba, PyTorch, MKL)
CONTENDER_SIMD = ("OPENBLAS_CORETYPE", "NUMBA_CPU_NAME", "ATEN_CPU_CAPABILITY",
                  "MKL_ENABLE_INSTRUCTIONS")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(title, **facts):
    import fastscore
    from fastscore._config import simd_summary
    from fastscore._ext import _common

    rows = [f"# {title}",
            f"# cpu: {cpu_name()} ({os.cpu_count()} logical cores); "
            f"simd: {simd_summary()}; openmp: {_common.openmp_enabled()}",
            f"# fastscore {fastscore.__version__}, numpy {np.__version__}, "
            f"python {platform.python_version()}"]
    # the contenders' own SIMD switches, e.g. to emulate an AVX2 machine on an AVX-512 one
    forced = [f"{v}={os.environ[v]}" for v in CONTENDER_SIMD if os.environ.get(v)]
    if forced:
        rows.append(f"# contenders' SIMD: {', '.join(forced)}")
    rows += [f"# {k}: {v}" for k, v in facts.items()]
    return "\n".join(rows)


def measure(fn, repeat=7, min_time=0.0, warmup=1):
    """Median and min seconds of `fn()` over `repeat` runs (after `warmup` calls).

    With ``min_time`` > 0, keeps repeating until that much time was spent (at least
    `repeat` runs), which steadies very short kernels.
    """
    for _ in range(warmup):
        fn()
    times = []
    spent = 0.0
    while len(times) < repeat or spent < min_time:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
        if len(times) > 1000:
            break
    return statistics.median(times), min(times)


def try_import(name):
    """The module, or None when it is not installed (benchmarks say so in the table)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


class Table:
    """Rows of ``case | contender | median ms | extra columns | ratio vs fastscore``."""

    def __init__(self, columns):
        self.columns = list(columns)
        self.rows = []

    def add(self, *values):
        self.rows.append([str(v) for v in values])

    def render(self):
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
        out = [line(self.columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(r) for r in self.rows]
        return "\n".join(out)


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts to sweep (default: 1 2)")
    return p

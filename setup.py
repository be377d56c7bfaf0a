"""Build the compiled kernels: one extension module per concept.

Each ``fastscore/_ext/<name>.pyx`` is compiled together with ``csrc/<name>.c`` (when it
exists; a kernel with a long compile may instead have one unit per type,
``csrc/<name>_f32.c`` and ``csrc/<name>_f64.c``, which compile in parallel) and
``csrc/fs_common.c``; adding a kernel concept needs no change here.

Compilers. GCC or Clang on Linux and macOS (x86_64, arm64). The kernels use GCC vector
extensions and ``__restrict__``, which MSVC does not have: Windows is not supported
(build under WSL, or with MinGW-w64 GCC at your own risk; no wheels are made for it).

Flags: -O3, OpenMP when the compiler supports it, no -march=native. SIMD comes from
runtime dispatch (bodies compiled per x86-64-v4 / -v3 level with GCC on x86-64, picked
per call by the CPU's level capped by ``FASTSCORE_SIMD``, see csrc/fs_common.h and
csrc/fs_simd_stamp.h), with the clone set and the KDE dimension specialisations
chosen per extension in ``_PER_EXTENSION`` below (``benchmarks/README.md``, section
build). Per-file flags are in ``_PER_FILE``, never in ``#pragma GCC optimize``.

Compilation runs in parallel (every source file of every extension, as many jobs as
cores; ``FASTSCORE_BUILD_JOBS=N`` or ``build_ext -j N`` to change), also under
``pip install .`` and ``pip wheel .``.

Environment switches:

- ``FASTSCORE_DEBUG_CYTHON=1``: Cython bounds, wraparound and initialisation checks, and
  Python-semantics division (a debug build for the test suite).
- ``FASTSCORE_NO_OPENMP=1``: build without OpenMP (kernels run on one thread).
- ``FASTSCORE_BUILD_ONLY=patches,kde`` (development): build just the named modules.
- ``FASTSCORE_SANITIZE=1`` (development and CI, see ``.ci/sanitize.sh``): build with
  AddressSanitizer + UndefinedBehaviorSanitizer.
- ``FASTSCORE_MLP_PROFILE=1`` (measurement, ``benchmarks/bench_mlp.py``): compile the MLP
  kernels' per-layer timers in (off by default: the kernels then read no clock).
- ``FASTSCORE_CLONE_SET=0|1|2|3`` and ``FASTSCORE_KDE_SPEC=SCORE_MASK,DENSITY_MASK``
  (measurement of variants, ``benchmarks/build_times.py``): override the clone set of
  every extension and the KDE specialisation masks.
"""

import glob
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"

# Per extension: the SIMD clone set (csrc/fs_common.h: 0 none, 1 v3, 2 v4 + v3, 3 v4;
# always with the x86-64 baseline) and extra macros (compiler flags: _PER_FILE). A clone
# or a KDE specialisation stays only if `benchmarks/build_times.py --variants` measures
# it >= 5% faster; the table and what is still unmeasured are in benchmarks/README.md,
# section build.
_PER_EXTENSION = {
    "_common": {"clones": 2},
    "adam": {"clones": 2},
    "kde": {"clones": 2, "macros": [("FS_KDE_SPEC_SCORE", "0x31E"),
                                    ("FS_KDE_SPEC_DENSITY", "0x31E")]},
    # the MLP's own loops (bias, activation, Adam-free) are a small part next to BLAS: the
    # v4 clone measured 1-2 % over v3 (under the 5 % bar), v3 7-8 % over the baseline
    "mlp": {"clones": 1},
    "patches": {"clones": 2},
}

# Per source file: extra compiler flags (never `#pragma GCC optimize` in csrc/). They
# apply to that file only, not to the Cython module or fs_common.c of its extension.
_PER_FILE = {
    # a step is the same IEEE arithmetic in the vector body, the scalar tail and the
    # NumPy reference whatever the clone: no a*b + c -> fma contraction
    "csrc/adam.c": ["-ffp-contract=off"],
    # FP exception flags are never read: lets GCC if-convert the selects of leaky ReLU
    # and of the clamps of the float approximations (vectorised on every clone)
    "csrc/mlp.c": ["-fno-trapping-math"],
}


def _enabled(variable):
    return os.environ.get(variable, "") not in ("", "0")


def _compiler_accepts(flags):
    """True if the C compiler builds a tiny OpenMP program with these flags."""
    import sysconfig

    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    code = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            res = subprocess.run(cc + flags + [src, "-o", os.path.join(tmp, "t")],
                                 capture_output=True)
        except OSError:
            return False
        return res.returncode == 0


def _flags():
    if sys.platform == "win32":
        raise RuntimeError(
            "fastscore's C kernels need GCC or Clang (GCC vector extensions); MSVC cannot "
            "build them. Use WSL on Windows.")
    debug = _enabled("FASTSCORE_DEBUG_CYTHON")
    compile_args = ["-O3", "-fno-math-errno", "-Wno-unused-function"]
    link_args = []
    if not _enabled("FASTSCORE_NO_OPENMP") and _compiler_accepts(["-fopenmp"]):
        compile_args += ["-fopenmp"]
        link_args += ["-fopenmp"]
    else:
        print("fastscore: building WITHOUT OpenMP (kernels run on one thread)")
    if _enabled("FASTSCORE_SANITIZE"):
        sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                    "-fno-sanitize-recover=all"]
        compile_args += sanitize + ["-g"]
        link_args += sanitize
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": not debug,
        "initializedcheck": debug,
        "embedsignature": True,
    }
    return compile_args, link_args, directives


def _settings(name):
    """Clone set and macros of one extension (with the measurement overrides)."""
    own = _PER_EXTENSION.get(name, {"clones": 2})
    clones = int(os.environ.get("FASTSCORE_CLONE_SET") or own["clones"])
    macros = [("FS_CLONE_SET", str(clones))]
    if name == "mlp" and _enabled("FASTSCORE_MLP_PROFILE"):
        macros.append(("FS_MLP_PROFILE", "1"))
    for key, value in own.get("macros", []):
        if name == "kde" and os.environ.get("FASTSCORE_KDE_SPEC"):
            score, density = os.environ["FASTSCORE_KDE_SPEC"].split(",")
            value = score if key == "FS_KDE_SPEC_SCORE" else density
        macros.append((key, value))
    return macros


def _file_flags(source):
    """The _PER_FILE flags of one source file (any spelling of its path)."""
    rel = os.path.relpath(os.path.abspath(source), HERE).replace(os.sep, "/")
    return _PER_FILE.get(rel, [])


def _cost(ext):
    """Source bytes of an extension, its kernel template included (compile-time proxy)."""
    stem = os.path.join(CSRC, ext.name.rsplit(".", 1)[1].lstrip("_"))
    files = list(ext.sources) + [stem + ".tmpl.c"]
    return sum(os.path.getsize(f) for f in files if os.path.exists(f))


def extensions():
    from Cython.Build import cythonize

    compile_args, link_args, directives = _flags()
    only = {n for n in os.environ.get("FASTSCORE_BUILD_ONLY", "").split(",") if n}
    exts = []
    for pyx in sorted(glob.glob(os.path.join("fastscore", "_ext", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        sources = [pyx, os.path.join(CSRC, "fs_common.c")]
        stem = os.path.join(CSRC, name.lstrip("_"))
        for kernel in [stem + ".c"] + sorted(glob.glob(stem + "_f[0-9][0-9].c")):
            if os.path.exists(kernel) and kernel not in sources:
                sources.append(kernel)
        macros = _settings(name)
        exts.append(Extension(
            f"fastscore._ext.{name}", sources,
            depends=sorted(glob.glob(os.path.join(CSRC, "*.h")) +
                           glob.glob(os.path.join(CSRC, "*.tmpl.c"))),
            include_dirs=[CSRC],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            define_macros=macros,
        ))
    exts.sort(key=_cost, reverse=True)          # the longest compile starts first
    return cythonize(exts, compiler_directives=directives, quiet=True,
                     nthreads=_jobs(None))


def _jobs(requested):
    if isinstance(requested, int) and requested > 0:
        return requested
    env = os.environ.get("FASTSCORE_BUILD_JOBS", "")
    if env.strip():
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


class ParallelBuildExt(build_ext):
    """build_ext compiling every source of every extension in parallel (bounded jobs)."""

    def finalize_options(self):
        super().finalize_options()
        self.parallel = _jobs(self.parallel)

    def build_extensions(self):
        gate = threading.Semaphore(self.parallel)
        compile_serial = self.compiler.compile

        def compile_parallel(sources, *args, **kwargs):
            def one(source):
                own = _file_flags(source)
                options = dict(kwargs)
                if own:
                    options["extra_postargs"] = list(options.get("extra_postargs") or []) + own
                with gate:
                    return compile_serial([source], *args, **options)

            with ThreadPoolExecutor(max(1, len(sources))) as pool:
                return [obj for objs in pool.map(one, sources) for obj in objs]

        self.compiler.compile = compile_parallel
        super().build_extensions()


setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuildExt})

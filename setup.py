"""Build the compiled kernels: one extension module per concept.

Each ``fastscore/_ext/<name>.pyx`` is compiled together with ``csrc/<name>.c`` (when it
exists) and ``csrc/fs_common.c``; adding a kernel concept needs no change here.
Flags: -O3, OpenMP when the compiler supports it, no -march=native (SIMD comes from
runtime dispatch, see csrc/fs_common.h). ``FASTSCORE_DEBUG_CYTHON=1`` turns Cython's
bounds and wraparound checks on; ``FASTSCORE_NO_OPENMP=1`` builds without OpenMP; ``FASTSCORE_BUILD_ONLY=patches,kde``
(development only) builds just the named modules; ``FASTSCORE_SANITIZE=1`` (development
and CI only, see .ci/sanitize.sh) builds with AddressSanitizer + UndefinedBehaviorSanitizer.
"""

import glob
import os
import subprocess
import sys
import tempfile

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"


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
    debug = os.environ.get("FASTSCORE_DEBUG_CYTHON", "") not in ("", "0")
    compile_args, link_args = [], []
    if sys.platform == "win32":
        compile_args += ["/O2"]
        if os.environ.get("FASTSCORE_NO_OPENMP", "") in ("", "0"):
            compile_args += ["/openmp"]
    else:
        compile_args += ["-O3", "-fno-math-errno", "-Wno-unused-function"]
        if os.environ.get("FASTSCORE_NO_OPENMP", "") in ("", "0") and _compiler_accepts(
                ["-fopenmp"]):
            compile_args += ["-fopenmp"]
            link_args += ["-fopenmp"]
        else:
            print("fastscore: building WITHOUT OpenMP (kernels run on one thread)")
        if os.environ.get("FASTSCORE_SANITIZE", "") not in ("", "0"):
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
        kernel = os.path.join(CSRC, name.lstrip("_") + ".c")
        if os.path.exists(kernel) and kernel not in sources:
            sources.append(kernel)
        exts.append(Extension(
            f"fastscore._ext.{name}", sources,
            depends=sorted(glob.glob(os.path.join(CSRC, "*.h")) +
                           glob.glob(os.path.join(CSRC, "*.tmpl.c"))),
            include_dirs=[CSRC],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    return cythonize(exts, compiler_directives=directives, quiet=True)


setup(ext_modules=extensions())

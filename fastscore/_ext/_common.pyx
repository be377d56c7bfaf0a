# Shared by the bindings: the status -> exception mapping (declared in _common.pxd,
# cimported by every binding), and the build and CPU facts of fastscore.show_config().

from ._csrc cimport (FS_E_ARG, FS_E_NOMEM, FS_OK, FS_SIMD_BASELINE, FS_SIMD_V3, FS_SIMD_V4,
                     fs_openmp_enabled, fs_simd_cpu_level, fs_simd_level)

# x86-64 level -> the name of its SIMD body (every binding's simd_clone(), _simd.pxi)
LEVEL_NAMES = {FS_SIMD_V4: "x86-64-v4", FS_SIMD_V3: "x86-64-v3", FS_SIMD_BASELINE: "baseline"}


cdef int check_status(int status, str kernel) except -1:
    """Raise the exception of a non-zero status of `kernel` (csrc/fs_common.h codes)."""
    if status == FS_OK:
        return 0
    if status == FS_E_NOMEM:
        raise MemoryError(f"{kernel}: could not allocate scratch memory")
    if status == FS_E_ARG:
        raise RuntimeError(f"{kernel}: inconsistent sizes reached the C kernel (a bug in "
                           "fastscore's validation; please report it)")
    raise RuntimeError(f"{kernel}: failed with status {status}")


def openmp_enabled():
    return fs_openmp_enabled() != 0


def simd_level():
    """The x86-64 level explicit dispatch uses: 4, 3 or 0 (FASTSCORE_SIMD caps it)."""
    return fs_simd_level()


def simd_cpu_level():
    """The CPU's x86-64 level: 4, 3 or 0 (0 also in a build without runtime dispatch)."""
    return fs_simd_cpu_level()

# Build and CPU facts for fastscore.show_config(); no arrays here.

cdef extern from "fs_common.h":
    int fs_openmp_enabled()
    const char *fs_simd_target()
    const char *fs_simd_clones()


def openmp_enabled():
    return fs_openmp_enabled() != 0


def simd_target():
    return fs_simd_target().decode()


def simd_clones():
    return fs_simd_clones().decode()

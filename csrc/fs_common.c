/* fastscore: build and CPU facts reported by fastscore.show_config(). */
#include "fs_common.h"

int fs_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* The clone the ifunc resolvers pick: the first of FS_CLONES_NAMES the CPU supports. */
const char *fs_simd_target(void)
{
#if FS_HAVE_CLONES
    __builtin_cpu_init();
#if FS_CLONE_SET != 1
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
#endif
#if FS_CLONE_SET != 3
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2 + FMA)";
#endif
    return "default (x86-64 baseline)";
#else
    return "compiler default (no runtime dispatch in this build)";
#endif
}

const char *fs_simd_clones(void)
{
    return FS_CLONES_NAMES;
}

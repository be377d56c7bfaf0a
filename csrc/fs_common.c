/* fastscore: build and CPU facts reported by fastscore.show_config(). */
#include "fs_common.h"

#include <stdlib.h>
#include <string.h>

int fs_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static int cpu_level(void)
{
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return FS_SIMD_V4;
    if (__builtin_cpu_supports("x86-64-v3")) return FS_SIMD_V3;
#endif
    return FS_SIMD_BASELINE;
}

static int env_cap(void)
{
    const char *v = getenv("FASTSCORE_SIMD");
    if (v == NULL) return FS_SIMD_V4;
    if (strcmp(v, "avx2") == 0) return FS_SIMD_V3;
    if (strcmp(v, "baseline") == 0) return FS_SIMD_BASELINE;
    return FS_SIMD_V4;
}

int fs_simd_level(void)
{
    /* computed once; a race only recomputes the same value */
    static int level = -1;
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        int cpu = cpu_level(), cap = env_cap();
        l = cpu < cap ? cpu : cap;
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
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

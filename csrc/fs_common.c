/* fastscore: build and CPU facts reported by fastscore.show_config(), and the SIMD level
 * of the runtime dispatch (fs_common.h). Compiled into every extension, with its
 * FS_CLONE_SET. */
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

int fs_simd_cpu_level(void)
{
#ifdef FS_GCC_X86_64
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return FS_SIMD_V4;
    if (__builtin_cpu_supports("x86-64-v3")) return FS_SIMD_V3;
#endif
    return FS_SIMD_BASELINE;
}

/* The cap FASTSCORE_SIMD sets (no cap when unset, empty or unknown: the Python package
 * rejects unknown values at import, fastscore/_config.py). */
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
        int cpu = fs_simd_cpu_level(), cap = env_cap();
        l = cpu < cap ? cpu : cap;
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
}

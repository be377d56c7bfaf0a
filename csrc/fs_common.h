/* fastscore C kernels: shared macros, status codes and portability glue.
 *
 * Kernels are plain C99: no Python.h, no I/O, no allocation of outputs, no randomness.
 * Each returns an int status: FS_OK or a negative FS_E_* code that the binding turns
 * into a Python exception naming the kernel.
 */
#ifndef FS_COMMON_H
#define FS_COMMON_H

#include <stddef.h>

/* Status codes (fastscore/_ext/_common.pyx maps them to exceptions). */
#define FS_OK            0
#define FS_E_NOMEM      -1   /* scratch allocation failed */
#define FS_E_ARG        -2   /* inconsistent sizes reached a kernel (a validation bug) */

/* OpenMP: kernels open `omp parallel num_threads(n_threads)` regions over outputs with a
 * static split (or tiles computed the same way by any thread), so each output is the same
 * arithmetic whatever the thread count. Inside a region, FS_THREAD_ID() is this thread's
 * index (its slice of per-thread scratch) and FS_TEAM_SIZE() the number of threads; both
 * are 0 and 1 in a build without OpenMP. */
#ifdef _OPENMP
#include <omp.h>
#define FS_THREAD_ID() omp_get_thread_num()
#define FS_TEAM_SIZE() omp_get_num_threads()
#else
#define FS_THREAD_ID() 0
#define FS_TEAM_SIZE() 1
#endif

/* Name stamping for float/double instantiation of one template body:
 *   #define REAL float / #define FS_SFX f32 / #include "x.tmpl.c"  ->  fs_name_f32 */
#define FS_CAT_(a, b) a##_##b
#define FS_CAT(a, b)  FS_CAT_(a, b)
#define FS_FN(name)   FS_CAT(name, FS_SFX)

#if defined(__GNUC__) || defined(__clang__)
#define FS_RESTRICT __restrict__
#define FS_INLINE static inline __attribute__((always_inline))
#else
#define FS_RESTRICT
#define FS_INLINE static inline
#endif

/* Runtime SIMD dispatch: GCC compiles the marked function once per target and an ifunc
 * resolver picks the best one the CPU supports when the library loads. Mark the inner,
 * vectorisable functions (not the ones holding an OpenMP region: GCC outlines the region
 * body into a function that would not inherit the clones).
 *
 * The targets are x86-64 micro-architecture levels: v4 (AVX-512 F/BW/CD/DQ/VL) and v3
 * (AVX2 + FMA + BMI2; a plain "avx2" target would have no FMA). setup.py picks the set
 * per extension with FS_CLONE_SET, keeping only the clones that measured >= 5% faster
 * (benchmarks/README.md, section build):
 *   0  no clones (x86-64 baseline)        1  v3 + baseline
 *   2  v4 + v3 + baseline                 3  v4 + baseline                          */
#ifndef FS_CLONE_SET
#define FS_CLONE_SET 2
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FS_NO_CLONES) && FS_CLONE_SET != 0
#define FS_HAVE_CLONES 1
#if FS_CLONE_SET == 1
#define FS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define FS_CLONES_NAMES "x86-64-v3, default"
#elif FS_CLONE_SET == 3
#define FS_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#define FS_CLONES_NAMES "x86-64-v4, default"
#else
#define FS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", \
                                               "default")))
#define FS_CLONES_NAMES "x86-64-v4, x86-64-v3, default"
#endif
#else
#define FS_HAVE_CLONES 0
#define FS_CLONES
#define FS_CLONES_NAMES "none"
#endif

int fs_openmp_enabled(void);

/* x86-64 levels for explicit dispatch: FS_SIMD_V4 (AVX-512 F/BW/CD/DQ/VL), FS_SIMD_V3
 * (AVX2 + FMA + BMI2), FS_SIMD_BASELINE (SSE2, and every non-x86-64 build). */
enum { FS_SIMD_BASELINE = 0, FS_SIMD_V3 = 3, FS_SIMD_V4 = 4 };
/* The level a kernel with explicit dispatch may use: the CPU's level, capped by the
 * environment variable FASTSCORE_SIMD ("avx512" | "avx2" | "baseline", read once per
 * process; anything else, or unset, is no cap). Thread-safe. */
int fs_simd_level(void);
const char *fs_simd_target(void);
const char *fs_simd_clones(void);

#endif /* FS_COMMON_H */

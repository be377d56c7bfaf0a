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

int fs_openmp_enabled(void);

/* x86-64 levels for explicit dispatch: FS_SIMD_V4 (AVX-512 F/BW/CD/DQ/VL), FS_SIMD_V3
 * (AVX2 + FMA + BMI2), FS_SIMD_BASELINE (SSE2, and every non-x86-64 build). */
enum { FS_SIMD_BASELINE = 0, FS_SIMD_V3 = 3, FS_SIMD_V4 = 4 };
/* The CPU's level, and the level a kernel may use: the CPU's, capped by the environment
 * variable FASTSCORE_SIMD ("avx512" | "avx2" | "baseline", read once per process; unset or
 * empty is no cap; `import fastscore` rejects any other value). Thread-safe. */
int fs_simd_cpu_level(void);
int fs_simd_level(void);

/* Runtime SIMD dispatch. A kernel's vectorisable inner functions (never one holding an
 * OpenMP region) live in a SIMD template, compiled once per body of the extension by
 *     #define FS_SIMD_TEMPLATE "x_simd.tmpl.c"
 *     #include "fs_simd_stamp.h"
 * and every call goes through FS_PICK(name)(...), the body of FS_FN(name) for the level
 * fs_simd_level() allows (per call: a call returning the cached level and two compares;
 * the kernels call per row, tile or thread range, never per element). The bodies are x86-64
 * levels: v4 (AVX-512) and v3 (AVX2 + FMA + BMI2; a plain "avx2" target would have no
 * FMA), always with the baseline. setup.py picks the set per extension with FS_CLONE_SET,
 * keeping only the bodies that measured >= 5% faster (benchmarks/README.md, section
 * build):
 *   0  baseline only        1  v3 + baseline
 *   2  v4 + v3 + baseline   3  v4 + baseline
 * A level with no body runs the next lower body (set 1 on an AVX-512 CPU runs v3). GCC on
 * x86-64 only; other compilers and CPUs, and FS_NO_CLONES, build the baseline body alone
 * (and fs_simd_cpu_level() says baseline). */
#ifndef FS_CLONE_SET
#define FS_CLONE_SET 2
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FS_GCC_X86_64 1
#endif
#if defined(FS_GCC_X86_64) && !defined(FS_NO_CLONES) && FS_CLONE_SET != 0
#define FS_BODY_V4 (FS_CLONE_SET != 1)
#define FS_BODY_V3 (FS_CLONE_SET == 1 || FS_CLONE_SET == 2)
#else
#define FS_BODY_V4 0
#define FS_BODY_V3 0
#endif

/* The level of the body this extension's dispatch runs now. */
static inline int fs_simd_body(void)
{
#if FS_BODY_V4 || FS_BODY_V3
    const int level = fs_simd_level();
    if (FS_BODY_V4 && level >= FS_SIMD_V4) return FS_SIMD_V4;
    if (FS_BODY_V3 && level >= FS_SIMD_V3) return FS_SIMD_V3;
#endif
    return FS_SIMD_BASELINE;
}

/* Names of the stamped bodies: FS_LFN(x) -> x_f32_v4 | x_f32_v3 | x_f32_base (inside a
 * SIMD template), and FS_PICK(x), the one to call. */
#define FS_LFN(name) FS_CAT(FS_FN(name), FS_SIMD_SFX)
#if FS_BODY_V4
#define FS_PICK_V4_(fn, lower) (fs_simd_body() == FS_SIMD_V4 ? FS_CAT(fn, v4) : lower)
#else
#define FS_PICK_V4_(fn, lower) lower
#endif
#if FS_BODY_V3
#define FS_PICK_V3_(fn, lower) (fs_simd_body() == FS_SIMD_V3 ? FS_CAT(fn, v3) : lower)
#else
#define FS_PICK_V3_(fn, lower) lower
#endif
#define FS_PICK_(fn) FS_PICK_V4_(fn, FS_PICK_V3_(fn, FS_CAT(fn, base)))
#define FS_PICK(name) FS_PICK_(FS_FN(name))

#endif /* FS_COMMON_H */

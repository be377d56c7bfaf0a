/* Shared prelude of the KDE kernel units kde_f32.c and kde_f64.c (one translation unit
 * per type, so the two compile in parallel); include once, first. */
#ifndef FS_KDE_UNIT_H
#define FS_KDE_UNIT_H
#if defined(__GNUC__) && !defined(__clang__)
/* Vector arguments of the always-inlined helpers never cross an ABI boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kde.h"

/* SIMD bodies of the kernel (kde.tmpl.c, kde_simd.tmpl.c), one per vector width, each
 * compiled for the target whose registers that width fills; fs_kde_score picks the widest
 * one the CPU runs. FS_CLONE_SET (fs_common.h) says which exist besides the baseline body:
 *   FS_KDE_BODY_V4      64-byte vectors, target x86-64-v4 (AVX-512)     sets 2, 3
 *   FS_KDE_BODY_V3      32-byte vectors, target x86-64-v3 (AVX2 + FMA)  sets 1, 2
 *   FS_KDE_VBYTES_BASE  vector bytes of the baseline body, compiled for the compiler's
 *                       default target (x86-64: SSE2, 16-byte registers) */
#if FS_HAVE_CLONES && FS_CLONE_SET != 1
#define FS_KDE_BODY_V4 1
#else
#define FS_KDE_BODY_V4 0
#endif
#if FS_HAVE_CLONES && (FS_CLONE_SET == 1 || FS_CLONE_SET == 2)
#define FS_KDE_BODY_V3 1
#else
#define FS_KDE_BODY_V3 0
#endif
#ifndef FS_KDE_VBYTES_BASE
#define FS_KDE_VBYTES_BASE 16
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
#include <xmmintrin.h>
/* Flush denormal results to zero and read denormal inputs as zero (MXCSR FTZ | DAZ) on the
 * calling thread; returns the previous control word for fs_kde_restore_fp. Weights far
 * below the running maximum are ~2^-126 and their products with coordinate differences
 * would otherwise be denormal, which costs a microcode assist (~100 cycles) per operation;
 * their contribution is below the rounding of the sums anyway. */
static unsigned int fs_kde_flush_denormals(void)
{
    const unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u);
    return old;
}
static void fs_kde_restore_fp(unsigned int old) { _mm_setcsr(old); }
#else
static unsigned int fs_kde_flush_denormals(void) { return 0; }
static void fs_kde_restore_fp(unsigned int old) { (void)old; }
#endif

#endif /* FS_KDE_UNIT_H */

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

#ifdef FS_GCC_X86_64
#include <immintrin.h>   /* lane-mask tests of the SIMD bodies (kde_any_below) */
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

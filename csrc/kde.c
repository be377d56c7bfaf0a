/* Instantiates the KDE kernels for float (f32) and double (f64); see kde.tmpl.c. */
#if defined(__GNUC__) && !defined(__clang__)
/* Vector arguments of the always-inlined helpers never cross an ABI boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kde.h"

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

/* Per-type constants of the template:
 *   FS_KDE_UINT     unsigned integer of the width of REAL (bit tricks of exp2)
 *   FS_KDE_SINT     signed integer of that width (lane masks of vector comparisons)
 *   FS_KDE_MANT     explicit mantissa bits;  FS_KDE_BIAS exponent bias
 *   FS_KDE_TMIN     lowest exp2 argument: 2^FS_KDE_TMIN is built with a zero exponent
 *                   field, i.e. it is exactly +0 (everything below is flushed to 0)
 *   FS_KDE_POLY(f, f2)  minimax polynomial of 2^f on [-1/2, 1/2] (Remez, relative error
 *                   7.5e-8 for float (degree 5), 2.1e-16 for double (degree 10))  */
#define REAL float
#define FS_SFX f32
#define FS_KDE_IS_FLOAT 1
#define FS_KDE_UINT uint32_t
#define FS_KDE_SINT int32_t
#define FS_KDE_MANT 23
#define FS_KDE_BIAS 127
#define FS_KDE_TMIN (-127.0f)
#define FS_KDE_POLY(f, f2) /* Estrin: shorter dependency chain than Horner */ \
    ((1.0000000716546416382f + (f) * 0.69314696706526492761f) + (f2) * ( \
     (0.24022119723969178047f + (f) * 0.055507132728753911780f) + (f2) * ( \
     0.0096755413310213911451f + (f) * 0.0013276472167819943329f)))
#include "kde.tmpl.c"
#undef REAL
#undef FS_SFX
#undef FS_KDE_IS_FLOAT
#undef FS_KDE_UINT
#undef FS_KDE_SINT
#undef FS_KDE_MANT
#undef FS_KDE_BIAS
#undef FS_KDE_TMIN
#undef FS_KDE_POLY

#define REAL double
#define FS_SFX f64
#define FS_KDE_IS_FLOAT 0
#define FS_KDE_UINT uint64_t
#define FS_KDE_SINT int64_t
#define FS_KDE_MANT 52
#define FS_KDE_BIAS 1023
#define FS_KDE_TMIN (-1023.0)
#define FS_KDE_POLY(f, f2) /* Estrin in f^2 */ \
    (((1.0000000000000000661 + (f) * 0.69314718055994977510) + (f2) * ( \
      0.24022650695908767770 + (f) * 0.055504108664458831363)) + ((f2) * (f2)) * ( \
     ((0.0096181291080345970060 + (f) * 0.0013333558228561765893) + (f2) * ( \
       0.00015403529961127075703 + (f) * 0.000015252658116409854484)) + ((f2) * (f2)) * ( \
      (1.3215662835959239446e-6 + (f) * 1.0208537929657404371e-7) + (f2) * \
       7.0372788467269008787e-9)))
#include "kde.tmpl.c"
#undef REAL
#undef FS_SFX
#undef FS_KDE_IS_FLOAT
#undef FS_KDE_UINT
#undef FS_KDE_SINT
#undef FS_KDE_MANT
#undef FS_KDE_BIAS
#undef FS_KDE_TMIN
#undef FS_KDE_POLY

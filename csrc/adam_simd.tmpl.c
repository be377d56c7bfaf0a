/* The optimiser's inner loops, one SIMD body (see adam.tmpl.c): adam.tmpl.c stamps this
 * file once per body of the extension through fs_simd_stamp.h, and calls them through
 * FS_PICK. Plain countable loops over restrict pointers, vectorised by the compiler for
 * FS_SIMD_TARGET; they never see an OpenMP region. */
#ifndef FS_SIMD_SFX
#error "stamp adam_simd.tmpl.c from adam.tmpl.c through fs_simd_stamp.h"
#endif

/* AdamW: decoupled weight decay (param *= decay_factor before the Adam update). */
FS_SIMD_TARGET
static void FS_LFN(adamw_range)(REAL *FS_RESTRICT p, const REAL *FS_RESTRICT g,
                                REAL *FS_RESTRICT m, REAL *FS_RESTRICT v,
                                ptrdiff_t n, REAL b1, REAL c1, REAL b2, REAL c2,
                                REAL step, REAL isb, REAL eps, REAL decay)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        const REAL gi = g[i];
        const REAL mi = b1 * m[i] + c1 * gi;
        const REAL vi = b2 * v[i] + c2 * (gi * gi);
        const REAL denom = FS_SQRT(vi) * isb + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = decay * p[i] - step * (mi / denom);
    }
}

/* Adam with coupled L2 decay (g += l2 * param before the moments). */
FS_SIMD_TARGET
static void FS_LFN(adam_l2_range)(REAL *FS_RESTRICT p, const REAL *FS_RESTRICT g,
                                  REAL *FS_RESTRICT m, REAL *FS_RESTRICT v,
                                  ptrdiff_t n, REAL b1, REAL c1, REAL b2, REAL c2,
                                  REAL step, REAL isb, REAL eps, REAL l2)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        const REAL pi = p[i];
        const REAL gi = g[i] + l2 * pi;
        const REAL mi = b1 * m[i] + c1 * gi;
        const REAL vi = b2 * v[i] + c2 * (gi * gi);
        const REAL denom = FS_SQRT(vi) * isb + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * (mi / denom);
    }
}

FS_SIMD_TARGET
static void FS_LFN(ema_range)(REAL *FS_RESTRICT avg, const REAL *FS_RESTRICT p,
                              ptrdiff_t n, REAL c)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        const REAL a = avg[i];
        avg[i] = a + c * (p[i] - a);
    }
}

/* sum of squares of one block (n <= FS_NORM_BLOCK) in double: 16 interleaved partial
 * sums (entry i goes to partial i mod 16, enough independent chains to hide the add
 * latency), combined by a fixed pairwise tree. */
FS_SIMD_TARGET
static double FS_LFN(block_sum_squares)(const REAL *FS_RESTRICT x, ptrdiff_t n)
{
    double s[16];
    for (int j = 0; j < 16; ++j) s[j] = 0.0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; ++j) {
            const double t = (double)x[i + j];
            s[j] += t * t;
        }
    for (int j = 0; i + j < n; ++j) {
        const double t = (double)x[i + j];
        s[j] += t * t;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; ++j) s[j] += s[j + w];
    return s[0];
}

FS_SIMD_TARGET
static void FS_LFN(scale_range)(REAL *FS_RESTRICT x, ptrdiff_t n, REAL s)
{
    for (ptrdiff_t i = 0; i < n; ++i) x[i] *= s;
}

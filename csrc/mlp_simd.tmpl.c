/* The MLP's elementwise functions, one SIMD body (see mlp.tmpl.c): mlp.tmpl.c stamps this
 * file once per body of the extension through fs_simd_stamp.h and calls them through
 * FS_PICK. In single precision tanh and exp are the vectorisable approximations of mlp.c,
 * in double precision libm's. */
#ifndef FS_SIMD_SFX
#error "stamp mlp_simd.tmpl.c from mlp.tmpl.c through fs_simd_stamp.h"
#endif

/* z[r, j] <- f(z[r, j] + b[j]) in place for a (rows, w) row-major block;
 * d[r, j] <- f'(z + b) when d != NULL (used for SiLU and GELU only). */
FS_SIMD_TARGET
static void FS_LFN(bias_activate)(REAL *FS_RESTRICT z, ptrdiff_t rows, ptrdiff_t w,
                                  const REAL *FS_RESTRICT b, int act, REAL slope,
                                  REAL *FS_RESTRICT d)
{
    switch (act) {
    case FS_ACT_IDENTITY:
        for (ptrdiff_t r = 0; r < rows; ++r) {
            REAL *FS_RESTRICT zr = z + r * w;
            for (ptrdiff_t j = 0; j < w; ++j) zr[j] += b[j];
        }
        break;
    case FS_ACT_RELU:
        for (ptrdiff_t r = 0; r < rows; ++r) {
            REAL *FS_RESTRICT zr = z + r * w;
            for (ptrdiff_t j = 0; j < w; ++j) {
                const REAL v = zr[j] + b[j];
                zr[j] = v > 0 ? v : (REAL)0;
            }
        }
        break;
    case FS_ACT_LEAKY_RELU:
        for (ptrdiff_t r = 0; r < rows; ++r) {
            REAL *FS_RESTRICT zr = z + r * w;
            for (ptrdiff_t j = 0; j < w; ++j) {
                const REAL v = zr[j] + b[j];
                zr[j] = v > 0 ? v : slope * v;
            }
        }
        break;
    case FS_ACT_TANH:
        for (ptrdiff_t r = 0; r < rows; ++r) {
            REAL *FS_RESTRICT zr = z + r * w;
            for (ptrdiff_t j = 0; j < w; ++j) zr[j] = FS_MLP_TANH(zr[j] + b[j]);
        }
        break;
    case FS_ACT_SILU:  /* v s(v), s = 1 / (1 + exp(-v)); f' = s (1 + v (1 - s)) */
        for (ptrdiff_t r = 0; r < rows; ++r) {
            REAL *FS_RESTRICT zr = z + r * w;
            if (d) {
                REAL *FS_RESTRICT dr = d + r * w;
                for (ptrdiff_t j = 0; j < w; ++j) {
                    const REAL v = zr[j] + b[j];
                    const REAL s = (REAL)1 / ((REAL)1 + FS_MLP_EXP(-v));
                    zr[j] = v * s;
                    dr[j] = s * ((REAL)1 + v * ((REAL)1 - s));
                }
            } else {
                for (ptrdiff_t j = 0; j < w; ++j) {
                    const REAL v = zr[j] + b[j];
                    zr[j] = v / ((REAL)1 + FS_MLP_EXP(-v));
                }
            }
        }
        break;
    case FS_ACT_GELU:  /* f' = 0.5 (1 + t) + 0.5 v (1 - t^2) c (1 + 3 k v^2) */
        for (ptrdiff_t r = 0; r < rows; ++r) {
            REAL *FS_RESTRICT zr = z + r * w;
            if (d) {
                REAL *FS_RESTRICT dr = d + r * w;
                for (ptrdiff_t j = 0; j < w; ++j) {
                    const REAL v = zr[j] + b[j], v2 = v * v;
                    const REAL t = FS_MLP_TANH(FS_GELU_C * (v + FS_GELU_K * v2 * v));
                    zr[j] = (REAL)0.5 * v * ((REAL)1 + t);
                    dr[j] = (REAL)0.5 * ((REAL)1 + t) +
                            (REAL)0.5 * v * ((REAL)1 - t * t) * FS_GELU_C *
                                ((REAL)1 + (REAL)3 * FS_GELU_K * v2);
                }
            } else {
                for (ptrdiff_t j = 0; j < w; ++j) {
                    const REAL v = zr[j] + b[j];
                    const REAL t = FS_MLP_TANH(FS_GELU_C * (v + FS_GELU_K * v * v * v));
                    zr[j] = (REAL)0.5 * v * ((REAL)1 + t);
                }
            }
        }
        break;
    default:
        break;
    }
}

/* One row block of scale_by_derivative: rows r0 .. r0 + R of g (R = 4 or 1) scaled by
 * EXPR(g, a, d) (the gradient times f', from the activation a or the stored derivative d)
 * and row_scale, and added to bsum in row order, so that bsum is read and written once
 * per R rows (the sums are the same, in the same order, as row by row). */
#define FS_SCALE_ROWS(R, EXPR, USE_D)                                                    \
    do {                                                                                 \
        REAL *FS_RESTRICT g_[R];                                                         \
        const REAL *FS_RESTRICT a_[R];                                                   \
        const REAL *FS_RESTRICT d_[R];                                                   \
        REAL s_[R];                                                                      \
        for (int q_ = 0; q_ < R; ++q_) {                                                 \
            g_[q_] = g + (r + q_) * w;                                                   \
            a_[q_] = a + (r + q_) * w;                                                   \
            d_[q_] = USE_D ? d + (r + q_) * w : NULL;                                    \
            s_[q_] = row_scale ? row_scale[r + q_] : (REAL)1;                            \
        }                                                                                \
        for (ptrdiff_t j = 0; j < w; ++j) {                                              \
            double sum_ = bsum[j];                                                       \
            for (int q_ = 0; q_ < R; ++q_) {                                             \
                const REAL gq_ = g_[q_][j], aq_ = a_[q_][j];                             \
                const REAL dq_ = USE_D ? d_[q_][j] : (REAL)0;                            \
                const REAL v_ = (EXPR) * s_[q_];                                         \
                (void)aq_;                                                               \
                (void)dq_;                                                               \
                g_[q_][j] = v_;                                                          \
                sum_ += (double)v_;                                                      \
            }                                                                            \
            bsum[j] = sum_;                                                              \
        }                                                                                \
    } while (0)

/* all rows: blocks of 4, then one by one */
#define FS_SCALE_ALL(EXPR, USE_D)                                                        \
    do {                                                                                 \
        ptrdiff_t r = 0;                                                                 \
        for (; r + 4 <= rows; r += 4) FS_SCALE_ROWS(4, EXPR, USE_D);                     \
        for (; r < rows; ++r) FS_SCALE_ROWS(1, EXPR, USE_D);                             \
    } while (0)

/* g[r, j] <- g[r, j] f'[r, j] * row_scale[r] (row_scale may be NULL) in place, and
 * bsum[j] += sum_r g[r, j] (double accumulation, rows in order). */
FS_SIMD_TARGET
static void FS_LFN(scale_by_derivative)(REAL *FS_RESTRICT g, ptrdiff_t rows,
                                        ptrdiff_t w, const REAL *FS_RESTRICT a,
                                        const REAL *FS_RESTRICT d, int act,
                                        REAL slope,
                                        const REAL *FS_RESTRICT row_scale,
                                        double *FS_RESTRICT bsum)
{
    switch (act) {
    case FS_ACT_IDENTITY:
        FS_SCALE_ALL(gq_, 0);
        break;
    case FS_ACT_RELU:
        FS_SCALE_ALL(aq_ > 0 ? gq_ : (REAL)0, 0);
        break;
    case FS_ACT_LEAKY_RELU:
        FS_SCALE_ALL(aq_ > 0 ? gq_ : slope * gq_, 0);
        break;
    case FS_ACT_TANH:
        FS_SCALE_ALL(gq_ * ((REAL)1 - aq_ * aq_), 0);
        break;
    default:  /* SiLU, GELU: stored derivative */
        FS_SCALE_ALL(gq_ * dq_, 1);
        break;
    }
}

#undef FS_SCALE_ALL
#undef FS_SCALE_ROWS

/* out[r, j] = f'(z[r, j]) for a (rows, w) block, from the activation's output a = f(z)
 * (identity 1, ReLU a > 0, leaky ReLU a > 0 ? 1 : slope, tanh 1 - a^2) or from the stored
 * derivative d (SiLU, GELU). */
FS_SIMD_TARGET
static void FS_LFN(derivative_block)(REAL *FS_RESTRICT out, ptrdiff_t rows,
                                     ptrdiff_t w, const REAL *FS_RESTRICT a,
                                     const REAL *FS_RESTRICT d, int act,
                                     REAL slope)
{
    const ptrdiff_t m = rows * w;
    if (FS_ACT_STORES_DERIVATIVE(act)) {
        for (ptrdiff_t i = 0; i < m; ++i) out[i] = d[i];
        return;
    }
    switch (act) {
    case FS_ACT_TANH:
        for (ptrdiff_t i = 0; i < m; ++i) out[i] = (REAL)1 - a[i] * a[i];
        break;
    case FS_ACT_RELU:
        for (ptrdiff_t i = 0; i < m; ++i) out[i] = a[i] > 0 ? (REAL)1 : (REAL)0;
        break;
    case FS_ACT_LEAKY_RELU:
        for (ptrdiff_t i = 0; i < m; ++i) out[i] = a[i] > 0 ? (REAL)1 : slope;
        break;
    default:
        for (ptrdiff_t i = 0; i < m; ++i) out[i] = (REAL)1;
        break;
    }
}

/* t[(r*p + i), j] *= dm[r, j] for i < p: tangents of row r share the row's f'. */
FS_SIMD_TARGET
static void FS_LFN(scale_tangents)(REAL *FS_RESTRICT t, const REAL *FS_RESTRICT dm,
                                   ptrdiff_t rows, ptrdiff_t p, ptrdiff_t w)
{
    for (ptrdiff_t r = 0; r < rows; ++r)
        for (ptrdiff_t i = 0; i < p; ++i) {
            REAL *FS_RESTRICT tr = t + (r * p + i) * w;
            const REAL *FS_RESTRICT dr = dm + r * w;
            for (ptrdiff_t j = 0; j < w; ++j) tr[j] *= dr[j];
        }
}

/* grad[lo:hi] += sum_s part[s][lo:hi], s = 0 .. n_parts-1 in order. */
FS_SIMD_TARGET
static void FS_LFN(add_partials)(REAL *FS_RESTRICT grad, const REAL *FS_RESTRICT part,
                                 ptrdiff_t stride, int n_parts, ptrdiff_t lo,
                                 ptrdiff_t hi)
{
    for (int s = 0; s < n_parts; ++s) {
        const REAL *FS_RESTRICT ps = part + (ptrdiff_t)s * stride;
        for (ptrdiff_t i = lo; i < hi; ++i) grad[i] += ps[i];
    }
}

/* Optimiser kernels, written once for REAL = float or double (see adam.c).
 *
 * Threads: the entries are cut into one contiguous range per thread (static split,
 * range starts aligned to 16 entries); every entry is computed by the same arithmetic,
 * so the elementwise kernels give identical bits for any thread count. The norm is a
 * long reduction: it is accumulated in double, in blocks of FS_NORM_BLOCK entries fixed
 * by n alone (16 interleaved partial sums inside a block, combined pairwise), and the
 * block sums are added serially in block order -- the same additions in the same order
 * whatever the number of threads.
 *
 * The inner loops (adam_simd.tmpl.c) are plain countable loops over restrict pointers,
 * compiled once per SIMD body (fs_simd_stamp.h) and vectorised by the compiler; they never
 * see the OpenMP region, which only hands out ranges and calls the body FS_PICK selects.
 */
#ifndef REAL
#error "stamp adam.tmpl.c through fs_stamp.h (adam.c)"
#endif

#if FS_REAL_IS_FLOAT
#define FS_SQRT sqrtf
#else
#define FS_SQRT sqrt
#endif

#define FS_SIMD_TEMPLATE "adam_simd.tmpl.c"
#include "fs_simd_stamp.h"

int FS_FN(fs_adam_step)(REAL *param, const REAL *grad, REAL *m, REAL *v, ptrdiff_t n,
                        const fs_adam_hyper *h, int n_threads)
{
    if (n < 0 || n_threads < 1 || !h) return FS_E_ARG;
    if (n == 0) return FS_OK;
    const REAL b1 = (REAL)h->beta1, c1 = (REAL)h->one_minus_beta1;
    const REAL b2 = (REAL)h->beta2, c2 = (REAL)h->one_minus_beta2;
    const REAL step = (REAL)h->step_size, isb = (REAL)h->inv_sqrt_bc2;
    const REAL eps = (REAL)h->eps;
    const REAL decay = (REAL)h->decay_factor, l2 = (REAL)h->l2;
    const int decoupled = h->decoupled;
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        ptrdiff_t lo, hi;
        fs_thread_range(n, &lo, &hi);
        if (hi > lo) {
            if (decoupled)
                FS_PICK(adamw_range)(param + lo, grad + lo, m + lo, v + lo, hi - lo, b1, c1,
                                     b2, c2, step, isb, eps, decay);
            else
                FS_PICK(adam_l2_range)(param + lo, grad + lo, m + lo, v + lo, hi - lo, b1,
                                       c1, b2, c2, step, isb, eps, l2);
        }
    }
    return FS_OK;
}

int FS_FN(fs_ema_update)(REAL *avg, const REAL *param, ptrdiff_t n, double decay,
                         int n_threads)
{
    if (n < 0 || n_threads < 1) return FS_E_ARG;
    if (n == 0) return FS_OK;
    const REAL c = (REAL)(1.0 - decay);
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        ptrdiff_t lo, hi;
        fs_thread_range(n, &lo, &hi);
        if (hi > lo) FS_PICK(ema_range)(avg + lo, param + lo, hi - lo, c);
    }
    return FS_OK;
}

int FS_FN(fs_sum_squares)(const REAL *x, ptrdiff_t n, double *out, int n_threads)
{
    if (n < 0 || n_threads < 1 || !out) return FS_E_ARG;
    *out = 0.0;
    if (n == 0) return FS_OK;
    const ptrdiff_t n_blocks = (n + FS_NORM_BLOCK - 1) / FS_NORM_BLOCK;
    int status = FS_OK;
    double *partial = malloc(sizeof(double) * (size_t)n_blocks);
    if (!partial) { status = FS_E_NOMEM; goto cleanup; }
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static)
#endif
    for (ptrdiff_t b = 0; b < n_blocks; ++b) {
        const ptrdiff_t lo = b * FS_NORM_BLOCK;
        const ptrdiff_t len = n - lo < FS_NORM_BLOCK ? n - lo : FS_NORM_BLOCK;
        partial[b] = FS_PICK(block_sum_squares)(x + lo, len);
    }
    double total = 0.0;
    for (ptrdiff_t b = 0; b < n_blocks; ++b) total += partial[b];
    *out = total;
cleanup:
    free(partial);
    return status;
}

int FS_FN(fs_scale)(REAL *x, ptrdiff_t n, double scale, int n_threads)
{
    if (n < 0 || n_threads < 1) return FS_E_ARG;
    if (n == 0) return FS_OK;
    const REAL s = (REAL)scale;
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        ptrdiff_t lo, hi;
        fs_thread_range(n, &lo, &hi);
        if (hi > lo) FS_PICK(scale_range)(x + lo, hi - lo, s);
    }
    return FS_OK;
}

#undef FS_SQRT

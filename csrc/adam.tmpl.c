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
 * The inner loops are plain countable loops over restrict pointers, compiled once per
 * SIMD target (FS_CLONES) and vectorised by the compiler; they never see the OpenMP
 * region, which only hands out ranges.
 */
#ifndef REAL
#error "stamp adam.tmpl.c through fs_stamp.h (adam.c)"
#endif

#if FS_REAL_IS_FLOAT
#define FS_SQRT sqrtf
#else
#define FS_SQRT sqrt
#endif

/* AdamW: decoupled weight decay (param *= decay_factor before the Adam update). */
FS_CLONES static void FS_FN(adamw_range)(REAL *FS_RESTRICT p, const REAL *FS_RESTRICT g,
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
FS_CLONES static void FS_FN(adam_l2_range)(REAL *FS_RESTRICT p, const REAL *FS_RESTRICT g,
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
                FS_FN(adamw_range)(param + lo, grad + lo, m + lo, v + lo, hi - lo, b1, c1,
                                   b2, c2, step, isb, eps, decay);
            else
                FS_FN(adam_l2_range)(param + lo, grad + lo, m + lo, v + lo, hi - lo, b1,
                                     c1, b2, c2, step, isb, eps, l2);
        }
    }
    return FS_OK;
}

FS_CLONES static void FS_FN(ema_range)(REAL *FS_RESTRICT avg, const REAL *FS_RESTRICT p,
                                       ptrdiff_t n, REAL c)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        const REAL a = avg[i];
        avg[i] = a + c * (p[i] - a);
    }
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
        if (hi > lo) FS_FN(ema_range)(avg + lo, param + lo, hi - lo, c);
    }
    return FS_OK;
}

/* sum of squares of one block (n <= FS_NORM_BLOCK) in double: 16 interleaved partial
 * sums (entry i goes to partial i mod 16, enough independent chains to hide the add
 * latency), combined by a fixed pairwise tree. */
FS_CLONES static double FS_FN(block_sum_squares)(const REAL *FS_RESTRICT x, ptrdiff_t n)
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
        partial[b] = FS_FN(block_sum_squares)(x + lo, len);
    }
    double total = 0.0;
    for (ptrdiff_t b = 0; b < n_blocks; ++b) total += partial[b];
    *out = total;
cleanup:
    free(partial);
    return status;
}

FS_CLONES static void FS_FN(scale_range)(REAL *FS_RESTRICT x, ptrdiff_t n, REAL s)
{
    for (ptrdiff_t i = 0; i < n; ++i) x[i] *= s;
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
        if (hi > lo) FS_FN(scale_range)(x + lo, hi - lo, s);
    }
    return FS_OK;
}

#undef FS_SQRT

/* MLP kernels, written once for REAL = float or double (see mlp.c, mlp.h).
 *
 * Per tile (<= `tile` rows, one thread): layer l computes z = a W_l by one BLAS gemm,
 * then ONE elementwise pass adds the bias, applies the activation and, for SiLU/GELU,
 * stores f'(z) (bias_activate). Backward walks the layers down: one elementwise pass
 * multiplies the incoming gradient by f' and accumulates the bias column sums
 * (scale_by_derivative), then two gemms give dW (accumulated over the slot's tiles) and
 * the gradient of the layer input.
 *
 * The elementwise functions (mlp_simd.tmpl.c) are compiled once per SIMD body and called
 * through FS_PICK (runtime dispatch, fs_common.h).
 */
#ifndef REAL
#error "stamp mlp.tmpl.c through fs_stamp.h (mlp.c)"
#endif

#if FS_REAL_IS_FLOAT
#define FS_MLP_GEMM sgemm
#define FS_MLP_TANH(x) fs_tanhf_approx(x)
#define FS_MLP_EXP(x)  fs_expf_approx(x)
#else
#define FS_MLP_GEMM dgemm
#define FS_MLP_TANH(x) tanh(x)
#define FS_MLP_EXP(x)  exp(x)
#endif

/* GELU, tanh approximation: 0.5 v (1 + tanh(c (v + k v^3))), c = sqrt(2/pi). */
#define FS_GELU_C ((REAL)0.7978845608028654)
#define FS_GELU_K ((REAL)0.044715)

/* C (col-major m x n, ldc) = alpha op(A) op(B) + beta C through the caller's BLAS. */
static void FS_FN(gemm)(const fs_mlp_net *net, char ta, char tb, ptrdiff_t m, ptrdiff_t n,
                        ptrdiff_t k, REAL alpha, const REAL *a, ptrdiff_t lda, const REAL *b,
                        ptrdiff_t ldb, REAL beta, REAL *c, ptrdiff_t ldc)
{
    int im = (int)m, in = (int)n, ik = (int)k, ilda = (int)lda, ildb = (int)ldb,
        ildc = (int)ldc;
    net->FS_MLP_GEMM(&ta, &tb, &im, &in, &ik, &alpha, (REAL *)a, &ilda, (REAL *)b, &ildb,
                     &beta, c, &ildc);
}

#define FS_SIMD_TEMPLATE "mlp_simd.tmpl.c"
#include "fs_simd_stamp.h"

/* Activations applied inside the packed micro-kernel's store (the others get an
 * activation-only pass with a zero bias after it). */
#define FS_ACT_FUSED(code)                                                            \
    ((code) == FS_ACT_IDENTITY || (code) == FS_ACT_RELU || (code) == FS_ACT_LEAKY_RELU || \
     (FS_REAL_IS_FLOAT && (code) == FS_ACT_TANH))

/* One tile through all layers: A[0] = x rows (rows, w_0); A[l] (rows, w_l) receives a_l;
 * D[l] (rows, w_l) receives f_{l-1}'(z_l) for SiLU/GELU layers when not NULL.
 * With a pack (packed != NULL, layout lay, abuf: per-thread scratch of the packed GEMM)
 * the products run on the packed micro-kernel, else through BLAS. */
static void FS_FN(tile_forward)(const fs_mlp_net *net, const REAL *params, ptrdiff_t rows,
                                REAL *const *A, REAL *const *D, double *prof,
                                const fs_mlp_pack_layout *lay, const REAL *packed,
                                REAL *abuf)
{
    const REAL slope = (REAL)net->negative_slope;
    const int L = net->n_layers;
    for (int l = 0; l < L; ++l) {
        const ptrdiff_t k = net->width[l], m = net->width[l + 1];
        const double t0 = prof ? fs_mlp_now() : 0.0;
        if (packed) {
            const int act = net->activation[l], fused = FS_ACT_FUSED(act);
            FS_FN(pgemm)(lay, rows, m, k, A[l], k, 0, packed + lay->fwd[l], A[l + 1], m, 0,
                         packed + lay->bias[l], fused ? act : FS_ACT_IDENTITY, slope, abuf);
            const double t1 = prof ? fs_mlp_now() : 0.0;
            if (!fused)
                FS_PICK(bias_activate)(A[l + 1], rows, m, packed + lay->zeros, act, slope,
                                       D ? D[l + 1] : NULL);
            if (prof) {
                prof[l] += t1 - t0;
                prof[L + l] += fs_mlp_now() - t1;
            }
            continue;
        }
        /* a_{l+1}^T (m x rows) = W^T (m x k) a_l^T (k x rows); W row-major (k, m) */
        FS_FN(gemm)(net, 'N', 'N', m, rows, k, (REAL)1, params + net->w_offset[l], m, A[l],
                    k, (REAL)0, A[l + 1], m);
        const double t1 = prof ? fs_mlp_now() : 0.0;
        FS_PICK(bias_activate)(A[l + 1], rows, m, params + net->b_offset[l],
                               net->activation[l], slope, D ? D[l + 1] : NULL);
        if (prof) {
            prof[l] += t1 - t0;
            prof[L + l] += fs_mlp_now() - t1;
        }
    }
}

/* This thread's row of the optional profile (see fs_mlp_net), or NULL. Without
 * FS_MLP_PROFILE it is a constant NULL: every `if (prof)` and `prof ? fs_mlp_now() : 0`
 * of the kernels folds away and no clock is read. */
static double *FS_FN(thread_profile)(const fs_mlp_net *net)
{
#if FS_MLP_PROFILE
    if (!net->profile) return NULL;
    return net->profile +
           (ptrdiff_t)FS_THREAD_ID() * FS_MLP_PROFILE_PHASES * net->n_layers;
#else
    (void)net;
    return NULL;
#endif
}

/* Per-thread scratch of the packed GEMM: the zero-padded rows of an edge block of A
 * (mr x K, K <= max(tile, max_width)) and, for backward, a tile of the output gradient
 * packed in panels (tile x max_width rounded up to whole panels). */
static REAL *FS_FN(pack_scratch)(const fs_mlp_net *net, const fs_mlp_pack_layout *lay,
                                 ptrdiff_t tile, int backward, REAL **gbuf)
{
    const ptrdiff_t kmax = tile > net->max_width ? tile : net->max_width;
    const ptrdiff_t na = (lay->mr * kmax + 15) / 16 * 16;
    const ptrdiff_t ng = backward ? tile * ((net->max_width + lay->nr - 1) / lay->nr *
                                            lay->nr) : 0;
    /* cache-line aligned, the packed tile of G (a B operand) included (na: whole 64-byte
     * lines) */
    void *buf = NULL;
    if (posix_memalign(&buf, 64, sizeof(REAL) * (size_t)(na + ng))) buf = NULL;
    if (gbuf) *gbuf = buf ? (REAL *)buf + na : NULL;
    return (REAL *)buf;
}

int FS_FN(fs_mlp_forward)(const fs_mlp_net *net, const REAL *params, const REAL *packed,
                          const REAL *x, ptrdiff_t n, REAL *out, REAL *acts, REAL *derivs,
                          REAL *scratch, ptrdiff_t tile, int n_threads)
{
    const int L = net->n_layers;
    if (n_threads < 1 || tile < 1 || n < 0) return FS_E_ARG;
    if (!acts && (!out || !scratch)) return FS_E_ARG;
    if (acts && net->deriv_total > 0 && !derivs) return FS_E_ARG;
    if (n == 0) return FS_OK;
    const ptrdiff_t n_tiles = (n + tile - 1) / tile;
    const ptrdiff_t wmax = net->max_width, w0 = net->width[0], wL = net->width[L];
    fs_mlp_pack_layout lay;
    fs_mlp_pack_layout_of(net, (int)sizeof(REAL), &lay);
    if (lay.total == 0) packed = NULL;
    int failed = 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads) reduction(| : failed)
#endif
    {
        REAL *A[FS_MLP_MAX_LAYERS + 1];
        REAL *D[FS_MLP_MAX_LAYERS + 1];
        REAL *buf = scratch ? scratch + (ptrdiff_t)FS_THREAD_ID() * 2 * tile * wmax
                            : NULL;
        REAL *abuf = packed ? FS_FN(pack_scratch)(net, &lay, tile, 0, NULL) : NULL;
        const REAL *pk = abuf ? packed : NULL;
        failed |= packed && !abuf;
        double *prof = FS_FN(thread_profile)(net);
        const double start = prof ? fs_mlp_now() : 0.0;
        /* tiles are independent and each is computed the same way by any thread, so a
         * dynamic schedule (load balance) keeps the results thread-count invariant */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (ptrdiff_t t = 0; t < n_tiles; ++t) {
            const ptrdiff_t r0 = t * tile;
            const ptrdiff_t rows = r0 + tile <= n ? tile : n - r0;
            if (acts) {
                /* stored layout: layer l's block is (n, w_l) at n * act_offset[l] */
                for (int l = 0; l <= L; ++l)
                    A[l] = acts + n * net->act_offset[l] + r0 * net->width[l];
                memcpy(A[0], x + r0 * w0, sizeof(REAL) * (size_t)(rows * w0));
                D[0] = NULL;
                for (int l = 0; l < L; ++l)
                    D[l + 1] = net->deriv_offset[l] < 0 ? NULL
                               : derivs + n * net->deriv_offset[l] + r0 * net->width[l + 1];
                FS_FN(tile_forward)(net, params, rows, A, D, prof, &lay, pk, abuf);
                if (out)
                    memcpy(out + r0 * wL, A[L], sizeof(REAL) * (size_t)(rows * wL));
            } else {
                A[0] = (REAL *)(x + r0 * w0);
                for (int l = 1; l < L; ++l) A[l] = buf + (l % 2) * tile * wmax;
                A[L] = out + r0 * wL;
                FS_FN(tile_forward)(net, params, rows, A, NULL, prof, &lay, pk, abuf);
            }
        }
        if (prof) prof[4 * L] += fs_mlp_now() - start;
        free(abuf);
    }
    /* a thread whose scratch allocation failed ran its tiles through BLAS; the call
     * still reports the failure */
    return failed ? FS_E_NOMEM : FS_OK;
}

/* Backward through one tile (see fs_mlp_backward): A, D as stored by the forward pass
 * (A[0] = x .. A[L] = y), g_out (rows, w_L); gp: this slot's gradient buffer; dW is
 * overwritten when `first` (beta = 0), else accumulated; bsum: the slot's bias sums. */
static void FS_FN(tile_backward)(const fs_mlp_net *net, const REAL *params, ptrdiff_t rows,
                                 const REAL *const *A, const REAL *const *D,
                                 const REAL *g_out, const REAL *row_scale, REAL *gp,
                                 int first, double *bsum, REAL *buf0, REAL *buf1,
                                 REAL *g_in, double *prof, const fs_mlp_pack_layout *lay,
                                 const REAL *packed, REAL *abuf, REAL *gbuf)
{
    const int L = net->n_layers;
    const REAL slope = (REAL)net->negative_slope;
    const REAL beta = first ? (REAL)0 : (REAL)1;
    ptrdiff_t boff = net->bias_total;
    REAL *g = buf0, *h = buf1;
    double t0 = prof ? fs_mlp_now() : 0.0, t1;
    memcpy(g, g_out, sizeof(REAL) * (size_t)(rows * net->width[L]));
    boff -= net->width[L];
    FS_PICK(scale_by_derivative)(g, rows, net->width[L], A[L], D[L], net->activation[L - 1],
                                 slope, row_scale, bsum + boff);
    if (prof) prof[3 * L + L - 1] += fs_mlp_now() - t0;
    for (int l = L - 1; l >= 0; --l) {
        const ptrdiff_t k = net->width[l], m = net->width[l + 1];
        t0 = prof ? fs_mlp_now() : 0.0;
        /* dW (k, m) row-major = col-major (m x k) += g^T (m x rows) a_l (rows x k) */
        if (packed) {  /* dW (k x m) [+]= a_l^T g, g packed in panels */
            FS_FN(pack_panels)(lay, gbuf, g, rows, m, m);
            FS_FN(pgemm)(lay, k, m, rows, A[l], k, 1, gbuf, gp + net->w_offset[l], m,
                         !first, NULL, FS_ACT_IDENTITY, (REAL)0, abuf);
        } else {
            FS_FN(gemm)(net, 'N', 'T', m, k, rows, (REAL)1, g, m, A[l], k, beta,
                        gp + net->w_offset[l], m);
        }
        if (l == 0 && !g_in) {
            if (prof) prof[2 * L + l] += fs_mlp_now() - t0;
            break;
        }
        /* dA (rows, k): dA^T (k x rows) = W (k x m, col-major view: op T) g^T */
        REAL *dst = l > 0 ? h : g_in;
        if (packed)
            FS_FN(pgemm)(lay, rows, k, m, g, m, 0, packed + lay->bwd[l], dst, k, 0, NULL,
                         FS_ACT_IDENTITY, (REAL)0, abuf);
        else
            FS_FN(gemm)(net, 'T', 'N', k, rows, m, (REAL)1, params + net->w_offset[l], m,
                        g, m, (REAL)0, dst, k);
        t1 = prof ? fs_mlp_now() : 0.0;
        if (prof) prof[2 * L + l] += t1 - t0;
        if (l > 0) {
            boff -= k;
            FS_PICK(scale_by_derivative)(dst, rows, k, A[l], D[l], net->activation[l - 1],
                                         slope, NULL, bsum + boff);
            /* the derivative pass of layer l's input belongs to layer l - 1 */
            if (prof) prof[3 * L + l - 1] += fs_mlp_now() - t1;
            h = g;
            g = dst;
        }
    }
}

int FS_FN(fs_mlp_backward)(const fs_mlp_net *net, const REAL *params, const REAL *packed,
                           const REAL *acts,
                           const REAL *derivs, ptrdiff_t n, const REAL *grad_out,
                           const REAL *row_scale, REAL *grad, REAL *partials, int n_slots,
                           int accumulate, REAL *input_grad, REAL *scratch,
                           double *dscratch, ptrdiff_t tile, int n_threads)
{
    const int L = net->n_layers;
    if (n_threads < 1 || tile < 1 || n < 1 || !scratch || !dscratch) return FS_E_ARG;
    const ptrdiff_t n_tiles = (n + tile - 1) / tile;
    if (n_slots < 1 || n_slots > n_tiles || (n_slots > 1 && !partials)) return FS_E_ARG;
    if (net->deriv_total > 0 && !derivs) return FS_E_ARG;
    const ptrdiff_t wmax = net->max_width, np = net->n_params, nb = net->bias_total;
    const ptrdiff_t w0 = net->width[0], wL = net->width[L];
    fs_mlp_pack_layout lay;
    fs_mlp_pack_layout_of(net, (int)sizeof(REAL), &lay);
    if (lay.total == 0) packed = NULL;
    int failed = 0;
    /* One thread with one tile per slot: the slots run in order on that thread, and slot
     * s > 0, a single tile, can add its products straight into grad (the micro-kernel's
     * beta = 1 store rounds acc + grad once, as adding the slot's partial sum, acc rounded
     * once, does), so the partials and their reduction pass are skipped with the same
     * bits. The packed path only (BLAS's beta = 1 need not round that way); the direct
     * choice is the same on every thread (one), as the reduction below needs. */
    const int direct_path = packed && n_threads == 1 && n_slots == n_tiles;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads) reduction(| : failed)
#endif
    {
        const REAL *A[FS_MLP_MAX_LAYERS + 1];
        const REAL *D[FS_MLP_MAX_LAYERS + 1];
        REAL *buf0 = scratch + (ptrdiff_t)FS_THREAD_ID() * 2 * tile * wmax;
        REAL *buf1 = buf0 + tile * wmax;
        REAL *gbuf = NULL;
        REAL *abuf = packed ? FS_FN(pack_scratch)(net, &lay, tile, 1, &gbuf) : NULL;
        const REAL *pk = abuf ? packed : NULL;
        failed |= packed && !abuf;
        const int direct = direct_path && pk;
        double *prof = FS_FN(thread_profile)(net);
        const double start = prof ? fs_mlp_now() : 0.0;
        /* a slot is summed by one thread in tile order: thread-count invariant */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int s = 0; s < n_slots; ++s) {
            /* direct: slot s > 0 adds into grad, not into its partial sum */
            REAL *gp = s == 0 || direct ? grad : partials + (ptrdiff_t)(s - 1) * np;
            const int add_to_existing = s == 0 ? accumulate : direct;
            double *bsum = dscratch + (ptrdiff_t)s * nb;
            for (ptrdiff_t j = 0; j < nb; ++j) bsum[j] = 0.0;
            const ptrdiff_t t0 = (ptrdiff_t)s * n_tiles / n_slots;
            const ptrdiff_t t1 = (ptrdiff_t)(s + 1) * n_tiles / n_slots;
            for (ptrdiff_t t = t0; t < t1; ++t) {
                const ptrdiff_t r0 = t * tile;
                const ptrdiff_t rows = r0 + tile <= n ? tile : n - r0;
                for (int l = 0; l <= L; ++l)
                    A[l] = acts + n * net->act_offset[l] + r0 * net->width[l];
                D[0] = NULL;
                for (int l = 0; l < L; ++l)
                    D[l + 1] = net->deriv_offset[l] < 0 ? NULL
                               : derivs + n * net->deriv_offset[l] + r0 * net->width[l + 1];
                FS_FN(tile_backward)(net, params, rows, A, D, grad_out + r0 * wL,
                                     row_scale ? row_scale + r0 : NULL, gp,
                                     t == t0 && !add_to_existing, bsum, buf0, buf1,
                                     input_grad ? input_grad + r0 * w0 : NULL, prof,
                                     &lay, pk, abuf, gbuf);
            }
            /* bias gradients of the slot: bsum (double) -> gp's bias entries */
            ptrdiff_t boff = 0;
            for (int l = 0; l < L; ++l) {
                REAL *gb = gp + net->b_offset[l];
                const ptrdiff_t m = net->width[l + 1];
                for (ptrdiff_t j = 0; j < m; ++j)
                    gb[j] = add_to_existing ? gb[j] + (REAL)bsum[boff + j]
                                            : (REAL)bsum[boff + j];
                boff += m;
            }
        }
        /* implicit barrier; then grad += partials slot by slot, split over parameters */
        if (n_slots > 1 && !direct) {
            const ptrdiff_t block = 4096;
            const ptrdiff_t n_blocks = (np + block - 1) / block;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (ptrdiff_t q = 0; q < n_blocks; ++q) {
                const ptrdiff_t lo = q * block, hi = lo + block < np ? lo + block : np;
                FS_PICK(add_partials)(grad, partials, np, n_slots - 1, lo, hi);
            }
        }
        if (prof) prof[4 * L] += fs_mlp_now() - start;
        free(abuf);
    }
    return failed ? FS_E_NOMEM : FS_OK;
}

int FS_FN(fs_mlp_jacobian_diagonal)(const fs_mlp_net *net, const REAL *params,
                                    const REAL *x, ptrdiff_t n, int n_dirs, REAL *out,
                                    REAL *diag, REAL *scratch, ptrdiff_t tile,
                                    int n_threads)
{
    const int L = net->n_layers;
    const ptrdiff_t p = n_dirs;
    if (n_threads < 1 || tile < 1 || n < 0 || !scratch) return FS_E_ARG;
    if (p < 1 || p > net->width[0] || p > net->width[L]) return FS_E_ARG;
    if (n == 0) return FS_OK;
    const ptrdiff_t n_tiles = (n + tile - 1) / tile;
    const ptrdiff_t wmax = net->max_width, w0 = net->width[0], wL = net->width[L];
    const ptrdiff_t per_thread = fs_mlp_jacobian_scratch(net, tile, n_dirs, 1);
    const REAL slope = (REAL)net->negative_slope;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        REAL *A[FS_MLP_MAX_LAYERS + 1];
        REAL *D[FS_MLP_MAX_LAYERS + 1];
        REAL *base = scratch + (ptrdiff_t)FS_THREAD_ID() * per_thread;
        REAL *acts = base;                                        /* tile * act total */
        REAL *derivs = acts + tile * net->act_offset[L + 1];      /* tile * deriv_total */
        REAL *dm = derivs + tile * net->deriv_total;              /* tile * wmax */
        REAL *t0buf = dm + tile * wmax;                           /* tile * p * wmax */
        REAL *t1buf = t0buf + tile * p * wmax;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (ptrdiff_t t = 0; t < n_tiles; ++t) {
            const ptrdiff_t r0 = t * tile;
            const ptrdiff_t rows = r0 + tile <= n ? tile : n - r0;
            A[0] = acts;
            memcpy(A[0], x + r0 * w0, sizeof(REAL) * (size_t)(rows * w0));
            D[0] = NULL;
            for (int l = 0; l < L; ++l) {
                A[l + 1] = acts + rows * net->act_offset[l + 1];
                D[l + 1] = net->deriv_offset[l] < 0 ? NULL
                                                    : derivs + rows * net->deriv_offset[l];
            }
            FS_FN(tile_forward)(net, params, rows, A, D, NULL, NULL, NULL, NULL);
            if (out) memcpy(out + r0 * wL, A[L], sizeof(REAL) * (size_t)(rows * wL));

            /* layer 0: tangent of direction i is row i of W_0, times f_0'(z_1) */
            ptrdiff_t w = net->width[1];
            FS_PICK(derivative_block)(dm, rows, w, A[1], D[1], net->activation[0], slope);
            const REAL *W0 = params + net->w_offset[0];
            for (ptrdiff_t r = 0; r < rows; ++r)
                for (ptrdiff_t i = 0; i < p; ++i) {
                    REAL *tr = t0buf + (r * p + i) * w;
                    for (ptrdiff_t j = 0; j < w; ++j) tr[j] = W0[i * w + j];
                }
            FS_PICK(scale_tangents)(t0buf, dm, rows, p, w);
            REAL *tc = t0buf, *tn = t1buf;
            for (int l = 1; l < L; ++l) {
                const ptrdiff_t k = net->width[l], m = net->width[l + 1];
                FS_FN(gemm)(net, 'N', 'N', m, rows * p, k, (REAL)1, params + net->w_offset[l],
                            m, tc, k, (REAL)0, tn, m);
                FS_PICK(derivative_block)(dm, rows, m, A[l + 1], D[l + 1], net->activation[l],
                                          slope);
                FS_PICK(scale_tangents)(tn, dm, rows, p, m);
                REAL *tmp = tc;
                tc = tn;
                tn = tmp;
            }
            for (ptrdiff_t r = 0; r < rows; ++r)
                for (ptrdiff_t i = 0; i < p; ++i)
                    diag[(r0 + r) * p + i] = tc[(r * p + i) * wL + i];
        }
    }
    return FS_OK;
}

int FS_FN(fs_mlp_activation)(int code, double negative_slope, const REAL *z, ptrdiff_t n,
                             REAL *a, REAL *d)
{
    if (code < 0 || code >= FS_ACT_COUNT || n < 0) return FS_E_ARG;
    const REAL zero = 0;
    const REAL slope = (REAL)negative_slope;
    for (ptrdiff_t i = 0; i < n; ++i) a[i] = z[i];
    /* one element per row: the bias is the single zero */
    FS_PICK(bias_activate)(a, n, 1, &zero, code, slope,
                           FS_ACT_STORES_DERIVATIVE(code) ? d : NULL);
    if (d && !FS_ACT_STORES_DERIVATIVE(code))
        FS_PICK(derivative_block)(d, n, 1, a, NULL, code, slope);
    return FS_OK;
}

#undef FS_ACT_FUSED
#undef FS_MLP_GEMM
#undef FS_MLP_TANH
#undef FS_MLP_EXP
#undef FS_GELU_C
#undef FS_GELU_K

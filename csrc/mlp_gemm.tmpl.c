/* Packed-weight GEMM of the MLP, written once for REAL = float or double (mlp_gemm.h):
 * the pack of a parameter vector and the dispatch to the micro-kernel of the level.
 * Stamped from mlp.c before mlp.tmpl.c, which calls FS_FN(pgemm). */
#ifndef REAL
#error "stamp mlp_gemm.tmpl.c through fs_stamp.h (mlp.c)"
#endif

#if FS_MLP_GEMM_X86
#define FS_GEMM_ISA v4
#define FS_GEMM_TARGET "arch=x86-64-v4"
#define FS_GEMM_VB 64
#define FS_GEMM_MR FS_MLP_GEMM_MR_V4
#define FS_GEMM_ME 4
#include "mlp_gemm_isa.tmpl.c"
#undef FS_GEMM_ISA
#undef FS_GEMM_TARGET
#undef FS_GEMM_VB
#undef FS_GEMM_MR
#undef FS_GEMM_ME
#define FS_GEMM_ISA v3
#define FS_GEMM_TARGET "arch=x86-64-v3"
#define FS_GEMM_VB 32
#define FS_GEMM_MR FS_MLP_GEMM_MR_V3
#define FS_GEMM_ME 2
#include "mlp_gemm_isa.tmpl.c"
#undef FS_GEMM_ISA
#undef FS_GEMM_TARGET
#undef FS_GEMM_VB
#undef FS_GEMM_MR
#undef FS_GEMM_ME
#endif

/* out (panels of rows x nr) <- the (rows, cols) block src (element (p, j) at
 * src[p * rs + j * cs]), zero past column cols. */
static void FS_FN(pack_panels)(REAL *FS_RESTRICT out, const REAL *FS_RESTRICT src,
                               ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t rs, ptrdiff_t cs,
                               ptrdiff_t nr)
{
    const ptrdiff_t n_panels = (cols + nr - 1) / nr;
    for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
        REAL *FS_RESTRICT o = out + jp * rows * nr;
        const ptrdiff_t j0 = jp * nr, w = cols - j0 < nr ? cols - j0 : nr;
        for (ptrdiff_t p = 0; p < rows; ++p) {
            const REAL *FS_RESTRICT s = src + p * rs + j0 * cs;
            ptrdiff_t j = 0;
            if (cs == 1)
                for (; j < w; ++j) o[p * nr + j] = s[j];
            else
                for (; j < w; ++j) o[p * nr + j] = s[j * cs];
            for (; j < nr; ++j) o[p * nr + j] = 0;
        }
    }
}

/* Part `part` of the pack: layer part / 3, piece part % 3 (W panels, bias, W^T panels). */
static void FS_FN(pack_part)(const fs_mlp_net *net, const fs_mlp_pack_layout *lay,
                             const REAL *params, REAL *packed, int part)
{
    const int l = part / 3;
    const ptrdiff_t k = net->width[l], m = net->width[l + 1];
    const REAL *W = params + net->w_offset[l];
    if (part % 3 == 0)
        FS_FN(pack_panels)(packed + lay->fwd[l], W, k, m, m, 1, lay->nr);
    else if (part % 3 == 1)
        FS_FN(pack_panels)(packed + lay->bias[l], params + net->b_offset[l], 1, m, 0, 1,
                           lay->nr);
    else
        FS_FN(pack_panels)(packed + lay->bwd[l], W, m, k, 1, m, lay->nr); /* W^T (m, k) */
}

int FS_FN(fs_mlp_pack)(const fs_mlp_net *net, const REAL *params, REAL *packed,
                       int n_threads)
{
    fs_mlp_pack_layout lay;
    if (n_threads < 1) return FS_E_ARG;
    fs_mlp_pack_layout_of(net, (int)sizeof(REAL), &lay);
    if (lay.total == 0) return FS_OK;
    const int n_parts = 3 * net->n_layers;
    /* Largest layers first so that dynamic scheduling balances the threads; each part
     * writes its own range of `packed` (the result does not depend on the schedule). */
    int order[3 * FS_MLP_MAX_LAYERS];
    for (int i = 0; i < n_parts; ++i) order[i] = i;
    for (int i = 1; i < n_parts; ++i) {                     /* insertion sort by size */
        const int v = order[i];
        const ptrdiff_t sv = net->width[v / 3] * net->width[v / 3 + 1];
        int j = i - 1;
        while (j >= 0 && net->width[order[j] / 3] * net->width[order[j] / 3 + 1] < sv) {
            order[j + 1] = order[j];
            --j;
        }
        order[j + 1] = v;
    }
    if (n_threads > n_parts) n_threads = n_parts;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (n_threads > 1)
    for (int i = 0; i < n_parts; ++i)
        FS_FN(pack_part)(net, &lay, params, packed, order[i]);
    for (ptrdiff_t j = 0; j < net->max_width; ++j) packed[lay.zeros + j] = 0;
    return FS_OK;
}

/* C (M x N, ldc) [+]= A B [+ bias, act] with B packed at lay's level (see the ISA file);
 * act is applied only for identity / ReLU / leaky ReLU and, in single precision, tanh
 * (the caller passes FS_ACT_IDENTITY for the others). abuf: lay->mr * K values. */
static void FS_FN(pgemm)(const fs_mlp_pack_layout *lay, ptrdiff_t M, ptrdiff_t N,
                         ptrdiff_t K, const REAL *a, ptrdiff_t lda, int a_trans,
                         const REAL *bp, REAL *c, ptrdiff_t ldc, int beta1,
                         const REAL *bias, int act, REAL slope, REAL *abuf)
{
#if FS_MLP_GEMM_X86
    if (lay->level == FS_SIMD_V4)
        FS_CAT(gemm_v4, FS_SFX)(M, N, K, a, lda, a_trans, bp, c, ldc, beta1, bias, act,
                                slope, abuf);
    else
        FS_CAT(gemm_v3, FS_SFX)(M, N, K, a, lda, a_trans, bp, c, ldc, beta1, bias, act,
                                slope, abuf);
#else
    (void)lay; (void)M; (void)N; (void)K; (void)a; (void)lda; (void)a_trans; (void)bp;
    (void)c; (void)ldc; (void)beta1; (void)bias; (void)act; (void)slope; (void)abuf;
#endif
}

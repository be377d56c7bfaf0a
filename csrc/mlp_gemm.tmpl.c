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

/* The level's vectorised pieces of the pack (mlp_gemm_isa.tmpl.c):
 *   pack_panels     out <- the (rows, cols) block src (row stride rs) in panels of NR;
 *   pack_equal      1 when panels hold the bytes pack_panels makes of src, else 0;
 *   pack_transpose  the W^T panels of a k x m layer from its W panels. */
#if FS_MLP_GEMM_X86
#define FS_PACK_CALL(lay, name, args)                                                    \
    ((lay)->level == FS_SIMD_V4 ? FS_CAT(name##_v4, FS_SFX) args                        \
                                : FS_CAT(name##_v3, FS_SFX) args)
#else
#define FS_PACK_CALL(lay, name, args) ((void)(lay), 0)
#endif

static void FS_FN(pack_panels)(const fs_mlp_pack_layout *lay, REAL *FS_RESTRICT out,
                               const REAL *FS_RESTRICT src, ptrdiff_t rows, ptrdiff_t cols,
                               ptrdiff_t rs)
{
    (void)FS_PACK_CALL(lay, pack, (out, src, rows, cols, rs));
    (void)out; (void)src; (void)rows; (void)cols; (void)rs;
}

/* Layer l of the pack: W panels and bias from params, then the W^T panels from the W
 * panels just written, so that a pack whose W panels and biases equal params
 * (fs_mlp_pack_matches) is the pack of params as a whole. */
static void FS_FN(pack_layer)(const fs_mlp_net *net, const fs_mlp_pack_layout *lay,
                              const REAL *params, REAL *packed, int l)
{
    const ptrdiff_t k = net->width[l], m = net->width[l + 1];
    FS_FN(pack_panels)(lay, packed + lay->fwd[l], params + net->w_offset[l], k, m, m);
    FS_FN(pack_panels)(lay, packed + lay->bias[l], params + net->b_offset[l], 1, m, 0);
    (void)FS_PACK_CALL(lay, pack_transpose, (packed + lay->bwd[l], packed + lay->fwd[l], k,
                                             m));
}

int FS_FN(fs_mlp_pack)(const fs_mlp_net *net, const REAL *params, REAL *packed,
                       int n_threads)
{
    fs_mlp_pack_layout lay;
    if (n_threads < 1) return FS_E_ARG;
    fs_mlp_pack_layout_of(net, (int)sizeof(REAL), &lay);
    if (lay.total == 0) return FS_OK;
    const int L = net->n_layers;
    /* Largest layers first so that dynamic scheduling balances the threads; each layer
     * writes its own ranges of `packed` (the result does not depend on the schedule). */
    int order[FS_MLP_MAX_LAYERS];
    for (int i = 0; i < L; ++i) order[i] = i;
    for (int i = 1; i < L; ++i) {                           /* insertion sort by size */
        const int v = order[i];
        const ptrdiff_t sv = net->width[v] * net->width[v + 1];
        int j = i - 1;
        while (j >= 0 && net->width[order[j]] * net->width[order[j] + 1] < sv) {
            order[j + 1] = order[j];
            --j;
        }
        order[j + 1] = v;
    }
    if (n_threads > L) n_threads = L;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) if (n_threads > 1)
    for (int i = 0; i < L; ++i)
        FS_FN(pack_layer)(net, &lay, params, packed, order[i]);
    for (ptrdiff_t j = 0; j < net->max_width; ++j) packed[lay.zeros + j] = 0;
    return FS_OK;
}

int FS_FN(fs_mlp_pack_matches)(const fs_mlp_net *net, const REAL *params,
                               const REAL *packed)
{
    fs_mlp_pack_layout lay;
    fs_mlp_pack_layout_of(net, (int)sizeof(REAL), &lay);
    if (lay.total == 0) return 0;
    /* in the order of params (W_0, b_0, W_1, ...): a changed vector is found early */
    for (int l = 0; l < net->n_layers; ++l) {
        const ptrdiff_t k = net->width[l], m = net->width[l + 1];
        if (!FS_PACK_CALL(&lay, pack_equal, (packed + lay.fwd[l], params + net->w_offset[l],
                                              k, m, m)) ||
            !FS_PACK_CALL(&lay, pack_equal, (packed + lay.bias[l],
                                              params + net->b_offset[l], 1, m, 0)))
            return 0;
    }
    return 1;
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

#undef FS_PACK_CALL

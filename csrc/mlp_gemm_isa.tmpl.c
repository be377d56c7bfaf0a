/* The register micro-kernel and its block driver for one instruction set, written with
 * GCC vector types; included by mlp_gemm.tmpl.c once per ISA with
 *   FS_GEMM_ISA     name suffix (v4, v3)
 *   FS_GEMM_TARGET  the target attribute string ("arch=x86-64-v4", ...)
 *   FS_GEMM_VB      vector bytes (64, 32)
 *   FS_GEMM_MR      rows of the register block
 * and REAL / FS_SFX of the stamped type. The block is MR rows x NR = 2 vectors of
 * columns: MR * 2 accumulators, 2 vector loads and MR broadcasts per step of k.
 *
 *   C (M x N, row stride ldc) [+]= A B (+ bias, then identity / ReLU / leaky ReLU)
 * with A(i, p) = a[i * lda + p] (a_trans = 0) or a[p * lda + i] (a_trans = 1), B packed in
 * panels of K x NR (zero past column N), bias zero-padded to whole panels.
 */
#define GN_(name, isa, sfx) name##_##isa##_##sfx
#define GN__(name, isa, sfx) GN_(name, isa, sfx)
#define GN(name) GN__(name, FS_GEMM_ISA, FS_SFX)
#define GATTR __attribute__((target(FS_GEMM_TARGET)))
#define GVL ((ptrdiff_t)(FS_GEMM_VB / sizeof(REAL)))
#define GNR (2 * GVL)
#define GMR FS_GEMM_MR

typedef REAL GN(vec) __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL))));
#if FS_REAL_IS_FLOAT
typedef int32_t GN(ivec) __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL))));
#else
typedef int64_t GN(ivec) __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL))));
#endif

/* one MR x NR block: c (row stride ldc) <- [c +] sum_p A(i, p) B(p, :) [+ bias, act] */
GATTR static inline __attribute__((always_inline)) void
GN(block_body)(ptrdiff_t K, const REAL *FS_RESTRICT a, ptrdiff_t lda, int a_trans,
               const REAL *FS_RESTRICT b, REAL *FS_RESTRICT c, ptrdiff_t ldc, int beta1,
               const REAL *FS_RESTRICT bias, int act, REAL slope)
{
    typedef GN(vec) vec;
    typedef GN(ivec) ivec;
    vec acc[GMR][2];
    for (int i = 0; i < GMR; ++i) acc[i][0] = acc[i][1] = (vec){0};
    if (a_trans) {
        for (ptrdiff_t p = 0; p < K; ++p) {
            const vec b0 = *(const vec *)(b + p * GNR), b1 = *(const vec *)(b + p * GNR + GVL);
            const REAL *ap = a + p * lda;
#pragma GCC unroll 16
            for (int i = 0; i < GMR; ++i) {
                const REAL ai = ap[i];
                acc[i][0] += ai * b0;
                acc[i][1] += ai * b1;
            }
        }
    } else {
        for (ptrdiff_t p = 0; p < K; ++p) {
            const vec b0 = *(const vec *)(b + p * GNR), b1 = *(const vec *)(b + p * GNR + GVL);
#pragma GCC unroll 16
            for (int i = 0; i < GMR; ++i) {
                const REAL ai = a[i * lda + p];
                acc[i][0] += ai * b0;
                acc[i][1] += ai * b1;
            }
        }
    }
    vec bv0 = (vec){0}, bv1 = (vec){0};
    if (bias) {
        bv0 = *(const vec *)bias;
        bv1 = *(const vec *)(bias + GVL);
    }
    const vec zero = (vec){0};
#pragma GCC unroll 16
    for (int i = 0; i < GMR; ++i) {
        vec *ci0 = (vec *)(c + i * ldc), *ci1 = (vec *)(c + i * ldc + GVL);
        vec v0 = acc[i][0], v1 = acc[i][1];
        if (beta1) {
            v0 += *ci0;
            v1 += *ci1;
        }
        v0 += bv0;
        v1 += bv1;
        if (act == FS_ACT_RELU || act == FS_ACT_LEAKY_RELU) {
            const REAL s = act == FS_ACT_RELU ? (REAL)0 : slope;
            const ivec m0 = v0 > zero, m1 = v1 > zero;
            const vec n0 = s * v0, n1 = s * v1;
            v0 = (vec)(((ivec)v0 & m0) | ((ivec)n0 & ~m0));
            v1 = (vec)(((ivec)v1 & m1) | ((ivec)n1 & ~m1));
        }
        *ci0 = v0;
        *ci1 = v1;
    }
}

GATTR static void GN(block_n)(ptrdiff_t K, const REAL *a, ptrdiff_t lda, const REAL *b,
                              REAL *c, ptrdiff_t ldc, int beta1, const REAL *bias, int act,
                              REAL slope)
{
    GN(block_body)(K, a, lda, 0, b, c, ldc, beta1, bias, act, slope);
}

GATTR static void GN(block_t)(ptrdiff_t K, const REAL *a, ptrdiff_t lda, const REAL *b,
                              REAL *c, ptrdiff_t ldc, int beta1, const REAL *bias, int act,
                              REAL slope)
{
    GN(block_body)(K, a, lda, 1, b, c, ldc, beta1, bias, act, slope);
}

/* C (M x N) [+]= A B over whole MR x NR blocks; edge blocks go through an MR x NR copy.
 * abuf: MR * K values of scratch (the zero-padded rows of an edge block of A). */
GATTR static void GN(gemm)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const REAL *a,
                           ptrdiff_t lda, int a_trans, const REAL *bp, REAL *c,
                           ptrdiff_t ldc, int beta1, const REAL *bias, int act, REAL slope,
                           REAL *abuf)
{
    const ptrdiff_t n_panels = (N + GNR - 1) / GNR;
    REAL ctmp[GMR * GNR];
    for (ptrdiff_t i0 = 0; i0 < M; i0 += GMR) {
        const ptrdiff_t mr = M - i0 < GMR ? M - i0 : GMR;
        const REAL *ab = a_trans ? a + i0 : a + i0 * lda;
        ptrdiff_t ld = lda;
        int tr = a_trans;
        if (mr < GMR) {  /* rows of the edge block, row-major and zero-padded */
            for (ptrdiff_t i = 0; i < GMR; ++i)
                for (ptrdiff_t p = 0; p < K; ++p)
                    abuf[i * K + p] = i >= mr ? (REAL)0
                                      : a_trans ? a[p * lda + i0 + i] : a[(i0 + i) * lda + p];
            ab = abuf;
            ld = K;
            tr = 0;
        }
        for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
            const ptrdiff_t j0 = jp * GNR, nr = N - j0 < GNR ? N - j0 : GNR;
            const REAL *bj = bp + jp * K * GNR;
            const REAL *biasj = bias ? bias + j0 : NULL;
            REAL *cb = c + i0 * ldc + j0;
            if (mr == GMR && nr == GNR) {
                if (tr)
                    GN(block_t)(K, ab, ld, bj, cb, ldc, beta1, biasj, act, slope);
                else
                    GN(block_n)(K, ab, ld, bj, cb, ldc, beta1, biasj, act, slope);
                continue;
            }
            for (ptrdiff_t i = 0; i < GMR; ++i)
                for (ptrdiff_t j = 0; j < GNR; ++j)
                    ctmp[i * GNR + j] = beta1 && i < mr && j < nr ? cb[i * ldc + j] : (REAL)0;
            if (tr)
                GN(block_t)(K, ab, ld, bj, ctmp, GNR, beta1, biasj, act, slope);
            else
                GN(block_n)(K, ab, ld, bj, ctmp, GNR, beta1, biasj, act, slope);
            for (ptrdiff_t i = 0; i < mr; ++i)
                for (ptrdiff_t j = 0; j < nr; ++j) cb[i * ldc + j] = ctmp[i * GNR + j];
        }
    }
}

#undef GN_
#undef GN__
#undef GN
#undef GATTR
#undef GVL
#undef GNR
#undef GMR

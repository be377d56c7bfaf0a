/* The register micro-kernel and its block driver for one instruction set, written with
 * GCC vector types; included by mlp_gemm.tmpl.c once per ISA with
 *   FS_GEMM_ISA     name suffix (v4, v3)
 *   FS_GEMM_TARGET  the target attribute string ("arch=x86-64-v4", ...)
 *   FS_GEMM_VB      vector bytes (64, 32)
 *   FS_GEMM_MR      rows of the register block
 *   FS_GEMM_ME      rows of the block for the last rows (< MR) of a product
 * and REAL / FS_SFX of the stamped type. The block is MR rows x NR = 2 vectors of
 * columns: MR * 2 accumulators, 2 vector loads and MR broadcasts per step of k.
 *
 *   C (M x N, row stride ldc) [+]= A B (+ bias, then identity / ReLU / leaky ReLU, and
 *   tanh in single precision)
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
#define GME FS_GEMM_ME

typedef REAL GN(vec) __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL))));
#if FS_REAL_IS_FLOAT
typedef int32_t GN(ivec) __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL))));
#else
typedef int64_t GN(ivec) __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL))));
#endif

#if FS_REAL_IS_FLOAT
/* fs_tanhf_approx (mlp.c) on a vector: the same clamp and 13/6 rational function. */
GATTR static inline __attribute__((always_inline)) GN(vec) GN(tanh)(GN(vec) x)
{
    typedef GN(vec) vec;
    typedef GN(ivec) ivec;
    const vec hi = (vec){0} + FS_TANHF_CLAMP, lo = -hi;
    ivec m = x > hi;
    x = (vec)(((ivec)x & ~m) | ((ivec)hi & m));
    m = x < lo;
    x = (vec)(((ivec)x & ~m) | ((ivec)lo & m));
    vec t;
    FS_TANHF_RATIONAL(vec, x, t);
    return t;
}
#endif

/* one MR x (nv vectors) block: c (row stride ldc) <- [c +] sum_p A(i, p) B(p, :)
 * [+ bias, act]; B rows are NR apart (nv = 1 reads the first vector of each: the narrow
 * last panel of a layer whose width leaves at most one vector there) */
GATTR static inline __attribute__((always_inline)) void
GN(block_body)(ptrdiff_t K, const REAL *FS_RESTRICT a, ptrdiff_t lda, int a_trans,
               const REAL *FS_RESTRICT b, REAL *FS_RESTRICT c, ptrdiff_t ldc, int beta1,
               const REAL *FS_RESTRICT bias, int act, REAL slope, const int nv,
               const int rows)
{
    typedef GN(vec) vec;
    typedef GN(ivec) ivec;
    vec acc[GMR][2];
    for (int i = 0; i < rows; ++i) acc[i][0] = acc[i][1] = (vec){0};
    if (a_trans) {
        for (ptrdiff_t p = 0; p < K; ++p) {
            const vec b0 = *(const vec *)(b + p * GNR);
            const vec b1 = nv > 1 ? *(const vec *)(b + p * GNR + GVL) : b0;
            const REAL *ap = a + p * lda;
#pragma GCC unroll 16
            for (int i = 0; i < rows; ++i) {
                const REAL ai = ap[i];
                acc[i][0] += ai * b0;
                if (nv > 1) acc[i][1] += ai * b1;
            }
        }
    } else {
        for (ptrdiff_t p = 0; p < K; ++p) {
            const vec b0 = *(const vec *)(b + p * GNR);
            const vec b1 = nv > 1 ? *(const vec *)(b + p * GNR + GVL) : b0;
#pragma GCC unroll 16
            for (int i = 0; i < rows; ++i) {
                const REAL ai = a[i * lda + p];
                acc[i][0] += ai * b0;
                if (nv > 1) acc[i][1] += ai * b1;
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
    for (int i = 0; i < rows; ++i) {
        vec *ci0 = (vec *)(c + i * ldc), *ci1 = (vec *)(c + i * ldc + GVL);
        vec v0 = acc[i][0], v1 = acc[i][1];
        if (beta1) {
            v0 += *ci0;
            if (nv > 1) v1 += *ci1;
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
#if FS_REAL_IS_FLOAT
        if (act == FS_ACT_TANH) {
            v0 = GN(tanh)(v0);
            v1 = GN(tanh)(v1);
        }
#endif
        *ci0 = v0;
        if (nv > 1) *ci1 = v1;
    }
}

/* The block kernels: A row-major or transposed, two vectors or one (a narrow edge panel),
 * MR rows or ME (the last rows of a tile: 256 = 21 * 12 + 4 rows with AVX-512). */
typedef void (*GN(block_fn))(ptrdiff_t K, const REAL *a, ptrdiff_t lda, const REAL *b,
                             REAL *c, ptrdiff_t ldc, int beta1, const REAL *bias, int act,
                             REAL slope);
#define FS_GEMM_BLOCK(name, trans, nv, rows)                                              \
    GATTR static void GN(name)(ptrdiff_t K, const REAL *a, ptrdiff_t lda, const REAL *b,  \
                               REAL *c, ptrdiff_t ldc, int beta1, const REAL *bias,       \
                               int act, REAL slope)                                       \
    {                                                                                     \
        GN(block_body)(K, a, lda, trans, b, c, ldc, beta1, bias, act, slope, nv, rows);   \
    }
FS_GEMM_BLOCK(block_n2, 0, 2, GMR)
FS_GEMM_BLOCK(block_t2, 1, 2, GMR)
FS_GEMM_BLOCK(block_n1, 0, 1, GMR)
FS_GEMM_BLOCK(block_t1, 1, 1, GMR)
FS_GEMM_BLOCK(block_n2e, 0, 2, GME)
FS_GEMM_BLOCK(block_t2e, 1, 2, GME)
FS_GEMM_BLOCK(block_n1e, 0, 1, GME)
FS_GEMM_BLOCK(block_t1e, 1, 1, GME)
#undef FS_GEMM_BLOCK

/* C (M x N) [+]= A B by MR x NR blocks, then ME-row blocks for the last rows; a block
 * with fewer rows or columns goes through a copy (ctmp), its rows of A through abuf
 * (MR * K values of scratch, zero-padded rows). */
GATTR static void GN(gemm)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const REAL *a,
                           ptrdiff_t lda, int a_trans, const REAL *bp, REAL *c,
                           ptrdiff_t ldc, int beta1, const REAL *bias, int act, REAL slope,
                           REAL *abuf)
{
    /* [edge rows][transposed A][one vector] */
    static const GN(block_fn) kernels[2][2][2] = {
        {{GN(block_n2), GN(block_n1)}, {GN(block_t2), GN(block_t1)}},
        {{GN(block_n2e), GN(block_n1e)}, {GN(block_t2e), GN(block_t1e)}}};
    const ptrdiff_t n_panels = (N + GNR - 1) / GNR;
    REAL ctmp[GMR * GNR];
    ptrdiff_t rows;
    for (ptrdiff_t i0 = 0; i0 < M; i0 += rows) {
        rows = M - i0 >= GMR ? GMR : GME;
        const ptrdiff_t mr = M - i0 < rows ? M - i0 : rows;
        const REAL *ab = a_trans ? a + i0 : a + i0 * lda;
        ptrdiff_t ld = lda;
        int tr = a_trans;
        if (mr < rows) {  /* rows of the last block, row-major and zero-padded */
            for (ptrdiff_t i = 0; i < rows; ++i)
                for (ptrdiff_t p = 0; p < K; ++p)
                    abuf[i * K + p] = i >= mr  ? (REAL)0
                                      : a_trans ? a[p * lda + i0 + i]
                                                : a[(i0 + i) * lda + p];
            ab = abuf;
            ld = K;
            tr = 0;
        }
        for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
            const ptrdiff_t j0 = jp * GNR, nr = N - j0 < GNR ? N - j0 : GNR;
            const REAL *bj = bp + jp * K * GNR;
            const REAL *biasj = bias ? bias + j0 : NULL;
            REAL *cb = c + i0 * ldc + j0;
            const GN(block_fn) kern = kernels[rows != GMR][tr][nr <= GVL];
            if (mr == rows && nr == GNR) {
                kern(K, ab, ld, bj, cb, ldc, beta1, biasj, act, slope);
                continue;
            }
            if (beta1)  /* (without beta1 the kernel reads nothing of ctmp) */
                for (ptrdiff_t i = 0; i < rows; ++i)
                    for (ptrdiff_t j = 0; j < GNR; ++j)
                        ctmp[i * GNR + j] = i < mr && j < nr ? cb[i * ldc + j] : (REAL)0;
            kern(K, ab, ld, bj, ctmp, GNR, beta1, biasj, act, slope);
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
#undef GME

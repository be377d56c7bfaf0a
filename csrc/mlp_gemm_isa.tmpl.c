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

/* the bytes of a vector of REAL, read as integers (the bitwise comparison of a pack) */
#if FS_REAL_IS_FLOAT
typedef int32_t GN(bits)
    __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL)), may_alias));
#else
typedef int64_t GN(bits)
    __attribute__((vector_size(FS_GEMM_VB), aligned(sizeof(REAL)), may_alias));
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

/* Lane q of the two-operand shuffle that swaps bit `b` of the row index with bit `b` of
 * the column index between rows i (bit b clear) and i | b of a GVL x GVL block: `hi`
 * selects the new row i | b. Indices >= GVL pick from the second operand (row i | b). */
#define GN_SWAP_LANE(q, b, hi)                                                \
    ((hi) ? (((q) & (b)) ? GVL + (q) : ((q) | (b)))                           \
          : (((q) & (b)) ? GVL + ((q) & ~(b)) : (q)))

/* Stage `b` of an in-register transpose of r[0 .. GVL): between rows i (bit b clear) and
 * i | b, swap bit b of the row index with bit b of the column index (constant shuffles). */
GATTR static inline __attribute__((always_inline)) void GN(transpose_stage)(GN(vec) *r,
                                                                            const int b)
{
    typedef GN(ivec) ivec;
    ivec lo, hi;
#pragma GCC unroll 16
    for (int q = 0; q < (int)GVL; ++q) {
        lo[q] = GN_SWAP_LANE(q, b, 0);
        hi[q] = GN_SWAP_LANE(q, b, 1);
    }
#pragma GCC unroll 16
    for (int i = 0; i < (int)GVL; ++i)
        if (!(i & b)) {
            const GN(vec) a = r[i], c = r[i | b];
            r[i] = __builtin_shuffle(a, c, lo);
            r[i | b] = __builtin_shuffle(a, c, hi);
        }
}

/* r[0 .. GVL) <- its transpose (r[i][q] -> r[q][i]): one stage per bit of the index. */
GATTR static inline __attribute__((always_inline)) void GN(transpose)(GN(vec) *r)
{
    if (GVL >= 16) GN(transpose_stage)(r, 8);
    if (GVL >= 8) GN(transpose_stage)(r, 4);
    GN(transpose_stage)(r, 2);
    GN(transpose_stage)(r, 1);
}

/* out (panels of rows x NR, zero past column cols) <- the (rows, cols) block of src with
 * element (p, j) at src[p * rs + j]: full panels two vectors per row, an edge panel value
 * by value (a copy: the same bytes as the definition in mlp_gemm.h). */
GATTR static void GN(pack)(REAL *FS_RESTRICT out, const REAL *FS_RESTRICT src,
                           ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t rs)
{
    typedef GN(vec) vec;
    const ptrdiff_t n_panels = (cols + GNR - 1) / GNR;
    for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
        REAL *FS_RESTRICT o = out + jp * rows * GNR;
        const REAL *FS_RESTRICT s = src + jp * GNR;
        const ptrdiff_t w = cols - jp * GNR < GNR ? cols - jp * GNR : GNR;
        if (w == GNR)
            for (ptrdiff_t p = 0; p < rows; ++p) {
                const vec v0 = *(const vec *)(s + p * rs);
                const vec v1 = *(const vec *)(s + p * rs + GVL);
                *(vec *)(o + p * GNR) = v0;
                *(vec *)(o + p * GNR + GVL) = v1;
            }
        else
            for (ptrdiff_t p = 0; p < rows; ++p)
                for (ptrdiff_t j = 0; j < GNR; ++j)
                    o[p * GNR + j] = j < w ? s[p * rs + j] : (REAL)0;
    }
}

/* 1 when the panels at `packed` hold the bytes GN(pack) makes of the (rows, cols) block
 * of src (row stride rs), else 0: a bitwise comparison (-0 differs from +0, a NaN equals
 * only the same NaN), early out at the first panel that differs. */
GATTR static int GN(pack_equal)(const REAL *packed, const REAL *src, ptrdiff_t rows,
                                ptrdiff_t cols, ptrdiff_t rs)
{
    typedef GN(bits) bits;
    const ptrdiff_t n_panels = (cols + GNR - 1) / GNR;
    for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
        const REAL *o = packed + jp * rows * GNR;
        const REAL *s = src + jp * GNR;
        const ptrdiff_t w = cols - jp * GNR < GNR ? cols - jp * GNR : GNR;
        if (w == GNR) {
            bits diff = (bits){0};
            for (ptrdiff_t p = 0; p < rows; ++p)
                diff |= (*(const bits *)(o + p * GNR) ^ *(const bits *)(s + p * rs)) |
                        (*(const bits *)(o + p * GNR + GVL) ^
                         *(const bits *)(s + p * rs + GVL));
            for (ptrdiff_t q = 0; q < GVL; ++q)
                if (diff[q]) return 0;
        } else {
            for (ptrdiff_t p = 0; p < rows; ++p)
                if (memcmp(o + p * GNR, s + p * rs, sizeof(REAL) * (size_t)w)) return 0;
        }
    }
    return 1;
}

/* bwd (W^T of a k x m layer in panels of m x NR, zero past column k) <- the transpose of
 * fwd (W in panels of k x NR, zero past column m): block by block of NR x NR values,
 * each contiguous on both sides (NR rows of an fwd panel -> NR rows of a bwd panel),
 * transposed in registers as four GVL x GVL quarters. */
GATTR static void GN(pack_transpose)(REAL *FS_RESTRICT bwd, const REAL *FS_RESTRICT fwd,
                                     ptrdiff_t k, ptrdiff_t m)
{
    typedef GN(vec) vec;
    const ptrdiff_t n_kp = (k + GNR - 1) / GNR, n_mp = (m + GNR - 1) / GNR;
    for (ptrdiff_t jp = 0; jp < n_kp; ++jp) {        /* bwd panel: rows jp * NR of W */
        const ptrdiff_t j0 = jp * GNR, wk = k - j0 < GNR ? k - j0 : GNR;
        for (ptrdiff_t pp = 0; pp < n_mp; ++pp) {    /* fwd panel: columns pp * NR of W */
            const REAL *FS_RESTRICT f = fwd + pp * k * GNR + j0 * GNR;
            REAL *FS_RESTRICT o = bwd + jp * m * GNR + pp * GNR * GNR;
            const ptrdiff_t wm = m - pp * GNR < GNR ? m - pp * GNR : GNR;
            if (wk == GNR && wm == GNR) {
                /* out row q: lo half = column q of fwd rows 0 .. GVL, hi half = rows
                 * GVL .. NR; columns q < GVL from the lo vectors, the rest from hi */
#pragma GCC unroll 2
                for (int h = 0; h < 2; ++h) {
                    vec r0[GVL], r1[GVL];
#pragma GCC unroll 16
                    for (ptrdiff_t j = 0; j < GVL; ++j) {
                        r0[j] = *(const vec *)(f + j * GNR + h * GVL);
                        r1[j] = *(const vec *)(f + (GVL + j) * GNR + h * GVL);
                    }
                    GN(transpose)(r0);
                    GN(transpose)(r1);
#pragma GCC unroll 16
                    for (ptrdiff_t q = 0; q < GVL; ++q) {
                        *(vec *)(o + (h * GVL + q) * GNR) = r0[q];
                        *(vec *)(o + (h * GVL + q) * GNR + GVL) = r1[q];
                    }
                }
            } else {   /* edge block: only W's rows j < k, columns p < m */
                for (ptrdiff_t q = 0; q < wm; ++q)
                    for (ptrdiff_t j = 0; j < GNR; ++j)
                        o[q * GNR + j] = j < wk ? f[j * GNR + q] : (REAL)0;
            }
        }
    }
}

#undef GN_SWAP_LANE
#undef GN_
#undef GN__
#undef GN
#undef GATTR
#undef GVL
#undef GNR
#undef GMR
#undef GME

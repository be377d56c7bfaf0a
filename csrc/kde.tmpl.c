/* Gaussian-KDE score and log-density, written once for REAL = float or double
 * (instantiated by kde_f32.c and kde_f64.c).
 *
 * Per query q (x_t the training points, sigma the bandwidth, m2 a reference distance):
 *   dm_t = |x_t - q|^2 - m2, from direct coordinate differences, m2 folded into the first
 *          partial sum (free, and as precise as |x_t - q|^2 itself). Not the expansion
 *          |x|^2 + |q|^2 - 2 q.x, which cancels: the float32 GEMM contenders of
 *          benchmarks/bench_kde.py, which use it, show ~1e-4 relative score error where
 *          this kernel shows ~4e-6 (d = 9, sigma = 0.1, standard-normal data).
 *   w_t  = 2^(-dm_t c1),  c1 = log2(e) / (2 sigma^2)
 *   S0  += w_t,  S_k += w_t (x_tk - q_k)       (w (x - q), not w x: no cancellation of
 *                                               |q| against the weighted mean)
 *   score_k = S_k / (sigma^2 S0),  log q = ln S0 - m2 / (2 sigma^2) - ln T' - d/2 ln(2 pi sigma^2)
 *
 * Online log-sum-exp: m2 is a running minimum of |x_t - q|^2 (the log-sum-exp maximum),
 * set on the first tile by a min-only pass. A tile is summed with the current m2 while the
 * SIMD lanes track the tile's minimum dm; if some point is nearer than m2 by more than
 * FS_KDE_MARGIN / c1 (weights would exceed 2^FS_KDE_MARGIN), the sums so far are rescaled
 * by 2^((m2_new - m2) c1), m2 moves to that point and the tile is summed again. This lazy
 * maximum costs no branch per vector and re-sums a tile only a few times per query
 * (whenever a point much nearer than all earlier ones shows up). The nearest point always
 * has weight ~1, so S0 >= ~1: a query 1e4 sigma away from all data gets a finite score
 * pointing at its nearest training point, not 0/0 or NaN.
 *
 * SIMD exp (kde_exp2): dm is clamped to dm <= dmax = -FS_KDE_TMIN / c1, then
 * t = -dm c1 in [FS_KDE_TMIN, FS_KDE_MARGIN]; n = round(t) by the 1.5 * 2^MANT
 * magic-number trick (which also leaves n + BIAS in the low bits, shifted into the
 * exponent field), f = t - n in [-1/2, 1/2], 2^f by a minimax polynomial (Estrin form).
 * At the clamp the exponent field is 0 and the weight is exactly +0: terms more than
 * 2^127 (float) / 2^1023 (double) below the running maximum contribute nothing (they are
 * below the rounding of the sums anyway) and never reach denormal arithmetic. Products of
 * small nonzero weights with coordinate differences could still be denormal: the kernel
 * runs with FTZ/DAZ set on its threads (x86; restored on exit), see kde_unit.h.
 *
 * Precision: the sums over T are accumulated in double even for float32 data. Inside a
 * tile each SIMD lane keeps its partial sums in REAL (at most FS_KDE_MAX_TILE_VECTORS = 128
 * terms per lane); they are widened to double at the end of every tile. Measured float32
 * maximum relative score error against a float64 evaluation of the same data: ~4e-6 at
 * d = 9, ~1e-7 at d = 1, 2 (bench_kde.py; bounds in tests/test_kde.py), dominated by the
 * float32 rounding of |x - q|^2 / (2 sigma^2), not by the sums.
 *
 * Tiling and threads: queries are split in blocks, blocks among threads (static
 * schedule); for a block, the training set is streamed tile by tile (a tile of
 * FS_KDE_TILE_BYTES = 32 KiB of coordinates stays in L1) and every query of the block
 * consumes the tile before the next is read. The arithmetic of one query depends only on
 * the tile size (a function of d and REAL), not on the block size or the thread count:
 * results are identical for any n_threads.
 *
 * Throughput: the inner step is latency-bound more than port-bound, so |x - q|^2 is summed
 * in two interleaved partial sums, the polynomial uses Estrin's scheme and two training
 * vectors are processed per step (distances of both before either exponential). Each of
 * these, measured on one core (Sapphire Rapids, d = 9, float32), gained 2-5 %; together
 * ~1.6 -> ~1.8 Gpair/s per core. Rejected after measuring: accumulating w x (centred data)
 * to free registers (slower and 2x less accurate), 16 or 64 KiB tiles, query blocks of 8.
 *
 * Vectors are GCC/clang vector extensions of 64 bytes (16 floats, 8 doubles): one zmm
 * register in the avx512f clone, two ymm in the avx2 clone, four xmm otherwise.
 */
#ifndef REAL
#error "stamp kde.tmpl.c through fs_stamp.h (kde_f32.c, kde_f64.c)"
#endif

#ifndef FS_KDE_COMMON_DEFINED
#define FS_KDE_COMMON_DEFINED
#define FS_KDE_VBYTES 64
#define FS_KDE_MARGIN 32.0                /* log2 of the largest weight kept in a tile */
/* compile-time tuning knobs (-D...), measured defaults */
#ifndef FS_KDE_TILE_BYTES
#define FS_KDE_TILE_BYTES 32768           /* d * Bt * sizeof(REAL) of one training tile */
#endif
#define FS_KDE_MIN_TILE_VECTORS 8
#ifndef FS_KDE_MAX_TILE_VECTORS
#define FS_KDE_MAX_TILE_VECTORS 128
#endif
#ifndef FS_KDE_QUERY_BLOCK
#define FS_KDE_QUERY_BLOCK 32
#endif
#define FS_KDE_LOG2E 1.4426950408889634074
#define FS_KDE_LOG_2PI 1.8378770664093454836
/* 8 doubles: per-lane running sums of one query (unaligned type: the state lives in
 * malloc'ed scratch). */
typedef double fs_kde_vdbl __attribute__((vector_size(64), aligned(8)));

/* Horizontal sum of 8 doubles, pairwise. */
FS_INLINE double fs_kde_hsum(const fs_kde_vdbl *p)
{
    const fs_kde_vdbl v = *p;
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}
#endif /* FS_KDE_COMMON_DEFINED */

/* Per-type constants:
 *   FS_KDE_UINT     unsigned integer of the width of REAL (bit tricks of exp2)
 *   FS_KDE_SINT     signed integer of that width (lane masks of vector comparisons)
 *   FS_KDE_MANT     explicit mantissa bits;  FS_KDE_BIAS exponent bias
 *   FS_KDE_TMIN     lowest exp2 argument: 2^FS_KDE_TMIN is built with a zero exponent
 *                   field, i.e. it is exactly +0 (everything below is flushed to 0)
 *   FS_KDE_POLY(f, f2)  minimax polynomial of 2^f on [-1/2, 1/2] (Remez, relative error
 *                   7.5e-8 for float (degree 5), 2.1e-16 for double (degree 10))  */
#if FS_REAL_IS_FLOAT
#define FS_KDE_UINT uint32_t
#define FS_KDE_SINT int32_t
#define FS_KDE_MANT 23
#define FS_KDE_BIAS 127
#define FS_KDE_TMIN (-127.0f)
#define FS_KDE_POLY(f, f2) /* Estrin: shorter dependency chain than Horner */ \
    ((1.0000000716546416382f + (f) * 0.69314696706526492761f) + (f2) * ( \
     (0.24022119723969178047f + (f) * 0.055507132728753911780f) + (f2) * ( \
     0.0096755413310213911451f + (f) * 0.0013276472167819943329f)))
#else
#define FS_KDE_UINT uint64_t
#define FS_KDE_SINT int64_t
#define FS_KDE_MANT 52
#define FS_KDE_BIAS 1023
#define FS_KDE_TMIN (-1023.0)
#define FS_KDE_POLY(f, f2) /* Estrin in f^2 */ \
    (((1.0000000000000000661 + (f) * 0.69314718055994977510) + (f2) * ( \
      0.24022650695908767770 + (f) * 0.055504108664458831363)) + ((f2) * (f2)) * ( \
     ((0.0096181291080345970060 + (f) * 0.0013333558228561765893) + (f2) * ( \
       0.00015403529961127075703 + (f) * 0.000015252658116409854484)) + ((f2) * (f2)) * ( \
      (1.3215662835959239446e-6 + (f) * 1.0208537929657404371e-7) + (f2) * \
       7.0372788467269008787e-9)))
#endif

#define NL ((ptrdiff_t)(FS_KDE_VBYTES / sizeof(REAL)))
#define VREAL FS_FN(fs_kde_vreal)
#define VREALU FS_FN(fs_kde_vrealu)
#define VUINT FS_FN(fs_kde_vuint)
#define VMASK FS_FN(fs_kde_vmask)

typedef REAL VREAL __attribute__((vector_size(FS_KDE_VBYTES)));
typedef REAL VREALU __attribute__((vector_size(FS_KDE_VBYTES), aligned(sizeof(REAL))));
typedef FS_KDE_UINT VUINT __attribute__((vector_size(FS_KDE_VBYTES)));
typedef FS_KDE_SINT VMASK __attribute__((vector_size(FS_KDE_VBYTES))); /* -1 / 0 lanes */
#define MASK_ELT(v) ((FS_KDE_SINT)(v))

/* Lane-wise m ? a : b and a broadcast scalar (macros: no vector passed by value). */
#define SELECT(m, a, b) ((VREAL)(((m) & (VMASK)(a)) | (~(m) & (VMASK)(b))))
#define SPLAT(v) ((VREAL){0} + (REAL)(v))

/* Lane-wise minimum written as a lane loop, which GCC turns into one vminps when both
 * operands are runtime values (the SELECT form, or a compile-time constant operand, costs
 * a compare and a blend). */
FS_INLINE VREAL FS_FN(kde_min)(const VREAL *a, const VREAL *b)
{
    VREAL r;
    for (ptrdiff_t l = 0; l < NL; ++l)
        r[l] = (*a)[l] < (*b)[l] ? (*a)[l] : (*b)[l];
    return r;
}

/* 2^(dm * nc1), nc1 = -c1, with dm clamped to dm <= dmax = -FS_KDE_TMIN / c1 so the
 * exponent t is >= FS_KDE_TMIN, where the result is exactly +0. Needs t < BIAS + 1; tiles
 * that are kept have t <= FS_KDE_MARGIN (see kde_query_tile). The product is folded into
 * the range reduction (fused multiply-adds where the target has them). */
FS_INLINE VREAL FS_FN(kde_exp2)(const VREAL *dm, const VREAL *nc1, const VREAL *dmax)
{
    const REAL magic = (REAL)(1.5 * (double)((FS_KDE_UINT)1 << FS_KDE_MANT)) + FS_KDE_BIAS;
    const VREAL dmc = FS_FN(kde_min)(dm, dmax);
    const VREAL r = dmc * *nc1 + magic;      /* low bits: round(t) + BIAS */
    const VREAL n = r - magic;               /* round(t) */
    const VREAL f = dmc * *nc1 - n;          /* [-1/2, 1/2] */
    const VUINT e = (VUINT)r << FS_KDE_MANT; /* 2^round(t) */
    const VREAL f2 = f * f;
    return FS_KDE_POLY(f, f2) * (VREAL)e;
}

FS_INLINE double FS_FN(kde_hmin)(const VREAL *vp)
{
    const VREAL v = *vp;
    REAL m = v[0];
    for (ptrdiff_t l = 1; l < NL; ++l)
        m = v[l] < m ? v[l] : m;
    return (double)m;
}

/* Lane sums of one tile, widened to 8 doubles. */
FS_INLINE fs_kde_vdbl FS_FN(kde_widen)(const VREAL *vp)
{
    const VREAL v = *vp;
#if FS_REAL_IS_FLOAT
    typedef float v8f __attribute__((vector_size(32)));
    v8f lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    return __builtin_convertvector(lo, fs_kde_vdbl) + __builtin_convertvector(hi, fs_kde_vdbl);
#else
    fs_kde_vdbl out;
    memcpy(&out, &v, sizeof out);
    return out;
#endif
}

/* One vector of NL training points x[k*ld + l] against query q (d coordinates), relative
 * to the reference m2: returns dm = |x - q|^2 - m2 (m2 folded into the first partial sum,
 * so the difference costs nothing and keeps the precision of |x - q|^2) and updates the
 * lane minimum vmin. masked: lanes outside `valid` get dm = +inf. */
FS_INLINE VREAL FS_FN(kde_dist)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d,
                                const REAL *q, const VREAL *m2, const int masked,
                                const VMASK *valid, VREAL *vmin)
{
    /* two interleaved partial sums: a shorter dependency chain */
    const VREAL df0 = *(const VREALU *)x - q[0];
    VREAL even = df0 * df0 - *m2, odd = SPLAT(0);
    for (ptrdiff_t k = 1; k < d; ++k) {
        const VREAL df = *(const VREALU *)(x + k * ld) - q[k];
        if (k % 2)
            odd = k == 1 ? df * df : odd + df * df;
        else
            even += df * df;
    }
    VREAL dm = d > 1 ? even + odd : even;
    if (masked)
        dm = SELECT(*valid, dm, SPLAT((REAL)INFINITY));
    *vmin = FS_FN(kde_min)(&dm, vmin);
    return dm;
}

/* Adds the weights w = 2^(-dm c1) of one vector into acc0 and, with with_score,
 * w (x - q) into acc[k]. nc1 = -c1, dmax: the exp2 clamp (see kde_exp2). */
FS_INLINE void FS_FN(kde_accumulate)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d,
                                     const REAL *q, const VREAL *dm, const VREAL *nc1,
                                     const VREAL *dmax, const int with_score,
                                     const int masked, const VMASK *valid, VREAL *acc0,
                                     VREAL *acc)
{
    VREAL w = FS_FN(kde_exp2)(dm, nc1, dmax);
    if (masked)
        w = SELECT(*valid, w, SPLAT(0));
    *acc0 += w;
    if (with_score)
        for (ptrdiff_t k = 0; k < d; ++k)
            acc[k] += w * (*(const VREALU *)(x + k * ld) - q[k]);
}

/* mode 0: minimum of dm only; mode 1: also the sums (see kde_accumulate). */
FS_INLINE void FS_FN(kde_step)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                               const VREAL *nc1, const VREAL *m2, const int mode,
                               const VREAL *dmax, const int with_score, const int masked,
                               const VMASK *valid, VREAL *vmin, VREAL *acc0, VREAL *acc)
{
    const VREAL dm = FS_FN(kde_dist)(x, ld, d, q, m2, masked, valid, vmin);
    if (mode == 1)
        FS_FN(kde_accumulate)(x, ld, d, q, &dm, nc1, dmax, with_score, masked, valid, acc0,
                              acc);
}

/* Two vectors with their independent distance computations ahead of the exponentials,
 * so the out-of-order window holds more independent work. */
FS_INLINE void FS_FN(kde_step2)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                                const VREAL *nc1, const VREAL *m2, const int mode,
                                const VREAL *dmax, const int with_score, VREAL *vmin,
                                VREAL *acc0, VREAL *acc)
{
    const VMASK all = {0};
    const VREAL dm0 = FS_FN(kde_dist)(x, ld, d, q, m2, 0, &all, vmin);
    const VREAL dm1 = FS_FN(kde_dist)(x + NL, ld, d, q, m2, 0, &all, vmin);
    if (mode == 1) {
        FS_FN(kde_accumulate)(x, ld, d, q, &dm0, nc1, dmax, with_score, 0, &all, acc0, acc);
        FS_FN(kde_accumulate)(x + NL, ld, d, q, &dm1, nc1, dmax, with_score, 0, &all, acc0,
                              acc);
    }
}

/* Vectors [0, nv) of a tile starting at x, with the n_special vectors sp[j] masked by
 * spm[j] (sp sorted ascending). */
FS_INLINE void FS_FN(kde_pass)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                               ptrdiff_t nv, const ptrdiff_t *sp, const VMASK *spm,
                               int n_special, const VREAL *nc1, const VREAL *m2,
                               const VREAL *dmax, const int mode,
                               const int with_score, VREAL *vmin, VREAL *acc0, VREAL *acc)
{
    const VMASK all = {0};
    ptrdiff_t v = 0;
    for (int j = 0; j <= n_special; ++j) {
        const ptrdiff_t stop = j < n_special ? sp[j] : nv;
        for (; v + 1 < stop; v += 2)
            FS_FN(kde_step2)(x + v * NL, ld, d, q, nc1, m2, mode, dmax, with_score, vmin, acc0,
                             acc);
        for (; v < stop; ++v)
            FS_FN(kde_step)(x + v * NL, ld, d, q, nc1, m2, mode, dmax, with_score, 0, &all,
                            vmin, acc0, acc);
        if (j < n_special) {
            FS_FN(kde_step)(x + v * NL, ld, d, q, nc1, m2, mode, dmax, with_score, 1, &spm[j],
                            vmin, acc0, acc);
            ++v;
        }
    }
}

/* Adds training points [t0, t1) (t0 a multiple of NL) to the running state of one query:
 * *m2p the reference minimum of d2 (+inf before the first point), st[0] the lane sums of
 * w, st[1 + k] those of w (x_k - q_k). `self` is the left-out point, or -1. acc: d
 * vectors of scratch. */
FS_INLINE void FS_FN(kde_query_tile)(const REAL *xt, ptrdiff_t ld, const ptrdiff_t d,
                                     ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t self,
                                     const REAL *q, REAL c1, REAL dmax, double c1d,
                                     double *m2p, fs_kde_vdbl *st, VREAL *acc,
                                     const int with_score)
{
    const ptrdiff_t n = t1 - t0, nv = (n + NL - 1) / NL;
    const REAL *x = xt + t0;
    const VREAL nc1 = SPLAT(-c1);
    const VREAL zero = SPLAT(0);
    const VREAL inf = SPLAT((REAL)INFINITY);
    const VREAL vdmax = SPLAT(dmax);
    VMASK lane;
    for (ptrdiff_t l = 0; l < NL; ++l)
        lane[l] = MASK_ELT(l);

    /* masked vectors: the partial last one and the one holding the left-out point */
    ptrdiff_t sp[2];
    VMASK spm[2];
    int n_special = 0;
    const ptrdiff_t v_tail = n % NL ? nv - 1 : -1;
    const ptrdiff_t v_self = (self >= t0 && self < t1) ? (self - t0) / NL : -1;
    if (v_self >= 0) {
        sp[n_special] = v_self;
        spm[n_special] = lane != MASK_ELT(self - t0 - v_self * NL);
        if (v_self == v_tail)
            spm[n_special] &= lane < MASK_ELT(n - v_tail * NL);
        ++n_special;
    }
    if (v_tail >= 0 && v_tail != v_self) {
        sp[n_special] = v_tail;
        spm[n_special] = lane < MASK_ELT(n - v_tail * NL);
        if (n_special == 1 && v_tail < sp[0]) {
            sp[1] = sp[0];
            spm[1] = spm[0];
            sp[0] = v_tail;
            spm[0] = lane < MASK_ELT(n - v_tail * NL);
        }
        ++n_special;
    }

    VREAL vmin, acc0;
    if (*m2p == (double)INFINITY) {       /* first points of this query: find a reference */
        vmin = inf;
        FS_FN(kde_pass)(x, ld, d, q, nv, sp, spm, n_special, &nc1, &zero, &vdmax, 0, 0,
                        &vmin, &acc0, acc);
        *m2p = FS_FN(kde_hmin)(&vmin);
        if (*m2p == (double)INFINITY)
            return;                       /* every point of the tile was left out */
    }
    for (;;) {
        const VREAL vm2 = SPLAT((REAL)*m2p);
        vmin = inf;
        acc0 = zero;
        if (with_score)
            for (ptrdiff_t k = 0; k < d; ++k)
                acc[k] = zero;
        FS_FN(kde_pass)(x, ld, d, q, nv, sp, spm, n_special, &nc1, &vm2, &vdmax, 1,
                        with_score, &vmin, &acc0, acc);
        const double tile_min = FS_FN(kde_hmin)(&vmin);     /* min |x - q|^2 - m2 */
        if (-tile_min * c1d > FS_KDE_MARGIN) {
            /* a point much nearer than the reference: rescale and sum the tile again */
            const double m2_new = (double)(REAL)(*m2p + tile_min);
            const fs_kde_vdbl scale = (fs_kde_vdbl){0} + exp2((m2_new - *m2p) * c1d);
            for (ptrdiff_t k = 0; k <= (with_score ? d : 0); ++k)
                st[k] *= scale;
            *m2p = m2_new;
            continue;
        }
        st[0] += FS_FN(kde_widen)(&acc0);
        if (with_score)
            for (ptrdiff_t k = 0; k < d; ++k)
                st[1 + k] += FS_FN(kde_widen)(&acc[k]);
        return;
    }
}

/* Queries [i0, i1) against training points [t0, t1); state of query i at
 * m2[i - i0], st + (i - i0) * (d + 1). */
FS_INLINE void FS_FN(kde_block_tile_d)(const REAL *xt, ptrdiff_t ld, const ptrdiff_t d,
                                       ptrdiff_t t0, ptrdiff_t t1, const REAL *queries,
                                       ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t exclude_start,
                                       REAL c1, REAL dmax, double c1d, double *m2,
                                       fs_kde_vdbl *st, VREAL *acc, const int with_score)
{
    for (ptrdiff_t i = i0; i < i1; ++i)
        FS_FN(kde_query_tile)(xt, ld, d, t0, t1, exclude_start >= 0 ? exclude_start + i : -1,
                              queries + i * d, c1, dmax, c1d, m2 + (i - i0),
                              st + (i - i0) * (d + 1), acc, with_score);
}

/* Dispatch on d so the coordinate loops of common patch sizes unroll and the
 * accumulators stay in registers; compiled once per SIMD target (FS_CLONES). Which
 * (dimension, mode) pairs get their own body is set by the bit masks FS_KDE_SPEC_SCORE
 * (score and log-density) and FS_KDE_SPEC_DENSITY (log-density only), bit D for d = D:
 * setup.py keeps the ones measured >= 5% faster than the generic body (each costs compile
 * time; benchmarks/README.md, section build). */
#ifndef FS_KDE_SPEC_SCORE
#define FS_KDE_SPEC_SCORE 0x31E         /* d = 1, 2, 3, 4, 8, 9 */
#endif
#ifndef FS_KDE_SPEC_DENSITY
#define FS_KDE_SPEC_DENSITY 0x31E
#endif
FS_CLONES static void FS_FN(kde_block_tile)(const REAL *xt, ptrdiff_t ld, ptrdiff_t d,
                                            ptrdiff_t t0, ptrdiff_t t1, const REAL *queries,
                                            ptrdiff_t i0, ptrdiff_t i1,
                                            ptrdiff_t exclude_start, REAL c1, REAL dmax,
                                            double c1d, double *m2, fs_kde_vdbl *st,
                                            VREAL *scratch, int with_score)
{
#define FS_KDE_CASE(D)                                                                  \
    case D:                                                                             \
        if (((FS_KDE_SPEC_SCORE >> D) & 1) && with_score) {                             \
            VREAL acc[D];                                                               \
            FS_FN(kde_block_tile_d)(xt, ld, D, t0, t1, queries, i0, i1, exclude_start,  \
                                    c1, dmax, c1d, m2, st, acc, 1);                     \
            return;                                                                     \
        }                                                                               \
        if (((FS_KDE_SPEC_DENSITY >> D) & 1) && !with_score) {                          \
            VREAL acc[D];                                                               \
            FS_FN(kde_block_tile_d)(xt, ld, D, t0, t1, queries, i0, i1, exclude_start,  \
                                    c1, dmax, c1d, m2, st, acc, 0);                     \
            return;                                                                     \
        }                                                                               \
        break;
    switch (d) {
    FS_KDE_CASE(1)
    FS_KDE_CASE(2)
    FS_KDE_CASE(3)
    FS_KDE_CASE(4)
    FS_KDE_CASE(8)
    FS_KDE_CASE(9)
    default:
        break;
    }
#undef FS_KDE_CASE
    FS_FN(kde_block_tile_d)(xt, ld, d, t0, t1, queries, i0, i1, exclude_start, c1, dmax,
                            c1d, m2, st, scratch, with_score);
}

ptrdiff_t FS_FN(fs_kde_leading_dim)(ptrdiff_t n_points)
{
    return (n_points + NL - 1) / NL * NL;
}

int FS_FN(fs_kde_pack)(const REAL *X, ptrdiff_t n_points, ptrdiff_t dim, REAL *out,
                       ptrdiff_t ld)
{
    if (n_points < 0 || dim < 1 || ld < n_points) return FS_E_ARG;
    for (ptrdiff_t k = 0; k < dim; ++k) {
        REAL *o = out + k * ld;
        for (ptrdiff_t t = 0; t < n_points; ++t)
            o[t] = X[t * dim + k];
        for (ptrdiff_t t = n_points; t < ld; ++t)
            o[t] = 0;
    }
    return FS_OK;
}

int FS_FN(fs_kde_score)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, ptrdiff_t dim,
                        const REAL *queries, ptrdiff_t n_queries, double sigma,
                        ptrdiff_t exclude_start, REAL *score, REAL *log_density,
                        int n_threads)
{
    if (n_threads < 1 || n_points < 1 || dim < 1 || ld < n_points || n_queries < 0
        || !(sigma > 0) || (exclude_start >= 0 && n_points < 2))
        return FS_E_ARG;
    if (n_queries == 0 || (!score && !log_density))
        return FS_OK;

    const double sigma2 = sigma * sigma;
    const double c1d = FS_KDE_LOG2E / (2.0 * sigma2);
    const REAL c1 = (REAL)c1d;
    const REAL dmax = (REAL)(-(double)FS_KDE_TMIN / c1d);   /* exp2 clamp, see kde_exp2 */
    const int with_score = score != NULL;

    /* training tile: FS_KDE_TILE_BYTES of coordinates, in whole vectors */
    ptrdiff_t tile_vectors = FS_KDE_TILE_BYTES / (dim * FS_KDE_VBYTES);
    if (tile_vectors < FS_KDE_MIN_TILE_VECTORS) tile_vectors = FS_KDE_MIN_TILE_VECTORS;
    if (tile_vectors > FS_KDE_MAX_TILE_VECTORS) tile_vectors = FS_KDE_MAX_TILE_VECTORS;
    const ptrdiff_t tile = tile_vectors * NL;

    /* query blocks: small enough that every thread gets several */
    ptrdiff_t block = FS_KDE_QUERY_BLOCK;
    if (n_queries < 4 * n_threads * block)
        block = (n_queries + 4 * n_threads - 1) / (4 * n_threads);
    if (block < 1) block = 1;
    const ptrdiff_t n_blocks = (n_queries + block - 1) / block;

    /* per-thread scratch: lane sums (block x (d + 1) x 8 doubles), m2 (block doubles),
     * accumulators for the generic-d path (d vectors); 64-byte aligned pieces */
    const size_t st_bytes = sizeof(fs_kde_vdbl) * (size_t)(block * (dim + 1));
    const size_t m2_bytes = (sizeof(double) * (size_t)block + 63) / 64 * 64;
    const size_t acc_bytes = sizeof(VREAL) * (size_t)dim;
    const size_t per_thread = st_bytes + m2_bytes + acc_bytes;
    int status = FS_OK;
    char *raw = malloc(per_thread * (size_t)n_threads + 64);
    if (!raw) { status = FS_E_NOMEM; goto cleanup; }
    char *base = raw + ((64 - (size_t)((uintptr_t)raw % 64)) % 64);

    const double log_norm = 0.5 * (double)dim * (FS_KDE_LOG_2PI + log(sigma2));
    const double half_inv_sigma2 = 0.5 / sigma2;

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        const unsigned int fp_state = fs_kde_flush_denormals();
        char *mine = base + per_thread * (size_t)FS_THREAD_ID();
        fs_kde_vdbl *st = (fs_kde_vdbl *)mine;
        double *m2 = (double *)(mine + st_bytes);
        VREAL *acc = (VREAL *)(mine + st_bytes + m2_bytes);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (ptrdiff_t b = 0; b < n_blocks; ++b) {
            const ptrdiff_t i0 = b * block;
            const ptrdiff_t i1 = i0 + block < n_queries ? i0 + block : n_queries;
            for (ptrdiff_t j = 0; j < (i1 - i0) * (dim + 1); ++j)
                st[j] = (fs_kde_vdbl){0};
            for (ptrdiff_t j = 0; j < i1 - i0; ++j)
                m2[j] = (double)INFINITY;
            for (ptrdiff_t t0 = 0; t0 < n_points; t0 += tile) {
                const ptrdiff_t t1 = t0 + tile < n_points ? t0 + tile : n_points;
                FS_FN(kde_block_tile)(xt, ld, dim, t0, t1, queries, i0, i1, exclude_start,
                                      c1, dmax, c1d, m2, st, acc, with_score);
            }
            for (ptrdiff_t i = i0; i < i1; ++i) {
                const fs_kde_vdbl *s = st + (i - i0) * (dim + 1);
                const double s0 = fs_kde_hsum(&s[0]);
                if (log_density) {
                    const int left_out = exclude_start >= 0 && exclude_start + i < n_points;
                    log_density[i] = (REAL)(log(s0) - m2[i - i0] * half_inv_sigma2 - log_norm
                                            - log((double)(n_points - left_out)));
                }
                if (score) {
                    const double inv = 1.0 / (s0 * sigma2);
                    for (ptrdiff_t k = 0; k < dim; ++k)
                        score[i * dim + k] = (REAL)(fs_kde_hsum(&s[1 + k]) * inv);
                }
            }
        }
        fs_kde_restore_fp(fp_state);
    }

cleanup:
    free(raw);
    return status;
}

#undef NL
#undef VREAL
#undef VREALU
#undef VUINT
#undef VMASK
#undef MASK_ELT
#undef SELECT
#undef SPLAT
#undef FS_KDE_UINT
#undef FS_KDE_SINT
#undef FS_KDE_MANT
#undef FS_KDE_BIAS
#undef FS_KDE_TMIN
#undef FS_KDE_POLY

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
 * Zero-weight vectors: a lane with dm >= dmax gets weight exactly +0 from kde_exp2, and
 * adding +0 to acc0, or w (x - q) = +-0 to acc[k], leaves them bit-identical. So a SIMD
 * vector of training points whose every lane has dm >= dmax is not summed at all (one
 * compare and a mask test). On data whose spread is large next to sigma most vectors are
 * such: standard-normal data, d = 9, sigma = 0.1 (bench_kde.py), ~2 % of 8-point and ~3 %
 * of 16-point vectors hold a nonzero weight.
 *
 * Far vectors (d <= FS_KDE_FAR_MAXD): most of those vectors need not even have their
 * distances formed. The pack keeps a row of squared norms n_t = |x_t|^2 (summed in double,
 * rounded once), and per lane y = n_t (1 - rho) - 2 q.x_t costs d + 1 multiply-adds with
 * x as memory operand (the exact distance costs d subtractions more). With
 * g = (2d + 8) u / (1 - (2d + 8) u) (u the unit roundoff, twice the count of rounded
 * operations in either evaluation), rho = 3 g + u and
 *   b = (m2 + dmax + g |m2|) / (1 - g) - |q|^2 (1 - g), rounded up to REAL,
 * y >= b implies |x - q|^2 >= (m2 + dmax + g |m2|) / (1 - g) in exact arithmetic (the
 * rounding of y, of n_t and of the products is within g (|x|^2 + |q|^2), covered by rho
 * |x|^2 and g |q|^2), which implies that the kernel's own rounded dm is >= dmax: weight
 * exactly 0, and no new minimum (dm >= dmax > 0), so the lazy maximum is unaffected.
 * Vectors with some lane y < b take the exact path. The bound is tight while sigma^2 is
 * large next to rho |x|^2, i.e. data near the origin relative to its spread (~1e4 sigma for
 * float32 at d = 9); for data far from the origin it skips nothing and only costs its d + 1
 * operations. tests/test_kde.py compares on and off (GaussianKDE._skip_far) on offset data
 * where a bound without these margins changes the score by O(1).
 *
 * Group boxes (the group bits per tile in the v3 and baseline bodies only, KDE_GROUPS in
 * kde_simd.tmpl.c: in the v4 body they made sigma = 0.2 slower; every body takes the
 * nearest-box first reference, see "Group modes"): the pack keeps, per group of
 * FS_KDE_GROUP (32) consecutive packed points, the box [lo_k, hi_k] of their coordinates,
 * and fastscore.kde packs the points in a k-d order (GaussianKDE.fit, _group_order) that
 * makes groups spatially tight; tiles are whole groups. Per (query, tile),
 * L_g = sum_k max(lo_k - q_k, q_k - hi_k, 0)^2 is a lower bound of |x - q|^2 over group g,
 * formed in REAL with x as memory operand: each gap is rounded once (relative error u, the
 * sign kept), squared and summed in d + 2 more rounded steps (fewer with fused
 * multiply-adds; FTZ only lowers terms), so the computed L <= L_exact (1 + gb),
 * gb = (d + 3) u / (1 - (d + 3) u). A group is skipped when L >= theta (1 + gb), rounded
 * up, theta = (m2 + dmax + g |m2|) / (1 - g) as in "Far vectors": then every point has |x -
 * q|^2 >= theta exactly, weight exactly 0 and no new minimum. The bits are computed once
 * per (query, tile) with the reference m2 at the tile's start; a later rescale only lowers
 * m2 and theta, so the skipped groups stay skippable. Unlike the norm-row bound there is no
 * cancellation (the gaps are differences of coordinates), so the margins are relative to L
 * itself and the skip is as tight for data far from the origin. Standard-normal data, d =
 * 9, sigma = 0.1, 20 000 points: ~40 % of the groups pass (the rest is skipped without
 * touching its points), and within them the far-point bound and the exact path run as
 * before. The first reference m2 of a query is the least distance over the group with the
 * least L over the whole set (kde_group_start), not the first tile's: with a spatial order
 * the first tile is usually far from the query, and its loose m2 would let most groups pass
 * and force rescales. Cost (v3, sigma = 0.1, perf): the group bits ~8 %, the start ~5 % of
 * the time. What the order changes: the summation order of the sums (results change within
 * float rounding against an unordered pack); the result is still a function of X and the
 * query alone (the order is deterministic), identical for any thread count, and with
 * skip_far on or off identical for the specialised d (within rounding for the others, as
 * before: GCC contracts the generic loops differently in the two paths).
 *
 * Group modes (kde_group_modes, kde_block): a query takes the group boxes (nearest-box
 * first reference, group bits per tile) only when the box bound L of one of
 * FS_KDE_MODE_SAMPLE groups spread over the pack exceeds dmax, the least skip threshold;
 * other queries take the tiles exactly as without groups (first reference from the first
 * tile, no group code). Where sigma is large next to the spread of the data no group can be
 * skipped (standard-normal data, d = 9: none at sigma >= 0.3; the sample test is true for
 * 99 % of queries at sigma = 0.1, 58 % at 0.2, 3 % at 0.3, none at 0.5), and there the
 * group tests (~5 % of a dense pass), the nearest-box start (~5 %) and, above all, the
 * group code in the same function as the dense pass (GCC kept fewer of its sums in
 * registers) cost 8-22 %: the tiles of a query in group mode run in a function of their own
 * (kde_gtile_*, one per specialised d and mode), and the dense pass of the others is
 * compiled as without groups (inlined: a function of its own, kde_ptile_*, measured 3-13 %
 * slower on v4 and no faster on v3; a second copy of the block's tile loop without the
 * group-mode call, for blocks with no query in group mode, 12-15 % slower on v3; the tile
 * loops are a function of their own, kde_block_tiles, apart from the group-mode call: in
 * one function the v4 dense pass was 1-2 % slower). The sampled test costs a few vector
 * operations per query (the sampled boxes are copied into vectors once per block; a scalar
 * loop over the pack was 2-3 % of a dense call). The v4 body takes the mode's nearest-box
 * first reference but no group bits (its tiles always run the pass without group code):
 * with the k-d order, its first-tile reference was 3 % slower than main's unordered pack at
 * sigma = 0.2, and the group bits 7 %. The mode is a function of the query and the pack
 * alone, and does not depend on skip_far: results stay identical for any thread count and
 * with skip_far on or off; the two modes differ only in the first reference m2 (rounding).
 *
 * Sparse and dense passes: each summing pass of a tile starts sparse (pairs of vectors
 * through the bound or the zero-weight test, branches that are nearly always taken) and
 * turns dense (every vector summed, no tests, as before these skips) for the rest of the
 * tile once more than about 1 pair in FS_KDE_SPARSE_HIT had a nonzero weight (a credit,
 * kde_pass). The switch depends only on the query and the tile, and either loop computes
 * the same sums, so results still do not depend on the thread count.
 *
 * Tiling and threads: queries are split in blocks, blocks among threads (static
 * schedule); for a block, the training set is streamed tile by tile (a tile of
 * FS_KDE_TILE_BYTES = 32 KiB of coordinates stays in L1) and every query of the block
 * consumes the tile before the next is read. The arithmetic of one query depends only on
 * the tile size (a function of d, REAL and the vector width of the SIMD body), not on the
 * block size or the thread count: results are identical for any n_threads.
 *
 * Throughput: the inner step is latency-bound more than port-bound, so |x - q|^2 is summed
 * in two interleaved partial sums, the polynomial uses Estrin's scheme and two training
 * vectors are processed per step (distances of both before either exponential). Each of
 * these, measured on one core (Sapphire Rapids, d = 9, float32), gained 2-5 %; together
 * ~1.6 -> ~1.8 Gpair/s per core. Rejected after measuring: accumulating w x (centred data)
 * to free registers (slower and 2x less accurate), 16 or 64 KiB tiles, query blocks of 8.
 * On an AMD EPYC (Zen, AVX-512; perf record without hardware counters) the v3 body of that
 * loop spilled about 60 of its ~150 instructions per two vectors to the stack (16 ymm
 * registers: 9 coordinates of q, 10 accumulators, the differences); the zero-weight skip,
 * q - x with x as memory operand, the far-point bound and x86 min / mask intrinsics (a
 * lane-loop minimum was scalarised by GCC in some inlining contexts) bring the sparse loop
 * to ~32 instructions per two vectors without spills: d = 9 float32, sigma = 0.1 on one
 * core 1.8x (v3) and 1.45x (v4) the earlier kernel (benchmarks/README.md, section kde). On
 * dense data (sigma = 3 on the same data: every weight nonzero) 0.81-0.94x (the sparse
 * start of each tile, the bound's set-up); 64 KiB tiles, fixed budgets and a credit
 * carried across tiles were tried and did not pay.
 *
 * SIMD bodies (kde_simd.tmpl.c): the code that touches vectors is stamped once per x86-64
 * level by fs_simd_stamp.h, with the vector width whose registers that level fills, and
 * fs_kde_score runs the body fs_simd_level() allows (FS_PICK, fs_common.h; the CPU's level
 * capped by FASTSCORE_SIMD):
 *   v4 (AVX-512)      64-byte vectors (16 floats, 8 doubles), one zmm register
 *   v3 (AVX2 + FMA)   32-byte vectors (8 floats, 4 doubles), one ymm register
 *   baseline          FS_SIMD_VBYTES_BASE-byte (16) vectors, the compiler's default target
 * Which exist is FS_CLONE_SET (fs_common.h). One width for all targets does
 * not work: GCC splits a vector wider than the target's registers into pieces, spills them,
 * and scalarises lane loops over it; the 64-byte body compiled for AVX2 ran 7-15x slower
 * than for AVX-512 (benchmarks/README.md, section build). Results depend on the body (lane
 * count and tile differ: rounding only), never on the thread count.
 */
#ifndef REAL
#error "stamp kde.tmpl.c through fs_stamp.h (kde_f32.c, kde_f64.c)"
#endif

#ifndef FS_KDE_COMMON_DEFINED
#define FS_KDE_COMMON_DEFINED
#define FS_KDE_VBYTES_MAX 64              /* widest vector of any body (bytes) */
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
#ifndef FS_KDE_SPARSE_BUDGET
#define FS_KDE_SPARSE_BUDGET 16           /* credit of a sparse pass (kde_pass) */
#endif
#ifndef FS_KDE_SPARSE_HIT
#define FS_KDE_SPARSE_HIT 5               /* its cost per pair with a nonzero weight */
#endif
#ifndef FS_KDE_FAR_MAXD
#define FS_KDE_FAR_MAXD 16                /* largest d with the far-point bound */
#endif
#ifndef FS_KDE_MODE_SAMPLE
#define FS_KDE_MODE_SAMPLE 16             /* groups sampled by the group-mode test */
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
#define FS_KDE_UNIT 0x1p-24                /* unit roundoff */
#define FS_KDE_TINY 0x1p-120               /* > the largest value FTZ flushes to 0 */
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
#define FS_KDE_UNIT 0x1p-53
#define FS_KDE_TINY 0x1p-1000
#define FS_KDE_POLY(f, f2) /* Estrin in f^2 */ \
    (((1.0000000000000000661 + (f) * 0.69314718055994977510) + (f2) * ( \
      0.24022650695908767770 + (f) * 0.055504108664458831363)) + ((f2) * (f2)) * ( \
     ((0.0096181291080345970060 + (f) * 0.0013333558228561765893) + (f2) * ( \
       0.00015403529961127075703 + (f) * 0.000015252658116409854484)) + ((f2) * (f2)) * ( \
      (1.3215662835959239446e-6 + (f) * 1.0208537929657404371e-7) + (f2) * \
       7.0372788467269008787e-9)))
#endif

/* The SIMD bodies kde_block (FS_LFN(kde_block) in kde_simd.tmpl.c): queries [i0, i1)
 * against the whole training set. */
typedef void (*FS_FN(fs_kde_block_fn))(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points,
                                       ptrdiff_t d, const REAL *queries, ptrdiff_t i0,
                                       ptrdiff_t i1, ptrdiff_t exclude_start,
                                       const ptrdiff_t *where, REAL c1,
                                       REAL dmax, double c1d, double *m2, fs_kde_vdbl *st,
                                       void *scratch, int with_score, int skip_far);
#define FS_SIMD_TEMPLATE "kde_simd.tmpl.c"
#include "fs_simd_stamp.h"

ptrdiff_t FS_FN(fs_kde_leading_dim)(ptrdiff_t n_points)
{
    /* whole vectors of the widest body, so every body reads whole vectors */
    const ptrdiff_t lanes = FS_KDE_VBYTES_MAX / (ptrdiff_t)sizeof(REAL);
    return (n_points + lanes - 1) / lanes * lanes;
}

ptrdiff_t FS_FN(fs_kde_group_ld)(ptrdiff_t n_points)
{
    return FS_FN(fs_kde_leading_dim)((n_points + FS_KDE_GROUP - 1) / FS_KDE_GROUP);
}

ptrdiff_t FS_FN(fs_kde_packed_size)(ptrdiff_t n_points, ptrdiff_t dim)
{
    /* coordinates and norms, the group boxes, one widest vector of slack (the box tests
     * read whole vectors from any group on) */
    return (dim + 1) * FS_FN(fs_kde_leading_dim)(n_points)
           + 2 * dim * FS_FN(fs_kde_group_ld)(n_points)
           + FS_KDE_VBYTES_MAX / (ptrdiff_t)sizeof(REAL);
}

int FS_FN(fs_kde_pack)(const REAL *X, ptrdiff_t n_points, ptrdiff_t dim,
                       const ptrdiff_t *order, REAL *out, ptrdiff_t ld)
{
    if (n_points < 0 || dim < 1 || ld < n_points) return FS_E_ARG;
    if (order)
        for (ptrdiff_t t = 0; t < n_points; ++t)
            if (order[t] < 0 || order[t] >= n_points) return FS_E_ARG;
#define FS_KDE_ROW(t) (X + (order ? order[t] : (t)) * dim)
    for (ptrdiff_t k = 0; k < dim; ++k) {
        REAL *o = out + k * ld;
        for (ptrdiff_t t = 0; t < n_points; ++t)
            o[t] = FS_KDE_ROW(t)[k];
        for (ptrdiff_t t = n_points; t < ld; ++t)
            o[t] = 0;
    }
    REAL *norms = out + dim * ld;          /* |x_t|^2, summed in double, rounded once */
    for (ptrdiff_t t = 0; t < n_points; ++t) {
        const REAL *x = FS_KDE_ROW(t);
        double s = 0;
        for (ptrdiff_t k = 0; k < dim; ++k)
            s += (double)x[k] * (double)x[k];
        norms[t] = (REAL)s;
    }
#undef FS_KDE_ROW
    for (ptrdiff_t t = n_points; t < ld; ++t)
        norms[t] = 0;
    /* group boxes: lo[k * gld + g] and hi[(dim + k) * gld + g], the coordinate range of
     * packed points [g G, (g + 1) G); groups past the last are empty (lo = +inf, hi = -inf,
     * never passed); then the slack */
    const ptrdiff_t gld = FS_FN(fs_kde_group_ld)(n_points);
    const ptrdiff_t n_groups = (n_points + FS_KDE_GROUP - 1) / FS_KDE_GROUP;
    REAL *lo = out + (dim + 1) * ld, *hi = lo + dim * gld;
    for (ptrdiff_t k = 0; k < dim; ++k) {
        const REAL *c = out + k * ld;
        for (ptrdiff_t g = 0; g < gld; ++g) {
            REAL a = (REAL)INFINITY, b = -(REAL)INFINITY;
            if (g < n_groups) {
                const ptrdiff_t t1 = (g + 1) * FS_KDE_GROUP < n_points
                                     ? (g + 1) * FS_KDE_GROUP : n_points;
                for (ptrdiff_t t = g * FS_KDE_GROUP; t < t1; ++t) {
                    a = c[t] < a ? c[t] : a;
                    b = c[t] > b ? c[t] : b;
                }
            }
            lo[k * gld + g] = a;
            hi[k * gld + g] = b;
        }
    }
    for (ptrdiff_t j = 0; j < FS_KDE_VBYTES_MAX / (ptrdiff_t)sizeof(REAL); ++j)
        hi[dim * gld + j] = 0;
    return FS_OK;
}

int FS_FN(fs_kde_score)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, ptrdiff_t dim,
                        const REAL *queries, ptrdiff_t n_queries, double sigma,
                        ptrdiff_t exclude_start, const ptrdiff_t *where, REAL *score,
                        REAL *log_density, int skip_far, int n_threads)
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

    const FS_FN(fs_kde_block_fn) body = FS_PICK(kde_block);

    /* query blocks: small enough that every thread gets several */
    ptrdiff_t block = FS_KDE_QUERY_BLOCK;
    if (n_queries < 4 * n_threads * block)
        block = (n_queries + 4 * n_threads - 1) / (4 * n_threads);
    if (block < 1) block = 1;
    const ptrdiff_t n_blocks = (n_queries + block - 1) / block;

    /* per-thread scratch: lane sums (block x (d + 1) x 8 doubles), m2 (block doubles),
     * accumulators for the generic-d path (d vectors of the widest body); 64-byte aligned
     * pieces */
    const size_t st_bytes = sizeof(fs_kde_vdbl) * (size_t)(block * (dim + 1));
    const size_t m2_bytes = (sizeof(double) * (size_t)block + 63) / 64 * 64;
    const size_t acc_bytes = (size_t)FS_KDE_VBYTES_MAX * (size_t)dim;
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
        void *acc = mine + st_bytes + m2_bytes;
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
            body(xt, ld, n_points, dim, queries, i0, i1, exclude_start, where, c1, dmax, c1d,
                 m2, st, acc, with_score, skip_far);
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

#undef FS_KDE_UINT
#undef FS_KDE_SINT
#undef FS_KDE_MANT
#undef FS_KDE_BIAS
#undef FS_KDE_TMIN
#undef FS_KDE_UNIT
#undef FS_KDE_TINY
#undef FS_KDE_POLY

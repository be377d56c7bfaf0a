/* One SIMD body of the KDE kernel (see kde.tmpl.c for the algorithm): every function that
 * touches vectors, written for vectors of FS_KDE_VBYTES bytes. kde.tmpl.c stamps it once per
 * body of the extension through fs_simd_stamp.h, which defines
 *   FS_SIMD_VBYTES  bytes of the level's vector registers (FS_KDE_VBYTES here)
 *   FS_SIMD_SFX     name suffix of the body (names WFN(kde_x) -> kde_x_f32_v4)
 *   FS_SIMD_TARGET  the function attribute that compiles it for its level (or nothing)
 * Only WFN(kde_block) is a real function; the rest (KFN) is always inlined into it and
 * carries the same target attribute, so x86 intrinsics of that level may be used. */
#if !defined(REAL) || !defined(FS_SIMD_VBYTES)
#error "stamp kde_simd.tmpl.c from kde.tmpl.c through fs_simd_stamp.h"
#endif

#define FS_KDE_VBYTES FS_SIMD_VBYTES
#define WFN(name) FS_LFN(name)
#define NL ((ptrdiff_t)(FS_KDE_VBYTES / sizeof(REAL)))
#define VREAL WFN(fs_kde_vreal)
#define VREALU WFN(fs_kde_vrealu)
#define VUINT WFN(fs_kde_vuint)
#define VMASK WFN(fs_kde_vmask)
#define KFN FS_INLINE FS_SIMD_TARGET
/* Group tiles (kde.tmpl.c, "Group boxes") in this body: not in the 64-byte one, where
 * they made sigma = 0.2 slower (0.93x main's, against 0.99-1.01x with the group modes'
 * nearest-box start alone, which every body has; benchmarks/README.md, section kde) */
#ifndef KDE_GROUPS
#define KDE_GROUPS (FS_KDE_VBYTES < 64)
#define KDE_GROUPS_LOCAL 1
#endif

typedef REAL VREAL __attribute__((vector_size(FS_KDE_VBYTES)));
typedef REAL VREALU __attribute__((vector_size(FS_KDE_VBYTES), aligned(sizeof(REAL))));
typedef FS_KDE_UINT VUINT __attribute__((vector_size(FS_KDE_VBYTES)));
typedef FS_KDE_SINT VMASK __attribute__((vector_size(FS_KDE_VBYTES))); /* -1 / 0 lanes */
#define MASK_ELT(v) ((FS_KDE_SINT)(v))

/* Lane-wise m ? a : b and a broadcast scalar (macros: no vector passed by value). */
#define SELECT(m, a, b) ((VREAL)(((m) & (VMASK)(a)) | (~(m) & (VMASK)(b))))
#define SPLAT(v) ((VREAL){0} + (REAL)(v))

/* x86 vector intrinsics of this body (KDE_X86: its vector type; none for other CPUs),
 * used where GCC's generic vector code is fragile: a lane minimum written as a lane loop
 * is one vminps in some inlining contexts and a scalar loop in others. */
#if defined(FS_GCC_X86_64) && FS_KDE_VBYTES == 64
#define KDE_X86 1
#define KDE_MIN(a, b) (FS_REAL_IS_FLOAT ? (VREAL)_mm512_min_ps((__m512)(a), (__m512)(b)) \
                       : (VREAL)_mm512_min_pd((__m512d)(a), (__m512d)(b)))
#define KDE_MAX(a, b) (FS_REAL_IS_FLOAT ? (VREAL)_mm512_max_ps((__m512)(a), (__m512)(b)) \
                       : (VREAL)_mm512_max_pd((__m512d)(a), (__m512d)(b)))
#define KDE_LT_BITS(a, b) (FS_REAL_IS_FLOAT                                         \
    ? (uint64_t)_mm512_cmp_ps_mask((__m512)(a), (__m512)(b), _CMP_LT_OQ)            \
    : (uint64_t)_mm512_cmp_pd_mask((__m512d)(a), (__m512d)(b), _CMP_LT_OQ))
#define KDE_ANY_LT(a, b) (KDE_LT_BITS(a, b) != 0)
#elif defined(FS_GCC_X86_64) && FS_KDE_VBYTES == 32
#define KDE_X86 1
#define KDE_MIN(a, b) (FS_REAL_IS_FLOAT ? (VREAL)_mm256_min_ps((__m256)(a), (__m256)(b)) \
                       : (VREAL)_mm256_min_pd((__m256d)(a), (__m256d)(b)))
#define KDE_MAX(a, b) (FS_REAL_IS_FLOAT ? (VREAL)_mm256_max_ps((__m256)(a), (__m256)(b)) \
                       : (VREAL)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#define KDE_LT_BITS(a, b) (FS_REAL_IS_FLOAT                                                 \
    ? (uint64_t)_mm256_movemask_ps(_mm256_cmp_ps((__m256)(a), (__m256)(b), _CMP_LT_OQ))    \
    : (uint64_t)_mm256_movemask_pd(_mm256_cmp_pd((__m256d)(a), (__m256d)(b), _CMP_LT_OQ)))
#define KDE_ANY_LT(a, b) (KDE_LT_BITS(a, b) != 0)
#elif defined(FS_GCC_X86_64) && FS_KDE_VBYTES == 16
#define KDE_X86 1
#define KDE_MIN(a, b) (FS_REAL_IS_FLOAT ? (VREAL)_mm_min_ps((__m128)(a), (__m128)(b)) \
                       : (VREAL)_mm_min_pd((__m128d)(a), (__m128d)(b)))
#define KDE_MAX(a, b) (FS_REAL_IS_FLOAT ? (VREAL)_mm_max_ps((__m128)(a), (__m128)(b)) \
                       : (VREAL)_mm_max_pd((__m128d)(a), (__m128d)(b)))
#define KDE_LT_BITS(a, b) (FS_REAL_IS_FLOAT                                       \
    ? (uint64_t)_mm_movemask_ps(_mm_cmplt_ps((__m128)(a), (__m128)(b)))          \
    : (uint64_t)_mm_movemask_pd(_mm_cmplt_pd((__m128d)(a), (__m128d)(b))))
#define KDE_ANY_LT(a, b) (KDE_LT_BITS(a, b) != 0)
#else
#define KDE_X86 0
#endif

/* Lane-wise minimum, exactly a < b ? a : b per lane (the semantics of x86 min: the
 * second operand when the compare is false). */
KFN VREAL WFN(kde_min)(const VREAL *a, const VREAL *b)
{
#if KDE_X86
    return KDE_MIN(*a, *b);
#else
    return SELECT(*a < *b, *a, *b);
#endif
}

/* Lane-wise maximum, a > b ? a : b per lane. */
KFN VREAL WFN(kde_max)(const VREAL *a, const VREAL *b)
{
#if KDE_X86
    return KDE_MAX(*a, *b);
#else
    return SELECT(*a > *b, *a, *b);
#endif
}

/* Bit l set for every lane l with a < b (ordered compare). */
KFN uint64_t WFN(kde_lt_bits)(const VREAL *a, const VREAL *b)
{
#if KDE_X86
    return KDE_LT_BITS(*a, *b);
#else
    const VMASK m = *a < *b;
    uint64_t bits = 0;
    for (ptrdiff_t l = 0; l < NL; ++l)
        bits |= (uint64_t)(m[l] != 0) << l;
    return bits;
#endif
}

/* 2^(dm * nc1), nc1 = -c1, with dm clamped to dm <= dmax = -FS_KDE_TMIN / c1 so the
 * exponent t is >= FS_KDE_TMIN, where the result is exactly +0. Needs t < BIAS + 1; tiles
 * that are kept have t <= FS_KDE_MARGIN (see kde_query_tile). The product is folded into
 * the range reduction (fused multiply-adds where the target has them). */
KFN VREAL WFN(kde_exp2)(const VREAL *dm, const VREAL *nc1, const VREAL *dmax)
{
    const REAL magic = (REAL)(1.5 * (double)((FS_KDE_UINT)1 << FS_KDE_MANT)) + FS_KDE_BIAS;
    const VREAL dmc = WFN(kde_min)(dm, dmax);
    const VREAL r = dmc * *nc1 + magic;      /* low bits: round(t) + BIAS */
    const VREAL n = r - magic;               /* round(t) */
    const VREAL f = dmc * *nc1 - n;          /* [-1/2, 1/2] */
    const VUINT e = (VUINT)r << FS_KDE_MANT; /* 2^round(t) */
    const VREAL f2 = f * f;
    return FS_KDE_POLY(f, f2) * (VREAL)e;
}

/* Whether some lane has a < b (ordered compare): a compare and a mask test. */
KFN int WFN(kde_any_below)(const VREAL *a, const VREAL *b)
{
#if KDE_X86
    return KDE_ANY_LT(*a, *b);
#else
    return WFN(kde_lt_bits)(a, b) != 0;
#endif
}

KFN double WFN(kde_hmin)(const VREAL *vp)
{
    /* pairwise: halves of the vector folded (a tree of depth log2 NL, not a chain) */
    REAL m[NL];
    memcpy(m, vp, sizeof m);
    for (ptrdiff_t h = NL / 2; h >= 1; h /= 2)
        for (ptrdiff_t l = 0; l < h; ++l)
            m[l] = m[l + h] < m[l] ? m[l + h] : m[l];
    return (double)m[0];
}

/* Lane sums of one tile, widened to 8 doubles: lane l goes to double lane l % 8 (up to 8
 * lanes converted at a time and added; fewer than 8 lanes fill the first ones). */
KFN fs_kde_vdbl WFN(kde_widen)(const VREAL *vp)
{
    enum { PART = NL < 8 ? NL : 8 };
    typedef REAL vpart __attribute__((vector_size(PART * sizeof(REAL))));
    typedef double vpartd __attribute__((vector_size(PART * sizeof(double))));
    fs_kde_vdbl out = {0};
    for (ptrdiff_t j = 0; j < NL; j += PART) {
        vpart part;
        memcpy(&part, (const REAL *)vp + j, sizeof part);
        const vpartd wide = __builtin_convertvector(part, vpartd);
        fs_kde_vdbl lanes = {0};
        memcpy(&lanes, &wide, sizeof wide);
        out = j ? out + lanes : lanes;
    }
    return out;
}

/* One vector of NL training points x[k*ld + l] against query q (d coordinates), relative
 * to the reference m2: returns dm = |x - q|^2 - m2 (m2 folded into the first partial sum,
 * so the difference costs nothing and keeps the precision of |x - q|^2) and updates the
 * lane minimum vmin. masked: lanes outside `valid` get dm = +inf. */
KFN VREAL WFN(kde_dist)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d,
                                const REAL *q, const VREAL *m2, const int masked,
                                const VMASK *valid, VREAL *vmin)
{
    /* two interleaved partial sums: a shorter dependency chain. q - x (= -(x - q)
     * exactly), not x - q: one instruction with x as memory operand; kde_accumulate reuses
     * these differences when it sums every vector, and reloads them (after a compiler
     * barrier) for the rare vectors with a nonzero weight of a sparse pass. */
    const VREAL df0 = q[0] - *(const VREALU *)x;
    VREAL even = df0 * df0 - *m2, odd = SPLAT(0);
    for (ptrdiff_t k = 1; k < d; ++k) {
        const VREAL df = q[k] - *(const VREALU *)(x + k * ld);
        if (k % 2)
            odd = k == 1 ? df * df : odd + df * df;
        else
            even += df * df;
    }
    VREAL dm = d > 1 ? even + odd : even;
    if (masked)
        dm = SELECT(*valid, dm, SPLAT((REAL)INFINITY));
    *vmin = WFN(kde_min)(&dm, vmin);
    return dm;
}

/* Adds the weights w = 2^(-dm c1) of one vector into acc0 and, with with_score,
 * w (x - q) into acc[k]. nc1 = -c1, dmax: the exp2 clamp (see kde_exp2). test_zero:
 * first test whether every weight is 0, and then return 0 (1: the vector was summed). */
KFN int WFN(kde_accumulate)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d,
                                     const REAL *q, const VREAL *dm, const VREAL *nc1,
                                     const VREAL *dmax, const int with_score,
                                     const int masked, const VMASK *valid,
                                     const int test_zero, VREAL *acc0, VREAL *acc)
{
    /* Exact skip: a lane with dm >= dmax has weight exactly +0 (kde_exp2), and adding
     * +0 or w (x - q) = +-0 leaves every sum bit-identical; on spread data most vectors
     * are such (kde.tmpl.c, "Zero-weight vectors"). */
    if (test_zero) {
        if (!WFN(kde_any_below)(dm, dmax))
            return 0;
#ifdef __GNUC__
        /* Reload x and q here: without this barrier GCC keeps the loaded coordinates of
         * the distance pass alive for this rare path and spills them on every vector (16
         * ymm registers in the v3 body). */
        __asm__ volatile("" ::: "memory");
#endif
    }
    VREAL w = WFN(kde_exp2)(dm, nc1, dmax);
    if (masked)
        w = SELECT(*valid, w, SPLAT(0));
    *acc0 += w;
    if (with_score)
        for (ptrdiff_t k = 0; k < d; ++k)
            acc[k] -= w * (q[k] - *(const VREALU *)(x + k * ld)); /* += w (x - q) exactly */
    return 1;
}

/* mode 0: minimum of dm only; mode 1: also the sums (see kde_accumulate); mode 2: the
 * sums without the zero-weight test. Returns the number of vectors summed. */
KFN int WFN(kde_step)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                               const VREAL *nc1, const VREAL *m2, const int mode,
                               const VREAL *dmax, const int with_score, const int masked,
                               const VMASK *valid, VREAL *vmin, VREAL *acc0, VREAL *acc)
{
    const VREAL dm = WFN(kde_dist)(x, ld, d, q, m2, masked, valid, vmin);
    return mode >= 1 ? WFN(kde_accumulate)(x, ld, d, q, &dm, nc1, dmax, with_score, masked,
                                           valid, mode == 1, acc0, acc)
                     : 0;
}

/* Two vectors with their independent distance computations ahead of the exponentials,
 * so the out-of-order window holds more independent work. */
KFN int WFN(kde_step2)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                                const VREAL *nc1, const VREAL *m2, const int mode,
                                const VREAL *dmax, const int with_score, VREAL *vmin,
                                VREAL *acc0, VREAL *acc)
{
    const VMASK all = {0};
    const VREAL dm0 = WFN(kde_dist)(x, ld, d, q, m2, 0, &all, vmin);
    const VREAL dm1 = WFN(kde_dist)(x + NL, ld, d, q, m2, 0, &all, vmin);
    if (mode == 0)
        return 0;
    const int n0 = WFN(kde_accumulate)(x, ld, d, q, &dm0, nc1, dmax, with_score, 0, &all,
                                       mode == 1, acc0, acc);
    return n0 + WFN(kde_accumulate)(x + NL, ld, d, q, &dm1, nc1, dmax, with_score, 0, &all,
                                    mode == 1, acc0, acc);
}

/* The exact far-point bound (kde.tmpl.c, "Far vectors"): y = |x|^2 (1 - rho) - 2 q.x per
 * lane, from the norm row xt[d * ld + t] of the pack, in d + 1 multiply-adds with x as
 * memory operand; every lane with y >= f->b has a kernel distance dm >= dmax, i.e. weight
 * exactly 0, and is no new minimum. */
typedef struct {
    VREAL qm2[FS_KDE_FAR_MAXD];   /* -2 q_k (exact) */
    VREAL a;                      /* 1 - rho */
    VREAL b;                      /* threshold, rounded up */
} WFN(kde_far);

KFN VREAL WFN(kde_far_bound)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d,
                             const WFN(kde_far) *f)
{
    VREAL even = *(const VREALU *)(x + d * ld) * f->a, odd = SPLAT(0);
    for (ptrdiff_t k = 0; k < d; ++k) {
        const VREAL p = f->qm2[k] * *(const VREALU *)(x + k * ld);
        if (k % 2)
            odd = k == 1 ? p : odd + p;
        else
            even += p;
    }
    return d > 1 ? even + odd : even;
}

/* Two vectors through the bound; the exact step (distance, minimum, sums) only for a vector
 * with some lane below the threshold. Results are those of kde_step on every vector;
 * returns 1 when either vector was summed. */
KFN int WFN(kde_far_step2)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                            const WFN(kde_far) *f, const VREAL *nc1, const VREAL *m2,
                            const VREAL *dmax, const int with_score, VREAL *vmin,
                            VREAL *acc0, VREAL *acc)
{
    const VREAL y0 = WFN(kde_far_bound)(x, ld, d, f);
    const VREAL y1 = WFN(kde_far_bound)(x + NL, ld, d, f);
    const VREAL y01 = WFN(kde_min)(&y0, &y1);
    if (!WFN(kde_any_below)(&y01, &f->b))
        return 0;
#ifdef __GNUC__
    __asm__ volatile("" ::: "memory");    /* see kde_accumulate */
#endif
    const VMASK all = {0};
    if (WFN(kde_any_below)(&y0, &f->b))
        WFN(kde_step)(x, ld, d, q, nc1, m2, 2, dmax, with_score, 0, &all, vmin, acc0, acc);
    if (WFN(kde_any_below)(&y1, &f->b))
        WFN(kde_step)(x + NL, ld, d, q, nc1, m2, 2, dmax, with_score, 0, &all, vmin, acc0,
                      acc);
    return 1;
}

/* Vectors [v, v_end) of a tile starting at x, with the n_special vectors sp[j] masked by
 * spm[j] (sp sorted ascending; those outside the range are ignored). Mode 1 is sparse
 * (pairs of vectors skipped when every weight is 0: by the far-point bound `far` with
 * use_far, else after their distances) while the credit *budget is positive and dense
 * (every vector summed, no tests) once it runs out: the credit starts at and is capped to
 * FS_KDE_SPARSE_BUDGET (kde_pass), gains 1 per pair and loses FS_KDE_SPARSE_HIT per pair
 * with a nonzero weight, so a pass stays sparse while fewer than about 1 pair in
 * FS_KDE_SPARSE_HIT is summed. The tests and their mispredicted branches cost more than
 * they save where many weights are nonzero. Which loop sums a vector changes nothing in
 * the result. Mode 0 (minimum only) runs with *budget = 0. */
#define KDE_CREDIT(credit, hit) \
    (((credit) < FS_KDE_SPARSE_BUDGET ? (credit) + 1 : (credit)) - FS_KDE_SPARSE_HIT * (hit))
KFN void WFN(kde_range)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                        ptrdiff_t v, const ptrdiff_t v_end, const ptrdiff_t *sp,
                        const VMASK *spm, int n_special, const VREAL *nc1, const VREAL *m2,
                        const VREAL *dmax, const int mode, const int with_score,
                        const int use_far, const WFN(kde_far) *far, int *budgetp,
                        VREAL *restrict vmin, VREAL *restrict acc0, VREAL *restrict acc)
{
    const VMASK all = {0};
    int budget = *budgetp;
    for (int j = 0; j <= n_special; ++j) {
        if (j < n_special && (sp[j] < v || sp[j] >= v_end))
            continue;
        const ptrdiff_t stop = j < n_special ? sp[j] : v_end;
        if (use_far)
            for (; v + 1 < stop && budget > 0; v += 2)
                budget = KDE_CREDIT(budget, WFN(kde_far_step2)(x + v * NL, ld, d, q, far, nc1,
                                    m2, dmax, with_score, vmin, acc0, acc));
        else
            for (; v + 1 < stop && budget > 0; v += 2)
                budget = KDE_CREDIT(budget, WFN(kde_step2)(x + v * NL, ld, d, q, nc1, m2, 1,
                                    dmax, with_score, vmin, acc0, acc) > 0);
        for (; v + 1 < stop; v += 2)
            WFN(kde_step2)(x + v * NL, ld, d, q, nc1, m2, mode ? 2 : 0, dmax, with_score,
                           vmin, acc0, acc);
        for (; v < stop; ++v)
            WFN(kde_step)(x + v * NL, ld, d, q, nc1, m2, mode ? 2 : 0, dmax, with_score, 0,
                          &all, vmin, acc0, acc);
        if (j < n_special) {
            WFN(kde_step)(x + v * NL, ld, d, q, nc1, m2, mode, dmax, with_score, 1, &spm[j],
                          vmin, acc0, acc);
            ++v;
        }
    }
    *budgetp = budget;
}

/* One pass over the nv vectors of a tile (mode as in kde_range). With use_groups only the
 * groups whose bit is set in `groups` (group j: vectors [j GV, (j + 1) GV)) are visited:
 * the others hold no nonzero weight and no new minimum (kde.tmpl.c, "Group boxes"). */
KFN void WFN(kde_pass)(const REAL *x, ptrdiff_t ld, const ptrdiff_t d, const REAL *q,
                       ptrdiff_t nv, const ptrdiff_t *sp, const VMASK *spm, int n_special,
                       const VREAL *nc1, const VREAL *m2, const VREAL *dmax, const int mode,
                       const int with_score, const int use_far, const WFN(kde_far) *far,
                       const int use_groups, uint64_t groups, VREAL *restrict vmin,
                       VREAL *restrict acc0, VREAL *restrict acc)
{
    enum { GV = FS_KDE_GROUP / NL };
    int budget = mode == 1 ? FS_KDE_SPARSE_BUDGET : 0;
    const ptrdiff_t n_groups = (nv + GV - 1) / GV;
    const uint64_t every = n_groups < 64 ? ((uint64_t)1 << n_groups) - 1 : ~(uint64_t)0;
    if (!use_groups || groups == every) {  /* one run: the pass as without groups */
        WFN(kde_range)(x, ld, d, q, 0, nv, sp, spm, n_special, nc1, m2, dmax, mode,
                       with_score, use_far, far, &budget, vmin, acc0, acc);
        return;
    }
    while (groups) {                      /* runs of consecutive groups */
        const int first = __builtin_ctzll(groups);
        const uint64_t rest = ~(groups >> first);
        const int count = rest ? __builtin_ctzll(rest) : 64 - first;
        const ptrdiff_t v0 = (ptrdiff_t)first * GV, v1 = (ptrdiff_t)(first + count) * GV;
        WFN(kde_range)(x, ld, d, q, v0, v1 < nv ? v1 : nv, sp, spm, n_special, nc1, m2, dmax,
                       mode, with_score, use_far, far, &budget, vmin, acc0, acc);
        groups = first + count < 64 ? groups >> (first + count) << (first + count) : 0;
    }
}

/* Lower bounds L_g (rounded as kde.tmpl.c, "Group boxes", says) of |x - q|^2 over the
 * points of groups [g0, g0 + n_groups) from their boxes, into out (whole vectors; lanes
 * past n_groups hold bounds of later groups or of the empty ones). */
KFN void WFN(kde_group_bounds)(const REAL *lo, ptrdiff_t gld, const ptrdiff_t d,
                               const REAL *q, ptrdiff_t g0, ptrdiff_t n_groups, VREAL *out)
{
    const REAL *hi = lo + d * gld;
    const VREAL zero = SPLAT(0);
    for (ptrdiff_t j = 0; j * NL < n_groups; ++j) {
        VREAL even = zero, odd = zero;
        for (ptrdiff_t k = 0; k < d; ++k) {
            const VREAL below = *(const VREALU *)(lo + k * gld + g0 + j * NL) - q[k];
            const VREAL above = q[k] - *(const VREALU *)(hi + k * gld + g0 + j * NL);
            VREAL gap = WFN(kde_max)(&below, &above);
            gap = WFN(kde_max)(&gap, &zero);
            if (k % 2)
                odd += gap * gap;
            else
                even += gap * gap;
        }
        out[j] = even + odd;
    }
}

/* Bit j set for each group j < n_groups whose bound L is below the threshold bg. */
KFN uint64_t WFN(kde_group_bits)(const VREAL *bounds, ptrdiff_t n_groups, const VREAL *bg)
{
    uint64_t bits = 0;
    for (ptrdiff_t j = 0; j * NL < n_groups; ++j)
        bits |= WFN(kde_lt_bits)(&bounds[j], bg) << (j * NL);
    return n_groups < 64 ? bits & (((uint64_t)1 << n_groups) - 1) : bits;
}

/* A first reference for a query: the least |x - q|^2 (as kde_dist rounds it) over the
 * points of the group with the least box bound, leaving out packed point `self` (-1:
 * none). +inf when that group holds no other point. */
FS_SIMD_TARGET __attribute__((noinline)) static double
WFN(kde_group_start)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, const ptrdiff_t d,
                     const REAL *q, ptrdiff_t self)
{
    const ptrdiff_t gld = FS_FN(fs_kde_group_ld)(n_points);
    const ptrdiff_t n_groups = (n_points + FS_KDE_GROUP - 1) / FS_KDE_GROUP;
    const REAL *lo = xt + (d + 1) * ld;
    VREAL best = SPLAT((REAL)INFINITY), bounds[1];
    VMASK best_at = {0}, at;
    for (ptrdiff_t l = 0; l < NL; ++l)
        at[l] = MASK_ELT(l);
    for (ptrdiff_t g = 0; g < n_groups; g += NL) {
        WFN(kde_group_bounds)(lo, gld, d, q, g, NL, bounds);
        const VMASK lower = bounds[0] < best;      /* first group of a lane wins ties */
        best = SELECT(lower, bounds[0], best);
        best_at = (lower & at) | (~lower & best_at);
        at += (VMASK){0} + MASK_ELT(NL);
    }
    ptrdiff_t g = -1;
    REAL least = (REAL)INFINITY;
    for (ptrdiff_t l = 0; l < NL; ++l)
        if (best[l] < least || (best[l] == least && g >= 0 && best_at[l] < g)) {
            least = best[l];
            g = best_at[l];
        }
    if (g < 0)
        return (double)INFINITY;
    VREAL vmin = SPLAT((REAL)INFINITY);
    const VREAL zero = SPLAT(0);
    VMASK lane;
    for (ptrdiff_t l = 0; l < NL; ++l)
        lane[l] = MASK_ELT(l);
    for (ptrdiff_t t = g * FS_KDE_GROUP; t < (g + 1) * FS_KDE_GROUP && t < n_points; t += NL) {
        const VMASK valid = (lane + MASK_ELT(t) < MASK_ELT(n_points))
                            & (lane + MASK_ELT(t) != MASK_ELT(self));
        WFN(kde_dist)(xt + t, ld, d, q, &zero, 1, &valid, &vmin);
    }
    return WFN(kde_hmin)(&vmin);
}

/* The groups of packed points [t0, t0 + n) (t0 a multiple of FS_KDE_GROUP) whose boxes
 * may hold a point with a nonzero weight for reference m2 (kde.tmpl.c, "Group boxes"), as
 * bits (group j of the tile: bit j). Not inlined: it keeps the registers of the tile's
 * pass free (measured: inlined, GCC spilled the pass's loop counters and sums). */
FS_SIMD_TARGET __attribute__((noinline)) static uint64_t
WFN(kde_tile_groups)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, const ptrdiff_t d,
                     const REAL *q, ptrdiff_t t0, ptrdiff_t n, REAL dmax, double gam,
                     double m2)
{
    const ptrdiff_t n_groups = (n + FS_KDE_GROUP - 1) / FS_KDE_GROUP;
    VREAL bounds[64 / NL + 1];
    WFN(kde_group_bounds)(xt + (d + 1) * ld, FS_FN(fs_kde_group_ld)(n_points), d, q,
                          t0 / FS_KDE_GROUP, n_groups, bounds);
    const double m2r = (double)(REAL)m2;
    const double theta = (m2r + (double)dmax + gam * fabs(m2r)) / (1 - gam);
    const double gam_box = (double)(d + 3) * FS_KDE_UNIT / (1 - (d + 3) * FS_KDE_UNIT);
    const double bg = theta * (1 + gam_box);
    const VREAL vbg = SPLAT((REAL)(bg + 4 * FS_KDE_UNIT * bg + FS_KDE_TINY));
    return WFN(kde_group_bits)(bounds, n_groups, &vbg);
}

/* Adds training points [t0, t1) (t0 a multiple of FS_KDE_GROUP) to the running state of
 * one query: *m2p the reference minimum of d2 (+inf before the first point), st[0] the lane
 * sums of w, st[1 + k] those of w (x_k - q_k). `self` is the packed position of the
 * left-out point, or -1. acc: d vectors of scratch. use_groups (a constant at every call):
 * visit only the groups of the tile whose boxes pass (kde.tmpl.c, "Group boxes"); 0 is the
 * pass without any group code, the one the dense regimes run (kde_block_tile_d). */
KFN void WFN(kde_query_tile)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points,
                             const ptrdiff_t d, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t self,
                             const REAL *q, REAL c1, REAL dmax, double c1d, double *m2p,
                             fs_kde_vdbl *st, VREAL *acc, const int with_score,
                             const int skip_far, const int use_groups)
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

    /* a and b set here only against -Wmaybe-uninitialized (read with use_far alone); not a
     * memset of the whole struct: with it GCC kept -2 q in memory, not in registers, and
     * the v4 far-point loop reloaded them on every vector (0.77x at sigma = 0.1) */
    WFN(kde_far) far;
    far.a = zero;
    far.b = zero;
    VREAL vmin, acc0;
    if (*m2p == (double)INFINITY) {       /* first points of this query: find a reference */
        vmin = inf;
        int no_credit = 0;
        WFN(kde_range)(x, ld, d, q, 0, nv, sp, spm, n_special, &nc1, &zero, &vdmax, 0, 0, 0,
                       &far, &no_credit, &vmin, &acc0, acc);
        *m2p = WFN(kde_hmin)(&vmin);
        if (*m2p == (double)INFINITY)
            return;                       /* every point of the tile was left out */
    }
    /* the far-point bound (kde.tmpl.c, "Far vectors"), for d <= FS_KDE_FAR_MAXD */
    const int use_far = skip_far && d <= FS_KDE_FAR_MAXD;
    double qn = 0;
    double gam = (double)(2 * d + 8) * FS_KDE_UNIT;
    gam /= 1 - gam;
    if (use_far) {
        for (ptrdiff_t k = 0; k < d; ++k) {
            far.qm2[k] = SPLAT(-2 * q[k]);
            qn += (double)q[k] * (double)q[k];
        }
        far.a = SPLAT(1 - (3 * gam + FS_KDE_UNIT));
    }
    /* the groups that may hold a nonzero weight (kde.tmpl.c, "Group boxes"); when the
     * reference m2 moves down below, the threshold does too, so these stay a superset */
    const uint64_t groups = use_groups ? WFN(kde_tile_groups)(xt, ld, n_points, d, q, t0, n,
                                                              dmax, gam, *m2p) : 0;
    for (;;) {
        const VREAL vm2 = SPLAT((REAL)*m2p);
        const double m2r = (double)(REAL)*m2p;
        const double theta = (m2r + (double)dmax + gam * fabs(m2r)) / (1 - gam);
        if (use_far) {
            const double b = theta - qn * (1 - gam);
            /* rounded up: b + 4 u |b| + tiny rounds to a REAL >= b (also under FTZ) */
            far.b = SPLAT((REAL)(b + 4 * FS_KDE_UNIT * fabs(b) + FS_KDE_TINY));
        }
        vmin = inf;
        acc0 = zero;
        if (with_score)
            for (ptrdiff_t k = 0; k < d; ++k)
                acc[k] = zero;
        WFN(kde_pass)(x, ld, d, q, nv, sp, spm, n_special, &nc1, &vm2, &vdmax, 1,
                      with_score, use_far, &far, use_groups, groups, &vmin, &acc0, acc);
        const double tile_min = WFN(kde_hmin)(&vmin);     /* min |x - q|^2 - m2 */
        if (-tile_min * c1d > FS_KDE_MARGIN) {
            /* a point much nearer than the reference: rescale and sum the tile again */
            const double m2_new = (double)(REAL)(*m2p + tile_min);
            const fs_kde_vdbl scale = (fs_kde_vdbl){0} + exp2((m2_new - *m2p) * c1d);
            for (ptrdiff_t k = 0; k <= (with_score ? d : 0); ++k)
                st[k] *= scale;
            *m2p = m2_new;
            continue;
        }
        st[0] += WFN(kde_widen)(&acc0);
        if (with_score)
            for (ptrdiff_t k = 0; k < d; ++k)
                st[1 + k] += WFN(kde_widen)(&acc[k]);
        return;
    }
}

/* The group mode of queries [i0, i1) (kde.tmpl.c, "Group modes"): gmode[i - i0] = 1 when
 * the box bound L of one of FS_KDE_MODE_SAMPLE groups spread over the pack (group
 * j n_groups / FS_KDE_MODE_SAMPLE) exceeds dmax, the least skip threshold, and then
 * m2[i - i0] = the first reference from the nearest box (kde_group_start). The sampled
 * boxes are copied into whole vectors once per block (the last one repeated), so the test
 * costs a few vector operations per query. A choice of speed that depends on the query and
 * the pack alone, not exact arithmetic: any rounding will do. */
FS_SIMD_TARGET __attribute__((noinline)) static void
WFN(kde_group_modes)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, const ptrdiff_t d,
                     const REAL *queries, ptrdiff_t i0, ptrdiff_t i1, REAL dmax,
                     const ptrdiff_t *selfs, unsigned char *gmode, double *m2)
{
    enum { SV = (FS_KDE_MODE_SAMPLE + NL - 1) / NL };
    const ptrdiff_t gld = FS_FN(fs_kde_group_ld)(n_points);
    const ptrdiff_t n_groups = (n_points + FS_KDE_GROUP - 1) / FS_KDE_GROUP;
    VREAL box[2 * d * SV];                /* lo of dimension k at box[k SV], hi after d SV */
    for (ptrdiff_t k = 0; k < 2 * d; ++k)
        for (ptrdiff_t j = 0; j < SV * NL; ++j) {
            const ptrdiff_t s = j < FS_KDE_MODE_SAMPLE ? j : FS_KDE_MODE_SAMPLE - 1;
            box[k * SV + j / NL][j % NL] = xt[(d + 1) * ld + k * gld
                                              + s * n_groups / FS_KDE_MODE_SAMPLE];
        }
    const VREAL zero = SPLAT(0), vdmax = SPLAT(dmax);
    for (ptrdiff_t i = i0; i < i1; ++i) {
        const REAL *q = queries + i * d;
        int any = 0;
        for (ptrdiff_t v = 0; v < SV; ++v) {
            VREAL bound = zero;
            for (ptrdiff_t k = 0; k < d; ++k) {
                const VREAL below = box[k * SV + v] - q[k];
                const VREAL above = q[k] - box[(d + k) * SV + v];
                VREAL gap = WFN(kde_max)(&below, &above);
                gap = WFN(kde_max)(&gap, &zero);
                bound += gap * gap;
            }
            any |= WFN(kde_any_below)(&vdmax, &bound);
        }
        gmode[i - i0] = (unsigned char)any;
        if (any)
            m2[i - i0] = WFN(kde_group_start)(xt, ld, n_points, d, q, selfs[i - i0]);
    }
}

/* One (query, tile) with the group boxes, not inlined into kde_block: with the group code
 * in the same function GCC kept fewer of the dense pass's sums in registers (8-22 % slower
 * at sigma = 0.5 and 3, benchmarks/README.md). One per specialised (d, with_score), each
 * with accumulators of its own (a pointer to the caller's would make them escape there). */
typedef void (*WFN(kde_gtile_fn))(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points,
                                  ptrdiff_t d, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t self,
                                  const REAL *q, REAL c1, REAL dmax, double c1d, double *m2p,
                                  fs_kde_vdbl *st, void *scratch, int with_score);
#define KDE_GTILE(D, WS)                                                                  \
    FS_SIMD_TARGET __attribute__((noinline, unused)) static void                          \
    WFN(kde_gtile_##D##_##WS)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points,           \
                              ptrdiff_t d, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t self,    \
                              const REAL *q, REAL c1, REAL dmax, double c1d, double *m2p, \
                              fs_kde_vdbl *st, void *scratch, int with_score)             \
    {                                                                                     \
        VREAL acc[D];                                                                     \
        (void)d; (void)scratch; (void)with_score;                                         \
        WFN(kde_query_tile)(xt, ld, n_points, D, t0, t1, self, q, c1, dmax, c1d, m2p, st, \
                            acc, WS, 1, 1);                                               \
    }
KDE_GTILE(1, 0) KDE_GTILE(1, 1) KDE_GTILE(2, 0) KDE_GTILE(2, 1) KDE_GTILE(3, 0)
KDE_GTILE(3, 1) KDE_GTILE(4, 0) KDE_GTILE(4, 1) KDE_GTILE(8, 0) KDE_GTILE(8, 1)
KDE_GTILE(9, 0) KDE_GTILE(9, 1)
#undef KDE_GTILE
FS_SIMD_TARGET __attribute__((noinline, unused)) static void
WFN(kde_gtile_any)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, ptrdiff_t d,
                   ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t self, const REAL *q, REAL c1,
                   REAL dmax, double c1d, double *m2p, fs_kde_vdbl *st, void *scratch,
                   int with_score)
{
    WFN(kde_query_tile)(xt, ld, n_points, d, t0, t1, self, q, c1, dmax, c1d, m2p, st,
                        (VREAL *)scratch, with_score, 1, 1);
}

/* Queries [i0, i1) against training points [t0, t1); state of query i at
 * m2[i - i0], st + (i - i0) * (d + 1). Query i takes the tile through its group boxes
 * (gtile, with scratch: d vectors of the widest body) when gmode[i - i0] and skip_far,
 * else by the pass without group code. */
KFN void WFN(kde_block_tile_d)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points,
                               const ptrdiff_t d, ptrdiff_t t0, ptrdiff_t t1,
                               const REAL *queries, ptrdiff_t i0, ptrdiff_t i1,
                               const ptrdiff_t *selfs, const unsigned char *gmode,
                               WFN(kde_gtile_fn) gtile, void *scratch, REAL c1, REAL dmax,
                               double c1d,
                               double *m2, fs_kde_vdbl *st, VREAL *acc, const int with_score,
                               const int skip_far)
{
    for (ptrdiff_t i = i0; i < i1; ++i) {
        if (KDE_GROUPS && skip_far && gmode[i - i0])
            gtile(xt, ld, n_points, d, t0, t1, selfs[i - i0], queries + i * d, c1, dmax,
                  c1d, m2 + (i - i0), st + (i - i0) * (d + 1), scratch, with_score);
        else
            WFN(kde_query_tile)(xt, ld, n_points, d, t0, t1, selfs[i - i0], queries + i * d,
                                c1, dmax, c1d, m2 + (i - i0), st + (i - i0) * (d + 1), acc,
                                with_score, skip_far, 0);
    }
}

/* Queries [i0, i1) against the whole training set, tile by tile (the tile depends only on
 * d and the vector width, see kde.tmpl.c); state of query i at m2[i - i0],
 * st + (i - i0) * (d + 1). scratch: d vectors of accumulators for the generic-d body.
 *
 * Dispatch on d so the coordinate loops of common patch sizes unroll and the accumulators
 * stay in registers. Which (dimension, mode) pairs get their own body is set by the bit
 * masks FS_KDE_SPEC_SCORE (score and log-density) and FS_KDE_SPEC_DENSITY (log-density
 * only), bit D for d = D: setup.py keeps the ones measured >= 5% faster than the generic
 * body (each costs compile time; benchmarks/README.md, section build). */
#ifndef FS_KDE_SPEC_SCORE
#define FS_KDE_SPEC_SCORE 0x31E         /* d = 1, 2, 3, 4, 8, 9 */
#endif
#ifndef FS_KDE_SPEC_DENSITY
#define FS_KDE_SPEC_DENSITY 0x31E
#endif
/* The tiles of kde_block, in a function of its own: with the group-mode call in the same
 * function GCC compiled the v4 dense pass 1-2 % slower. */
FS_SIMD_TARGET __attribute__((noinline)) static void
WFN(kde_block_tiles)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, ptrdiff_t d,
                     const REAL *queries, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t tile,
                     const ptrdiff_t *selfs, const unsigned char *gmode, REAL c1, REAL dmax,
                     double c1d, double *m2, fs_kde_vdbl *st, void *scratch, int with_score,
                     int skip_far)
{
#define FS_KDE_TILES(D, ACC, WITH_SCORE, GTILE)                                         \
    for (ptrdiff_t t0 = 0; t0 < n_points; t0 += tile)                                   \
        WFN(kde_block_tile_d)(xt, ld, n_points, D, t0,                                \
                              t0 + tile < n_points ? t0 + tile : n_points, queries, i0, i1, \
                              selfs, gmode, GTILE, scratch, c1, dmax, c1d, m2, st, ACC,   \
                              WITH_SCORE, skip_far)
#define FS_KDE_CASE(D)                                                                  \
    case D:                                                                             \
        if (((FS_KDE_SPEC_SCORE >> D) & 1) && with_score) {                             \
            VREAL acc[D];                                                               \
            FS_KDE_TILES(D, acc, 1, WFN(kde_gtile_##D##_1));                            \
            return;                                                                     \
        }                                                                               \
        if (((FS_KDE_SPEC_DENSITY >> D) & 1) && !with_score) {                          \
            VREAL acc[D];                                                               \
            FS_KDE_TILES(D, acc, 0, WFN(kde_gtile_##D##_0));                            \
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
    FS_KDE_TILES(d, (VREAL *)scratch, with_score, WFN(kde_gtile_any));
#undef FS_KDE_CASE
#undef FS_KDE_TILES
}

FS_SIMD_TARGET static void WFN(kde_block)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points,
                                          ptrdiff_t d, const REAL *queries, ptrdiff_t i0,
                                          ptrdiff_t i1, ptrdiff_t exclude_start,
                                          const ptrdiff_t *where, REAL c1, REAL dmax,
                                          double c1d, double *m2, fs_kde_vdbl *st,
                                          void *scratch, int with_score, int skip_far)
{
    /* training tile: FS_KDE_TILE_BYTES of coordinates, in whole groups of whole vectors
     * (at most 64 groups: FS_KDE_MAX_TILE_VECTORS NL <= 64 FS_KDE_GROUP) */
    const ptrdiff_t gv = FS_KDE_GROUP / NL;
    ptrdiff_t tile_vectors = FS_KDE_TILE_BYTES / (d * FS_KDE_VBYTES);
    if (tile_vectors < FS_KDE_MIN_TILE_VECTORS) tile_vectors = FS_KDE_MIN_TILE_VECTORS;
    if (tile_vectors > FS_KDE_MAX_TILE_VECTORS) tile_vectors = FS_KDE_MAX_TILE_VECTORS;
    tile_vectors = tile_vectors < gv ? gv : tile_vectors / gv * gv;
    const ptrdiff_t tile = tile_vectors * NL;
    /* packed position of each query's left-out point (-1: none); i1 - i0 <= the block */
    ptrdiff_t selfs[FS_KDE_QUERY_BLOCK];
    for (ptrdiff_t i = i0; i < i1; ++i) {
        const ptrdiff_t out = exclude_start >= 0 ? exclude_start + i : n_points;
        selfs[i - i0] = out >= n_points ? -1 : where ? where[out] : out;
    }
    /* group mode of each query (kde.tmpl.c, "Group modes"), and then its first reference
     * from the nearest box; not with skip_far off either, so both give the same sums */
    unsigned char gmode[FS_KDE_QUERY_BLOCK] = {0};
    WFN(kde_group_modes)(xt, ld, n_points, d, queries, i0, i1, dmax, selfs, gmode, m2);
    WFN(kde_block_tiles)(xt, ld, n_points, d, queries, i0, i1, tile, selfs, gmode, c1, dmax,
                         c1d, m2, st, scratch, with_score, skip_far);
}

#undef KDE_X86
#undef KDE_CREDIT
#undef KDE_MIN
#undef KDE_ANY_LT
#ifdef KDE_GROUPS_LOCAL
#undef KDE_GROUPS
#undef KDE_GROUPS_LOCAL
#endif
#undef KDE_MAX
#undef KDE_LT_BITS
#undef KFN
#undef WFN
#undef NL
#undef VREAL
#undef VREALU
#undef VUINT
#undef VMASK
#undef MASK_ELT
#undef SELECT
#undef SPLAT
#undef FS_KDE_VBYTES

/* Patch gather / scatter-add, written once for REAL = float or double (see patches.c).
 *
 * Both kernels work on "patch rows": the grid[2] patches that share (b, k, i). Inside a
 * row, patches whose columns lie fully in the image are copied with no index lookups
 * (the interior fast path, specialised for the common widths 3, 5 and 8); only the few
 * patches that touch the padding go through the column map.
 *
 * Threads: gather splits the patch rows of [start, stop) among threads (each patch is
 * written by one thread); scatter splits the *output* image rows among threads and each
 * output row sums every patch entry that lands on it, so there are no write races and the
 * summation order of every pixel does not depend on the thread count.
 */
#ifndef REAL
#error "define REAL and FS_SFX before including patches.tmpl.c"
#endif

#define FS_SIMD_TEMPLATE "patches_simd.tmpl.c"
#include "fs_simd_stamp.h"

/* Patches of one row that touch the padding: columns go through the map. */
static void FS_FN(gather_edge)(const REAL *const *rows, ptrdiff_t n_pairs, REAL *out,
                               ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t pw, ptrdiff_t sw,
                               ptrdiff_t ps, const ptrdiff_t *colmap)
{
    for (ptrdiff_t j = j0; j < j1; ++j) {
        REAL *o = out + (j - j0) * ps;
        for (ptrdiff_t p = 0; p < n_pairs; ++p)
            for (ptrdiff_t t = 0; t < pw; ++t) {
                const ptrdiff_t m = colmap[j * sw + t];
                o[p * pw + t] = m >= 0 ? rows[p][m] : (REAL)0;
            }
    }
}

/* Source row pointers of patch row (b, k, i) for every (c, r) of the patch; rows of the
 * zero padding point at `zeros` (a zero row of the image width). */
static void FS_FN(patch_row_sources)(const fs_patch_geometry *g, const REAL *x,
                                     const REAL *zeros, ptrdiff_t b, ptrdiff_t k,
                                     ptrdiff_t i, const REAL **rows)
{
    const ptrdiff_t D = g->shape[0], H = g->shape[1], W = g->shape[2];
    for (ptrdiff_t c = 0; c < g->patch[0]; ++c) {
        const ptrdiff_t z = g->map[0][k * g->stride[0] + c];
        for (ptrdiff_t r = 0; r < g->patch[1]; ++r) {
            const ptrdiff_t y = g->map[1][i * g->stride[1] + r];
            rows[c * g->patch[1] + r] =
                (z < 0 || y < 0) ? zeros : x + ((b * D + z) * H + y) * W;
        }
    }
}

/* Patch columns [lo, hi) whose window lies inside the image:
 * j*sw >= pad_before and j*sw + pw <= pad_before + W. */
static void FS_FN(interior_columns)(const fs_patch_geometry *g, ptrdiff_t *lo, ptrdiff_t *hi)
{
    const ptrdiff_t sw = g->stride[2], pw = g->patch[2], before = g->pad_before[2];
    const ptrdiff_t last = before + g->shape[2] - pw;  /* largest allowed j*sw */
    *lo = (before + sw - 1) / sw;
    *hi = last < 0 ? 0 : last / sw + 1;
    if (*hi > g->grid[2]) *hi = g->grid[2];
    if (*lo > *hi) *lo = *hi;
}

int FS_FN(fs_gather_patches)(const fs_patch_geometry *g, const REAL *x, REAL *out,
                             ptrdiff_t start, ptrdiff_t stop, int n_threads)
{
    if (n_threads < 1 || start < 0 || stop < start) return FS_E_ARG;
    if (stop == start) return FS_OK;
    const ptrdiff_t nw = g->grid[2], nh = g->grid[1], nd = g->grid[0];
    const ptrdiff_t n_pairs = g->patch[0] * g->patch[1];
    const ptrdiff_t pw = g->patch[2], sw = g->stride[2];
    const ptrdiff_t ps = n_pairs * pw;
    const ptrdiff_t row0 = start / nw, row1 = (stop - 1) / nw + 1;
    ptrdiff_t lo, hi;
    FS_FN(interior_columns)(g, &lo, &hi);

    int status = FS_OK;
    const REAL **rows_all = malloc(sizeof(*rows_all) * (size_t)(n_pairs * n_threads));
    REAL *zeros = calloc((size_t)g->shape[2], sizeof(REAL));
    if (!rows_all || !zeros) { status = FS_E_NOMEM; goto cleanup; }

#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static)
#endif
    for (ptrdiff_t row = row0; row < row1; ++row) {
        const REAL **rows = rows_all + (ptrdiff_t)FS_THREAD_ID() * n_pairs;
        const ptrdiff_t i = row % nh, k = (row / nh) % nd, b = row / (nh * nd);
        const ptrdiff_t q0 = row * nw;
        const ptrdiff_t j0 = start > q0 ? start - q0 : 0;
        const ptrdiff_t j1 = stop < q0 + nw ? stop - q0 : nw;
        REAL *o = out + (q0 + j0 - start) * ps;
        FS_FN(patch_row_sources)(g, x, zeros, b, k, i, rows);
        /* [j0, j1) = edge part [j0, a) + interior [a, c) + edge part [c, j1) */
        const ptrdiff_t a = j0 > lo ? j0 : (lo < j1 ? lo : j1);
        const ptrdiff_t c = j1 < hi ? j1 : (hi > a ? hi : a);
        if (a > j0)
            FS_FN(gather_edge)(rows, n_pairs, o, j0, a, pw, sw, ps, g->map[2]);
        if (c > a)  /* patch column j reads source columns j*sw - pad_before + t */
            FS_PICK(gather_interior)(rows, n_pairs, o + (a - j0) * ps, c - a, pw, sw, ps,
                                     a * sw - g->pad_before[2]);
        if (j1 > c)
            FS_FN(gather_edge)(rows, n_pairs, o + (c - j0) * ps, c, j1, pw, sw, ps,
                               g->map[2]);
    }

cleanup:
    free(rows_all);
    free(zeros);
    return status;
}

/* Scatter in two race-free passes.
 * 1. Accumulate the patches into a padded buffer Y holding only the padded rows that the
 *    patch rows of [start, stop) reach. Padded rows are numbered
 *    rho = (b*Dp + zz)*Hp + yy; each thread owns a contiguous slab of rho and streams the
 *    patch rows in order, adding each (c, r) slice of a patch row to its target row when
 *    that row is in its slab: every patch row is read from memory about once and reused
 *    from cache by all its target rows, and each Y entry is summed by one thread in patch
 *    order (the same order for any thread count).
 * 2. Fold Y onto the image rows (adjoint of the padding), threads over output rows. */
int FS_FN(fs_scatter_add_patches)(const fs_patch_geometry *g, const REAL *patches, REAL *out,
                                  ptrdiff_t start, ptrdiff_t stop, int n_threads)
{
    if (n_threads < 1 || start < 0 || stop < start) return FS_E_ARG;
    if (stop == start) return FS_OK;
    const ptrdiff_t D = g->shape[0], H = g->shape[1], W = g->shape[2];
    const ptrdiff_t Dp = g->padded[0], Hp = g->padded[1], Wp = g->padded[2];
    const ptrdiff_t nw = g->grid[2], nh = g->grid[1], nd = g->grid[0];
    const ptrdiff_t pd = g->patch[0], ph = g->patch[1], pw = g->patch[2];
    const ptrdiff_t sd = g->stride[0], sh = g->stride[1], sw = g->stride[2];
    const ptrdiff_t ps = pd * ph * pw;
    const ptrdiff_t prow0 = start / nw, prow1 = (stop - 1) / nw + 1;   /* patch rows */

    /* padded rows reached: from the first row of the first patch row to the last row of
     * the last patch row (targets grow with the patch row index) */
#define FS_TARGET(prow, c, r) \
    ((((prow) / (nh * nd)) * Dp + ((prow) / nh % nd) * sd + (c)) * Hp + \
     ((prow) % nh) * sh + (r))
    const ptrdiff_t rho0 = FS_TARGET(prow0, 0, 0);
    const ptrdiff_t rho1 = FS_TARGET(prow1 - 1, pd - 1, ph - 1) + 1;
    const ptrdiff_t n_rho = rho1 - rho0;
    const ptrdiff_t b0 = prow0 / (nh * nd), b1 = (prow1 - 1) / (nh * nd) + 1;

    int status = FS_OK;
    REAL *Y = malloc(sizeof(REAL) * (size_t)(n_rho * Wp));
    if (!Y) { status = FS_E_NOMEM; goto cleanup; }

#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        const ptrdiff_t tid = FS_THREAD_ID(), nt = FS_TEAM_SIZE();
        const ptrdiff_t lo = rho0 + n_rho * tid / nt, hi = rho0 + n_rho * (tid + 1) / nt;
        if (hi > lo) memset(Y + (lo - rho0) * Wp, 0, sizeof(REAL) * (size_t)((hi - lo) * Wp));
        for (ptrdiff_t prow = prow0; prow < prow1; ++prow) {
            if (FS_TARGET(prow, pd - 1, ph - 1) < lo) continue;
            if (FS_TARGET(prow, 0, 0) >= hi) break;
            const ptrdiff_t q0 = prow * nw;
            const ptrdiff_t j0 = start > q0 ? start - q0 : 0;
            const ptrdiff_t j1 = stop < q0 + nw ? stop - q0 : nw;
            const REAL *P = patches + (q0 + j0 - start) * ps;
            for (ptrdiff_t c = 0; c < pd; ++c)
                for (ptrdiff_t r = 0; r < ph; ++r) {
                    const ptrdiff_t rho = FS_TARGET(prow, c, r);
                    if (rho < lo || rho >= hi) continue;
                    FS_PICK(scatter_patch_row)(P + (c * ph + r) * pw,
                                               Y + (rho - rho0) * Wp + j0 * sw,
                                               j1 - j0, pw, sw, ps);
                }
        }
    }
#undef FS_TARGET

    /* fold: output row (b, z, y) collects the padded rows (b, zz, yy) that map to it */
    {
        const ptrdiff_t row0 = b0 * D * H, row1 = b1 * D * H;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static)
#endif
        for (ptrdiff_t row = row0; row < row1; ++row) {
            const ptrdiff_t y = row % H, z = (row / H) % D, b = row / (H * D);
            REAL *o = out + row * W;
            for (ptrdiff_t iz = g->inv_ptr[0][z]; iz < g->inv_ptr[0][z + 1]; ++iz) {
                const ptrdiff_t zz = g->inv_idx[0][iz];
                for (ptrdiff_t iy = g->inv_ptr[1][y]; iy < g->inv_ptr[1][y + 1]; ++iy) {
                    const ptrdiff_t rho = (b * Dp + zz) * Hp + g->inv_idx[1][iy];
                    if (rho < rho0 || rho >= rho1) continue;
                    FS_PICK(fold_row)(Y + (rho - rho0) * Wp, o, g->map[2], Wp,
                                      g->pad_before[2], W);
                }
            }
        }
    }

cleanup:
    free(Y);
    return status;
}


/* The patch kernels' inner loops, one SIMD body (see patches.tmpl.c): patches.tmpl.c
 * stamps this file once per body of the extension through fs_simd_stamp.h and calls the
 * non-inline functions through FS_PICK; the FS_INLINE helpers are compiled into them. */
#ifndef FS_SIMD_SFX
#error "stamp patches_simd.tmpl.c from patches.tmpl.c through fs_simd_stamp.h"
#endif

/* out[j*ps + p*pw + t] = rows[p][offset + j*sw + t] for j < n, p < n_pairs, t < pw.
 * Inlined into gather_interior with constant pw so the copy is unrolled and vectorised. */
FS_INLINE FS_SIMD_TARGET
void FS_LFN(copy_patches)(const REAL *const *rows, ptrdiff_t n_pairs,
                          REAL *FS_RESTRICT out, ptrdiff_t n, ptrdiff_t pw,
                          ptrdiff_t sw, ptrdiff_t ps, ptrdiff_t offset)
{
    for (ptrdiff_t j = 0; j < n; ++j) {
        REAL *FS_RESTRICT o = out + j * ps;
        for (ptrdiff_t p = 0; p < n_pairs; ++p) {
            const REAL *s = rows[p] + offset + j * sw;
            for (ptrdiff_t t = 0; t < pw; ++t)
                o[p * pw + t] = s[t];
        }
    }
}

/* acc[j*sw + t] += P[j*ps + t] for j in [0, n), t < pw; stride-1 case sums in registers:
 * acc[u] += sum_t P[(u - t)*ps + t]. */
FS_INLINE FS_SIMD_TARGET
void FS_LFN(add_patch_row)(const REAL *FS_RESTRICT P, REAL *FS_RESTRICT acc,
                           ptrdiff_t n, ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t ps)
{
    if (sw == 1 && n >= pw) {
        /* head u < pw - 1 and tail u >= n: partial sums */
        for (ptrdiff_t u = 0; u < pw - 1; ++u) {
            REAL s = 0;
            for (ptrdiff_t t = 0; t <= u; ++t) s += P[(u - t) * ps + t];
            acc[u] += s;
        }
        for (ptrdiff_t u = pw - 1; u < n; ++u) {
            REAL s = 0;
            for (ptrdiff_t t = 0; t < pw; ++t) s += P[(u - t) * ps + t];
            acc[u] += s;
        }
        for (ptrdiff_t u = n; u < n + pw - 1; ++u) {
            REAL s = 0;
            for (ptrdiff_t t = u - n + 1; t < pw; ++t) s += P[(u - t) * ps + t];
            acc[u] += s;
        }
        return;
    }
    for (ptrdiff_t j = 0; j < n; ++j)
        for (ptrdiff_t t = 0; t < pw; ++t)
            acc[j * sw + t] += P[j * ps + t];
}

FS_SIMD_TARGET
static void FS_LFN(gather_interior)(const REAL *const *rows, ptrdiff_t n_pairs,
                                    REAL *out, ptrdiff_t n, ptrdiff_t pw,
                                    ptrdiff_t sw, ptrdiff_t ps, ptrdiff_t offset)
{
    switch (pw) {
    case 3: FS_LFN(copy_patches)(rows, n_pairs, out, n, 3, sw, ps, offset); break;
    case 5: FS_LFN(copy_patches)(rows, n_pairs, out, n, 5, sw, ps, offset); break;
    case 8: FS_LFN(copy_patches)(rows, n_pairs, out, n, 8, sw, ps, offset); break;
    default: FS_LFN(copy_patches)(rows, n_pairs, out, n, pw, sw, ps, offset); break;
    }
}

FS_SIMD_TARGET
static void FS_LFN(scatter_patch_row)(const REAL *P, REAL *acc, ptrdiff_t n,
                                      ptrdiff_t pw, ptrdiff_t sw, ptrdiff_t ps)
{
    switch (pw) {
    case 3: FS_LFN(add_patch_row)(P, acc, n, 3, sw, ps); break;
    case 5: FS_LFN(add_patch_row)(P, acc, n, 5, sw, ps); break;
    case 8: FS_LFN(add_patch_row)(P, acc, n, 8, sw, ps); break;
    default: FS_LFN(add_patch_row)(P, acc, n, pw, sw, ps); break;
    }
}

/* out_row[m] += acc[u] for every padded column u with m = colmap[u] >= 0; the interior
 * columns [before, before + W) map to m = u - before and are added as one contiguous run. */
FS_SIMD_TARGET
static void FS_LFN(fold_row)(const REAL *FS_RESTRICT acc, REAL *FS_RESTRICT o,
                             const ptrdiff_t *colmap, ptrdiff_t Wp,
                             ptrdiff_t before, ptrdiff_t W)
{
    for (ptrdiff_t u = 0; u < before; ++u)
        if (colmap[u] >= 0) o[colmap[u]] += acc[u];
    const REAL *a = acc + before;
    for (ptrdiff_t m = 0; m < W; ++m) o[m] += a[m];
    for (ptrdiff_t u = before + W; u < Wp; ++u)
        if (colmap[u] >= 0) o[colmap[u]] += acc[u];
}

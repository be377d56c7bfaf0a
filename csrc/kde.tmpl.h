/* Declarations stamped once per REAL (see kde.h). */
#ifndef REAL
#error "define REAL and FS_SFX before including kde.tmpl.h"
#endif

/* Smallest leading dimension >= n_points that is a whole number of SIMD vectors. */
ptrdiff_t FS_FN(fs_kde_leading_dim)(ptrdiff_t n_points);

/* Groups of the pack: FS_KDE_GROUP consecutive packed points each; their boxes are rows
 * of fs_kde_group_ld(n_points) values. */
ptrdiff_t FS_FN(fs_kde_group_ld)(ptrdiff_t n_points);

/* REALs of a packed training set (fs_kde_pack's out), ld = fs_kde_leading_dim(n_points). */
ptrdiff_t FS_FN(fs_kde_packed_size)(ptrdiff_t n_points, ptrdiff_t dim);

/* out (fs_kde_packed_size(n_points, dim) REALs): packed point t is row order[t] of X
 * (order: a permutation of [0, n_points), or NULL for the identity), and
 *   out[k*ld + t] = X[order[t]*dim + k] for k < dim, t < n_points (0 for n_points <= t < ld),
 *   out[dim*ld + t] = |X[order[t], :]|^2 (summed in double, rounded once; 0 past n_points),
 * then the boxes of the groups of FS_KDE_GROUP packed points, gld = fs_kde_group_ld:
 *   lo[k*gld + g], hi[k*gld + g] (lo at out + (dim + 1)*ld, hi dim*gld after it): the range
 *   of coordinate k over the points of group g (+inf / -inf past the last group).
 * X: (n_points, dim) C order. The kernel is exact for any order; it is fastest when the
 * groups are spatially tight (kde.tmpl.c, "Group boxes"). */
int FS_FN(fs_kde_pack)(const REAL *X, ptrdiff_t n_points, ptrdiff_t dim,
                       const ptrdiff_t *order, REAL *out, ptrdiff_t ld);

/* For each query i < n_queries (rows of queries, (n_queries, dim)):
 *   score[i, :]      = grad log q(queries[i])   (skipped when score is NULL)
 *   log_density[i]   = log q(queries[i])        (skipped when log_density is NULL)
 * against the packed training set xt (dim + 1, ld) of n_points points (fs_kde_pack) and
 * bandwidth sigma.
 * exclude_start >= 0: query i leaves out training point exclude_start + i (a row of the X
 * given to fs_kde_pack, at packed position where[exclude_start + i], or exclude_start + i
 * when where is NULL) when that is < n_points, and then q uses T' = n_points - 1;
 * exclude_start < 0: nothing is left out.
 * Needs n_points >= 1 (>= 2 when leaving one out), sigma > 0, and every |x_t - q_i|^2 finite
 * in REAL (the caller checks all of it). skip_far = 1 skips the groups and training
 * vectors that rounding-safe bounds from the group boxes and the norm row place beyond the
 * exp2 cut-off (kde.tmpl.c, "Group boxes", "Far vectors"); 0 evaluates every distance: the
 * results are identical either way. Threads
 * split the queries; results do not depend on n_threads. */
int FS_FN(fs_kde_score)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, ptrdiff_t dim,
                        const REAL *queries, ptrdiff_t n_queries, double sigma,
                        ptrdiff_t exclude_start, const ptrdiff_t *where, REAL *score,
                        REAL *log_density, int skip_far, int n_threads);

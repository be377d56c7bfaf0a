/* Declarations stamped once per REAL (see kde.h). */
#ifndef REAL
#error "define REAL and FS_SFX before including kde.tmpl.h"
#endif

/* Smallest leading dimension >= n_points that is a whole number of SIMD vectors. */
ptrdiff_t FS_FN(fs_kde_leading_dim)(ptrdiff_t n_points);

/* out: (dim + 1, ld), out[k*ld + t] = X[t*dim + k] for k < dim, t < n_points, and the
 * squared norms out[dim*ld + t] = |X[t, :]|^2 (summed in double, rounded once); 0 for
 * n_points <= t < ld. X: (n_points, dim) C order. */
int FS_FN(fs_kde_pack)(const REAL *X, ptrdiff_t n_points, ptrdiff_t dim, REAL *out,
                       ptrdiff_t ld);

/* For each query i < n_queries (rows of queries, (n_queries, dim)):
 *   score[i, :]      = grad log q(queries[i])   (skipped when score is NULL)
 *   log_density[i]   = log q(queries[i])        (skipped when log_density is NULL)
 * against the packed training set xt (dim + 1, ld) of n_points points (fs_kde_pack) and
 * bandwidth sigma.
 * exclude_start >= 0: query i leaves out training point exclude_start + i when that is
 * < n_points, and then q uses T' = n_points - 1; exclude_start < 0: nothing is left out.
 * Needs n_points >= 1 (>= 2 when leaving one out), sigma > 0, and every |x_t - q_i|^2 finite
 * in REAL (the caller checks all of it). skip_far = 1 skips the training vectors that a
 * rounding-safe bound from the norm row places beyond the exp2 cut-off (kde.tmpl.c, "Far
 * vectors"); 0 evaluates every distance: the results are identical either way. Threads
 * split the queries; results do not depend on n_threads. */
int FS_FN(fs_kde_score)(const REAL *xt, ptrdiff_t ld, ptrdiff_t n_points, ptrdiff_t dim,
                        const REAL *queries, ptrdiff_t n_queries, double sigma,
                        ptrdiff_t exclude_start, REAL *score, REAL *log_density,
                        int skip_far, int n_threads);

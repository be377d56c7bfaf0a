/* Gaussian kernel density estimate: score and log-density, streamed over the training set.
 *
 *   q(x)     = 1/T' sum_t N(x; x_t, sigma^2 I)             (T' = T, or T - 1 leaving one out)
 *   log q(x) = LSE_t(-|x - x_t|^2 / (2 sigma^2)) - log T' - d/2 log(2 pi sigma^2)
 *   s(x)     = grad log q(x) = sum_t w_t (x_t - x) / (sigma^2 sum_t w_t),
 *              w_t = exp(-|x - x_t|^2 / (2 sigma^2))
 *
 * Layout: the training set is packed once (fs_kde_pack_*) into a structure of arrays,
 * xt[k * ld + t] = X[t, k], t < T, zero padded up to ld = fs_kde_leading_dim_*(T), so the
 * kernel reads whole SIMD vectors of training points, plus a row xt[d * ld + t] = |x_t|^2
 * (the far-point bound of kde.tmpl.c). Queries are plain rows (N, d).
 *
 * Memory: O(N d + T d); the N x T kernel matrix is never formed. See kde.tmpl.c for the
 * algorithm (tiling, online log-sum-exp, SIMD exp, precision).
 */
#ifndef FS_KDE_H
#define FS_KDE_H

#include "fs_common.h"

/* Byte alignment the packed training set should have (the kernel is correct for any
 * alignment of its element type, fastest at this one). */
#define FS_KDE_ALIGN 64

/* Points per group of the pack: each group has a box (fs_kde_pack), which the kernel
 * tests before any of its points (kde.tmpl.c, "Group boxes"). */
#define FS_KDE_GROUP 32

#define FS_TEMPLATE "kde.tmpl.h"
#include "fs_stamp.h"

#endif /* FS_KDE_H */

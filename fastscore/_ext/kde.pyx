# Bindings of csrc/kde_f32.c and csrc/kde_f64.c: memoryviews in, GIL released, status to
# exception.
# Arrays come from fastscore.kde, already validated.

from cython cimport floating

from ._common cimport check_status
from ._csrc cimport (FS_KDE_ALIGN, FS_KDE_GROUP, fs_kde_leading_dim_f32, fs_kde_leading_dim_f64,
                     fs_kde_pack_f32, fs_kde_pack_f64, fs_kde_packed_size_f32,
                     fs_kde_packed_size_f64, fs_kde_score_f32, fs_kde_score_f64)

include "_simd.pxi"

ALIGN = FS_KDE_ALIGN
GROUP = FS_KDE_GROUP


def leading_dim(Py_ssize_t n_points, bint single):
    """Padded length of one coordinate row of the packed training set."""
    return fs_kde_leading_dim_f32(n_points) if single else fs_kde_leading_dim_f64(n_points)


def packed_size(Py_ssize_t n_points, Py_ssize_t dim, bint single):
    """Elements of the packed training set (coordinates, norms, group boxes)."""
    return (fs_kde_packed_size_f32(n_points, dim) if single
            else fs_kde_packed_size_f64(n_points, dim))


def pack(const floating[:, ::1] X, const Py_ssize_t[::1] order, floating[::1] out,
         Py_ssize_t ld):
    """out: packed_size(...) elements; packed point t is row order[t] of X."""
    cdef int status
    with nogil:
        if floating is float:
            status = fs_kde_pack_f32(&X[0, 0], X.shape[0], X.shape[1], &order[0], &out[0], ld)
        else:
            status = fs_kde_pack_f64(&X[0, 0], X.shape[0], X.shape[1], &order[0], &out[0], ld)
    check_status(status, "fs_kde_pack")


def score(const floating[::1] xt, Py_ssize_t ld, Py_ssize_t n_points,
          const floating[:, ::1] queries, double sigma, Py_ssize_t exclude_start,
          const Py_ssize_t[::1] where, floating[:, ::1] score_out,
          floating[::1] log_density_out, bint skip_far, int n_threads):
    """score_out / log_density_out may be None (not computed); xt from pack, where[i] the
    packed position of row i of X."""
    cdef int status
    cdef floating *s = NULL
    cdef floating *l = NULL
    if score_out is not None:
        s = &score_out[0, 0]
    if log_density_out is not None:
        l = &log_density_out[0]
    with nogil:
        if floating is float:
            status = fs_kde_score_f32(&xt[0], ld, n_points, queries.shape[1], &queries[0, 0],
                                      queries.shape[0], sigma, exclude_start, &where[0],
                                      s, l, skip_far, n_threads)
        else:
            status = fs_kde_score_f64(&xt[0], ld, n_points, queries.shape[1], &queries[0, 0],
                                      queries.shape[0], sigma, exclude_start, &where[0],
                                      s, l, skip_far, n_threads)
    check_status(status, "fs_kde_score")

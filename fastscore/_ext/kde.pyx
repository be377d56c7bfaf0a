# Bindings of csrc/kde_f32.c and csrc/kde_f64.c: memoryviews in, GIL released, status to
# exception.
# Arrays come from fastscore.kde, already validated.

from cython cimport floating

from ._common cimport check_status
from ._csrc cimport (FS_KDE_ALIGN, fs_kde_leading_dim_f32, fs_kde_leading_dim_f64,
                     fs_kde_pack_f32, fs_kde_pack_f64, fs_kde_score_f32, fs_kde_score_f64)

include "_simd.pxi"

ALIGN = FS_KDE_ALIGN


def leading_dim(Py_ssize_t n_points, bint single):
    """Padded length of one coordinate row of the packed training set."""
    return fs_kde_leading_dim_f32(n_points) if single else fs_kde_leading_dim_f64(n_points)


def pack(const floating[:, ::1] X, floating[:, ::1] out):
    cdef int status
    with nogil:
        if floating is float:
            status = fs_kde_pack_f32(&X[0, 0], X.shape[0], X.shape[1], &out[0, 0],
                                     out.shape[1])
        else:
            status = fs_kde_pack_f64(&X[0, 0], X.shape[0], X.shape[1], &out[0, 0],
                                     out.shape[1])
    check_status(status, "fs_kde_pack")


def score(const floating[:, ::1] xt, Py_ssize_t n_points, const floating[:, ::1] queries,
          double sigma, Py_ssize_t exclude_start, floating[:, ::1] score_out,
          floating[::1] log_density_out, bint skip_far, int n_threads):
    """score_out / log_density_out may be None (not computed); xt from pack (d + 1 rows)."""
    cdef int status
    cdef floating *s = NULL
    cdef floating *l = NULL
    if score_out is not None:
        s = &score_out[0, 0]
    if log_density_out is not None:
        l = &log_density_out[0]
    with nogil:
        if floating is float:
            status = fs_kde_score_f32(&xt[0, 0], xt.shape[1], n_points, xt.shape[0] - 1,
                                      &queries[0, 0], queries.shape[0], sigma, exclude_start,
                                      s, l, skip_far, n_threads)
        else:
            status = fs_kde_score_f64(&xt[0, 0], xt.shape[1], n_points, xt.shape[0] - 1,
                                      &queries[0, 0], queries.shape[0], sigma, exclude_start,
                                      s, l, skip_far, n_threads)
    check_status(status, "fs_kde_score")

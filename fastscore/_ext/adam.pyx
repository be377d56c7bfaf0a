# Bindings of csrc/adam.c: memoryviews in, GIL released, status to exception.
# Arrays and hyper-parameters come from fastscore.optim, already validated.

from cython cimport floating

from ._common cimport check_status
from ._csrc cimport (fs_adam_hyper, fs_adam_step_f32, fs_adam_step_f64, fs_ema_update_f32,
                     fs_ema_update_f64, fs_scale_f32, fs_scale_f64, fs_sum_squares_f32,
                     fs_sum_squares_f64)

include "_simd.pxi"


def adam_step(floating[::1] param, const floating[::1] grad, floating[::1] m,
              floating[::1] v, double beta1, double beta2, double one_minus_beta1,
              double one_minus_beta2, double step_size, double inv_sqrt_bc2, double eps,
              double decay_factor, double l2, bint decoupled, int n_threads):
    cdef fs_adam_hyper h
    cdef int status
    cdef Py_ssize_t n = param.shape[0]
    h.beta1 = beta1
    h.beta2 = beta2
    h.one_minus_beta1 = one_minus_beta1
    h.one_minus_beta2 = one_minus_beta2
    h.step_size = step_size
    h.inv_sqrt_bc2 = inv_sqrt_bc2
    h.eps = eps
    h.decay_factor = decay_factor
    h.l2 = l2
    h.decoupled = decoupled
    with nogil:
        if floating is float:
            status = fs_adam_step_f32(&param[0], &grad[0], &m[0], &v[0], n, &h, n_threads)
        else:
            status = fs_adam_step_f64(&param[0], &grad[0], &m[0], &v[0], n, &h, n_threads)
    check_status(status, "fs_adam_step")


def ema_update(floating[::1] avg, const floating[::1] param, double decay, int n_threads):
    cdef int status
    cdef Py_ssize_t n = avg.shape[0]
    with nogil:
        if floating is float:
            status = fs_ema_update_f32(&avg[0], &param[0], n, decay, n_threads)
        else:
            status = fs_ema_update_f64(&avg[0], &param[0], n, decay, n_threads)
    check_status(status, "fs_ema_update")


def sum_squares(const floating[::1] x, int n_threads):
    cdef int status
    cdef double out = 0.0
    cdef Py_ssize_t n = x.shape[0]
    with nogil:
        if floating is float:
            status = fs_sum_squares_f32(&x[0], n, &out, n_threads)
        else:
            status = fs_sum_squares_f64(&x[0], n, &out, n_threads)
    check_status(status, "fs_sum_squares")
    return out


def scale(floating[::1] x, double factor, int n_threads):
    cdef int status
    cdef Py_ssize_t n = x.shape[0]
    with nogil:
        if floating is float:
            status = fs_scale_f32(&x[0], n, factor, n_threads)
        else:
            status = fs_scale_f64(&x[0], n, factor, n_threads)
    check_status(status, "fs_scale")

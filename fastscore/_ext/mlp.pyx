# Bindings of csrc/mlp.c: memoryviews in, GIL released, status to exception.
# Arrays come from fastscore.nn, already validated and allocated; optional buffers are
# passed as None. The BLAS gemm is scipy's (cython_blas); fastscore.nn pins that BLAS to
# one thread around these calls, since the kernels parallelise over row tiles themselves.

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

include "_status.pxi"

cdef extern from "mlp.h":
    int FS_MLP_MAX_LAYERS
    int FS_MLP_PROFILE_PHASES
    ctypedef void (*fs_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *,
                                 int *, float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*fs_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *,
                                 int *, double *, int *, double *, double *, int *) noexcept nogil
    ctypedef struct fs_mlp_net:
        int n_layers
        Py_ssize_t n_params
        Py_ssize_t w_offset[64]
        Py_ssize_t b_offset[64]
        Py_ssize_t act_offset[66]
        Py_ssize_t deriv_offset[64]
        Py_ssize_t deriv_total
        Py_ssize_t bias_total
        Py_ssize_t max_width
        double *profile

    int fs_mlp_init(fs_mlp_net *net, int n_layers, const Py_ssize_t *widths,
                    const int *activations, double negative_slope, fs_sgemm_fn sgemm,
                    fs_dgemm_fn dgemm)
    Py_ssize_t fs_mlp_forward_scratch(const fs_mlp_net *net, Py_ssize_t tile, int n_threads)
    Py_ssize_t fs_mlp_backward_scratch(const fs_mlp_net *net, Py_ssize_t tile, int n_threads)
    Py_ssize_t fs_mlp_backward_dscratch(const fs_mlp_net *net, int n_slots)
    Py_ssize_t fs_mlp_jacobian_scratch(const fs_mlp_net *net, Py_ssize_t tile, int n_dirs,
                                       int n_threads)

    int fs_mlp_forward_f32(const fs_mlp_net *net, const float *params, const float *x,
                           Py_ssize_t n, float *out, float *acts, float *derivs,
                           float *scratch, Py_ssize_t tile, int n_threads) nogil
    int fs_mlp_forward_f64(const fs_mlp_net *net, const double *params, const double *x,
                           Py_ssize_t n, double *out, double *acts, double *derivs,
                           double *scratch, Py_ssize_t tile, int n_threads) nogil
    int fs_mlp_backward_f32(const fs_mlp_net *net, const float *params, const float *acts,
                            const float *derivs, Py_ssize_t n, const float *grad_out,
                            const float *row_scale, float *grad, float *partials,
                            int n_slots, int accumulate, float *input_grad, float *scratch,
                            double *dscratch, Py_ssize_t tile, int n_threads) nogil
    int fs_mlp_backward_f64(const fs_mlp_net *net, const double *params, const double *acts,
                            const double *derivs, Py_ssize_t n, const double *grad_out,
                            const double *row_scale, double *grad, double *partials,
                            int n_slots, int accumulate, double *input_grad,
                            double *scratch, double *dscratch, Py_ssize_t tile,
                            int n_threads) nogil
    int fs_mlp_jacobian_diagonal_f32(const fs_mlp_net *net, const float *params,
                                     const float *x, Py_ssize_t n, int n_dirs, float *out,
                                     float *diag, float *scratch, Py_ssize_t tile,
                                     int n_threads) nogil
    int fs_mlp_jacobian_diagonal_f64(const fs_mlp_net *net, const double *params,
                                     const double *x, Py_ssize_t n, int n_dirs, double *out,
                                     double *diag, double *scratch, Py_ssize_t tile,
                                     int n_threads) nogil
    int fs_mlp_activation_f32(int code, double negative_slope, const float *z, Py_ssize_t n,
                              float *a, float *d) nogil
    int fs_mlp_activation_f64(int code, double negative_slope, const double *z,
                              Py_ssize_t n, double *a, double *d) nogil


MAX_LAYERS = FS_MLP_MAX_LAYERS


PROFILE_PHASES = FS_MLP_PROFILE_PHASES


cdef class Net:
    """C description of an MLP architecture and of its buffer layout."""
    cdef fs_mlp_net net
    cdef object _profile

    def __init__(self, widths, activations, double negative_slope):
        cdef Py_ssize_t w[65]
        cdef int a[64]
        cdef int i, n_layers = len(activations)
        if n_layers < 1 or n_layers > FS_MLP_MAX_LAYERS or len(widths) != n_layers + 1:
            raise ValueError("Net: inconsistent widths/activations (validation bug)")
        for i in range(n_layers + 1):
            w[i] = widths[i]
        for i in range(n_layers):
            a[i] = activations[i]
        check_status(fs_mlp_init(&self.net, n_layers, w, a, negative_slope,
                                 <fs_sgemm_fn>sgemm, <fs_dgemm_fn>dgemm), "fs_mlp_init")

    @property
    def n_params(self):
        return self.net.n_params

    def layout(self):
        """Per layer (weight offset, bias offset) into the flat parameter buffer."""
        return [(self.net.w_offset[l], self.net.b_offset[l])
                for l in range(self.net.n_layers)]

    @property
    def act_total(self):
        """Row length of the stored activations (sum of all widths)."""
        return self.net.act_offset[self.net.n_layers + 1]

    @property
    def deriv_total(self):
        return self.net.deriv_total

    def set_profile(self, double[::1] profile):
        """Accumulate kernel timings into `profile` (n_threads * PROFILE_PHASES * n_layers
        doubles), or stop with None."""
        self._profile = profile
        self.net.profile = NULL if profile is None else &profile[0]

    def forward_scratch(self, Py_ssize_t tile, int n_threads):
        return fs_mlp_forward_scratch(&self.net, tile, n_threads)

    def backward_scratch(self, Py_ssize_t tile, int n_threads):
        return fs_mlp_backward_scratch(&self.net, tile, n_threads)

    def backward_dscratch(self, int n_slots):
        return fs_mlp_backward_dscratch(&self.net, n_slots)

    def jacobian_scratch(self, Py_ssize_t tile, int n_dirs, int n_threads):
        return fs_mlp_jacobian_scratch(&self.net, tile, n_dirs, n_threads)


cdef inline floating *ptr(floating[::1] a) noexcept nogil:
    return NULL if a is None or a.shape[0] == 0 else &a[0]


cdef inline floating *ptr2(floating[:, ::1] a) noexcept nogil:
    return NULL if a is None or a.shape[0] == 0 else &a[0, 0]


def forward(Net net, const floating[::1] params, const floating[:, ::1] x,
            floating[:, ::1] out, floating[::1] acts, floating[::1] derivs,
            floating[::1] scratch, Py_ssize_t tile, int n_threads):
    cdef int status
    cdef Py_ssize_t n = x.shape[0]
    cdef floating *p_out = ptr2(out)
    cdef floating *p_acts = ptr(acts)
    cdef floating *p_derivs = ptr(derivs)
    cdef floating *p_scratch = ptr(scratch)
    with nogil:
        if floating is float:
            status = fs_mlp_forward_f32(&net.net, &params[0], &x[0, 0], n, p_out, p_acts,
                                        p_derivs, p_scratch, tile, n_threads)
        else:
            status = fs_mlp_forward_f64(&net.net, &params[0], &x[0, 0], n, p_out, p_acts,
                                        p_derivs, p_scratch, tile, n_threads)
    check_status(status, "fs_mlp_forward")


def backward(Net net, const floating[::1] params, const floating[::1] acts,
             const floating[::1] derivs, const floating[:, ::1] grad_out,
             const floating[::1] row_scale, floating[::1] grad, floating[::1] partials,
             int n_slots, bint accumulate, floating[:, ::1] input_grad,
             floating[::1] scratch, double[::1] dscratch, Py_ssize_t tile, int n_threads):
    cdef int status
    cdef Py_ssize_t n = grad_out.shape[0]
    cdef const floating *p_derivs = NULL
    cdef const floating *p_scale = NULL
    if derivs is not None and derivs.shape[0] > 0:
        p_derivs = &derivs[0]
    if row_scale is not None:
        p_scale = &row_scale[0]
    cdef floating *p_partials = ptr(partials)
    cdef floating *p_input_grad = ptr2(input_grad)
    with nogil:
        if floating is float:
            status = fs_mlp_backward_f32(&net.net, &params[0], &acts[0], p_derivs, n,
                                         &grad_out[0, 0], p_scale, &grad[0], p_partials,
                                         n_slots, accumulate, p_input_grad, &scratch[0],
                                         &dscratch[0], tile, n_threads)
        else:
            status = fs_mlp_backward_f64(&net.net, &params[0], &acts[0], p_derivs, n,
                                         &grad_out[0, 0], p_scale, &grad[0], p_partials,
                                         n_slots, accumulate, p_input_grad, &scratch[0],
                                         &dscratch[0], tile, n_threads)
    check_status(status, "fs_mlp_backward")


def jacobian_diagonal(Net net, const floating[::1] params, const floating[:, ::1] x,
                      int n_dirs, floating[:, ::1] out, floating[:, ::1] diag,
                      floating[::1] scratch, Py_ssize_t tile, int n_threads):
    cdef int status
    cdef Py_ssize_t n = x.shape[0]
    cdef floating *p_out = ptr2(out)
    with nogil:
        if floating is float:
            status = fs_mlp_jacobian_diagonal_f32(&net.net, &params[0], &x[0, 0], n, n_dirs,
                                                  p_out, &diag[0, 0], &scratch[0], tile,
                                                  n_threads)
        else:
            status = fs_mlp_jacobian_diagonal_f64(&net.net, &params[0], &x[0, 0], n, n_dirs,
                                                  p_out, &diag[0, 0], &scratch[0], tile,
                                                  n_threads)
    check_status(status, "fs_mlp_jacobian_diagonal")


def activation(int code, double negative_slope, const floating[::1] z, floating[::1] a,
               floating[::1] d):
    cdef int status
    cdef floating *p_d = ptr(d)
    with nogil:
        if floating is float:
            status = fs_mlp_activation_f32(code, negative_slope, &z[0], z.shape[0], &a[0],
                                           p_d)
        else:
            status = fs_mlp_activation_f64(code, negative_slope, &z[0], z.shape[0], &a[0],
                                           p_d)
    check_status(status, "fs_mlp_activation")

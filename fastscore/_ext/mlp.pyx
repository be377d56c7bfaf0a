# Bindings of csrc/mlp.c: memoryviews in, GIL released, status to exception.
# Arrays come from fastscore.nn, already validated and allocated; optional buffers are
# passed as None. The BLAS gemm is scipy's (cython_blas); fastscore.nn pins that BLAS to
# one thread around these calls, since the kernels parallelise over row tiles themselves.

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

from ._common cimport check_status
from ._csrc cimport (FS_MLP_GEMM_X86, FS_MLP_MAX_LAYERS, FS_SIMD_BASELINE, FS_MLP_PROFILE_PHASES, fs_dgemm_fn,
                     fs_mlp_activation_f32, fs_mlp_activation_f64,
                     fs_mlp_backward_dscratch, fs_mlp_backward_f32,
                     fs_mlp_backward_f64, fs_mlp_backward_scratch, fs_mlp_forward_f32,
                     fs_mlp_forward_f64, fs_mlp_forward_scratch, fs_mlp_init,
                     fs_mlp_jacobian_diagonal_f32, fs_mlp_jacobian_diagonal_f64,
                     fs_mlp_jacobian_scratch, fs_mlp_net, fs_mlp_pack_f32, fs_mlp_pack_f64,
                     fs_mlp_pack_layout, fs_mlp_pack_layout_of, fs_mlp_pack_matches_f32,
                     fs_mlp_pack_matches_f64, fs_mlp_pack_size, fs_mlp_profile_enabled,
                     fs_sgemm_fn, fs_simd_level)

include "_simd.pxi"


def gemm_clone():
    """The body of the layers' matrix products: the packed micro-kernel of the current level
    ("x86-64-v4" / "x86-64-v3", which need not be `simd_clone()`, the elementwise body), or
    "BLAS" (baseline level, and builds other than GCC on x86-64: sgemm / dgemm)."""
    level = fs_simd_level()
    if not FS_MLP_GEMM_X86 or level == FS_SIMD_BASELINE:
        return "BLAS"
    return _LEVEL_NAMES[level]

MAX_LAYERS = FS_MLP_MAX_LAYERS
PROFILE_PHASES = FS_MLP_PROFILE_PHASES
#: True when the kernels were built with their per-layer timers (FASTSCORE_MLP_PROFILE=1).
PROFILE_ENABLED = fs_mlp_profile_enabled() != 0


cdef class Net:
    """C description of an MLP architecture and of its buffer layout."""
    cdef fs_mlp_net net
    cdef object _profile

    def __init__(self, widths, activations, double negative_slope):
        cdef Py_ssize_t w[FS_MLP_MAX_LAYERS + 1]
        cdef int a[FS_MLP_MAX_LAYERS]
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
        doubles), or stop with None. Needs a build with FASTSCORE_MLP_PROFILE=1."""
        if profile is not None and not PROFILE_ENABLED:
            raise RuntimeError("the MLP kernels were built without their profile; rebuild "
                               "with FASTSCORE_MLP_PROFILE=1 to time them per layer")
        self._profile = profile
        self.net.profile = NULL if profile is None else &profile[0]

    def pack_size(self, int real_size):
        """Values of the packed weights for the float type of `real_size` bytes at this
        process's SIMD level; 0 when the layer products go through BLAS."""
        return fs_mlp_pack_size(&self.net, real_size)

    def pack_layout(self, int real_size):
        """Where the pack's pieces start (mlp_gemm.h), for values of `real_size` bytes at
        this process's level: {"nr": panel width, "fwd", "bias", "bwd": per layer offsets,
        "zeros", "total"}; total 0 when the layer products go through BLAS."""
        cdef fs_mlp_pack_layout lay
        fs_mlp_pack_layout_of(&self.net, real_size, &lay)
        cdef int l, n = self.net.n_layers
        return {"nr": lay.nr, "fwd": [lay.fwd[l] for l in range(n)],
                "bias": [lay.bias[l] for l in range(n)],
                "bwd": [lay.bwd[l] for l in range(n)], "zeros": lay.zeros,
                "total": lay.total}

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


cdef inline const floating *cptr(const floating[::1] a) noexcept nogil:
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


def pack(Net net, const floating[::1] params, floating[::1] packed, int n_threads=1):
    """packed <- the micro-kernel's pack of params (Net.pack_size values), on n_threads."""
    cdef int status
    with nogil:
        if floating is float:
            status = fs_mlp_pack_f32(&net.net, &params[0], &packed[0], n_threads)
        else:
            status = fs_mlp_pack_f64(&net.net, &params[0], &packed[0], n_threads)
    check_status(status, "fs_mlp_pack")


def pack_matches(Net net, const floating[::1] params, const floating[::1] packed):
    """True when `packed` is the pack of `params`, bit for bit (the staleness check)."""
    cdef int same
    with nogil:
        if floating is float:
            same = fs_mlp_pack_matches_f32(&net.net, &params[0], &packed[0])
        else:
            same = fs_mlp_pack_matches_f64(&net.net, &params[0], &packed[0])
    return same != 0


def forward(Net net, const floating[::1] params, const floating[::1] packed,
            const floating[:, ::1] x,
            floating[:, ::1] out, floating[::1] acts, floating[::1] derivs,
            floating[::1] scratch, Py_ssize_t tile, int n_threads):
    cdef int status
    cdef Py_ssize_t n = x.shape[0]
    cdef floating *p_out = ptr2(out)
    cdef floating *p_acts = ptr(acts)
    cdef floating *p_derivs = ptr(derivs)
    cdef floating *p_scratch = ptr(scratch)
    cdef const floating *p_packed = cptr(packed)
    with nogil:
        if floating is float:
            status = fs_mlp_forward_f32(&net.net, &params[0], p_packed, &x[0, 0], n, p_out,
                                        p_acts, p_derivs, p_scratch, tile, n_threads)
        else:
            status = fs_mlp_forward_f64(&net.net, &params[0], p_packed, &x[0, 0], n, p_out,
                                        p_acts, p_derivs, p_scratch, tile, n_threads)
    check_status(status, "fs_mlp_forward")


def backward(Net net, const floating[::1] params, const floating[::1] packed,
             const floating[::1] acts,
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
    cdef const floating *p_packed = cptr(packed)
    with nogil:
        if floating is float:
            status = fs_mlp_backward_f32(&net.net, &params[0], p_packed, &acts[0], p_derivs,
                                         n,
                                         &grad_out[0, 0], p_scale, &grad[0], p_partials,
                                         n_slots, accumulate, p_input_grad, &scratch[0],
                                         &dscratch[0], tile, n_threads)
        else:
            status = fs_mlp_backward_f64(&net.net, &params[0], p_packed, &acts[0], p_derivs,
                                         n,
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

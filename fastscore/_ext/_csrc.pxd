# C declarations of the kernels in csrc/, for every binding (`from ._csrc cimport ...`).
#
# Limits and codes are anonymous enums: Cython emits their C names and the C compiler reads
# the values from the headers, so an array sized by one (FS_MLP_MAX_LAYERS) follows the
# header when it changes. ptrdiff_t in the headers is Py_ssize_t here (same width on every
# supported platform).

cdef extern from "fs_common.h":
    enum:
        FS_OK
        FS_E_NOMEM
        FS_E_ARG
        FS_SIMD_BASELINE
        FS_SIMD_V3
        FS_SIMD_V4
        FS_BODY_V4
        FS_BODY_V3

    int fs_openmp_enabled()
    int fs_simd_cpu_level()
    int fs_simd_level()
    int fs_simd_body()


cdef extern from "adam.h":
    ctypedef struct fs_adam_hyper:
        double beta1
        double beta2
        double one_minus_beta1
        double one_minus_beta2
        double step_size
        double inv_sqrt_bc2
        double eps
        double decay_factor
        double l2
        int decoupled

    int fs_adam_step_f32(float *param, const float *grad, float *m, float *v,
                         Py_ssize_t n, const fs_adam_hyper *h, int n_threads) nogil
    int fs_adam_step_f64(double *param, const double *grad, double *m, double *v,
                         Py_ssize_t n, const fs_adam_hyper *h, int n_threads) nogil
    int fs_ema_update_f32(float *avg, const float *param, Py_ssize_t n, double decay,
                          int n_threads) nogil
    int fs_ema_update_f64(double *avg, const double *param, Py_ssize_t n, double decay,
                          int n_threads) nogil
    int fs_sum_squares_f32(const float *x, Py_ssize_t n, double *out, int n_threads) nogil
    int fs_sum_squares_f64(const double *x, Py_ssize_t n, double *out, int n_threads) nogil
    int fs_scale_f32(float *x, Py_ssize_t n, double scale, int n_threads) nogil
    int fs_scale_f64(double *x, Py_ssize_t n, double scale, int n_threads) nogil


cdef extern from "kde.h":
    enum:
        FS_KDE_ALIGN
        FS_KDE_GROUP

    Py_ssize_t fs_kde_leading_dim_f32(Py_ssize_t n_points) nogil
    Py_ssize_t fs_kde_leading_dim_f64(Py_ssize_t n_points) nogil
    Py_ssize_t fs_kde_packed_size_f32(Py_ssize_t n_points, Py_ssize_t dim) nogil
    Py_ssize_t fs_kde_packed_size_f64(Py_ssize_t n_points, Py_ssize_t dim) nogil
    int fs_kde_pack_f32(const float *X, Py_ssize_t n_points, Py_ssize_t dim,
                        const Py_ssize_t *order, float *out, Py_ssize_t ld) nogil
    int fs_kde_pack_f64(const double *X, Py_ssize_t n_points, Py_ssize_t dim,
                        const Py_ssize_t *order, double *out, Py_ssize_t ld) nogil
    int fs_kde_score_f32(const float *xt, Py_ssize_t ld, Py_ssize_t n_points, Py_ssize_t dim,
                         const float *queries, Py_ssize_t n_queries, double sigma,
                         Py_ssize_t exclude_start, const Py_ssize_t *where, float *score,
                         float *log_density, int skip_far, int n_threads) nogil
    int fs_kde_score_f64(const double *xt, Py_ssize_t ld, Py_ssize_t n_points,
                         Py_ssize_t dim, const double *queries, Py_ssize_t n_queries,
                         double sigma, Py_ssize_t exclude_start, const Py_ssize_t *where,
                         double *score, double *log_density, int skip_far,
                         int n_threads) nogil


cdef extern from "mlp.h":
    enum:
        FS_MLP_MAX_LAYERS
        FS_MLP_PROFILE_PHASES

    ctypedef void (*fs_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *,
                                 int *, float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*fs_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *,
                                 int *, double *, int *, double *, double *, int *) noexcept nogil
    ctypedef struct fs_mlp_net:
        int n_layers
        Py_ssize_t n_params
        Py_ssize_t w_offset[FS_MLP_MAX_LAYERS]
        Py_ssize_t b_offset[FS_MLP_MAX_LAYERS]
        Py_ssize_t act_offset[FS_MLP_MAX_LAYERS + 2]
        Py_ssize_t deriv_offset[FS_MLP_MAX_LAYERS]
        Py_ssize_t deriv_total
        Py_ssize_t bias_total
        Py_ssize_t max_width
        double *profile

    int fs_mlp_init(fs_mlp_net *net, int n_layers, const Py_ssize_t *widths,
                    const int *activations, double negative_slope, fs_sgemm_fn sgemm,
                    fs_dgemm_fn dgemm)
    int fs_mlp_profile_enabled()
    Py_ssize_t fs_mlp_forward_scratch(const fs_mlp_net *net, Py_ssize_t tile, int n_threads)
    Py_ssize_t fs_mlp_backward_scratch(const fs_mlp_net *net, Py_ssize_t tile, int n_threads)
    Py_ssize_t fs_mlp_backward_dscratch(const fs_mlp_net *net, int n_slots)
    Py_ssize_t fs_mlp_jacobian_scratch(const fs_mlp_net *net, Py_ssize_t tile, int n_dirs,
                                       int n_threads)

    int fs_mlp_forward_f32(const fs_mlp_net *net, const float *params,
                           const float *packed, const float *x,
                           Py_ssize_t n, float *out, float *acts, float *derivs,
                           float *scratch, Py_ssize_t tile, int n_threads) nogil
    int fs_mlp_forward_f64(const fs_mlp_net *net, const double *params,
                           const double *packed, const double *x,
                           Py_ssize_t n, double *out, double *acts, double *derivs,
                           double *scratch, Py_ssize_t tile, int n_threads) nogil
    int fs_mlp_backward_f32(const fs_mlp_net *net, const float *params,
                            const float *packed, const float *acts,
                            const float *derivs, Py_ssize_t n, const float *grad_out,
                            const float *row_scale, float *grad, float *partials,
                            int n_slots, int accumulate, float *input_grad, float *scratch,
                            double *dscratch, Py_ssize_t tile, int n_threads) nogil
    int fs_mlp_backward_f64(const fs_mlp_net *net, const double *params,
                            const double *packed, const double *acts,
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


cdef extern from "mlp_gemm.h":
    enum:
        FS_MLP_GEMM_X86

    ctypedef struct fs_mlp_pack_layout:
        int level
        Py_ssize_t nr
        Py_ssize_t mr
        Py_ssize_t fwd[FS_MLP_MAX_LAYERS]
        Py_ssize_t bias[FS_MLP_MAX_LAYERS]
        Py_ssize_t bwd[FS_MLP_MAX_LAYERS]
        Py_ssize_t zeros
        Py_ssize_t total

    void fs_mlp_pack_layout_of(const fs_mlp_net *net, int real_size,
                               fs_mlp_pack_layout *lay)
    Py_ssize_t fs_mlp_pack_size(const fs_mlp_net *net, int real_size)
    int fs_mlp_pack_f32(const fs_mlp_net *net, const float *params, float *packed,
                        int n_threads) nogil
    int fs_mlp_pack_f64(const fs_mlp_net *net, const double *params, double *packed,
                        int n_threads) nogil
    int fs_mlp_pack_matches_f32(const fs_mlp_net *net, const float *params,
                                const float *packed) nogil
    int fs_mlp_pack_matches_f64(const fs_mlp_net *net, const double *params,
                                const double *packed) nogil


cdef extern from "patches.h":
    ctypedef struct fs_patch_geometry:
        Py_ssize_t n_batch
        Py_ssize_t shape[3]
        Py_ssize_t padded[3]
        Py_ssize_t pad_before[3]
        Py_ssize_t patch[3]
        Py_ssize_t stride[3]
        Py_ssize_t grid[3]
        const Py_ssize_t *map[3]
        const Py_ssize_t *inv_ptr[3]
        const Py_ssize_t *inv_idx[3]

    int fs_gather_patches_f32(const fs_patch_geometry *g, const float *x, float *out,
                              Py_ssize_t start, Py_ssize_t stop, int n_threads) nogil
    int fs_gather_patches_f64(const fs_patch_geometry *g, const double *x, double *out,
                              Py_ssize_t start, Py_ssize_t stop, int n_threads) nogil
    int fs_scatter_add_patches_f32(const fs_patch_geometry *g, const float *patches,
                                   float *out, Py_ssize_t start, Py_ssize_t stop,
                                   int n_threads) nogil
    int fs_scatter_add_patches_f64(const fs_patch_geometry *g, const double *patches,
                                   double *out, Py_ssize_t start, Py_ssize_t stop,
                                   int n_threads) nogil

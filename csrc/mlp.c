/* Instantiates the MLP kernels for float (f32) and double (f64); layout and scratch sizes.
 *
 * setup.py compiles this file with -fno-trapping-math (a per-file flag): floating-point
 * exception flags are never read here, and without it GCC refuses to if-convert selects
 * such as `v > 0 ? v : slope * v` (leaky ReLU, the clamps of the approximations below)
 * for AVX2 and the baseline, leaving those loops scalar. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlp.h"
#include "mlp_gemm.h"

/* ---- vectorisable float approximations (libm's expf/tanhf do not vectorise without
 * -ffast-math). Accuracy is checked in tests/test_nn.py::test_activation_accuracy. ---- */

/* exp(x), Cody-Waite reduction x = k ln2 + r (|r| <= ln2/2) and the degree-6 minimax
 * polynomial of Cephes' expf; 2^k is built in the exponent bits. x is clamped to
 * [-87, 88] so that k stays in [-126, 127] and the result is a finite normal float
 * (exp(-87) = 1.6e-38). Relative error <= 2e-7 on the clamped range (tested). */
FS_INLINE float fs_expf_approx(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round x log2(e) to nearest with the 1.5 * 2^23 trick (exact for |k| < 2^22) */
    const float shifter = 12582912.0f;
    const float kf = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - kf * 0.693359375f;      /* ln2 split: a high part exact in float ... */
    r = r - kf * -2.12194440e-4f;         /* ... and the low part */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale;  /* 2^k, k in [-126, 127] */
    scale.i = ((int32_t)kf + 127) << 23;
    return p * scale.f;
}

/* tanh(x), odd rational minimax approximation p(x)/q(x) of degrees 13/6 (the
 * coefficients of Eigen's and ONNX Runtime MLAS's float tanh), x clamped to +-7.9053,
 * beyond which tanh rounds to +-1 in float. Absolute error <= 4e-7 on every clone (2.7e-7
 * with FMA, 3.25e-7 on the AVX2 clone, which has none; tested). */
#define FS_TANHF_CLAMP 7.90531110763549805f
/* out = p(x)/q(x) for an already clamped x: a float, or a GCC vector of floats (the packed
 * GEMM's epilogue, mlp_gemm_isa.tmpl.c); T is the type of x. */
#define FS_TANHF_RATIONAL(T, x, out)                                 \
    do {                                                              \
        const T x2_ = (x) * (x);                                      \
        T p_ = x2_ * -2.76076847742355e-16f + 2.00018790482477e-13f;  \
        p_ = p_ * x2_ + -8.60467152213735e-11f;                       \
        p_ = p_ * x2_ + 5.12229709037114e-08f;                        \
        p_ = p_ * x2_ + 1.48572235717979e-05f;                        \
        p_ = p_ * x2_ + 6.37261928875436e-04f;                        \
        p_ = p_ * x2_ + 4.89352455891786e-03f;                        \
        p_ = p_ * (x);                                                \
        T q_ = x2_ * 1.19825839466702e-06f + 1.18534705686654e-04f;   \
        q_ = q_ * x2_ + 2.26843463243900e-03f;                        \
        q_ = q_ * x2_ + 4.89352518554385e-03f;                        \
        (out) = p_ / q_;                                              \
    } while (0)

FS_INLINE float fs_tanhf_approx(float x)
{
    x = x < -FS_TANHF_CLAMP ? -FS_TANHF_CLAMP : x;
    x = x > FS_TANHF_CLAMP ? FS_TANHF_CLAMP : x;
    float t;
    FS_TANHF_RATIONAL(float, x, t);
    return t;
}

/* wall-clock seconds for the profile (builds with FS_MLP_PROFILE, see mlp.h) */
double fs_mlp_now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

int fs_mlp_profile_enabled(void)
{
    return FS_MLP_PROFILE;
}

int fs_mlp_init(fs_mlp_net *net, int n_layers, const ptrdiff_t *widths,
                const int *activations, double negative_slope, fs_sgemm_fn sgemm,
                fs_dgemm_fn dgemm)
{
    if (n_layers < 1 || n_layers > FS_MLP_MAX_LAYERS) return FS_E_ARG;
    memset(net, 0, sizeof(*net));
    net->n_layers = n_layers;
    net->negative_slope = negative_slope;
    net->sgemm = sgemm;
    net->dgemm = dgemm;
    ptrdiff_t p = 0, a = 0, d = 0, bias = 0, wmax = 0;
    for (int l = 0; l <= n_layers; ++l) {
        /* widths must be positive and small enough for BLAS's int arguments */
        if (widths[l] < 1 || widths[l] > (1 << 20)) return FS_E_ARG;
        net->width[l] = widths[l];
        if (widths[l] > wmax) wmax = widths[l];
        net->act_offset[l] = a;
        a += widths[l];
    }
    net->act_offset[n_layers + 1] = a;
    for (int l = 0; l < n_layers; ++l) {
        const int code = activations[l];
        if (code < 0 || code >= FS_ACT_COUNT) return FS_E_ARG;
        net->activation[l] = code;
        net->w_offset[l] = p;
        p += widths[l] * widths[l + 1];
        net->b_offset[l] = p;
        p += widths[l + 1];
        bias += widths[l + 1];
        if (FS_ACT_STORES_DERIVATIVE(code)) {
            net->deriv_offset[l] = d;
            d += widths[l + 1];
        } else {
            net->deriv_offset[l] = -1;
        }
    }
    net->n_params = p;
    net->deriv_total = d;
    net->bias_total = bias;
    net->max_width = wmax;
    return FS_OK;
}

/* inference forward: two ping-pong activation buffers of tile x max_width per thread */
ptrdiff_t fs_mlp_forward_scratch(const fs_mlp_net *net, ptrdiff_t tile, int n_threads)
{
    return (ptrdiff_t)n_threads * 2 * tile * net->max_width;
}

/* backward: two ping-pong gradient buffers of tile x max_width per thread */
ptrdiff_t fs_mlp_backward_scratch(const fs_mlp_net *net, ptrdiff_t tile, int n_threads)
{
    return (ptrdiff_t)n_threads * 2 * tile * net->max_width;
}

/* backward: one row of bias column sums (double) per slot */
ptrdiff_t fs_mlp_backward_dscratch(const fs_mlp_net *net, int n_slots)
{
    return (ptrdiff_t)n_slots * net->bias_total;
}

/* jacobian: per thread the tile's activations and derivatives, one derivative row block,
 * and two tangent buffers of tile * n_dirs rows */
ptrdiff_t fs_mlp_jacobian_scratch(const fs_mlp_net *net, ptrdiff_t tile, int n_dirs,
                                  int n_threads)
{
    const ptrdiff_t per_thread = tile * (net->act_offset[net->n_layers + 1] +
                                         net->deriv_total + net->max_width) +
                                 2 * tile * (ptrdiff_t)n_dirs * net->max_width;
    return (ptrdiff_t)n_threads * per_thread;
}

void fs_mlp_pack_layout_of(const fs_mlp_net *net, int real_size, fs_mlp_pack_layout *lay)
{
    memset(lay, 0, sizeof(*lay));
    lay->level = fs_simd_level();
    if (!FS_MLP_GEMM_X86 || lay->level < FS_SIMD_V3) {
        lay->level = FS_SIMD_BASELINE;   /* BLAS */
        return;
    }
    const ptrdiff_t vb = lay->level >= FS_SIMD_V4 ? 64 : 32;
    lay->nr = 2 * vb / real_size;
    lay->mr = lay->level >= FS_SIMD_V4 ? FS_MLP_GEMM_MR_V4 : FS_MLP_GEMM_MR_V3;
    ptrdiff_t off = 0;
    for (int l = 0; l < net->n_layers; ++l) {
        const ptrdiff_t k = net->width[l], m = net->width[l + 1];
        const ptrdiff_t mp = (m + lay->nr - 1) / lay->nr * lay->nr;
        const ptrdiff_t kp = (k + lay->nr - 1) / lay->nr * lay->nr;
        lay->fwd[l] = off;
        off += k * mp;
        lay->bias[l] = off;
        off += mp;
        lay->bwd[l] = off;
        off += m * kp;
    }
    lay->zeros = off;
    lay->total = off + net->max_width;
}

ptrdiff_t fs_mlp_pack_size(const fs_mlp_net *net, int real_size)
{
    fs_mlp_pack_layout lay;
    fs_mlp_pack_layout_of(net, real_size, &lay);
    return lay.total;
}

#define FS_TEMPLATE "mlp_gemm.tmpl.c"
#include "fs_stamp.h"

#define FS_TEMPLATE "mlp.tmpl.c"
#include "fs_stamp.h"

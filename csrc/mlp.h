/* Dense multilayer perceptron: forward, backward (parameter and input gradients) and the
 * exact diagonal of the input Jacobian, for row-major batches.
 *
 * Network (L = n_layers linear layers, widths w_0 .. w_L):
 *   a_0 = x                                  x : (n, w_0)
 *   z_l = a_{l-1} W_l + b_l                  W_l : (w_{l-1}, w_l) row-major, b_l : (w_l,)
 *   a_l = f_l(z_l)                           f_l : activation of layer l
 *   y   = a_L                                y : (n, w_L)
 * Parameters: ONE flat buffer; layer l (0-based) holds W at w_offset[l] and b at
 * b_offset[l] (W then b, layer after layer, no gaps), so the optimiser updates one array.
 *
 * Dense products go to BLAS through a gemm pointer supplied by the caller (scipy's
 * cython_blas sgemm/dgemm, Fortran calling convention). BLAS is column-major: a row-major
 * (r, c) matrix is a column-major (c, r) one, so y = a W reads
 *   y^T (w_l x n) = W^T (w_l x w_{l-1}) a^T (w_{l-1} x n)  ->  gemm("N", "N", w_l, n, w_{l-1})
 * with W passed as the column-major (w_l x w_{l-1}) matrix it already is.
 *
 * Threads: the batch is cut into tiles of `tile` rows; each tile goes through all layers
 * on one thread (BLAS must be single-threaded meanwhile: the caller pins it), so a tile's
 * arithmetic does not depend on the thread count. Gradients are summed per *slot* (a
 * fixed contiguous range of tiles, chosen from n alone) and the slots are added in slot
 * order: parameter gradients, bias column sums included, are identical for any thread
 * count.
 */
#ifndef FS_MLP_H
#define FS_MLP_H

#include "fs_common.h"

#define FS_MLP_MAX_LAYERS 64

/* Activation codes (fastscore.nn keeps the name <-> code table). */
#define FS_ACT_IDENTITY   0
#define FS_ACT_RELU       1
#define FS_ACT_LEAKY_RELU 2
#define FS_ACT_TANH       3
#define FS_ACT_SILU       4
#define FS_ACT_GELU       5
#define FS_ACT_COUNT      6

/* True for activations whose derivative is not a function of the activation's output
 * (SiLU, GELU): the forward pass stores f'(z) for them; for the others backward derives
 * f' from a = f(z) (tanh: 1 - a^2, (leaky) ReLU: a > 0). */
#define FS_ACT_STORES_DERIVATIVE(code) ((code) == FS_ACT_SILU || (code) == FS_ACT_GELU)

/* Fortran BLAS gemm, as exported by scipy.linalg.cython_blas. */
typedef void (*fs_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                            float *alpha, float *a, int *lda, float *b, int *ldb,
                            float *beta, float *c, int *ldc);
typedef void (*fs_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                            double *alpha, double *a, int *lda, double *b, int *ldb,
                            double *beta, double *c, int *ldc);

/* Architecture and buffer layout, filled by fs_mlp_init. Row offsets are per batch row:
 * the stored activations of layer l (a_0 = x .. a_L = y) occupy
 *   acts[n * act_offset[l] .. n * act_offset[l+1])  as an (n, w_l) row-major block,
 * and the stored derivatives f_l'(z_l) of SiLU/GELU layers occupy
 *   derivs[n * deriv_offset[l] ..] (deriv_offset[l] = -1 for the other layers). */
typedef struct {
    int n_layers;
    int activation[FS_MLP_MAX_LAYERS];
    double negative_slope;                       /* leaky ReLU slope */
    ptrdiff_t width[FS_MLP_MAX_LAYERS + 1];
    ptrdiff_t w_offset[FS_MLP_MAX_LAYERS];
    ptrdiff_t b_offset[FS_MLP_MAX_LAYERS];
    ptrdiff_t n_params;
    ptrdiff_t act_offset[FS_MLP_MAX_LAYERS + 2];  /* act_offset[L+1] = sum of all widths */
    ptrdiff_t deriv_offset[FS_MLP_MAX_LAYERS];
    ptrdiff_t deriv_total;                       /* per-row length of the derivs block */
    ptrdiff_t bias_total;                        /* sum of w_1 .. w_L */
    ptrdiff_t max_width;
    fs_sgemm_fn sgemm;
    fs_dgemm_fn dgemm;
    /* Optional profile, read only in builds with FS_MLP_PROFILE (NULL normally):
     * seconds accumulated per thread t, phase q and layer l at
     * profile[(t * FS_MLP_PROFILE_PHASES + q) * n_layers + l]; phases: forward gemm,
     * forward elementwise, backward gemm, backward elementwise, and (at l = 0) the
     * thread's whole time inside the tile loop. Used by benchmarks/bench_mlp.py. */
    double *profile;
} fs_mlp_net;

#define FS_MLP_PROFILE_PHASES 5

/* The kernel profile is compiled in only with -DFS_MLP_PROFILE=1 (setup.py:
 * FASTSCORE_MLP_PROFILE=1); otherwise the kernels never read a clock. */
#ifndef FS_MLP_PROFILE
#define FS_MLP_PROFILE 0
#endif

/* Fill the layout of `net` from widths (n_layers + 1) and activation codes (n_layers).
 * Returns FS_E_ARG for an invalid architecture. */
int fs_mlp_init(fs_mlp_net *net, int n_layers, const ptrdiff_t *widths,
                const int *activations, double negative_slope, fs_sgemm_fn sgemm,
                fs_dgemm_fn dgemm);

double fs_mlp_now(void);
int fs_mlp_profile_enabled(void);   /* FS_MLP_PROFILE of this build */

/* Scratch lengths (in elements of the working float type unless said otherwise) that the
 * caller allocates once and passes to the kernels below. */
ptrdiff_t fs_mlp_forward_scratch(const fs_mlp_net *net, ptrdiff_t tile, int n_threads);
ptrdiff_t fs_mlp_backward_scratch(const fs_mlp_net *net, ptrdiff_t tile, int n_threads);
ptrdiff_t fs_mlp_backward_dscratch(const fs_mlp_net *net, int n_slots); /* doubles */
ptrdiff_t fs_mlp_jacobian_scratch(const fs_mlp_net *net, ptrdiff_t tile, int n_dirs,
                                  int n_threads);

#define FS_TEMPLATE "mlp.tmpl.h"
#include "fs_stamp.h"

#endif /* FS_MLP_H */

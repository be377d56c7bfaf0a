/* Declarations stamped once per REAL (see mlp.h for the network, layout and threads). */
#ifndef REAL
#error "define REAL and FS_SFX before including mlp.tmpl.h"
#endif

/* `packed` (forward, backward): the pack of `params` made by fs_mlp_pack at this process's
 * SIMD level (mlp_gemm.h), or NULL: the layer products then go through BLAS. A pack of
 * other parameters gives wrong results: the caller repacks whenever params change.
 * FS_E_NOMEM when a thread's scratch of the packed GEMM cannot be allocated. */

/* Forward pass y = net(x) for x : (n, w_0), tiles of `tile` rows.
 *   training mode (acts != NULL): stores a_0 = x .. a_L = y in `acts` (n * act_offset[L+1]
 *     elements) and f'(z) of SiLU/GELU layers in `derivs` (n * deriv_total elements, may
 *     be NULL when deriv_total == 0); `scratch` is unused; `out` (n, w_L) may be NULL.
 *   inference mode (acts == NULL): `scratch` holds fs_mlp_forward_scratch() elements,
 *     `out` (n, w_L) receives y; memory does not grow with n. */
int FS_FN(fs_mlp_forward)(const fs_mlp_net *net, const REAL *params, const REAL *packed,
                          const REAL *x, ptrdiff_t n, REAL *out, REAL *acts, REAL *derivs,
                          REAL *scratch, ptrdiff_t tile, int n_threads);

/* Backward pass after a training-mode forward with the same n, tile and params:
 *   grad (=|+=) d/dtheta sum_{r,i} g[r,i] y[r,i],   g[r,i] = grad_out[r,i] * row_scale[r]
 *   input_grad[r, :] = sum_i g[r,i] dy[r,i]/dx[r,:]          (when input_grad != NULL)
 * row_scale (n,) may be NULL (all ones). `grad` is overwritten unless `accumulate`.
 * The tiles are grouped into n_slots (1 <= n_slots <= number of tiles) contiguous slots;
 * slot 0 sums into `grad`, slot s > 0 into partials[(s-1)*n_params ..]; the slots are
 * then added in order, so the result does not depend on n_threads.
 * scratch: fs_mlp_backward_scratch() elements; dscratch: fs_mlp_backward_dscratch()
 * doubles (bias column sums are accumulated in double). */
int FS_FN(fs_mlp_backward)(const fs_mlp_net *net, const REAL *params, const REAL *packed,
                           const REAL *acts,
                           const REAL *derivs, ptrdiff_t n, const REAL *grad_out,
                           const REAL *row_scale, REAL *grad, REAL *partials, int n_slots,
                           int accumulate, REAL *input_grad, REAL *scratch,
                           double *dscratch, ptrdiff_t tile, int n_threads);

/* Exact diagonal of the input Jacobian for the first n_dirs inputs (n_dirs <= w_0, w_L):
 *   diag[r, i] = d y[r, i] / d x[r, i],  i < n_dirs,
 * by forward-mode tangents (n_dirs tangents per row, one GEMM of tile*n_dirs rows per
 * layer). out (n, w_L) receives y when not NULL. scratch: fs_mlp_jacobian_scratch(). */
int FS_FN(fs_mlp_jacobian_diagonal)(const fs_mlp_net *net, const REAL *params,
                                    const REAL *x, ptrdiff_t n, int n_dirs, REAL *out,
                                    REAL *diag, REAL *scratch, ptrdiff_t tile,
                                    int n_threads);

/* Elementwise activation (for tests of the vectorised approximations):
 *   a[i] = f(z[i]),  d[i] = f'(z[i]) when d != NULL. */
int FS_FN(fs_mlp_activation)(int code, double negative_slope, const REAL *z, ptrdiff_t n,
                             REAL *a, REAL *d);

/* Declarations stamped once per REAL (see adam.h). */
#ifndef REAL
#error "define REAL and FS_SFX before including adam.tmpl.h"
#endif

/* One fused Adam step over n entries, in place on param, m, v:
 *   g      = grad + l2 * param                          (only when !decoupled)
 *   m      = beta1 * m + (1 - beta1) * g
 *   v      = beta2 * v + (1 - beta2) * g * g
 *   param  = decay_factor * param                       (only when decoupled)
 *   param  = param - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
 * Arithmetic in REAL with the hyper-parameters rounded to REAL once. */
int FS_FN(fs_adam_step)(REAL *param, const REAL *grad, REAL *m, REAL *v, ptrdiff_t n,
                        const fs_adam_hyper *h, int n_threads);

/* avg = avg + (1 - decay) * (param - avg), n entries, in place on avg. */
int FS_FN(fs_ema_update)(REAL *avg, const REAL *param, ptrdiff_t n, double decay,
                         int n_threads);

/* *out = sum_i x_i^2 over n entries, accumulated in double (see adam.tmpl.c for the fixed
 * summation order that makes it independent of the thread count). */
int FS_FN(fs_sum_squares)(const REAL *x, ptrdiff_t n, double *out, int n_threads);

/* x = scale * x, n entries, in place (scale rounded to REAL once). */
int FS_FN(fs_scale)(REAL *x, ptrdiff_t n, double scale, int n_threads);

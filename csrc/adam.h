/* Optimiser kernels over one flat parameter buffer: the fused Adam/AdamW step, the
 * exponential moving average of the weights, and the global gradient norm with its
 * in-place rescaling (gradient clipping).
 *
 * All kernels are elementwise over n entries, except the norm, which is a long reduction
 * accumulated in double in fixed blocks (see adam.tmpl.c): every result is the same for any
 * thread count, bit for bit.
 */
#ifndef FS_ADAM_H
#define FS_ADAM_H

#include "fs_common.h"

/* Hyper-parameters of one Adam step, computed by the caller in double:
 *   beta1, beta2      : moment decay rates
 *   one_minus_beta1/2 : 1 - beta1, 1 - beta2 (rounded once, in double)
 *   step_size         : lr / (1 - beta1^t)            (bias correction of m)
 *   inv_sqrt_bc2      : 1 / sqrt(1 - beta2^t)          (bias correction of v)
 *   eps               : added to the corrected sqrt(v)
 *   decay_factor      : 1 - lr * weight_decay          (decoupled decay, AdamW)
 *   l2                : weight_decay                   (coupled L2 decay, added to g)
 *   decoupled         : 1 -> AdamW (decay_factor used), 0 -> L2 (l2 used) */
typedef struct {
    double beta1, beta2;
    double one_minus_beta1, one_minus_beta2;
    double step_size;
    double inv_sqrt_bc2;
    double eps;
    double decay_factor;
    double l2;
    int decoupled;
} fs_adam_hyper;

#define FS_TEMPLATE "adam.tmpl.h"
#include "fs_stamp.h"

#endif /* FS_ADAM_H */

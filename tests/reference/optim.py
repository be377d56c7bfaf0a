"""Plain NumPy references for fastscore.optim: Adam/AdamW, EMA, gradient norm.

Written for obviousness, with the kernels' order of operations and the hyper-parameters
rounded once to the buffer dtype, so the compiled kernels can be matched closely in float32
and float64.
"""

import math

import numpy as np


class NumpyAdam:
    """Adam (decoupled or L2 weight decay) on a flat array, in place, one op at a time."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled=True):
        self.p = params.reshape(-1)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.m = np.zeros_like(self.p)
        self.v = np.zeros_like(self.p)
        self.t = 0

    def step(self, grad, lr=None):
        lr = self.lr if lr is None else lr
        T = self.p.dtype.type
        b1, b2 = self.betas
        self.t += 1
        step_size = T(lr / (1.0 - b1 ** self.t))
        inv_sqrt_bc2 = T(1.0 / math.sqrt(1.0 - b2 ** self.t))
        g = grad.reshape(-1).astype(self.p.dtype)
        if not self.decoupled:
            g = g + T(self.weight_decay) * self.p
        self.m[:] = T(b1) * self.m + T(1.0 - b1) * g
        self.v[:] = T(b2) * self.v + T(1.0 - b2) * (g * g)
        denom = np.sqrt(self.v) * inv_sqrt_bc2 + T(self.eps)
        if self.decoupled:
            self.p[:] = T(1.0 - lr * self.weight_decay) * self.p
        self.p[:] = self.p - step_size * (self.m / denom)


def ema_update(avg, params, decay):
    """avg + (1 - decay) * (params - avg), in the dtype of avg."""
    T = avg.dtype.type
    return avg + T(1.0 - decay) * (params - avg)


def global_norm(x):
    """sqrt(sum x^2) in extended precision (math.fsum over float64 squares)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return math.sqrt(math.fsum(x * x))

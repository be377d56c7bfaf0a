"""Plain NumPy reference of the MLP: slow, obvious, float64-friendly.

Layer l: ``a_l = f_l(a_{l-1} @ W_l + b_l)`` with ``W_l`` of shape (w_{l-1}, w_l), parameters
in one flat vector laid out layer after layer as [W_1.ravel(), b_1, W_2.ravel(), b_2, ...],
exactly as :class:`fastscore.nn.MLP` stores them. Activations use exact math (np.tanh,
np.exp), not the kernels' vectorised approximations.
"""

import numpy as np

GELU_C = np.sqrt(2.0 / np.pi)
GELU_K = 0.044715


def activation(name, z, slope=0.01):
    """(f(z), f'(z)) elementwise."""
    if name == "identity":
        return z.copy(), np.ones_like(z)
    if name == "relu":
        return np.maximum(z, 0), (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z), np.where(z > 0, 1.0, slope).astype(z.dtype)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1 - t * t
    if name == "silu":
        s = 1.0 / (1.0 + np.exp(-z))
        return z * s, s * (1 + z * (1 - s))
    if name == "gelu":
        u = GELU_C * (z + GELU_K * z ** 3)
        t = np.tanh(u)
        return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_C * (
            1 + 3 * GELU_K * z * z)
    raise ValueError(name)


def unpack(params, widths):
    """Flat vector -> list of (W, b)."""
    layers, k = [], 0
    for l in range(len(widths) - 1):
        n_w = widths[l] * widths[l + 1]
        W = params[k:k + n_w].reshape(widths[l], widths[l + 1])
        k += n_w
        b = params[k:k + widths[l + 1]]
        k += widths[l + 1]
        layers.append((W, b))
    assert k == params.size
    return layers


def forward(params, widths, activations, x, slope=0.01):
    """y and the cache [(a_{l-1}, f'(z_l))] for backward."""
    cache = []
    a = x
    for (W, b), name in zip(unpack(params, widths), activations):
        z = a @ W + b
        out, d = activation(name, z, slope)
        cache.append((a, d))
        a = out
    return a, cache


def backward(params, widths, cache, grad_out):
    """(gradient w.r.t. the flat params, gradient w.r.t. x) of sum(grad_out * y)."""
    layers = unpack(params, widths)
    grads = []
    g = grad_out
    for (W, _), (a_prev, d) in zip(layers[::-1], cache[::-1]):
        gz = g * d
        grads.append((a_prev.T @ gz, gz.sum(axis=0)))
        g = gz @ W.T
    flat = np.concatenate([np.concatenate([gW.ravel(), gb]) for gW, gb in grads[::-1]])
    return flat, g


def jacobian_diagonal(params, widths, activations, x, slope=0.01, n_dirs=None):
    """dy_i/dx_i for i < n_dirs, from the full Jacobian of each row."""
    n_dirs = min(widths[0], widths[-1]) if n_dirs is None else n_dirs
    layers = unpack(params, widths)
    out = np.empty((x.shape[0], n_dirs))
    for r in range(x.shape[0]):
        a = x[r:r + 1]
        J = np.eye(widths[0])
        for (W, b), name in zip(layers, activations):
            z = a @ W + b
            a, d = activation(name, z, slope)
            J = (J @ W) * d
        out[r] = np.diag(J)[:n_dirs]
    return out

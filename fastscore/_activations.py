"""Activation functions of :class:`fastscore.mlp.MLP`: their names and codes in the C
kernels, the default pattern, the initial weight scale each one calls for, and their exact
first and second derivatives in NumPy, and the second-order pass built on them
(:meth:`fastscore.mlp.MLP.jacobian_diagonal_vjp`)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ACTIVATIONS", "activation_derivatives", "add_jacobian_diagonal_vjp",
           "default_activations", "init_std"]

#: Activation names and their codes in the C kernels (csrc/mlp.h).
ACTIVATIONS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "silu": 4, "gelu": 5}


def default_activations(n_layers: int) -> tuple[str, ...]:
    """The tutorial's pattern for any depth: the first 5/8 of the hidden layers leaky
    ReLU, the rest tanh, a linear output (exactly 5 + 3 + 1 for 9 layers)."""
    hidden = n_layers - 1
    n_leaky = round(hidden * 5 / 8) if hidden else 0
    return tuple(["leaky_relu"] * n_leaky + ["tanh"] * (hidden - n_leaky) + ["identity"])


def init_std(activation: str, fan_in: int, fan_out: int, slope: float) -> float:
    """He (ReLU family) or Glorot (tanh, identity) standard deviation of a weight."""
    if activation in ("relu", "silu", "gelu"):
        return math.sqrt(2.0 / fan_in)
    if activation == "leaky_relu":
        return math.sqrt(2.0 / ((1.0 + slope ** 2) * fan_in))
    return math.sqrt(2.0 / (fan_in + fan_out))


def activation_derivatives(name: str, z: np.ndarray,
                           slope: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(f(z), f'(z), f''(z))`` of activation `name` with exact NumPy math, dtype of `z`."""
    one = z.dtype.type(1)
    if name == "identity":
        return z, np.ones_like(z), np.zeros_like(z)
    if name == "relu":
        pos = z > 0
        return np.where(pos, z, 0), pos.astype(z.dtype), np.zeros_like(z)
    if name == "leaky_relu":
        d1 = np.where(z > 0, one, z.dtype.type(slope))
        return z * d1, d1, np.zeros_like(z)
    if name == "tanh":
        t = np.tanh(z)
        d1 = one - t * t
        return t, d1, -2 * t * d1
    if name == "silu":
        s = one / (one + np.exp(-z))
        return z * s, s * (one + z * (one - s)), s * (one - s) * (2 + z * (one - 2 * s))
    if name == "gelu":
        c, k = z.dtype.type(math.sqrt(2 / math.pi)), z.dtype.type(0.044715)
        t = np.tanh(c * (z + k * z ** 3))
        u1 = c * (one + 3 * k * z * z)
        u2 = 6 * c * k * z
        sech2 = one - t * t
        return (0.5 * z * (one + t), 0.5 * (one + t) + 0.5 * z * sech2 * u1,
                sech2 * (u1 + 0.5 * z * (u2 - 2 * t * u1 * u1)))
    raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.")


def add_jacobian_diagonal_vjp(weights: list[np.ndarray], biases: list[np.ndarray],
                              activations: tuple[str, ...], slope: float, x: np.ndarray,
                              g: np.ndarray, p: int,
                              grads: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Add ``∂/∂θ Σ_{n, i<p} g[n, i] ∂y_i/∂x_i (x_n)`` of one chunk of rows to `grads`.

    Reverse-over-forward differentiation of the tangent propagation (p tangents per row,
    ``T_l = f_l'(z_l) ⊙ (T_{l-1} W_l)``) through a dense network ``a_l = f_l(a_{l-1} W_l +
    b_l)``; `grads` holds per layer the views ``(∂W_l, ∂b_l)`` into the flat gradient.
    """
    L = len(weights)
    r = x.shape[0]
    a = x
    T = np.zeros((r, p, x.shape[1]), dtype=x.dtype)   # tangents of x along e_i
    T[:, np.arange(p), np.arange(p)] = 1
    tape = []
    for l in range(L):
        z = a @ weights[l] + biases[l]
        f, d1, d2 = activation_derivatives(activations[l], z, slope)
        Zd = T @ weights[l]                            # (r, p, w)
        tape.append((a, T, d1, d2, Zd))
        a, T = f, Zd * d1[:, None, :]
    Tbar = np.zeros_like(T)
    Tbar[:, np.arange(p), np.arange(p)] = g
    abar = np.zeros_like(a)
    for l in range(L - 1, -1, -1):
        a_prev, T_prev, d1, d2, Zd = tape[l]
        Zdbar = Tbar * d1[:, None, :]
        zbar = np.einsum("rpw,rpw->rw", Tbar, Zd) * d2 + abar * d1
        gW, gb = grads[l]
        gW += np.einsum("rpk,rpm->km", T_prev, Zdbar) + a_prev.T @ zbar
        gb += zbar.sum(axis=0)
        if l:
            Tbar = Zdbar @ weights[l].T
            abar = zbar @ weights[l].T

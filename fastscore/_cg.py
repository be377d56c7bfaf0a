"""Batched (preconditioned) conjugate gradients with per-system step lengths and stopping.

One solver for every symmetric positive definite system of the reconstruction code (HQS
data steps, the preconditioned posterior sampler, the Laplace approximation): a batch of
independent systems ``Q_b x_b = r_b`` stacked along leading axes, each with its own
step lengths α_b, β_b and its own stopping test, so a system with a small right-hand side
is solved to the same relative tolerance as one with a large one.
"""

import numpy as np

__all__ = ["conjugate_gradient"]


def _dot(a, b, n_batch):
    """Real inner products over the trailing axes, one per system (float64, shape batch)."""
    shape = a.shape[:n_batch]
    prod = (np.conj(a) * b).real if np.iscomplexobj(a) or np.iscomplexobj(b) else a * b
    return np.sum(prod.reshape(shape + (-1,)), axis=-1, dtype=np.float64)


def conjugate_gradient(apply, rhs, x, *, cg_iter, tol, precondition=None, n_batch=0):
    """Solve ``Q x = rhs`` for SPD ``Q`` (given as ``apply(v) = Q v``), batch-wise.

    Standard preconditioned CG (Hestenes–Stiefel with ``z = M r``):

    .. math::

        α_b = \\frac{⟨r_b, z_b⟩}{⟨p_b, Q p_b⟩}, \\quad x_b ← x_b + α_b p_b, \\quad
        r_b ← r_b − α_b Q p_b, \\quad β_b = \\frac{⟨r_b', z_b'⟩}{⟨r_b, z_b⟩}, \\quad
        p_b ← z_b' + β_b p_b

    with every inner product taken per system ``b`` (the leading `n_batch` axes). System b
    stops (α_b = 0 from then on) once ``‖r_b‖ ≤ tol ‖rhs_b‖``; the loop ends when all
    have stopped or after `cg_iter` iterations.

    Parameters
    ----------
    apply : callable
        ``v ↦ Q v`` on arrays shaped like `x` (acting on each system independently).
    rhs : ndarray, the right-hand sides, shape of `x`
    x : ndarray
        Start; updated in place and returned.
    cg_iter : int >= 0
        Maximum iterations.
    tol : float >= 0
        Relative residual tolerance per system.
    precondition : callable, optional
        ``r ↦ M r`` with M ≈ Q⁻¹ symmetric positive definite (per system); None is plain
        CG (M = I).
    n_batch : int >= 0
        Number of leading batch axes (0: one system).

    Returns
    -------
    ndarray, `x`.
    """
    r = rhs - apply(x)
    z = r if precondition is None else precondition(r)
    p = np.array(z, copy=True)
    rz = _dot(r, z, n_batch)
    stop = tol ** 2 * np.maximum(_dot(rhs, rhs, n_batch), 1e-300)
    rr = rz if precondition is None else _dot(r, r, n_batch)
    bshape = x.shape[:n_batch] + (1,) * (x.ndim - n_batch)
    for _ in range(cg_iter):
        active = (rr > stop) & (rz > 0)
        if not np.any(active):
            break
        Ap = apply(p)
        pAp = _dot(p, Ap, n_batch)
        active &= pAp > 0
        alpha = np.where(active, rz / np.where(active, pAp, 1.0), 0.0)
        a = alpha.reshape(bshape).astype(x.real.dtype)
        x += a * p
        r -= a * Ap
        z = r if precondition is None else precondition(r)
        rz_new = _dot(r, z, n_batch)
        rr = rz_new if precondition is None else _dot(r, r, n_batch)
        beta = np.where(active, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        p *= beta.reshape(bshape).astype(x.real.dtype)
        p += z
        rz = np.where(active, rz_new, rz)
        rr = np.where(active, rr, 0.0)       # a stopped system stays stopped
    return x

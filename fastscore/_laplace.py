"""Laplace (linearised Gaussian) approximation of a posterior with a patch prior
(re-exported by :mod:`fastscore.posterior`).

Around the MAP estimate x̂ the log posterior is replaced by its second-order expansion,
``p(x | y) ≈ N(x̂, P⁻¹)`` with the precision

.. math::

    P = \\frac{A^*A}{σ_n^2} + \\sum_q w\\, G_q^\\top K_q G_q, \\qquad
    K_q = \\Big[-\\tfrac12 (J_q + J_q^\\top)\\Big]_+

where ``J_q = ∂s_V/∂v`` is the patch score's Jacobian at patch ``G_q x̂`` (its negative is
the patch Hessian of −log p_V; symmetrised, and projected on the positive semidefinite
cone so that P is a precision). The patch Jacobians come from ``d + 1`` evaluations of the
patch score on all patches of x̂ (forward differences, step 0.01 σ); after that a
Hessian-vector product is a gather, a batched d × d product and a scatter — no network.
Samples are exact draws of the Gaussian by perturbation-optimisation: solve
``P u = A^*ξ₁/σ_n + Σ_q √w G_qᵀ K_q^{1/2} ξ_q`` (the right-hand side has covariance P)
by preconditioned conjugate gradients, one system per sample, ``x = x̂ + u``.
"""

import numpy as np

__all__ = ["laplace"]


def _components(prior):
    from .prior import PatchPrior, SumPrior

    parts = prior.priors if isinstance(prior, SumPrior) else [prior]
    for p in parts:
        if not isinstance(p, PatchPrior) or p.tiling != "overlap" or p.intensity is not None:
            raise NotImplementedError(
                "method='laplace' needs a PatchPrior (or a sum of them) with "
                "tiling='overlap' and intensity='none'; got " + repr(p) + ".")
    return parts


def _weight(prior, image_shape):
    if prior.weight == "sum":
        return 1.0
    if prior.weight == "mean":   # symmetric stand-in for 1/counts: its interior value
        return 1.0 / float(prior.counts(image_shape).max())
    return float(prior.weight)


def patch_hessians(prior, x, sigma):
    """``[(G, wK, √w K^{1/2})]`` per component prior at image `x` (see module docstring),
    and the number of patch-score evaluations (d + 1 per component)."""
    image_shape = x.shape
    terms, n_evals = [], 0
    for p in _components(prior):
        G = p._operator(image_shape, p.padding)
        V = G.forward(x)
        s0 = np.asarray(p.patch_score.score(V, sigma), dtype=np.float64)
        d = V.shape[1]
        h = 0.01 * sigma if sigma is not None else 1e-3 * max(float(V.std()), 1e-3)
        J = np.empty((V.shape[0], d, d))
        for j in range(d):
            Vj = V.copy()
            Vj[:, j] += V.dtype.type(h)
            step = (Vj[:, j].astype(np.float64) - V[:, j])[:, None]   # the step as stored
            J[:, :, j] = (np.asarray(p.patch_score.score(Vj, sigma), np.float64) - s0) / step
        n_evals += d + 1
        # eigendecomposition in the working dtype: the forward-difference Jacobians are
        # accurate to ~1e-3 anyway, and float32 halves the largest non-network cost (65 536
        # 9 × 9 problems for a 256² image); K = U Λ₊ Uᵀ by a batched matmul (BLAS)
        lam, U = np.linalg.eigh((-0.5 * (J + J.transpose(0, 2, 1))).astype(x.dtype))
        w = _weight(p, image_shape)
        lam = np.clip(lam, 0.0, None) * x.dtype.type(w)
        root = U * np.sqrt(lam)[:, None, :]
        K = root @ root.transpose(0, 2, 1)
        terms.append((G, K, root))
    return terms, n_evals


def _apply_terms(terms, u, which):
    """``Σ G_qᵀ M_q G_q u`` (which = 1: M = K) or ``Σ G_qᵀ R_q ξ_q`` (which = 2, u = ξ
    list), per chain."""
    out = None
    for k, term in enumerate(terms):
        G, M = term[0], term[which]
        P = G.forward(u) if which == 1 else u[k]
        part = G.adjoint(np.einsum("nij,nj->ni" if P.ndim == 2 else "nij,bnj->bni", M, P,
                                   optimize=True))       # BLAS-backed (≈10× the plain loop)
        out = part if out is None else out + part
    return out


def laplace(problem, x_map, sigma, n_samples):
    """Draws of the Laplace approximation ``N(x̂, P⁻¹)`` around ``x_map`` at prior level
    `sigma`; returns ``(samples, x_map, n_score_evals, None)``."""
    terms, n_evals = patch_hessians(problem.prior, x_map, sigma)
    dt, rng = problem.dtype, problem.rng
    inv_n2 = 1.0 / problem.noise_var
    op = problem.operator
    # data part of the noise (covariance A*A/σ_n²) and the prior part (Σ G_qᵀ K_q G_q)
    rhs = problem.gram_noise(n_samples, 0.0)
    xi = [rng.standard_normal((n_samples,) + t[2].shape[:2], dtype=dt) for t in terms]
    rhs += _apply_terms(terms, xi, 2)
    diag = sum(t[0].adjoint(np.ascontiguousarray(np.einsum("nii->ni", t[1])))
               for t in terms)                 # diagonal of the prior part of P
    shift = max(float(np.mean(diag)), 1e-12)

    def apply(u):
        out = op.adjoint(op.forward(u)).real * dt.type(inv_n2)
        out += _apply_terms(terms, u, 1)
        return out.astype(dt, copy=False)

    from ._cg import conjugate_gradient
    from .posterior import gram_preconditioner

    u = conjugate_gradient(apply, rhs.astype(dt), np.zeros_like(rhs, dtype=dt),
                           cg_iter=problem.cg_iter, tol=1e-3,
                           precondition=gram_preconditioner(op, inv_n2, shift), n_batch=1)
    return x_map[np.newaxis] + u, x_map, n_evals, None

"""Gaussian-mixture patch prior with full covariances, noise-aware (EPLL-style).

Patches ``v ∈ Rᵈ`` are split into their mean (DC) and the zero-mean part, written in an
orthonormal basis ``B`` (d × m, m = d − 1, ``Bᵀ1 = 0``) as ``c = Bᵀv``. The zero-mean part
follows a Gaussian mixture with full covariances, the DC is left free (a flat prior, as in
EPLL, Zoran & Weiss 2011):

.. math::  p(c) = \\sum_k w_k\\, \\mathcal N(c;\\ μ_k,\\ C_k), \\qquad
           C_k = U_k \\operatorname{diag}(λ_k) U_kᵀ

Smoothed by isotropic noise of level σ (``Bᵀn ~ N(0, σ² I_m)``) every component widens to
``C_k + σ² I``, so the score at noise level σ is exact:

.. math::  s_V(v; σ) = -B \\sum_k r_k(c)\\, U_k \\frac{U_kᵀ (c - μ_k)}{λ_k + σ^2},
           \\qquad r_k ∝ w_k\\, \\mathcal N(c;\\ μ_k,\\ C_k + σ^2 I)

and Tweedie's denoiser ``v + σ² s_V`` is the responsibility-weighted Wiener filter of the
components. :meth:`GaussianMixturePatchScore.fit` runs EM on training patches.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg, special

from ._deprecation import renamed_arguments
from ._validation import as_float_array, check_int, check_rng, check_scalar

__all__ = ["GaussianMixturePatchScore", "zero_mean_basis"]

#: Patches per chunk (the (chunk, K·m) projections stay in cache: 2048 was 1.3-2x slower).
_CHUNK = 512
#: The score sums the kept (patch, component) pairs one component at a time when fewer than
#: this fraction of them is kept (small σ: a few components per patch), else it takes one
#: dense product over all of them (the crossover measured at about one half).
_SPARSE_BELOW = 0.4


def zero_mean_basis(d: int) -> NDArray[np.float64]:
    """Orthonormal basis (d, d − 1) of the vectors with zero mean (Helmert contrasts)."""
    d = check_int(d, "d", low=2)
    B = np.zeros((d, d - 1))
    for j in range(1, d):              # column j-1: (1, …, 1, −j, 0, …)/√(j(j+1))
        B[:j, j - 1] = 1.0
        B[j, j - 1] = -float(j)
        B[:, j - 1] /= math.sqrt(j * (j + 1.0))
    return B


class GaussianMixturePatchScore:
    """Noise-aware Gaussian-mixture score of DC-removed patches (full covariances).

    Parameters
    ----------
    patch_size : int or (int, int)
    means : ndarray (K, m)
        Component means in the zero-mean basis (``m = d − 1``).
    eigenvalues : ndarray (K, m), >= 0
    eigenvectors : ndarray (K, m, m), orthonormal columns
    weights : ndarray (K,), positive, summing to 1
    sigma_min, sigma_max : float > 0
        Noise range the prior is meant for; ``score`` without σ uses σ_min, and the
        reconstruction schedules never go below σ_min.
    prune : float in [0, 1)
        Components whose responsibility for a patch is below `prune` are left out of that
        patch's score (``0``: exact; the default 1e-4 changes a score by at most
        ``K · prune`` of its size).

    Attributes
    ----------
    n_components, patch_dim, basis (d, m), invariances (dict, ``dc=True``)
    """

    kind = "gaussian_mixture_patch_score"

    def __init__(self, patch_size: int | Sequence[int], means: ArrayLike,
                 eigenvalues: ArrayLike, eigenvectors: ArrayLike, weights: ArrayLike, *,
                 sigma_min: float = 0.005, sigma_max: float = 1.0, prune: float = 1e-4,
                 training: dict[str, Any] | None = None) -> None:
        p = ((patch_size, patch_size) if np.ndim(patch_size) == 0
             else tuple(cast(Sequence[int], patch_size)))
        self.patch_size = tuple(check_int(v, "patch_size", low=1) for v in p)
        d = math.prod(self.patch_size)
        self.patch_dim = d
        m = d - 1
        means = as_float_array(means, "means", ndim=2, finite=True).astype(np.float64)
        K = means.shape[0]
        lam = as_float_array(eigenvalues, "eigenvalues", ndim=2, finite=True)
        U = as_float_array(eigenvectors, "eigenvectors", ndim=3, finite=True)
        w = as_float_array(weights, "weights", ndim=1, finite=True).astype(np.float64)
        if means.shape != (K, m) or lam.shape != (K, m) or U.shape != (K, m, m) or \
                w.shape != (K,):
            raise ValueError(f"a {d}-pixel patch mixture needs means (K, {m}), eigenvalues "
                             f"(K, {m}), eigenvectors (K, {m}, {m}) and weights (K,); got "
                             f"{means.shape}, {lam.shape}, {U.shape}, {w.shape}.")
        if np.any(lam < 0):
            raise ValueError("`eigenvalues` must be >= 0.")
        if np.any(w <= 0) or abs(w.sum() - 1.0) > 1e-6:
            raise ValueError("`weights` must be positive and sum to 1.")
        self.means = means
        self.eigenvalues = lam.astype(np.float64)
        self.eigenvectors = U.astype(np.float64)
        self.weights = w
        self.n_components = K
        self.basis = zero_mean_basis(d)
        self.sigma_min = check_scalar(sigma_min, "sigma_min", low=0, low_inclusive=False)
        self.sigma_max = check_scalar(sigma_max, "sigma_max", low=self.sigma_min)
        self.prune = check_scalar(prune, "prune", low=0, high=1, high_inclusive=False)
        self.training = dict(training or {})
        self.invariances = {"dc": True, "contrast": False, "symmetrize": False,
                            "intensity": "none"}
        self._products: tuple[NDArray[np.float64], ...] | None = None

    # ---------------------------------------------------------------- evaluation
    def _arrays(self):
        """Float64, σ-free: ``B U`` (d, K·m) with the K eigenbases side by side, ``Uᵀ Bᵀ``
        (K·m, d) stacked, and ``(U_kᵀ μ_k)_k`` (K·m,)."""
        if self._products is None:          # one assignment: safe to fill from any thread
            K, m = self.means.shape
            U = self.eigenvectors
            self._products = (self.basis @ U.transpose(1, 0, 2).reshape(m, K * m),
                              U.transpose(0, 2, 1).reshape(K * m, m) @ self.basis.T,
                              np.einsum("km,kmj->kj", self.means, U).reshape(-1))
        return self._products

    def _check(self, patches, sigma):
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        if arr.shape[1] != self.patch_dim:
            raise ValueError(f"`patches` must have {self.patch_dim} columns (patch size "
                             f"{self.patch_size}); got shape {arr.shape}.")
        sigma = self.sigma_min if sigma is None else check_scalar(sigma, "sigma", low=0)
        return arr, float(sigma)

    def _chunk(self, v1, P, Q, const, want_score, Z, W):
        """log p_σ(Bᵀv) (n,) and, if asked, the score s_V(v; σ) (n, d), of one chunk
        ``v1 = [v, 1]`` (n, d + 1): one product gives the whitened coordinates
        ``z_k = (U_kᵀ(Bᵀv − μ_k)) / sqrt(λ_k + σ²)`` of every component, ``z = v1 P``, and
        the score is ``−Σ_k r_k z_k Q_k`` with ``Q_k = diag(1/sqrt(λ_k + σ²)) U_kᵀ Bᵀ``;
        `const` holds the components' log weights and normalisers (K,); `Z`, `W`: scratch
        of at least (n, K·m) (reused: no page faults per chunk)."""
        K, m = self.means.shape
        n = v1.shape[0]
        Z, W = Z[:n], W[:n]
        np.matmul(v1, P, out=Z)                                        # (n, K·m): z_k
        np.square(Z, out=W)
        maha = W.reshape(n, K, m) @ np.ones(m, dtype=Z.dtype)          # (n, K): ‖z_k‖²
        e = const - 0.5 * maha                                         # float64
        top = e.max(axis=1, keepdims=True)
        np.exp(e - top, out=e)
        total = e.sum(axis=1, keepdims=True)
        lse = (top + np.log(total))[:, 0]                              # log Σ_k exp e_k
        if not want_score:
            return lse, None
        r = (e / total).astype(Z.dtype)                                # responsibilities
        if self.prune > 0:
            r[r <= self.prune] = 0
        Z3 = Z.reshape(n, K, m)
        kept = r > 0
        if kept.mean() >= _SPARSE_BELOW:                               # Σ_k r_k z_k Q_k, dense
            np.multiply(Z3, r[:, :, None], out=W.reshape(n, K, m))
            return lse, -(W @ Q)
        g = np.zeros((n, Q.shape[1]), dtype=Z.dtype)                   # the kept pairs only
        for k in np.flatnonzero(kept.any(axis=0)):
            rows = np.flatnonzero(kept[:, k])
            g[rows] += (Z3[rows, k] * r[rows, k, None]) @ Q[k * m:(k + 1) * m]
        return lse, -g

    def _chunks(self, arr, s2, want_score):
        """:meth:`_chunk` over chunks of `_CHUNK` rows: (log p_σ (N,), score (N, d) or None).
        The products run on NumPy's BLAS threads (:func:`fastscore.set_num_threads` caps
        them)."""
        BU, UB, muU = self._arrays()
        var = self.eigenvalues + s2                                    # (K, m)
        scale = 1.0 / np.sqrt(var.reshape(-1))
        d = self.patch_dim
        P = np.empty((d + 1, scale.size), dtype=arr.dtype)             # [B U; −μU] / sqrt(var)
        np.multiply(BU, scale, out=P[:d], casting="same_kind")
        np.multiply(muU, -scale, out=P[d], casting="same_kind")
        Q = (UB * scale[:, None]).astype(arr.dtype)
        const = np.log(self.weights) - 0.5 * np.sum(np.log(2 * np.pi * var), axis=1)
        lse = np.empty(arr.shape[0])
        out = np.empty_like(arr) if want_score else None
        rows = min(_CHUNK, arr.shape[0])
        v1 = np.empty((rows, d + 1), dtype=arr.dtype)
        v1[:, d] = 1
        scratch = [np.empty((rows, scale.size), dtype=arr.dtype) for _ in range(2)]
        for lo in range(0, arr.shape[0], _CHUNK):
            n = min(_CHUNK, arr.shape[0] - lo)
            v1[:n, :d] = arr[lo:lo + n]
            a, g = self._chunk(v1[:n], P, Q, const, want_score, *scratch)
            lse[lo:lo + n] = a
            if out is not None:
                out[lo:lo + n] = g
        return lse, out

    def score(self, patches: ArrayLike, sigma: float | None = None) -> NDArray[np.floating]:
        """``s_V(v; σ)`` of shape (N, d) in the dtype of `patches` (see the module formula)."""
        arr, sigma = self._check(patches, sigma)
        return self._chunks(arr, sigma * sigma, True)[1]

    def log_density(self, patches: ArrayLike, sigma: float | None = None
                    ) -> NDArray[np.float64]:
        """``log p_σ(Bᵀv)`` of shape (N,) (the DC direction carries no density)."""
        arr, sigma = self._check(patches, sigma)
        return self._chunks(arr.astype(np.float64), sigma ** 2, False)[0]

    def denoise(self, patches: ArrayLike, sigma: float | None = None) -> NDArray[np.floating]:
        """Tweedie's MMSE denoiser ``v + σ² s_V(v; σ)``."""
        arr, s = self._check(patches, sigma)
        return arr + arr.dtype.type(s * s) * self.score(arr, s)

    def lipschitz(self, sigma: float | None) -> float:
        """``max_k 1 / (min λ_k + σ²)``: the largest curvature of one component."""
        s2 = 0.0 if sigma is None else float(sigma) ** 2
        return 1.0 / (float(self.eigenvalues.min()) + s2)

    # ---------------------------------------------------------------- fitting
    @classmethod
    @renamed_arguments(n_iter="n_steps")
    def fit(cls, patches: ArrayLike, patch_size: int | tuple[int, int], n_components: int, *,
            n_steps: int = 30, reg: float = 1e-6, rng: int | np.random.Generator | None = None,
            sigma_min: float = 0.005, sigma_max: float = 1.0,
            prune: float = 1e-4) -> GaussianMixturePatchScore:
        """EM for the mixture of the DC-removed patches, from a k-means++ start.

        Parameters
        ----------
        patches : ndarray (N, d)
        patch_size : int or (int, int)
        n_components : int >= 1
        n_steps : int >= 1
            EM iterations, each: responsibilities, then weights, means, covariances
            (formerly ``n_iter``).
        reg : float >= 0
            Added to every covariance's diagonal (keeps them positive definite).
        rng : None, int or Generator
            The k-means++ seeding (the only randomness).

        Returns
        -------
        GaussianMixturePatchScore
        """
        X = as_float_array(patches, "patches", ndim=2, finite=True).astype(np.float64)
        K = check_int(n_components, "n_components", low=1)
        n_steps = check_int(n_steps, "n_steps", low=1)
        reg = check_scalar(reg, "reg", low=0)
        rng = check_rng(rng)
        d = X.shape[1]
        if X.shape[0] < 2 * K:
            raise ValueError(f"`patches` needs at least 2·n_components = {2 * K} rows; got "
                             f"{X.shape[0]}.")
        C = X @ zero_mean_basis(d)
        resp = _kmeans_responsibilities(C, K, rng)
        log_lik = []
        for _ in range(n_steps):
            w, mu, cov = _m_step(C, resp, reg)
            lam, U = np.linalg.eigh(cov)
            e = np.empty((len(C), K))
            for k in range(K):
                L = linalg.cholesky(cov[k], lower=True)
                z = linalg.solve_triangular(L, (C - mu[k]).T, lower=True)
                e[:, k] = (math.log(w[k]) - np.log(np.diag(L)).sum()
                           - 0.5 * np.einsum("ij,ij->j", z, z))
            lse = special.logsumexp(e, axis=1)
            log_lik.append(float(lse.mean() - 0.5 * C.shape[1] * math.log(2 * math.pi)))
            resp = np.exp(e - lse[:, None])
        w, mu, cov = _m_step(C, resp, reg)
        lam, U = np.linalg.eigh(cov)
        return cls(patch_size, mu, np.clip(lam, 0, None), U, w, sigma_min=sigma_min,
                   sigma_max=sigma_max, prune=prune,
                   training={"n_patches": int(X.shape[0]), "n_iter": n_steps, "reg": reg,
                             "log_likelihood": log_lik})

    def sharpened(self, variance: float, *, floor: float = 1e-6) -> GaussianMixturePatchScore:
        """The mixture with every component's covariance reduced by ``variance · I``:
        eigenvalues ``max(λ − variance, floor)``, the rest unchanged.

        The mixture of the clean patches when the training patches carried white noise of
        that variance (the fitted ``C_k`` is then ``C_k^clean + variance · I``); also a
        prior-strength setting chosen on validation images (the shipped "natural" prior).
        """
        variance = check_scalar(variance, "variance", low=0)
        floor = check_scalar(floor, "floor", low=0, low_inclusive=False)
        training = dict(self.training, sharpened=variance)
        return type(self)(self.patch_size, self.means,
                          np.maximum(self.eigenvalues - variance, floor), self.eigenvectors,
                          self.weights, sigma_min=self.sigma_min, sigma_max=self.sigma_max,
                          prune=self.prune, training=training)

    @property
    def n_params(self) -> int:
        """Stored numbers: means, eigenvalues, eigenvectors and weights."""
        K, m = self.means.shape
        return K * (2 * m + m * m + 1)

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description (everything but the arrays)."""
        return {"patch_size": list(self.patch_size), "n_components": self.n_components,
                "sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "prune": self.prune,
                "invariances": dict(self.invariances), "training": self.training}

    # ---------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> str:
        """Write to `path` (``.npz`` + JSON metadata, atomically, float32 arrays)."""
        from .model_file import write_model_file

        arrays = {"means": self.means.astype(np.float32),
                  "eigenvalues": self.eigenvalues.astype(np.float32),
                  "eigenvectors": self.eigenvectors.astype(np.float32),
                  "weights": self.weights}
        return write_model_file(path, self.kind, arrays, self.get_config())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GaussianMixturePatchScore:
        """Read a file written by :meth:`save` (``ModelFileError`` if it is not one)."""
        from .model_file import ModelFileError, read_model_file

        arrays, meta = read_model_file(path, cls.kind)
        try:
            return cls(tuple(meta["patch_size"]), arrays["means"], arrays["eigenvalues"],
                       arrays["eigenvectors"], arrays["weights"], sigma_min=meta["sigma_min"],
                       sigma_max=meta["sigma_max"], prune=meta["prune"],
                       training=meta.get("training"))
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ModelFileError(path, f"not a valid Gaussian-mixture patch score: "
                                       f"{what}") from None

    def __repr__(self) -> str:
        return (f"GaussianMixturePatchScore(patch_size={self.patch_size}, "
                f"n_components={self.n_components}, sigma=[{self.sigma_min:g}, "
                f"{self.sigma_max:g}])")


def _m_step(C, resp, reg):
    nk = resp.sum(axis=0) + 1e-10                                     # (K,)
    w = nk / nk.sum()
    mu = (resp.T @ C) / nk[:, None]
    m = C.shape[1]
    cov = np.empty((len(nk), m, m))
    for k in range(len(nk)):
        D = C - mu[k]
        cov[k] = (D * resp[:, k, None]).T @ D / nk[k] + reg * np.eye(m)
    return w, mu, cov


def _kmeans_responsibilities(C, K, rng, n_lloyd=5):
    """Hard assignments (N, K) from k-means++ seeding and a few Lloyd iterations."""
    n = len(C)
    centres = [C[int(rng.integers(0, n))]]
    dist = np.sum((C - centres[0]) ** 2, axis=1)
    for _ in range(1, K):
        p = dist / dist.sum() if dist.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(C[int(rng.choice(n, p=p))])
        dist = np.minimum(dist, np.sum((C - centres[-1]) ** 2, axis=1))
    centres = np.array(centres)
    sq = np.sum(C * C, axis=1)
    for _ in range(n_lloyd):
        label = np.argmin(sq[:, None] - 2 * C @ centres.T + np.sum(centres ** 2, axis=1),
                          axis=1)
        for k in range(K):
            sel = label == k
            if sel.any():
                centres[k] = C[sel].mean(axis=0)
    resp = np.zeros((n, K))
    resp[np.arange(n), label] = 1.0
    return resp

"""The Gaussian-KDE score over training points split across Dask workers (:class:`ShardedKDE`)."""

import math

import numpy as np

from ._optional import import_optional
from ._validation import as_float_array, check_int, check_scalar, check_scale

__all__ = ["ShardedKDE", "combine_shards"]


def _fit_shard(points, bandwidth, n_threads):
    from .kde import GaussianKDE

    return GaussianKDE(bandwidth, n_threads=n_threads).fit(points)


def _dtype(kde):
    return kde.X_.dtype


def _shard_terms(kde, Q):
    """One shard's ``(L_j, M_j)`` in float64: ``L_j = log Σ_{t∈j} w_t`` (its max exponent
    plus the log of its sum) and ``M_j = Σ w_t x_t / Σ w_t`` (its weighted sum over its sum),
    from the compiled kernel's score and log-density of the shard."""
    score, log_density = kde.score_and_log_density(Q)
    h2 = kde.bandwidth ** 2
    d = kde.n_dims_
    L = log_density.astype(np.float64) + math.log(kde.n_points_) + 0.5 * d * math.log(
        2 * math.pi * h2)
    M = np.asarray(Q, dtype=np.float64) + h2 * score.astype(np.float64)
    return L, M


def combine_shards(Q, terms, n_points, bandwidth):
    """Exact KDE score and log-density from per-shard ``(L_j, M_j)``.

    With ``m = max_j L_j``, ``S = Σ_j e^{L_j − m}`` and ``W = Σ_j e^{L_j − m} M_j`` (the
    log-sum-exp reduction of the shards' (max, sum, weighted sum)):

    .. math::  s(q) = \\frac{W / S − q}{h^2}, \\qquad
               \\log q_h(q) = m + \\log S − \\log T − \\frac d2 \\log(2π h^2)

    Parameters
    ----------
    Q : ndarray of shape (n_queries, n_dims)
    terms : list of (L_j of shape (n_queries,), M_j of shape (n_queries, n_dims))
    n_points : int, T (all shards)
    bandwidth : float, h

    Returns
    -------
    score : ndarray (n_queries, n_dims), float64
    log_density : ndarray (n_queries,), float64
    """
    L = np.stack([t[0] for t in terms])                  # (n_shards, n_queries)
    top = L.max(axis=0)
    weights = np.exp(L - top)
    total = weights.sum(axis=0)
    mean = np.einsum("jn,jnd->nd", weights, np.stack([t[1] for t in terms])) / total[:, None]
    h2 = bandwidth ** 2
    score = (mean - np.asarray(Q, dtype=np.float64)) / h2
    d = score.shape[1]
    log_density = top + np.log(total) - math.log(n_points) - 0.5 * d * math.log(
        2 * math.pi * h2)
    return score, log_density


class ShardedKDE:
    """:class:`fastscore.GaussianKDE` with its training points split across Dask workers.

    Each worker fits a :class:`~fastscore.GaussianKDE` on its shard (the points stay on the
    worker); a query runs on every shard and the per-shard results are combined exactly
    (:func:`combine_shards`), so the score equals the single-machine
    ``GaussianKDE(bandwidth).fit(X).score(Q)`` up to float rounding.

    Parameters
    ----------
    bandwidth : float > 0
    client : distributed.Client, optional
        Default: the current client.
    n_threads : int, optional
        Threads of each shard's kernel.

    Attributes
    ----------
    n_points_ : int, T
    n_dims_ : int
    n_shards_ : int
    """

    def __init__(self, bandwidth, *, client=None, n_threads=None):
        from ._dask_dataset import _client

        self.bandwidth = check_scalar(bandwidth, "bandwidth", low=0, low_inclusive=False)
        self.client = _client(client)
        self.n_threads = n_threads

    def fit(self, X, *, n_shards=None):
        """Split the rows of `X` into `n_shards` (default: one per worker) and fit each on
        a worker.

        Parameters
        ----------
        X : ndarray of shape (n_points, n_dims), or a dask array (its row blocks are the
            shards, never gathered on the client), or a list of such arrays (the shards)
        n_shards : int >= 1, optional (ndarray input only)
        """
        dask = import_optional("dask", "dask")
        da = import_optional("dask.array", "dask")
        if isinstance(X, da.Array):
            if X.ndim != 2:
                raise ValueError(f"`X` must have shape (n_points, n_dims); got {X.shape}.")
            blocks = X.rechunk({1: -1}).to_delayed().ravel()
            self._shards = self.client.compute([
                dask.delayed(_fit_shard)(b, self.bandwidth, self.n_threads)
                for b in blocks])
            self.n_points_, self.n_dims_ = int(X.shape[0]), int(X.shape[1])
        else:
            parts = X if isinstance(X, (list, tuple)) else None
            if parts is None:
                arr = as_float_array(X, "X", ndim=2, finite=True)
                n = len(self.client.scheduler_info()["workers"]) if n_shards is None else \
                    check_int(n_shards, "n_shards", low=1)
                parts = np.array_split(arr, min(max(n, 1), arr.shape[0]))
            parts = [as_float_array(p, "X shard", ndim=2, finite=True) for p in parts]
            if len({p.shape[1] for p in parts}) != 1 or len({p.dtype for p in parts}) != 1:
                raise ValueError("the shards of `X` must share their number of columns and "
                                 "their dtype.")
            self._shards = [self.client.submit(_fit_shard, p, self.bandwidth, self.n_threads,
                                               pure=False) for p in parts]
            self.n_points_ = sum(p.shape[0] for p in parts)
            self.n_dims_ = parts[0].shape[1]
        self.n_shards_ = len(self._shards)
        self.dtype_ = np.dtype(self.client.submit(_dtype, self._shards[0]).result())
        return self

    def score_and_log_density(self, Q):
        """Score and log-density at the queries (one pass over every shard).

        Parameters
        ----------
        Q : ndarray of shape (n_queries, n_dims), the fitted dtype

        Returns
        -------
        score : ndarray (n_queries, n_dims), log_density : ndarray (n_queries,)
            In the fitted dtype.
        """
        if not hasattr(self, "_shards"):
            raise RuntimeError("this ShardedKDE is not fitted; call fit(X) first.")
        arr = as_float_array(Q, "Q", ndim=2, finite=True, allow_empty=True)
        if arr.shape[1] != self.n_dims_:
            raise ValueError(f"`Q` must have shape (n_queries, {self.n_dims_}); got "
                             f"{arr.shape}.")
        if arr.dtype != self.dtype_:
            raise TypeError(f"`Q` has dtype {arr.dtype} but the KDE was fitted on "
                            f"{self.dtype_}; cast one of them explicitly.")
        check_scale(self.bandwidth, "bandwidth", arr.dtype)
        q = self.client.scatter(arr, broadcast=True, hash=False)
        terms = self.client.gather([self.client.submit(_shard_terms, kde, q, pure=False)
                                    for kde in self._shards])
        score, log_density = combine_shards(arr, terms, self.n_points_, self.bandwidth)
        return score.astype(arr.dtype), log_density.astype(arr.dtype)

    def score(self, Q):
        """``∇ log q_h(Q)``, shape (n_queries, n_dims)."""
        return self.score_and_log_density(Q)[0]

    def log_density(self, Q):
        """``log q_h(Q)``, shape (n_queries,)."""
        return self.score_and_log_density(Q)[1]

    def __repr__(self):
        fitted = (f", {self.n_shards_} shards of {self.n_points_} x {self.n_dims_}"
                  if hasattr(self, "_shards") else "")
        return f"ShardedKDE(bandwidth={self.bandwidth!r}{fitted})"

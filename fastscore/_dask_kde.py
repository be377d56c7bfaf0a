"""The Gaussian-KDE score over training points split across Dask workers (:class:`ShardedKDE`)."""

import contextlib
import math

import numpy as np

from ._optional import import_optional
from ._validation import as_float_array, check_int, check_scalar, check_scale

__all__ = ["ShardedKDE", "combine_shards"]


def _client_of_dask():
    from ._dask_dataset import _client

    return _client(None)


def _fit_shard(points, bandwidth, n_threads):
    """One shard on its worker: its points in a :class:`~fastscore.prior.KDEPatchScore`
    (a Gaussian KDE per kernel width ``sqrt(h² + σ²)`` and dtype, built once, cached)."""
    from .prior import KDEPatchScore

    shard = KDEPatchScore(points, bandwidth, n_threads=n_threads)
    if bandwidth > 0:
        shard._kde(None, shard._train.dtype)
    return shard


def _dtype(shard):
    return shard._train.dtype


def _shard_terms(shard, Q, sigma=None):
    """One shard's ``(L_j, M_j)`` in float64 for the kernel width ``h = sqrt(h_0² + σ²)``:
    ``L_j = log Σ_{t∈j} w_t`` (its max exponent plus the log of its sum) and
    ``M_j = Σ w_t x_t / Σ w_t`` (its weighted sum over its sum), from the compiled
    kernel's score and log-density of the shard."""
    kde = shard._kde(sigma, Q.dtype)
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

    Each worker holds its shard (the points stay on the worker); a query runs on every
    shard and the per-shard results are combined exactly (:func:`combine_shards`), so the
    score equals the single-machine ``GaussianKDE(bandwidth).fit(X).score(Q)`` up to
    float rounding.

    It is also a patch score (the protocol of :class:`~fastscore.prior.KDEPatchScore`):
    ``score(patches, sigma)`` is the KDE score with kernel width ``sqrt(h² + σ²)``, equal
    to ``KDEPatchScore(X, h).score(patches, sigma)`` up to float rounding, so
    ``PatchPrior(ShardedKDE(h).fit(X), patch_size)`` is an image prior for
    :func:`~fastscore.map_estimate` and :func:`~fastscore.distributed.denoise_dask`. Called
    inside a Dask task (the block tasks of ``denoise_dask``), it submits its shard tasks
    from there (``distributed.worker_client``: the task leaves the worker's thread pool
    while it waits).

    Parameters
    ----------
    bandwidth : float >= 0
        ``h``; 0 (the empirical distribution) only as a patch score with σ > 0.
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

        self.bandwidth = check_scalar(bandwidth, "bandwidth", low=0)
        self.client = _client(client)
        self.n_threads = n_threads

    def __getstate__(self):                  # sent to workers without the client: a task
        state = dict(self.__dict__)           # resolves its own (worker_client)
        state["client"] = None
        return state

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

    def score_and_log_density(self, Q, sigma=None):
        """Score and log-density at the queries (one pass over every shard).

        Parameters
        ----------
        Q : ndarray of shape (n_queries, n_dims)
            The fitted dtype when `sigma` is None (as :class:`~fastscore.GaussianKDE`);
            with a `sigma` (the patch-score call) the shards' points are cast to Q's
            dtype, as :class:`~fastscore.prior.KDEPatchScore` does.
        sigma : float >= 0, optional
            Noise level: the kernel width is ``sqrt(h² + σ²)``.

        Returns
        -------
        score : ndarray (n_queries, n_dims), log_density : ndarray (n_queries,)
            In Q's dtype.
        """
        if not hasattr(self, "_shards"):
            raise RuntimeError("this ShardedKDE is not fitted; call fit(X) first.")
        arr = as_float_array(Q, "Q", ndim=2, finite=True, allow_empty=True)
        if arr.shape[1] != self.n_dims_:
            raise ValueError(f"`Q` must have shape (n_queries, {self.n_dims_}); got "
                             f"{arr.shape}.")
        if sigma is None and arr.dtype != self.dtype_:
            raise TypeError(f"`Q` has dtype {arr.dtype} but the KDE was fitted on "
                            f"{self.dtype_}; cast one of them explicitly.")
        if sigma is not None:
            sigma = check_scalar(sigma, "sigma", low=0)
        h = math.hypot(self.bandwidth, 0.0 if sigma is None else sigma)
        if h <= 0:
            raise ValueError("`sigma` must be > 0 when the KDE bandwidth is 0.")
        check_scale(h, "sqrt(bandwidth² + sigma²)", arr.dtype)
        with self._connected() as client:
            q = client.scatter(arr, broadcast=True, hash=False)
            terms = client.gather([client.submit(_shard_terms, shard, q, sigma, pure=False)
                                   for shard in self._shards])
        score, log_density = combine_shards(arr, terms, self.n_points_, h)
        return score.astype(arr.dtype), log_density.astype(arr.dtype)

    def _connected(self):
        """The client to submit with: this object's, or inside a task the worker's."""
        distributed = import_optional("distributed", "dask")
        try:
            distributed.get_worker()
        except ValueError:
            if self.client is None:
                self.client = _client_of_dask()
            return contextlib.nullcontext(self.client)
        return distributed.worker_client()

    def score(self, Q, sigma=None):
        """``∇ log q_h(Q)``, shape (n_queries, n_dims); with `sigma`, of the KDE of width
        ``sqrt(h² + σ²)`` (the patch-score protocol)."""
        return self.score_and_log_density(Q, sigma)[0]

    def log_density(self, Q, sigma=None):
        """``log q_h(Q)``, shape (n_queries,)."""
        return self.score_and_log_density(Q, sigma)[1]

    def __repr__(self):
        fitted = (f", {self.n_shards_} shards of {self.n_points_} x {self.n_dims_}"
                  if hasattr(self, "_shards") else "")
        return f"ShardedKDE(bandwidth={self.bandwidth!r}{fitted})"

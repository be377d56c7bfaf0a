"""Gaussian kernel density estimate: its score (gradient of the log-density) and log-density.

The nonparametric score of a training set: the exact sum over every training point,
streamed by a compiled kernel (blocked over queries and training points, online
log-sum-exp, SIMD exp, OpenMP over queries) that never forms the N × T kernel matrix.
"""

from __future__ import annotations

__all__ = ["GaussianKDE"]

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._threads import resolve_n_threads
from ._ext import kde as _kernels
from ._validation import as_float_array, check_float_dtype_match, check_scalar, check_scale


def _aligned_empty(shape, dtype, align):
    """C-contiguous empty array whose data starts on an `align`-byte boundary."""
    dtype = np.dtype(dtype)
    n = math.prod(shape)
    raw = np.empty(n + align // dtype.itemsize, dtype=dtype)
    offset = (-raw.ctypes.data % align) // dtype.itemsize
    return raw[offset:offset + n].reshape(shape)


class GaussianKDE:
    """Score and log-density of a Gaussian kernel density estimate.

    .. math::

        q_\\sigma(x) = \\frac{1}{T} \\sum_{t=1}^{T} \\mathcal N(x;\\, x_t, \\sigma^2 I),
        \\qquad
        s(x) = \\nabla_x \\log q_\\sigma(x)
             = \\frac{1}{\\sigma^2} \\Big( \\frac{\\sum_t w_t\\, x_t}{\\sum_t w_t} - x \\Big),
        \\quad w_t = e^{-\\|x - x_t\\|^2 / (2\\sigma^2)}

    with training points :math:`x_t` (the rows of ``X`` given to :meth:`fit`) and bandwidth
    :math:`\\sigma`. With ``exclude_self=True`` the point itself is left out when scoring
    the training points: for row :math:`i` of ``Q = X`` the sums run over :math:`t \\ne i`
    and :math:`T` becomes :math:`T - 1` (leave-one-out).

    Parameters
    ----------
    bandwidth : float > 0
        Kernel standard deviation :math:`\\sigma`, in the units of the data: the same
        quantity as :class:`fastscore.prior.KDEPatchScore`'s ``bandwidth`` (there the
        kernel of the clean patches, widened to :math:`\\sqrt{h^2 + \\sigma^2}` at a
        noise level).
    exclude_self : bool, default False
        Leave-one-out scoring of the training points. When True, the queries given to
        :meth:`score` / :meth:`log_density` must be the fitted ``X`` itself (same shape and
        values; this is checked), and query row ``i`` leaves out training point ``i``.
        Needs at least 2 training points.
    n_threads : int, optional
        Threads of the compiled kernel; ``None`` uses :func:`fastscore.get_num_threads`.
        Results do not depend on it.

    Attributes
    ----------
    X_ : ndarray of shape (n_points, n_dims)
        Read-only C-contiguous copy of the training points (float32 or float64).
    n_points_ : int
        :math:`T`.
    n_dims_ : int
        :math:`d`.

    Notes
    -----
    Cost O(N T d) per call for N queries, memory O(N d + T d): the training set is streamed
    tile by tile (a tile stays in the L1 cache) past blocks of queries, with a running
    maximum of the exponents (online log-sum-exp), so a query far from every training
    point, even 10⁴ σ away, gets a finite score pointing at its nearest training point.
    Squared distances are formed from coordinate differences (no cancellation), the
    exponential is a SIMD polynomial, and the long sums over T are accumulated in double
    also for float32 data (float32 maximum relative score error ≈ 1e-6 against a float64
    evaluation of the same data). Threads split the queries with a static schedule, so
    the result is identical for any thread count. float32 is about twice as fast as
    float64. Training points whose weight is exactly 0 in the kernel's arithmetic (more than
    2¹²⁷ below the running maximum in float32, 2¹⁰²³ in float64) are skipped, found by a
    rounding-safe bound from ``‖x‖²`` and ``q·x`` (d ≤ 16) before their distance is formed;
    the result is identical to summing them, and the saving is large when σ is small next
    to the spread of the data. A fitted KDE holds no scratch: :meth:`score` and
    :meth:`log_density` may be called from several Python threads at once (same results as
    serial calls); :meth:`fit` replaces the training set for every thread.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore import GaussianKDE
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 2))
    >>> kde = GaussianKDE(0.5).fit(X)
    >>> s = kde.score(np.zeros((1, 2)))
    >>> s.shape, bool(np.all(np.abs(s) < 1))
    ((1, 2), True)
    >>> kde.log_density(np.zeros((1, 2))).round(1)
    array([-2.1])
    """

    # the kernel's far-vector bound (results identical with or without); tests turn it off
    _skip_far = True

    def __init__(self, bandwidth: float, *, exclude_self: bool = False,
                 n_threads: int | None = None) -> None:
        self.bandwidth = check_scalar(bandwidth, "bandwidth", low=0, low_inclusive=False)
        check_scale(self.bandwidth, "bandwidth", np.float64)   # float32 data: checked at use
        if not isinstance(exclude_self, (bool, np.bool_)):
            raise TypeError(f"`exclude_self` must be a bool; got {exclude_self!r}.")
        self.exclude_self = bool(exclude_self)
        self.n_threads = None if n_threads is None else resolve_n_threads(n_threads)

    def fit(self, X: ArrayLike) -> GaussianKDE:
        """Store the training points (and their SIMD-friendly packed layout).

        Parameters
        ----------
        X : array_like of shape (n_points, n_dims)
            Finite training points :math:`x_t`, at least one (two with
            ``exclude_self=True``). float32 and float64 are kept; other real dtypes follow
            the package table (int/bool → float64, float16 → float32).

        Returns
        -------
        self : GaussianKDE

        Raises
        ------
        ValueError
            If `X` is not 2-D, is empty, holds NaN/Inf, or has a single row while
            ``exclude_self=True``.
        TypeError
            If `X` is not real-valued.
        """
        arr = as_float_array(X, "X", ndim=2, finite=True)
        arr = np.array(arr, copy=True, order="C")  # our own copy, whatever the input was
        n_points, n_dims = arr.shape
        if self.exclude_self and n_points < 2:
            raise ValueError(
                "`X` needs at least 2 points with exclude_self=True (leave-one-out); "
                f"got shape {arr.shape}.")
        single = arr.dtype == np.float32
        ld = _kernels.leading_dim(n_points, single)
        packed = _aligned_empty((n_dims + 1, ld), arr.dtype, _kernels.ALIGN)  # + norms
        _kernels.pack(arr, packed)
        arr.flags.writeable = False
        self.X_ = arr
        self.n_points_ = n_points
        self.n_dims_ = n_dims
        self._packed = packed
        self._absmax = float(np.max(np.abs(arr)))
        return self

    # -- internals -----------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "X_"):
            raise RuntimeError("this GaussianKDE is not fitted; call fit(X) first.")

    def _check_queries(self, Q):
        """Q -> C-contiguous array of the fitted dtype, shape (N, d)."""
        self._check_fitted()
        dtype = self.X_.dtype
        check_float_dtype_match(Q, "Q", dtype, "the fitted `X`")
        arr = as_float_array(Q, "Q", ndim=2, dtype=dtype, finite=True, allow_empty=True)
        if arr.shape[1] != self.n_dims_:
            raise ValueError(
                f"`Q` must have shape (n_queries, {self.n_dims_}) like the fitted `X` "
                f"(n_dims={self.n_dims_}); got {arr.shape}.")
        if arr.size:
            # every |x_t - q|^2 must be finite in the working dtype
            reach = self._absmax + float(np.max(np.abs(arr)))
            bound = reach * reach * self.n_dims_      # inf, not OverflowError, when huge
            if not bound < np.finfo(dtype).max / 16:
                raise ValueError(
                    f"`Q` and `X` values are too large for {dtype} arithmetic (squared "
                    f"distances would overflow: max |X| = {self._absmax:.3g}, max |Q| = "
                    f"{float(np.max(np.abs(arr))):.3g}); rescale the data or use float64.")
        if self.exclude_self and not (arr.shape == self.X_.shape
                                      and np.array_equal(arr, self.X_)):
            raise ValueError(
                "with exclude_self=True, `Q` must be the fitted training points `X` (shape "
                f"{self.X_.shape}, same values): row i leaves out point i; got shape "
                f"{arr.shape}" + ("" if arr.shape != self.X_.shape else " with other values")
                + ".")
        return arr

    def _check_bandwidth(self, dtype):
        sigma = check_scalar(self.bandwidth, "bandwidth", low=0, low_inclusive=False)
        check_scale(sigma, "bandwidth", dtype)
        info = np.finfo(dtype)
        # the exponent scale log2(e) / (2 sigma^2) must be a finite number of this dtype
        if not (math.log2(math.e) / (2.0 * sigma * sigma) < float(info.max) / 16):
            raise ValueError(
                f"`bandwidth` must be larger than {math.sqrt(8 / float(info.max)):.3g} for "
                f"{np.dtype(dtype)} data; got {self.bandwidth!r}.")
        return sigma

    def _run(self, Q, want_score, want_log_density):
        arr = self._check_queries(Q)
        dtype = arr.dtype
        sigma = self._check_bandwidth(dtype)
        n = arr.shape[0]
        score = np.empty((n, self.n_dims_), dtype=dtype) if want_score else None
        log_density = np.empty(n, dtype=dtype) if want_log_density else None
        if n:
            _kernels.score(self._packed, self.n_points_, arr, sigma,
                           0 if self.exclude_self else -1, score, log_density,
                           self._skip_far, resolve_n_threads(self.n_threads))
        return score, log_density

    # -- public --------------------------------------------------------------------------
    def score(self, Q: ArrayLike) -> NDArray[np.floating]:
        """The score :math:`s(q) = \\nabla \\log q_\\sigma(q)` at each query.

        Parameters
        ----------
        Q : array_like of shape (n_queries, n_dims)
            Finite query points, any layout or byte order. A float dtype must match the
            fitted ``X`` (float32 or float64; ``TypeError`` otherwise); integer and bool
            queries are converted to the fitted dtype. With ``exclude_self=True``, `Q`
            must be the fitted ``X``.

        Returns
        -------
        score : ndarray of shape (n_queries, n_dims)
            Same dtype as ``X``.

        Raises
        ------
        ValueError
            Wrong number of columns or dimensions, NaN/Inf, values whose squared distances
            overflow the dtype, or (``exclude_self=True``) `Q` other than ``X``.
        TypeError
            Float dtype of `Q` different from that of ``X``.
        RuntimeError
            If called before :meth:`fit`.
        """
        return self._run(Q, True, False)[0]

    def log_density(self, Q: ArrayLike) -> NDArray[np.floating]:
        """The normalised log-density :math:`\\log q_\\sigma(q)` at each query.

        .. math::

            \\log q_\\sigma(q) = \\log \\sum_t e^{-\\|q - x_t\\|^2/(2\\sigma^2)} - \\log T
                               - \\frac d2 \\log(2\\pi\\sigma^2)

        Parameters
        ----------
        Q : array_like of shape (n_queries, n_dims)
            As in :meth:`score`.

        Returns
        -------
        log_density : ndarray of shape (n_queries,)
            Same dtype as ``X``.
        """
        return self._run(Q, False, True)[1]

    def score_and_log_density(self, Q: ArrayLike
                              ) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
        """:meth:`score` and :meth:`log_density` from one pass over the training set.

        Returns
        -------
        score : ndarray of shape (n_queries, n_dims)
        log_density : ndarray of shape (n_queries,)
        """
        return self._run(Q, True, True)

    def __repr__(self) -> str:
        fitted = (f", fitted on {self.n_points_} x {self.n_dims_} {self.X_.dtype}"
                  if hasattr(self, "X_") else "")
        return (f"GaussianKDE(bandwidth={self.bandwidth!r}, exclude_self={self.exclude_self}"
                f"{fitted})")

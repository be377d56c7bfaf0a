"""The patch score network: a multilayer perceptron with compiled passes.

:class:`MLP` is a chain of dense layers with **all parameters in one flat contiguous
buffer** (``net.params``; per-layer weights and biases are views into it) and the gradient
in a second one (``net.grad``), so an optimiser updates everything in one fused pass.
``forward`` / ``backward`` (parameter gradient and, on request, the vector-Jacobian
product with the input), ``predict`` (inference in bounded memory) and the exact
``jacobian_diagonal``. The layer products of ``forward``, ``backward`` and ``predict`` run
on a register micro-kernel of fastscore's own (AVX-512 or AVX2 + FMA, picked at run time;
``FASTSCORE_SIMD=avx2|baseline`` caps it) over weights packed once per parameter version,
with bias and the (leaky) ReLU / tanh activations applied as results leave the registers;
on CPUs without AVX2 + FMA, and for ``jacobian_diagonal``, they go through BLAS (scipy's
``cython_blas``). Other elementwise work is one fused compiled pass per layer, and
workspaces are allocated once per batch size and reused. The activations and their initial
weight scales are in :mod:`fastscore._activations`.

Threads. The kernels cut a batch into tiles of rows and run each tile through all layers
on one OpenMP thread, calling BLAS (where used) single-threaded (the scoped limit
``fastscore._threads.single_threaded_blas``, through threadpoolctl), so the
``n_threads`` threads never oversubscribe the cores. Parameter gradients are summed per
fixed group of tiles and the groups are added in a fixed order: results are bitwise
identical for any thread count.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ._deprecation import deprecated_alias, keyword_only
from ._activations import (
    ACTIVATIONS,
    add_jacobian_diagonal_vjp,
    default_activations,
    init_std,
)
from ._threads import effective_threads, resolve_n_threads, single_threaded_blas
from ._weight_pack import WeightPack
from ._validation import (
    as_float_array,
    check_activations,
    check_finite,
    check_float_dtype,
    check_int,
    check_out,
    check_patch_size,
    check_rng,
    check_scalar,
    check_widths,
)

__all__ = ["ACTIVATIONS", "DEFAULT_HIDDEN", "DEFAULT_WIDTHS", "MLP"]

#: Hidden widths of the tutorial's patch model.
DEFAULT_HIDDEN = (40, 80, 160, 320, 320, 160, 80, 40)
#: The tutorial's 3×3 patch model: 9 inputs, the hidden widths, 9 outputs.
DEFAULT_WIDTHS = (9,) + DEFAULT_HIDDEN + (9,)

# Row tiles (tuned on a 2-core AVX-512 machine, see benchmarks/bench_mlp.py): a tile goes
# through all layers on one thread with its activations in that core's cache. Tiles depend
# on the batch size only, never on the thread count (results are thread-count invariant).
_TILE_PREDICT = 1024     # largest inference tile; smaller batches get >= 8 tiles of >= 128
_TILE_PREDICT_MIN = 128
_TILE_TRAIN = 256
_TILE_JACOBIAN = 32
_MAX_SLOTS = 8          # gradient partial sums: min(n_tiles, _MAX_SLOTS) fixed groups


def _kernels():
    # the compiled module, imported on first use and then kept (this runs on every pass:
    # an import statement per call costs the import machinery's lookups each time)
    global _KERNELS
    if _KERNELS is None:
        from ._ext import mlp

        _KERNELS = mlp
    return _KERNELS


_KERNELS = None


# ----------------------------------------------------------------------- BLAS threads


_blas = single_threaded_blas   # BLAS on one thread inside the tile loops


def _predict_tile(n):
    """Inference tile for a batch of n rows: about n/8 (a multiple of 64), in [128, 1024]."""
    tile = -(-n // 8)
    tile = -(-tile // 64) * 64
    return max(_TILE_PREDICT_MIN, min(_TILE_PREDICT, tile))


def _kernel_threads(n_threads):
    """Threads for the tile loop: the resolved count when BLAS can be pinned, else 1."""
    return effective_threads(n_threads, None if _blas.available else 1)


class MLP:
    """Multilayer perceptron with a flat parameter buffer and compiled passes.

    .. math::

        a_0 = x, \\qquad a_l = f_l(a_{l-1} W_l + b_l) \\ (l = 1 \\dots L), \\qquad y = a_L

    for row-major batches :math:`x` of shape ``(N, w_0)``; :math:`W_l` has shape
    ``(w_{l-1}, w_l)`` (so a layer is ``x @ W + b``), :math:`b_l` shape ``(w_l,)``.

    Parameters
    ----------
    widths : sequence of int >= 1, default :data:`DEFAULT_WIDTHS`
        :math:`(w_0, \\dots, w_L)`: input width, hidden widths, output width (at least two
        entries, at most 65). The default is the tutorial's 3×3 patch model
        (9, 40, 80, 160, 320, 320, 160, 80, 40, 9).
    activations : str or sequence of str, optional
        :math:`f_l` for each of the L layers, from ``"leaky_relu"``, ``"relu"``,
        ``"tanh"``, ``"silu"``, ``"gelu"`` (tanh approximation) and ``"identity"``; a
        single name applies to the hidden layers and leaves the output linear. Default:
        the tutorial's pattern — leaky ReLU on the first 5/8 of the hidden layers, tanh on
        the rest, linear output (leaky ×5, tanh ×3, identity for the default widths).
    negative_slope : float >= 0, default 0.01
        Slope of leaky ReLU for negative inputs.
    dtype : {float32, float64}, default float32
        Working precision of the parameters, gradients and inputs.
    rng : None, int or numpy.random.Generator
        Seeds the initial weights: :math:`W_l \\sim \\mathcal N(0, s_l^2)` with the He
        deviation :math:`s_l^2 = 2/((1 + \\alpha^2) w_{l-1})` after (leaky) ReLU, SiLU and
        GELU layers (:math:`\\alpha` = slope, 0 except leaky ReLU) and the Glorot deviation
        :math:`s_l^2 = 2/(w_{l-1} + w_l)` for tanh and linear layers; biases 0. Weights
        are drawn in float64 and rounded, so float32 and float64 networks with the same
        seed agree to float32 rounding.
    n_threads : int, optional
        Threads of the compiled passes; default :func:`fastscore.get_num_threads`.

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        All weights and biases, layer after layer (W then b); modify in place.
    grad : ndarray of shape (n_params,)
        Filled by :meth:`backward`.
    weights, biases : list of ndarray
        Views into :attr:`params`, shapes ``(w_{l-1}, w_l)`` and ``(w_l,)``.
    n_params : int

    Notes
    -----
    Cost: ``2 Σ_l w_{l-1} w_l`` flops per row forward (0.475 MFLOP for the default
    model), about twice that backward. :meth:`forward` keeps every layer's activations
    for :meth:`backward` (``N Σ_l w_l`` values); :meth:`predict` keeps none and needs
    memory independent of N. Workspaces are allocated on the first call with a batch size
    and reused while it stays the same.

    Thread safety: workspaces are per Python thread, so one MLP may be shared by threads
    (a web service, Dask's threaded scheduler): concurrent :meth:`predict`,
    :meth:`jacobian_diagonal` and :meth:`jacobian_diagonal_vjp` calls give exactly the
    serial results, and each thread's :meth:`backward` uses its own last :meth:`forward`.
    Not for concurrent use: :meth:`backward` writes the one :attr:`grad` buffer, and
    changing :attr:`params` (training, :meth:`set_weights`) while another thread computes
    gives that thread a mix of old and new weights. Each thread keeps its workspaces (a
    few MB for large batches) until it ends. The kernels are parallel inside (OpenMP).

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.nn import MLP
    >>> net = MLP(rng=0)
    >>> x = np.random.default_rng(0).standard_normal((4, 9)).astype(np.float32)
    >>> y = net.forward(x)
    >>> y.shape, net.n_params
    ((4, 9), 238729)
    >>> _ = net.backward(np.ones_like(y))     # d(sum y)/dθ -> net.grad
    """

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS,
                 activations: str | Sequence[str] | None = None, *,
                 negative_slope: float = 0.01, dtype: DTypeLike = np.float32,
                 rng: int | np.random.Generator | None = None,
                 n_threads: int | None = None) -> None:
        self.widths = check_widths(widths, _kernels().MAX_LAYERS)
        n_layers = len(self.widths) - 1
        self.activations = (default_activations(n_layers) if activations is None else
                            check_activations(activations, n_layers, tuple(ACTIVATIONS)))
        self.negative_slope = check_scalar(negative_slope, "negative_slope", low=0.0)
        self.dtype = check_float_dtype(dtype)
        if n_threads is not None:
            resolve_n_threads(n_threads)  # validate now
        self.n_threads = n_threads
        mlp = _kernels()
        self._net = mlp.Net(self.widths, [ACTIVATIONS[a] for a in self.activations],
                            self.negative_slope)
        self.n_params = int(self._net.n_params)
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self.grad = np.zeros(self.n_params, dtype=self.dtype)
        self._layout = self._net.layout()
        self.weights = [self.params[w:w + self.widths[l] * self.widths[l + 1]]
                        .reshape(self.widths[l], self.widths[l + 1])
                        for l, (w, _) in enumerate(self._layout)]
        self.biases = [self.params[b:b + self.widths[l + 1]]
                       for l, (_, b) in enumerate(self._layout)]
        # Workspaces are per Python thread (threading.local): an MLP shared by threads
        # never shares scratch memory. Each thread keeps `train` (forward/backward
        # workspace, one batch size), `scratch` (predict / jacobian buffers by (kind,
        # n_threads, ...)) and `forward_n` (batch size of its last forward()).
        self._local = threading.local()
        # The weights packed for the compiled micro-kernel, once per parameter version
        # (a size of 0: BLAS at this SIMD level).
        self._pack_size = int(self._net.pack_size(self.dtype.itemsize))
        self._pack = WeightPack(self._pack_size, self.dtype)
        self.reset_parameters(rng=rng)

    @classmethod
    def for_patches(cls, patch_size: int | Sequence[int],
                    hidden: Sequence[int] = DEFAULT_HIDDEN,
                    activations: str | Sequence[str] | None = None, *,
                    extra_inputs: int = 0, **kwargs: Any) -> MLP:
        """MLP mapping patches to patch-shaped outputs: widths ``(n + extra, *hidden, n)``.

        Parameters
        ----------
        patch_size : int or sequence of int
            Patch shape; ``n = prod(patch_size)``; an int ``p`` means a 2-D ``p × p``
            patch (as everywhere in fastscore).
        hidden : sequence of int, default :data:`DEFAULT_HIDDEN`
        activations : see :class:`MLP`
        extra_inputs : int >= 0
            Extra input columns (1 for a noise-level input).
        **kwargs
            Passed to :class:`MLP` (``dtype``, ``rng``, ``n_threads``, ``negative_slope``).
        """
        n = math.prod(check_patch_size(patch_size))
        extra = check_int(extra_inputs, "extra_inputs", low=0)
        return cls((n + extra,) + tuple(hidden) + (n,), activations, **kwargs)

    @keyword_only("rng")
    def reset_parameters(self, *, rng: int | np.random.Generator | None = None) -> MLP:
        """Draw fresh initial weights (see `rng` in :class:`MLP`); biases 0."""
        gen = check_rng(rng)
        for l, W in enumerate(self.weights):
            std = init_std(self.activations[l], self.widths[l], self.widths[l + 1],
                            self.negative_slope)
            W[...] = gen.standard_normal(W.shape) * std
            self.biases[l][...] = 0
        self.grad[...] = 0
        return self

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description: widths, activations, slope, dtype."""
        return {"widths": list(self.widths), "activations": list(self.activations),
                "negative_slope": self.negative_slope, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: ArrayLike | None = None, *,
                    n_threads: int | None = None) -> MLP:
        """An MLP from :meth:`get_config` output, with `params` copied in when given."""
        net = cls(config["widths"], config["activations"],
                  negative_slope=config.get("negative_slope", 0.01),
                  dtype=config.get("dtype", "float32"), n_threads=n_threads)
        if params is not None:
            net.set_weights(params)
        return net

    def __reduce__(self):
        # pickle / copy.deepcopy: architecture + parameters (workspaces and grad are not
        # kept; the copy starts with a zero gradient)
        return (_rebuild_mlp, (self.get_config(), self.params.copy(), self.n_threads))

    def astype(self, dtype: DTypeLike) -> MLP:
        """A copy in another precision (parameters rounded or widened)."""
        net = MLP(self.widths, self.activations, negative_slope=self.negative_slope,
                  dtype=dtype, n_threads=self.n_threads)
        net.params[...] = self.params
        return net

    def copy(self) -> MLP:
        """An independent copy (same dtype, parameters copied, fresh workspaces)."""
        return self.astype(self.dtype)

    # -- parameters ------------------------------------------------------------------
    def get_weights(self) -> np.ndarray:
        """A copy of the flat weight vector θ (:attr:`params`), shape (n_params,).

        (``get_params`` is scikit-learn's hyper-parameter protocol, hence the name.)
        """
        return self.params.copy()

    get_params = deprecated_alias("get_weights", "get_params")
    set_params = deprecated_alias("set_weights", "set_params")

    def set_weights(self, theta: ArrayLike) -> None:
        """Copy `theta` (n_params,) into :attr:`params` (cast to the network's dtype)."""
        if theta is self.params:
            return
        arr = as_float_array(theta, "theta", ndim=1, finite=True)
        if arr.shape != (self.n_params,):
            raise ValueError(f"`theta` must have shape ({self.n_params},) (n_params); got "
                             f"{arr.shape}.")
        self.params[...] = arr

    def param_layout(self) -> list[tuple[slice, tuple[int, int], slice]]:
        """Per layer ``(weight slice, weight shape, bias slice)`` in the flat buffer."""
        return [(slice(w, w + self.widths[l] * self.widths[l + 1]),
                 (self.widths[l], self.widths[l + 1]), slice(b, b + self.widths[l + 1]))
                for l, (w, b) in enumerate(self._layout)]

    # -- validation ------------------------------------------------------------------
    def _check_input(self, x, name="x"):
        arr = as_float_array(x, name, ndim=2, allow_empty=True)
        if arr.dtype != self.dtype:
            raise TypeError(
                f"`{name}` has dtype {arr.dtype} but this MLP works in {self.dtype}; cast "
                f"the input or use net.astype(np.{arr.dtype.name}).")
        if arr.shape[1] != self.widths[0]:
            raise ValueError(f"`{name}` must have {self.widths[0]} columns (the input width); "
                             f"got shape {arr.shape}.")
        check_finite(arr, name)
        return arr

    def _output(self, out, n, width, name="out"):
        if out is None:
            return np.empty((n, width), dtype=self.dtype)
        return check_out(out, name, (n, width), self.dtype)

    @property
    def _scratch(self):
        """This thread's predict / jacobian scratch buffers (a dict)."""
        local = self._local
        if not hasattr(local, "scratch"):
            local.scratch = {}
        return local.scratch

    @property
    def _train(self):
        """This thread's forward/backward workspace (None before its first forward)."""
        return getattr(self._local, "train", None)

    @property
    def _forward_n(self):
        """Batch size of this thread's last forward() (None before it)."""
        return getattr(self._local, "forward_n", None)

    def _get_scratch(self, key, size):
        scratch = self._scratch
        buf = scratch.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(max(int(size), 1), dtype=self.dtype)
            scratch[key] = buf
        return buf

    def _train_workspace(self, n, n_threads):
        ws = self._train
        if ws is not None and ws["n"] == n and ws["n_threads"] == n_threads:
            return ws
        n_tiles = -(-n // _TILE_TRAIN)
        n_slots = min(n_tiles, _MAX_SLOTS)
        ws = {
            "n": n, "n_threads": n_threads, "n_slots": n_slots,
            "acts": np.empty(n * self._net.act_total, dtype=self.dtype),
            "derivs": np.empty(n * self._net.deriv_total, dtype=self.dtype),
            "partials": np.empty((n_slots - 1) * self.n_params, dtype=self.dtype),
            "scratch": np.empty(self._net.backward_scratch(_TILE_TRAIN, n_threads),
                                dtype=self.dtype),
            "dscratch": np.empty(self._net.backward_dscratch(n_slots), dtype=np.float64),
        }
        self._local.train = ws
        return ws

    def _packed(self, n_threads=1):
        """The pack of the current :attr:`params` (:class:`WeightPack`, repacked on
        `n_threads` when stale), or None (BLAS)."""
        if not self._pack_size:
            return None
        return self._pack.of(_kernels(), self._net, self.params, n_threads)

    def _products(self):
        """Which code runs the layer products at this process's SIMD level (the kernel's
        own answer, ``gemm_clone()``, unless this network is held to BLAS)."""
        if not self._pack_size:
            return "BLAS (scipy cython_blas, one call per layer and tile)"
        return f"packed micro-kernel, {_kernels().gemm_clone()}"

    # -- passes ----------------------------------------------------------------------
    def forward(self, x: ArrayLike, *, out: np.ndarray | None = None) -> np.ndarray:
        """Forward pass that keeps what :meth:`backward` needs.

        Parameters
        ----------
        x : ndarray of shape (N, w_0)
            Finite, of the network's dtype (TypeError otherwise).
        out : ndarray of shape (N, w_L), optional
            Output buffer (C-contiguous, the network's dtype).

        Returns
        -------
        y : ndarray of shape (N, w_L)

        Notes
        -----
        Stores ``N Σ_l w_l`` activations (about 4.9 kB per row in float32 for the default
        model); for inference on large batches use :meth:`predict`. The stored state is
        valid until the next ``forward``; :meth:`backward` uses the parameters current at
        its call, so do not update them in between.
        """
        arr = self._check_input(x)
        n = arr.shape[0]
        y = self._output(out, n, self.widths[-1])
        self._local.forward_n = n
        if n == 0:
            return y
        threads = _kernel_threads(self.n_threads)
        ws = self._train_workspace(n, threads)
        with _blas:
            _kernels().forward(self._net, self.params, self._packed(threads), arr, y, ws["acts"],
                               ws["derivs"], None, _TILE_TRAIN, threads)
        return y

    def backward(self, grad_out: ArrayLike, *, input_grad: bool = False,
                 row_scale: ArrayLike | None = None, accumulate: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray | None:
        """Parameter gradient (into :attr:`grad`) and optional input gradient.

        .. math::

            \\texttt{grad} = \\frac{\\partial}{\\partial\\theta} \\sum_{n,i} g_{ni}\\,
            y_{ni}, \\qquad \\texttt{input\\_grad}_{n} = \\sum_i g_{ni}\\,
            \\frac{\\partial y_{ni}}{\\partial x_n}, \\qquad g_{ni} =
            \\texttt{grad\\_out}_{ni}\\, \\texttt{row\\_scale}_n

        for the batch of the last :meth:`forward` (a vector-Jacobian product).

        Parameters
        ----------
        grad_out : ndarray of shape (N, w_L)
            :math:`\\partial \\mathcal L/\\partial y`, the network's dtype.
        input_grad : bool
            Also return :math:`\\partial \\mathcal L/\\partial x`, shape ``(N, w_0)``.
        row_scale : ndarray of shape (N,), optional
            Per-row factor applied to `grad_out` (e.g. ``1/σ_n``) at no extra cost.
        accumulate : bool
            Add to :attr:`grad` instead of overwriting it.
        out : ndarray of shape (N, w_0), optional
            Buffer for the input gradient.

        Returns
        -------
        ndarray of shape (N, w_0) or None
        """
        if self._forward_n is None:
            raise RuntimeError("backward() needs a forward() first (on the same batch).")
        n = self._forward_n
        g = as_float_array(grad_out, "grad_out", ndim=2, allow_empty=True)
        if g.dtype != self.dtype:
            raise TypeError(f"`grad_out` has dtype {g.dtype}; this MLP works in "
                            f"{self.dtype}.")
        if g.shape != (n, self.widths[-1]):
            raise ValueError(f"`grad_out` must have shape {(n, self.widths[-1])} (the last "
                             f"forward batch); got {g.shape}.")
        check_finite(g, "grad_out")
        scale = None
        if row_scale is not None:
            scale = as_float_array(row_scale, "row_scale", ndim=1, dtype=self.dtype,
                                   finite=True, allow_empty=True)
            if scale.shape != (n,):
                raise ValueError(f"`row_scale` must have shape ({n},); got {scale.shape}.")
        gin = self._output(out, n, self.widths[0]) if input_grad else None
        if n == 0:
            if not accumulate:
                self.grad[...] = 0
            return gin
        threads = _kernel_threads(self.n_threads)
        ws = self._train_workspace(n, threads)
        with _blas:
            _kernels().backward(self._net, self.params, self._packed(threads), ws["acts"],
                                ws["derivs"], g, scale, self.grad, ws["partials"],
                                ws["n_slots"], bool(accumulate), gin, ws["scratch"],
                                ws["dscratch"], _TILE_TRAIN, threads)
        return gin

    def predict(self, x: ArrayLike, *, out: np.ndarray | None = None) -> np.ndarray:
        """Inference ``y = net(x)`` with memory independent of the batch size.

        Parameters
        ----------
        x : ndarray of shape (N, w_0)
        out : ndarray of shape (N, w_L), optional

        Returns
        -------
        y : ndarray of shape (N, w_L)
        """
        arr = self._check_input(x)
        n = arr.shape[0]
        y = self._output(out, n, self.widths[-1])
        if n == 0:
            return y
        threads = _kernel_threads(self.n_threads)
        tile = _predict_tile(n)
        scratch = self._get_scratch(("predict", threads),
                                    self._net.forward_scratch(tile, threads))
        with _blas:
            _kernels().forward(self._net, self.params, self._packed(threads), arr, y, None, None,
                               scratch, tile, threads)
        return y

    __call__ = predict

    def jacobian_diagonal(self, x: ArrayLike, *, n_dirs: int | None = None,
                          return_output: bool = False,
                          ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Exact diagonal of the input Jacobian, :math:`\\partial y_{ni}/\\partial x_{ni}`.

        Computed by forward-mode tangents: ``n_dirs`` tangents per row through every layer
        (about ``n_dirs`` times the cost of :meth:`predict`), exact to rounding.

        Parameters
        ----------
        x : ndarray of shape (N, w_0)
        n_dirs : int, optional
            Differentiate with respect to the first `n_dirs` inputs and outputs only
            (default ``min(w_0, w_L)``; e.g. ``d`` when a noise level is an extra input).
        return_output : bool
            Also return ``y`` (computed on the way).

        Returns
        -------
        diag : ndarray of shape (N, n_dirs)
        y : ndarray of shape (N, w_L), only with ``return_output=True``
        """
        arr = self._check_input(x)
        n = arr.shape[0]
        limit = min(self.widths[0], self.widths[-1])
        p = limit if n_dirs is None else check_int(n_dirs, "n_dirs", low=1, high=limit)
        diag = np.empty((n, p), dtype=self.dtype)
        y = np.empty((n, self.widths[-1]), dtype=self.dtype) if return_output else None
        if n:
            threads = _kernel_threads(self.n_threads)
            scratch = self._get_scratch(
                ("jacobian", threads, p),
                self._net.jacobian_scratch(_TILE_JACOBIAN, p, threads))
            with _blas:
                _kernels().jacobian_diagonal(self._net, self.params, arr, p, y, diag,
                                             scratch, _TILE_JACOBIAN, threads)
        if y is not None:
            return diag, y
        return diag

    def jacobian_diagonal_vjp(self, x: ArrayLike, grad: ArrayLike, *, n_dirs: int | None = None,
                              chunk_size: int = 256) -> np.ndarray:
        """Parameter gradient of a weighted Jacobian diagonal (for ISM / RSM).

        .. math::

            \\frac{\\partial}{\\partial\\theta} \\sum_{n,\\,i < p} g_{ni}\\,
            \\frac{\\partial y_{ni}}{\\partial x_{ni}}

        Exact reverse-over-forward differentiation of the tangent propagation used by
        :meth:`jacobian_diagonal` (needs the activations' second derivatives).

        Parameters
        ----------
        x : ndarray of shape (N, w_0)
        grad : ndarray of shape (N, p)
            :math:`g`, with ``p = n_dirs``.
        n_dirs : int, optional
            As in :meth:`jacobian_diagonal` (default ``min(w_0, w_L)``).
        chunk_size : int
            Rows per chunk (memory ``~ chunk_size * p * Σ w_l`` values).

        Returns
        -------
        ndarray of shape (n_params,), the network's dtype

        Notes
        -----
        Written with NumPy matrix products (not the compiled kernels): about ``p`` times
        the cost of a backward pass, meant for implicit score matching on small problems.
        """
        arr = self._check_input(x)
        n = arr.shape[0]
        limit = min(self.widths[0], self.widths[-1])
        p = limit if n_dirs is None else check_int(n_dirs, "n_dirs", low=1, high=limit)
        g = as_float_array(grad, "grad", ndim=2, finite=True, allow_empty=True)
        if g.shape != (n, p):
            raise ValueError(f"`grad` must have shape {(n, p)}; got {g.shape}.")
        g = g.astype(self.dtype, copy=False)
        chunk = check_int(chunk_size, "chunk_size", low=1)
        out = np.zeros(self.n_params, dtype=self.dtype)
        grads = [(out[w:w + self.widths[l] * self.widths[l + 1]]
                  .reshape(self.widths[l], self.widths[l + 1]),
                  out[b:b + self.widths[l + 1]]) for l, (w, b) in enumerate(self._layout)]
        for lo in range(0, n, chunk):
            add_jacobian_diagonal_vjp(self.weights, self.biases, self.activations,
                                      self.negative_slope, arr[lo:lo + chunk],
                                      g[lo:lo + chunk], p, grads)
        return out

    def __repr__(self) -> str:
        acts = ",".join(self.activations)
        return (f"MLP(widths={self.widths}, activations=({acts}), dtype={self.dtype.name}, "
                f"n_params={self.n_params})")


def _rebuild_mlp(config, params, n_threads):
    return MLP.from_config(config, params, n_threads=n_threads)

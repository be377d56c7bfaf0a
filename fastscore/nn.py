"""The learned patch score: a compiled multilayer perceptron, its noise-conditional
wrapper, and the trained patch model.

- :class:`MLP` — a chain of dense layers with **all parameters in one flat contiguous
  buffer** (``net.params``; per-layer weights and biases are views into it) and the
  gradient in a second one (``net.grad``), so an optimiser updates everything in one
  fused pass. ``forward`` / ``backward`` (parameter gradient and, on request, the
  vector-Jacobian product with the input), ``predict`` (inference in bounded memory) and
  the exact ``jacobian_diagonal``. Dense products go through BLAS (scipy's
  ``cython_blas``), bias + activation + derivative are fused in one compiled pass, and
  workspaces are allocated once per batch size and reused.
- :class:`NoiseConditionalScore` — ``s(x; σ)`` from an MLP, with the input
  standardisation stored with the model and the exact chain rule back to ``x``; implements
  the score-model protocol of :mod:`fastscore.losses`.
- :class:`PatchScoreModel` — what a trained patch prior is: the noise-conditional score,
  the patch size, the σ range and the training summary; ``score``/``denoise`` on patches,
  ``save``/``load``.

A training step (σ²-weighted denoising score matching) with no copies of the network's
buffers::

    model = NoiseConditionalScore.for_patches((3, 3), training_patches, rng=0)
    opt = fastscore.optim.Adam(model.params, lr=1e-3)       # updates model.params in place
    for step in range(n_steps):
        v, sigma, z = ...                                    # clean patches, levels, N(0, I)
        scaled = model.scaled_score(v + sigma[:, None] * z, sigma, keep=True)   # σ s(ṽ; σ)
        residual = (scaled + z) / len(v)                     # ∂/∂(σ s) of mean ½‖σ s + z‖²
        model.backward(residual)                             # -> model.net.grad
        opt.step(model.net.grad)

Threads. The kernels cut a batch into tiles of rows and run each tile through all layers
on one OpenMP thread, calling BLAS single-threaded (the scoped limit
``fastscore._threads.single_threaded_blas``, through threadpoolctl), so the
``n_threads`` threads never oversubscribe the cores. Parameter gradients are summed per
fixed group of tiles and the groups are added in a fixed order: results are bitwise
identical for any thread count.
"""

import math
import numbers

import numpy as np

from ._threads import effective_threads, resolve_n_threads, single_threaded_blas
from ._validation import (as_float_array, check_choice, check_finite, check_int,
                          check_int_tuple, check_out, check_rng, check_scalar)

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_HIDDEN",
    "DEFAULT_WIDTHS",
    "MLP",
    "NoiseConditionalScore",
    "PatchScoreModel",
]

#: Activation names and their codes in the C kernels (csrc/mlp.h).
ACTIVATIONS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "silu": 4, "gelu": 5}

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
_CHUNK_SCORE = 16384    # rows per chunk of the standardisation temporaries in score()


def _kernels():
    from ._ext import mlp

    return mlp


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


# ------------------------------------------------------------------------- helpers


def _check_activation(name, where):
    if not isinstance(name, str) or name not in ACTIVATIONS:
        options = ", ".join(repr(a) for a in ACTIVATIONS)
        raise ValueError(f"{where} must be one of {options}; got {name!r}.")
    return name


def _default_activations(n_layers):
    """The tutorial's pattern for any depth: the first 5/8 of the hidden layers leaky
    ReLU, the rest tanh, a linear output (exactly 5 + 3 + 1 for 9 layers)."""
    hidden = n_layers - 1
    n_leaky = int(round(hidden * 5 / 8)) if hidden else 0
    return tuple(["leaky_relu"] * n_leaky + ["tanh"] * (hidden - n_leaky) + ["identity"])


def _init_std(activation, fan_in, fan_out, slope):
    """He (ReLU family) or Glorot (tanh, identity) standard deviation of a weight."""
    if activation in ("relu", "silu", "gelu"):
        return math.sqrt(2.0 / fan_in)
    if activation == "leaky_relu":
        return math.sqrt(2.0 / ((1.0 + slope ** 2) * fan_in))
    return math.sqrt(2.0 / (fan_in + fan_out))


def _activation_derivatives(name, z, slope):
    """(f(z), f'(z), f''(z)) with exact NumPy math (used by jacobian_diagonal_vjp)."""
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
    raise ValueError(name)


def _check_patch_size(patch_size):
    """An int p -> (p, p); a sequence -> a tuple of positive ints."""
    if isinstance(patch_size, numbers.Integral) and not isinstance(patch_size, bool):
        p = check_int(patch_size, "patch_size", low=1)
        return (p, p)
    try:
        n = len(patch_size)
    except TypeError:
        raise TypeError(f"`patch_size` must be an int or a sequence of ints; got "
                        f"{patch_size!r}.") from None
    if n < 1:
        raise ValueError("`patch_size` must not be empty.")
    return check_int_tuple(patch_size, "patch_size", n, low=1)


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"`dtype` must be float32 or float64; got {dtype}.")
    return dtype


# ----------------------------------------------------------------------------- MLP


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
    and reused while it stays the same. An MLP object is not meant to be used from several
    Python threads at once (its workspaces are shared); its kernels are parallel inside.

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

    def __init__(self, widths=DEFAULT_WIDTHS, activations=None, *, negative_slope=0.01,
                 dtype=np.float32, rng=None, n_threads=None):
        self.widths = self._check_widths(widths)
        n_layers = len(self.widths) - 1
        self.activations = self._check_activations(activations, n_layers)
        self.negative_slope = check_scalar(negative_slope, "negative_slope", low=0.0)
        self.dtype = _check_dtype(dtype)
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
        self._train = None      # workspace of forward/backward, for one batch size
        self._scratch = {}      # predict / jacobian scratch, by (kind, n_threads, ...)
        self._forward_n = None  # batch size of the last forward() (for backward())
        self.reset_parameters(rng)

    # -- construction ----------------------------------------------------------------
    @staticmethod
    def _check_widths(widths):
        try:
            values = tuple(widths)
        except TypeError:
            raise TypeError(f"`widths` must be a sequence of positive ints; got "
                            f"{widths!r}.") from None
        if len(values) < 2:
            raise ValueError(f"`widths` needs at least an input and an output width; got "
                             f"{values!r}.")
        mlp = _kernels()
        if len(values) - 1 > mlp.MAX_LAYERS:
            raise ValueError(f"`widths` allows at most {mlp.MAX_LAYERS} layers; got "
                             f"{len(values) - 1}.")
        out = []
        for k, w in enumerate(values):
            if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral):
                raise TypeError(f"`widths[{k}]` must be an int; got {w!r}.")
            if not 1 <= int(w) <= 1 << 20:
                raise ValueError(f"`widths[{k}]` must be in [1, {1 << 20}]; got {w!r}.")
            out.append(int(w))
        return tuple(out)

    @staticmethod
    def _check_activations(activations, n_layers):
        if activations is None:
            return _default_activations(n_layers)
        if isinstance(activations, str):
            _check_activation(activations, "`activations`")
            return (activations,) * (n_layers - 1) + ("identity",)
        try:
            values = tuple(activations)
        except TypeError:
            raise TypeError(f"`activations` must be a name or a sequence of names; got "
                            f"{activations!r}.") from None
        if len(values) != n_layers:
            raise ValueError(f"`activations` must name one activation per layer: "
                             f"{n_layers} for {n_layers + 1} widths; got {len(values)} "
                             f"({values!r}).")
        return tuple(_check_activation(a, f"`activations[{k}]`")
                     for k, a in enumerate(values))

    @classmethod
    def for_patches(cls, patch_size, hidden=DEFAULT_HIDDEN, activations=None, *,
                    extra_inputs=0, **kwargs):
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
        n = math.prod(_check_patch_size(patch_size))
        extra = check_int(extra_inputs, "extra_inputs", low=0)
        return cls((n + extra,) + tuple(hidden) + (n,), activations, **kwargs)

    def reset_parameters(self, rng=None):
        """Draw fresh initial weights (see `rng` in :class:`MLP`); biases 0."""
        gen = check_rng(rng)
        for l, W in enumerate(self.weights):
            std = _init_std(self.activations[l], self.widths[l], self.widths[l + 1],
                            self.negative_slope)
            W[...] = gen.standard_normal(W.shape) * std
            self.biases[l][...] = 0
        self.grad[...] = 0
        return self

    def get_config(self):
        """JSON-serialisable description: widths, activations, slope, dtype."""
        return {"widths": list(self.widths), "activations": list(self.activations),
                "negative_slope": self.negative_slope, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config, params=None, *, n_threads=None):
        """An MLP from :meth:`get_config` output, with `params` copied in when given."""
        net = cls(config["widths"], config["activations"],
                  negative_slope=config.get("negative_slope", 0.01),
                  dtype=config.get("dtype", "float32"), n_threads=n_threads)
        if params is not None:
            net.set_params(params)
        return net

    def __reduce__(self):
        # pickle / copy.deepcopy: architecture + parameters (workspaces and grad are not
        # kept; the copy starts with a zero gradient)
        return (_rebuild_mlp, (self.get_config(), self.params.copy(), self.n_threads))

    def astype(self, dtype):
        """A copy in another precision (parameters rounded or widened)."""
        net = MLP(self.widths, self.activations, negative_slope=self.negative_slope,
                  dtype=dtype, n_threads=self.n_threads)
        net.params[...] = self.params
        return net

    def copy(self):
        """An independent copy (same dtype, parameters copied, fresh workspaces)."""
        return self.astype(self.dtype)

    # -- parameters ------------------------------------------------------------------
    def get_params(self):
        """A copy of the flat parameter vector."""
        return self.params.copy()

    def set_params(self, theta):
        """Copy `theta` (n_params,) into :attr:`params` (cast to the network's dtype)."""
        if theta is self.params:
            return
        arr = as_float_array(theta, "theta", ndim=1, finite=True)
        if arr.shape != (self.n_params,):
            raise ValueError(f"`theta` must have shape ({self.n_params},) (n_params); got "
                             f"{arr.shape}.")
        self.params[...] = arr

    def param_layout(self):
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

    def _get_scratch(self, key, size):
        buf = self._scratch.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(max(int(size), 1), dtype=self.dtype)
            self._scratch[key] = buf
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
        self._train = ws
        return ws

    # -- passes ----------------------------------------------------------------------
    def forward(self, x, *, out=None):
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
        self._forward_n = n
        if n == 0:
            return y
        threads = _kernel_threads(self.n_threads)
        ws = self._train_workspace(n, threads)
        with _blas:
            _kernels().forward(self._net, self.params, arr, y, ws["acts"], ws["derivs"],
                               None, _TILE_TRAIN, threads)
        return y

    def backward(self, grad_out, *, input_grad=False, row_scale=None, accumulate=False,
                 out=None):
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
            _kernels().backward(self._net, self.params, ws["acts"], ws["derivs"], g, scale,
                                self.grad, ws["partials"], ws["n_slots"], bool(accumulate),
                                gin, ws["scratch"], ws["dscratch"], _TILE_TRAIN, threads)
        return gin

    def predict(self, x, *, out=None):
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
            _kernels().forward(self._net, self.params, arr, y, None, None, scratch, tile,
                               threads)
        return y

    __call__ = predict

    def jacobian_diagonal(self, x, *, n_dirs=None, return_output=False):
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
        return (diag, y) if return_output else diag

    def jacobian_diagonal_vjp(self, x, grad, *, n_dirs=None, chunk_size=256):
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
            self._jacobian_diagonal_vjp_chunk(arr[lo:lo + chunk], g[lo:lo + chunk], p, grads)
        return out

    def _jacobian_diagonal_vjp_chunk(self, x, g, p, grads):
        L = len(self.weights)
        r = x.shape[0]
        dt = self.dtype
        a = x
        T = np.zeros((r, p, self.widths[0]), dtype=dt)   # tangents of x along e_i
        T[:, np.arange(p), np.arange(p)] = 1
        tape = []
        for l in range(L):
            z = a @ self.weights[l] + self.biases[l]
            f, d1, d2 = _activation_derivatives(self.activations[l], z, self.negative_slope)
            Zd = T @ self.weights[l]                        # (r, p, w)
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
                Tbar = Zdbar @ self.weights[l].T
                abar = zbar @ self.weights[l].T

    def __repr__(self):
        acts = ",".join(self.activations)
        return (f"MLP(widths={self.widths}, activations=({acts}), dtype={self.dtype.name}, "
                f"n_params={self.n_params})")


def _rebuild_mlp(config, params, n_threads):
    return MLP.from_config(config, params, n_threads=n_threads)


# ----------------------------------------------------------- noise-conditional score


def _check_grad(grad, x):
    """`grad` as an array of the shape and dtype of `x` (a VJP's cotangent)."""
    g = as_float_array(grad, "grad", ndim=2, finite=True).astype(x.dtype, copy=False)
    if g.shape != x.shape:
        raise ValueError(f"`grad` must have the shape of x, {x.shape}; got {g.shape}.")
    return g


def _check_sigma(sigma, n, dtype, name="sigma"):
    """σ as an (n,) array of the working dtype: scalar broadcast, positive and finite."""
    if sigma is None:
        raise ValueError(f"`{name}` is required: this is a noise-conditional score "
                         "s(x; σ); give the noise level(s), a float or an array of shape "
                         "(N,).")
    if np.ndim(sigma) == 0:
        value = check_scalar(sigma, name, low=0.0, low_inclusive=False)
        return np.full(n, value, dtype=dtype)
    arr = np.asarray(sigma)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must be real; got dtype {arr.dtype}.")
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must be a float or an array of shape ({n},) (one "
                         f"level per row); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"`{name}` must be positive and finite; got minimum "
                         f"{np.nanmin(arr)!r}.")
    return np.ascontiguousarray(arr, dtype=dtype)


class NoiseConditionalScore:
    """Noise-conditional score ``s(x; σ)`` from an :class:`MLP`, with standardised input.

    .. math::

        s(x; σ) = \\frac{h(u)}{σ} - β\\,\\frac{x - μ}{σ_{\\rm data}^2 + σ^2},
        \\qquad u = \\frac{x - μ}{σ_{\\rm data}} \\ (\\text{"scale"}), \\quad
        u = \\Big[\\frac{x - μ}{σ_{\\rm data}},\\ \\log\\frac{σ}{σ_{\\rm data}}\\Big]
        \\ (\\text{"input"})

    with :math:`h` the network, :math:`μ, σ_{\\rm data}` the data mean and standard
    deviation stored with the model, and :math:`β \\in \\{0, 1\\}` the optional residual
    baseline, the score of :math:`\\mathcal N(μ, (σ_{\\rm data}^2 + σ^2) I)` (the
    reference Julia tutorial's). The network sees standardised data, and the chain rule
    back to :math:`x` is exact: a score in :math:`u`-units divided by
    :math:`σ_{\\rm data}`, and ``h/σ`` is ``(h/σ̂)/σ_data`` with :math:`σ̂ = σ/σ_{\\rm
    data}` the noise level in standardised units. In both conditionings the output is
    divided by σ (Song & Ermon 2020): :math:`σ\\,s` is of unit scale, and for the
    σ²-weighted denoising loss the network learns to predict :math:`-z`. With
    ``"input"`` the network also sees :math:`\\log(σ/σ_{\\rm data})` as an extra input
    column and can change its shape with the noise level.

    Parameters
    ----------
    net : MLP
        Input width ``d`` ("scale") or ``d + 1`` ("input"); output width ``d``.
    conditioning : {"scale", "input"}
    mean : float or ndarray of shape (d,)
        :math:`μ`.
    std : float > 0
        :math:`σ_{\\rm data}` (one scale for all coordinates, so the noise stays
        isotropic in standardised units).
    baseline : bool
        Add the Gaussian residual baseline.

    Notes
    -----
    Implements the score-model protocol of :mod:`fastscore.losses` (``n_params``,
    ``get_params``, ``set_params``, ``score``, ``score_vjp``, ``jacobian_diagonal``,
    ``jacobian_diagonal_vjp``; ``noise_conditional = True``): those methods take the parameters explicitly, copy
    them into the network when they are not its own buffer, and compute in the dtype of
    `x` (a float64 twin of a float32 network is made on demand). The training fast path
    is :meth:`forward`/:meth:`backward` (or :meth:`scaled_score` /
    :meth:`scaled_score_backward`): forward keeps the activations, backward writes
    :math:`\\partial/\\partial θ` into ``net.grad`` with no copies.
    """

    noise_conditional = True

    def __init__(self, net, conditioning="scale", *, mean=0.0, std=1.0, baseline=False):
        if not isinstance(net, MLP):
            raise TypeError(f"`net` must be a fastscore.nn.MLP; got {type(net).__name__}.")
        self.conditioning = check_choice(conditioning, "conditioning", ("scale", "input"))
        d = net.widths[-1]
        extra = 1 if self.conditioning == "input" else 0
        if net.widths[0] != d + extra:
            raise ValueError(
                f"`net` must have input width {d + extra} for conditioning="
                f"{self.conditioning!r} and output width {d}; got widths {net.widths}.")
        self.net = net
        self.dim = d
        m = np.asarray(mean, dtype=np.float64)
        if m.ndim == 0:
            m = np.full(d, float(m))
        if m.shape != (d,) or not np.all(np.isfinite(m)):
            raise ValueError(f"`mean` must be a finite float or an array of shape ({d},); "
                             f"got {mean!r}.")
        self.mean = m
        self.std = check_scalar(std, "std", low=0.0, low_inclusive=False)
        self.baseline = bool(baseline)
        self._twins = {}
        self._state = None

    @classmethod
    def for_patches(cls, patch_size, patches=None, *, hidden=DEFAULT_HIDDEN,
                    activations=None, conditioning="scale", baseline=False,
                    negative_slope=0.01, dtype=np.float32, rng=None, n_threads=None):
        """The tutorial's network for a patch size, standardised by example patches.

        Parameters
        ----------
        patch_size : int or sequence of int
            ``d = prod(patch_size)`` (an int ``p`` means ``p × p``).
        patches : ndarray of shape (N, d), optional
            Training patches: μ and σ_data are their pooled mean and standard deviation
            (patch statistics are stationary, so one value for all pixels); default 0, 1.
        hidden, activations, negative_slope, dtype, rng, n_threads
            See :class:`MLP` and :meth:`MLP.for_patches`.
        conditioning, baseline
            See :class:`NoiseConditionalScore`.
        """
        check_choice(conditioning, "conditioning", ("scale", "input"))
        net = MLP.for_patches(patch_size, hidden, activations,
                              extra_inputs=1 if conditioning == "input" else 0,
                              negative_slope=negative_slope, dtype=dtype, rng=rng,
                              n_threads=n_threads)
        mean, std = 0.0, 1.0
        if patches is not None:
            d = net.widths[-1]
            arr = as_float_array(patches, "patches", ndim=2, finite=True)
            if arr.shape[1] != d:
                raise ValueError(f"`patches` must have {d} columns for patch size "
                                 f"{patch_size!r}; got shape {arr.shape}.")
            mean = float(np.mean(arr, dtype=np.float64))
            std = float(np.std(arr, dtype=np.float64))
            if not std > 0:
                raise ValueError("`patches` are constant (standard deviation 0): cannot "
                                 "standardise.")
        return cls(net, conditioning, mean=mean, std=std, baseline=baseline)

    # -- protocol: parameters --------------------------------------------------------
    @property
    def n_params(self):
        return self.net.n_params

    @property
    def params(self):
        """The network's flat parameter buffer (not a copy)."""
        return self.net.params

    def get_params(self):
        return self.net.get_params()

    def set_params(self, theta):
        self.net.set_params(theta)

    def get_config(self):
        """JSON-serialisable description (the mean is a list)."""
        return {"conditioning": self.conditioning, "mean": self.mean.tolist(),
                "std": self.std, "baseline": self.baseline, "net": self.net.get_config()}

    @classmethod
    def from_config(cls, config, params=None, *, n_threads=None):
        net = MLP.from_config(config["net"], params, n_threads=n_threads)
        return cls(net, config["conditioning"], mean=config["mean"], std=config["std"],
                   baseline=config["baseline"])

    # -- internals -------------------------------------------------------------------
    def _check_x(self, x, dtype=None):
        arr = as_float_array(x, "x", ndim=2, finite=True, dtype=dtype)
        if arr.shape[1] != self.dim:
            raise ValueError(f"`x` must have {self.dim} columns; got shape {arr.shape}.")
        return arr

    def _net_for(self, dtype, params=None):
        """The network in `dtype` with `params` (None: current) in place."""
        if params is not None:
            self.net.set_params(params)
        if np.dtype(dtype) == self.net.dtype:
            return self.net
        twin = self._twins.get(np.dtype(dtype))
        if twin is None:
            twin = self.net.astype(dtype)
            self._twins[np.dtype(dtype)] = twin
        else:
            twin.params[...] = self.net.params
        return twin

    def _inputs(self, x, sigma, out=None):
        """u = (x - μ)/σ_data, plus the column log(σ/σ_data) for "input" conditioning."""
        dt = x.dtype
        n = x.shape[0]
        width = self.dim + (1 if self.conditioning == "input" else 0)
        u = np.empty((n, width), dtype=dt) if out is None else out
        np.subtract(x, self.mean.astype(dt), out=u[:, :self.dim])
        u[:, :self.dim] *= dt.type(1.0 / self.std)
        if self.conditioning == "input":
            np.log(sigma * dt.type(1.0 / self.std), out=u[:, self.dim])
        return u

    def _finish(self, h, x, sigma, scaled):
        """h -> s = h/σ - β (x - μ)/(σ_data² + σ²)  (or σ s when `scaled`), in place."""
        dt = h.dtype
        if not scaled:
            h /= sigma[:, None]
        if self.baseline:
            var = dt.type(self.std ** 2) + sigma * sigma
            coef = (sigma / var) if scaled else (dt.type(1.0) / var)
            h -= (x - self.mean.astype(dt)) * coef[:, None]
        return h

    # -- fast path (training) --------------------------------------------------------
    def forward(self, x, sigma, *, out=None):
        """``s(x; σ)`` keeping the activations for :meth:`backward` (network dtype)."""
        return self._forward(x, sigma, out, scaled=False)

    def scaled_score(self, x, sigma, *, keep=False, out=None):
        """``σ s(x; σ)`` (unit scale; what the σ²-weighted DSM loss compares with −z).

        With ``keep=True`` the activations are kept for :meth:`scaled_score_backward`.
        """
        if keep:
            return self._forward(x, sigma, out, scaled=True)
        arr = self._check_x(x, dtype=self.net.dtype)
        sig = _check_sigma(sigma, arr.shape[0], arr.dtype)
        h = self.net.predict(self._inputs(arr, sig), out=out)
        return self._finish(h, arr, sig, scaled=True)

    def _forward(self, x, sigma, out, scaled):
        arr = self._check_x(x, dtype=self.net.dtype)
        sig = _check_sigma(sigma, arr.shape[0], arr.dtype)
        h = self.net.forward(self._inputs(arr, sig), out=out)
        self._state = (arr, sig, scaled)
        return self._finish(h, arr, sig, scaled)

    def backward(self, grad, *, input_grad=False):
        """Gradient of ``Σ grad · s`` after :meth:`forward` (or of ``Σ grad · σ s`` after
        ``scaled_score(keep=True)``): the parameter part into ``net.grad`` (overwritten),
        and the part in ``x`` (x-units, exact chain rule) returned when `input_grad`."""
        if self._state is None:
            raise RuntimeError("backward() needs forward() or scaled_score(keep=True) "
                               "first.")
        x, sig, scaled = self._state
        g = as_float_array(grad, "grad", ndim=2, dtype=self.net.dtype)
        if g.shape != x.shape:
            raise ValueError(f"`grad` must have shape {x.shape} (the last forward batch); "
                             f"got {g.shape}.")
        scale = None if scaled else (g.dtype.type(1.0) / sig)
        gu = self.net.backward(g, input_grad=input_grad, row_scale=scale)
        if not input_grad:
            return None
        gx = gu[:, :self.dim] * g.dtype.type(1.0 / self.std)
        if self.baseline:
            var = g.dtype.type(self.std ** 2) + sig * sig
            coef = (sig / var) if scaled else (g.dtype.type(1.0) / var)
            gx -= g * coef[:, None]
        return np.ascontiguousarray(gx)

    def scaled_score_backward(self, grad, *, input_grad=False):
        """Alias of :meth:`backward` after ``scaled_score(..., keep=True)``."""
        return self.backward(grad, input_grad=input_grad)

    # -- protocol: scores and gradients ----------------------------------------------
    def score(self, x, params=None, sigma=None):
        """``s(x; σ)`` of shape (N, d), in the dtype of `x`.

        Parameters
        ----------
        x : ndarray of shape (N, d)
        params : ndarray of shape (n_params,), optional
            Parameters to use (copied into the network); default the current ones.
        sigma : float or ndarray of shape (N,)
            Noise level(s) σ > 0 (required).
        """
        arr = self._check_x(x)
        net = self._net_for(arr.dtype, params)
        sig = _check_sigma(sigma, arr.shape[0], arr.dtype)
        h = net.predict(self._inputs(arr, sig))
        return self._finish(h, arr, sig, scaled=False)

    def score_vjp(self, x, params, grad, sigma=None):
        """``Σ_{n,i} grad[n,i] ∂s_i(x_n; σ_n)/∂θ``, shape (n_params,), dtype of `x`."""
        arr = self._check_x(x)
        net = self._net_for(arr.dtype, params)
        sig = _check_sigma(sigma, arr.shape[0], arr.dtype)
        g = _check_grad(grad, arr)
        net.forward(self._inputs(arr, sig))
        net.backward(np.ascontiguousarray(g), row_scale=arr.dtype.type(1.0) / sig)
        return net.grad.copy()

    def jacobian_diagonal(self, x, params=None, sigma=None):
        """``∂s_i/∂x_i`` of shape (N, d) (exact, forward-mode through the network)."""
        arr = self._check_x(x)
        net = self._net_for(arr.dtype, params)
        sig = _check_sigma(sigma, arr.shape[0], arr.dtype)
        diag = net.jacobian_diagonal(self._inputs(arr, sig), n_dirs=self.dim)
        diag /= (sig * arr.dtype.type(self.std))[:, None]
        if self.baseline:
            diag -= (arr.dtype.type(1.0) / (arr.dtype.type(self.std ** 2) + sig * sig))[:, None]
        return diag

    def jacobian_diagonal_vjp(self, x, params, grad, sigma=None):
        """``Σ_{n,i} grad[n,i] ∂/∂θ (∂s_i/∂x_i)(x_n; σ_n)``, shape (n_params,) (ISM/RSM).

        Exact (see :meth:`MLP.jacobian_diagonal_vjp`; NumPy, about d backward passes).
        """
        arr = self._check_x(x)
        net = self._net_for(arr.dtype, params)
        sig = _check_sigma(sigma, arr.shape[0], arr.dtype)
        g = _check_grad(grad, arr)
        # ∂s_i/∂x_i = J_h,ii(u) / (σ σ_data) - β/(σ_data² + σ²): only the first term has θ
        gh = g / (sig * arr.dtype.type(self.std))[:, None]
        return net.jacobian_diagonal_vjp(self._inputs(arr, sig), gh, n_dirs=self.dim)

    def __repr__(self):
        return (f"NoiseConditionalScore({self.net!r}, conditioning={self.conditioning!r}, "
                f"std={self.std:.4g}, baseline={self.baseline})")


# ------------------------------------------------------------------ patch score model


class PatchScoreModel:
    """A trained patch prior: noise-conditional score, patch size, σ range, training info.

    Parameters
    ----------
    model : NoiseConditionalScore
        Its dimension must equal ``prod(patch_size)``.
    patch_size : int or sequence of int
        Patch shape (an int ``p`` means ``(p, p)``).
    sigma_min, sigma_max : float > 0
        Noise range the model was trained on; ``score(patches)`` without σ uses σ_min.
    history : dict of lists, optional
        Training curves (``step``, ``loss``, ``val_step``, ``val_loss``, ``time``).
    training : dict, optional
        JSON-serialisable training summary.
    dc, contrast, symmetrize : bool, default False
        Patch-level invariances applied by :meth:`score`
        (:class:`fastscore.invariance.InvariantPatchScore`): exact DC invariance, per-patch
        contrast normalisation (floor `contrast_eps`), symmetrisation over the patch's
        rotations/flips. A model trained with ``dc``/``contrast`` must keep them on.
    intensity : {"none", "scale", "affine"}, default "none"
        Global intensity normalisation used by :class:`fastscore.prior.PatchPrior` built on
        this model (needs `intensity_reference`).
    intensity_reference : fastscore.invariance.IntensityReference, optional
        Intensity statistics of the training images.

    All options are stored by :meth:`save`; :meth:`with_invariances` changes them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.nn import NoiseConditionalScore, PatchScoreModel
    >>> ncs = NoiseConditionalScore.for_patches((3, 3), rng=0)
    >>> model = PatchScoreModel(ncs, 3, sigma_min=0.05, sigma_max=1.0)
    >>> v = np.random.default_rng(0).standard_normal((5, 9)).astype(np.float32)
    >>> model.score(v, 0.1).shape
    (5, 9)
    """

    kind = "patch_score_model"

    def __init__(self, model, patch_size, *, sigma_min, sigma_max, history=None,
                 training=None, dc=False, contrast=False, symmetrize=False,
                 contrast_eps=1e-2, intensity="none", intensity_reference=None):
        from .invariance import IntensityReference, InvariantPatchScore

        if not isinstance(model, NoiseConditionalScore):
            raise TypeError(f"`model` must be a NoiseConditionalScore; got "
                            f"{type(model).__name__}.")
        self.patch_size = _check_patch_size(patch_size)
        self.patch_dim = math.prod(self.patch_size)
        if self.patch_dim != model.dim:
            raise ValueError(f"`patch_size` {self.patch_size} has {self.patch_dim} pixels but "
                             f"the model scores vectors of dimension {model.dim}.")
        self.sigma_min = check_scalar(sigma_min, "sigma_min", low=0.0, low_inclusive=False)
        self.sigma_max = check_scalar(sigma_max, "sigma_max", low=self.sigma_min)
        self.model = model
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.training = dict(training or {})
        self.invariances = {
            "dc": bool(dc) or bool(contrast), "contrast": bool(contrast),
            "symmetrize": bool(symmetrize),
            "contrast_eps": check_scalar(contrast_eps, "contrast_eps", low=0,
                                         low_inclusive=False),
            "intensity": check_choice(intensity, "intensity", ("none", "scale", "affine"))}
        if intensity_reference is not None and \
                not isinstance(intensity_reference, IntensityReference):
            raise TypeError("`intensity_reference` must be an IntensityReference; got "
                            f"{type(intensity_reference).__name__}.")
        if intensity != "none" and intensity_reference is None:
            raise ValueError(f"`intensity={intensity!r}` needs `intensity_reference` (the "
                             "training images' statistics).")
        self.intensity_reference = intensity_reference
        inv = self.invariances
        self._invariant = None
        if inv["dc"] or inv["symmetrize"]:
            self._invariant = InvariantPatchScore(_RawScore(self), self.patch_size, dc=inv["dc"],
                                                  contrast=inv["contrast"],
                                                  symmetrize=inv["symmetrize"],
                                                  eps=inv["contrast_eps"])

    @property
    def net(self):
        return self.model.net

    def with_invariances(self, **options):
        """A model sharing this network with some invariance options changed (`dc`,
        `contrast`, `symmetrize`, `contrast_eps`, `intensity`)."""
        unknown = set(options) - set(self.invariances)
        if unknown:
            raise TypeError(f"unknown invariance option(s) {sorted(unknown)}; expected "
                            f"{sorted(self.invariances)}.")
        return PatchScoreModel(self.model, self.patch_size, sigma_min=self.sigma_min,
                               sigma_max=self.sigma_max, history=self.history,
                               training=self.training,
                               intensity_reference=self.intensity_reference,
                               **{**self.invariances, **options})

    def score(self, patches, sigma=None, *, out=None):
        """Patch score ``s_V(v; σ)`` in bounded memory; dtype follows `patches`.

        Parameters
        ----------
        patches : ndarray of shape (N, patch_dim)
        sigma : float > 0, ndarray of shape (N,), or None
            Noise level(s); None means ``sigma_min``. Levels outside the trained range
            are extrapolation.
        out : ndarray of shape (N, patch_dim), optional

        Returns
        -------
        ndarray of shape (N, patch_dim)

        Notes
        -----
        Streams the rows in chunks (standardisation temporaries of at most
        16384 rows); the network itself needs memory independent of N.
        """
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        if arr.shape[1] != self.patch_dim:
            raise ValueError(f"`patches` must have {self.patch_dim} columns (patch size "
                             f"{self.patch_size}); got shape {arr.shape}.")
        n = arr.shape[0]
        sig = _check_sigma(self.sigma_min if sigma is None else sigma, n, arr.dtype)
        if self._invariant is None:
            return self._raw_score(arr, sig, out)
        if out is None:
            return self._invariant.score(arr, sig)
        out = check_out(out, "out", arr.shape, arr.dtype)
        out[...] = self._invariant.score(arr, sig)
        return out

    def _raw_score(self, arr, sig, out=None):
        """The network's score of rows `arr` at levels `sig` (shape (N,)), chunked."""
        n = arr.shape[0]
        res = np.empty(arr.shape, dtype=arr.dtype) if out is None else \
            check_out(out, "out", arr.shape, arr.dtype)
        net = self.model._net_for(arr.dtype)
        for lo in range(0, n, _CHUNK_SCORE):
            hi = min(n, lo + _CHUNK_SCORE)
            x, s = arr[lo:hi], sig[lo:hi]
            h = net.predict(self.model._inputs(x, s), out=res[lo:hi])
            self.model._finish(h, x, s, scaled=False)
        return res

    def denoise(self, patches, sigma=None):
        """Tweedie's MMSE denoiser ``v + σ² s_V(v; σ)`` for patches with noise level σ."""
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        sig = _check_sigma(self.sigma_min if sigma is None else sigma, arr.shape[0],
                           arr.dtype)
        s = self.score(arr, sig)
        s *= (sig * sig)[:, None]
        s += arr
        return s

    def get_config(self):
        ref = self.intensity_reference
        return {"model": self.model.get_config(), "patch_size": list(self.patch_size),
                "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "training": self.training, "invariances": dict(self.invariances),
                "intensity_reference": None if ref is None else ref.to_dict()}

    def save(self, path):
        """Write the model to `path` (``.npz`` + JSON metadata, atomically); returns path."""
        from .io import write_model_file

        arrays = {"params": self.model.net.params, "mean": self.model.mean}
        for key, values in self.history.items():
            arrays[f"history/{key}"] = np.asarray(values, dtype=np.float64)
        return write_model_file(path, self.kind, arrays, self.get_config())

    @classmethod
    def load(cls, path, *, n_threads=None):
        """Read a model written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No file at `path`.
        fastscore.io.ModelFileError
            Not a fastscore patch score model, truncated, corrupt or inconsistent.
        """
        from .invariance import IntensityReference
        from .io import ModelFileError, read_model_file

        arrays, meta = read_model_file(path, cls.kind)
        try:
            config = meta["model"]
            params = arrays["params"]
            net_cfg = config["net"]
            widths = [int(w) for w in net_cfg["widths"]]
            expected = sum(widths[l] * widths[l + 1] + widths[l + 1]
                           for l in range(len(widths) - 1))
            if params.ndim != 1 or params.size != expected:
                raise ValueError(f"`params` holds {params.size} values; the architecture "
                                 f"{widths} needs {expected}")
            if params.dtype != np.dtype(net_cfg["dtype"]):
                raise ValueError(f"`params` is {params.dtype}, metadata says "
                                 f"{net_cfg['dtype']}")
            config = dict(config, mean=arrays["mean"])
            ncs = NoiseConditionalScore.from_config(config, params, n_threads=n_threads)
            history = {k.split("/", 1)[1]: v.tolist() for k, v in arrays.items()
                       if k.startswith("history/")}
            ref = meta.get("intensity_reference")
            return cls(ncs, tuple(meta["patch_size"]), sigma_min=meta["sigma_min"],
                       sigma_max=meta["sigma_max"], history=history,
                       training=meta.get("training"),
                       intensity_reference=None if ref is None
                       else IntensityReference.from_dict(ref),
                       **meta.get("invariances", {}))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            what = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ModelFileError(path, f"not a valid patch score model: {what}.") from None

    def __repr__(self):
        on = [k for k in ("dc", "contrast", "symmetrize") if self.invariances[k]]
        if self.invariances["intensity"] != "none":
            on.append(f"intensity={self.invariances['intensity']}")
        return (f"PatchScoreModel(patch_size={self.patch_size}, sigma=[{self.sigma_min:g}, "
                f"{self.sigma_max:g}], invariances=[{', '.join(on)}], {self.model!r})")


class _RawScore:
    """The network of a PatchScoreModel as a plain patch score (the invariances' inner s̃)."""

    def __init__(self, owner):
        self.owner = owner

    def score(self, patches, sigma):
        sig = _check_sigma(sigma, patches.shape[0], patches.dtype)
        return self.owner._raw_score(np.ascontiguousarray(patches), sig)

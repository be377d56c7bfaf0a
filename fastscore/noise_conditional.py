"""The noise-conditional score ``s(x; σ)`` built on a :class:`fastscore.mlp.MLP`.

:class:`NoiseConditionalScore` standardises its input with statistics stored with the
model, divides the network output by σ (Song & Ermon 2020), adds an optional Gaussian
baseline, and maps gradients back to ``x`` with the exact chain rule; it implements the
score-model protocol of :mod:`fastscore.losses`.

A training step (σ²-weighted denoising score matching) with no copies of the network's
buffers::

    model = NoiseConditionalScore.for_patches((3, 3), training_patches, rng=0)
    opt = fastscore.optim.Adam(model.params, step_size=1e-3)       # updates model.params in place
    for step in range(n_steps):
        v, sigma, z = ...                                    # clean patches, levels, N(0, I)
        scaled = model.scaled_score(v + sigma[:, None] * z, sigma, keep=True)   # σ s(ṽ; σ)
        residual = (scaled + z) / len(v)                     # ∂/∂(σ s) of mean ½‖σ s + z‖²
        model.backward(residual)                             # -> model.net.grad
        opt.step(model.net.grad)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ._deprecation import deprecated_alias
from ._validation import as_float_array, check_choice, check_scalar, check_sigma
from .mlp import DEFAULT_HIDDEN, MLP

__all__ = ["NoiseConditionalScore"]


def _check_grad(grad, x):
    """`grad` as an array of the shape and dtype of `x` (a VJP's cotangent)."""
    g = as_float_array(grad, "grad", ndim=2, finite=True).astype(x.dtype, copy=False)
    if g.shape != x.shape:
        raise ValueError(f"`grad` must have the shape of x, {x.shape}; got {g.shape}.")
    return g


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
    ``get_weights``, ``set_weights``, ``score``, ``score_vjp``, ``jacobian_diagonal``,
    ``jacobian_diagonal_vjp``; ``noise_conditional = True``): those methods take the parameters explicitly, copy
    them into the network when they are not its own buffer, and compute in the dtype of
    `x` (a float64 twin of a float32 network is made on demand). The training fast path
    is :meth:`forward`/:meth:`backward` (or :meth:`scaled_score` /
    :meth:`scaled_score_backward`): forward keeps the activations, backward writes
    :math:`\\partial/\\partial θ` into ``net.grad`` with no copies.

    Thread safety: as :class:`MLP`. :meth:`score` and :meth:`jacobian_diagonal` without
    `params` may be called from several threads at once and give the serial results (also
    in the other dtype, whose twin network is only rewritten when the parameters
    changed); the forward state kept for :meth:`backward` is per thread. Calls that pass
    `params` copy them into the shared network, and training writes ``net.grad``: those
    are for one thread at a time.
    """

    noise_conditional = True

    def __init__(self, net: MLP, conditioning: str = "scale", *, mean: ArrayLike = 0.0,
                 std: float = 1.0, baseline: bool = False) -> None:
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
        self._twins: dict[np.dtype, MLP] = {}
        self._local = threading.local()   # per-thread state of forward() for backward()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]
        state["_twins"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    @classmethod
    def for_patches(cls, patch_size: int | Sequence[int], patches: ArrayLike | None = None, *,
                    hidden: Sequence[int] = DEFAULT_HIDDEN,
                    activations: str | Sequence[str] | None = None,
                    conditioning: str = "scale", baseline: bool = False,
                    negative_slope: float = 0.01, dtype: DTypeLike = np.float32,
                    rng: int | np.random.Generator | None = None,
                    n_threads: int | None = None) -> NoiseConditionalScore:
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
    def n_params(self) -> int:
        return self.net.n_params

    @property
    def params(self) -> np.ndarray:
        """The network's flat parameter buffer (not a copy)."""
        return self.net.params

    def get_weights(self) -> np.ndarray:
        """A copy of the network's flat weight vector, shape (n_params,)."""
        return self.net.get_weights()

    def set_weights(self, theta: ArrayLike) -> None:
        """Copy `theta` of shape (n_params,) into the network's weights."""
        self.net.set_weights(theta)

    get_params = deprecated_alias("get_weights", "get_params")
    set_params = deprecated_alias("set_weights", "set_params")

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description (the mean is a list)."""
        return {"conditioning": self.conditioning, "mean": self.mean.tolist(),
                "std": self.std, "baseline": self.baseline, "net": self.net.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any], params: ArrayLike | None = None, *,
                    n_threads: int | None = None) -> NoiseConditionalScore:
        """A model from :meth:`get_config` output (mean as a list or array), with
        `params` copied into its network when given."""
        net = MLP.from_config(config["net"], params, n_threads=n_threads)
        return cls(net, config["conditioning"], mean=config["mean"], std=config["std"],
                   baseline=config["baseline"])

    # -- building blocks (used by PatchScoreModel) ----------------------------------
    def _check_x(self, x, dtype=None):
        arr = as_float_array(x, "x", ndim=2, finite=True, dtype=dtype)
        if arr.shape[1] != self.dim:
            raise ValueError(f"`x` must have {self.dim} columns; got shape {arr.shape}.")
        return arr

    def network_for(self, dtype: DTypeLike, params: ArrayLike | None = None) -> MLP:
        """The network :math:`h` computing in `dtype`, with `params` in place.

        Parameters
        ----------
        dtype : {float32, float64}
            The network's own dtype returns :attr:`net`; the other one a twin network,
            made on first use and refreshed only when :attr:`net`'s parameters changed
            (so threads may share it for inference).
        params : ndarray of shape (n_params,), optional
            Copied into :attr:`net` first; default the current parameters.

        Returns
        -------
        MLP
        """
        if params is not None:
            self.net.set_weights(params)
        if np.dtype(dtype) == self.net.dtype:
            return self.net
        twin = self._twins.get(np.dtype(dtype))
        if twin is None:
            twin = self.net.astype(dtype)
            self._twins[np.dtype(dtype)] = twin
        elif not np.array_equal(twin.params, self.net.params.astype(twin.dtype)):
            # written only when the parameters changed: threads sharing the model read
            # the twin concurrently and must never see it being rewritten
            twin.params[...] = self.net.params
        return twin

    def network_inputs(self, x: np.ndarray, sigma: np.ndarray, *,
                       out: np.ndarray | None = None) -> np.ndarray:
        """The network's input :math:`u` for checked rows `x` at levels `sigma`.

        .. math::

            u = \\frac{x - μ}{σ_{\\rm data}} \\ (\\text{"scale"}), \\qquad
            u = \\Big[\\frac{x - μ}{σ_{\\rm data}},\\ \\log\\frac{σ}{σ_{\\rm data}}\\Big]
            \\ (\\text{"input"})

        Parameters
        ----------
        x : ndarray of shape (N, d), float32 or float64
            Already validated (finite, C-contiguous).
        sigma : ndarray of shape (N,), dtype of `x`
            Already validated levels (:func:`fastscore._validation.check_sigma`).
        out : ndarray of shape (N, d) or (N, d + 1), optional

        Returns
        -------
        u : ndarray of shape (N, d) ("scale") or (N, d + 1) ("input"), dtype of `x`
        """
        dt = x.dtype
        n = x.shape[0]
        width = self.dim + (1 if self.conditioning == "input" else 0)
        u = np.empty((n, width), dtype=dt) if out is None else out
        np.subtract(x, self.mean.astype(dt), out=u[:, :self.dim])
        u[:, :self.dim] *= dt.type(1.0 / self.std)
        if self.conditioning == "input":
            np.log(sigma * dt.type(1.0 / self.std), out=u[:, self.dim])
        return u

    def score_from_output(self, h: np.ndarray, x: np.ndarray, sigma: np.ndarray, *,
                          scaled: bool = False) -> np.ndarray:
        """Turn the network output into the score, in place.

        .. math::

            s = \\frac{h}{σ} - β\\,\\frac{x - μ}{σ_{\\rm data}^2 + σ^2}
            \\quad (\\text{or } σ s \\text{ when `scaled`})

        Parameters
        ----------
        h : ndarray of shape (N, d)
            Output of :meth:`network_for` on :meth:`network_inputs`; overwritten.
        x, sigma
            The rows and levels given to :meth:`network_inputs`.
        scaled : bool
            Return :math:`σ s` (unit scale) instead of :math:`s`.

        Returns
        -------
        h : ndarray of shape (N, d)
        """
        dt = h.dtype
        if not scaled:
            h /= sigma[:, None]
        if self.baseline:
            var = dt.type(self.std ** 2) + sigma * sigma
            coef = (sigma / var) if scaled else (dt.type(1.0) / var)
            h -= (x - self.mean.astype(dt)) * coef[:, None]
        return h

    # -- fast path (training) --------------------------------------------------------
    def forward(self, x: ArrayLike, sigma: float | np.ndarray, *,
                out: np.ndarray | None = None) -> np.ndarray:
        """``s(x; σ)`` keeping the activations for :meth:`backward` (network dtype)."""
        return self._forward(x, sigma, out, scaled=False)

    def scaled_score(self, x: ArrayLike, sigma: float | np.ndarray, *, keep: bool = False,
                     out: np.ndarray | None = None) -> np.ndarray:
        """``σ s(x; σ)`` (unit scale; what the σ²-weighted DSM loss compares with −z).

        With ``keep=True`` the activations are kept for :meth:`scaled_score_backward`.
        """
        if keep:
            return self._forward(x, sigma, out, scaled=True)
        arr = self._check_x(x, dtype=self.net.dtype)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        h = self.net.predict(self.network_inputs(arr, sig), out=out)
        return self.score_from_output(h, arr, sig, scaled=True)

    def _forward(self, x, sigma, out, scaled):
        arr = self._check_x(x, dtype=self.net.dtype)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        h = self.net.forward(self.network_inputs(arr, sig), out=out)
        self._local.state = (arr, sig, scaled)
        return self.score_from_output(h, arr, sig, scaled=scaled)

    def backward(self, grad: ArrayLike, *, input_grad: bool = False) -> np.ndarray | None:
        """Gradient of ``Σ grad · s`` after :meth:`forward` (or of ``Σ grad · σ s`` after
        ``scaled_score(keep=True)``): the parameter part into ``net.grad`` (overwritten),
        and the part in ``x`` (x-units, exact chain rule) returned when `input_grad`."""
        state = getattr(self._local, "state", None)
        if state is None:
            raise RuntimeError("backward() needs forward() or scaled_score(keep=True) "
                               "first.")
        x, sig, scaled = state
        g = as_float_array(grad, "grad", ndim=2, dtype=self.net.dtype)
        if g.shape != x.shape:
            raise ValueError(f"`grad` must have shape {x.shape} (the last forward batch); "
                             f"got {g.shape}.")
        scale = None if scaled else (g.dtype.type(1.0) / sig)
        gu = self.net.backward(g, input_grad=input_grad, row_scale=scale)
        if gu is None:
            return None
        return self._input_grad(gu, g, sig, scaled)

    def _input_grad(self, gu, g, sig, scaled):
        """The x-part of the gradient from the network's input gradient `gu` (chain rule
        through :meth:`network_inputs` and :meth:`score_from_output`)."""
        gx = gu[:, :self.dim] * g.dtype.type(1.0 / self.std)
        if self.baseline:
            var = g.dtype.type(self.std ** 2) + sig * sig
            coef = (sig / var) if scaled else (g.dtype.type(1.0) / var)
            gx -= g * coef[:, None]
        return np.ascontiguousarray(gx)

    def input_vjp(self, x: ArrayLike, grad: ArrayLike,
                  sigma: float | np.ndarray) -> np.ndarray:
        """Vector-Jacobian product in the input, ``Σ_i grad[n,i] ∂s_i(x_n; σ_n)/∂x_n``.

        Exact (one forward pass keeping the activations and one backward pass of the
        network in the dtype of `x`); the network's parameter gradient buffer is
        overwritten as a by-product.

        Parameters
        ----------
        x, grad : ndarray of shape (N, d)
        sigma : float or ndarray of shape (N,)

        Returns
        -------
        ndarray of shape (N, d), dtype of `x`
        """
        arr = self._check_x(x)
        net = self.network_for(arr.dtype)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        g = np.ascontiguousarray(_check_grad(grad, arr))
        net.forward(self.network_inputs(arr, sig))
        gu = net.backward(g, input_grad=True, row_scale=arr.dtype.type(1.0) / sig)
        return self._input_grad(gu, g, sig, False)

    def scaled_score_backward(self, grad: ArrayLike, *,
                              input_grad: bool = False) -> np.ndarray | None:
        """Alias of :meth:`backward` after ``scaled_score(..., keep=True)``."""
        return self.backward(grad, input_grad=input_grad)

    # -- protocol: scores and gradients ----------------------------------------------
    def score(self, x: ArrayLike, params: ArrayLike | None = None,
              sigma: float | np.ndarray | None = None) -> np.ndarray:
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
        net = self.network_for(arr.dtype, params)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        h = net.predict(self.network_inputs(arr, sig))
        return self.score_from_output(h, arr, sig, scaled=False)

    def score_vjp(self, x: ArrayLike, params: ArrayLike | None, grad: ArrayLike,
                  sigma: float | np.ndarray | None = None) -> np.ndarray:
        """``Σ_{n,i} grad[n,i] ∂s_i(x_n; σ_n)/∂θ``, shape (n_params,), dtype of `x`."""
        arr = self._check_x(x)
        net = self.network_for(arr.dtype, params)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        g = _check_grad(grad, arr)
        net.forward(self.network_inputs(arr, sig))
        net.backward(np.ascontiguousarray(g), row_scale=arr.dtype.type(1.0) / sig)
        return net.grad.copy()

    def jacobian_diagonal(self, x: ArrayLike, params: ArrayLike | None = None,
                          sigma: float | np.ndarray | None = None) -> np.ndarray:
        """``∂s_i/∂x_i`` of shape (N, d) (exact, forward-mode through the network)."""
        arr = self._check_x(x)
        net = self.network_for(arr.dtype, params)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        diag = net.jacobian_diagonal(self.network_inputs(arr, sig), n_dirs=self.dim)
        diag /= (sig * arr.dtype.type(self.std))[:, None]
        if self.baseline:
            diag -= (arr.dtype.type(1.0) / (arr.dtype.type(self.std ** 2) + sig * sig))[:, None]
        return diag

    def jacobian_diagonal_vjp(self, x: ArrayLike, params: ArrayLike | None, grad: ArrayLike,
                              sigma: float | np.ndarray | None = None) -> np.ndarray:
        """``Σ_{n,i} grad[n,i] ∂/∂θ (∂s_i/∂x_i)(x_n; σ_n)``, shape (n_params,) (ISM/RSM).

        Exact (see :meth:`MLP.jacobian_diagonal_vjp`; NumPy, about d backward passes).
        """
        arr = self._check_x(x)
        net = self.network_for(arr.dtype, params)
        sig = check_sigma(sigma, arr.shape[0], arr.dtype)
        g = _check_grad(grad, arr)
        # ∂s_i/∂x_i = J_h,ii(u) / (σ σ_data) - β/(σ_data² + σ²): only the first term has θ
        gh = g / (sig * arr.dtype.type(self.std))[:, None]
        return net.jacobian_diagonal_vjp(self.network_inputs(arr, sig), gh, n_dirs=self.dim)

    def __repr__(self) -> str:
        return (f"NoiseConditionalScore({self.net!r}, conditioning={self.conditioning!r}, "
                f"std={self.std:.4g}, baseline={self.baseline})")

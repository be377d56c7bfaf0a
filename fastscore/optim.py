"""Optimiser for flat parameter buffers: Adam/AdamW, step-size schedules (defined in
``_schedules``), gradient clipping and an exponential moving average of the weights.

The network keeps every parameter in **one flat contiguous buffer** and its gradient in a
second one, so an optimiser step is a single fused compiled pass over the buffer (moments
and parameter updated together, OpenMP over entries, SIMD inside each thread's range).
Every kernel here gives the same bits for any thread count.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._deprecation import deprecated_alias, deprecated_attribute, renamed_arguments
from ._threads import effective_threads, resolve_n_threads
from ._ext import adam as _kernels
from ._schedules import (
    ConstantLR,
    ConstantSchedule,
    CosineLR,
    CosineSchedule,
    StepDecaySchedule,
    StepLR,
    WarmupLR,
    WarmupSchedule,
    _as_schedule,
    _Schedule,
)
from ._validation import as_float_array, check_int, check_scalar

__all__ = [
    "Adam",
    "EMA",
    "clip_grad_norm",
    "grad_norm",
    "ConstantSchedule",
    "CosineSchedule",
    "StepDecaySchedule",
    "WarmupSchedule",
    "ConstantLR",
    "CosineLR",
    "StepLR",
    "WarmupLR",
]


def _check_buffer(x, name):
    """An array the optimiser may update in place: float32/float64, C-contiguous, writeable."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray (updated in place); got "
                        f"{type(x).__name__}.")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"`{name}` must have dtype float32 or float64 (updated in place); "
                        f"got {x.dtype}.")
    if not (x.flags.c_contiguous and x.flags.writeable and x.dtype.isnative):
        raise ValueError(f"`{name}` must be a writeable, C-contiguous, native-endian array "
                         "(it is updated in place); got a view that is not.")
    if x.size == 0:
        raise ValueError(f"`{name}` must not be empty; got shape {x.shape}.")
    return x.reshape(-1)


def _check_like(x, name, like, like_name):
    """`x` read as a flat array with the dtype and size of `like` (copied only if needed)."""
    arr = as_float_array(x, name, dtype=like.dtype)
    if arr.size != like.size:
        raise ValueError(f"`{name}` must have {like.size} entries like `{like_name}`; got "
                         f"shape {arr.shape} ({arr.size} entries).")
    return arr.reshape(-1)


#: Entries per thread below which a pass stays on one thread: a pass over a few hundred
#: thousand floats takes ~0.1 ms, less than what a second thread can lose waiting for a
#: busy core. Results are the same bits for any thread count, so this only affects speed.
MIN_ENTRIES_PER_THREAD = 1 << 19


def _threads(n_threads, size):
    return effective_threads(n_threads, size // MIN_ENTRIES_PER_THREAD)


# --------------------------------------------------------------------------- clipping


def grad_norm(grad: ArrayLike, *, n_threads: int | None = None) -> float:
    """Global Euclidean norm of a flat buffer, :math:`\\|g\\|_2 = (\\sum_i g_i^2)^{1/2}`.

    Accumulated in double for float32 and float64 input, in blocks whose layout depends on
    the size only, so the value is identical for any thread count.

    Parameters
    ----------
    grad : ndarray of float32 or float64
        Any shape; all entries count.
    n_threads : int, optional

    Returns
    -------
    norm : float
        ``inf`` or ``nan`` when `grad` holds non-finite values.
    """
    g = as_float_array(grad, "grad").reshape(-1)
    return math.sqrt(_kernels.sum_squares(g, _threads(n_threads, g.size)))


def clip_grad_norm(grad: NDArray[np.floating], max_norm: float, *,
                   n_threads: int | None = None) -> float:
    """Rescale `grad` in place so its global norm is at most `max_norm`; return the norm.

    .. math::

        g \\leftarrow g \\cdot \\frac{c}{\\|g\\|_2 + 10^{-6}} \\quad \\text{if } \\|g\\|_2 > c

    (the 10⁻⁶ guard as in PyTorch's ``clip_grad_norm_``); a gradient within the bound is left
    bit for bit as it is. The norm is the one before clipping, accumulated in double and
    identical for any thread count.

    Parameters
    ----------
    grad : ndarray of float32 or float64
        The flat gradient buffer, rescaled in place (must be C-contiguous and writeable).
    max_norm : float > 0
        :math:`c`; ``inf`` only measures.
    n_threads : int, optional

    Returns
    -------
    norm : float
        :math:`\\|g\\|_2` before clipping. When it is not finite (NaN/Inf in `grad`), `grad` is
        left untouched and the non-finite norm is returned, so the caller can stop.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.optim import clip_grad_norm
    >>> g = np.array([3.0, 4.0])
    >>> clip_grad_norm(g, 1.0)
    5.0
    >>> bool(np.allclose(g, [0.6, 0.8], atol=1e-6))
    True
    """
    g = _check_buffer(grad, "grad")
    if isinstance(max_norm, numbers.Real) and not isinstance(max_norm, (bool, np.bool_)) \
            and max_norm == math.inf:
        max_norm = math.inf
    else:
        max_norm = check_scalar(max_norm, "max_norm", low=0.0, low_inclusive=False)
    nt = _threads(n_threads, g.size)
    norm = math.sqrt(_kernels.sum_squares(g, nt))
    if math.isfinite(norm) and norm > max_norm:
        _kernels.scale(g, max_norm / (norm + 1e-6), nt)
    return norm


# --------------------------------------------------------------------------- Adam


class Adam:
    """Adam with bias correction and decoupled (AdamW) or L2 weight decay, in place on a
    flat parameter buffer.

    Each :meth:`step` is one fused compiled pass over the buffer:

    .. math::

        m_t &= \\beta_1 m_{t-1} + (1 - \\beta_1) g_t \\\\
        v_t &= \\beta_2 v_{t-1} + (1 - \\beta_2) g_t^2 \\\\
        \\theta_t &= (1 - \\eta_t \\lambda)\\,\\theta_{t-1}
            - \\frac{\\eta_t}{1 - \\beta_1^t}\\,
              \\frac{m_t}{\\sqrt{v_t} / \\sqrt{1 - \\beta_2^t} + \\epsilon}

    with the decoupled weight decay :math:`\\lambda` of AdamW (Loshchilov & Hutter 2019) by
    default; with ``decoupled_weight_decay=False`` the decay is a classic L2 term added to
    the gradient instead, :math:`g_t \\leftarrow g_t + \\lambda\\theta_{t-1}`, and the
    :math:`(1 - \\eta_t\\lambda)` factor is dropped. The order of operations is PyTorch's
    (``torch.optim.Adam`` / ``AdamW``), so both give the same iterates up to rounding.

    Parameters
    ----------
    params : ndarray of float32 or float64
        The parameter buffer, updated **in place**; must be C-contiguous and writeable (any
        shape; it is treated as flat). The optimiser keeps a reference to it.
    step_size : float >= 0 or callable, default 1e-3
        :math:`\\eta_t`, the step size (PyTorch's learning rate ``lr``, the old name): a
        constant, or a schedule ``step -> step size`` (:class:`CosineSchedule`,
        :class:`StepDecaySchedule`, :class:`WarmupSchedule` or any callable), evaluated at
        the number of steps already taken (0 for the first step).
    betas : (float, float), default (0.9, 0.999)
        :math:`(\\beta_1, \\beta_2)`, each in [0, 1).
    eps : float > 0, default 1e-8
        :math:`\\epsilon`.
    weight_decay : float >= 0, default 0
        :math:`\\lambda`.
    decoupled_weight_decay : bool, default True
        AdamW-style decoupled decay (True) or L2 decay folded into the gradient (False).
    n_threads : int, optional
        Threads of the compiled pass; ``None`` follows :func:`fastscore.get_num_threads`.

    Attributes
    ----------
    step_count : int
        Steps taken, :math:`t` after the last step.
    m, v : ndarray
        First and second moments, flat, dtype of `params`.

    Notes
    -----
    Hyper-parameters and bias corrections are computed in double and rounded once to the
    buffer's dtype; the update runs in that dtype (no fused multiply-add, so the vector and
    scalar code paths round identically). The result is the same bits for any thread count;
    :meth:`state_dict` / :meth:`load_state_dict` resume bit for bit. Memory: two buffers the
    size of `params`. The gradient is not checked for NaN/Inf (that would cost a second
    pass); :func:`clip_grad_norm` or :func:`grad_norm` return a non-finite norm for it.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.optim import Adam
    >>> theta = np.zeros(4, dtype=np.float32)
    >>> opt = Adam(theta, step_size=0.1)
    >>> for _ in range(3):
    ...     eta = opt.step(2 * (theta - 1))   # gradient of ||theta - 1||^2
    >>> theta.round(2)                        # each step moves about eta towards 1
    array([0.3, 0.3, 0.3, 0.3], dtype=float32)
    """

    @renamed_arguments(lr="step_size")
    def __init__(self, params: NDArray[np.floating],
                 step_size: float | _Schedule | Callable[[int], float] = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, decoupled_weight_decay: bool = True,
                 n_threads: int | None = None) -> None:
        self.params = params
        self._flat = _check_buffer(params, "params")
        self.step_size = _as_schedule(step_size)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"`betas` must be a pair of floats in [0, 1); got {betas!r}.") \
                from None
        self.betas = (check_scalar(beta1, "betas[0]", low=0.0, high=1.0, high_inclusive=False),
                      check_scalar(beta2, "betas[1]", low=0.0, high=1.0, high_inclusive=False))
        self.eps = check_scalar(eps, "eps", low=0.0, low_inclusive=False)
        self.weight_decay = check_scalar(weight_decay, "weight_decay", low=0.0)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        self.n_threads = None if n_threads is None else resolve_n_threads(n_threads)
        self.m = np.zeros_like(self._flat)
        self.v = np.zeros_like(self._flat)
        self.step_count = 0

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._flat.dtype

    lr = deprecated_attribute("step_size", "lr")

    def current_step_size(self) -> float:
        """The step size the next :meth:`step` uses (the schedule at `step_count`)."""
        return self.step_size(self.step_count)

    current_lr = deprecated_alias("current_step_size", "current_lr")

    @renamed_arguments(lr="step_size")
    def step(self, grad: ArrayLike, step_size: float | None = None) -> float:
        """Take one Adam step in place on the parameter buffer.

        Parameters
        ----------
        grad : ndarray
            Gradient, same number of entries and dtype as `params` (float64 is never
            narrowed: a float64 gradient for float32 parameters is a ``TypeError``).
        step_size : float >= 0, optional
            Step size for this step only, overriding the schedule.

        Returns
        -------
        step_size : float
            The step size used.
        """
        g = _check_like(grad, "grad", self._flat, "params")
        eta = (self.step_size(self.step_count) if step_size is None
               else check_scalar(step_size, "step_size", low=0.0))
        t = self.step_count + 1
        beta1, beta2 = self.betas
        bc1 = 1.0 - beta1 ** t
        bc2 = 1.0 - beta2 ** t
        wd = self.weight_decay
        _kernels.adam_step(
            self._flat, g, self.m, self.v, beta1, beta2, 1.0 - beta1, 1.0 - beta2,
            eta / bc1, 1.0 / math.sqrt(bc2), self.eps,
            1.0 - eta * wd if self.decoupled_weight_decay else 1.0,
            0.0 if self.decoupled_weight_decay else wd,
            self.decoupled_weight_decay, _threads(self.n_threads, g.size))
        self.step_count = t
        return eta

    def state_dict(self) -> dict[str, Any]:
        """Optimiser state for a checkpoint: copies of the moments, the step count and the
        hyper-parameters.

        Everything is an array or a plain Python number, ready for
        :func:`fastscore.io.write_model_file` (arrays) and JSON (the rest). The step-size
        schedule is configuration, not state: it is not included; give the same one to the
        optimiser that resumes.

        Returns
        -------
        dict
            ``{"step_count": int, "m": ndarray, "v": ndarray, "betas": [float, float],
            "eps": float, "weight_decay": float, "decoupled_weight_decay": bool}``.
        """
        return {
            "step_count": int(self.step_count),
            "m": self.m.copy(),
            "v": self.v.copy(),
            "betas": [self.betas[0], self.betas[1]],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decoupled_weight_decay": self.decoupled_weight_decay,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the moments and step count saved by :meth:`state_dict`.

        The moments are copied into this optimiser's buffers (size and dtype must match the
        parameters); hyper-parameters present in `state` replace the current ones; the
        step-size schedule stays the one given to the constructor. Continuing after a
        load gives the same bits as never stopping.
        """
        if not isinstance(state, dict):
            raise TypeError(f"`state` must be a dict from Adam.state_dict(); got "
                            f"{type(state).__name__}.")
        missing = [k for k in ("step_count", "m", "v") if k not in state]
        if missing:
            raise ValueError(f"`state` lacks {missing}; expected a dict from Adam.state_dict().")
        m, v = (np.asarray(state[k]) for k in ("m", "v"))
        for name, arr in (("m", m), ("v", v)):
            if arr.dtype != self.dtype or arr.size != self._flat.size:
                raise ValueError(
                    f"`state['{name}']` must have {self._flat.size} entries of dtype "
                    f"{self.dtype}; got shape {arr.shape}, dtype {arr.dtype}.")
        step_count = check_int(state["step_count"], "state['step_count']", low=0)
        if "betas" in state:
            b1, b2 = state["betas"]
            self.betas = (check_scalar(float(b1), "betas[0]", low=0.0, high=1.0,
                                       high_inclusive=False),
                          check_scalar(float(b2), "betas[1]", low=0.0, high=1.0,
                                       high_inclusive=False))
        if "eps" in state:
            self.eps = check_scalar(state["eps"], "eps", low=0.0, low_inclusive=False)
        if "weight_decay" in state:
            self.weight_decay = check_scalar(state["weight_decay"], "weight_decay", low=0.0)
        if "decoupled_weight_decay" in state:
            self.decoupled_weight_decay = bool(state["decoupled_weight_decay"])
        self.m[...] = m.reshape(-1)
        self.v[...] = v.reshape(-1)
        self.step_count = step_count

    def __repr__(self) -> str:
        return (f"Adam(n_params={self._flat.size}, dtype={self.dtype}, "
                f"step_size={self.step_size!r}, "
                f"betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay}, "
                f"decoupled_weight_decay={self.decoupled_weight_decay}, "
                f"step_count={self.step_count})")


# --------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of the weights (Polyak averaging), used for evaluation.

    .. math:: \\bar\\theta \\leftarrow \\bar\\theta + (1 - d)(\\theta - \\bar\\theta)
        = d\\,\\bar\\theta + (1 - d)\\,\\theta

    The first :meth:`update` copies the parameters (:math:`\\bar\\theta_1 = \\theta_1`); each
    later one is a fused compiled pass.

    Parameters
    ----------
    decay : float in [0, 1), default 0.999
        :math:`d`; the average forgets with a time constant of about ``1 / (1 - d)`` updates.
    n_threads : int, optional

    Attributes
    ----------
    average : ndarray or None
        The averaged flat buffer (``None`` before the first update).
    n_updates : int

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.optim import EMA
    >>> ema = EMA(0.5)
    >>> ema.update(np.zeros(2))
    >>> ema.update(np.ones(2))
    >>> ema.average
    array([0.5, 0.5])
    """

    def __init__(self, decay: float = 0.999, *, n_threads: int | None = None) -> None:
        self.decay = check_scalar(decay, "decay", low=0.0, high=1.0, high_inclusive=False)
        self.n_threads = None if n_threads is None else resolve_n_threads(n_threads)
        self.average: NDArray[Any] | None = None
        self.n_updates = 0

    def update(self, params: ArrayLike) -> None:
        """Fold the current parameters into the average."""
        if self.average is None:
            p = as_float_array(params, "params").reshape(-1)
            self.average = p.copy()
        else:
            p = _check_like(params, "params", self.average, "the average")
            _kernels.ema_update(self.average, p, self.decay,
                                _threads(self.n_threads, p.size))
        self.n_updates += 1

    def copy_to(self, out: NDArray[np.floating]) -> NDArray[np.floating]:
        """Write the average into `out` (e.g. the network's parameter buffer) and return it."""
        if self.average is None:
            raise RuntimeError("EMA.copy_to: no update yet, so there is no average.")
        flat = _check_buffer(out, "out")
        if flat.dtype != self.average.dtype or flat.size != self.average.size:
            raise ValueError(f"`out` must have {self.average.size} entries of dtype "
                             f"{self.average.dtype}; got shape {out.shape}, dtype {out.dtype}.")
        flat[...] = self.average
        return out

    def state_dict(self) -> dict[str, Any]:
        """``{"decay", "n_updates", "average"}`` (a copy of the average, or None)."""
        return {"decay": self.decay, "n_updates": int(self.n_updates),
                "average": None if self.average is None else self.average.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        if not isinstance(state, dict) or not {"decay", "n_updates", "average"} <= set(state):
            raise ValueError("`state` must be a dict from EMA.state_dict() with keys "
                             "'decay', 'n_updates', 'average'.")
        self.decay = check_scalar(state["decay"], "decay", low=0.0, high=1.0,
                                  high_inclusive=False)
        self.n_updates = check_int(state["n_updates"], "state['n_updates']", low=0)
        avg = state["average"]
        self.average = None if avg is None else as_float_array(avg, "state['average']") \
            .reshape(-1).copy()

    def __repr__(self) -> str:
        size = None if self.average is None else self.average.size
        return f"EMA(decay={self.decay}, n_updates={self.n_updates}, size={size})"

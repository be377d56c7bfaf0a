"""Step-size schedules of :mod:`fastscore.optim` (public there): callables ``step -> η``
evaluated by :class:`fastscore.optim.Adam` at the number of steps already taken, and the
deprecated ``*LR`` names of the same schedules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._deprecation import deprecated_attribute, renamed_arguments, warn_deprecated
from ._validation import check_int, check_scalar

__all__ = ["ConstantSchedule", "CosineSchedule", "StepDecaySchedule", "WarmupSchedule",
           "ConstantLR", "CosineLR", "StepLR", "WarmupLR"]


class _Schedule:
    """Base of the step-size schedules: a callable ``step -> step size`` (step counts
    from 0)."""

    def __call__(self, step: int) -> float:
        step = check_int(step, "step", low=0)
        return float(self._value(step))

    def _value(self, step):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def _params(self):
        return dict(vars(self))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


def _as_schedule(step_size, name="step_size"):
    """A float or a schedule -> a schedule (floats become :class:`ConstantSchedule`)."""
    if isinstance(step_size, _Schedule):
        return step_size
    if callable(step_size):
        return _Callable(step_size)
    return ConstantSchedule(check_scalar(step_size, name, low=0.0))


class _Callable(_Schedule):
    """Any user callable ``step -> step size``, checked at each call."""

    def __init__(self, fn):
        self.fn = fn

    def _value(self, step):
        return check_scalar(self.fn(step), "step_size (returned by the schedule)", low=0.0)


class ConstantSchedule(_Schedule):
    """Constant step size, :math:`\\eta_t = \\eta`.

    Parameters
    ----------
    step_size : float >= 0
    """

    def __init__(self, step_size: float) -> None:
        self.step_size = check_scalar(step_size, "step_size", low=0.0)

    def _value(self, step):
        return self.step_size


class CosineSchedule(_Schedule):
    """Cosine decay from `step_size` to `final_step_size` over `n_steps` steps, then
    constant.

    .. math::

        \\eta_t = \\eta_{\\mathrm{final}} + \\tfrac12(\\eta - \\eta_{\\mathrm{final}})
        \\bigl(1 + \\cos(\\pi \\min(t, T)/T)\\bigr)

    Parameters
    ----------
    step_size : float >= 0
        :math:`\\eta`, the step size at step 0.
    n_steps : int >= 1
        :math:`T`, the length of the decay.
    final_step_size : float >= 0, default 0
        :math:`\\eta_{\\mathrm{final}}`, reached at step `n_steps` and kept after it.
    """

    def __init__(self, step_size: float, n_steps: int, final_step_size: float = 0.0) -> None:
        self.step_size = check_scalar(step_size, "step_size", low=0.0)
        self.n_steps = check_int(n_steps, "n_steps", low=1)
        self.final_step_size = check_scalar(final_step_size, "final_step_size", low=0.0)

    def _value(self, step):
        t = min(step, self.n_steps) / self.n_steps
        return self.final_step_size + 0.5 * (self.step_size - self.final_step_size) * (
            1.0 + math.cos(math.pi * t))


class StepDecaySchedule(_Schedule):
    """Step decay: multiply the step size by `gamma` every `period` steps.

    .. math:: \\eta_t = \\eta\\, \\gamma^{\\lfloor t / s \\rfloor}

    Parameters
    ----------
    step_size : float >= 0
        :math:`\\eta`.
    period : int >= 1
        :math:`s`, steps between decays.
    gamma : float in (0, 1], default 0.1
        :math:`\\gamma`, the factor applied at each decay.
    """

    def __init__(self, step_size: float, period: int, gamma: float = 0.1) -> None:
        self.step_size = check_scalar(step_size, "step_size", low=0.0)
        self.period = check_int(period, "period", low=1)
        self.gamma = check_scalar(gamma, "gamma", low=0.0, low_inclusive=False, high=1.0)

    def _value(self, step):
        return self.step_size * self.gamma ** (step // self.period)


class WarmupSchedule(_Schedule):
    """Linear warm-up in front of another schedule (or a constant step size).

    For the first `n_warmup` steps the step size ramps linearly from
    ``start_factor * base(0)`` towards ``base(0)``; from step `n_warmup` on, the base schedule
    runs from its own step 0:

    .. math::

        \\eta_t = \\begin{cases}
            \\eta^{\\mathrm{base}}_0 \\bigl(f_0 + (1 - f_0)\\, t / W\\bigr) & t < W \\\\
            \\eta^{\\mathrm{base}}_{t - W} & t \\ge W
        \\end{cases}

    so ``WarmupSchedule(CosineSchedule(1e-3, 9000), 1000)`` warms up for 1000 steps and
    then decays over the next 9000.

    Parameters
    ----------
    base : float or schedule
        The step size or schedule that follows the warm-up.
    n_warmup : int >= 0
        :math:`W`, number of warm-up steps (0: no warm-up).
    start_factor : float in [0, 1], default 0
        :math:`f_0`, the fraction of the base step size at step 0.
    """

    def __init__(self, base: float | _Schedule | Callable[[int], float], n_warmup: int,
                 start_factor: float = 0.0) -> None:
        self.base = _as_schedule(base, "base")
        self.n_warmup = check_int(n_warmup, "n_warmup", low=0)
        self.start_factor = check_scalar(start_factor, "start_factor", low=0.0, high=1.0)

    def _value(self, step):
        if step < self.n_warmup:
            f = self.start_factor + (1.0 - self.start_factor) * step / self.n_warmup
            return self.base(0) * f
        return self.base(step - self.n_warmup)


class _Renamed(_Schedule):
    """A schedule class under its old name (``*LR``, ``lr``): warns when constructed, then
    is the renamed schedule (same values), its old attribute names still readable."""

    _new: type[_Schedule]
    _old_names: dict[str, str] = {"lr": "step_size", "final_lr": "final_step_size"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for old, new in self._old_names.items():
            if old in kwargs:
                kwargs[new] = kwargs.pop(old)
        warn_deprecated(f"optim.{type(self).__name__} is deprecated; use "
                        f"optim.{self._new.__name__} (learning rate `lr` is `step_size`).")
        self.schedule = self._new(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "schedule":
            raise AttributeError(name)
        return getattr(self.schedule, self._old_names.get(name, name))

    def _value(self, step):
        return self.schedule._value(step)

    def _params(self):
        return self.schedule._params()


class ConstantLR(_Renamed):
    """Deprecated name of :class:`ConstantSchedule` (removed in fastscore 0.2)."""

    _new = ConstantSchedule


class CosineLR(_Renamed):
    """Deprecated name of :class:`CosineSchedule` (``lr``, ``final_lr`` are ``step_size``,
    ``final_step_size``; removed in fastscore 0.2)."""

    _new = CosineSchedule


class StepLR(_Renamed):
    """Deprecated name of :class:`StepDecaySchedule` (``lr`` is ``step_size``; its own
    ``step_size`` meant the ``period``; removed in fastscore 0.2)."""

    _new = StepDecaySchedule

    @renamed_arguments(step_size="period")
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    step_size = deprecated_attribute("period", "step_size")


class WarmupLR(_Renamed):
    """Deprecated name of :class:`WarmupSchedule` (removed in fastscore 0.2)."""

    _new = WarmupSchedule

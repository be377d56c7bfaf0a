"""The one way fastscore retires a public name (see ``docs/conventions.rst``).

A renamed argument, a formerly positional option, a renamed method or attribute and an old
callback signature keep working for one release and emit a :class:`FutureWarning` (shown
to end users by default, as NumPy and scikit-learn do) that names the new spelling. Every
use goes through the helpers below, and every one has a test in
``tests/test_deprecations.py`` that it warns and gives the same result as the new name.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import numpy as np

__all__ = ["REMOVED_IN", "adapt_callback", "deprecated_alias", "deprecated_attribute",
           "keyword_only", "renamed_arguments", "warn_deprecated"]

F = TypeVar("F", bound=Callable[..., Any])

#: The release in which the deprecated spellings go away.
REMOVED_IN = "0.2"


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_deprecated(message: str) -> None:
    """Emit the deprecation warning ``message`` (with the removal release appended),
    attributed to the first caller outside fastscore (the user's line)."""
    frame: FrameType | None = sys._getframe(0)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"{message} The old form is removed in fastscore {REMOVED_IN}.",
                  FutureWarning, stacklevel=level)


def renamed_arguments(**old_to_new: str) -> Callable[[F], F]:
    """Decorator: accept keyword arguments under their old names, with a warning.

    ``@renamed_arguments(eps="step_size")`` maps ``f(..., eps=v)`` to
    ``f(..., step_size=v)``; giving both names is a ``TypeError``.
    """
    def decorate(func: F) -> F:
        qualname = func.__qualname__

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{qualname}() got both `{new}` and its deprecated "
                                        f"name `{old}`; give `{new}` only.")
                    warn_deprecated(f"{qualname}(): `{old}` is deprecated; use `{new}`.")
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def keyword_only(*names: str) -> Callable[[F], F]:
    """Decorator: options that became keyword-only are still taken positionally, with a
    warning, for one release.

    `names` are the formerly positional parameters, in their old order, that now follow
    ``*`` in the signature (e.g. ``keyword_only("n_noise", "rng")``).
    """
    def decorate(func: F) -> F:
        params = inspect.signature(func).parameters.values()
        n_positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                           for p in params)
        qualname = func.__qualname__

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extra = len(args) - n_positional
            if extra > 0:
                if extra > len(names):
                    raise TypeError(f"{qualname}() takes {n_positional} positional arguments "
                                    f"but {len(args)} were given.")
                moved = names[:extra]
                for name, value in zip(moved, args[n_positional:], strict=True):
                    if name in kwargs:
                        raise TypeError(f"{qualname}() got multiple values for `{name}`.")
                    kwargs[name] = value
                shown = ", ".join(f"{n}=..." for n in moved)
                warn_deprecated(f"{qualname}(): passing {', '.join(moved)} positionally is "
                                f"deprecated; they are keyword-only ({shown}).")
                args = args[:n_positional]
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def deprecated_alias(new_name: str, old_name: str) -> Callable[..., Any]:
    """A method ``old_name`` that warns and calls ``self.<new_name>``.

    Defined as ``get_params = deprecated_alias("get_weights", "get_params")`` in the class
    body; subclasses overriding ``new_name`` are followed.
    """
    def alias(self: Any, *args: Any, **kwargs: Any) -> Any:
        warn_deprecated(f"{type(self).__name__}.{old_name}() is deprecated; use "
                        f".{new_name}().")
        return getattr(self, new_name)(*args, **kwargs)

    alias.__name__ = old_name
    alias.__doc__ = f"Deprecated alias of :meth:`{new_name}`."
    return alias


def deprecated_attribute(new_name: str, old_name: str) -> property:
    """A read-only property ``old_name`` that warns and returns ``self.<new_name>``."""
    def getter(self: Any) -> Any:
        warn_deprecated(f"{type(self).__name__}.{old_name} is deprecated; use .{new_name}.")
        return getattr(self, new_name)

    return property(getter, doc=f"Deprecated alias of ``{new_name}``.")


def _takes_three(callback: Callable[..., Any]) -> bool:
    """Whether ``callback(k, x, info)`` binds (unknown signatures are assumed to)."""
    try:
        inspect.signature(callback).bind(0, None, None)
    except TypeError:
        return False
    except ValueError:          # no signature (some builtins): assume the current protocol
        return True
    return True


def _stop_requested(result: Any, where: str) -> bool:
    """The one stop rule of callbacks: ``True`` stops, ``None`` or ``False`` goes on."""
    if result is None or isinstance(result, (bool, np.bool_)):
        return bool(result)
    raise TypeError(f"the `callback` of {where}() must return a bool (True stops) or None; "
                    f"got {type(result).__name__}.")


def adapt_callback(callback: Callable[..., Any] | None, where: str, *,
                   old: str = "k, x") -> Callable[..., bool] | None:
    """The callback as ``callback(k, x, info) -> bool`` with the one stop rule (``True``
    stops; ``None``/``False`` continue; any other return value is a ``TypeError``).

    A callable that cannot take three arguments follows the old protocol of `where`,
    ``callback(k, x)`` (``old="k, x"``, the samplers) or ``callback(k, info)``
    (``old="k, info"``, training): it is wrapped with a warning.
    """
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"`callback` must be callable; got {type(callback).__name__}.")
    call = callback
    if not _takes_three(callback):
        warn_deprecated(f"{where}(): callback({old}) is deprecated; callbacks are called "
                        "as callback(k, x, info) -> bool.")
        if old == "k, info":
            def call(k, x, info):
                return callback(k, info)
        else:
            def call(k, x, info):
                return callback(k, x)
    return lambda k, x, info: _stop_requested(call(k, x, info), where)

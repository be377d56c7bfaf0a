"""The learned patch score, by its historical import path.

The network, its noise-conditional wrapper and the trained patch model live in one module
each (calls go down only):

- :mod:`fastscore.mlp` — :class:`MLP`, the compiled multilayer perceptron;
- :mod:`fastscore.noise_conditional` — :class:`NoiseConditionalScore`, ``s(x; σ)``
  from an MLP with standardised input;
- :mod:`fastscore.score_model` — :class:`PatchScoreModel`, the trained patch prior
  with ``save``/``load``.

``fastscore.nn`` re-exports them; both import paths name the same objects.
"""

from .mlp import (  # noqa: F401 (private names: tests; old pickles)
    ACTIVATIONS,
    DEFAULT_HIDDEN,
    DEFAULT_WIDTHS,
    MLP,
    _blas,
    _kernels,
    _rebuild_mlp,
)
from .noise_conditional import NoiseConditionalScore
from .score_model import PatchScoreModel

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_HIDDEN",
    "DEFAULT_WIDTHS",
    "MLP",
    "NoiseConditionalScore",
    "PatchScoreModel",
]

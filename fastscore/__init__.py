"""fastscore: score-based patch priors for imaging on ordinary CPUs.

Learn the score (gradient of the log-density) of small image patches by score matching and
use it as an image prior for denoising, posterior sampling with uncertainty maps, and
inverse problems, with NumPy arrays in and out and compiled kernels underneath.

Submodules are imported on first use, so ``import fastscore`` needs only numpy and scipy
and does no work.
"""

import importlib

from ._config import get_num_threads, openmp_enabled, set_num_threads, show_config
from ._version import __version__

__all__ = [
    "__version__",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "openmp_enabled",
    "PatchOperator",
    "GaussianKDE",
    "MLP",
    "Adam",
    "estimate_noise_sigma",
]

# public name -> submodule that defines it (imported lazily, on first attribute access)
_LAZY = {
    "PatchOperator": "patches",
    "GaussianKDE": "kde",
    "MLP": "mlp",
    "NoiseConditionalScore": "noise_conditional",
    "PatchScoreModel": "score_model",
    "Adam": "optim",
    "fit_patch_score": "train",
    "PatchPrior": "prior",
    "estimate_noise_sigma": "noise",
}

_SUBMODULES = {
    "patches", "kde", "distributions", "losses", "sampling", "nn", "optim", "train",
    "prior", "operators", "reconstruct", "data", "metrics", "io", "cli", "tv", "invariance",
    "plot", "mixture", "posterior", "io_medical", "mri", "noise", "pretrained",
    "patch_gmm", "multiscale", "phantoms", "mlp", "noise_conditional", "score_model",
    "intensity", "model_file", "distributed",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastscore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)

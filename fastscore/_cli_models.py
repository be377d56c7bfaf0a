"""The models of the ``fastscore`` command: a model file or a shipped pretrained prior
(``--model natural``), its working dtype, its image prior, and ``--sigma auto``."""

import json
import os

import numpy as np

from ._cli_support import UsageError, checking, reading

__all__ = [
    "DEFAULT_MODEL",
    "describe_model",
    "info_pretrained",
    "load_model",
    "fused_prior",
    "make_prior",
    "map_options",
    "model_dtype",
    "noise_level",
]

#: The prior of ``fastscore denoise`` without ``--model``.
DEFAULT_MODEL = "natural"


def _pretrained_name(spec):
    """`spec` as a shipped prior's name (a file of that name takes precedence), or None."""
    from . import pretrained

    return spec if spec in pretrained.available() and not os.path.exists(spec) else None


def load_model(spec, console):
    """The patch score of ``--model``: a pretrained name or a model file."""
    from . import pretrained

    name = _pretrained_name(spec)
    if name is not None:
        with reading(f"pretrained prior {name!r}", pretrained.path(name)), \
                console.timed("model loaded"):
            model = pretrained.load(name)
    else:
        if spec != "-" and not os.path.exists(spec):
            raise UsageError(f"model file not found: {spec} (nor a pretrained prior of that "
                             f"name: {', '.join(pretrained.available())})")
        if os.path.isdir(spec):
            raise UsageError(f"the model {spec} is a folder; give a model file (.npz) or a "
                             f"pretrained prior ({', '.join(pretrained.available())})")
        with reading("model", spec), console.timed("model loaded"):
            model = pretrained.load_file(spec)
    console.detail("model: " + describe_model(model))
    return model


def describe_model(model):
    """One line: patch size, size of the model, noise range (and a shipped prior's
    fusion levels)."""
    from . import pretrained

    net = getattr(model, "net", None)
    size = (f"{net.n_params} parameters ({net.dtype})" if net is not None
            else f"Gaussian mixture of {model.n_components} components")
    name = getattr(model, "pretrained_name", None)
    fusion = pretrained.FUSION_OPTIONS.get(name, {})
    grid = " (moving patch grid)" if fusion.get("tiling") == "shifted_overlap" else ""
    return ((f"pretrained {name!r}, " if name else "")
            + f"patch {'x'.join(map(str, model.patch_size))}, {size}, sigma in "
            f"[{model.sigma_min:g}, {model.sigma_max:g}]"
            + (f", denoising fused over {fusion['levels']} levels{grid}"
               if fusion.get("levels", 1) > 1 else ""))


def model_dtype(model):
    """Working precision of the model (float32 for the Gaussian-mixture priors)."""
    net = getattr(model, "net", None)
    return np.dtype(net.dtype if net is not None else np.float32)


def make_prior(model, args, intensity=None):
    """The patch prior of the command line: the model's stored options (and a pretrained
    prior's shipped settings) unless overridden."""
    from . import pretrained
    from .prior import PatchPrior

    options = dict(pretrained.PRIOR_OPTIONS.get(getattr(model, "pretrained_name", None), {}))
    with checking("prior options"):
        if getattr(args, "symmetrize", False):
            if not hasattr(model, "with_invariances"):
                raise UsageError("--symmetrize needs a network model (a Gaussian-mixture "
                                 "prior is not symmetrised)")
            model = model.with_invariances(symmetrize=True)
        return PatchPrior(model, model.patch_size, weight=args.weight,
                          tiling=getattr(args, "tiling", None) or "overlap", rng=args.seed,
                          intensity=intensity, **options)


def fused_prior(model, prior, levels=None, tiling=None):
    """`prior` fused over ``--levels`` pyramid levels
    (:class:`fastscore.multiscale.MultiScaleFusion`); default: a shipped prior's
    ``pretrained.FUSION_OPTIONS`` (its patch grid too, unless ``--tiling`` is given), one
    level (`prior` itself) for any other model."""
    from . import pretrained
    from .multiscale import MultiScaleFusion

    name = getattr(model, "pretrained_name", None)
    if name in pretrained.available():
        return pretrained.fused(name, prior, levels=levels, tiling=tiling)
    if levels in (None, 1):
        return prior
    return MultiScaleFusion(prior, levels, ndim=len(model.patch_size))


def noise_level(value, y, n_axes, console):
    """``--sigma``: a number, or ``auto`` (estimated from the noisy image, median over a
    batch); prints the level used."""
    from .noise import estimate_noise_sigma

    if value != "auto":
        return float(value)
    images = y if y.ndim == n_axes else y.reshape((-1,) + y.shape[-n_axes:])
    with checking("--sigma auto"):
        if y.ndim == n_axes:
            sigma = estimate_noise_sigma(images)
        else:
            sigma = float(np.median([estimate_noise_sigma(im) for im in images]))
    console.say(f"noise sigma: {sigma:.4g} (estimated from the image, --sigma auto)")
    return sigma


def map_options(model, method, sigma, steps=None):
    """map_estimate settings of ``--method map/hqs`` at noise level `sigma`: a pretrained
    prior's shipped HQS settings, else 6 HQS or 100 gradient iterations; `steps`
    overrides the count."""
    from . import pretrained

    name = getattr(model, "pretrained_name", None)
    if method == "hqs":
        options = pretrained.map_options(name, sigma) if name in pretrained.available() \
            else {"n_steps": 6, "method": "hqs"}
    else:
        options = {"n_steps": 100, "method": "gradient"}
    if steps is not None:
        options["n_steps"] = steps
    return options


def info_pretrained(as_json, console):
    """``info --pretrained``: the shipped priors, one line each (or JSON)."""
    from . import pretrained

    found = {}
    for name in pretrained.available():
        with reading(f"pretrained prior {name!r}", pretrained.path(name)):
            found[name] = pretrained.load(name)
    if as_json:
        console.result(json.dumps({name: {"file": pretrained.path(name), "kind": m.kind,
                                          "config": m.get_config()}
                                   for name, m in found.items()}, indent=1, sort_keys=True))
        return 0
    for name, model in found.items():
        console.result(f"{name:10s} {describe_model(model)} ({pretrained.path(name)})")
    return 0

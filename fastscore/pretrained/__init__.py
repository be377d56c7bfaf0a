"""Pretrained patch priors shipped with fastscore.

>>> import fastscore.pretrained as pretrained
>>> pretrained.available()
('natural', 'phantom')
>>> model = pretrained.load("natural")          # doctest: +SKIP

* ``"natural"``: trained on photographs and micrographs that ship with scikit-image
  (grey, [0, 1]); ``moon``, ``coins`` and ``clock`` were held out for the benchmark.
* ``"phantom"``: trained on random piecewise-constant phantoms
  (:func:`fastscore.phantoms.random_phantoms`; never on Shepp–Logan).

Each is a patch score with ``score(patches, sigma)``, ``patch_size``, the noise range
``sigma_min``/``sigma_max`` and its ``invariances``; :func:`prior` wraps one in the
settings chosen on the validation images: a :class:`fastscore.prior.PatchPrior` fused over
three pyramid levels (:class:`fastscore.multiscale.MultiScaleFusion`).
The training recipes, data, licences and measurements: ``docs/pretrained.md``,
``benchmarks/train_pretrained.py``, ``benchmarks/README.md`` (denoise).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..score_model import PatchScoreModel
    from ..patch_gmm import GaussianMixturePatchScore
    from ..multiscale import MultiScaleFusion
    from ..prior import PatchPrior

__all__ = ["FUSION_OPTIONS", "MAP_OPTIONS", "PRIOR_OPTIONS", "available", "fused", "load",
           "load_file", "map_options", "path", "prior"]

_NAMES = ("natural", "phantom")
_HERE = os.path.dirname(os.path.abspath(__file__))

#: PatchPrior settings of each shipped prior (chosen on the validation images).
PRIOR_OPTIONS = {"natural": {"stride": 2}, "phantom": {"stride": 3}}
#: :class:`fastscore.multiscale.MultiScaleFusion` settings of each shipped prior and the
#: patch grid of the fused PatchPrior (chosen on the validation images; ``levels=1`` is
#: the single-level PatchPrior on its fixed grid).
FUSION_OPTIONS: dict[str, dict[str, Any]] = {
    "natural": {"levels": 3, "blur": 1.0, "tiling": "shifted_overlap"},
    "phantom": {"levels": 3, "blur": 1.0, "tiling": "shifted_overlap"}}
#: HQS denoising settings of each prior (chosen on the validation images, the same with
#: and without the fusion): the number of iterations and the prior noise levels' geometric
#: schedule as multiples of the noise σ (first, last); :func:`map_options` turns them into
#: ``map_estimate`` arguments.
MAP_OPTIONS: dict[str, dict[str, Any]] = {
    "natural": {"n_steps": 6, "sigma_ratio": (2.0, 0.1)},
    "phantom": {"n_steps": 8, "sigma_ratio": (2.0, 1 / 30)}}


def map_options(name: str, noise_sigma: float) -> dict[str, Any]:
    """:func:`fastscore.reconstruct.map_estimate` keyword arguments to denoise an image of
    noise level `noise_sigma` with the shipped prior `name`: ``method="hqs"``,
    ``n_steps`` and ``sigma_schedule = (r0 σ, r1 σ)`` from :data:`MAP_OPTIONS`."""
    from .._validation import check_scalar

    sigma = check_scalar(noise_sigma, "noise_sigma", low=0, low_inclusive=False)
    opts = MAP_OPTIONS[_check_name(name)]
    first, last = opts["sigma_ratio"]
    return {"method": "hqs", "n_steps": opts["n_steps"],
            "sigma_schedule": (first * sigma, last * sigma)}


def available() -> tuple[str, ...]:
    """Names of the shipped priors, a tuple of str."""
    return _NAMES


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str naming a pretrained prior; got "
                        f"{type(name).__name__}.")
    if name not in _NAMES:
        raise ValueError(f"unknown pretrained prior {name!r}; available: "
                         f"{', '.join(_NAMES)}.")
    return name


def path(name: str) -> str:
    """The file of the shipped prior `name` (``fastscore/pretrained/<name>.npz``)."""
    return os.path.join(_HERE, f"{_check_name(name)}.npz")


def load_file(file: str | os.PathLike[str]) -> PatchScoreModel | GaussianMixturePatchScore:
    """A patch score from a model file of any kind fastscore writes for patch priors
    (:class:`fastscore.nn.PatchScoreModel` or
    :class:`fastscore.patch_gmm.GaussianMixturePatchScore`)."""
    from ..model_file import ModelFileError, read_model_file
    from ..patch_gmm import GaussianMixturePatchScore
    from ..score_model import PatchScoreModel

    _, meta = read_model_file(file)
    if meta["kind"] == PatchScoreModel.kind:
        return PatchScoreModel.load(file)
    if meta["kind"] == GaussianMixturePatchScore.kind:
        return GaussianMixturePatchScore.load(file)
    raise ModelFileError(file, f"holds a {meta['kind']!r}, not a patch score.")


def load(name: str) -> PatchScoreModel | GaussianMixturePatchScore:
    """Load the shipped prior `name` (one of :func:`available`).

    Returns
    -------
    patch score
        :class:`fastscore.nn.PatchScoreModel` or
        :class:`fastscore.patch_gmm.GaussianMixturePatchScore`: ``score(patches, sigma)``,
        ``patch_size``, ``sigma_min``, ``sigma_max``, ``invariances``, and
        ``pretrained_name`` (= `name`).

    Raises
    ------
    ValueError
        Unknown name (the message lists the available ones).
    FileNotFoundError
        The shipped file is missing (an incomplete installation); names the file.
    fastscore.io.ModelFileError
        The shipped file is truncated or corrupt; names the file.
    """
    file = path(name)
    if not os.path.exists(file):
        raise FileNotFoundError(
            f"the pretrained prior {name!r} is missing its file {file}: the installation is "
            "incomplete (reinstall fastscore, or rebuild it with "
            "benchmarks/train_pretrained.py).")
    model = load_file(file)
    model.pretrained_name = name      # type: ignore[union-attr]  # set on the loaded object
    return model


def fused(name: str, prior: Any, *, levels: int | None = None, blur: float | None = None,
          tiling: str | None = None) -> Any:
    """`prior` (an image prior of the shipped model `name`, e.g. a calibrated
    :class:`fastscore.prior.PatchPrior`) fused over pyramid levels with the settings of
    :data:`FUSION_OPTIONS` (`levels`, `blur`, `tiling` override them); ``levels=1``
    returns `prior`. A PatchPrior on the fixed grid (``tiling="overlap"``) takes the
    fused tiling ("shifted_overlap": the grid moves between calls, drawn from the `rng`
    of the reconstruction — pass one to ``map_estimate`` for a reproducible result)."""
    from ..multiscale import MultiScaleFusion

    options = dict(FUSION_OPTIONS[_check_name(name)])
    for key, value in (("levels", levels), ("blur", blur), ("tiling", tiling)):
        if value is not None:
            options[key] = value
    grid = options.pop("tiling")
    if options["levels"] == 1:
        return prior
    if getattr(prior, "tiling", None) == "overlap" and grid != "overlap":
        prior = prior.with_tiling(grid)
    return MultiScaleFusion(prior, **options)


def prior(name: str, *, levels: int | None = None, blur: float | None = None,
          tiling: str | None = None, **options: Any) -> PatchPrior | MultiScaleFusion:
    """The shipped prior `name` with its chosen settings: a
    :class:`fastscore.prior.PatchPrior` (:data:`PRIOR_OPTIONS`; `options` override them)
    fused over pyramid levels by :class:`fastscore.multiscale.MultiScaleFusion`
    (:data:`FUSION_OPTIONS`; `levels`, `blur`, `tiling` override them, ``levels=1``: the
    PatchPrior itself, on its fixed grid: the score of a density, for sampling).

    The fused prior moves its patch grid between calls (see :func:`fused`): give
    ``map_estimate`` an `rng` for a reproducible result."""
    from ..prior import PatchPrior

    model = load(name)
    patch_prior = PatchPrior(model, model.patch_size, **{**PRIOR_OPTIONS[name], **options})
    return fused(name, patch_prior, levels=levels, blur=blur, tiling=tiling)


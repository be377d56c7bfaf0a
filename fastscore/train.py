"""Training patch score models by noise-conditional denoising score matching.

For clean patches ``v``, noise levels ``σ`` and unit noise ``z ~ N(0, I)``, the σ²-weighted
denoising score-matching loss (NCSM, Song & Ermon 2019) of a model ``s(v; σ)`` is

.. math::

    \\mathcal L = \\mathbb E_{v, σ, z}\\; \\tfrac12 \\lVert σ\\, s(v + σ z; σ) + z \\rVert^2

(DSM at level σ, ``½‖s(ṽ) + (ṽ − v)/σ²‖²``, times σ²). With the noise-conditional
parametrisation ``s(v; σ) = s̃(v̂)/σ`` of :class:`fastscore.nn.NoiseConditionalScore` the
summand is ``½‖s̃ + z‖²`` — the network learns to predict ``−z``.

:func:`fit_patch_score` draws patches from images on the fly (random positions, optional
dihedral flips/rotations), draws σ log-uniformly in ``[σ_min, σ_max]`` (or uniformly from a
ladder), and runs Adam with a learning-rate schedule, global-norm clipping and an
exponential moving average of the weights (used by the returned model). It reports a
validation loss on held-out patches at fixed noise levels, writes atomic checkpoints and
resumes from them bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ._deprecation import adapt_callback, renamed_arguments, warn_deprecated
from ._progress import progress_range
from ._validation import (as_float_array, check_choice, check_float_dtype, check_int,
                          check_int_tuple, check_rng, check_scalar, check_scale)
from .data import extract_patches
from .intensity import IntensityReference
from .losses import draw_noise_levels, ncsm

__all__ = ["fit_patch_score", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient; the last good checkpoint (if any) is kept."""

    def __init__(self, step, what, checkpoint=None):
        self.step = step
        self.checkpoint = checkpoint
        where = (f"; the last good checkpoint is {checkpoint}" if checkpoint
                 else "; no checkpoint was written")
        super().__init__(f"training diverged at step {step}: {what}{where}. Lower "
                         "`step_size` or `max_grad_norm`, or raise `sigma_min`.")


@dataclasses.dataclass
class _Config:
    patch_size: tuple
    n_steps: int
    batch_size: int
    step_size: float
    sigma_min: float
    sigma_max: float
    ladder: list
    weight_decay: float
    max_grad_norm: float
    ema_decay: float
    warmup: int
    augment: bool
    validation_fraction: float
    validate_every: int
    invariance: dict          # dc / contrast / contrast_eps, for ncsm
    scale_augment: tuple      # (low, high) intensity factors, or ()


def _sample_sigmas(cfg, n, rng, dtype):
    """σ per sample: log-uniform in [σ_min, σ_max], or uniform over the ladder."""
    levels = (draw_noise_levels(n, rng, ladder=cfg.ladder) if cfg.ladder else
              draw_noise_levels(n, rng, sigma_range=(cfg.sigma_min, cfg.sigma_max)))
    return levels.astype(dtype)


def _validation_set(patches, cfg, rng, dtype):
    """Fixed patches, noise levels (4 geometric levels) and noise for validation."""
    levels = (np.asarray(cfg.ladder, dtype=float)[np.linspace(0, len(cfg.ladder) - 1, 4)
                                                  .round().astype(int)]
              if cfg.ladder else np.geomspace(cfg.sigma_min, cfg.sigma_max, 4))
    n = len(patches)
    sigma = np.repeat(levels, -(-n // 4))[:n].astype(dtype)
    noise = rng.standard_normal(patches.shape).astype(dtype)
    return {"patches": patches, "sigma": sigma, "noise": noise, "levels": levels}


def _validate(model, val, cfg):
    """Validation loss per noise level (with the weights currently in the network)."""
    out = {}
    for level in val["levels"]:
        sel = np.isclose(val["sigma"], level)
        if sel.any():
            out[float(level)] = ncsm(model, None, val["patches"][sel],
                                     draws=(val["sigma"][sel], val["noise"][sel]),
                                     grad=False, **cfg.invariance)[0]
    return out


def _scale_factors(cfg, n, rng, dtype):
    """Intensity factors per patch, log-uniform in ``cfg.scale_augment``."""
    lo, hi = cfg.scale_augment
    return np.exp(math.log(lo) + rng.random(n) * math.log(hi / lo)).astype(dtype)


def _split_images(images, fraction, rng):
    """(training images, validation images) by image, so validation patches are unseen."""
    n = len(images)
    n_val = int(round(fraction * n)) if fraction > 0 else 0
    if fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    order = rng.permutation(n)
    if n_val >= n:
        raise ValueError(f"`validation_fraction`={fraction} leaves no training image out of {n}.")
    return [images[i] for i in order[n_val:]], [images[i] for i in order[:n_val]]


def _as_image_list(images):
    arr = images
    if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
        arr = as_float_array(images, "images", ndim=(2, 3, 4), finite=True, allow_complex=True)
        return list(arr[np.newaxis] if arr.ndim == 2 else arr)
    if not images:
        raise ValueError("`images` must hold at least one image; got an empty sequence.")
    return [as_float_array(im, f"images[{k}]", ndim=(2, 3), finite=True, allow_complex=True)
            for k, im in enumerate(images)]


def _complex_patch_draw(images, patch, n, rng, augment=False):
    """Two-channel patches ``[Re v | Im v]`` of complex images, each multiplied by a random
    global phase ``e^{iφ}``, φ ~ U[0, 2π) (a complex prior must not prefer a phase).

    The real and imaginary parts are drawn at the same positions (and flips) from two
    copies of the same generator state; the phase comes from `rng` afterwards."""
    import copy

    rng = check_rng(rng)
    twin = copy.deepcopy(rng)
    real = extract_patches([im.real for im in images], patch, n, rng=twin, augment=augment)
    imag = extract_patches([im.imag for im in images], patch, n, rng=rng, augment=augment)
    v = (real + 1j * imag) * np.exp(2j * np.pi * rng.random(n))[:, None]
    return np.concatenate([v.real, v.imag], axis=1)


def _checkpoint_state(model, optimizer, ema, rng, step, history):
    arrays = {"params": model.net.params, "adam_m": optimizer.m, "adam_v": optimizer.v}
    if ema.average is not None:
        arrays["ema"] = ema.average
    meta = {"step": step, "adam_step": optimizer.step_count, "ema_updates": ema.n_updates,
            "rng_state": rng.bit_generator.state, "history": history,
            "model": model.get_config()}
    return arrays, meta


def _write_checkpoint(path, model, optimizer, ema, rng, step, history):
    from .model_file import write_model_file

    arrays, meta = _checkpoint_state(model, optimizer, ema, rng, step, history)
    write_model_file(path, "checkpoint", arrays, meta)


def _restore_checkpoint(path, model, optimizer, ema, rng):
    from .model_file import read_model_file

    arrays, meta = read_model_file(path, "checkpoint")
    if arrays["params"].shape != model.net.params.shape or \
            arrays["params"].dtype != model.net.params.dtype:
        raise ValueError(f"checkpoint {path} holds {arrays['params'].size} parameters of "
                         f"{arrays['params'].dtype}; this model has {model.net.params.size} "
                         f"of {model.net.params.dtype} (different architecture or dtype).")
    model.net.params[...] = arrays["params"]
    optimizer.load_state_dict({"m": arrays["adam_m"], "v": arrays["adam_v"],
                               "step_count": meta["adam_step"]})
    ema.load_state_dict({"decay": ema.decay, "n_updates": meta["ema_updates"],
                         "average": arrays.get("ema")})
    rng.bit_generator.state = meta["rng_state"]
    return meta["step"], meta["history"]


@renamed_arguments(lr="step_size")
def fit_patch_score(images: ArrayLike | Sequence[ArrayLike] | None = None, *,
                    patches: ArrayLike | None = None, patch_size: int | tuple[int, ...] = 3,
                    model: Any = None, sigma_range: tuple[float, float] | None = None,
                    sigmas: ArrayLike | None = None, n_steps: int = 2000,
                    batch_size: int = 512, step_size: float = 2e-3, warmup: int = 100,
                    weight_decay: float = 0.0, max_grad_norm: float = 1.0,
                    ema_decay: float = 0.999, augment: bool = True,
                    scale_augment: tuple[float, float] | None = None, dc: bool = False,
                    contrast: bool = False, contrast_eps: float = 1e-2,
                    symmetrize: bool = False, intensity: str = "none",
                    validation_fraction: float = 0.1, validate_every: int = 200,
                    checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 500,
                    resume: bool = False, rng: int | np.random.Generator | None = None,
                    dtype: DTypeLike | None = None, n_threads: int | None = None,
                    progress: bool = False,
                    callback: Callable[[int, np.ndarray, dict], Any] | None = None) -> Any:
    """Train a noise-conditional patch score model by σ²-weighted denoising score matching.

    Parameters
    ----------
    images : ndarray (n, H, W) / (n, D, H, W) or sequence of 2-D/3-D arrays
        Training images; patches are drawn from them on the fly. Complex images train a
        two-channel prior (``model.channels == 2``): each patch is ``[Re v | Im v]`` of a
        complex patch v multiplied by a random global phase ``e^{iφ}`` (augmentation: the
        prior must not prefer a phase); dc, contrast, symmetrize, intensity and
        scale_augment are then unavailable.
    patches : ndarray of shape (N, patch_dim), optional
        Training patches instead of images (exactly one of `images`, `patches`).
    patch_size : int or tuple of int
    model : fastscore.nn.NoiseConditionalScore, optional
        Network to train (its weights are updated in place); default the tutorial's
        architecture for the patch size, standardised by the training patches.
    sigma_range : (σ_min, σ_max), optional
        Noise levels drawn log-uniformly in this range; default (0.02, 1.0) when `sigmas`
        is not given.
    sigmas : array_like of shape (L,), L >= 3, optional
        A noise ladder instead, levels drawn uniformly from it. Exactly one of
        `sigma_range`, `sigmas`. (Deprecated: two `sigmas` are read as `sigma_range`,
        with a warning.)
    n_steps, batch_size : int
    step_size : float
        Peak Adam step size (learning rate; formerly ``lr``): linear warm-up over
        `warmup` steps, then cosine decay to 0.
    weight_decay, max_grad_norm, ema_decay : float
        AdamW decay; global gradient-norm clipping (0 disables); exponential moving average
        of the weights with warm-up, decay ``min(ema_decay, (1 + t)/(10 + t))`` at update t.
    augment : bool
        Random dihedral flips/rotations of the training patches.
    scale_augment : (low, high), optional
        Multiply each training patch by a factor log-uniform in [low, high] (learns a range
        of intensity scales; the alternative to ``intensity``).
    dc, contrast : bool
        Train the exactly DC-invariant (contrast-normalised) composite score
        ``J s̃(u(v))`` of :mod:`fastscore.invariance`; stored, and applied by the model.
    contrast_eps : float > 0
        Contrast floor of ``contrast`` (intensity units).
    symmetrize : bool
        Stored test-time option: average the score over the patch's rotations/flips
        (training sees them through `augment`).
    intensity : {"none", "scale", "affine"}
        Stored image-level option: priors built on the model map each image to the
        training intensities (:class:`fastscore.invariance.IntensityNormalization`).
        Default "none": normalising pays when ``(k, b)`` is calibrated from a denoising
        measurement, and costs several dB when estimated from an inverse problem's
        artefact-laden first image (``benchmarks/README.md``, shift). The training
        images' statistics are stored in any case (``intensity_reference``); training on
        `patches` has none.
    validation_fraction : float in [0, 0.5]
        Images (or patches) held out; the validation loss at 4 fixed noise levels is
        recorded every `validate_every` steps.
    checkpoint : path, optional
        Checkpoint file, written atomically every `checkpoint_every` steps, at the end, and
        on Ctrl-C; ``resume=True`` continues from it bit for bit (same arguments).
    rng : None, int or Generator
        All randomness: data split, validation noise, patches, σ and noise draws.
    dtype : float32 or float64, optional
        Working dtype of the network and the patches. Default: the data's (float32 stays
        float32, float64 and integers train in float64, complex64 in float32), or the
        given `model`'s. float64 data is never narrowed silently: with a float32 `model`
        it is a ``TypeError`` unless ``dtype=np.float32`` asks for it (float32 is about
        twice as fast).
    callback : callable(k, x, info) -> bool, optional
        Called after step ``k`` (from 1) with ``x`` the network's current flat weight
        vector (read it, do not modify it) and ``info`` holding ``loss``, ``step_size``
        (the scheduled Adam step) and ``grad_norm`` (+ ``val_loss``, a dict level → loss,
        when validated); returning True stops training.

    Returns
    -------
    fastscore.nn.PatchScoreModel
        With the EMA weights, the patch size, σ range and a training summary
        (``model.history``: ``step``, ``loss``, ``val_step``, ``val_loss``, ``time``).

    Raises
    ------
    TrainingDiverged
        Non-finite loss or gradient (the last good checkpoint is kept).
    """
    from .noise_conditional import NoiseConditionalScore
    from .optim import EMA, Adam, CosineSchedule, WarmupSchedule, clip_grad_norm, grad_norm
    from .score_model import PatchScoreModel

    if (images is None) == (patches is None):
        raise ValueError("give exactly one of `images` and `patches`.")
    if images is not None:
        collection = _as_image_list(images)
        data_dtype = np.result_type(*(im.real.dtype for im in collection))
    else:
        patch_array = as_float_array(cast("ArrayLike", patches), "patches", ndim=2,
                                     finite=True)           # not None: exactly one is given
        data_dtype = patch_array.dtype
    dtype = _working_dtype(dtype, data_dtype, model)
    n_steps = check_int(n_steps, "n_steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    step_size = check_scalar(step_size, "step_size", low=0, low_inclusive=False)
    warmup = check_int(warmup, "warmup", low=0)
    validation_fraction = check_scalar(validation_fraction, "validation_fraction", low=0,
                                       high=0.5)
    validate_every = check_int(validate_every, "validate_every", low=1)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", low=1)
    max_grad_norm = check_scalar(max_grad_norm, "max_grad_norm", low=0)
    if sigmas is not None and sigma_range is None and np.size(sigmas) == 2:
        warn_deprecated("fit_patch_score(): two `sigmas` as a (min, max) range is deprecated; "
                        "use sigma_range=(sigma_min, sigma_max) (a ladder has > 2 levels).")
        sigmas, sigma_range = None, sigmas
    if sigmas is not None and sigma_range is not None:
        raise TypeError("fit_patch_score() takes one of `sigma_range` and `sigmas`, not both.")
    name = "sigmas" if sigmas is not None else "sigma_range"
    given = sigmas if sigmas is not None else (0.02, 1.0) if sigma_range is None else sigma_range
    sig = np.asarray(given, dtype=float)
    if sig.ndim != 1 or sig.size < 2 or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(f"`{name}` must be (sigma_min, sigma_max) or a ladder of positive "
                         f"levels; got {given!r}.")
    if name == "sigma_range" and sig.size != 2:
        raise ValueError(f"`sigma_range` must be (sigma_min, sigma_max); got {given!r} (a "
                         "ladder is `sigmas`).")
    if name == "sigmas" and sig.size < 3:
        raise ValueError(f"`sigmas` must be a ladder of at least 3 levels; got {given!r} "
                         "(a range is `sigma_range`).")
    ladder = sorted(sig.tolist(), reverse=True) if sig.size > 2 else []
    sigma_min, sigma_max = float(sig.min()), float(sig.max())
    if sig.size == 2 and not sig[0] < sig[1]:
        raise ValueError(f"`{name}` must be (sigma_min, sigma_max) with sigma_min < "
                         f"sigma_max; got {given!r}.")
    if sigma_min >= sigma_max:
        raise ValueError(f"`{name}` needs sigma_min < sigma_max; got {given!r}.")
    check_scale(sig, name, dtype)
    callback = adapt_callback(callback, "fit_patch_score", old="k, info")
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs a `checkpoint` path.")

    # independent streams, so that e.g. validation never shifts the training draws
    root = check_rng(rng)
    split_rng, val_rng, train_rng, reference_rng = root.spawn(4)
    intensity = check_choice(intensity, "intensity", ("none", "scale", "affine"))
    contrast_eps = check_scalar(contrast_eps, "contrast_eps", low=0, low_inclusive=False)
    if scale_augment is not None:
        factors = tuple(float(f) for f in np.ravel(scale_augment))
        if len(factors) != 2 or not 0 < factors[0] <= factors[1] < np.inf:
            raise ValueError("`scale_augment` must be (low, high) with 0 < low <= high; got "
                             f"{factors!r}.")
        scale_augment = (factors[0], factors[1])
    reference = None

    channels = 1
    if images is not None:
        ndim = collection[0].ndim
        patch = check_int_tuple(patch_size, "patch_size", ndim, low=1)
        train_images, val_images = _split_images(collection, validation_fraction, split_rng)
        if any(im.dtype.kind == "c" for im in collection):
            channels = 2
            if dc or contrast or symmetrize or intensity != "none" or scale_augment:
                raise ValueError("complex `images` train a two-channel prior: dc, contrast, "
                                 "symmetrize, intensity and scale_augment are not available.")
            extract: Callable[..., np.ndarray] = _complex_patch_draw
        else:
            extract = extract_patches
        draw = lambda n, r: extract(train_images, patch, n, rng=r, augment=augment) \
            .astype(dtype, copy=False)
        val_patches = (extract(val_images, patch, 4096, rng=val_rng).astype(dtype)
                       if val_images else None)
        stats_patches = extract(train_images, patch, 20000, rng=split_rng).astype(dtype)
        reference = None if channels == 2 else IntensityReference.from_images(
            train_images, rng=reference_rng)
        shapes = sorted({tuple(im.shape) for im in collection})
        data_summary = (f"{len(train_images)} training + {len(val_images)} validation images "
                        f"of shape {' / '.join('x'.join(map(str, sh)) for sh in shapes[:3])}"
                        + (" …" if len(shapes) > 3 else ""))
    else:
        arr = patch_array.astype(dtype, copy=False)
        patch = check_int_tuple(patch_size, "patch_size", 2 if np.ndim(patch_size) == 0
                                else len(cast("Sequence[int]", patch_size)), low=1)
        if arr.shape[1] != math.prod(patch):
            raise ValueError(f"`patches` must have {math.prod(patch)} columns for patch size "
                             f"{patch}; got shape {arr.shape}.")
        order = split_rng.permutation(len(arr))
        n_val = int(round(validation_fraction * len(arr)))
        val_patches = arr[order[:n_val]] if n_val else None
        train_patches = arr[order[n_val:]]
        draw = lambda n, r: train_patches[r.integers(0, len(train_patches), n)]
        stats_patches = train_patches[:20000]
        data_summary = (f"{len(train_patches)} training + {n_val} validation patches of "
                        f"{math.prod(patch)} pixels")
        if intensity != "none":
            raise ValueError(f"`intensity={intensity!r}` needs training `images` (their "
                             "intensity statistics); patches have none.")

    if model is None:
        model = NoiseConditionalScore.for_patches((channels,) * (channels > 1) + patch,
                                                  stats_patches, dtype=dtype,
                                                  rng=split_rng, n_threads=n_threads)
    cfg = _Config(patch, n_steps, batch_size, step_size, sigma_min, sigma_max, ladder,
                  float(weight_decay), max_grad_norm, float(ema_decay), warmup, bool(augment),
                  validation_fraction, validate_every,
                  {"dc": bool(dc), "contrast": bool(contrast), "contrast_eps": contrast_eps},
                  scale_augment or ())
    schedule = (WarmupSchedule(CosineSchedule(step_size, n_steps), min(warmup, n_steps))
                if warmup else CosineSchedule(step_size, n_steps))
    optimizer = Adam(model.net.params, step_size=schedule, weight_decay=weight_decay,
                     n_threads=n_threads)
    ema = EMA(ema_decay, n_threads=n_threads)
    val = (_validation_set(val_patches, cfg, val_rng, dtype) if val_patches is not None
           else None)
    history: dict[str, list[Any]] = {"step": [], "loss": [], "val_step": [], "val_loss": [],
                                     "time": []}
    start = 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        start, history = _restore_checkpoint(checkpoint, model, optimizer, ema, train_rng)
    elif val is not None:   # the untrained model's validation loss, for reference
        history["val_step"].append(0)
        history["val_loss"].append(float(np.mean(list(_validate(model, val, cfg).values()))))

    t0 = time.perf_counter() - (history["time"][-1] if history["time"] else 0.0)
    step = start
    pending = None      # RNG state before the draws of a step not yet applied
    try:
        for step in progress_range(n_steps, "training", progress):
            if step < start:
                continue
            pending = train_rng.bit_generator.state
            x = draw(batch_size, train_rng)
            sigma = _sample_sigmas(cfg, batch_size, train_rng, dtype)
            z = train_rng.standard_normal(x.shape).astype(dtype)
            if cfg.scale_augment:
                x = x * _scale_factors(cfg, batch_size, train_rng, dtype)[:, None]
            loss = ncsm(model, None, x, draws=(sigma, z), **cfg.invariance)[0]
            norm = (clip_grad_norm(model.net.grad, max_grad_norm) if max_grad_norm > 0
                    else grad_norm(model.net.grad))
            if not (math.isfinite(loss) and math.isfinite(norm)):
                raise TrainingDiverged(step, f"loss {loss}, gradient norm {norm}",
                                       checkpoint if checkpoint and os.path.exists(checkpoint)
                                       else None)
            with _deferred_interrupt():     # a step is applied entirely or not at all
                current_step = optimizer.step(model.net.grad)
                # EMA warm-up: early averages must not remember the random initial weights
                ema.decay = min(ema_decay, (1.0 + ema.n_updates) / (10.0 + ema.n_updates))
                ema.update(model.net.params)
                history["step"].append(step + 1)
                history["loss"].append(loss)
                history["time"].append(time.perf_counter() - t0)
                pending = None
            if not np.all(np.isfinite(model.net.params)):     # e.g. a far too large `step_size`
                raise TrainingDiverged(step + 1, "non-finite weights after the update "
                                       f"(step size {float(current_step):g})",
                                       checkpoint if checkpoint and os.path.exists(checkpoint)
                                       else None)
            info = {"loss": loss, "step_size": float(current_step), "grad_norm": float(norm)}
            if val is not None and ((step + 1) % validate_every == 0 or step + 1 == n_steps):
                losses = _with_ema(model, ema, lambda: _validate(model, val, cfg))
                history["val_step"].append(step + 1)
                history["val_loss"].append(float(np.mean(list(losses.values()))))
                info["val_loss"] = losses
            if checkpoint and ((step + 1) % checkpoint_every == 0):
                with _deferred_interrupt():
                    _write_checkpoint(checkpoint, model, optimizer, ema, train_rng, step + 1,
                                      history)
            if callback is not None and callback(step + 1, model.net.params, info):
                step += 1
                break
        else:
            step = n_steps
    except KeyboardInterrupt:
        if pending is not None:     # interrupted before the update: the step is not done
            train_rng.bit_generator.state = pending
        if checkpoint:
            done = len(history["step"])
            _write_checkpoint(checkpoint, model, optimizer, ema, train_rng, done, history)
        raise
    if checkpoint:
        _write_checkpoint(checkpoint, model, optimizer, ema, train_rng, len(history["step"]),
                          history)
    if ema.average is not None:
        ema.copy_to(model.net.params)
    summary = {"data": data_summary, "n_steps": len(history["step"]),
               "batch_size": batch_size, "step_size": step_size,
               "sigma_min": sigma_min, "sigma_max": sigma_max, "ladder": ladder,
               "augment": bool(augment),
               "scale_augment": list(scale_augment) if scale_augment else None,
               "final_loss": history["loss"][-1] if history["loss"]
               else None, "final_val_loss": history["val_loss"][-1] if history["val_loss"]
               else None, "seconds": history["time"][-1] if history["time"] else 0.0}
    return PatchScoreModel(model, patch, sigma_min=sigma_min, sigma_max=sigma_max,
                           history=history, training=summary, dc=dc, contrast=contrast,
                           contrast_eps=contrast_eps, symmetrize=symmetrize,
                           intensity=intensity, intensity_reference=reference,
                           channels=channels)


def _working_dtype(dtype, data_dtype, model):
    """The training dtype: as asked, else the model's or the data's; never a silent
    narrowing of float64 data."""
    if dtype is not None:
        dtype = check_float_dtype(dtype)
        if model is not None and model.net.params.dtype != dtype:
            raise TypeError(f"`model` has dtype {model.net.params.dtype} but `dtype` is "
                            f"{dtype}.")
        return dtype
    if model is None:
        return np.dtype(data_dtype)
    dtype = np.dtype(model.net.params.dtype)
    if dtype.itemsize < np.dtype(data_dtype).itemsize:
        raise TypeError(f"`model` is {dtype} but the training data is {data_dtype}: pass "
                        f"dtype=np.{dtype} to train on the data cast to {dtype}, or a "
                        f"{data_dtype} model.")
    return dtype


class _deferred_interrupt:
    """Hold back Ctrl-C (SIGINT) for the duration of the block and deliver it at its end.

    Keeps the training state consistent: an interrupt lands before or after a parameter
    update, never between the optimiser, the EMA and the history. Only the main thread
    receives signals, and only Python's default handler is replaced (a custom handler or
    an ignored SIGINT is left alone).
    """

    def __enter__(self):
        import signal
        import threading

        self._old = None
        self._received = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._old = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self._received = (signum, frame)

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            if self._received is not None and exc[0] is None:
                self._old(*self._received)      # raises KeyboardInterrupt
        return False


def _with_ema(model, ema, fn):
    """Run fn() with the EMA weights in the network, then restore the raw weights."""
    if ema.average is None:
        return fn()
    raw = model.net.params.copy()
    ema.copy_to(model.net.params)
    try:
        return fn()
    finally:
        model.net.params[...] = raw

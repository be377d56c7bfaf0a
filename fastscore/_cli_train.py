"""``fastscore train``: the training images (files, folders, stacks or phantoms), their
checks against the patch size, and the training run with its resumable checkpoint."""

import os
import sys

import numpy as np

from ._cli_support import (
    UsageError,
    as_real,
    check_outputs,
    check_size,
    checking,
    read_image,
    show_settings,
    use_threads,
    writing,
)

__all__ = ["train_command"]


def _training_files(args):
    files = []
    for path in args.images:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if not f.startswith("."))
        else:
            files.append(path)
    return files


def _training_images(args, files, console):
    from . import data

    if args.phantom:
        if args.images:
            raise UsageError("give image files or --phantom, not both")
        check_size((args.size, args.size), "--n-images phantoms", count=args.n_images,
                   itemsize=4, copies=2)
        make = {"rectangles": data.rectangles, "disks": data.disks}[args.phantom]
        with checking("phantom options"):
            return make(args.n_images, size=args.size, rng=args.seed, dtype=np.float32)
    if not args.images:
        raise UsageError("give training images (files or folders) or --phantom")
    images = []
    for f in files:
        arr = as_real(read_image(f, "image", console), "image", f)
        images += list(arr) if arr.ndim == 3 and args.stack else [arr]
    if not images:
        raise UsageError("no images found in " + ", ".join(args.images))
    return [im.astype(np.float32) for im in images]


def _check_training_patch(patch, images):
    for im in images:
        shape = tuple(im.shape)
        dims = (patch,) * len(shape) if isinstance(patch, int) else patch
        if len(dims) != len(shape) or any(p > n for p, n in zip(dims, shape)):
            raise UsageError(f"--patch-size {patch} does not fit a training image of shape "
                             f"{shape}")


def train_command(args, console):
    """``fastscore train``: fit a patch score model on images or phantoms and save it."""
    from .train import fit_patch_score

    use_threads(args)
    show_settings(args, console)
    if args.sigma_min >= args.sigma_max:
        raise UsageError(f"--sigma-min ({args.sigma_min:g}) must be smaller than --sigma-max "
                         f"({args.sigma_max:g})")
    if args.scale_augment and not 0 < args.scale_augment[0] <= args.scale_augment[1]:
        raise UsageError(f"--scale-augment LOW HIGH needs 0 < LOW <= HIGH; got "
                         f"{args.scale_augment}")
    checkpoint = args.checkpoint or (args.out + ".checkpoint.npz")
    files = _training_files(args)
    check_outputs([args.out], files + [checkpoint], overwrite=args.overwrite, suffixes=None)
    if args.resume and not os.path.isfile(checkpoint):
        raise UsageError(f"--resume: no checkpoint {checkpoint} to continue from")
    if args.checkpoint:
        check_outputs([checkpoint], files, overwrite=True, suffixes=None)
    images = _training_images(args, files, console)
    patch = args.patch_size[0] if len(args.patch_size) == 1 else tuple(args.patch_size)
    _check_training_patch(patch, images)
    try:
        with console.timed("training"):
            model = fit_patch_score(images, patch_size=patch, n_steps=args.steps,
                                    batch_size=args.batch_size, step_size=args.step_size,
                                    sigma_range=(args.sigma_min, args.sigma_max),
                                    rng=args.seed,
                                    augment=not args.no_augment,
                                    scale_augment=args.scale_augment, dc=args.dc,
                                    contrast=args.contrast, intensity=args.intensity,
                                    checkpoint=checkpoint,
                                    checkpoint_every=args.checkpoint_every,
                                    resume=args.resume, progress=console.progress)
    except KeyboardInterrupt:
        print(f"fastscore train: interrupted; resume with the same command plus --resume "
              f"(checkpoint {checkpoint})", file=sys.stderr)
        return 130
    with writing(args.out):
        model.save(args.out)
    h = model.history
    console.say(f"trained {len(h['loss'])} steps in {h['time'][-1]:.1f} s; final loss "
                f"{h['loss'][-1]:.4f}" + (f", validation {h['val_loss'][-1]:.4f}"
                                          if h["val_loss"] else "")
                + f"; model written to {args.out}")
    return 0

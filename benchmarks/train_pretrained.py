"""Train the shipped pretrained priors, deterministically from their seeds.

    python benchmarks/train_pretrained.py natural phantom      # the shipped files
    python benchmarks/train_pretrained.py natural --out /tmp/n.npz --scale 0.01

Each prior is one recipe (``RECIPES``): the training images, the model family and its
settings, all chosen on the validation images by ``benchmarks/study_pretrained.py``.
The output of a run is bit-identical to the shipped file on the same machine (same thread
count; float rounding of BLAS may differ between machines). ``--scale`` shrinks the
training budget (steps / EM iterations and patches) for quick checks.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastscore.nn import DEFAULT_HIDDEN, NoiseConditionalScore
from fastscore.train import fit_patch_score

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(os.path.dirname(HERE), "fastscore", "pretrained")

#: Network widths of the MLP families (about the tutorial's parameter count each).
HIDDEN = {3: DEFAULT_HIDDEN, 5: (128, 256, 256, 256, 128), 8: (256, 256, 256, 256)}


def natural_images(more=False, pyramid=False):
    """The natural prior's training images (`more`: with ``TRAIN_MORE``; `pyramid`: with
    each image's 2× and 4× mean-pooled copies that still hold 16 × 16 pixels, after all
    the originals)."""
    from _pretrained_data import TRAIN, TRAIN_MORE, load

    from fastscore.multiscale import mean_pool

    images = load(TRAIN + TRAIN_MORE if more else TRAIN)
    if not pyramid:
        return images
    pooled = []
    for image in images:
        for _ in range(2):
            image = mean_pool(image)
            if min(image.shape) >= 16:
                pooled.append(np.ascontiguousarray(image, dtype=np.float32))
    return images + pooled


def phantom_images(seed=0, n=48, size=128):
    """The phantom prior's training set (the package's piecewise-constant generators)."""
    from fastscore.phantoms import random_phantoms
    return list(random_phantoms(n, size, rng=seed, dtype=np.float32))


def train_mlp(images, *, patch, steps, batch=512, sigmas=(0.01, 0.5), dc=False, seed=0,
              step_size=2e-3, hidden=None):
    """Noise-conditional MLP on `patch`² patches, NCSM (fastscore.train.fit_patch_score)."""
    from fastscore.data import extract_patches

    stats = extract_patches(images, patch, 20000, rng=seed)
    net = NoiseConditionalScore.for_patches(patch, stats, hidden=hidden or HIDDEN[patch],
                                            rng=seed)
    return fit_patch_score(images, patch_size=patch, model=net, n_steps=steps,
                           batch_size=batch, sigma_range=sigmas, dc=dc, step_size=step_size,
                           rng=seed, dtype=np.float32,
                           validation_fraction=0.0, warmup=min(200, steps // 10))


def train_gmm(images, *, patch=8, n_components=32, n_patches=200000, n_iter=30, seed=0,
              sigma_range=(0.005, 1.0), sharpen=0.0, contrast=1.0):
    """Full-covariance Gaussian mixture of DC-removed patches, fitted by EM; `sharpen` > 0
    then reduces every covariance by that variance (``sharpened``); `contrast` > 1 scales
    each patch by a factor drawn log-uniformly from [1/contrast, contrast] (seed + 1)."""
    from fastscore.data import extract_patches
    from fastscore.patch_gmm import GaussianMixturePatchScore

    patches = extract_patches(images, patch, n_patches, rng=seed, augment=True)
    patches = patches.astype(np.float64)
    if contrast > 1:
        log_c = np.log(contrast)
        patches *= np.exp(np.random.default_rng(seed + 1).uniform(-log_c, log_c,
                                                                   len(patches)))[:, None]
    model = GaussianMixturePatchScore.fit(patches, patch, n_components,
                                          n_steps=n_iter, rng=seed, sigma_min=sigma_range[0],
                                          sigma_max=sigma_range[1])
    return model.sharpened(sharpen) if sharpen else model


#: The shipped recipes (settings picked on the validation images, benchmarks/README.md).
RECIPES = {
    "natural": {"data": "natural", "family": "gmm", "seed": 0,
                "options": {"patch": 8, "n_components": 64, "n_patches": 600000,
                            "n_iter": 15, "sharpen": 1e-3}},
    "phantom": {"data": "phantom", "family": "gmm", "seed": 0,
                "options": {"patch": 8, "n_components": 64, "n_patches": 600000,
                            "n_iter": 15}},
}


def build(name, scale=1.0):
    """Train recipe `name` (budget scaled by `scale`); returns the model."""
    recipe = RECIPES[name]
    seed = recipe["seed"]
    images = natural_images() if recipe["data"] == "natural" else \
        phantom_images(seed, n=max(2, round(48 * min(scale, 1.0))))
    opts = dict(recipe["options"])
    if recipe["family"] == "mlp":
        opts["steps"] = max(1, round(opts["steps"] * scale))
        return train_mlp(images, seed=seed, **opts)
    opts["n_iter"] = max(1, round(opts["n_iter"] * scale))
    opts["n_patches"] = max(4 * opts["n_components"], round(opts["n_patches"] * scale))
    return train_gmm(images, seed=seed, **opts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="+", choices=sorted(RECIPES))
    p.add_argument("--out", help="output file (one name only); default the package's")
    p.add_argument("--scale", type=float, default=1.0, help="training budget factor")
    args = p.parse_args(argv)
    if args.out and len(args.names) != 1:
        p.error("--out needs exactly one name")
    for name in args.names:
        t0 = time.perf_counter()
        model = build(name, args.scale)
        path = args.out or os.path.join(PACKAGE, f"{name}.npz")
        model.save(path)
        print(f"{name}: {model!r}\n  -> {path} ({os.path.getsize(path) / 1e6:.2f} MB, "
              f"{time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

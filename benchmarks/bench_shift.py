"""Distribution shift: do patch priors generalise, and which invariances help?

A 3×3 model is trained (or loaded from benchmarks/_cache) on the toy rectangles; MAP
denoising (HQS, σ = 0.1) is evaluated on held-out rectangles (in distribution), disks,
rectangles scaled by 0.5 and 2, rectangles plus an offset of 0.5, and a Shepp–Logan
phantom, for each invariance setting of the prior:

- none: the plain patch prior;
- dc: exact DC invariance (patch mean removed, score projected);
- scale: image intensity scale normalised with a robust estimate from the noisy image;
- sym: symmetrised over the 8 rotations/flips (exactly equivariant);
- all: dc + scale + sym;

against TV with its best weight, and a reference model trained on each shifted set's own
distribution (the target: within 1 dB of it, and never below TV). MAP is also run from
random initial images (several seeds) to show the spread of the results.

    python benchmarks/bench_shift.py            # the study
    python benchmarks/bench_shift.py --quick    # small, for CI
"""

import os
import time

import numpy as np

from _timing import Table, header, parser

import fastscore
from fastscore import data, metrics
from fastscore.invariance import InvariantPatchScore, ScaleInvariantPrior, robust_scale
from fastscore.nn import PatchScoreModel
from fastscore.operators import Identity
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate
from fastscore.train import fit_patch_score
from fastscore.tv import tune_tv_weight

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache")
SIGMA = 0.1


def model_for(name, images, steps, seed=0):
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"shift_{name}_{steps}.npz")
    if os.path.exists(path):
        return PatchScoreModel.load(path)
    model = fit_patch_score(images, patch_size=3, n_steps=steps, sigmas=(0.02, 0.5), rng=seed)
    model.save(path)
    return model


def test_sets(n, quick):
    rect = data.rectangles(n, rng=100, dtype=np.float32)
    size = 32 if quick else 64
    shepp = data.shepp_logan((size, size)).astype(np.float32)[None]
    return {
        "rectangles (in distribution)": rect,
        "disks": data.disks(n, rng=101, dtype=np.float32),
        "rectangles x0.5": 0.5 * rect,
        "rectangles x2": 2.0 * rect,
        "rectangles +0.5": rect + 0.5,
        f"Shepp-Logan {size}²": shepp,
    }


def training_sets(n, quick):
    """Each shifted set's own distribution, for the reference models."""
    rect = data.rectangles(n, rng=0, dtype=np.float32)
    size = 32 if quick else 64
    family = [data.shepp_logan((m, m)).astype(np.float32)
              for m in (size // 2, size + size // 4, 2 * size)]
    return {
        "disks": data.disks(n, rng=1, dtype=np.float32),
        "rectangles x0.5": 0.5 * rect,
        "rectangles x2": 2.0 * rect,
        "rectangles +0.5": rect + 0.5,
        f"Shepp-Logan {size}²": family,
    }


def priors(model, reference_scale):
    base = model
    make = lambda score: PatchPrior(score, 3, weight=1 / 9)
    return {
        "none": make(base),
        "dc": make(InvariantPatchScore(base, (3, 3), dc=True)),
        "sym": make(InvariantPatchScore(base, (3, 3), symmetrize=True)),
        "scale": ("scale", make(base)),
        "all": ("scale", make(InvariantPatchScore(base, (3, 3), dc=True, symmetrize=True))),
    }, reference_scale


def denoise(prior, noisy, reference_scale, x0=None):
    if isinstance(prior, tuple):       # scale invariance: scale estimated from the measurement
        out = []
        for k, y in enumerate(noisy):
            p = ScaleInvariantPrior(prior[1], reference_scale,
                                    scale=robust_scale(y) / reference_scale)
            out.append(map_estimate(y, Identity(y.shape), SIGMA, p, method="hqs", n_steps=6,
                                    x0=None if x0 is None else x0[k]).x)
        return np.stack(out)
    A = Identity(noisy.shape[1:])
    return map_estimate(noisy, A, SIGMA, prior, method="hqs", n_steps=6, x0=x0).x


def psnr(clean, est):
    return float(np.mean([metrics.psnr(c, e) for c, e in zip(clean, est)]))


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    steps = 200 if args.quick else 6000
    n_train, n_test = (200, 2) if args.quick else (4000, 8)
    fastscore.set_num_threads(max(args.threads))
    print(header("distribution shift of patch priors (MAP by HQS, sigma 0.1)",
                 training_steps=steps, test_images=n_test))
    t0 = time.perf_counter()
    rect_train = data.rectangles(n_train, rng=0, dtype=np.float32)
    model = model_for("rectangles", rect_train, steps)
    reference_scale = float(np.median([robust_scale(im) for im in rect_train[:200]]))
    prior_set, _ = priors(model, reference_scale)
    own = {name: model_for(name.split()[0] + name.split()[-1], imgs, steps)
           for name, imgs in training_sets(n_train, args.quick).items()}
    print(f"# models ready in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(7)
    table = Table(["test set", "noisy", "TV best", *prior_set, "own-distribution model",
                   "gap to own (all)"])
    for name, clean in test_sets(n_test, args.quick).items():
        noisy = clean + SIGMA * rng.standard_normal(clean.shape).astype(np.float32)
        row = [name, f"{psnr(clean, noisy):.2f}"]
        tv = np.stack([tune_tv_weight(y, c).estimate for y, c in zip(noisy, clean)])
        row.append(f"{psnr(clean, tv):.2f}")
        values = {}
        for label, prior in prior_set.items():
            values[label] = psnr(clean, denoise(prior, noisy, reference_scale))
            row.append(f"{values[label]:.2f}")
        if name in own:
            ref = psnr(clean, denoise(PatchPrior(own[name], 3, weight=1 / 9), noisy,
                                      reference_scale))
            row += [f"{ref:.2f}", f"{values['all'] - ref:+.2f}"]
        else:
            row += ["(same)", "-"]
        table.add(*row)
    print(table.render())

    # spread of MAP over random initial images (in distribution, plain prior)
    clean = test_sets(n_test, args.quick)["rectangles (in distribution)"]
    noisy = clean + SIGMA * rng.standard_normal(clean.shape).astype(np.float32)
    results = []
    for seed in range(3 if args.quick else 5):
        x0 = np.random.default_rng(seed).uniform(0.5, 2.5, clean.shape).astype(np.float32)
        results.append(psnr(clean, denoise(prior_set["none"], noisy, reference_scale, x0)))
    print(f"# MAP from random starts: PSNR {np.mean(results):.2f} ± {np.std(results):.2f} dB "
          f"over {len(results)} seeds (min {min(results):.2f}, max {max(results):.2f})")


if __name__ == "__main__":
    main()

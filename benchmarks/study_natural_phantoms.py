"""Why is the "natural" prior below TV on the benchmark's phantoms? Validation only.

    python benchmarks/study_natural_phantoms.py [VARIANT ...]

The benchmark's phantoms are 256² (Shepp–Logan, one disk image, one rectangle image);
``study_eval.py`` validates on 128² random ellipses and scored TV on a fixed weight grid.
This study uses 256² validation images of the benchmark's kinds with new seeds — two
random-ellipse phantoms (rng 99), two disk images (rng 101), two rectangle images
(rng 102), never the test seeds 11/12 and never Shepp–Logan — beside the validation
photographs at 256², and TV with its weight tuned per image exactly as in
``bench_denoise.py`` (``fastscore.tv.tune_tv_weight``). Prints mean PSNR at σ = 0.05,
0.1, 0.2, the seconds per image (2 threads; not for TV, whose row is a search over
weights) and, at σ = 0.05, where the squared error
is: the mean over images of Σ(error²)/n_pixels within 2 pixels of an edge of the clean
image and elsewhere (×10⁻⁴; the two add up to the MSE), for each variant of the shipped
"natural" prior (default: all):

* ``tv`` – TV, best weight per image; ``bm3d`` – BM3D (``sigma_psd=σ``);
* ``phantom-prior`` – the shipped "phantom" prior with its settings (a prior that knows
  phantoms, for reference);
* ``shipped`` – the shipped settings (stride 2, 3 levels, HQS 6 steps 2σ → σ/10);
* ``levels4`` – four pyramid levels;
* ``steps10`` – HQS 10 steps 2σ → σ/30 (the phantom prior's kind of schedule);
* ``stride1`` – every patch;
* ``k128`` – the 128-component mixture, sharpened alike, stride 3;
* ``pyramid-data`` – trained with every photograph's 2× and 4× mean-pooled copies too
  (sharper edges, flatter areas), sharpened alike;
* ``contrast-data`` – trained on patches scaled by random factors in [1/2, 2], sharpened
  alike;
* ``contrast0.5`` – denoise y/2 at σ/2 and scale back (edges of half the contrast);
* ``scales2`` – a scale mixture: every component also at twice its scale (weight 0.1);
* ``adaptive`` – the mixture weights re-estimated by EM on the noisy image's own patches.
"""

import os
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _pretrained_data import VALIDATION, crops
from study_eval import noisy
from study_pretrained import load_model, model_path

import fastscore
from fastscore import data, pretrained
from fastscore.metrics import psnr
from fastscore.operators import Identity
from fastscore.patch_gmm import GaussianMixturePatchScore
from fastscore.phantoms import random_phantoms
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate
from fastscore.tv import tune_tv_weight

SIGMAS = (0.05, 0.1, 0.2)
SIDE = 256
#: variant -> (study model, patch stride): ``python benchmarks/study_pretrained.py train KEY``
STUDY_MODELS = {"k128": ("natural_gmm8_k128_n600k", 3),
                "pyramid-data": ("natural-pyramid_gmm8_k64_n600k", 2),
                "contrast-data": ("natural_gmm8_k64_n600k_contrast2", 2)}
VARIANTS = ("tv", "bm3d", "phantom-prior", "shipped", "levels4", "steps10", "stride1", "k128",
            "pyramid-data", "contrast-data", "contrast0.5", "scales2", "adaptive")


def validation_sets():
    phantoms = {}
    for kind, images in (("ellipses", random_phantoms(2, SIDE, rng=99, dtype=np.float32)),
                         ("disks", data.disks(2, SIDE, rng=101, dtype=np.float32)),
                         ("rectangles", data.rectangles(2, SIDE, rng=102, dtype=np.float32))):
        phantoms.update({f"{kind}{i}": im for i, im in enumerate(images)})
    return {"phantoms": phantoms, "photographs": crops(VALIDATION, SIDE, np.float32)}


def with_mixture(model, means, eigenvalues, eigenvectors, weights):
    return GaussianMixturePatchScore(model.patch_size, means, eigenvalues, eigenvectors,
                                     weights, sigma_min=model.sigma_min,
                                     sigma_max=model.sigma_max, prune=model.prune)


def scale_mixture(model, scale=2.0, share=0.1):
    """Every component k also as (scale·μ_k, scale²·C_k), weight share·w_k."""
    return with_mixture(model, np.concatenate([model.means, scale * model.means]),
                        np.concatenate([model.eigenvalues, scale ** 2 * model.eigenvalues]),
                        np.concatenate([model.eigenvectors, model.eigenvectors]),
                        np.concatenate([(1 - share) * model.weights, share * model.weights]))


def adapted_weights(model, y, sigma, n_steps=10):
    """EM for the weights alone on the noisy patches (stride 2) under the σ-smoothed
    components: w ← mean responsibility."""
    V = sliding_window_view(y.astype(np.float64), model.patch_size)[::2, ::2]
    C = V.reshape(-1, model.patch_dim) @ model.basis
    var = model.eigenvalues + sigma ** 2
    log_n = np.empty((len(C), model.n_components))
    for k in range(model.n_components):
        z = (C - model.means[k]) @ model.eigenvectors[k] / np.sqrt(var[k])
        log_n[:, k] = -0.5 * np.sum(np.log(2 * np.pi * var[k])) - 0.5 * np.sum(z * z, axis=1)
    w = model.weights
    for _ in range(n_steps):
        e = log_n + np.log(w)
        r = np.exp(e - e.max(axis=1, keepdims=True))
        w = (r / r.sum(axis=1, keepdims=True)).mean(axis=0)
        w = np.maximum(w, 1e-12) / np.maximum(w, 1e-12).sum()
    return with_mixture(model, model.means, model.eigenvalues, model.eigenvectors, w)


def denoiser(variant):
    """(y, σ) -> estimate, for one variant."""
    if variant == "tv":
        return None
    if variant == "bm3d":
        import bm3d

        return lambda y, sigma: bm3d.bm3d(y.astype(np.float64), sigma_psd=sigma)
    if variant == "phantom-prior":
        prior = pretrained.prior("phantom")
        return lambda y, sigma: map_estimate(y, Identity(y.shape), sigma, prior, rng=0,
                                             **pretrained.map_options("phantom", sigma)).x
    shipped = pretrained.load("natural")
    stride, levels, scale = pretrained.PRIOR_OPTIONS["natural"]["stride"], None, 1.0
    steps, ratio = 6, (2.0, 0.1)
    model = shipped
    if variant == "levels4":
        levels = 4
    elif variant == "steps10":
        steps, ratio = 10, (2.0, 1 / 30)
    elif variant == "stride1":
        stride = 1
    elif variant in STUDY_MODELS:
        key, stride = STUDY_MODELS[variant]
        model = load_model(key).sharpened(1e-3)
    elif variant == "contrast0.5":
        scale = 0.5
    elif variant == "scales2":
        model = scale_mixture(shipped)

    def run(y, sigma):
        m = adapted_weights(shipped, y, sigma) if variant == "adaptive" else model
        prior = pretrained.fused("natural", PatchPrior(m, m.patch_size, stride=stride),
                                 levels=levels)
        s = scale * sigma
        return map_estimate(scale * y, Identity(y.shape), s, prior, rng=0, method="hqs",
                            n_steps=steps,
                            sigma_schedule=(ratio[0] * s, ratio[1] * s)).x / scale
    return run


def main():
    variants = sys.argv[1:] or VARIANTS
    for variant in variants:
        if variant not in VARIANTS:
            sys.exit(f"unknown variant {variant!r}; the variants: {', '.join(VARIANTS)}")
        if variant in STUDY_MODELS and not os.path.exists(model_path(STUDY_MODELS[variant][0])):
            sys.exit(f"{variant} needs `python benchmarks/study_pretrained.py train "
                     f"{STUDY_MODELS[variant][0]}`")
    fastscore.set_num_threads(2)
    sets = validation_sets()
    print("| set | variant | σ = 0.05 | 0.1 | 0.2 | s / image | σ = 0.05 edge / flat |")
    print("|---|---|---|---|---|---|---|")
    for name, images in sets.items():
        edges = {key: ndimage.binary_dilation(np.hypot(*np.gradient(x)) > 1e-6, iterations=2)
                 for key, x in images.items()}
        for variant in variants:
            run = denoiser(variant)
            cells, seconds, split = [], [], []
            for sigma in SIGMAS:
                values = []
                for key, x in images.items():
                    y = noisy(x, sigma, key)
                    t0 = time.perf_counter()
                    z = tune_tv_weight(y, x).estimate if run is None else run(y, sigma)
                    seconds.append(time.perf_counter() - t0)
                    values.append(psnr(x, z, 1.0))
                    if sigma == SIGMAS[0]:
                        e2 = (z - x) ** 2 / x.size * 1e4
                        split.append((e2[edges[key]].sum(), e2[~edges[key]].sum()))
                cells.append(f"{np.mean(values):.2f}")
            edge, flat = np.mean(split, axis=0)
            took = "–" if run is None else f"{np.median(seconds):.2f}"  # TV: the tuning
            print(f"| {name} | {variant} | " + " | ".join(cells) +
                  f" | {took} | {edge:.2f} / {flat:.2f} |", flush=True)


if __name__ == "__main__":
    main()

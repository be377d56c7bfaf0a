"""Multi-scale fusion of a patch denoiser, measured on the validation images only.

    python benchmarks/study_multiscale.py natural_gmm8_k32_n300k natural 6 0.25
    python benchmarks/study_multiscale.py phantom_gmm8_k32_n300k phantom 12 0.05
    python benchmarks/study_multiscale.py phantom_gmm8_k32_n300k phantom 10 0.1 2 3:1

Optional: the patch stride (default 1), the configurations as ``LEVELS:G`` pairs
separated by commas (default ``1:0,2:0,2:1,3:0,3:1``) and the patch grid's tiling
(default ``overlap``; ``shifted_overlap`` moves the grid between calls, seeded). ``KEY1+KEY2[@STRIDE2]`` averages the
scores of two models (a product of experts, weights ½; the second one's patch stride
STRIDE2, default the same).

Why: patch priors of DC-removed patches (the shipped mixtures) leave the noise below
about one cycle per patch almost untouched (benchmarks/README.md, denoise: the error
spectrum). The fusion (``fastscore.multiscale.MultiScaleFusion``) denoises the
2×2-mean-pooled image (noise σ/2) with the same prior, recursively, and replaces the coarse
band of the fine estimate by it:

    z_L(x; σ) = z(x; σ) + U G (z_{L−1}(D x; σ/2) − D z(x; σ)),    z_1 = z

with z the prior's Tweedie denoiser, D the 2×2 mean, U bilinear up-sampling and G a
Gaussian blur of `g` coarse pixels (g = 0: none). Used inside HQS (n_steps, schedule
2σ → end·σ) through the score ``(z_L − x)/σ²``. Prints mean PSNR over the validation
images at σ = 0.05, 0.1, 0.2 (models from study_pretrained.py's cache).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from study_eval import noisy, validation_images
from study_pretrained import load_model

from fastscore.metrics import psnr
from fastscore.multiscale import MultiScaleFusion
from fastscore.operators import Identity
from fastscore.prior import PatchPrior, SumPrior
from fastscore.reconstruct import map_estimate


class Halves(SumPrior):
    """½ s_1 + ½ s_2."""

    def __init__(self, first, second):
        super().__init__([first, second])

    def score(self, x, sigma=None, *, rng=None, weight=None):
        return 0.5 * super().score(x, sigma, rng=rng, weight=weight)


def main():
    key, data, n_steps, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    stride = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    configs = sys.argv[6] if len(sys.argv) > 6 else "1:0,2:0,2:1,3:0,3:1"
    tiling = sys.argv[7] if len(sys.argv) > 7 else "overlap"
    base = None
    for part in key.split("+"):
        name, _, own = part.partition("@")
        model = load_model(name)
        prior = PatchPrior(model, model.patch_size, stride=int(own or stride), tiling=tiling)
        base = prior if base is None else Halves(base, prior)
    images = validation_images(data)
    for levels, g in (map(float, c.split(":")) for c in configs.split(",")):
        levels = int(levels)
        prior = MultiScaleFusion(base, levels, blur=g)
        cells = []
        for s in (0.05, 0.1, 0.2):
            values = []
            for name, x in images.items():
                y = noisy(x, s, name)
                z = map_estimate(y, Identity(y.shape), s, prior, method="hqs",
                                 n_steps=n_steps, sigma_schedule=(2 * s, end * s),
                                 rng=0).x
                values.append(psnr(x, z, 1.0))
            cells.append(f"{np.mean(values):.2f}")
        print(f"| {key} | HQS {n_steps} → σ·{end:g}, stride {stride}, {tiling} | levels "
              f"{levels}, g {g:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

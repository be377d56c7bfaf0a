"""Toy rectangles in distribution: PSNR against training budget (steps × batch) and σ range.

The demo's recipe (3×3 tutorial network, 4000 training rectangles of 16×16, batch 512,
σ log-uniform in [0.02, 0.5], Adam 2e-3 with cosine decay) at several step counts, and
the σ range varied at a fixed budget. Evaluation: 64 held-out rectangles (seed 1234) at
σ = 0.05 and 0.1, MAP by gradient ascent (β = 1/9, annealed 2σ → σ/4, 100 steps) and by
HQS (6 iterations). Models are cached in ``_cache/pretrained/toy_*.npz`` (resumable).

    python benchmarks/bench_toy_budget.py            # the curve (~20 min on a free core)
    python benchmarks/bench_toy_budget.py --quick
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastscore import data, metrics
from fastscore.nn import PatchScoreModel
from fastscore.operators import Identity
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate
from fastscore.train import fit_patch_score

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache", "pretrained")
RUNS = [(500, (0.02, 0.5)), (1000, (0.02, 0.5)), (2000, (0.02, 0.5)), (1000, (0.01, 0.5)),
        (1000, (0.05, 0.5)), (4000, (0.02, 0.5)), (8000, (0.02, 0.5))]


def model_for(steps, sigmas, batch=512):
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"toy_{steps}_{batch}_{sigmas[0]}_{sigmas[1]}.npz")
    if os.path.exists(path):
        return PatchScoreModel.load(path)
    train = data.rectangles(4000, rng=0, dtype=np.float32)
    model = fit_patch_score(train, patch_size=3, n_steps=steps, batch_size=batch,
                            sigma_range=sigmas, rng=0)
    model.save(path)
    return model


def evaluate(model, sigma, n=64):
    clean = data.rectangles(n, rng=1234, dtype=np.float32)
    y = clean + sigma * np.random.default_rng(5).standard_normal(clean.shape) \
        .astype(np.float32)
    A = Identity(clean.shape[1:])
    out = {}
    grad = map_estimate(y, A, sigma, PatchPrior(model, 3, weight=1 / 9), n_steps=100).x
    hqs = map_estimate(y, A, sigma, PatchPrior(model, 3), method="hqs", n_steps=6).x
    for name, est in (("MAP", grad), ("HQS", hqs)):
        out[name] = float(np.mean([metrics.psnr(c, e) for c, e in zip(clean, est)]))
    return out


def main():
    quick = "--quick" in sys.argv
    runs = [(100, (0.02, 0.5))] if quick else RUNS
    print("| steps × batch | σ range | train s | σ=0.05 MAP | σ=0.05 HQS | σ=0.1 MAP | "
          "σ=0.1 HQS |")
    print("|---|---|---|---|---|---|---|")
    for steps, sigmas in runs:
        t0 = time.perf_counter()
        model = model_for(steps, sigmas)
        seconds = model.training.get("seconds", time.perf_counter() - t0)
        r05, r10 = evaluate(model, 0.05), evaluate(model, 0.1)
        print(f"| {steps} × 512 | [{sigmas[0]}, {sigmas[1]}] | {seconds:.0f} | "
              f"{r05['MAP']:.2f} | {r05['HQS']:.2f} | {r10['MAP']:.2f} | {r10['HQS']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()

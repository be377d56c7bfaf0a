"""Denoising with the pretrained priors against TV, NL-means and BM3D.

Held-out photographs (``moon``, ``coins``, ``clock``: central 256² crops, grey; never
seen in training or validation) and phantoms (Shepp–Logan 256², one disk, one rectangle
at 256²; the phantom prior never saw any of them) at σ = 0.05, 0.1, 0.2.
Rows: noisy; TV with the best weight per image; NL-means (scikit-image, best ``h``);
BM3D (``bm3d``, ``sigma_psd=σ``); each pretrained prior by MAP (HQS with its shipped
settings: three-level fusion; and on one level, ``levels=1``) and posterior mean
(``--posterior``: one level, the samplers need a density's score; 4 chains of the default
sampler with its default steps, σ = 0.1); the toy-rectangle
prior (the demo's recipe). Results are cached per (image, σ, method) in
``_cache/pretrained/denoise.jsonl`` (resumable).

    python benchmarks/bench_denoise.py                 # PSNR / SSIM table
    python benchmarks/bench_denoise.py --posterior     # + posterior means and std maps
    python benchmarks/bench_denoise.py --posterior --only shepp_logan --methods phantom
    python benchmarks/bench_denoise.py --timing        # s / image on 1 and 2 threads
    python benchmarks/bench_denoise.py --figure        # benchmarks/denoise.png
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastscore
from fastscore import data, metrics, pretrained
from fastscore.operators import Identity
from fastscore.reconstruct import map_estimate, posterior_sample

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "_cache", "pretrained")
RESULTS = os.path.join(CACHE, "denoise.jsonl")
SIGMAS = (0.05, 0.1, 0.2)
SIDE = 256
TOY_STEPS = 2000      # the toy-rectangle prior: the demo recipe at 2000 steps × 512


def test_images():
    from _pretrained_data import TEST, crops

    images = {name: (im.astype(np.float32), "natural")
              for name, im in crops(TEST, SIDE).items()}
    images["shepp_logan"] = (data.shepp_logan((SIDE, SIDE), supersampling=4)
                             .astype(np.float32), "phantom")
    images["disk"] = (data.disks(1, SIDE, rng=11, dtype=np.float32)[0], "phantom")
    images["rectangle"] = (data.rectangles(1, SIDE, rng=12, dtype=np.float32)[0], "phantom")
    return images


def noisy(clean, sigma, name):
    seed = 1000 * SIGMAS.index(sigma) + sum(map(ord, name))
    return (clean + sigma * np.random.default_rng(seed).standard_normal(clean.shape)) \
        .astype(np.float32)


# ---------------------------------------------------------------- methods
def tv(y, sigma, clean):
    from fastscore.tv import tune_tv_weight, tv_denoise

    best = tune_tv_weight(y, clean)
    t0 = time.perf_counter()
    tv_denoise(y, best.weight)
    return best.estimate, time.perf_counter() - t0


def nl_means(y, sigma, clean):
    from skimage.restoration import denoise_nl_means

    best = None
    for f in (0.6, 0.8, 1.0, 1.2):
        t0 = time.perf_counter()
        z = denoise_nl_means(y.astype(np.float64), h=f * sigma, sigma=sigma, fast_mode=True,
                             patch_size=5, patch_distance=6)
        sec = time.perf_counter() - t0
        score = metrics.psnr(clean, z)
        if best is None or score > best[0]:
            best = (score, z, sec)
    return best[1], best[2]


def bm3d_denoise(y, sigma, clean=None):
    import bm3d

    t0 = time.perf_counter()
    z = bm3d.bm3d(y.astype(np.float64), sigma_psd=sigma)
    return z, time.perf_counter() - t0


_PRIORS = {}


def _prior(name, levels=None):
    key = (name, levels)
    if key not in _PRIORS:
        if name == "toy":
            from bench_toy_budget import model_for

            from fastscore.prior import PatchPrior
            _PRIORS[key] = PatchPrior(model_for(TOY_STEPS, (0.02, 0.5)), 3)
        else:
            _PRIORS[key] = pretrained.prior(name, levels=levels)
    return _PRIORS[key]


def prior_map(name, levels=None):
    """MAP by HQS with the shipped settings (`levels=1`: without the fusion)."""
    def run(y, sigma, clean=None):
        options = pretrained.map_options(name, sigma) if name in pretrained.available() \
            else {"method": "hqs", "n_steps": 6}
        t0 = time.perf_counter()
        z = map_estimate(y, Identity(y.shape), sigma, _prior(name, levels), rng=0,
                         **options).x
        return z, time.perf_counter() - t0
    return run


def prior_posterior(name, n_samples=4):
    """Posterior mean and std: the default sampler with its default ladder and steps."""
    def run(y, sigma, clean=None):
        t0 = time.perf_counter()
        post = posterior_sample(y, Identity(y.shape), sigma, _prior(name, levels=1),
                                n_samples=n_samples, rng=0)
        np.save(os.path.join(CACHE, f"std_{name}_{run.image}_{sigma}.npy"), post.std)
        np.save(os.path.join(CACHE, f"mean_{name}_{run.image}_{sigma}.npy"), post.mean)
        return post.mean, time.perf_counter() - t0
    return run


METHODS = {"TV (best weight)": tv, "NL-means (best h)": nl_means, "BM3D": bm3d_denoise,
           "natural prior, MAP (HQS)": prior_map("natural"),
           "phantom prior, MAP (HQS)": prior_map("phantom"),
           "natural prior, one level, MAP (HQS)": prior_map("natural", levels=1),
           "phantom prior, one level, MAP (HQS)": prior_map("phantom", levels=1),
           "toy-rectangle prior, MAP (HQS)": prior_map("toy")}
POSTERIOR = {"natural prior, posterior mean": prior_posterior("natural"),
             "phantom prior, posterior mean": prior_posterior("phantom")}


# ---------------------------------------------------------------- bookkeeping
def load_rows():
    if not os.path.exists(RESULTS):
        return []
    with open(RESULTS) as f:
        return [json.loads(line) for line in f if line.strip()]


def measure(methods, sigmas, images, rows):
    for name, (clean, kind) in images.items():
        for sigma in sigmas:
            y = noisy(clean, sigma, name)
            entries = [("noisy", lambda y, s, c: (y, 0.0))] + list(methods.items())
            for method, fn in entries:
                if any(r.get("image") == name and r.get("sigma") == sigma
                       and r["method"] == method for r in rows):
                    continue
                fn.image = name
                z, sec = fn(y, sigma, clean)
                row = {"image": name, "kind": kind, "sigma": sigma, "method": method,
                       "psnr": metrics.psnr(clean, z), "ssim": metrics.ssim(clean, z),
                       "seconds": sec}
                rows.append(row)
                print(json.dumps(row), flush=True)
                with open(RESULTS, "a") as f:
                    f.write(json.dumps(row) + "\n")


def timing(images, rows):
    """Seconds per 256² image (moon, σ = 0.1) on 1 and 2 threads, median of 3 runs."""
    from threadpoolctl import threadpool_limits

    clean = images["moon"][0]
    y = noisy(clean, 0.1, "moon")
    for method, fn in list(METHODS.items()):
        if method.startswith(("TV", "NL", "toy")):
            continue
        for n in (1, 2):
            if any(r.get("timing") and r["method"] == method and r["threads"] == n
                   for r in rows):
                continue
            fastscore.set_num_threads(n)
            with threadpool_limits(n):
                fn.image = "moon"
                fn(y[:32, :32].copy(), 0.1, clean[:32, :32])          # warm-up
                runs = [fn(y, 0.1, clean)[1] for _ in range(3)]
            row = {"timing": True, "method": method, "threads": n,
                   "seconds": float(np.median(runs)), "runs": runs}
            print(json.dumps(row), flush=True)
            with open(RESULTS, "a") as f:
                f.write(json.dumps(row) + "\n")


def table(rows):
    """Mean PSNR / SSIM per class of images, method and σ; then the timing table."""
    by, seen = {}, set()
    for r in rows:
        key = (r.get("image"), r.get("sigma"), r["method"])
        if r.get("timing") or key in seen:
            continue
        seen.add(key)
        by.setdefault((r["kind"], r["method"]), {}).setdefault(r["sigma"], []).append(r)
    order = ["noisy"] + list(METHODS) + list(POSTERIOR)
    for kind, images in (("natural", "moon, coins, clock"),
                         ("phantom", "Shepp–Logan, disk, rectangle")):
        print(f"\n{kind} ({images}; mean over images): PSNR dB / SSIM\n")
        print("| method | " + " | ".join(f"σ = {s}" for s in SIGMAS) + " |")
        print("|---|" + "---|" * len(SIGMAS))
        for method in order:
            cells = by.get((kind, method), {})
            if not cells:
                continue
            out = []
            for s in SIGMAS:
                rs = cells.get(s, [])
                out.append(f"{np.mean([r['psnr'] for r in rs]):.2f} / "
                           f"{np.mean([r['ssim'] for r in rs]):.3f} ({len(rs)})" if rs else "–")
            print(f"| {method} | " + " | ".join(out) + " |")
    times = {(r["method"], r["threads"]): r["seconds"] for r in rows if r.get("timing")}
    if times:
        print("\nseconds per 256² image (moon, σ = 0.1)\n")
        print("| method | 1 thread | 2 threads |\n|---|---|---|")
        for method in order:
            if (method, 1) in times:
                print(f"| {method} | {times[(method, 1)]:.2f} | "
                      f"{times.get((method, 2), float('nan')):.2f} |")


def noise_table(images, n_draws=10):
    """Bias and spread of fastscore.estimate_noise_sigma on the held-out 256² crops."""
    from fastscore.noise import estimate_noise_sigma

    levels = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
    print("\n`estimate_noise_sigma` (σ̂/σ − 1 in %, mean ± std over "
          f"{n_draws} noise draws)\n")
    names = [n for n, (_, kind) in images.items() if kind == "natural"] + ["shepp_logan"]
    print("| σ | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for sigma in levels:
        cells = []
        for name in names:
            clean = images[name][0].astype(np.float64)
            rng = np.random.default_rng(int(sigma * 1000))
            ratio = [estimate_noise_sigma(clean + sigma * rng.standard_normal(clean.shape))
                     / sigma - 1 for _ in range(n_draws)]
            cells.append(f"{100 * np.mean(ratio):+.1f} ± {100 * np.std(ratio):.1f}")
        print(f"| {sigma} | " + " | ".join(cells) + " |")


def figure(images):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [("moon", "natural"), ("shepp_logan", "phantom")]
    fig, axes = plt.subplots(len(cases), 6, figsize=(18, 3.2 * len(cases)))
    for row, (name, prior) in zip(axes, cases):
        clean = images[name][0]
        y = noisy(clean, 0.1, name)
        z = prior_map(prior)(y, 0.1)[0]
        b = bm3d_denoise(y, 0.1)[0]
        mean = np.load(os.path.join(CACHE, f"mean_{prior}_{name}_0.1.npy"))
        std = np.load(os.path.join(CACHE, f"std_{prior}_{name}_0.1.npy"))
        panels = [("clean", clean), ("noisy σ = 0.1", y), ("BM3D", b),
                  (f"{prior} prior, MAP", z), (f"{prior} prior, posterior mean", mean)]
        lo, hi = float(clean.min()), float(clean.max())
        for ax, (title, im) in zip(row, panels):
            ax.imshow(im, cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(title if im is clean else
                         f"{title}\n{metrics.psnr(clean, im):.2f} dB", fontsize=9)
            ax.axis("off")
        h = row[-1].imshow(std, cmap="magma")
        row[-1].set_title("posterior std", fontsize=9)
        row[-1].axis("off")
        fig.colorbar(h, ax=row[-1], fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = os.path.join(HERE, "denoise.png")
    fig.savefig(path, dpi=80)
    print(f"figure: {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--posterior", action="store_true")
    p.add_argument("--timing", action="store_true")
    p.add_argument("--figure", action="store_true")
    p.add_argument("--table", action="store_true", help="print the cached results only")
    p.add_argument("--noise", action="store_true", help="noise-level estimator table")
    p.add_argument("--only", nargs="+", help="images to run")
    p.add_argument("--methods", nargs="+", help="methods to run (name prefixes)")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    args = p.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    images = test_images()
    if args.only:
        images = {k: v for k, v in images.items() if k in args.only}
    rows = load_rows()
    if args.noise:
        return noise_table(images)
    if not args.table:
        if args.posterior:
            measure({k: v for k, v in POSTERIOR.items()
                     if not args.methods or k.startswith(tuple(args.methods))},
                    (0.1,), images, rows)
        elif args.timing:
            timing(images, rows)
        elif args.figure:
            figure(images)
        else:
            methods = {k: v for k, v in METHODS.items()
                       if not args.methods or k.startswith(tuple(args.methods))}
            measure(methods, tuple(args.sigmas), images, rows)
    table(load_rows())


if __name__ == "__main__":
    main()

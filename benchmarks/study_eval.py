"""Validation-only evaluation of the study models (see study_pretrained.py).

    python benchmarks/study_eval.py KEY [--steps 6] [--stride 1] [--levels 1] ...

Appends one JSON line per (model, settings) to ``_cache/pretrained/validation.jsonl`` and
skips settings already measured (resumable). ``--table`` prints everything measured.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from study_pretrained import CACHE, MODELS, load_model

RESULTS = os.path.join(CACHE, "validation.jsonl")
SIGMAS = (0.05, 0.1, 0.2)
SIDE = 128


def validation_images(data):
    if data.startswith("natural"):
        from _pretrained_data import VALIDATION, crops
        return crops(VALIDATION, SIDE, np.float32)
    from fastscore.phantoms import random_phantoms
    return {f"phantom{i}": im for i, im in
            enumerate(random_phantoms(3, SIDE, rng=99, dtype=np.float32))}


def noisy(x, sigma, name):
    seed = int(sigma * 1000) + 7 * sum(map(ord, name))
    return (x + sigma * np.random.default_rng(seed).standard_normal(x.shape)) \
        .astype(np.float32)


def make_prior(model, stride, levels, coarse, fine=None):
    from fastscore.multiscale import MultiScalePrior
    from fastscore.prior import PatchPrior

    prior = PatchPrior(model, model.patch_size, stride=stride)
    if levels > 1:
        prior = MultiScalePrior(prior, levels, [1 - coarse if fine is None else fine]
                                + [coarse / (levels - 1)] * (levels - 1))
    return prior


def denoise(prior, y, sigma, steps, start, end):
    from fastscore.operators import Identity
    from fastscore.reconstruct import map_estimate

    return map_estimate(y, Identity(y.shape), sigma, prior, method="hqs", n_steps=steps,
                        sigma_schedule=(start * sigma, end * sigma)).x


def done():
    if not os.path.exists(RESULTS):
        return []
    with open(RESULTS) as f:
        return [json.loads(line) for line in f if line.strip()]


def reference_rows(data):
    """BM3D and the noisy PSNR on the same validation crops (for orientation only)."""
    import bm3d

    from fastscore.metrics import psnr

    rows = []
    for name, x in validation_images(data).items():
        for s in SIGMAS:
            y = noisy(x, s, name)
            t0 = time.perf_counter()
            z = bm3d.bm3d(y.astype(np.float64), sigma_psd=s)
            rows.append({"data": data, "model": "bm3d", "image": name, "sigma": s,
                         "psnr": psnr(x, z, 1.0), "noisy": psnr(x, y, 1.0),
                         "seconds": time.perf_counter() - t0})
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("keys", nargs="*")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--levels", type=int, default=1)
    p.add_argument("--coarse", type=float, default=0.3)
    p.add_argument("--fine", type=float, help="weight of the finest level (default 1 − coarse)")
    p.add_argument("--start", type=float, default=2.0)
    p.add_argument("--end", type=float, default=0.25)
    p.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    p.add_argument("--bm3d", choices=["natural", "phantom"])
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    from fastscore.metrics import psnr

    have = done()
    if args.bm3d and not any(r["model"] == "bm3d" and r["data"] == args.bm3d for r in have):
        with open(RESULTS, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in reference_rows(args.bm3d))
    for key in args.keys:
        data = MODELS[key][0]
        settings = {"steps": args.steps, "stride": args.stride, "levels": args.levels,
                    "coarse": args.coarse if args.levels > 1 else 0.0, "start": args.start,
                    **({"fine": args.fine} if args.fine is not None else {}),
                    "end": args.end}
        model = load_model(key)
        prior = make_prior(model, args.stride, args.levels, args.coarse, args.fine)
        for name, x in validation_images(data).items():
            for s in args.sigmas:
                if any(r["model"] == key and r["image"] == name and r["sigma"] == s and
                       r.get("settings") == settings for r in have):
                    continue
                y = noisy(x, s, name)
                t0 = time.perf_counter()
                z = denoise(prior, y, s, args.steps, args.start, args.end)
                row = {"data": data, "model": key, "image": name, "sigma": s,
                       "settings": settings, "psnr": psnr(x, z, 1.0),
                       "seconds": time.perf_counter() - t0}
                print(json.dumps(row), flush=True)
                with open(RESULTS, "a") as f:
                    f.write(json.dumps(row) + "\n")
    if args.table:
        table(done())


def table(rows):
    """Mean PSNR over the validation images per (model, settings) and σ."""
    groups = {}
    for r in rows:
        key = (r["data"], r["model"], json.dumps(r.get("settings", {}), sort_keys=True))
        groups.setdefault(key, {}).setdefault(r["sigma"], []).append(r["psnr"])
    print("| data | model | settings | " + " | ".join(f"σ={s}" for s in SIGMAS) + " |")
    print("|---|---|---|" + "---|" * len(SIGMAS))
    for (data, model, settings), by in sorted(groups.items()):
        cells = [f"{np.mean(by[s]):.2f} ({len(by[s])})" if s in by else "–" for s in SIGMAS]
        print(f"| {data} | {model} | {settings} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""4x Cartesian MRI coverage of the default sampler on a chosen family and size
(python benchmarks/_tune_mri.py rectangles 32 3 steps=3 steps=20)."""
import sys
import numpy as np
from bench_posterior import models
import fastscore
from fastscore import data, metrics
from fastscore import operators as ops
from fastscore.prior import PatchPrior
from fastscore.reconstruct import posterior_sample
fastscore.set_num_threads(2)
fam, size, n_img = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
variants = sys.argv[4:]
m = models(False)
prior = PatchPrior(m["shepp" if fam == "shepp" else fam], 3, weight=1 / 9)
if fam == "shepp":
    clean = np.stack([data.shepp_logan((size, size)).astype(np.float32)] * n_img)
else:
    clean = (data.rectangles if fam == "rectangles" else data.disks)(n_img, size, rng=77, dtype=np.float32)
A = ops.MRI(ops.cartesian_mask((size, size), 4, rng=0))
rng = np.random.default_rng(555)
ys = [A.simulate(c, 0.02, rng=rng).astype(np.complex64) for c in clean]
for v in variants:
    kw = {}
    for part in v.split(","):
        k, _, val = part.partition("=")
        if k == "steps":
            kw["steps_per_sigma"] = int(val)
        if k == "end":
            kw["end"] = float(val)
        if k == "method":
            kw["method"] = val
        if k == "levels":
            kw["levels"] = int(val)
    end = kw.pop("end", None)
    levels = kw.pop("levels", 8)
    cov, ps, cov_raw = [], [], []
    for i, (c, y) in enumerate(zip(clean, ys)):
        if end is not None:
            kw["sigmas"] = np.geomspace(0.4, end, levels)
        out = posterior_sample(y, A, 0.02, prior, n_samples=16, rng=100 + i, **kw)
        cov.append(np.mean(np.abs(out.mean - c) <= 1.6449 * out.std))
        cov_raw.append(np.mean(np.abs(out.samples.mean(0) - c) <= 1.6449 * out.std))
        ps.append(metrics.psnr(c, out.mean))
    print(f"{fam} {size} {v}: coverage {np.mean(cov):.3f} (raw-mean {np.mean(cov_raw):.3f}), PSNR {np.mean(ps):.2f}, std {out.std.mean():.4f}, evals {out.n_score_evals}", flush=True)

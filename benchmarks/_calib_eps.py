"""Validation toy images (clean rng 40, noise rng 41; the benchmark uses 20 and 11)."""
import sys
import numpy as np
from bench_posterior import models, coverage
import fastscore
from fastscore import data, metrics
from fastscore import operators as ops
from fastscore.prior import PatchPrior
from fastscore.reconstruct import posterior_sample
fastscore.set_num_threads(2)
eps, fam, n = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
m = models(False)
clean = (data.rectangles if fam == "rectangles" else data.disks)(n, rng=40, dtype=np.float32)
A = ops.Identity(clean.shape[1:])
rng = np.random.default_rng(41)
prior = PatchPrior(m[fam], 3, weight=1 / 9)
cov, ps = [], []
for i, c in enumerate(clean):
    y = A.simulate(c, 0.1, rng=rng).astype(np.float32)
    out = posterior_sample(y, A, 0.1, prior, n_samples=16, rng=300 + i, step_size=eps)
    cov.append(coverage(c, out.mean, out.std))
    ps.append(metrics.psnr(c, out.mean))
print(f"validation {fam} eps={eps}: coverage {np.mean(cov):.3f}, "
      f"PSNR {np.mean(ps):.2f}, evals {out.n_score_evals}", flush=True)

"""Fan-beam CT: matrix build, forward / adjoint, FBP by rebinning, and the circulant gram
preconditioner, next to the parallel-beam projector on the same image.

For each n² image: n fan views over a full turn (flat and arc detectors; source 1.25 and
detector 2.5 image diagonals from the isocentre and the source) against n/2 parallel views
over half a turn (the same lines, each measured once instead of twice). Reports
build time, nonzeros, forward / adjoint / FBP median ms (float32 and float64), FBP
PSNR and relative error on the Shepp–Logan phantom (4× supersampled, partial volume) and
on a three-disk phantom, and the relative residual of CG and preconditioned CG on
``(A*A + μ I) v = A*y`` (μ = 0.01 ‖A‖²) after 10, 30 and 100 iterations.

    python benchmarks/bench_fanbeam.py            # 128² and 256²
    python benchmarks/bench_fanbeam.py --quick    # 64², for CI
"""

import math
import time

import numpy as np

from _timing import Table, header, measure, parser
from bench_operators import disk_phantom

from fastscore.data import shepp_logan
from fastscore.operators import FanBeamCT, ParallelBeamCT
from fastscore._cg import conjugate_gradient


def psnr(r, x):
    return 10 * np.log10(np.ptp(x) ** 2 / np.mean((r - x) ** 2))


def operators(n, n_views):
    diagonal = math.hypot(n, n)
    geometry = {"source_distance": 1.25 * diagonal, "detector_distance": 2.5 * diagonal}
    out = {}
    for name, build in (
            ("parallel", lambda: ParallelBeamCT((n, n), n_views // 2)),
            ("fan flat", lambda: FanBeamCT((n, n), n_views, detector="flat", **geometry)),
            ("fan arc", lambda: FanBeamCT((n, n), n_views, detector="arc", **geometry))):
        t0 = time.perf_counter()
        A = build()
        out[name] = (A, time.perf_counter() - t0)
    return out


def residuals(A, y, checkpoints=(10, 30, 100)):
    mu = 0.01 * A.norm_squared()
    rhs = A.adjoint(y)
    apply = lambda v: A.adjoint(A.forward(v)) + mu * v
    norm = np.linalg.norm(rhs)
    rows = []
    for precondition in (None, A.gram_preconditioner(1.0, mu)):
        res = []
        for k in checkpoints:
            v = conjugate_gradient(apply, rhs, np.zeros_like(rhs), cg_iter=k, tol=0.0,
                                   precondition=precondition)
            res.append(np.linalg.norm(rhs - apply(v)) / norm)
        rows.append(res)
    return rows


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    sizes = [64] if args.quick else [128, 256]
    repeat = 3 if args.quick else 5
    print(header("fan-beam CT: build / forward / adjoint / FBP / preconditioner",
                 threads="1 (NumPy/SciPy code)"))
    timing = Table(["image", "geometry", "views", "detectors", "build s", "nonzeros",
                    "dtype", "fwd ms", "adj ms", "fbp ms"])
    quality = Table(["image", "geometry", "views", "Shepp–Logan PSNR dB", "rel. error",
                     "disks PSNR dB", "rel. error"])
    cg = Table(["image", "geometry", "solver", "res@10", "res@30", "res@100"])
    for n in sizes:
        n_views = n if not args.quick else 180
        ops = operators(n, n_views)
        sl = shepp_logan((n, n), supersampling=4)
        disks = disk_phantom(n)
        for name, (A, build) in ops.items():
            for dtype in (np.float32, np.float64):
                x = sl.astype(dtype)
                y = A.forward(x)
                fwd = 1e3 * measure(lambda: A.forward(x), repeat=repeat)[0]
                adj = 1e3 * measure(lambda: A.adjoint(y), repeat=repeat)[0]
                fbp = 1e3 * measure(lambda: A.fbp(y), repeat=max(1, repeat // 2))[0]
                timing.add(f"{n}²", name, A.shape_out[0], A.shape_out[1], f"{build:.2f}",
                           A.matrix.nnz, np.dtype(dtype).name, f"{fwd:.1f}", f"{adj:.1f}",
                           f"{fbp:.1f}")
            r_sl, r_d = A.fbp(A.forward(sl)), A.fbp(A.forward(disks))
            rel = lambda r, x: np.linalg.norm(r - x) / np.linalg.norm(x)
            quality.add(f"{n}²", name, A.shape_out[0], f"{psnr(r_sl, sl):.2f}",
                        f"{rel(r_sl, sl):.4f}", f"{psnr(r_d, disks):.2f}",
                        f"{rel(r_d, disks):.4f}")
            plain, pre = residuals(A, A.forward(sl))
            cg.add(f"{n}²", name, "CG", *(f"{v:.2e}" for v in plain))
            cg.add(f"{n}²", name, "PCG circulant", *(f"{v:.2e}" for v in pre))
    print("\nBuild and speed (median ms, one thread)\n" + timing.render())
    print("\nFBP quality (fan: rebinned to parallel beams, then parallel FBP, ramp filter)\n"
          + quality.render())
    print("\nCG on (A*A + 0.01‖A‖² I) v = A*y: relative residual\n" + cg.render())


if __name__ == "__main__":
    main()

"""Posterior samplers: calibration, quality per unit of work, the compute floor.

Part 1 (floor): one prior-score evaluation of a 256² image with a 3×3 model of the
tutorial's architecture (network FLOPs counted from the widths), a 16-chain step, and
``posterior_sample(..., method="laplace")`` on 256² denoising (σ 0.1, 16 samples), with its
cost split into MAP, patch Hessians and sampling.

Part 2 (calibration): coverage of the pixelwise 90% credible intervals
``mean ± 1.645 std`` (16 chains) over many noise realisations, for toy rectangles (16²,
σ 0.1), disks (16², σ 0.1) and 4× Cartesian MRI of Shepp–Logan (64², σ_n 0.02), plus PSNR
of the posterior mean, score evaluations per chain and seconds — every sampler.

Part 3 (posterior mean against MAP): 30-view parallel CT and Shepp–Logan denoising
(σ 0.1, 0.2): PSNR of the MAP estimate (HQS) and of every sampler's posterior mean, with
the Shepp–Logan-family model trained for 20 000 steps and the patch prior's weight per
case (1/2 on CT, 1/9 in denoising), both chosen on validation images (tune_posterior.py).

Part 4 (quality per unit of work): PSNR of the posterior mean and coverage against score
evaluations per chain (steps_per_sigma swept) on denoising, MRI and CT; a table and
``benchmarks/posterior.png`` (matplotlib, when installed).

The 3×3 models are trained here (1500 Adam steps, σ ∈ [0.02, 0.5]) and cached in
benchmarks/_cache (git-ignored).

    python benchmarks/bench_posterior.py            # full study
    python benchmarks/bench_posterior.py --quick    # small and fast (CI)
"""

import itertools
import os
import time

import numpy as np
from _timing import Table, header, measure, parser

import fastscore
from fastscore import data, metrics
from fastscore import operators as ops
from fastscore.nn import PatchScoreModel
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate, posterior_sample
from fastscore.train import fit_patch_score

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache")
METHODS = ["preconditioned", "langevin", "hmc", "pc", "ode", "dps", "diffpir", "laplace"]
Z90 = 1.6448536269514722
#: The posterior-mean-against-MAP part: the model's Adam steps and the patch prior's
#: weight per case, chosen on the validation images (tune_posterior.py ``--train-steps``,
#: ``--weight``) by the posterior mean's PSNR.
MAP_PART_STEPS = 20000
MAP_PART_WEIGHTS = {"ct": 1 / 2, "den0.1": 1 / 9, "den0.2": 1 / 9}


def trained_model(name, images, steps=1500, patch=3):
    os.makedirs(CACHE, exist_ok=True)
    size = "" if patch == 3 else f"_p{patch}"
    path = os.path.join(CACHE, f"post_{name}_{steps}{size}.npz")
    if not os.path.exists(path):
        fit_patch_score(images, patch_size=patch, n_steps=steps, sigma_range=(0.02, 0.5),
                        rng=0, dtype=np.float32).save(path)
    return PatchScoreModel.load(path)


def shepp_family():
    """Renderings of Shepp–Logan at 80–256 px (the test images are 32² and 64²)."""
    return [data.shepp_logan((s, s)).astype(np.float32) for s in (80, 96, 160, 192, 256)]


def models(quick):
    """The 3×3 models of the calibration, floor and work parts: 1500 Adam steps each."""
    steps = 300 if quick else 1500
    n = 300 if quick else 2000
    return {"rectangles": trained_model("rectangles", data.rectangles(
                n, rng=0, dtype=np.float32), steps),
            "disks": trained_model("disks", data.disks(n, rng=1, dtype=np.float32), steps),
            "shepp": trained_model("shepp-logan-family", shepp_family(), steps)}


def network_gflop(model, n_pixels):
    widths = model.model.net.widths
    per_patch = 2 * sum(a * b for a, b in itertools.pairwise(widths))
    return per_patch * n_pixels / 1e9


def floor_study(model, quick):
    size = 64 if quick else 256
    prior = PatchPrior(model, 3, weight=1 / 9)
    x = data.rectangles(1, size, rng=3, dtype=np.float32)[0]
    y = x + 0.1 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    one, _ = measure(lambda: prior.score(y, 0.05), repeat=3)
    batch = np.stack([y] * 16)
    sixteen, _ = measure(lambda: prior.score(batch, 0.05), repeat=1)
    t0 = time.perf_counter()
    out = posterior_sample(y, ops.Identity(y.shape), 0.1, prior, n_samples=16,
                           method="laplace", rng=0)
    lap = time.perf_counter() - t0
    cover = float(np.mean(np.abs(out.mean - x) <= Z90 * out.std))
    print(f"# floor {size}²: network {network_gflop(model, size * size):.1f} GFLOP per "
          f"prior score; one score {one * 1e3:.0f} ms; 16 chains {sixteen * 1e3:.0f} ms; "
          f"laplace (16 samples) {lap:.2f} s = {lap / one:.1f} score times "
          f"({out.n_score_evals} score evaluations: 8 HQS + 10 for the patch Jacobians); "
          f"PSNR {metrics.psnr(x, out.mean):.2f} dB, coverage {cover:.3f}", flush=True)
    return one


def laplace_timing(model, quick):
    """Exactly the issue's target: ``posterior_sample(y, Identity, 0.1, prior,
    n_samples=16, method="laplace")`` on a 256² denoising problem, 3×3 model, 2 threads
    (median of 3 runs after a warm-up) and its split: MAP, patch Hessians, sampling."""
    from fastscore._laplace import patch_hessians
    size = 64 if quick else 256
    prior = PatchPrior(model, 3, weight=1 / 9)
    x = data.rectangles(1, size, rng=3, dtype=np.float32)[0]
    y = x + 0.1 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    A = ops.Identity(y.shape)
    call = lambda: posterior_sample(y, A, 0.1, prior, n_samples=16, method="laplace", rng=0)
    total, _ = measure(call, repeat=3)
    x_map = map_estimate(y, A, 0.1, prior, method="hqs", n_steps=8, sigma_schedule=(0.2, 0.025))
    hess, _ = measure(lambda: patch_hessians(prior, x_map.x, 0.025), repeat=3)
    score, _ = measure(lambda: prior.score(y, 0.05), repeat=3)
    print(f"# laplace {size}² (16 samples): {total:.2f} s = {total / score:.1f} score times "
          f"(one score {score * 1e3:.0f} ms); patch Hessians {hess:.2f} s", flush=True)


def uncertainty_figure(model, path):
    """The README's figure: 4× Cartesian MRI (σ_n 0.02) of a 48² rectangles image with the
    default sampler and its default steps (16 chains): truth, zero-filled, posterior mean,
    pixelwise posterior std."""
    x = data.rectangles(1, 48, rng=1, dtype=np.float32)[0]
    A = ops.MRI(ops.cartesian_mask(x.shape, 4, rng=0))
    y = A.simulate(x, 0.02, rng=2).astype(np.complex64)
    zero_filled = A.adjoint(y).real
    t0 = time.perf_counter()
    out = posterior_sample(y, A, 0.02, PatchPrior(model, 3, weight=1 / 9), n_samples=16, rng=4)
    secs = time.perf_counter() - t0
    cov = coverage(x, out.mean, out.std)
    print(f"# figure: zero-filled {metrics.psnr(x, zero_filled):.2f} dB, posterior mean "
          f"{metrics.psnr(x, out.mean):.2f} dB, coverage {cov:.3f}, "
          f"{out.n_score_evals} score evaluations per chain, {secs:.1f} s", flush=True)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("# matplotlib not installed: no figure")
        return
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
    panels = [(x, "truth"), (zero_filled, f"zero-filled {metrics.psnr(x, zero_filled):.1f} dB"),
              (out.mean, f"posterior mean {metrics.psnr(x, out.mean):.1f} dB"),
              (out.std, "posterior std")]
    lo, hi = float(x.min()), float(x.max())
    for ax, (img, title) in zip(axes, panels):
        kw = dict(vmin=lo, vmax=hi) if title != "posterior std" else {}
        im = ax.imshow(img, cmap="gray", **kw)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"# figure: {path}")


def coverage(truth, mean, std):
    return float(np.mean(np.abs(mean - truth) <= Z90 * std))


def run(method, y, A, noise, prior, x0, steps, rng, sigmas=None):
    kw = {"sigmas": sigmas} if sigmas is not None else {}
    if method == "laplace":
        kw = {}
    t0 = time.perf_counter()
    out = posterior_sample(y, A, noise, prior, n_samples=16, method=method, rng=rng,
                           steps_per_sigma=steps, x0=x0, **kw)
    return out, time.perf_counter() - t0


def cases(models, quick, mri_size=64):
    """The calibration cases: rectangles and disks (16², σ 0.1) and 4× Cartesian MRI of
    Shepp–Logan at `mri_size`² (σ_n 0.02; 32 in quick runs and in the work part: below
    the model's training renderings of 80–256 px)."""
    rng = np.random.default_rng(11)
    n_toy = 4 if quick else 12
    out = []
    for name, fam in (("rectangles 16² σ0.1", "rectangles"), ("disks 16² σ0.1", "disks")):
        clean = (data.rectangles if fam == "rectangles" else data.disks)(
            n_toy, rng=20, dtype=np.float32)
        A = ops.Identity(clean.shape[1:])
        ys = [A.simulate(c, 0.1, rng=rng).astype(np.float32) for c in clean]
        out.append((name, clean, ys, A, 0.1, PatchPrior(models[fam], 3, weight=1 / 9), None,
                    None))
    size = 32 if quick else mri_size
    x = data.shepp_logan((size, size)).astype(np.float32)
    A = ops.MRI(ops.cartesian_mask(x.shape, 4, rng=0))
    reps = 2 if quick else 4
    ys = [A.simulate(x, 0.02, rng=rng) for _ in range(reps)]
    ys = [y.astype(np.complex64) for y in ys]
    out.append((f"MRI 4x {size}² σ0.02", np.stack([x] * reps), ys, A, 0.02,
                PatchPrior(models["shepp"], 3, weight=1 / 9), None, None))
    return out


def calibration_study(table, models, quick, steps, which=("rectangles", "disks", "MRI")):
    for name, clean, ys, A, noise, prior, x0, sigmas in cases(models, quick):
        if not name.startswith(tuple(which)):
            continue
        for method in METHODS:
            cov, psnr, secs, evals = [], [], 0.0, 0
            for i, (c, y) in enumerate(zip(clean, ys)):
                out, sec = run(method, y, A, noise, prior, x0, steps, 100 + i, sigmas)
                cov.append(coverage(c, out.mean, out.std))
                psnr.append(metrics.psnr(c, out.mean))
                secs += sec
                evals = out.n_score_evals
            table.add(name, method, f"{np.mean(cov):.3f}", f"{np.mean(psnr):.2f}", evals,
                      f"{secs / len(clean):.2f}")
            print(f"#   {name} {method}: coverage {np.mean(cov):.3f}, "
                  f"PSNR {np.mean(psnr):.2f}", flush=True)


def map_vs_mean_study(table, quick, which=("ct", "den0.1", "den0.2")):
    """PSNR of the posterior mean against MAP on the 64² Shepp–Logan (the test image; the
    default sampler's settings were chosen on validation images, tune_posterior.py): the
    default sampler with its default ladder and steps; the others on a 10-level ladder
    0.2 → 0.02 (or 2σ_n → σ_n/4), 2 steps per level (laplace: its default MAP)."""
    size = 32 if quick else 64
    x = data.shepp_logan((size, size)).astype(np.float32)
    model = trained_model("shepp-logan-family", shepp_family(),
                          300 if quick else MAP_PART_STEPS)
    rng = np.random.default_rng(5)
    ct = ops.ParallelBeamCT(x.shape, np.linspace(0, np.pi, 30, endpoint=False))
    problems = [("ct", "CT 30 views σ0.02", ct, 0.02),
                ("den0.1", "Shepp-Logan σ0.1", ops.Identity(x.shape), 0.1),
                ("den0.2", "Shepp-Logan σ0.2", ops.Identity(x.shape), 0.2)]
    for key, name, A, noise in problems:
        y = A.simulate(x, noise, rng=rng).astype(np.float32)   # same draws whatever runs
        if key not in which:
            continue
        base = A.fbp(y) if hasattr(A, "fbp") else y
        prior = PatchPrior(model, 3, weight=MAP_PART_WEIGHTS[key])
        top = max(0.2, 2 * noise)
        t0 = time.perf_counter()
        est = map_estimate(y, A, noise, prior, method="hqs", n_steps=30,
                           sigma_schedule=(top, max(noise / 4, 0.02)), x0=base).x
        p_map = metrics.psnr(x, est)
        table.add(f"{name} {size}²", "MAP (HQS 30)", f"{p_map:.2f}", "-", "-", 30,
                  f"{time.perf_counter() - t0:.2f}")
        ladder = np.geomspace(top, max(noise / 4, 0.02), 10)
        for method in METHODS:
            default = method in ("preconditioned", "laplace")
            out, sec = run(method, y, A, noise, prior, base, 20 if default else 2, 7,
                           None if default else ladder)
            p = metrics.psnr(x, out.mean)
            table.add(f"{name} {size}²", method, f"{p:.2f}", f"{p - p_map:+.2f}",
                      f"{coverage(x, out.mean, out.std):.3f}", out.n_score_evals,
                      f"{sec:.2f}")
            print(f"#   {name} {method}: {p:.2f} dB (MAP {p_map:.2f}), coverage "
                  f"{coverage(x, out.mean, out.std):.3f}", flush=True)


def work_study(table, models, quick):
    rows = []
    selected = [c for c in cases(models, quick, mri_size=32)
                if c[0].startswith(("rectangles", "MRI"))]
    size = 32
    x = data.shepp_logan((size, size)).astype(np.float32)
    ct = ops.ParallelBeamCT(x.shape, np.linspace(0, np.pi, 30, endpoint=False))
    rng = np.random.default_rng(9)
    ys = [ct.simulate(x, 0.02, rng=rng).astype(np.float32) for _ in range(2 if quick else 3)]
    selected.append((f"CT 30 views {size}²", np.stack([x] * len(ys)), ys, ct, 0.02,
                     PatchPrior(models["shepp"], 3, weight=1 / 9), ct.fbp(ys[0]), None))
    sweep = (1, 3) if quick else (1, 4)
    for name, clean, ys, A, noise, prior, x0, _ in selected:
        clean, ys = clean[:2], ys[:2]
        for method in METHODS:
            for steps in ((1,) if method == "laplace" else sweep):
                cov, psnr, evals = [], [], 0
                for i, (c, y) in enumerate(zip(clean, ys)):
                    out, _ = run(method, y, A, noise, prior, x0, steps, 200 + i)
                    cov.append(coverage(c, out.mean, out.std))
                    psnr.append(metrics.psnr(c, out.mean))
                    evals = out.n_score_evals
                rows.append((name, method, evals, float(np.mean(psnr)), float(np.mean(cov))))
                table.add(name, method, steps, evals, f"{np.mean(psnr):.2f}",
                          f"{np.mean(cov):.3f}")
                print(f"#   work {name} {method} steps={steps}: {evals} evals, "
                      f"{np.mean(psnr):.2f} dB, coverage {np.mean(cov):.3f}", flush=True)
    return rows


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("# matplotlib not installed: no plot")
        return
    names = sorted({r[0] for r in rows})
    fig, axes = plt.subplots(2, len(names), figsize=(4.5 * len(names), 7), squeeze=False)
    for j, name in enumerate(names):
        for method in METHODS:
            pts = sorted((r[2], r[3], r[4]) for r in rows if r[0] == name and r[1] == method)
            if not pts:
                continue
            e, p, c = zip(*pts)
            axes[0, j].plot(e, p, "o-", label=method)
            axes[1, j].plot(e, c, "o-", label=method)
        axes[0, j].set_title(name)
        axes[0, j].set_xscale("log")
        axes[1, j].set_xscale("log")
        axes[0, j].set_ylabel("PSNR of the posterior mean (dB)")
        axes[1, j].set_ylabel("coverage of 90% intervals")
        axes[1, j].axhline(0.9, color="k", lw=0.5)
        axes[1, j].set_xlabel("score evaluations per chain")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"# plot: {path}")


def main():
    p = parser(__doc__)
    p.add_argument("--part", nargs="+", default=["floor", "calibration", "map", "work"],
                   choices=["floor", "laplace", "figure", "calibration", "map", "work"],
                   help="parts to run (separate processes can run parts side by side)")
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--steps", type=int, default=None,
                   help="steps_per_sigma of the calibration part (default 3; 20 = the "
                        "default sampler's default)")
    p.add_argument("--calibration-cases", nargs="+", default=["rectangles", "disks", "MRI"],
                   choices=["rectangles", "disks", "MRI"])
    p.add_argument("--cases", nargs="+", default=["ct", "den0.1", "den0.2"],
                   choices=["ct", "den0.1", "den0.2"], help="cases of the map part")
    args = p.parse_args()
    METHODS[:] = args.methods
    fastscore.set_num_threads(2)
    print(header("posterior samplers", threads=2, dtype="float32", chains=16), flush=True)
    trained = models(args.quick)
    if "floor" in args.part:
        floor_study(trained["rectangles"], args.quick)
    if "laplace" in args.part:
        laplace_timing(trained["rectangles"], args.quick)
    if "figure" in args.part:
        uncertainty_figure(trained["rectangles"], os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
            "posterior_uncertainty.png"))
    if "calibration" in args.part:
        steps = args.steps or (2 if args.quick else 3)
        table = Table(["case", "method", "coverage (90%)", "PSNR mean", "score evals/chain",
                       "s per image"])
        calibration_study(table, trained, args.quick, steps, args.calibration_cases)
        print(f"\n## calibration (steps_per_sigma={steps}, default ladder)\n"
              + table.render(), flush=True)
    if "map" in args.part:
        table = Table(["case", "method", "PSNR", "vs MAP", "coverage", "score evals/chain",
                       "s"])
        map_vs_mean_study(table, args.quick, args.cases)
        print("\n## posterior mean against MAP\n" + table.render(), flush=True)
    if "work" in args.part:
        table = Table(["case", "method", "steps_per_sigma", "score evals/chain", "PSNR mean",
                       "coverage"])
        rows = work_study(table, trained, args.quick)
        print("\n## quality per unit of work\n" + table.render(), flush=True)
        plot(rows, os.path.join(os.path.dirname(os.path.abspath(__file__)), "posterior.png"))


if __name__ == "__main__":
    main()

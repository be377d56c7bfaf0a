"""MRI with patch priors: single-coil 4× Cartesian, multi-coil SENSE on a complex phantom, 3-D.

Part "single": the single-coil 4× Cartesian 128² Shepp–Logan (σ_n = 0.01 per component)
with a 3×3 prior trained on random ellipse images (never Shepp–Logan):
zero-filled, TV (weight tuned on the test image, an optimistic baseline), fastscore HQS
and gradient MAP with the default annealing, and with the old default (2σ_n → σ_n/4).

Part "sense": a complex 256² Shepp–Logan with a smooth phase, 8 synthetic birdcage coils
(maps known), 4× and 8× Cartesian undersampling, complex noise for 30 dB SNR (the mean
power of the measured k-space over the noise power 2σ²): zero-filled SENSE (Aᴴy), SENSE-TV
and L1-wavelet (sigpy's apps, λ chosen on validation phantoms), fastscore MAP (HQS) and
posterior mean + std, with the complex (two-channel) prior and with the real prior on the
real and imaginary parts. PSNR/SSIM of the magnitude; seconds per slice. Priors are trained
on random ellipse images (real ones, and complex ones with random smooth phases); λ and
nothing else is tuned, on a validation brain-like phantom with a smooth phase.

Part "3d": a 64³ complex Shepp–Logan volume, 8 coils, 4× 3-D Cartesian (two phase-encode
axes), a 3×3×3 prior trained on random ellipsoid volumes; peak RSS of the process.

    python benchmarks/bench_mri.py [--part single sense 3d] [--quick]
"""

import os
import re
import resource
import sys
import time

import numpy as np

from _timing import header, parser, try_import, Table

from fastscore import data, metrics, operators as ops
from fastscore.nn import PatchScoreModel
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate, posterior_sample
from fastscore.train import fit_patch_score
from fastscore.tv import tune_tv_weight

STEPS = None                      # training steps override (--steps, smoke runs)
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "_cache")
sys.path.insert(0, os.path.join(HERE, os.pardir, "examples"))
from radial_mri_nufft import random_ellipses  # noqa: E402  (3-8 ellipses, [-0.4, 1], zero background)


# -- phantoms -----------------------------------------------------------------------------
def brain_phantom(shape, rng):
    """Random brain-like phantom in [0, 1]: a bright skull ring, darker tissue, and random
    inner ellipses (ellipsoids) of both signs; 2-D or 3-D."""
    rng = np.random.default_rng(rng)
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n * 2 - 1 for n in shape], indexing="ij")
    pts = np.stack(grids[::-1], axis=-1)                  # (..., ndim) as x, y(, z)
    d = len(shape)

    def ellipsoid(centre, axes, angle):
        q = pts - centre
        c, s = np.cos(angle), np.sin(angle)
        u, v = c * q[..., 0] + s * q[..., 1], -s * q[..., 0] + c * q[..., 1]
        r = (u / axes[0]) ** 2 + (v / axes[1]) ** 2
        if d == 3:
            r = r + (q[..., 2] / axes[2]) ** 2
        return r <= 1

    outer = rng.uniform(0.75, 0.92, d) * np.array([0.75, 0.95, 0.9][:d])
    angle = rng.uniform(-0.2, 0.2)
    img = 1.0 * ellipsoid(np.zeros(d), outer, angle)
    img -= rng.uniform(0.6, 0.85) * ellipsoid(np.zeros(d), outer * rng.uniform(0.88, 0.94),
                                              angle)
    for _ in range(rng.integers(4, 10)):
        centre = rng.uniform(-0.5, 0.5, d) * outer
        axes = rng.uniform(0.03, 0.3, d)
        img += rng.choice([-1, 1]) * rng.uniform(0.02, 0.3) * ellipsoid(
            centre, axes, rng.uniform(0, np.pi))
    return np.clip(img, 0, 1)


def smooth_phase(shape, rng):
    rng = np.random.default_rng(rng)
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n * 2 - 1 for n in shape], indexing="ij")
    phase = rng.uniform(-np.pi, np.pi)
    for g in grids:
        phase = phase + rng.uniform(-1.5, 1.5) * g + rng.uniform(-1, 1) * g ** 2
    return np.exp(1j * phase)


def real_prior(quick):
    """The real 3×3 prior: 200 random-ellipse images of 64², 3000 steps, σ in [0.005, 0.5]."""
    return trained("real", random_ellipses(200, 64, 0), 3, STEPS or (800 if quick else 3000))


def trained(name, images, patch, steps, sigmas=(0.005, 0.5)):
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"mri_{name}_{steps}.npz")
    if os.path.exists(path):
        return PatchScoreModel.load(path), 0.0
    t0 = time.perf_counter()
    model = fit_patch_score(images, patch_size=patch, n_steps=steps, sigma_range=sigmas, rng=0,
                            dtype=np.float32)
    model.save(path)
    return model, time.perf_counter() - t0


def magnitude_scores(clean, est):
    a, b = np.abs(clean), np.abs(est)
    return metrics.psnr(a, b), metrics.ssim(a, b)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- part 1: single-coil 4x -----------------------------------------------------------------
def single_coil(table, quick):
    n = 64 if quick else 128
    model, sec = real_prior(quick)
    print(f"# real 3x3 prior: trained in {sec:.0f} s", flush=True)
    x = data.shepp_logan((n, n))
    A = ops.MRI(ops.cartesian_mask(x.shape, 4, rng=0))
    sn = 0.01
    y = A.simulate(x, sn, rng=1)
    prior = PatchPrior(model, 3)
    rows = [("zero-filled", lambda: A.adjoint(y))]
    rows.append(("TV (best weight on the test image)",
                 lambda: tune_tv_weight(y, x, operator=A, n_steps=300).estimate))
    steps = 10 if quick else 30
    rows.append((f"MAP HQS {steps} it., default schedule",
                 lambda: map_estimate(y, A, sn, prior, method="hqs", n_steps=steps).x))
    rows.append((f"MAP HQS {steps} it., old default 2σ_n → σ_n/4",
                 lambda: map_estimate(y, A, sn, prior, method="hqs", n_steps=steps,
                                      sigma_schedule=(2 * sn, sn / 4)).x))
    g_steps = 60 if quick else 100
    rows.append((f"MAP gradient {g_steps} it. (Nesterov), default schedule",
                 lambda: map_estimate(y, A, sn, prior, n_steps=g_steps, momentum=True).x))
    for label, fn in rows:
        t0 = time.perf_counter()
        est = fn()
        sec = time.perf_counter() - t0
        table.add(f"single-coil 4x {n}²", label, f"{metrics.psnr(x, est):.2f}",
                  f"{metrics.ssim(x, est):.3f}", f"{sec:.1f}")
        print(table.rows[-1], flush=True)


# -- part 2: SENSE ---------------------------------------------------------------------------
SIGPY_ITER = 200                  # iterations of sigpy's apps (60 in --quick)
NO_POSTERIOR = False              # --no-posterior: MAP and baselines only
BASELINES = True                  # --no-baselines: without sigpy (λ search)
REUSE_LAMBDA = False              # --reuse-lambda: VALIDATED_LAMBDA instead of the search
#: λ picked by best_lambda on the validation phantoms (full run, 9-point grid 1e-4 … 1,
#: 200 iterations; benchmarks/README.md, mri): reused to skip the long search
VALIDATED_LAMBDA = {("tv", 4): 10 ** -1.5, ("l1w", 4): 1e-3, ("tv", 8): 10 ** -1.5,
                    ("l1w", 8): 10 ** -3.5}


def sigpy_recon(kind, y, A, lam):
    """sigpy's TV / L1-wavelet SENSE reconstruction in fastscore's layout (sigpy centres
    the image too: fastscore's A(x; s) is sigpy's A(fftshift x; fftshift s))."""
    import sigpy.mri.app as app

    maps = np.fft.fftshift(A.coil_maps, axes=(-2, -1))
    App = app.TotalVariationRecon if kind == "tv" else app.L1WaveletRecon
    out = App(y, maps, lam, weights=A.mask.astype(float), show_pbar=False,
              max_iter=SIGPY_ITER).run()
    return np.fft.ifftshift(np.asarray(out))


def snr_sigma(A, x, snr_db=30.0):
    k = A.forward(x)[:, A.mask]
    return float(np.sqrt(np.mean(np.abs(k) ** 2) / 10 ** (snr_db / 10) / 2))


def best_lambda(kind, A, phantoms, grid):
    """λ of the grid with the best mean magnitude PSNR over the validation phantoms."""
    scores = []
    for lam in grid:
        vals = []
        for k, z in enumerate(phantoms):
            y = A.simulate(z, snr_sigma(A, z), rng=100 + k)
            vals.append(magnitude_scores(z, sigpy_recon(kind, y, A, lam))[0])
        scores.append(np.mean(vals))
    return grid[int(np.argmax(scores))], max(scores)


def sense_study(table, quick, figure_rows, accelerations=(4, 8)):
    n = 96 if quick else 256
    n_train = 60 if quick else 200
    complex_images = [z * smooth_phase((64, 64), 4000 + k)
                      for k, z in enumerate(random_ellipses(n_train, 64, 1))]
    real_model, s1 = real_prior(quick)
    complex_model, s2 = trained("complex", complex_images, 3, STEPS or (800 if quick else 1500))
    print(f"# priors: real {s1:.0f} s, complex {s2:.0f} s of training", flush=True)
    maps = ops.birdcage_maps((n, n), 8, dtype=np.complex128)
    x = data.shepp_logan((n, n)) * smooth_phase((n, n), 7)
    validation = [brain_phantom((n, n), 9000 + k) * smooth_phase((n, n), 9100 + k)
                  for k in range(1 if quick else 2)]
    sigpy = try_import("sigpy")
    priors = {"complex prior": PatchPrior(complex_model, 3),
              "real prior on Re/Im": PatchPrior(real_model, 3)}
    for acc, centre in ((4, 0.08), (8, 0.04)):
        if acc not in accelerations:
            continue
        A = ops.SENSE(maps, ops.cartesian_mask((n, n), acc, centre, rng=acc))
        sn = snr_sigma(A, x)
        y = A.simulate(x, sn, rng=acc + 10)
        case = f"SENSE {acc}x {n}², 8 coils"
        results = []

        def report(label, est, sec):
            results.append((label, est, sec))
            if est is None:
                table.add(case, label, sec, "", "")
            else:
                p, s = magnitude_scores(x, est)
                table.add(case, label, f"{p:.2f}", f"{s:.3f}", f"{sec:.1f}")
            print(table.rows[-1], flush=True)

        std_map = None                     # posterior std of the complex prior, if sampled
        t0 = time.perf_counter()
        report("zero-filled SENSE (Aᴴy)", A.adjoint(y), time.perf_counter() - t0)
        hqs_steps = 10 if quick else 20
        for name, prior in priors.items():
            t0 = time.perf_counter()
            est = map_estimate(y, A, sn, prior, method="hqs", n_steps=hqs_steps).x
            report(f"fastscore MAP (HQS {hqs_steps}), {name}", est, time.perf_counter() - t0)
            if NO_POSTERIOR:
                continue
            t0 = time.perf_counter()
            # chains started at the MAP (8 HQS steps), default ladder 2σ_n → σ_n/4,
            # 8 levels × 5 steps: the short-run setting chosen on validation images
            # (benchmarks/README.md, posterior follow-up)
            post = posterior_sample(y, A, sn, prior, n_samples=4, init="map",
                                    steps_per_sigma=5, rng=acc)
            report(f"fastscore posterior mean (4 chains, MAP start, 8 × 5), {name}",
                   post.mean, time.perf_counter() - t0)
            if name == "complex prior":
                std_map = post.std
            table.add(case, f"  posterior std, {name}", "mean std",
                      f"{float(np.mean(post.std)):.4f}", "")
            print(table.rows[-1], flush=True)
        if sigpy is not None and BASELINES:
            # a wide grid (a best λ on its edge is reported as such by the table's label)
            grid = np.geomspace(1e-4, 1e-2, 3) if quick else np.geomspace(1e-4, 1.0, 9)
            for kind, label in (("tv", "SENSE-TV (sigpy)"), ("l1w", "L1-wavelet (sigpy)")):
                if REUSE_LAMBDA:
                    lam, edge = VALIDATED_LAMBDA[kind, acc], " (recorded validation λ)"
                else:
                    lam, _ = best_lambda(kind, A, validation, grid)
                    edge = " (grid edge)" if lam in (grid[0], grid[-1]) else ""
                t0 = time.perf_counter()
                est = sigpy_recon(kind, y, A, lam)
                report(f"{label} {SIGPY_ITER} it., λ={lam:.2g}{edge}", est,
                       time.perf_counter() - t0)
        elif BASELINES:
            report("SENSE-TV / L1-wavelet", None, "sigpy not installed")
        figure_rows.append((acc, x, results, std_map))


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def panels_of(x, results, std):
        """truth, every reconstruction, then the posterior std when sampled"""
        def title(label):
            parts = re.sub(r" \([^)]*\)", "", label).replace("fastscore ", "").split(", ")
            return parts[0] + ("\n" + parts[-1] if "prior" in parts[-1] else "")

        out = [("truth", np.abs(x))] + [(title(label), np.abs(est))
                                         for label, est, _ in results if est is not None]
        return out + ([("posterior std", std)] if std is not None else [])

    n_cols = max(len(panels_of(*r[1:])) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.2 * n_cols, 2.4 * len(rows)))
    axes = np.atleast_2d(axes)
    for i, (acc, x, results, std) in enumerate(rows):
        panels = panels_of(x, results, std)
        for ax, (title, img) in zip(axes[i], panels):
            ax.imshow(img, cmap="gray", vmin=0 if title != "posterior std" else None,
                      vmax=1 if title != "posterior std" else None)
            ax.set_title(f"{acc}x: {title}", fontsize=6)
            ax.axis("off")
        for ax in axes[i][len(panels):]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# -- part 3: 3-D -----------------------------------------------------------------------------
def volume_study(table, quick):
    n = 32 if quick else 64
    volumes = [brain_phantom((24, 24, 24), 5000 + k) for k in range(40)]
    model, sec = trained("real3d", volumes, (3, 3, 3), STEPS or 300)
    print(f"# 3-D prior: trained in {sec:.0f} s; peak RSS {peak_rss_mb():.0f} MB", flush=True)
    x = data.shepp_logan((n, n, n)) * smooth_phase((n, n, n), 11)
    A = ops.SENSE(ops.birdcage_maps((n, n, n), 8), ops.cartesian_mask_3d((n, n, n), 4, 0.1,
                                                                         rng=0))
    sn = snr_sigma(A, x.astype(np.complex64))
    y = A.simulate(x.astype(np.complex64), sn, rng=1)
    before = peak_rss_mb()
    t0 = time.perf_counter()
    zf = A.adjoint(y)
    p, s = magnitude_scores(x, zf)
    table.add(f"3-D SENSE 4x {n}³, 8 coils", "zero-filled", f"{p:.2f}", f"{s:.3f}",
              f"{time.perf_counter() - t0:.1f}")
    t0 = time.perf_counter()
    est = map_estimate(y, A, sn, PatchPrior(model, (3, 3, 3)), method="hqs",
                       n_steps=6).x
    p, s = magnitude_scores(x, est)
    table.add(f"3-D SENSE 4x {n}³, 8 coils", "fastscore MAP (HQS), real prior on Re/Im",
              f"{p:.2f}", f"{s:.3f}", f"{time.perf_counter() - t0:.1f}")
    data_mb = (y.nbytes + x.astype(np.complex64).nbytes + A.coil_maps.nbytes) / 2 ** 20
    table.add(f"3-D SENSE 4x {n}³, 8 coils",
              f"peak RSS {peak_rss_mb():.0f} MB (before the reconstruction {before:.0f} MB; "
              f"k-space + image + maps {data_mb:.0f} MB)", "", "", "")
    print(table.rows[-2:], flush=True)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--part", nargs="+", default=["single", "sense", "3d"],
                   choices=["single", "sense", "3d"])
    p.add_argument("--steps", type=int, default=None, help="training steps (smoke runs)")
    p.add_argument("--acc", type=int, nargs="+", default=[4, 8], choices=[4, 8],
                   help="SENSE accelerations")
    p.add_argument("--no-posterior", action="store_true",
                   help="SENSE: MAP and the baselines only (no posterior sampling)")
    p.add_argument("--no-baselines", action="store_true",
                   help="SENSE: without sigpy's TV and L1-wavelet (their λ search is long)")
    p.add_argument("--reuse-lambda", action="store_true",
                   help="SENSE: sigpy's λ as recorded from the validation search (no search)")
    args = p.parse_args()
    global STEPS, SIGPY_ITER, NO_POSTERIOR, BASELINES, REUSE_LAMBDA
    BASELINES = not args.no_baselines
    REUSE_LAMBDA = args.reuse_lambda and not args.quick
    STEPS = args.steps
    NO_POSTERIOR = args.no_posterior
    SIGPY_ITER = 60 if args.quick else SIGPY_ITER
    header("bench_mri", parts=" ".join(args.part))
    table = Table(["case", "method", "PSNR (dB, magnitude)", "SSIM", "s / slice"])
    rows = []
    if "sense" in args.part:
        sense_study(table, args.quick, rows, args.acc)
        if rows:
            figure(rows, os.path.join(HERE, f"mri_{'_'.join(map(str, args.acc))}x.png"))
    if "single" in args.part:
        single_coil(table, args.quick)
    if "3d" in args.part:
        volume_study(table, args.quick)
    print(table.render())


if __name__ == "__main__":
    main()

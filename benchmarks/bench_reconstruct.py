"""Reconstruction with patch score priors: quality against TV/BM3D, and time per iteration.

Part 1 (denoising): PSNR / SSIM / seconds per image of noisy, MAP (gradient ascent and
HQS), posterior mean — with the learned 3×3 prior, the KDE patch prior and the Gaussian
patch prior — against TV with its weight tuned per image for the best PSNR (an optimistic
baseline) and BM3D (when installed), on the toy rectangles (σ = 0.05, 0.1), disks and a
128² Shepp–Logan (σ = 0.05, 0.1, 0.2). The learned models are trained here on their own
phantom family (cached in benchmarks/_cache). For Shepp–Logan, "in distribution" means a
model (and KDE) trained on Shepp–Logan renderings at other resolutions (80, 96, 160, 192
and 256 px), never on the 128² test image itself; its intensity range (0 to 1, soft
tissue 0.1–0.4) is far from the rectangles' (1 to 2), so a rectangle model would be a
distribution-shift test (see bench_shift.py).

Part 2 (inverse problems on the 128² Shepp–Logan): 4× Cartesian MRI and 30-view parallel
CT: zero-filled / FBP, TV-regularised (weight tuned), learned-prior MAP and posterior mean
(preconditioned Langevin, the default of ``posterior_sample``).

Part 3 (speed): one MAP iteration (prior score of a 256² image with the default 3×3 model,
every pixel-centred patch, plus the likelihood gradient): fastscore against a PyTorch
``unfold → MLP → fold`` pipeline (same weights) and a NumPy pipeline, with the sgemm bound
(network FLOPs / measured sgemm peak); thread counts matched.

    python benchmarks/bench_reconstruct.py            # full study (~15 min on 2 cores)
    python benchmarks/bench_reconstruct.py --quick    # small and fast (CI)
"""

import os
import time

import numpy as np

from _timing import Table, header, measure, parser, try_import

import fastscore
from fastscore import data, metrics, operators as ops
from fastscore.nn import PatchScoreModel
from fastscore.prior import GaussianPatchScore, KDEPatchScore, PatchPrior
from fastscore.reconstruct import map_estimate, posterior_sample
from fastscore.train import fit_patch_score
from fastscore.tv import tune_tv_weight

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache")


def trained_model(name, images, steps, seed=0):
    """Train (or load the cached) 3×3 model for a phantom family."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"{name}_{steps}.npz")
    if os.path.exists(path):
        return PatchScoreModel.load(path), 0.0
    t0 = time.perf_counter()
    model = fit_patch_score(images, patch_size=3, n_steps=steps, sigma_range=(0.02, 0.5),
                            rng=seed, dtype=np.float32)
    model.save(path)
    return model, time.perf_counter() - t0


def scores(clean, est):
    return (float(np.mean([metrics.psnr(c, e) for c, e in zip(clean, est)])),
            float(np.mean([metrics.ssim(c, e) for c, e in zip(clean, est)])))


def denoise_methods(model, train_images, quick, large=False):
    """name -> callable(noisy batch, sigma) -> estimates (cheaper posterior and no KDE
    iterations on large images: the exact KDE sum over 200 000 patches per pixel)."""
    rng = np.random.default_rng(0)
    n_kde = 20000 if quick else 200000
    patches = data.extract_patches(train_images, 3, n_kde, rng=1).astype(np.float32)
    kde = PatchPrior(KDEPatchScore(patches), 3)
    gauss = PatchPrior(GaussianPatchScore().fit(patches), 3)
    learned = PatchPrior(model, 3, weight=1 / 9)
    n_post = 4 if quick or large else 16
    steps_post = 5 if quick else (10 if large else 20)

    def ident(y):
        return ops.Identity(y.shape[1:])

    methods = {
        "learned MAP (gradient, 100 it.)": lambda y, s: map_estimate(
            y, ident(y), s, learned, n_steps=30 if quick else 100).x,
        "learned MAP (HQS, 6 it.)": lambda y, s: map_estimate(
            y, ident(y), s, learned, method="hqs", n_steps=6).x,
        "learned posterior mean": lambda y, s: np.stack([posterior_sample(
            yi, ident(y), s, learned, n_samples=n_post, steps_per_sigma=steps_post,
            rng=rng).mean for yi in y]),
        "KDE prior, one Tweedie pass": lambda y, s: kde.denoise(y, s),
        "KDE prior MAP (HQS, 6 it.)": lambda y, s: map_estimate(
            y, ident(y), s, kde, method="hqs", n_steps=6).x,
        "Gaussian prior MAP (HQS, 6 it.)": lambda y, s: map_estimate(
            y, ident(y), s, gauss, method="hqs", n_steps=6).x,
    }
    if large:
        del methods["KDE prior MAP (HQS, 6 it.)"]
    return methods


def denoising_study(table, quick, steps):
    rng = np.random.default_rng(42)
    n_train, n_test = (300, 2) if quick else (4000, 8)
    rect_train = data.rectangles(n_train, rng=0, dtype=np.float32)
    disk_train = data.disks(n_train, rng=1, dtype=np.float32)
    rect_model, t1 = trained_model("rectangles", rect_train, steps)
    disk_model, t2 = trained_model("disks", disk_train, steps)
    family = [data.shepp_logan((n, n)).astype(np.float32) for n in (80, 96, 160, 192, 256)]
    shepp_model, t3 = trained_model("shepp-logan-family", family, steps)
    print(f"# models: {steps} steps each; training seconds (0 = cached): "
          f"{t1:.0f}, {t2:.0f}, {t3:.0f}")
    size = 64 if quick else 128
    shepp = data.shepp_logan((size, size)).astype(np.float32)[None]
    sets = [("rectangles 16²", data.rectangles(n_test, rng=10, dtype=np.float32),
             (0.05, 0.1), rect_model, rect_train),
            ("disks 16²", data.disks(n_test, rng=11, dtype=np.float32), (0.05, 0.1),
             disk_model, disk_train),
            (f"Shepp-Logan {size}²", shepp, (0.05, 0.1, 0.2), shepp_model, family)]
    bm3d = try_import("bm3d")
    for name, clean, sigmas, model, train in sets:
        methods = denoise_methods(model, train, quick, large=clean.shape[-1] > 32)
        for sigma in sigmas:
            noisy = clean + sigma * rng.standard_normal(clean.shape).astype(np.float32)
            p, s = scores(clean, noisy)
            table.add(name, sigma, "noisy", f"{p:.2f}", f"{s:.3f}", "-")
            results = {}
            for label, fn in methods.items():
                t0 = time.perf_counter()
                est = fn(noisy, sigma)
                results[label] = (est, (time.perf_counter() - t0) / len(clean))
            t0 = time.perf_counter()
            tv = np.stack([tune_tv_weight(y, c).estimate for y, c in zip(noisy, clean)])
            results["TV (best weight per image)"] = (tv, (time.perf_counter() - t0) / len(clean))
            if bm3d is not None:
                t0 = time.perf_counter()
                est = np.stack([bm3d.bm3d(y, sigma) for y in noisy])
                results["BM3D"] = (est, (time.perf_counter() - t0) / len(clean))
            for label, (est, sec) in results.items():
                p, s = scores(clean, est)
                table.add(name, sigma, label, f"{p:.2f}", f"{s:.3f}", f"{sec:.3f}")
                print(f"#   {name} sigma={sigma} {label}: {p:.2f} dB", flush=True)
            if bm3d is None:
                table.add(name, sigma, "BM3D", "not installed", "", "")
    return shepp_model


def inverse_study(table, model, quick):
    size = 64 if quick else 128
    x = data.shepp_logan((size, size)).astype(np.float64)
    prior = PatchPrior(model, 3, weight=1 / 9)
    rng = np.random.default_rng(5)
    noise = 0.02
    cases = [("MRI 4x", ops.MRI(ops.cartesian_mask(x.shape, 4, rng=0)), "zero-filled"),
             ("CT 30 views", ops.ParallelBeamCT(x.shape, np.linspace(0, np.pi, 30,
                                                                     endpoint=False)), "FBP")]
    for name, A, simple in cases:
        y = A.simulate(x, noise, rng=rng)
        t0 = time.perf_counter()
        base = A.fbp(y) if simple == "FBP" else A.adjoint(y).real
        rows = [(simple, base, time.perf_counter() - t0)]
        t0 = time.perf_counter()
        tv = tune_tv_weight(y, x, operator=A, n_steps=100 if quick else 300)
        rows.append(("TV (best weight)", tv.estimate, time.perf_counter() - t0))
        t0 = time.perf_counter()
        est = map_estimate(y, A, noise, prior, method="hqs", n_steps=10 if quick else 30,
                           sigma_schedule=(0.2, 0.02), x0=base).x
        rows.append(("learned MAP (HQS)", est, time.perf_counter() - t0))
        t0 = time.perf_counter()
        est = map_estimate(y, A, noise, prior, n_steps=50 if quick else 300,
                           sigma_schedule=(0.2, 0.02), x0=base, momentum=True).x
        rows.append(("learned MAP (gradient, Nesterov)", est, time.perf_counter() - t0))
        t0 = time.perf_counter()
        # preconditioned sampler: one step per level on the MAP ladder (40 prior scores
        # per chain against 120 for the plain Langevin chains it replaced)
        post = posterior_sample(y, A, noise, prior, n_samples=4,
                                sigmas=np.geomspace(0.2, 0.02, 10 if quick else 40),
                                steps_per_sigma=1, x0=base, rng=rng)
        rows.append(("learned posterior mean", post.mean, time.perf_counter() - t0))
        for label, est, sec in rows:
            p, s = scores([x], [est])
            table.add(f"{name} {size}²", noise, label, f"{p:.2f}", f"{s:.3f}", f"{sec:.2f}")


def sgemm_peak(threads):
    from scipy.linalg.blas import sgemm

    # Fortran-ordered operands and output: otherwise scipy copies them on every call and
    # the "peak" would include two 16 MB transposes
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((2048, 2048)),
                          dtype=np.float32)
    c = np.zeros((2048, 2048), dtype=np.float32, order="F")
    with _blas_threads(threads):
        _, best = measure(lambda: sgemm(1.0, a, a, c=c, overwrite_c=True), repeat=5)
    return 2 * 2048 ** 3 / best / 1e9


class _blas_threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        tp = try_import("threadpoolctl")
        self.ctx = tp.threadpool_limits(self.n) if tp else None
        return self

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.unregister()


def torch_pipeline(torch, model, x, sigma):
    """prior score through unfold -> the same MLP -> fold, in torch."""
    net = model.net
    layers = []
    acts = {"leaky_relu": torch.nn.LeakyReLU(net.negative_slope), "tanh": torch.nn.Tanh(),
            "relu": torch.nn.ReLU(), "silu": torch.nn.SiLU(), "identity": torch.nn.Identity(),
            "gelu": torch.nn.GELU(approximate="tanh")}
    for (wsl, shape, bsl), act in zip(net.param_layout(), net.activations):
        lin = torch.nn.Linear(*shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(net.params[wsl].reshape(shape).T.copy()))
            lin.bias.copy_(torch.from_numpy(net.params[bsl].copy()))
        layers += [lin, acts[act]]
    mlp = torch.nn.Sequential(*layers).eval()
    mean, std = float(np.mean(model.model.mean)), float(model.model.std)
    H, W = x.shape
    xt = torch.from_numpy(x)[None, None]
    ones = torch.ones_like(xt)
    counts = torch.nn.functional.fold(torch.nn.functional.unfold(ones, 3, padding=1),
                                      (H, W), 3, padding=1)

    def score():
        with torch.no_grad():
            # zero padding here (torch has no reflect unfold); same arithmetic otherwise
            P = torch.nn.functional.unfold(xt, 3, padding=1)[0].T          # (HW, 9)
            out = torch.cat([mlp((P[i:i + 4096] - mean) / std)
                             for i in range(0, P.shape[0], 4096)]) / sigma
            return torch.nn.functional.fold(out.T[None], (H, W), 3, padding=1) / counts
    return score


def numpy_pipeline(model, x, sigma):
    net = model.net
    weights = [(net.params[w].reshape(s), net.params[b]) for w, s, b in net.param_layout()]
    mean, std = float(np.mean(model.model.mean)), float(model.model.std)
    H, W = x.shape
    xp = np.pad(x, 1)
    counts = np.zeros((H + 2, W + 2), np.float32)
    for a in range(3):
        for b in range(3):
            counts[a:a + H, b:b + W] += 1

    def act(name, z):
        if name == "leaky_relu":
            return np.where(z > 0, z, z * net.negative_slope)
        if name == "tanh":
            return np.tanh(z)
        return z

    def score():
        P = np.lib.stride_tricks.sliding_window_view(xp, (3, 3)).reshape(-1, 9)
        out = np.empty_like(P)
        for i in range(0, P.shape[0], 4096):
            h = (P[i:i + 4096] - mean) / std
            for (Wl, bl), name in zip(weights, net.activations):
                h = act(name, h @ Wl + bl)
            out[i:i + 4096] = h / sigma
        img = np.zeros((H + 2, W + 2), np.float32)
        out = out.reshape(H, W, 3, 3)
        for a in range(3):
            for b in range(3):
                img[a:a + H, b:b + W] += out[:, :, a, b]
        return (img / counts)[1:-1, 1:-1]
    return score


def speed_study(model, threads, quick):
    torch = try_import("torch")
    size = 128 if quick else 256
    x = data.shepp_logan((size, size)).astype(np.float32)
    y = x + 0.05 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    A = ops.Identity(x.shape)
    flops = 2 * model.net.n_params * size * size      # ≈ 2 · (weights) per patch
    table = Table(["threads", "pipeline", "ms / iteration", "GFLOP/s", "time / fastscore"])
    for t in threads:
        fastscore.set_num_threads(t)
        peak = sgemm_peak(t)
        prior = PatchPrior(model, 3, padding="zero")
        from fastscore.operators import GaussianLikelihood
        lik = GaussianLikelihood(A, y, 0.05)
        ours = lambda: lik.score(x) + prior.score(x, 0.05)
        rows = [("fastscore (PatchPrior + likelihood)", ours)]
        if torch is not None:
            torch.set_num_threads(t)
            rows.append(("PyTorch unfold -> MLP -> fold", torch_pipeline(torch, model, x, 0.05)))
        with _blas_threads(t):
            rows.append(("NumPy sliding window -> matmul -> slice adds",
                         numpy_pipeline(model, x, np.float32(0.05))))
            times = {name: measure(fn, repeat=3 if quick else 7)[0] for name, fn in rows}
        base = times[rows[0][0]]
        table.add(t, f"sgemm bound ({peak:.0f} GFLOP/s 2048² sgemm)",
                  f"{flops / peak / 1e6:.1f}", f"{peak:.0f}", f"{flops / peak / 1e9 / base:.2f}")
        for name, sec in times.items():
            table.add(t, name, f"{sec * 1e3:.1f}", f"{flops / sec / 1e9:.0f}", f"{sec / base:.2f}")
        if torch is None:
            table.add(t, "PyTorch", "not installed", "", "")
    # the pipelines compute the same function (zero padding, mean over covering patches)
    if torch is not None:
        a = PatchPrior(model, 3, padding="zero").score(x, 0.05)
        b = torch_pipeline(torch, model, x, 0.05)()[0, 0].numpy()
        print(f"# fastscore vs torch pipeline: max |difference| {np.abs(a - b).max():.2e} "
              f"(score scale {np.abs(a).max():.2e})")
    print(f"# network: {model.net.n_params} weights, {flops / 1e9:.1f} GFLOP per iteration "
          f"at {size}²")
    return table


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8000, help="training steps per model")
    p.add_argument("--skip-quality", action="store_true", help="only the speed table")
    args = p.parse_args()
    steps = 200 if args.quick else args.steps
    from fastscore.nn import MLP

    print(header("reconstruction with patch priors", threads=args.threads,
                 mlp_layer_products=MLP((9, 9))._products(),
                 torch=getattr(try_import("torch"), "__version__", "not installed"),
                 bm3d=getattr(try_import("bm3d"), "__version__", "not installed")))
    if not args.skip_quality:
        fastscore.set_num_threads(max(args.threads))
        table = Table(["images", "sigma", "method", "PSNR dB", "SSIM", "s / image"])
        both = denoising_study(table, args.quick, steps)
        inverse_study(table, both, args.quick)
        print(table.render())
    else:
        both, _ = trained_model("shepp-logan-family", [
            data.shepp_logan((n, n)).astype(np.float32) for n in (80, 96, 160, 192, 256)],
            steps)
    print(speed_study(both, args.threads, args.quick).render())


if __name__ == "__main__":
    main()

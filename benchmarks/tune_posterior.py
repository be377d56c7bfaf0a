"""Choosing the default posterior sampler's settings on validation images (not the
benchmark's test images): a 76² Shepp–Logan rendering cropped to 64² and transposed, and
noise seeds ≠ those of bench_posterior.py. Prints PSNR of the posterior mean against the
MAP estimate (HQS 30) for sampler variants given on the command line.

    python benchmarks/tune_posterior.py --case ct --variants default map4x10 8x40/e1

A variant ``<name>/e<ε>`` runs it with the step size ε. ``--weight`` sets the patch prior's
weight (default 1/9) and ``--train-steps`` the Shepp–Logan-family model's Adam steps
(default 1500; cached in benchmarks/_cache), e.g.

    python benchmarks/tune_posterior.py --case ct --train-steps 20000 --weight 0.5
"""

import argparse
import time

import numpy as np
from bench_posterior import shepp_family, trained_model

import fastscore
from fastscore import data, metrics
from fastscore import operators as ops
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate, posterior_sample


def validation_image():
    big = data.shepp_logan((76, 76)).astype(np.float32)
    return np.ascontiguousarray(big[6:70, 6:70].T)


def problem(case, x, seed):
    """(A, y, σ_n, start) of `case`: ``ct`` (30 views), ``mri4`` (4× Cartesian, σ_n 0.02,
    zero-filled start) or ``den<σ>``."""
    if case == "ct":
        A = ops.ParallelBeamCT(x.shape, np.linspace(0, np.pi, 30, endpoint=False))
        noise = 0.02
    elif case == "mri4":
        A, noise = ops.MRI(ops.cartesian_mask(x.shape, 4, rng=seed)), 0.02
        y = A.simulate(x, noise, rng=seed).astype(np.complex64)
        return A, y, noise, A.adjoint(y).real.astype(np.float32)
    else:
        A, noise = ops.Identity(x.shape), float(case[3:])
    y = A.simulate(x, noise, rng=seed).astype(np.float32)
    return A, y, noise, (A.fbp(y) if hasattr(A, "fbp") else y)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", default="ct")           # ct, mri4, den0.1, den0.2
    p.add_argument("--variants", nargs="+", default=["default"])
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--weight", type=float, default=1 / 9, help="the patch prior's weight")
    p.add_argument("--train-steps", type=int, default=1500, help="the model's Adam steps")
    p.add_argument("--patch", type=int, default=3, help="the Shepp–Logan-family model's "
                                                        "patch size")
    p.add_argument("--end", type=float, help="the ladder's last σ (default: the sampler's, "
                                             "max(σ_n/4, the model's σ_min))")
    p.add_argument("--prior", help="a shipped prior's name instead of the Shepp–Logan-family "
                                   "model (one level, its patch stride, fixed grid)")
    args = p.parse_args()
    fastscore.set_num_threads(2)
    if args.prior:
        from fastscore import pretrained

        model = pretrained.load(args.prior)
        prior = PatchPrior(model, model.patch_size, weight=args.weight,
                           **pretrained.PRIOR_OPTIONS[args.prior])
    else:
        model = trained_model("shepp-logan-family", shepp_family(), args.train_steps,
                              args.patch)
        prior = PatchPrior(model, args.patch, weight=args.weight)
    x = validation_image()
    A, y, noise, base = problem(args.case, x, args.seed)
    if args.end and not isinstance(A, ops.Identity):
        p.error("--end is for the denoising cases (their ladder starts at 2σ_n)")
    top = max(0.2, 2 * noise)
    est = map_estimate(y, A, noise, prior, method="hqs", n_steps=30,
                       sigma_schedule=(top, max(noise / 4, 0.02)), x0=base).x
    p_map = metrics.psnr(x, est)
    print(f"# {args.case}: MAP {p_map:.2f} dB", flush=True)
    for variant in args.variants:
        v, _, eps = variant.partition("/e")      # <variant>/e<ε>: the step size ε
        kw = {"step_size": float(eps)} if eps else {}
        if v.startswith(("map", "start")):   # map|start<L>x<steps>[@top]: MAP or y/FBP
            spec, _, hi = v[3 if v.startswith("map") else 5:].partition("@")
            levels, steps = map(int, spec.split("x"))
            hi = float(hi) if hi else 2 * noise
            kw |= dict(x0=est if v.startswith("map") else base,
                      sigmas=np.geomspace(hi, max(noise / 4, 0.02), levels),
                      steps_per_sigma=steps)
        elif v.startswith("init"):                 # init<...>: the library's init="map"
            kw |= dict(options={}, init="map")
        elif v != "default":
            levels, steps = map(int, v.split("x"))
            kw |= dict(x0=base, steps_per_sigma=steps)
        else:
            kw |= dict(x0=base)
        if args.end and "sigmas" not in kw:        # the default ladder's top, another end
            kw["sigmas"] = np.geomspace(2 * noise, args.end, 8)
        t0 = time.perf_counter()
        out = posterior_sample(y, A, noise, prior, n_samples=args.chains, rng=7, **kw)
        cov = float(np.mean(np.abs(out.mean - x) <= 1.6448536 * out.std))
        print(f"{args.case} {variant}: mean {metrics.psnr(x, out.mean):.2f} dB "
              f"({metrics.psnr(x, out.mean) - p_map:+.2f} vs MAP), coverage {cov:.3f}, "
              f"{out.n_score_evals} evals, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""The ``fastscore`` command: demo, train, denoise, reconstruct, sample, info, bench.

Only this module prints. A user mistake (missing file, unreadable image, model for another
patch size, wrong operator parameters) ends in one line on stderr and exit code 2, never a
traceback; Ctrl-C during training leaves a resumable checkpoint.
"""

import argparse
import os
import sys
import time

import numpy as np

from ._validation import check_scalar

__all__ = ["main"]


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2."""


# --------------------------------------------------------------------------- helpers
def _say(*parts):
    print(*parts, flush=True)


def _new_folder(base):
    """`base`, or `base-2`, `base-3`, … : never an existing folder."""
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    os.makedirs(path)
    return path


def _threads(args):
    import fastscore

    if getattr(args, "threads", None) is not None:
        from ._threads import check_threads

        fastscore.set_num_threads(check_threads(args.threads, "--threads"))


def _load_model(path):
    from .io import ModelFileError
    from .nn import PatchScoreModel

    if not os.path.exists(path):
        raise UsageError(f"model file not found: {path}")
    try:
        return PatchScoreModel.load(path)
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None


def _read_image(path, what="image"):
    from .io import load_image

    if not os.path.exists(path):
        raise UsageError(f"{what} file not found: {path}")
    try:
        return load_image(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None


def _write_image(path, array):
    from .io import save_image

    save_image(path, array)
    return path


def _prior(model, args, intensity=None):
    """The patch prior of the command line: the model's stored options unless overridden."""
    from .prior import PatchPrior

    if getattr(args, "symmetrize", False):
        model = model.with_invariances(symmetrize=True)
    return PatchPrior(model, model.patch_size, weight=args.weight,
                      tiling=getattr(args, "tiling", "overlap"), rng=args.seed,
                      intensity=intensity)


def _denoising_intensity(model, choice):
    """--intensity of denoise: "auto" is "affine" when the model stores training statistics."""
    if choice == "auto":
        return "affine" if model.intensity_reference is not None else "none"
    if choice != "none" and model.intensity_reference is None:
        raise UsageError(f"--intensity {choice} needs a model trained on images (it stores "
                         "their intensity statistics); this one has none")
    return choice


def _check_patch_dims(model, image):
    k = len(model.patch_size)
    if image.ndim not in (k, k + 1):
        raise UsageError(f"the model scores {k}-D patches {model.patch_size} but the image "
                         f"has shape {image.shape}")
    if any(p > n for p, n in zip(model.patch_size, image.shape[-k:])):
        raise UsageError(f"the image {image.shape} is smaller than the model's patch size "
                         f"{model.patch_size}")


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --------------------------------------------------------------------------- demo
def _cmd_demo(args):
    from . import data, metrics, plot as _plot_module  # noqa: F401  (plot imported lazily)
    from .operators import Identity
    from .reconstruct import map_estimate, posterior_sample
    from .train import fit_patch_score
    from .tv import tune_tv_weight

    _threads(args)
    quick = args.quick
    rng = np.random.default_rng(args.seed)
    out = _new_folder(args.out or "fastscore-demo")
    noise = 0.1
    n_train, n_test = (300, 2) if quick else (4000, 8)
    steps = 300 if quick else 8000
    _say(f"fastscore demo: toy rectangles (16x16), noise sigma = {noise}, results in {out}/")
    train = data.rectangles(n_train, rng=rng, dtype=np.float32)
    test = data.rectangles(n_test, rng=rng, dtype=np.float32)
    noisy = test + noise * rng.standard_normal(test.shape).astype(np.float32)

    _say(f"training a 3x3 patch score network ({steps} steps, batch 512) ...")
    t0 = time.perf_counter()
    model = fit_patch_score(train, patch_size=3, n_steps=steps, batch_size=512,
                            sigmas=(0.02, 0.5), rng=rng, progress=not args.no_progress)
    t_train = time.perf_counter() - t0
    hist = model.history
    marks = [hist["loss"][int(f * (len(hist["loss"]) - 1))] for f in (0, 0.25, 0.5, 1.0)]
    val = f", validation {hist['val_loss'][0]:.3f} -> {hist['val_loss'][-1]:.3f}" \
        if hist["val_loss"] else ""
    _say(f"trained in {t_train:.1f} s: loss {' -> '.join(f'{m:.3f}' for m in marks)}{val}")
    model_path = model.save(os.path.join(out, "model.npz"))

    prior = _prior(model, args)
    A = Identity(test.shape[1:])
    results = {}
    t0 = time.perf_counter()
    map_x = map_estimate(noisy, A, noise, prior, n_steps=60 if quick else 100, rng=rng).x
    results["MAP"] = (map_x, time.perf_counter() - t0)
    t0 = time.perf_counter()
    hqs_x = map_estimate(noisy, A, noise, prior, method="hqs", n_steps=6, rng=rng).x
    results["MAP (HQS, 6 it.)"] = (hqs_x, time.perf_counter() - t0)
    t0 = time.perf_counter()
    post = [posterior_sample(y, A, noise, prior, n_samples=8 if quick else 16,
                             steps_per_sigma=10 if quick else 20, rng=rng) for y in noisy]
    results["posterior mean"] = (np.stack([p.mean for p in post]), time.perf_counter() - t0)
    std = np.stack([p.std for p in post])
    t0 = time.perf_counter()
    tv = [tune_tv_weight(y, c) for y, c in zip(noisy, test)]
    results["TV (best weight)"] = (np.stack([t.estimate for t in tv]), time.perf_counter() - t0)

    def scores(est):
        return (np.mean([metrics.psnr(c, e) for c, e in zip(test, est)]),
                np.mean([metrics.ssim(c, e) for c, e in zip(test, est)]))

    rows = [["noisy", *(f"{v:.2f}" if i == 0 else f"{v:.3f}" for i, v in
                        enumerate(scores(noisy))), "-"]]
    for name, (est, sec) in results.items():
        p, s = scores(est)
        rows.append([name, f"{p:.2f}", f"{s:.3f}", f"{sec / n_test:.3f}"])
    _say("")
    _say(_table(rows, ["method", "PSNR (dB)", "SSIM", "seconds / image"]))
    _say("")

    shown = {"noisy": noisy[0], "MAP": results["MAP"][0][0],
             "posterior mean": results["posterior mean"][0][0],
             "TV (best weight)": results["TV (best weight)"][0][0]}
    try:
        from . import plot
        figure = plot.reconstruction_figure(test[0], shown, std[0],
                                            path=os.path.join(out, "demo.png"))
        plot.training_curves(hist, path=os.path.join(out, "training.png"))
        _say(f"figure: {figure}")
    except ImportError:
        for name, im in [("clean", test[0])] + list(shown.items()) + [("posterior std", std[0])]:
            np.save(os.path.join(out, name.split(" (")[0].replace(" ", "_") + ".npy"), im)
        _say("matplotlib is not installed: wrote .npy files instead of a figure "
             "(pip install 'fastscore[plot]' for the figure)")
    _say(f"model: {model_path} (use it with: fastscore denoise NOISY --model {model_path} "
         f"--sigma {noise} --out OUT)")
    return 0


# --------------------------------------------------------------------------- train
def _training_images(args):
    from . import data

    if args.phantom:
        if args.images:
            raise UsageError("give image files or --phantom, not both")
        make = {"rectangles": data.rectangles, "disks": data.disks}[args.phantom]
        return make(args.n_images, size=args.size, rng=args.seed, dtype=np.float32)
    if not args.images:
        raise UsageError("give training images (files or folders) or --phantom")
    files = []
    for path in args.images:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if not f.startswith("."))
        else:
            files.append(path)
    images = []
    for f in files:
        arr = _read_image(f)
        images += list(arr) if arr.ndim == 3 and args.stack else [arr]
    if not images:
        raise UsageError("no images found in " + ", ".join(args.images))
    return [im.astype(np.float32) for im in images]


def _cmd_train(args):
    from .train import fit_patch_score

    _threads(args)
    images = _training_images(args)
    if os.path.exists(args.out) and not args.overwrite:
        raise UsageError(f"{args.out} exists (use --overwrite to replace it)")
    checkpoint = args.checkpoint or (args.out + ".checkpoint.npz")
    try:
        patch = args.patch_size[0] if len(args.patch_size) == 1 else tuple(args.patch_size)
        model = fit_patch_score(images, patch_size=patch, n_steps=args.steps,
                                batch_size=args.batch_size, lr=args.lr,
                                sigmas=(args.sigma_min, args.sigma_max), rng=args.seed,
                                augment=not args.no_augment,
                                scale_augment=args.scale_augment, dc=args.dc,
                                contrast=args.contrast, intensity=args.intensity,
                                checkpoint=checkpoint,
                                checkpoint_every=args.checkpoint_every, resume=args.resume,
                                progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"fastscore train: interrupted; resume with the same command plus --resume "
              f"(checkpoint {checkpoint})", file=sys.stderr)
        return 130
    model.save(args.out)
    h = model.history
    _say(f"trained {len(h['loss'])} steps in {h['time'][-1]:.1f} s; final loss "
         f"{h['loss'][-1]:.4f}" + (f", validation {h['val_loss'][-1]:.4f}" if h["val_loss"]
                                   else "") + f"; model written to {args.out}")
    return 0


# --------------------------------------------------------------------------- denoise
def _cmd_denoise(args):
    from .operators import Identity
    from .reconstruct import map_estimate, posterior_sample

    _threads(args)
    model = _load_model(args.model)
    y = _read_image(args.noisy, "noisy image").astype(model.net.dtype)
    _check_patch_dims(model, y)
    prior = _prior(model, args, _denoising_intensity(model, args.intensity))
    if prior.intensity is not None:       # (k, b) from the noisy image, fixed throughout
        prior.calibrate(y, check_scalar(args.sigma, "noise_sigma", low=0,
                                        low_inclusive=False))
    A = Identity(y.shape if y.ndim == len(model.patch_size) else y.shape[1:])
    t0 = time.perf_counter()
    if args.method == "posterior":
        post = posterior_sample(y, A, args.sigma, prior, n_samples=args.samples, rng=args.seed,
                                progress=not args.no_progress)
        _write_image(args.out, post.mean)
        std_path = _sibling(args.out, "_std")
        _write_image(std_path, post.std)
        _say(f"posterior mean of {args.samples} samples -> {args.out}; std -> {std_path} "
             f"({time.perf_counter() - t0:.1f} s)")
    else:
        x = map_estimate(y, A, args.sigma, prior, method="hqs" if args.method == "hqs"
                         else "gradient", n_steps=args.steps, rng=args.seed,
                         progress=not args.no_progress).x
        _write_image(args.out, x)
        _say(f"{args.method} estimate -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _sibling(path, suffix):
    root, ext = os.path.splitext(path)
    return f"{root}{suffix}{ext}"


# --------------------------------------------------------------------------- reconstruct
def _operator(args, image_shape):
    from . import operators as ops

    name = args.operator
    if name == "mri":
        if args.mask:
            mask = _read_image(args.mask, "mask") > 0
            if mask.shape != image_shape:
                raise UsageError(f"the mask has shape {mask.shape}; the image is {image_shape}")
        else:
            mask = ops.cartesian_mask(image_shape, args.acceleration, rng=args.seed)
        return ops.MRI(mask)
    if name == "ct":
        angles = np.linspace(0, np.pi, args.angles, endpoint=False)
        return ops.ParallelBeamCT(image_shape, angles)
    if name == "blur":
        kernel = (_read_image(args.kernel, "kernel") if args.kernel
                  else ops.gaussian_kernel(args.blur_sigma))
        return ops.Blur(kernel, image_shape)
    if name == "inpaint":
        if not args.mask:
            raise UsageError("--operator inpaint needs --mask FILE (nonzero = observed)")
        return ops.Mask(_read_image(args.mask, "mask") > 0)
    if name == "superres":
        return ops.Downsample(image_shape, args.factor)
    raise UsageError(f"unknown operator {name}")


def _cmd_reconstruct(args):
    from .reconstruct import map_estimate, posterior_sample

    _threads(args)
    model = _load_model(args.model)
    y = _read_image(args.data, "measurement")
    if args.operator == "superres":
        image_shape = tuple(n * args.factor for n in y.shape)
    elif args.operator == "ct":
        if args.image_shape is None:
            raise UsageError("--operator ct needs --image-shape H W")
        image_shape = tuple(args.image_shape)
    else:
        image_shape = tuple(args.image_shape) if args.image_shape else y.shape
    if args.operator != "mri":
        y = y.astype(model.net.dtype)
    elif not np.iscomplexobj(y):
        raise UsageError("--operator mri needs complex k-space data (.npy or .npz)")
    _check_patch_dims(model, np.empty(image_shape))
    try:
        A = _operator(args, image_shape)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"operator parameters: {exc}") from None
    prior = _prior(model, args, intensity="none")   # no reliable (k, b) from y
    t0 = time.perf_counter()
    if args.samples:
        post = posterior_sample(y, A, args.noise_sigma, prior, n_samples=args.samples,
                                rng=args.seed, progress=not args.no_progress)
        _write_image(args.out, post.mean)
        _write_image(_sibling(args.out, "_std"), post.std)
    else:
        x = map_estimate(y, A, args.noise_sigma, prior, method=args.method,
                         n_steps=args.steps, rng=args.seed, progress=not args.no_progress).x
        _write_image(args.out, x)
    _say(f"{args.operator} reconstruction -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


# --------------------------------------------------------------------------- sample
def _cmd_sample(args):
    from .sampling import annealed_langevin

    _threads(args)
    model = _load_model(args.model)
    shape = tuple(args.shape)
    _check_patch_dims(model, np.empty(shape))
    prior = _prior(model, args, intensity="none")     # no image to normalise
    rng = np.random.default_rng(args.seed)
    sigmas = np.geomspace(model.sigma_max, model.sigma_min, args.levels)
    mean = float(np.mean(model.model.mean))
    x0 = (mean + sigmas[0] * rng.standard_normal((args.n,) + shape)).astype(model.net.dtype)
    result = annealed_langevin(lambda x, s: prior.score(x, s, rng=rng), sigmas,
                               args.steps_per_level, args.eps, x0, rng=rng)
    samples = getattr(result, "samples", result)
    os.makedirs(args.out, exist_ok=True)
    for k, im in enumerate(samples):
        _write_image(os.path.join(args.out, f"sample_{k:03d}.npy"), im)
    _say(f"{args.n} samples of shape {shape} -> {args.out}/")
    return 0


# --------------------------------------------------------------------------- info, bench
def _cmd_info(args):
    model = _load_model(args.model)
    config = model.get_config()
    net = config["model"]["net"]
    rows = [("patch size", "x".join(map(str, model.patch_size))),
            ("architecture", " -> ".join(map(str, net["widths"]))),
            ("activations", ", ".join(net["activations"])),
            ("parameters", f"{model.net.n_params} ({net['dtype']})"),
            ("noise conditioning", config["model"].get("conditioning")),
            ("noise range", f"sigma in [{model.sigma_min:g}, {model.sigma_max:g}]")]
    inv = model.invariances
    rows.append(("invariances", ", ".join(
        [k for k in ("dc", "contrast", "symmetrize") if inv[k]]
        + [f"intensity {inv['intensity']}"])))
    ref = model.intensity_reference
    if ref is not None:
        rows.append(("training intensities", f"{ref.percentile:g}-{100 - ref.percentile:g}% "
                     f"range [{ref.low[0]:.4g}, {ref.high[0]:.4g}]"))
    training = model.training or {}
    for key in ("n_steps", "batch_size", "lr", "augment", "scale_augment", "final_loss",
                "final_val_loss", "seconds", "data"):
        if training.get(key) is not None:
            value = training[key]
            rows.append((f"training {key.replace('_', ' ')}",
                         f"{value:.4g}" if isinstance(value, float) else value))
    from . import __version__
    rows.append(("fastscore version", __version__))
    for key, value in rows:
        _say(f"{key:24s} {value}")
    return 0


def _cmd_bench(args):
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [os.path.join(os.getcwd(), "benchmarks"), os.path.join(here, "benchmarks")]
    folder = next((c for c in candidates if os.path.isfile(os.path.join(c, "_timing.py"))),
                  None)
    if folder is None:
        raise UsageError("the benchmark scripts live in the source tree (benchmarks/); run "
                         "this command from a clone of the repository")
    status = 0
    for script in sorted(f for f in os.listdir(folder) if f.startswith("bench_")):
        if args.only and args.only not in script:
            continue
        _say(f"== {script} --quick")
        status |= subprocess.call([sys.executable, os.path.join(folder, script), "--quick"],
                                  cwd=folder)
    return status


# --------------------------------------------------------------------------- parser
def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastscore", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score-based patch priors for imaging on ordinary CPUs.",
        epilog="example: fastscore demo   (then: fastscore COMMAND --help)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_, example):
        p = sub.add_parser(name, help=help_, description=help_.capitalize() + ".",
                           epilog=f"example: {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument("--threads", type=int, default=None,
                       help="kernel and BLAS threads (default: FASTSCORE_NUM_THREADS or all)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        return p

    def prior_options(p):
        p.add_argument("--weight", default="mean",
                       help="prior weight: mean (default), sum, or a number beta")
        p.add_argument("--tiling", choices=["overlap", "random_shift"], default="overlap")
        p.add_argument("--symmetrize", action="store_true",
                       help="average the patch score over rotations/flips (8x the work)")

    p = command("demo", "train on built-in phantoms, then denoise with MAP and posterior "
                "sampling", "fastscore demo --quick")
    p.add_argument("--out", help="output folder (default: a new fastscore-demo folder)")
    p.add_argument("--quick", action="store_true", help="a small run (about 30 s)")
    p.set_defaults(func=_cmd_demo, weight=1 / 9, tiling="overlap")   # beta = 1/n

    p = command("train", "train a patch score model on images",
                "fastscore train --phantom rectangles --steps 2000 --out model.npz")
    p.add_argument("images", nargs="*", help=".npy/.npz/PNG/TIFF/NIfTI files or folders")
    p.add_argument("--phantom", choices=["rectangles", "disks"], help="built-in phantoms")
    p.add_argument("--n-images", type=int, default=2000, help="phantoms to generate")
    p.add_argument("--size", type=int, default=16, help="phantom size")
    p.add_argument("--stack", action="store_true", help="treat 3-D files as stacks of 2-D images")
    p.add_argument("--patch-size", type=int, nargs="+", default=[3])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sigma-min", type=float, default=0.02)
    p.add_argument("--sigma-max", type=float, default=1.0)
    p.add_argument("--no-augment", action="store_true", help="no flips/rotations")
    p.add_argument("--scale-augment", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="random intensity factors in [LOW, HIGH] (log-uniform)")
    p.add_argument("--dc", action="store_true", help="train an exactly DC-invariant score")
    p.add_argument("--contrast", action="store_true",
                   help="train a contrast-normalised score (implies --dc)")
    p.add_argument("--intensity", choices=["none", "scale", "affine"], default="none",
                   help="image intensity normalisation stored with the model")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--checkpoint", help="checkpoint file (default OUT.checkpoint.npz)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.set_defaults(func=_cmd_train)

    p = command("denoise", "denoise an image with a trained model",
                "fastscore denoise noisy.npy --model model.npz --sigma 0.1 --out clean.npy")
    p.add_argument("noisy")
    p.add_argument("--model", required=True)
    p.add_argument("--sigma", type=float, required=True, help="noise standard deviation")
    p.add_argument("--out", required=True)
    p.add_argument("--method", choices=["map", "hqs", "posterior"], default="map")
    p.add_argument("--samples", type=int, default=16, help="posterior samples")
    p.add_argument("--steps", type=int, default=100, help="MAP iterations")
    p.add_argument("--intensity", choices=["auto", "none", "scale", "affine"], default="auto",
                   help="map the image to the training intensities, calibrated from it "
                   "(auto: affine when the model stores training statistics)")
    prior_options(p)
    p.set_defaults(func=_cmd_denoise)

    p = command("reconstruct", "solve an inverse problem (MRI, CT, deblurring, inpainting, "
                "super-resolution)", "fastscore reconstruct --operator mri --data kspace.npy "
                "--acceleration 4 --noise-sigma 0.05 --model model.npz --out x.npy")
    p.add_argument("--operator", required=True,
                   choices=["mri", "ct", "blur", "inpaint", "superres"])
    p.add_argument("--data", required=True, help="measurements")
    p.add_argument("--model", required=True)
    p.add_argument("--noise-sigma", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--image-shape", type=int, nargs="+", help="image shape (CT; else from data)")
    p.add_argument("--mask", help="sampling mask (MRI) or observed-pixel mask (inpaint)")
    p.add_argument("--acceleration", type=float, default=4.0, help="MRI acceleration")
    p.add_argument("--angles", type=int, default=30, help="CT views over 180 degrees")
    p.add_argument("--kernel", help="blur kernel file")
    p.add_argument("--blur-sigma", type=float, default=1.5, help="Gaussian blur width")
    p.add_argument("--factor", type=int, default=2, help="super-resolution factor")
    p.add_argument("--method", choices=["gradient", "hqs"], default="gradient")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--samples", type=int, default=0,
                   help="posterior samples (mean and std written) instead of MAP")
    prior_options(p)
    p.set_defaults(func=_cmd_reconstruct)

    p = command("sample", "draw images from the prior alone (annealed Langevin)",
                "fastscore sample --model model.npz --shape 64 64 --n 4 --out samples")
    p.add_argument("--model", required=True)
    p.add_argument("--shape", type=int, nargs="+", required=True)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--levels", type=int, default=10, help="noise levels")
    p.add_argument("--steps-per-level", type=int, default=30)
    p.add_argument("--eps", type=float, default=2e-5, help="Langevin step scale")
    prior_options(p)
    p.set_defaults(func=_cmd_sample)

    p = command("info", "describe a model file", "fastscore info model.npz")
    p.add_argument("model")
    p.set_defaults(func=_cmd_info)

    p = command("bench", "run the short versions of the benchmarks",
                "fastscore bench --only patches")
    p.add_argument("--only", help="run the scripts whose name contains this")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if hasattr(args, "weight") and args.weight not in ("mean", "sum"):
        try:
            args.weight = float(args.weight)
        except ValueError:
            print(f"fastscore {args.command}: error: --weight must be mean, sum or a number; "
                  f"got {args.weight!r}", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"fastscore {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastscore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

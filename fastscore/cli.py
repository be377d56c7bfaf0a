"""The ``fastscore`` command: demo, train, denoise, reconstruct, sample, info, bench.

Only this module and its ``_cli_*`` helpers (one per command group, ``_cli_support`` for
what they share) print. Exit codes: 0 success; 2 a user mistake (a missing or unreadable
file, a model for another patch size, an option out of range, an output that exists),
reported in one line; 1 an internal error, reported in one line with "run with --debug for
the traceback"; 130 on Ctrl-C (training leaves a resumable checkpoint). How the two kinds
of errors are told apart: see ``_cli_support``.
"""

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

from ._cli_models import (
    DEFAULT_MODEL,
    describe_model,
    fused_prior,
    info_pretrained,
    map_options,
    model_dtype,
    noise_level,
)
from ._cli_models import load_model as _load_model
from ._cli_models import make_prior as _prior
from ._cli_parser import build_parser as _build_parser
from ._cli_operators import build_operator, image_shape_of
from ._cli_scanner import nifti_geometry, reconstruct_sense
from ._cli_train import train_command as _cmd_train
from ._cli_support import (
    WRITABLE_SUFFIXES,
    Console,
    UsageError,
    as_real,
    check_noise_level,
    check_outputs,
    check_size,
    checking,
    new_folder,
    one_line,
    read_image,
    sibling,
    suffix_of,
    table,
    write_result,
    writing,
)
from ._cli_support import show_settings as _settings
from ._cli_support import use_threads as _threads
from ._version import __version__

__all__ = ["build_parser", "main"]


# --------------------------------------------------------------------------- helpers
def _denoising_intensity(model, choice):
    """--intensity of denoise: "auto" is "affine" when the model stores training statistics."""
    reference = getattr(model, "intensity_reference", None)
    if choice == "auto":
        return "affine" if reference is not None else "none"
    if choice != "none" and reference is None:
        raise UsageError(f"--intensity {choice} needs a model trained on images (it stores "
                         "their intensity statistics); this one has none")
    return choice


def _check_patch_dims(model, shape, what="image"):
    """The image shape against the model's patch shape (shapes only: nothing allocated)."""
    k, shape = len(model.patch_size), tuple(shape)
    if len(shape) not in (k, k + 1):
        raise UsageError(f"the model scores {k}-D patches {model.patch_size} but the {what} "
                         f"has shape {shape}")
    if any(p > n for p, n in zip(model.patch_size, shape[-k:])):
        raise UsageError(f"the {what} {shape} is smaller than the model's patch size "
                         f"{model.patch_size}")


# --------------------------------------------------------------------------- demo
def _cmd_demo(args, console):
    from . import data, metrics
    from .operators import Identity
    from .reconstruct import map_estimate, posterior_sample
    from .train import fit_patch_score
    from .tv import tune_tv_weight

    _threads(args)
    _settings(args, console)
    quick = args.quick
    rng = np.random.default_rng(args.seed)
    with writing(args.out or "fastscore-demo"):
        out = new_folder(args.out or "fastscore-demo")
    noise = 0.1
    n_train, n_test = (300, 2) if quick else (4000, 8)
    steps = 300 if quick else 8000
    console.say(f"fastscore demo: toy rectangles (16x16), noise sigma = {noise}, "
                f"results in {out}/")
    train = data.rectangles(n_train, rng=rng, dtype=np.float32)
    test = data.rectangles(n_test, rng=rng, dtype=np.float32)
    noisy = test + noise * rng.standard_normal(test.shape).astype(np.float32)

    console.say(f"training a 3x3 patch score network ({steps} steps, batch 512) ...")
    t0 = time.perf_counter()
    model = fit_patch_score(train, patch_size=3, n_steps=steps, batch_size=512,
                            sigma_range=(0.02, 0.5), rng=rng, progress=console.progress)
    t_train = time.perf_counter() - t0
    hist = model.history
    marks = [hist["loss"][int(f * (len(hist["loss"]) - 1))] for f in (0, 0.25, 0.5, 1.0)]
    val = f", validation {hist['val_loss'][0]:.3f} -> {hist['val_loss'][-1]:.3f}" \
        if hist["val_loss"] else ""
    console.say(f"trained in {t_train:.1f} s: loss "
                f"{' -> '.join(f'{m:.3f}' for m in marks)}{val}")
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
    natural = _load_model(DEFAULT_MODEL, console)
    results["pretrained natural prior"] = (map_estimate(
        noisy, A, noise, fused_prior(natural, _prior(natural, argparse.Namespace(
            weight="mean", seed=args.seed))),
        rng=rng, **map_options(natural, "hqs", noise)).x,
        time.perf_counter() - t0)
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
    console.result("")
    console.result(table(rows, ["method", "PSNR (dB)", "SSIM", "seconds / image"]))
    console.result("")

    shown = {"noisy": noisy[0], "MAP": results["MAP"][0][0],
             "posterior mean": results["posterior mean"][0][0],
             "TV (best weight)": results["TV (best weight)"][0][0]}
    try:
        from . import plot
        figure = plot.reconstruction_figure(test[0], shown, std[0],
                                            path=os.path.join(out, "demo.png"))
        plot.training_curves(hist, path=os.path.join(out, "training.png"))
        console.say(f"figure: {figure}")
    except ImportError:
        for name, im in [("clean", test[0])] + list(shown.items()) + [("posterior std", std[0])]:
            np.save(os.path.join(out, name.split(" (")[0].replace(" ", "_") + ".npy"), im)
        console.say("matplotlib is not installed: wrote .npy files instead of a figure "
             "(pip install 'fastscore[plot]' for the figure)")
    console.say(f"model: {model_path} (use it with: fastscore denoise NOISY --model {model_path} "
         f"--sigma {noise} --out OUT)")
    return 0


# --------------------------------------------------------------------------- denoise
def _cmd_denoise(args, console):
    from .operators import Identity
    from .reconstruct import map_estimate, posterior_sample

    _threads(args)
    _settings(args, console)
    model = _load_model(args.model or DEFAULT_MODEL, console)
    dtype = model_dtype(model)
    if args.dask:                                  # chunked, never the whole image in memory
        from ._cli_dask import denoise_on_dask

        if args.levels not in (None, 1):
            raise UsageError("--levels > 1 (the multi-scale fusion) does not run on --dask; "
                             "--dask denoises on one level")
        prior = _prior(model, args, _denoising_intensity(model, args.intensity))
        sigma_of = lambda sample: check_noise_level(noise_level(         # noqa: E731
            args.sigma, sample, len(model.patch_size), console), "--sigma", dtype)
        return denoise_on_dask(args, console, model, prior, dtype, sigma_of,
                               _check_patch_dims, nifti_geometry)
    y = as_real(read_image(args.noisy, "noisy image", console), "noisy image", args.noisy,
                dtype)
    _check_patch_dims(model, y.shape)
    if args.sigma != "auto":
        check_noise_level(args.sigma, "--sigma", dtype)
    outputs = [args.out]
    if args.method == "posterior":
        if args.out == "-":
            raise UsageError("--out - holds one array; posterior sampling writes the mean and "
                             "the std: give a file name")
        check_size(y.shape, "posterior samples", count=args.samples, itemsize=y.itemsize)
        outputs.append(sibling(args.out, "_std"))
    inputs = [args.noisy] + ([args.model] if args.model and os.path.exists(args.model) else [])
    check_outputs(outputs, inputs, overwrite=args.overwrite, ndim=y.ndim)
    sigma = check_noise_level(noise_level(args.sigma, y, len(model.patch_size), console),
                              "--sigma", dtype)
    prior = _prior(model, args, _denoising_intensity(model, args.intensity))
    if prior.intensity is not None:       # (k, b) from the noisy image, fixed throughout
        with checking("intensity calibration"):
            prior.calibrate(y, sigma)
    if args.method == "posterior":         # the samplers need the density's score
        if args.levels not in (None, 1):
            raise UsageError("--levels > 1 (the multi-scale fusion) is for hqs and map; "
                             "--method posterior samples with one level")
    else:
        prior = fused_prior(model, prior, args.levels, args.tiling)
    A = Identity(y.shape if y.ndim == len(model.patch_size) else y.shape[1:])
    geometry = nifti_geometry(args.noisy)          # a NIfTI output keeps it
    t0 = time.perf_counter()
    if args.method == "posterior":
        post = posterior_sample(y, A, sigma, prior, n_samples=args.samples, rng=args.seed,
                                progress=console.progress)
        write_result(outputs[0], post.mean, console, geometry)
        write_result(outputs[1], post.std, console, geometry)
        console.say(f"posterior mean of {args.samples} samples -> {outputs[0]}; std -> "
                    f"{outputs[1]} ({time.perf_counter() - t0:.1f} s)")
    else:
        x = map_estimate(y, A, sigma, prior, progress=console.progress, rng=args.seed,
                         **map_options(model, args.method, sigma, args.steps)).x
        where = write_result(args.out, x, console, geometry)
        console.say(f"{args.method} estimate -> {where} ({time.perf_counter() - t0:.1f} s)")
    return 0


# --------------------------------------------------------------------------- reconstruct
def _cmd_reconstruct(args, console):
    from .reconstruct import map_estimate, posterior_sample

    _threads(args)
    _settings(args, console)
    model = _load_model(args.model, console)
    if args.operator == "sense":              # multi-coil, slice by slice, complex result
        return reconstruct_sense(args, console, model, _prior, _check_patch_dims)
    y = read_image(args.data, "measurement", console)
    image_shape = image_shape_of(args, y.shape)
    if args.operator != "mri":
        y = as_real(y, "measurement", args.data, model_dtype(model))
    elif not np.iscomplexobj(y):
        raise UsageError("--operator mri needs complex k-space data (.npy or .npz)")
    check_size(image_shape, "the image", count=max(1, args.samples),
               itemsize=np.dtype(model_dtype(model)).itemsize)
    _check_patch_dims(model, image_shape)
    sigma = check_noise_level(args.noise_sigma, "--noise-sigma", model_dtype(model))
    outputs = [args.out]
    if args.samples:
        if args.out == "-":
            raise UsageError("--out - holds one array; --samples writes the mean and the "
                             "std: give a file name")
        outputs.append(sibling(args.out, "_std"))
    check_outputs(outputs, [args.data, args.model, args.mask, args.kernel],
                  overwrite=args.overwrite, ndim=len(image_shape))
    with checking("operator parameters"):
        A = build_operator(args, image_shape, y.shape,
                           lambda path, what: read_image(path, what, console))
        y = A.check_measurement(y, "--data")
    prior = _prior(model, args, intensity="none")   # no reliable (k, b) from y
    t0 = time.perf_counter()
    if args.samples:
        post = posterior_sample(y, A, sigma, prior, n_samples=args.samples,
                                rng=args.seed, progress=console.progress)
        write_result(outputs[0], post.mean, console)
        write_result(outputs[1], post.std, console)
    else:
        x = map_estimate(y, A, sigma, prior, method=args.method,
                         n_steps=args.steps, rng=args.seed, progress=console.progress).x
        write_result(args.out, x, console)
    shown = "standard output" if args.out == "-" else args.out
    console.say(f"{args.operator} reconstruction -> {shown} "
                f"({time.perf_counter() - t0:.1f} s)")
    return 0


# --------------------------------------------------------------------------- sample
def _sample_paths(out, n):
    """The files `sample` writes: `out` (n = 1) or OUT_000.ext, … when `out` is a file name
    (it has a suffix); sample_000.npy, … in the folder `out` otherwise."""
    if out == "-":
        raise UsageError("sample writes image files: give a file name or a folder, not -")
    suffix = suffix_of(out)
    if suffix and not os.path.isdir(out):
        root = out[:-len(suffix)]
        return [out] if n == 1 else [f"{root}_{k:03d}{out[len(root):]}" for k in range(n)]
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a folder; give a folder, or a file "
                         f"name ending in {', '.join(WRITABLE_SUFFIXES)}")
    return [os.path.join(out, f"sample_{k:03d}.npy") for k in range(n)]


def _cmd_sample(args, console):
    from .sampling import annealed_langevin

    _threads(args)
    _settings(args, console)
    model = _load_model(args.model, console)
    shape = tuple(args.shape)
    if len(shape) != len(model.patch_size):
        raise UsageError(f"the model scores {len(model.patch_size)}-D patches "
                         f"{model.patch_size}; --shape {' '.join(map(str, shape))} is "
                         f"{len(shape)}-D")
    _check_patch_dims(model, shape, "sample shape")
    dtype = np.dtype(model_dtype(model))
    check_size(shape, "--n samples", count=args.n, itemsize=dtype.itemsize)
    paths = _sample_paths(args.out, args.n)
    folder = os.path.dirname(paths[0])
    make_folder = os.path.dirname(os.path.abspath(paths[0])) == os.path.abspath(args.out) \
        and not os.path.isdir(folder)
    if make_folder:
        parent = os.path.dirname(os.path.abspath(folder))
        if not os.path.isdir(parent):
            raise UsageError(f"cannot write {args.out}: the folder {parent} does not exist")
    else:
        check_outputs(paths, [args.model], overwrite=args.overwrite, ndim=len(shape))
    prior = _prior(model, args, intensity="none")     # no image to normalise
    rng = np.random.default_rng(args.seed)
    sigmas = np.geomspace(model.sigma_max, model.sigma_min, args.levels)
    mean = float(np.mean(model.model.mean))
    x0 = (mean + sigmas[0] * rng.standard_normal((args.n,) + shape)).astype(dtype)
    with console.timed("sampling"):
        result = annealed_langevin(lambda x, s: prior.score(x, s, rng=rng), sigmas,
                                   args.steps_per_level, args.step_size, x0, rng=rng)
    samples = getattr(result, "samples", result)
    if make_folder:
        with writing(args.out):
            os.makedirs(folder)
    for path, im in zip(paths, samples):
        write_result(path, im, console)
    where = f"{args.out}/" if make_folder or os.path.isdir(args.out) else ", ".join(
        paths[:2]) + (", ..." if len(paths) > 2 else "")
    console.say(f"{args.n} samples of shape {shape} -> {where}")
    return 0


# --------------------------------------------------------------------------- info, bench
def _cmd_info(args, console):
    from . import pretrained

    console.data_on_stdout = args.json
    if args.pretrained:
        return info_pretrained(args.json, console)
    if args.model is None:
        raise UsageError("give a model file or a pretrained prior name, or --pretrained to "
                         "list the pretrained priors")
    model = _load_model(args.model, console)
    config = model.get_config()
    name = getattr(model, "pretrained_name", None)
    if args.json:
        console.result(json.dumps({
            "fastscore_version": __version__,
            "file": pretrained.path(name) if name else os.path.abspath(args.model),
            "kind": model.kind, "config": config,
            "n_params": int(model.net.n_params if hasattr(model, "net") else model.n_params)},
            indent=1, sort_keys=True))
        return 0
    if "model" not in config:            # a Gaussian-mixture prior
        for key, value in (("model", describe_model(model)),
                           ("invariances", "dc (patch mean free)"),
                           ("fastscore version", __version__)):
            console.result(f"{key:24s} {value}")
        return 0
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
        rows.append(("training intensities",
                     (f"{ref.percentile:g}-{100 - ref.percentile:g}% range "
                      f"[{ref.low[0]:.4g}, {ref.high[0]:.4g}]")))
    training = model.training or {}
    for key in ("n_steps", "batch_size", "step_size", "lr", "augment", "scale_augment",
                "final_loss", "final_val_loss", "seconds", "data"):    # lr: files before 0.1
        if training.get(key) is not None:
            value = training[key]
            rows.append((f"training {key.replace('_', ' ')}",
                         f"{value:.4g}" if isinstance(value, float) else value))
    rows.append(("fastscore version", __version__))
    for key, value in rows:
        console.result(f"{key:24s} {value}")
    return 0


def _cmd_bench(args, console):
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
        console.say(f"== {script} --quick")
        with console.timed(script):
            status |= subprocess.call([sys.executable, os.path.join(folder, script),
                                       "--quick"], cwd=folder)
    return status


# --------------------------------------------------------------------------- main
def _cmd_reconstruct_many(args, console):
    from ._cli_dask import reconstruct_many_command

    _settings(args, console)
    model = _load_model(args.model or DEFAULT_MODEL, console)
    return reconstruct_many_command(args, console, model, _prior(model, args))


COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "denoise": _cmd_denoise,
            "reconstruct": _cmd_reconstruct, "reconstruct-many": _cmd_reconstruct_many,
            "sample": _cmd_sample, "info": _cmd_info,
            "bench": _cmd_bench}


def build_parser():
    """The command's argument parser."""
    return _build_parser(COMMANDS)


def main(argv=None):
    """Run the command; returns the exit code (0, 1 internal error, 2 user mistake, 130)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:         # --help, --version, or a mistake in the options
        return exc.code
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    console = Console(args.verbosity, no_progress=getattr(args, "no_progress", False))
    console.data_on_stdout = getattr(args, "out", None) == "-"
    name = f"fastscore {args.command}"
    try:
        return args.func(args, console)
    except UsageError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:     # the system refused a file operation during the work
        if args.debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"{name}: error: {exc.strerror or one_line(exc)}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001  (anything else is a defect: exit 1)
        if args.debug:
            traceback.print_exc()
            print(f"{name}: internal error: {type(exc).__name__}: {one_line(exc)}",
                  file=sys.stderr)
        else:
            print(f"{name}: internal error: {type(exc).__name__}: {one_line(exc)} (run with "
                  "--debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The argument parser of the ``fastscore`` command (the commands are in ``cli.py``).

Every option has a help line and shows its default; options exist only on the commands
where they do something; mistakes in the options end in one line and exit code 2.
"""

import argparse
import math
import textwrap

from ._version import __version__

__all__ = ["build_parser"]

UNITS = ("intensities: .npy/.npz/NIfTI/float-TIFF values are used as stored; integer "
         "PNG/TIFF are rescaled to [0, 1] (8-bit / 255, 16-bit / 65535) unless the PNG "
         "records the scaling fastscore wrote, which is undone. Noise levels are in these "
         "units; -v prints the scale read from each file.")
EXIT_CODES = ("exit codes: 0 success, 2 a mistake in the command (one line on stderr), "
              "1 an internal error (run with --debug for the traceback), 130 interrupted.")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help lines with the default appended, except for flags and options without one."""

    def _fill_text(self, text, width, indent):
        """Paragraphs wrapped, examples kept on one line (to be copied)."""
        return "\n\n".join(
            part if part.startswith("example:") else
            textwrap.fill(part, width, initial_indent=indent, subsequent_indent=indent)
            for part in text.split("\n\n"))

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or default is None or action.nargs == 0
                or default is argparse.SUPPRESS or not action.option_strings):
            return text + (" (required)" if action.required and action.option_strings
                           else "")
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """Option mistakes in one line (not the usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, low, inclusive, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
        if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, 1, True, "an integer >= 1")
nonnegative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0, False, "a number > 0")
real = _number(float, -math.inf, False, "a finite number")


def _sigma(text):
    """--sigma: a number > 0 or auto."""
    return "auto" if text == "auto" else positive_float(text)


def _weight(text):
    if text in ("mean", "sum"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be mean, sum or a number; got {text!r}") \
            from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"a number must be finite and > 0; got {text!r}")
    return value


def _threads(text):
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value == 0:
        raise argparse.ArgumentTypeError(f"expected a nonzero integer; got {text!r}")
    return value


def build_parser(commands):
    """The parser; `commands` maps each command name to its function."""
    parser = _Parser(
        prog="fastscore", formatter_class=_Formatter,
        description="Score-based patch priors for imaging on ordinary CPUs.",
        epilog=f"example: fastscore demo   (then: fastscore COMMAND --help)\n\n{EXIT_CODES}")
    parser.add_argument("--version", action="version", version=f"fastscore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = _Parser(add_help=False)
    talk = common.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=0,
                      default=1, help="print only errors")
    talk.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=2,
                      help="also print the settings used, the intensity scale read from "
                      "each image file and timings")
    common.add_argument("--debug", action="store_true",
                        help="show the traceback of an error")

    def command(name, summary, description, example, *, seed=True, threads=True,
                progress=True, units=False):
        p = sub.add_parser(name, help=summary, description=description, parents=[common],
                           formatter_class=_Formatter,
                           epilog=f"example: {example}" + (f"\n\n{UNITS}" if units else ""))
        if seed:
            p.add_argument("--seed", type=int, default=0, help="random seed")
        if threads:
            p.add_argument("--threads", type=_threads, default=None,
                           help="kernel and BLAS threads; negative counts from the number "
                           "of cores (default: FASTSCORE_NUM_THREADS or all cores)")
        if progress:
            p.add_argument("--no-progress", action="store_true",
                           help="no progress bars (they are shown only when stderr is a "
                           "terminal, and never with -q)")
        p.set_defaults(func=commands[name])
        return p

    def dask_options(p, text, default=None):
        p.add_argument("--dask", default=default, metavar="SCHEDULER", help=text)

    def prior_options(p):
        p.add_argument("--weight", type=_weight, default="mean",
                       help="prior weight: mean, sum, or a number beta > 0")
        p.add_argument("--tiling", choices=["overlap", "shifted_overlap", "random_shift"],
                       help="how patches cover the image (default: overlap; a pretrained "
                            "prior's fused denoising: shifted_overlap)")
        p.add_argument("--symmetrize", action="store_true",
                       help="average the patch score over rotations/flips (8x the work)")

    def operator_options(p):                   # reconstruct and reconstruct-many
        p.add_argument("--image-shape", type=positive_int, nargs="+",
                       help="image shape (needed for ct and fanbeam; default: the shape of "
                       "the data)")
        p.add_argument("--angles", type=positive_int, default=30,
                       help="CT views over 180 degrees")
        fan = p.add_argument_group(
            "fan-beam CT (--operator fanbeam)", "The data are a sinogram (views, detector "
            "bins): the views equally spaced over --scan-degrees from 0, the bins centred on the "
            "central ray. Lengths are in pixels, or in the unit of --pixel-size.")
        fan.add_argument("--source-distance", type=positive_float,
                         help="source to isocentre (required for fanbeam)")
        fan.add_argument("--detector-distance", type=positive_float,
                         help="source to detector (required for fanbeam)")
        fan.add_argument("--detector", choices=["flat", "arc"], default="flat",
                         help="flat panel, or arc centred on the source")
        fan.add_argument("--detector-spacing", type=positive_float,
                         help="bin spacing on the detector (default: one pixel at the "
                         "isocentre)")
        fan.add_argument("--detector-offset", type=float, default=0.0,
                         help="shift of the detector along itself")
        fan.add_argument("--pixel-size", type=positive_float, default=1.0,
                         help="side of an image pixel")
        fan.add_argument("--scan-degrees", type=positive_float, default=360.0,
                         help="angle covered by the views (360: a full turn; a short scan is "
                         "180 plus the fan angle)")
        p.add_argument("--kernel", help="blur kernel file (default: a Gaussian, --blur-sigma)")
        p.add_argument("--blur-sigma", type=positive_float, default=1.5,
                       help="Gaussian blur width in pixels")
        p.add_argument("--factor", type=positive_int, default=2, help="super-resolution factor")

    def overwrite(p):
        p.add_argument("--overwrite", action="store_true",
                       help="replace existing output files (never an input)")

    p = command("demo", "train on built-in phantoms, then denoise with MAP and posterior "
                "sampling", "Train a 3x3 patch score network on built-in rectangle "
                "phantoms, then denoise held-out images with MAP, HQS and posterior "
                "sampling, and compare with TV in a table and a figure.",
                "fastscore demo --quick")
    p.add_argument("--out", help="output folder (default: a new fastscore-demo folder; an "
                   "existing folder is never reused)")
    p.add_argument("--quick", action="store_true", help="a small run (about 30 s)")
    p.set_defaults(weight=1 / 9, tiling="overlap")   # beta = 1/n

    p = command("train", "train a patch score model on images",
                "Train a patch score model by denoising score matching on image files or "
                "built-in phantoms, with checkpoints that --resume continues.",
                "fastscore train --phantom rectangles --steps 2000 --out model.npz",
                units=True)
    p.add_argument("images", nargs="*", help=".npy/.npz/PNG/TIFF/NIfTI files or folders")
    p.add_argument("--phantom", choices=["rectangles", "disks"],
                   help="train on built-in phantoms instead of files")
    p.add_argument("--n-images", type=positive_int, default=2000,
                   help="phantoms to generate")
    p.add_argument("--size", type=positive_int, default=16, help="phantom size in pixels")
    p.add_argument("--stack", action="store_true", help="treat 3-D files as stacks of 2-D images")
    p.add_argument("--patch-size", type=positive_int, nargs="+", default=[3],
                   help="patch size: one number, or one per axis")
    p.add_argument("--steps", type=positive_int, default=3000, help="training steps")
    p.add_argument("--batch-size", type=positive_int, default=512, help="patches per step")
    p.add_argument("--step-size", "--lr", dest="step_size", type=positive_float, default=2e-3,
                   help="peak Adam step size (learning rate; --lr is the old name, removed "
                        "in 0.2)")
    p.add_argument("--sigma-min", type=positive_float, default=0.02,
                   help="smallest training noise level (intensity units)")
    p.add_argument("--sigma-max", type=positive_float, default=1.0,
                   help="largest training noise level (intensity units)")
    p.add_argument("--no-augment", action="store_true", help="no flips/rotations")
    p.add_argument("--scale-augment", type=positive_float, nargs=2, metavar=("LOW", "HIGH"),
                   help="random intensity factors in [LOW, HIGH] (log-uniform)")
    p.add_argument("--dc", action="store_true", help="train an exactly DC-invariant score")
    p.add_argument("--contrast", action="store_true",
                   help="train a contrast-normalised score (implies --dc)")
    p.add_argument("--intensity", choices=["none", "scale", "affine"], default="none",
                   help="image intensity normalisation stored with the model")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    overwrite(p)
    p.add_argument("--checkpoint", help="checkpoint file (default: OUT.checkpoint.npz)")
    p.add_argument("--checkpoint-every", type=positive_int, default=500,
                   help="steps between checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint (which must exist)")

    p = command("denoise", "denoise an image with a pretrained or trained model",
                "Denoise an image with a pretrained prior (default: natural) or a trained "
                "model: MAP by HQS or gradient ascent, or the posterior mean and standard "
                "deviation from posterior sampling. The noise level is estimated from the "
                "image unless --sigma is given.",
                "fastscore denoise photo.png --out clean.png", units=True)
    p.add_argument("noisy", help="noisy image file, or - for an .npy array on stdin")
    p.add_argument("--model", default=None,
                   help="a pretrained prior (natural, phantom) or a model file written by "
                   "fastscore train (default: natural)")
    p.add_argument("--sigma", type=_sigma, default="auto",
                   help="noise standard deviation, in the image's intensity units, or auto "
                   "(estimated from the image; the value used is printed)")
    p.add_argument("--out", required=True,
                   help="result file (.npy/.npz/.png/.tif/.nii), or - for .npy on stdout; "
                   "posterior sampling also writes OUT_std")
    overwrite(p)
    p.add_argument("--method", choices=["map", "hqs", "posterior"], default="hqs",
                   help="estimator: MAP by gradient ascent (map) or half-quadratic "
                   "splitting (hqs), or posterior sampling")
    p.add_argument("--samples", type=positive_int, default=16,
                   help="posterior samples (--method posterior)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="MAP iterations (default: a pretrained prior's setting, else 6 for "
                   "hqs and 100 for map)")
    p.add_argument("--intensity", choices=["auto", "none", "scale", "affine"], default="auto",
                   help="map the image to the training intensities, calibrated from it "
                   "(auto: affine when the model stores training statistics)")
    p.add_argument("--levels", type=positive_int, default=None,
                   help="pyramid levels of the prior's multi-scale fusion (default: a "
                   "pretrained prior's setting, 3, else 1 = none; --dask runs 1)")
    prior_options(p)
    dask_options(p, "denoise chunk by chunk on a Dask cluster (the image is read and the "
                 "result written chunk by chunk for .npy; hqs or map only): local:N for N "
                 "worker processes here, or a scheduler address tcp://HOST:PORT")
    p.add_argument("--chunks", type=positive_int, default=128,
                   help="chunk edge in pixels (with --dask)")

    p = command("reconstruct", "solve an inverse problem (MRI, CT, deblurring, inpainting, "
                "super-resolution)", "Reconstruct an image from measurements: accelerated "
                "MRI, sparse-view CT (parallel or fan beam), deblurring, inpainting or "
                "super-resolution, by MAP or posterior sampling with the model as prior.",
                "fastscore reconstruct --operator mri --data kspace.npy --acceleration 4 "
                "--noise-sigma 0.05 --model model.npz --out x.npy", units=True)
    p.add_argument("--operator", required=True,
                   choices=["mri", "sense", "ct", "fanbeam", "blur", "inpaint", "superres"],
                   help="forward model of the measurements")
    p.add_argument("--data", required=True,
                   help="measurements file (complex k-space for mri; for sense a fastMRI "
                   ".h5 file, or .npy/.npz k-space (coils, H, W) or (slices, coils, H, W)), "
                   "or - for .npy on stdin")
    p.add_argument("--model", required=True, help="model file written by fastscore train")
    p.add_argument("--noise-sigma", type=positive_float, required=True,
                   help="noise standard deviation of the measurements")
    p.add_argument("--out", required=True,
                   help="result file, or - for .npy on stdout; --samples also writes OUT_std")
    overwrite(p)
    p.add_argument("--mask", help="sampling mask (mri) or observed-pixel mask (inpaint)")
    p.add_argument("--acceleration", type=positive_float, default=4.0,
                   help="MRI acceleration of the Cartesian mask drawn when no --mask")
    sense = p.add_argument_group(
        "multi-coil MRI (--operator sense)", "The result is complex: OUT (.npy, .npz or "
        ".nii) holds it and OUT_magnitude its magnitude. An .h5 file is read in the fastMRI "
        "layout (kspace, mask); .npy/.npz k-space in fastscore's centred layout, the mask "
        "from --mask or its nonzero entries.")
    sense.add_argument("--coil-maps", default="auto",
                       help="coil sensitivities: auto (estimated from the fully sampled "
                       "centre) or a .npy/.npz file (coils, H, W) or (slices, coils, H, W)")
    sense.add_argument("--slices", type=nonnegative_int, nargs="+",
                       help="which slices of the k-space file (default: all)")
    operator_options(p)
    p.add_argument("--method", choices=["gradient", "hqs"], default="gradient",
                   help="MAP solver")
    p.add_argument("--steps", type=positive_int, default=200, help="MAP iterations")
    p.add_argument("--samples", type=nonnegative_int, default=0,
                   help="posterior samples (mean and std written) instead of MAP; 0: MAP")
    prior_options(p)

    p = command("reconstruct-many", "reconstruct every file of a folder on a Dask cluster",
                "Reconstruct each measurement file of a folder (the operators of "
                "fastscore reconstruct except sense: denoising, 2-D MRI k-space slices, CT "
                "sinograms, deblurring, inpainting, super-resolution) by MAP on a Dask "
                "cluster; each result is written to OUT/<name>.npy as it finishes, a failed "
                "item is reported without stopping the others, and a rerun skips the items "
                "already written.",
                "fastscore reconstruct-many slices/ --noise-sigma 0.05 --out results/ "
                "--dask local:2", threads=False, units=True)
    p.add_argument("folder", help="folder of .npy/.npz/NIfTI/PNG/TIFF measurement files")
    p.add_argument("--model", default=None,
                   help="a pretrained prior (natural, phantom) or a model file written by "
                   "fastscore train (default: natural)")
    p.add_argument("--operator", default="denoise", choices=["denoise", "mri", "ct",
                                                             "fanbeam", "blur", "inpaint",
                                                             "superres"],
                   help="forward model of every item (mri: centred 2-D k-space, sampled "
                   "where nonzero unless --mask)")
    p.add_argument("--noise-sigma", type=positive_float, required=True,
                   help="noise standard deviation of the measurements")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--mask", help="sampling mask (mri) or observed-pixel mask (inpaint) "
                   "shared by all items")
    operator_options(p)
    p.add_argument("--method", choices=["gradient", "hqs"], default="hqs", help="MAP solver")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="MAP iterations (default: a pretrained prior's setting, else 6 for "
                   "hqs and 100 for gradient)")
    prior_options(p)
    dask_options(p, "the Dask cluster: local:N for N worker processes here, or a "
                 "scheduler address tcp://HOST:PORT", default="local:2")

    p = command("sample", "draw images from the prior alone (annealed Langevin)",
                "Draw images from the prior alone by annealed Langevin dynamics, from the "
                "model's largest noise level down to its smallest.",
                "fastscore sample --model model.npz --shape 64 64 --n 4 --out samples.png",
                progress=False)
    p.add_argument("--model", required=True, help="model file written by fastscore train")
    p.add_argument("--shape", type=positive_int, nargs="+", required=True,
                   help="image shape, e.g. 64 64")
    p.add_argument("--n", type=positive_int, default=4, help="number of samples")
    p.add_argument("--out", required=True,
                   help="a file name (.npy/.npz/.png/.tif/.nii: OUT, or OUT_000, OUT_001, "
                   "… when --n > 1), or a folder (a name without suffix) for "
                   "sample_000.npy, …")
    overwrite(p)
    p.add_argument("--levels", type=positive_int, default=10, help="noise levels")
    p.add_argument("--steps-per-level", type=positive_int, default=30,
                   help="Langevin steps per noise level")
    p.add_argument("--step-size", "--eps", dest="step_size", type=positive_float,
                   default=2e-5, help="Langevin step at the smallest noise level (--eps is "
                                      "the old name, removed in 0.2)")
    prior_options(p)

    p = command("info", "describe a model file or the pretrained priors", "Describe a "
                "model file (or a pretrained prior by name): patch size, network, noise "
                "range, invariances and how it was trained; --pretrained lists the priors "
                "shipped with fastscore.", "fastscore info model.npz --json", seed=False,
                threads=False, progress=False)
    p.add_argument("model", nargs="?", help="model file or pretrained prior name")
    p.add_argument("--pretrained", action="store_true",
                   help="list the pretrained priors shipped with fastscore")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output: the version, the model's configuration")

    p = command("bench", "run the short versions of the benchmarks",
                "Run the short (--quick) versions of the benchmark scripts of a source "
                "checkout and print their tables.", "fastscore bench --only patches",
                seed=False, threads=False, progress=False)
    p.add_argument("--only", help="run only the scripts whose name contains this")
    return parser

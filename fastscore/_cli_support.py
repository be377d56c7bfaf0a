"""What the ``fastscore`` command needs around the library: user errors, the console,
checked inputs and outputs.

The command separates a user mistake (exit 2, one line) from a defect (exit 1) by *stage*,
not by exception type:

- the **input stage** - parsing options, reading the files the user named, loading the
  model, checking shapes, noise levels and sizes, building the operator and the prior - is
  run inside :func:`reading` or :func:`checking`; what fails there is about the user's
  input and becomes a :class:`UsageError`;
- the **output stage** checks every output path *before* the computation
  (:func:`check_outputs`: one overwrite rule for every command, never an input as output)
  and wraps the writes in :func:`writing` (a read-only or full disk is the environment's
  fault, not a defect);
- the **computation** in between is not wrapped: a ``ValueError`` or ``TypeError`` escaping
  from it means the command let through something it should have refused, or a bug, and is
  reported as an internal error (exit 1).
"""

import contextlib
import io
import math
import os
import sys
import time
import zipfile

import numpy as np

from ._optional import import_optional
from ._version import __version__

__all__ = [
    "WRITABLE_SUFFIXES",
    "Console",
    "UsageError",
    "as_real",
    "check_noise_level",
    "check_outputs",
    "check_size",
    "checking",
    "intensity_note",
    "new_folder",
    "one_line",
    "read_image",
    "read_stdin_array",
    "reading",
    "shown",
    "show_settings",
    "sibling",
    "suffix_of",
    "table",
    "use_threads",
    "write_result",
    "write_stdout_array",
    "writing",
]

#: Suffixes :func:`fastscore.io.save_image` writes.
WRITABLE_SUFFIXES = (".npy", ".npz", ".png", ".tif", ".tiff", ".nii", ".nii.gz")
_TWO_D_ONLY = (".png", ".tif", ".tiff")
_WRITERS = {".png": "PIL.Image", ".tif": "PIL.Image", ".tiff": "PIL.Image",
            ".nii": "nibabel", ".nii.gz": "nibabel"}      # optional packages of the formats


def use_threads(args):
    """--threads: set fastscore's thread count for the run (when given)."""
    import fastscore

    if getattr(args, "threads", None) is not None:
        from ._threads import check_threads

        with checking("--threads"):
            fastscore.set_num_threads(check_threads(args.threads, "--threads"))


def show_settings(args, console):
    """-v: the settings used."""
    import fastscore

    shown = {k: v for k, v in sorted(vars(args).items()) if k not in ("func", "command")}
    console.detail(f"fastscore {__version__} {args.command}: " + ", ".join(
        f"{k}={v}" for k, v in shown.items()))
    if hasattr(args, "threads"):
        console.detail(f"threads: {fastscore.get_num_threads()}")


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2."""


def one_line(exc):
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:
        text = f"missing {exc.args[0]!r}"
    first = text.splitlines()[0] if text else ""
    return first or type(exc).__name__


# ----------------------------------------------------------------------------- console
class Console:
    """Where the command's messages go, by verbosity.

    ``verbosity`` 0 (``-q``): errors only; 1: status lines; 2 (``-v``): also the settings
    used, the intensity scale of image files and timings. The command's *result* (the
    ``info`` description or JSON, the demo table) is always written to stdout. Messages go
    to stdout, or to stderr when stdout carries data (``--out -``, ``info --json``).
    """

    def __init__(self, verbosity=1, *, no_progress=False):
        self.verbosity = verbosity
        self.no_progress = no_progress
        self.data_on_stdout = False

    @property
    def stream(self):
        return sys.stderr if self.data_on_stdout else sys.stdout

    def result(self, text=""):
        print(text, file=sys.stdout, flush=True)

    def say(self, text=""):
        if self.verbosity >= 1:
            print(text, file=self.stream, flush=True)

    def detail(self, text):
        if self.verbosity >= 2:
            print(text, file=self.stream, flush=True)

    @property
    def progress(self):
        """Progress bars: only on an interactive stderr, never with ``-q``/``--no-progress``."""
        isatty = getattr(sys.stderr, "isatty", None)
        return (self.verbosity >= 1 and not self.no_progress
                and bool(isatty and isatty()))

    @contextlib.contextmanager
    def timed(self, what):
        """Print how long the block took (``-v``)."""
        t0 = time.perf_counter()
        yield
        self.detail(f"{what}: {time.perf_counter() - t0:.2f} s")


# --------------------------------------------------------------------- input stage
def _file_errors():
    """What reading an untrusted file can raise without any defect of ours: malformed
    content (ValueError, LookupError, EOFError, zip errors, arithmetic on crafted numbers,
    recursion in crafted metadata, an oversized claim), the OS (OSError), a missing
    optional reader (ImportError), and Pillow's decompression-bomb guard."""
    errors = [ValueError, TypeError, LookupError, EOFError, OSError, ArithmeticError,
              RecursionError, MemoryError, ImportError, zipfile.BadZipFile,
              NotImplementedError]
    pil = sys.modules.get("PIL.Image")
    if pil is not None and hasattr(pil, "DecompressionBombError"):
        errors.append(pil.DecompressionBombError)
    return tuple(errors)


@contextlib.contextmanager
def reading(what, path):
    """Errors while reading the user's file `path` are user errors naming the file.

    Programming errors (``NameError``, ``AttributeError``, ``AssertionError``, ...) are
    not caught: they stay internal errors.
    """
    shown = "standard input" if path == "-" else path
    try:
        yield
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError(f"{what} file not found: {shown}") from None
    except _file_errors() as exc:
        raise UsageError(f"cannot read {what} {shown}: {one_line(exc)}") from exc


@contextlib.contextmanager
def checking(what):
    """Validation errors of the library on the user's options become user errors."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError, ArithmeticError, NotImplementedError) as exc:
        raise UsageError(f"{what}: {one_line(exc)}") from exc


def check_noise_level(value, option, dtype):
    """A noise standard deviation usable in `dtype`: finite, > 0, with σ² and 1/σ² finite
    and nonzero in that precision (the score and the data term use both)."""
    info = np.finfo(dtype)
    low = math.sqrt(float(info.tiny)) * 1.0001
    high = math.sqrt(float(info.max)) * 0.9999
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} must be a finite number > 0; got {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{option} must be between {low:.2g} and {high:.2g} for a "
                         f"{np.dtype(dtype).name} model (its square must be representable); "
                         f"got {value!r}")
    return float(value)


def _memory_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 36


def check_size(shape, what, *, count=1, itemsize=8, copies=4):
    """Refuse, before allocating anything, an array this machine cannot hold.

    ``count`` arrays of `shape` with ``copies`` working copies each (the state, the noise,
    the score, the output) must fit in the physical memory.
    """
    elements = count * math.prod(int(n) for n in shape)
    need = elements * itemsize * copies
    have = _memory_bytes()
    if need > have:
        size = " x ".join(map(str, shape)) + (f" (x {count})" if count > 1 else "")
        raise UsageError(f"{what} of {size} would need about {need / 2**30:.3g} GiB; this "
                         f"machine has {have / 2**30:.3g} GiB")


# -------------------------------------------------------------------- output stage
def suffix_of(path):
    name = os.path.basename(os.fspath(path)).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(name)[1]


def _same_file(a, b):
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs, inputs=(), *, overwrite=False, ndim=None,
                  suffixes=WRITABLE_SUFFIXES):
    """One rule for every command, applied before any work: an output must have one of
    `suffixes` (None: any; 2-D for PNG/TIFF when `ndim` is known), go to an existing
    folder, not be an existing file unless ``--overwrite``, never be a folder, and never
    be one of the inputs (not even with ``--overwrite``). ``-`` (stdout) is always fine.
    """
    outputs = [os.fspath(p) for p in outputs]
    inputs = [os.fspath(p) for p in inputs if p is not None and p != "-"]
    for path in outputs:
        if path == "-":
            continue
        suffix = suffix_of(path)
        if suffixes is not None and suffix not in suffixes:
            raise UsageError(f"cannot write {suffix or 'files without a suffix'} ({path}); "
                             f"use one of {', '.join(suffixes)}")
        if suffix in _WRITERS:
            try:
                import_optional(_WRITERS[suffix], "io")
            except ImportError as exc:
                raise UsageError(f"cannot write {path}: {one_line(exc)}") from exc
        if ndim is not None and ndim != 2 and suffix in _TWO_D_ONLY:
            raise UsageError(f"{path}: {suffix} files hold 2-D images and the result is "
                             f"{ndim}-D; use .npy or .nii")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {path}: the folder {folder} does not exist")
        if os.path.isdir(path):
            raise UsageError(f"cannot write {path}: it is a folder")
        for source in inputs:
            if _same_file(path, source):
                raise UsageError(f"the output {path} is also an input; write the result "
                                 "to another file")
        if os.path.exists(path) and not overwrite:
            raise UsageError(f"{path} exists (use --overwrite to replace it)")
    if len(set(map(os.path.abspath, outputs))) != len(outputs):
        raise UsageError("two outputs have the same name: " + ", ".join(outputs))


@contextlib.contextmanager
def writing(path):
    """The OS refusing a write (read-only file system, full disk, permissions) is reported
    in one line, exit 2."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or one_line(exc)
        raise UsageError(f"cannot write {path}: {reason}") from exc


# ---------------------------------------------------------------- standard streams
def read_stdin_array():
    """An ``.npy`` array from standard input (pickles refused)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("'-' reads an .npy array from standard input, which is a terminal; "
                         "pipe one in (e.g. < image.npy)")
    with reading("the .npy array on", "-"):
        buffer = io.BytesIO(sys.stdin.buffer.read())
        arr = np.lib.format.read_array(buffer, allow_pickle=False)
        if buffer.read(1):
            raise ValueError("trailing bytes after the array")
    if arr.dtype.kind not in "fiubc" or arr.ndim not in (2, 3):
        raise UsageError(f"standard input: expected a 2-D image or 3-D volume of numbers; "
                         f"got shape {arr.shape}, dtype {arr.dtype}")
    if arr.dtype.kind in "fc" and arr.dtype.itemsize >= 4:
        return arr
    return arr.astype(np.float32)


def write_stdout_array(array):
    """Write `array` as ``.npy`` to standard output."""
    with writing("standard output"):
        np.save(sys.stdout.buffer, np.asarray(array), allow_pickle=False)
        sys.stdout.buffer.flush()


# --------------------------------------------------------------------- intensities
_PIL_BITS = {"1": "1-bit", "L": "8-bit", "P": "8-bit palette", "RGB": "8-bit colour",
             "RGBA": "8-bit colour", "I;16": "16-bit", "I;16B": "16-bit", "I": "32-bit integer",
             "F": "32-bit float"}


def intensity_note(path, array):
    """How the intensities of `path` were read, for ``-v``: the units ``--sigma`` is in."""
    suffix = suffix_of(path) if path != "-" else ".npy"
    value_range = (f"values in [{float(np.min(array.real)):.4g}, "
                   f"{float(np.max(array.real)):.4g}]" if array.size else "no values")
    if suffix in (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"):
        try:
            from PIL import Image
            with Image.open(path) as im:
                mode, scaling = im.mode, im.info.get("fastscore-scaling")
        except Exception:  # noqa: BLE001  (the file was read already; the note is optional)
            return f"intensities: {value_range}"
        kind = _PIL_BITS.get(mode, mode)
        if mode == "F":
            how = "float values kept as stored"
        elif scaling:
            how = f"integer levels mapped back to the range recorded by fastscore ({scaling})"
        else:
            top = 255 if kind.startswith(("1-", "8-")) else 65535
            how = f"integer levels divided by {top} into [0, 1]"
        return f"intensities: {kind} {suffix[1:].upper()}, {how}; {value_range}"
    return f"intensities: {array.dtype} values as stored; {value_range}"


# ------------------------------------------------------------ files of the command
def read_image(path, what, console):
    """An image from a file, or an .npy array from standard input for ``-``."""
    from .io import load_image

    if path == "-":
        arr = read_stdin_array()
    else:
        if os.path.isdir(path):
            raise UsageError(f"{what} {path} is a folder, not a file")
        with reading(what, path):
            arr = load_image(path)
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{what} {shown(path)} holds NaN or infinite values")
    console.detail(f"{what}: shape {arr.shape}; {intensity_note(path, arr)}")
    return arr


def shown(path):
    return "(standard input)" if path == "-" else path


def as_real(arr, what, path, dtype=None):
    """`arr` as a real array of `dtype`: complex data are refused, not cast to their real
    part (until complex-valued reconstruction exists), and so are values beyond `dtype`."""
    if np.iscomplexobj(arr):
        raise UsageError(f"{what} {shown(path)} is complex ({arr.dtype}); this command works "
                         "on real images (take the magnitude or real part first)")
    if dtype is not None:
        with np.errstate(over="ignore"):
            arr = arr.astype(dtype)
        if not np.all(np.isfinite(arr)):
            raise UsageError(f"{what} {shown(path)} has values beyond the {np.dtype(dtype)} "
                             "range of the model")
    return arr


def write_result(path, array, console, geometry=None):
    """Write `array` to `path` (``-``: stdout); `geometry` (``{"affine", "header"}`` of a
    NIfTI input) is kept when `path` is NIfTI."""
    from .io import save_image

    if path == "-":
        write_stdout_array(array)
        return "standard output"
    keep = geometry if geometry and suffix_of(path) in (".nii", ".nii.gz") else {}
    with writing(path):
        save_image(path, array, **keep)
    return path


def sibling(path, suffix):
    root, ext = (path[:-7], path[-7:]) if path.lower().endswith(".nii.gz") \
        else os.path.splitext(path)
    return f"{root}{suffix}{ext}"


def new_folder(base):
    """`base`, or `base-2`, `base-3`, … : never an existing folder."""
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    os.makedirs(path)
    return path


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --------------------------------------------------------------------------- demo

"""The Dask parts of the ``fastscore`` command: ``denoise --dask`` and ``reconstruct-many``.

Same rules as ``cli.py``: the user's files are read inside ``reading``, library validation
of options becomes a one-line user error through ``checking``, outputs are checked before
any computation; what escapes the computation itself is an internal error.
"""

import argparse
import contextlib
import functools
import os
import tempfile
import time

import numpy as np

from ._cli_support import (UsageError, check_outputs, checking, one_line, reading,
                           suffix_of, write_result)

__all__ = ["cluster", "denoise_on_dask", "reconstruct_many_command"]

#: image files a reconstruct-many folder may hold (read on the workers)
ITEM_SUFFIXES = (".npy", ".npz", ".nii", ".nii.gz", ".png", ".tif", ".tiff")


@contextlib.contextmanager
def cluster(spec, console):
    """A dask.distributed Client for ``--dask``: ``local:N`` (N worker processes, one
    thread each, on this machine) or a scheduler address (``tcp://host:8786``)."""
    try:
        distributed = __import__("distributed")
    except ImportError:
        raise UsageError("--dask needs the optional packages dask and distributed: "
                         "pip install 'fastscore[dask]'") from None
    if spec.startswith("local:"):
        count = spec[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--dask local:N needs a number of workers N >= 1; got {spec!r}")
        with distributed.LocalCluster(n_workers=int(count), threads_per_worker=1,
                                      processes=True, dashboard_address=":0") as local, \
                distributed.Client(local) as client:
            console.detail(f"dask: local cluster of {count} worker processes")
            yield client
        return
    try:
        client = distributed.Client(spec, timeout="10s")
    except (OSError, ValueError, TimeoutError) as exc:
        raise UsageError(f"--dask: cannot reach the scheduler {spec}: {one_line(exc)}") \
            from None
    with client:
        console.detail(f"dask: scheduler {spec}, {len(client.scheduler_info()['workers'])} "
                       "workers")
        yield client


def _lazy_volume(path, chunks):
    """The input as a dask array, read chunk by chunk where the format allows it (.npy
    memory-mapped, NIfTI through nibabel's array proxy), else loaded once."""
    import dask.array as da

    from .io import load_image

    suffix = suffix_of(path)
    with reading("noisy image", path):
        if suffix == ".npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        elif suffix in (".nii", ".nii.gz"):
            import nibabel

            data = nibabel.load(path).dataobj
        else:
            data = load_image(path)
        if np.dtype(data.dtype).kind not in "fiub" or len(data.shape) not in (2, 3):
            raise ValueError(f"expected a real 2-D image or 3-D volume; got shape "
                             f"{tuple(data.shape)}, dtype {data.dtype}")
        return da.from_array(data, chunks=chunks, asarray=True)


class _NpyRegions:
    """``target[region] = block`` into an .npy file, from any worker process (the file is
    opened per write: the object pickles as its path)."""

    def __init__(self, path):
        self.path = path

    def __setitem__(self, region, block):
        target = np.load(self.path, mmap_mode="r+")
        target[region] = block
        target.flush()


def _write_npy(path, x):
    """Store a dask array into an .npy file chunk by chunk, atomically (temporary file in
    the same folder, renamed into place)."""
    import dask.array as da

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastscore-", suffix=".npy", dir=folder)
    os.close(fd)
    try:
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=x.dtype, shape=x.shape)
        del header
        da.store(x, _NpyRegions(tmp), lock=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def denoise_on_dask(args, console, model, prior, dtype, sigma_of, check_dims, geometry_of):
    """``fastscore denoise --dask``: chunked HQS / gradient MAP, the result streamed to
    ``--out`` (.npy written chunk by chunk; .nii/.nii.gz assembled in memory). The noise
    level (``--sigma auto``) and the intensity calibration are global quantities: they are
    computed once, on the central 128 pixels per axis (the central image of a stack). A
    pretrained prior runs on one level (the multi-scale fusion is not chunked)."""
    from .distributed import denoise_dask
    from ._cli_models import map_options

    if args.method == "posterior":
        raise UsageError("--method posterior does not run on --dask; use hqs or map")
    if args.out == "-":
        raise UsageError("--dask writes a file: give --out a .npy or .nii name")
    check_outputs([args.out], [args.noisy], overwrite=args.overwrite,
                  suffixes=(".npy", ".nii", ".nii.gz"))
    volume = _lazy_volume(args.noisy, args.chunks).astype(dtype)
    check_dims(model, volume.shape)
    stack = volume.ndim > len(model.patch_size)
    centre = tuple(slice(max(0, (n - 128) // 2), max(0, (n - 128) // 2) + 128)
                   for n in volume.shape)
    sample = np.asarray(volume[centre].compute(scheduler="synchronous"))
    sigma = sigma_of(sample)                 # --sigma, or estimated on the central part
    if prior.intensity is not None:          # (k, b) calibrated once, on the central part
        with checking("intensity calibration"):
            prior.calibrate(sample[len(sample) // 2] if stack else sample, sigma)
    options = map_options(model, args.method, sigma, args.steps)
    method = "gradient" if options.pop("method", "hqs") != "hqs" else "hqs"
    options = {key: options[key] for key in ("n_steps", "sigma_schedule", "step_size",
                                             "momentum") if key in options}
    with cluster(args.dask, console) as client:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=".fastscore-iterates-",
                                         dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
            progress = _task_progress(console, f"{method} on dask")
            try:
                x = denoise_dask(volume, prior, sigma, method=method, rng=args.seed,
                                 store=tmp, callback=lambda step, n: console.detail(
                                     f"step {step + 1}/{n} done"),
                                 task_callback=progress.update, **options)
            finally:
                progress.close()
            if suffix_of(args.out) == ".npy":
                where = _write_npy(args.out, x)
            else:
                where = write_result(args.out, x.compute(), console, geometry_of(args.noisy))
        console.say(f"{method} estimate on {len(client.scheduler_info()['workers'])} "
                    f"workers, chunks {x.chunksize} -> {where} "
                    f"({time.perf_counter() - t0:.1f} s)")
    return 0


def _task_progress(console, desc):
    """Progress over tasks on stderr (a bar on a terminal, plain lines otherwise); off with
    ``-q`` or ``--no-progress``."""
    from ._progress import TaskProgress

    return TaskProgress(desc, enabled=console.verbosity >= 1 and not console.no_progress)


def _preloaded(arrays, path, what):
    return arrays[path]


def _factory(options, arrays, name, y):
    """Operator of one item, built on the worker as ``fastscore reconstruct`` builds it
    (module level: pickled by reference; `arrays` holds the mask and kernel files, read
    once on the client)."""
    from ._cli_operators import build_operator, image_shape_of

    if options.operator == "mri" and not np.iscomplexobj(y):
        raise ValueError(f"mri items are complex k-space; got dtype {y.dtype}")
    if options.operator in ("mri", "fanbeam") and y.ndim != 2:
        raise ValueError(f"{options.operator} items are 2-D; got shape {y.shape}")
    return build_operator(options, image_shape_of(options, y.shape), y.shape,
                          functools.partial(_preloaded, arrays), kspace=y)


def _operator_options(args, console, first):
    """The item operator factory: the options the workers' operators need (picklable) and
    the mask and kernel arrays, read here once. The first item's operator is built here
    too, so that a missing or inconsistent option is a user error before any work is
    sent."""
    from ._cli_support import read_image

    keys = ("operator", "mask", "kernel", "blur_sigma", "image_shape", "angles", "factor",
            "source_distance", "detector_distance", "detector", "detector_spacing",
            "detector_offset", "pixel_size", "scan_degrees", "seed")
    options = argparse.Namespace(**{k: getattr(args, k) for k in keys})
    arrays = {path: read_image(path, what, console)
              for path, what in ((args.mask, "mask"), (args.kernel, "kernel")) if path}
    factory = functools.partial(_factory, options, arrays)
    try:
        from .io import load_array, load_image

        y = load_array(first) if suffix_of(first) in (".npy", ".npz") else load_image(first)
        factory(os.path.basename(first), y)
    except UsageError:
        raise
    except Exception:  # noqa: BLE001  (a fault of this item's data: reported with the item)
        pass
    return factory


def reconstruct_many_command(args, console, model, prior):
    """``fastscore reconstruct-many DIR``: one MAP reconstruction per file of DIR, written to
    ``--out`` as ``<name>.npy``; existing outputs are skipped (a rerun resumes)."""
    from .distributed import reconstruct_many
    from ._cli_models import map_options

    if not os.path.isdir(args.folder):
        raise UsageError(f"{args.folder} is not a folder")
    names = {}
    for entry in sorted(os.listdir(args.folder)):
        suffix = suffix_of(entry)
        if suffix in ITEM_SUFFIXES and not entry.startswith("."):
            names[entry[:-len(suffix)]] = os.path.join(os.path.abspath(args.folder), entry)
    if not names:
        raise UsageError(f"{args.folder} holds no {'/'.join(ITEM_SUFFIXES)} files")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file; give a folder")
    if os.path.abspath(args.out) == os.path.abspath(args.folder):
        raise UsageError("--out must differ from the input folder")
    factory = _operator_options(args, console, next(iter(names.values())))
    options = map_options(model, args.method, args.noise_sigma, args.steps)
    options["rng"] = args.seed
    progress = _task_progress(console, "reconstruct-many")

    def report(name, status, done, total):
        console.detail(f"[{done}/{total}] {name}: {status}")
        progress.update(done, total, f"{name}: {status}")

    with cluster(args.dask, console) as client:
        t0 = time.perf_counter()
        try:
            run = reconstruct_many(names, factory, prior, args.noise_sigma, store=args.out,
                                   options=options, client=client, callback=report)
        finally:
            progress.close()
    for name, reason in run.failed.items():
        console.say(f"failed {name}: {reason}")
    console.say(f"{len(run.written)} written, {len(run.skipped)} already present, "
                f"{len(run.failed)} failed -> {run.store} ({time.perf_counter() - t0:.1f} s)")
    if run.failed:
        raise UsageError(f"{len(run.failed)} of {len(names)} items failed (listed above); "
                         "fix them and rerun: the written items are kept")
    return 0

"""Scanner geometries and files of ``fastscore reconstruct``: fan-beam CT from its
geometry options, multi-coil k-space (SENSE) from HDF5 or NumPy files, and complex results
written with their magnitude."""

import numpy as np

from ._cli_support import UsageError

__all__ = ["fanbeam_operator", "nifti_geometry", "reconstruct_sense"]


def nifti_geometry(path):
    """``{"affine", "header"}`` of a NIfTI input (kept by NIfTI outputs), else None."""
    from ._cli_support import reading, suffix_of

    if path == "-" or suffix_of(path) not in (".nii", ".nii.gz"):
        return None
    from .io_medical import load_nifti

    with reading("image", path):
        volume = load_nifti(path)
    return {"affine": volume.affine, "header": volume.header}


def fanbeam_operator(args, image_shape, data_shape):
    """``FanBeamCT`` for a sinogram of `data_shape` (views, bins): the views equally spaced
    over ``--scan-degrees`` from 0, one bin per column of the data."""
    from .operators import FanBeamCT

    if args.source_distance is None or args.detector_distance is None:
        raise UsageError("--operator fanbeam needs --source-distance and --detector-distance "
                         "(in pixels, or in the unit of --pixel-size)")
    if len(data_shape) != 2:
        raise UsageError(f"--operator fanbeam needs a 2-D sinogram (views, detector bins); "
                         f"the data have shape {tuple(data_shape)}")
    n_views, n_bins = data_shape
    angles = np.deg2rad(args.scan_degrees) * np.arange(n_views) / n_views
    return FanBeamCT(image_shape, angles, n_bins, source_distance=args.source_distance,
                     detector_distance=args.detector_distance, detector=args.detector,
                     detector_spacing=args.detector_spacing,
                     detector_offset=args.detector_offset, pixel_size=args.pixel_size)


# ----------------------------------------------------------------------- multi-coil MRI
COMPLEX_SUFFIXES = (".npy", ".npz", ".nii", ".nii.gz")


def _kspace_array(path, slices):
    """Complex k-space from .npy/.npz: (coils, H, W) or (slices, coils, H, W), as stored."""
    from .io import load_array

    arr = load_array(path)
    if arr.dtype.kind != "c" or arr.ndim not in (3, 4):
        raise UsageError(f"--data {path}: expected complex k-space of shape (coils, H, W) or "
                         f"(slices, coils, H, W); got shape {arr.shape}, dtype {arr.dtype}")
    arr = arr[np.newaxis] if arr.ndim == 3 else arr
    if slices:
        if max(slices) >= len(arr):
            raise UsageError(f"--slices {' '.join(map(str, slices))}: {path} holds "
                             f"{len(arr)} slices")
        arr = arr[list(slices)]
    return arr


def read_sense_data(args, console):
    """k-space ``(S, C, H, W)``, mask ``(H, W)`` and coil maps ``(S, C, H, W)`` from
    ``--data`` (fastMRI HDF5, or .npy/.npz in fastscore's layout), ``--mask`` and
    ``--coil-maps`` (``auto``: estimated from the calibration region)."""
    from ._cli_support import read_image, reading, shown, suffix_of
    from .io import load_array
    from .io_medical import load_kspace
    from .mri import estimate_coil_maps

    path = args.data
    if path == "-":
        raise UsageError("--operator sense reads k-space from a file (.h5, .npy or .npz), "
                         "not from standard input")
    auto = args.coil_maps == "auto"
    with reading("k-space", path):
        if suffix_of(path) in (".h5", ".hdf5"):
            if args.mask:
                raise UsageError(f"--mask: the sampling mask of {path} is read from the file")
            data = load_kspace(path, slices=args.slices, coil_maps=auto)
            kspace, mask, maps = data.kspace, data.mask, data.coil_maps
        else:
            kspace, maps = _kspace_array(path, args.slices), None
            mask = (read_image(args.mask, "mask", console) > 0 if args.mask
                    else np.any(kspace != 0, axis=(0, 1)))
    image_shape = kspace.shape[-2:]
    if mask.shape != image_shape:
        raise UsageError(f"--mask has shape {mask.shape}; the k-space images are "
                         f"{image_shape}")
    if not mask.any():
        raise UsageError(f"the sampling mask of {shown(args.mask or path)} samples nothing")
    if auto and maps is None:
        with reading("k-space", path):
            maps = np.stack([estimate_coil_maps(k * mask) for k in kspace])
    elif not auto:
        with reading("coil maps", args.coil_maps):
            maps = load_array(args.coil_maps)
        if maps.shape == kspace.shape[1:]:
            maps = np.broadcast_to(maps, kspace.shape)
        if maps.shape != kspace.shape:
            raise UsageError(f"--coil-maps {args.coil_maps} has shape {maps.shape}; the "
                             f"k-space needs {kspace.shape[1:]} (coils, H, W) or "
                             f"{kspace.shape} (slices, coils, H, W)")
    return kspace, mask, maps


def sense_outputs(out, posterior):
    """The files of a complex result: OUT (complex), OUT_magnitude and, for posterior
    sampling, OUT_std (real)."""
    from ._cli_support import sibling, suffix_of

    if out == "-":
        raise UsageError("--operator sense writes the complex image and its magnitude: give "
                         "a file name, not -")
    if suffix_of(out) not in COMPLEX_SUFFIXES:
        raise UsageError(f"--out {out}: the result is complex; use one of "
                         f"{', '.join(COMPLEX_SUFFIXES)} (the magnitude is written beside "
                         "it)")
    return [out, sibling(out, "_magnitude")] + ([sibling(out, "_std")] if posterior else [])


def reconstruct_sense(args, console, model, make_prior, check_patch_dims):
    """``reconstruct --operator sense``: every slice by MAP (or posterior sampling) with a
    SENSE operator of its coil maps; the complex result, its magnitude (and the std)."""
    import time

    from ._cli_support import (check_noise_level, check_outputs, check_size, checking,
                               write_result)
    from .operators import SENSE
    from .reconstruct import map_estimate, posterior_sample

    kspace, mask, maps = read_sense_data(args, console)
    n_slices, image_shape = len(kspace), kspace.shape[-2:]
    check_patch_dims(model, image_shape)
    check_size(kspace.shape, "the k-space", count=max(1, args.samples), itemsize=16)
    sigma = check_noise_level(args.noise_sigma, "--noise-sigma", model.net.dtype)
    outputs = sense_outputs(args.out, args.samples > 0)
    inputs = [args.data, args.model, args.mask] + ([] if args.coil_maps == "auto"
                                                   else [args.coil_maps])
    check_outputs(outputs, inputs, overwrite=args.overwrite, ndim=2 if n_slices == 1 else 3,
                  suffixes=COMPLEX_SUFFIXES)
    with checking("operator parameters"):
        problems = []
        for k in range(n_slices):
            A = SENSE(maps[k], mask)
            problems.append((A, A.check_measurement(kspace[k] * mask, "--data")))
    prior = make_prior(model, args, intensity="none")
    t0 = time.perf_counter()
    images, stds = [], []
    for A, y in problems:
        if args.samples:
            post = posterior_sample(y, A, sigma, prior, n_samples=args.samples,
                                    rng=args.seed, progress=console.progress)
            images.append(post.mean)
            stds.append(post.std)
        else:
            images.append(map_estimate(y, A, sigma, prior, method=args.method,
                                       n_steps=args.steps, rng=args.seed,
                                       progress=console.progress).x)
    x = np.stack(images) if n_slices > 1 else images[0]
    write_result(outputs[0], x, console)
    write_result(outputs[1], np.abs(x), console)
    if stds:
        write_result(outputs[2], np.stack(stds) if n_slices > 1 else stds[0], console)
    console.say(f"sense reconstruction of {n_slices} slice(s) -> {outputs[0]}, magnitude "
                f"{outputs[1]} ({time.perf_counter() - t0:.1f} s)")
    return 0

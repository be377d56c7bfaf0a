"""Scanner geometries and files of ``fastscore reconstruct``: fan-beam CT from its
geometry options, multi-coil k-space (SENSE) from HDF5 or NumPy files, and complex results
written with their magnitude."""

import numpy as np

from ._cli_support import UsageError

__all__ = ["fanbeam_operator", "nifti_geometry"]


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

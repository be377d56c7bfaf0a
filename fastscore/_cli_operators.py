"""The forward operator of the command's options: one construction for ``reconstruct`` (in
this process) and ``reconstruct-many`` (on the Dask workers, item by item)."""

import numpy as np

from ._cli_support import UsageError, as_real
from ._cli_scanner import fanbeam_operator

__all__ = ["image_shape_of", "build_operator"]


def image_shape_of(args, data_shape):
    """The image shape the measurements of `data_shape` come from under ``--operator``."""
    if args.operator == "superres":
        return tuple(n * args.factor for n in data_shape)
    if args.operator in ("ct", "fanbeam"):
        if args.image_shape is None:
            raise UsageError(f"--operator {args.operator} needs --image-shape H W")
        return tuple(args.image_shape)
    return tuple(args.image_shape) if args.image_shape else tuple(data_shape)


def build_operator(args, image_shape, data_shape, read, *, kspace=None):
    """``--operator`` as a LinearOperator. ``read(path, what)`` reads a mask or kernel file;
    an mri operator without ``--mask`` samples where `kspace` is nonzero when it is given,
    else draws a Cartesian mask of ``--acceleration``."""
    from . import operators as ops

    name = args.operator
    if name == "denoise":
        return ops.Identity(image_shape)
    if name == "mri":
        if args.mask:
            mask = read(args.mask, "mask") > 0
            if mask.shape != image_shape:
                raise UsageError(f"the mask has shape {mask.shape}; the image is {image_shape}")
        elif kspace is not None:
            mask = np.asarray(kspace) != 0
        else:
            mask = ops.cartesian_mask(image_shape, args.acceleration, rng=args.seed)
        return ops.MRI(mask)
    if name == "ct":
        angles = np.linspace(0, np.pi, args.angles, endpoint=False)
        return ops.ParallelBeamCT(image_shape, angles)
    if name == "fanbeam":
        return fanbeam_operator(args, image_shape, data_shape)
    if name == "blur":
        kernel = (as_real(read(args.kernel, "kernel"), "kernel", args.kernel)
                  if args.kernel else ops.gaussian_kernel(args.blur_sigma))
        return ops.Blur(kernel, image_shape)
    if name == "inpaint":
        if not args.mask:
            raise UsageError("--operator inpaint needs --mask FILE (nonzero = observed)")
        return ops.Mask(read(args.mask, "mask") > 0)
    return ops.Downsample(image_shape, args.factor)

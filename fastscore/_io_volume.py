"""The image-with-geometry record of the scanner readers (:class:`Volume`) and their
shared existence check; public as :class:`fastscore.io_medical.Volume`."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Volume"]


@dataclass(frozen=True)
class Volume:
    """An image or volume with its geometry.

    Attributes
    ----------
    array : ndarray, 2-D or 3-D
        Voxel values: float32, float64 or complex64/complex128.
    affine : ndarray of shape (4, 4), float64
        Array index ``(i₀, i₁, i₂, 1)`` → world position in mm (see the module notes).
    header : object or None
        The nibabel header of a NIfTI file (written back by :func:`save_nifti`); None for
        DICOM.
    metadata : dict
        Reader-specific facts (DICOM: series UID, modality, slice positions, spacing,
        the files in slice order).
    """

    array: np.ndarray
    affine: np.ndarray
    header: object = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _check_exists(path: str | os.PathLike[str], what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", path)
    return path

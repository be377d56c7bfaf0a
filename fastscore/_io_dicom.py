"""DICOM readers of :mod:`fastscore.io_medical`: one file, or a series assembled into a
volume in the DICOM patient frame (LPS+), arrays ``(slice, row, column)``."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._io_volume import Volume, _check_exists
from ._optional import import_optional

__all__ = ["load_dicom", "load_dicom_series"]



def _dicom_pixels(ds, path):
    """Pixel values of one DICOM dataset with the rescale slope and intercept applied
    (float64 arithmetic, float32 result)."""
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise ValueError(f"{path}: cannot decode the DICOM pixel data ({exc}).") from None
    if pixels.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) > 1:
        raise ValueError(f"{path}: colour DICOM ({ds.SamplesPerPixel} samples per pixel); "
                         "expected grey values.")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return (pixels.astype(np.float64) * slope + intercept).astype(np.float32)


def load_dicom(path: str | os.PathLike[str]) -> NDArray[np.float32]:
    """Read one DICOM file (a slice or a multi-frame volume), rescale slope and intercept
    applied: ``value = stored · RescaleSlope + RescaleIntercept`` (defaults 1 and 0).

    Returns
    -------
    ndarray of float32, 2-D ``(rows, columns)`` or 3-D ``(frames, rows, columns)``
    """
    pydicom = import_optional("pydicom", "io")
    path = _check_exists(path, "DICOM file")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc}).") from None
    return _dicom_pixels(ds, path)


def _float_list(ds, name, n, path):
    value = getattr(ds, name, None)
    if value is None:
        return None
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        values = []
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{path}: {name} must hold {n} finite numbers; got {value!r}.")
    return np.array(values)


def load_dicom_series(folder: str | os.PathLike[str], *,
                      series_uid: str | None = None) -> Volume:
    """Read a folder of single-frame DICOM slices as one volume ordered by slice position.

    Slices are sorted by their position along the slice normal,
    ``z = ImagePositionPatient · (r × c)`` with r, c the row and column direction cosines
    of ImageOrientationPatient (the file names and their order do not matter); without
    positions, by InstanceNumber. Each slice gets its own rescale slope and intercept.
    Hidden files and ``DICOMDIR`` are ignored; every other file must be DICOM.

    Parameters
    ----------
    folder : str or os.PathLike
    series_uid : str, optional
        Which series, when the folder holds several (SeriesInstanceUID).

    Returns
    -------
    Volume
        ``array`` float32 of shape ``(n_slices, rows, columns)``; ``affine`` maps
        ``(slice, row, column, 1)`` to the patient frame (mm):
        ``p = P₀ + slice · Δ + row · s_r c + column · s_c r`` with P₀ the first slice's
        position, Δ the mean step between consecutive slice positions, (s_r, s_c) =
        PixelSpacing; ``metadata`` holds ``series_uid``, ``modality``, ``positions``
        (mm along the normal), ``spacing`` (slice, row, column), ``files`` (slice order)
        and ``ordered_by`` ("position" or "instance_number").

    Raises
    ------
    FileNotFoundError
        No such folder.
    ValueError
        Not a folder; no DICOM slices; a file that is not DICOM; several series and no
        `series_uid`; slices of different sizes or orientations; two slices at the same
        position; uneven slice spacing (a missing slice?); multi-frame files. Each message
        names the file(s).
    """
    pydicom = import_optional("pydicom", "io")
    folder = _check_exists(folder, "DICOM folder")
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: expected a folder of DICOM slices; use load_dicom for "
                         "one file.")
    names = sorted(n for n in os.listdir(folder)
                   if not n.startswith(".") and n.upper() != "DICOMDIR"
                   and os.path.isfile(os.path.join(folder, n)))
    headers = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable DICOM file ({type(exc).__name__}: "
                             f"{exc}); remove it from the series folder.") from None
        headers.append((path, ds))
    if not headers:
        raise ValueError(f"{folder}: no DICOM files in the folder.")
    series: dict[str, list[Any]] = {}
    for path, ds in headers:
        series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    if series_uid is None and len(series) > 1:
        found = ", ".join(f"{uid!r} ({len(v)} files)" for uid, v in series.items())
        raise ValueError(f"{folder} holds {len(series)} series: {found}; pass `series_uid`.")
    uid = next(iter(series)) if series_uid is None else series_uid
    if uid not in series:
        raise ValueError(f"`series_uid` {series_uid!r} is not in {folder}; it holds "
                         f"{sorted(series)}.")
    slices = series[uid]
    return _assemble_series(folder, uid, slices, pydicom)


def _assemble_series(folder, uid, slices, pydicom):
    path0, ds0 = slices[0]
    size0 = (int(getattr(ds0, "Rows", 0)), int(getattr(ds0, "Columns", 0)))
    for path, ds in slices:
        size = (int(getattr(ds, "Rows", 0)), int(getattr(ds, "Columns", 0)))
        if size != size0:
            raise ValueError(f"{path}: slice of {size[0]}×{size[1]} pixels in a series of "
                             f"{size0[0]}×{size0[1]} ({path0}); all slices must be the same "
                             "size.")
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise ValueError(f"{path}: a multi-frame file in a series folder; read it alone "
                             "with load_dicom.")
    orientation = [_float_list(ds, "ImageOrientationPatient", 6, p) for p, ds in slices]
    positions = [_float_list(ds, "ImagePositionPatient", 3, p) for p, ds in slices]
    spacing = _float_list(ds0, "PixelSpacing", 2, path0)
    spacing = np.ones(2) if spacing is None else spacing
    if all(o is not None for o in orientation) and all(p is not None for p in positions):
        for (path, _), o in zip(slices, orientation):
            if np.abs(o - orientation[0]).max() > 1e-4:
                raise ValueError(f"{path}: ImageOrientationPatient {o.tolist()} differs from "
                                 f"{orientation[0].tolist()} ({path0}); one series must "
                                 "have one orientation.")
        row_dir, col_dir = orientation[0][:3], orientation[0][3:]
        normal = np.cross(row_dir, col_dir)
        z = np.array([p @ normal for p in positions])
        order = np.argsort(z, kind="stable")
        ordered_by = "position"
    else:
        numbers_ = [getattr(ds, "InstanceNumber", None) for _, ds in slices]
        if any(n is None for n in numbers_):
            missing = next(p for (p, _), n in zip(slices, numbers_) if n is None)
            raise ValueError(f"{missing}: neither ImagePositionPatient/"
                             "ImageOrientationPatient nor InstanceNumber: cannot order the "
                             "slices.")
        order = np.argsort([int(n) for n in numbers_], kind="stable")
        z = np.asarray([int(n) for n in numbers_], dtype=np.float64)
        row_dir, col_dir, normal = np.eye(3)
        ordered_by = "instance_number"
    z = z[order]
    files = [slices[i][0] for i in order]
    steps = np.diff(z)
    if len(steps) and ordered_by == "position":
        dup = int(np.argmin(steps))
        if steps[dup] < 1e-3:
            raise ValueError(f"{files[dup]} and {files[dup + 1]}: two slices at the same "
                             f"position ({z[dup]:.4g} mm along the normal).")
        typical = float(np.median(steps))
        bad = np.flatnonzero(np.abs(steps - typical) > 0.01 * typical + 1e-3)
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{files[k]} and {files[k + 1]}: slice gap {steps[k]:.4g} mm "
                             f"where the series has {typical:.4g} mm; a missing slice? "
                             "(uneven spacing is not supported).")
    array = np.empty((len(files),) + size0, dtype=np.float32)
    for k, path in enumerate(files):
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable DICOM file ({exc}).") from None
        pixels = _dicom_pixels(ds, path)
        if pixels.shape != size0:
            raise ValueError(f"{path}: pixel data of shape {pixels.shape}; its header says "
                             f"{size0}.")
        array[k] = pixels
    affine = np.eye(4)
    if ordered_by == "position":
        first, last = positions[order[0]], positions[order[-1]]
        thickness = float(getattr(slices[order[0]][1], "SliceThickness", 1.0) or 1.0)
        step = (last - first) / (len(files) - 1) if len(files) > 1 else normal * thickness
        affine[:3, 0], affine[:3, 3] = step, first
        slice_spacing = float(np.linalg.norm(step))
    else:
        slice_spacing = float(getattr(ds0, "SpacingBetweenSlices", 0) or
                              getattr(ds0, "SliceThickness", 1.0) or 1.0)
        affine[:3, 0] = normal * slice_spacing
    affine[:3, 1] = col_dir * spacing[0]
    affine[:3, 2] = row_dir * spacing[1]
    metadata = {"series_uid": uid, "modality": str(getattr(ds0, "Modality", "")),
                "positions": z, "spacing": (slice_spacing, float(spacing[0]),
                                            float(spacing[1])),
                "files": files, "ordered_by": ordered_by}
    return Volume(array, affine, None, metadata)

"""Random piecewise-constant phantoms: ellipses, rotated rectangles and disks painted with
random intensities and contrasts — the training distribution of the "phantom" prior.

An image starts at a uniform background and receives shapes one after the other, each
painted over what is below it with its partial-volume coverage ``c ∈ [0, 1]`` (point
supersampling, as in :mod:`fastscore.data`):

.. math::  x \\leftarrow (1 - c)\\, x + c\\, \\ell

where the level ``ℓ`` is either a fresh level uniform in [0, 1] (high contrast) or the
current value at the shape's centre plus a small step (low contrast). No fixed phantom
(in particular not Shepp–Logan) is ever drawn: every geometry is random.
"""

import numpy as np

from ._validation import check_float_dtype, check_int, check_rng
from .data import (
    _disk_coverage,
    _pool,
    _rectangle_coverage,
    _subpixel_centres,
)

__all__ = ["ellipse_coverage", "random_phantoms"]

_KINDS = ("ellipse", "rectangle", "disk")


def ellipse_coverage(cx, cy, a, b, angle, size, supersampling=4):
    """Covered fraction of each pixel by rotated ellipses, shape (n, size, size), float64.

    Pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)``; ellipse ``k`` has centre
    ``(cx_k, cy_k)``, semi-axes ``a_k`` (along the direction `angle`) and ``b_k``.
    """
    n = len(cx)
    s = int(supersampling)
    coords = _subpixel_centres(size, s)
    cos, sin = np.cos(angle), np.sin(angle)
    cover = np.empty((n, size, size), dtype=np.float64)
    for k in range(n):
        dx = coords[None, :] - cx[k]
        dy = coords[:, None] - cy[k]
        u = dx * cos[k] + dy * sin[k]
        v = -dx * sin[k] + dy * cos[k]
        inside = (u / a[k]) ** 2 + (v / b[k]) ** 2 <= 1.0
        cover[k] = _pool(inside[None], 1, size, s)[0]
    return cover


def random_phantoms(n_images, size=128, rng=None, dtype=np.float64, *, n_shapes=(3, 10),
                    supersampling=4):
    """Random piecewise-constant phantoms (ellipses, rectangles, disks; random contrasts).

    Parameters
    ----------
    n_images : int >= 1
    size : int >= 8
    rng : None, int or numpy.random.Generator
        Per image, in order: background level U(0, 1), number of shapes (uniform in
        `n_shapes`), then per shape its kind, centre U(0, size)², size (semi-axes or
        half-sides U(0.02, 0.3)·size, disk radius the first), angle U(0, π), and its level
        (with probability 1/2 U(0, 1), else the current value at its centre + U(−0.2, 0.2),
        clipped to [0, 1]).
    dtype : float32 or float64
    n_shapes : (low, high) ints, inclusive
    supersampling : int >= 1

    Returns
    -------
    ndarray of shape (n_images, size, size), values in [0, 1]
    """
    n_images = check_int(n_images, "n_images", low=1)
    size = check_int(size, "size", low=8)
    s = check_int(supersampling, "supersampling", low=1)
    lo, hi = (check_int(v, "n_shapes", low=1) for v in n_shapes)
    if lo > hi:
        raise ValueError(f"`n_shapes` must be (low, high) with low <= high; got {n_shapes!r}.")
    dtype = check_float_dtype(dtype)
    rng = check_rng(rng)
    out = np.empty((n_images, size, size), dtype=np.float64)
    one = np.ones(1)
    for i in range(n_images):
        x = np.full((size, size), rng.uniform(0.0, 1.0))
        for _ in range(int(rng.integers(lo, hi + 1))):
            kind = _KINDS[int(rng.integers(0, 3))]
            cx, cy = rng.uniform(0.0, size, 2)
            r1, r2 = rng.uniform(0.02, 0.3, 2) * size
            angle = rng.uniform(0.0, np.pi)
            if rng.random() < 0.5:
                level = rng.uniform(0.0, 1.0)
            else:
                centre = x[min(int(cy), size - 1), min(int(cx), size - 1)]
                level = float(np.clip(centre + rng.uniform(-0.2, 0.2), 0.0, 1.0))
            if kind == "ellipse":
                c = ellipse_coverage(cx * one, cy * one, r1 * one, r2 * one, angle * one,
                                     size, s)[0]
            elif kind == "rectangle":
                c = _rectangle_coverage(cx * one, cy * one, 2 * r1 * one, 2 * r2 * one,
                                        angle * one, size, s)[0]
            else:
                c = _disk_coverage(cx * one, cy * one, r1 * one, size, s)[0]
            x = (1.0 - c) * x + c * level
        out[i] = x
    return out.astype(dtype)

"""Phantoms and patch datasets: the toy rectangles of DESIGN.md, disks, the Shepp–Logan
phantom in 2-D and 3-D, and random patch extraction from image collections.

Everything random is drawn from `rng` (a ``numpy.random.Generator`` or an int seed) in a
documented order, so a seed fixes the output exactly. Partial-volume images are computed by
point supersampling, vectorised over images and sub-pixels with NumPy (in chunks of bounded
memory), never with per-pixel Python loops.
"""

import math

import numpy as np

from ._validation import (
    as_float_array,
    check_choice,
    check_float_dtype,
    check_int,
    check_int_tuple,
    check_rng,
)

__all__ = [
    "rectangles",
    "disks",
    "shepp_logan",
    "extract_patches",
    "render_rectangles",
    "render_disks",
    "RECTANGLE_PARAMETERS",
    "DISK_PARAMETERS",
    "DEFAULT_SUPERSAMPLING",
]

#: Column names of the parameter array returned by ``rectangles(..., return_params=True)``.
RECTANGLE_PARAMETERS = ("x", "y", "width", "height", "angle", "background", "amplitude")
#: Column names of the parameter array returned by ``disks(..., return_params=True)``.
DISK_PARAMETERS = ("x", "y", "radius", "background", "amplitude")
#: Sub-samples per pixel and axis for the partial-volume fraction (8 x 8 = 64 per pixel).
DEFAULT_SUPERSAMPLING = 8

# bound on the sub-sample points evaluated at once (memory of a few float64 arrays of it)
_CHUNK_POINTS = 1 << 21


def _subpixel_centres(size, supersampling):
    """Centres of the sub-pixels along one axis: pixel i covers [i, i+1), split in s parts."""
    s = supersampling
    return (np.arange(size * s, dtype=np.float64) + 0.5) / s


def _pool(inside, n, size, s):
    """Fraction of each pixel's s x s sub-samples that are inside: (n, size, size)."""
    counts = inside.reshape(n, size, s, size, s).sum(axis=(2, 4), dtype=np.int32)
    return counts / float(s * s)


def _levels(rng, n_images):
    background = rng.normal(1.0, 0.1, n_images)
    amplitude = rng.normal(1.0, 0.03, n_images)
    return background, amplitude


def rectangles(n_images, size=16, rng=None, dtype=np.float64, *, return_params=False,
               supersampling=DEFAULT_SUPERSAMPLING):
    """Images of one rotated rectangle on a background: the toy distribution of DESIGN.md.

    .. math:: x = b + f\\,R, \\qquad R_{ij} = |\\,\\text{pixel}_{ij} \\cap \\text{rectangle}\\,|
        \\in [0, 1]

    For an ``n x n`` image (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``: column ``j`` is the
    x axis, row ``i`` the y axis), each image draws, independently:

    - centre :math:`(c_x, c_y)` uniform in :math:`[0.2n, 0.8n]^2`;
    - width :math:`w` and height :math:`h` uniform in :math:`[3, 12] \\cdot n/16` pixels;
    - orientation :math:`\\phi` uniform in :math:`[0, \\pi)`: the width axis points along
      :math:`(\\cos\\phi, \\sin\\phi)` in (x, y), i.e. turned from the x axis towards
      increasing row index;
    - background :math:`b \\sim N(1, 0.1^2)` and foreground amplitude
      :math:`f \\sim N(1, 0.03^2)`.

    The rectangle may be cut by the border. :math:`R` is the covered fraction of each pixel
    (partial volume), computed by supersampling: ``supersampling`` x ``supersampling``
    sub-pixel centres per pixel (default 8 x 8 = 64), so :math:`R` is a multiple of
    1/64. Seven numbers describe an image.

    Parameters
    ----------
    n_images : int >= 1
    size : int >= 1, default 16
        Image side ``n`` in pixels.
    rng : None, int or numpy.random.Generator
        Source of randomness. The draws are made in this order, each a vector over the
        images: :math:`c_x, c_y, w, h, \\phi` (``rng.uniform``), then :math:`b, f`
        (``rng.normal``).
    dtype : {float64, float32}, default float64
        Dtype of the images (the coverage is computed in float64).
    return_params : bool, default False
        Also return the parameters.
    supersampling : int >= 1, default 8
        Sub-samples per pixel along each axis.

    Returns
    -------
    images : ndarray of shape (n_images, size, size)
    params : ndarray of shape (n_images, 7), float64
        Only with ``return_params``: columns :data:`RECTANGLE_PARAMETERS` =
        ``(x, y, width, height, angle, background, amplitude)``, positions in pixel units
        (x along columns, y along rows), angle in radians.

    Notes
    -----
    Cost: ``n_images * (size * supersampling)**2`` point tests, vectorised in chunks of
    about two million points.

    Examples
    --------
    >>> from fastscore.data import rectangles
    >>> x, params = rectangles(4, rng=0, return_params=True)
    >>> x.shape, params.shape
    ((4, 16, 16), (4, 7))
    """
    n_images = check_int(n_images, "n_images", low=1)
    size = check_int(size, "size", low=1)
    s = check_int(supersampling, "supersampling", low=1)
    dtype = check_float_dtype(dtype)
    rng = check_rng(rng)
    n = float(size)
    cx = rng.uniform(0.2 * n, 0.8 * n, n_images)
    cy = rng.uniform(0.2 * n, 0.8 * n, n_images)
    width = rng.uniform(3.0 * n / 16, 12.0 * n / 16, n_images)
    height = rng.uniform(3.0 * n / 16, 12.0 * n / 16, n_images)
    angle = rng.uniform(0.0, math.pi, n_images)
    background, amplitude = _levels(rng, n_images)

    cover = _rectangle_coverage(cx, cy, width, height, angle, size, s)
    images = (background[:, None, None] + amplitude[:, None, None] * cover).astype(dtype)
    if return_params:
        params = np.stack([cx, cy, width, height, angle, background, amplitude], axis=1)
        return images, params
    return images


def _rectangle_coverage(cx, cy, width, height, angle, size, s):
    """Covered fraction of each pixel, (n, size, size) float64, by s x s supersampling."""
    n_images = cx.shape[0]
    coords = _subpixel_centres(size, s)
    cos, sin = np.cos(angle), np.sin(angle)
    cover = np.empty((n_images, size, size), dtype=np.float64)
    step = max(1, _CHUNK_POINTS // (size * s) ** 2)
    for lo in range(0, n_images, step):
        hi = min(n_images, lo + step)
        k = slice(lo, hi)
        dx = coords[None, :] - cx[k, None]                     # (c, S) along columns
        dy = coords[None, :] - cy[k, None]                     # (c, S) along rows
        # coordinates along the width axis (u) and the height axis (v), shape (c, S, S)
        u = (dy * sin[k, None])[:, :, None] + (dx * cos[k, None])[:, None, :]
        v = (dy * cos[k, None])[:, :, None] - (dx * sin[k, None])[:, None, :]
        np.abs(u, out=u)
        np.abs(v, out=v)
        inside = (u <= 0.5 * width[k, None, None]) & (v <= 0.5 * height[k, None, None])
        cover[k] = _pool(inside, hi - lo, size, s)
    return cover


def _disk_coverage(cx, cy, radius, size, s):
    """Covered fraction of each pixel, (n, size, size) float64, by s x s supersampling."""
    n_images = cx.shape[0]
    coords = _subpixel_centres(size, s)
    cover = np.empty((n_images, size, size), dtype=np.float64)
    step = max(1, _CHUNK_POINTS // (size * s) ** 2)
    for lo in range(0, n_images, step):
        hi = min(n_images, lo + step)
        k = slice(lo, hi)
        dx2 = (coords[None, :] - cx[k, None]) ** 2
        dy2 = (coords[None, :] - cy[k, None]) ** 2
        inside = dy2[:, :, None] + dx2[:, None, :] <= (radius[k] ** 2)[:, None, None]
        cover[k] = _pool(inside, hi - lo, size, s)
    return cover


def disks(n_images, size=16, rng=None, dtype=np.float64, *, return_params=False,
          supersampling=DEFAULT_SUPERSAMPLING):
    """Images of one disk fully inside the image, at the rectangles' levels (a
    distribution-shift set).

    .. math:: x = b + f\\,R, \\qquad R_{ij} = |\\,\\text{pixel}_{ij} \\cap \\text{disk}\\,|

    Per image: radius :math:`r` uniform in :math:`[6, 24] \\cdot n/64` pixels, then the centre
    uniform in :math:`[r, n - r]^2` (so the disk lies fully inside), background
    :math:`b \\sim N(1, 0.1^2)` and amplitude :math:`f \\sim N(1, 0.03^2)`; coverage by
    ``supersampling`` x ``supersampling`` point supersampling as in :func:`rectangles`.

    Parameters
    ----------
    n_images : int >= 1
    size : int >= 1, default 16
    rng : None, int or numpy.random.Generator
        Draw order, each a vector over the images: :math:`r`, then the centre offsets
        :math:`c_x, c_y` (``rng.uniform`` on [0, 1), scaled to :math:`[r, n - r]`), then
        :math:`b, f`.
    dtype : {float64, float32}, default float64
    return_params : bool, default False
    supersampling : int >= 1, default 8

    Returns
    -------
    images : ndarray of shape (n_images, size, size)
    params : ndarray of shape (n_images, 5), float64
        Only with ``return_params``: columns :data:`DISK_PARAMETERS` =
        ``(x, y, radius, background, amplitude)``.
    """
    n_images = check_int(n_images, "n_images", low=1)
    size = check_int(size, "size", low=1)
    s = check_int(supersampling, "supersampling", low=1)
    dtype = check_float_dtype(dtype)
    rng = check_rng(rng)
    n = float(size)
    radius = rng.uniform(6.0 * n / 64, 24.0 * n / 64, n_images)
    cx = radius + rng.uniform(0.0, 1.0, n_images) * (n - 2 * radius)
    cy = radius + rng.uniform(0.0, 1.0, n_images) * (n - 2 * radius)
    background, amplitude = _levels(rng, n_images)

    cover = _disk_coverage(cx, cy, radius, size, s)
    images = (background[:, None, None] + amplitude[:, None, None] * cover).astype(dtype)
    if return_params:
        return images, np.stack([cx, cy, radius, background, amplitude], axis=1)
    return images


def _check_params(params, n_columns, names):
    p = as_float_array(params, "params", ndim=(1, 2), finite=True)
    p = np.atleast_2d(p).astype(np.float64)
    if p.shape[1] != n_columns:
        raise ValueError(f"`params` must have {n_columns} columns {names}; got shape "
                         f"{np.shape(params)}.")
    return p


def render_rectangles(params, size=16, *, supersampling=DEFAULT_SUPERSAMPLING,
                      dtype=np.float64):
    """Draw rectangle images from given parameters (the model of :func:`rectangles`).

    Useful for distribution-shift sets (the same rectangles with another amplitude or
    offset) and for tests: ``render_rectangles(p, n)`` with the parameters returned by
    ``rectangles(..., return_params=True)`` reproduces those images exactly.

    Parameters
    ----------
    params : ndarray of shape (n_images, 7) or (7,)
        Columns :data:`RECTANGLE_PARAMETERS` = ``(x, y, width, height, angle, background,
        amplitude)``, positions and sizes in pixels, angle in radians. Any finite values
        (non-positive sizes give an empty rectangle).
    size : int >= 1, default 16
    supersampling : int >= 1, default 8
    dtype : {float64, float32}, default float64

    Returns
    -------
    images : ndarray of shape (n_images, size, size)
    """
    return _render(params, RECTANGLE_PARAMETERS, _rectangle_coverage, size, supersampling,
                   dtype)


def render_disks(params, size=16, *, supersampling=DEFAULT_SUPERSAMPLING, dtype=np.float64):
    """Draw disk images from given parameters (the model of :func:`disks`).

    Parameters
    ----------
    params : ndarray of shape (n_images, 5) or (5,)
        Columns :data:`DISK_PARAMETERS` = ``(x, y, radius, background, amplitude)``.
    size : int >= 1, default 16
    supersampling : int >= 1, default 8
    dtype : {float64, float32}, default float64

    Returns
    -------
    images : ndarray of shape (n_images, size, size)
    """
    return _render(params, DISK_PARAMETERS, _disk_coverage, size, supersampling, dtype)


def _render(params, names, coverage, size, supersampling, dtype):
    """background + amplitude · coverage(shape columns), the last two columns being the
    levels; shared by the phantom renderers."""
    p = _check_params(params, len(names), names)
    size = check_int(size, "size", low=1)
    s = check_int(supersampling, "supersampling", low=1)
    dtype = check_float_dtype(dtype)
    cover = coverage(*(p[:, k] for k in range(len(names) - 2)), size, s)
    return (p[:, -2, None, None] + p[:, -1, None, None] * cover).astype(dtype)


# ------------------------------------------------------------------------ Shepp-Logan

# 2-D: intensity A, semi-axes (a, b), centre (x0, y0), rotation phi (degrees), on the
# [-1, 1]^2 field of view with y pointing up (Shepp & Logan 1974; Kak & Slaney 1988,
# table 3.1). Intensities: Toft's modified (higher-contrast) set, or the original one.
_SL2_GEOMETRY = np.array([
    # a       b       x0     y0       phi
    [0.69,   0.92,   0.0,   0.0,     0.0],
    [0.6624, 0.874,  0.0,  -0.0184,  0.0],
    [0.11,   0.31,   0.22,  0.0,   -18.0],
    [0.16,   0.41,  -0.22,  0.0,    18.0],
    [0.21,   0.25,   0.0,   0.35,    0.0],
    [0.046,  0.046,  0.0,   0.1,     0.0],
    [0.046,  0.046,  0.0,  -0.1,     0.0],
    [0.046,  0.023, -0.08, -0.605,   0.0],
    [0.023,  0.023,  0.0,  -0.606,   0.0],
    [0.023,  0.046,  0.06, -0.605,   0.0],
])
# 3-D: semi-axes (a, b, c), centre (x0, y0, z0), z-x-z Euler angles (phi, theta, psi) in
# degrees: the ellipsoid table of the 3-D Shepp-Logan phantom as published with Toft's
# modified intensities (Toft 1996, pp. 199-200; Schabel's phantom3d table).
_SL3_GEOMETRY = np.array([
    # a       b      c      x0     y0       z0     phi   theta  psi
    [0.69,   0.92,  0.81,  0.0,   0.0,     0.0,    0.0,  0.0,  0.0],
    [0.6624, 0.874, 0.78,  0.0,  -0.0184,  0.0,    0.0,  0.0,  0.0],
    [0.11,   0.31,  0.22,  0.22,  0.0,     0.0,  -18.0,  0.0, 10.0],
    [0.16,   0.41,  0.28, -0.22,  0.0,     0.0,   18.0,  0.0, 10.0],
    [0.21,   0.25,  0.41,  0.0,   0.35,   -0.15,   0.0,  0.0,  0.0],
    [0.046,  0.046, 0.05,  0.0,   0.1,     0.25,   0.0,  0.0,  0.0],
    [0.046,  0.046, 0.05,  0.0,  -0.1,     0.25,   0.0,  0.0,  0.0],
    [0.046,  0.023, 0.05, -0.08, -0.605,   0.0,    0.0,  0.0,  0.0],
    [0.023,  0.023, 0.02,  0.0,  -0.606,   0.0,    0.0,  0.0,  0.0],
    [0.023,  0.046, 0.02,  0.06, -0.605,   0.0,    0.0,  0.0,  0.0],
])
_SL_INTENSITIES = {
    "modified": np.array([1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    "original": np.array([1.0, -0.98, -0.02, -0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]),
}


def _rotation_zxz(phi, theta, psi):
    """Rotation matrix R = Rz(phi) Rx(theta) Rz(psi), angles in degrees."""
    def rz(a):
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    rx = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return rz(phi) @ rx @ rz(psi)


def _axis_coordinates(n, scale, s, flip):
    """Sub-pixel centre coordinates of one axis, centred, in units of the half field of view."""
    u = ((np.arange(n * s, dtype=np.float64) + 0.5) / s - n / 2.0) / scale
    return -u if flip else u


def shepp_logan(shape, *, variant="modified", supersampling=1, dtype=np.float64):
    """The Shepp–Logan head phantom, 2-D of any size or 3-D, from its ellipse/ellipsoid table.

    Each pixel (voxel) value is the sum of the intensities of the ellipses (ellipsoids)
    containing its centre, :math:`x(p) = \\sum_k A_k [\\,\\|D_k^{-1} R_k^\\top (p - c_k)\\| \\le 1]`,
    averaged over ``supersampling**ndim`` sub-pixel centres per pixel when
    ``supersampling > 1`` (partial volume).

    Geometry: the phantom lives in :math:`[-1, 1]^d`, mapped onto the *shortest* image axis
    with square pixels and centred on the others (a non-square image shows the phantom
    undistorted with background on the longer axis). Pixel centres sit at
    :math:`(i + 1/2)` in pixel units. 2-D: columns are x (left to right), rows are y with
    y pointing **up** (row 0 is the top, as in the usual picture); 3-D ``(D, H, W)``: the
    same in each slice, slices along z increasing with the index.

    Tables: 2-D, the ten ellipses of Shepp & Logan (1974) as in Kak & Slaney (1988,
    table 3.1); 3-D, the ten-ellipsoid table published with the modified phantom (Toft 1996;
    the table of Schabel's ``phantom3d``), rotations as z-x-z Euler angles
    :math:`R = R_z(\\phi) R_x(\\theta) R_z(\\psi)` about each ellipsoid's own centre (with
    :math:`\\theta = 0` the two z rotations add: the two tilted ellipsoids turn by −8° and
    28°). Intensities: ``variant="modified"`` uses Toft's higher-contrast set (1, −0.8,
    −0.2, −0.2, 0.1 × 6; values in [0, 1]), ``"original"`` the original (1, −0.98, −0.02,
    −0.02, 0.01 × 6; values in [0, 1] with 1 only on the skull).

    Parameters
    ----------
    shape : int or tuple of 2 or 3 int
        ``n`` (an ``n x n`` image), ``(H, W)`` or ``(D, H, W)``.
    variant : {"modified", "original"}, default "modified"
    supersampling : int >= 1, default 1
        Sub-samples per pixel along each axis (1: the value at the pixel centre).
    dtype : {float64, float32}, default float64

    Returns
    -------
    phantom : ndarray of shape `shape`

    Examples
    --------
    >>> from fastscore.data import shepp_logan
    >>> x = shepp_logan(128)
    >>> x.shape, float(x.min()), float(x.max())
    ((128, 128), 0.0, 1.0)
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (int(shape), int(shape))
    try:
        ndim = len(shape)
    except TypeError:
        raise TypeError(f"`shape` must be an int or a tuple of 2 or 3 ints; got {shape!r}.") \
            from None
    if ndim not in (2, 3):
        raise ValueError(f"`shape` must have 2 or 3 entries; got {shape!r}.")
    shape = check_int_tuple(shape, "shape", ndim, low=1)
    check_choice(variant, "variant", tuple(_SL_INTENSITIES))
    s = check_int(supersampling, "supersampling", low=1)
    dtype = check_float_dtype(dtype)
    intensity = _SL_INTENSITIES[variant]
    scale = min(shape) / 2.0

    if ndim == 2:
        H, W = shape
        ys = _axis_coordinates(H, scale, s, flip=True)
        xs = _axis_coordinates(W, scale, s, flip=False)
        out = np.empty((H, W), dtype=np.float64)
        rows = max(1, _CHUNK_POINTS // (W * s * s))       # image rows per chunk
        for lo in range(0, H, rows):
            hi = min(H, lo + rows)
            y = ys[lo * s:hi * s, None]
            acc = np.zeros((y.shape[0], xs.size))
            for A, (a, b, x0, y0, phi) in zip(intensity, _SL2_GEOMETRY):
                c, sn = math.cos(math.radians(phi)), math.sin(math.radians(phi))
                dx, dy = xs[None, :] - x0, y - y0
                u = dx * c + dy * sn
                v = dy * c - dx * sn
                acc += A * ((u / a) ** 2 + (v / b) ** 2 <= 1.0)
            out[lo:hi] = acc.reshape(hi - lo, s, W, s).mean(axis=(1, 3))
    else:
        D, H, W = shape
        zs = _axis_coordinates(D, scale, s, flip=False)
        ys = _axis_coordinates(H, scale, s, flip=True)
        xs = _axis_coordinates(W, scale, s, flip=False)
        out = np.empty((D, H, W), dtype=np.float64)
        slices = max(1, _CHUNK_POINTS // (H * W * s ** 3))
        for lo in range(0, D, slices):
            hi = min(D, lo + slices)
            z = zs[lo * s:hi * s, None, None]
            acc = np.zeros((z.shape[0], ys.size, xs.size))
            for A, row in zip(intensity, _SL3_GEOMETRY):
                axes, centre, angles = row[:3], row[3:6], row[6:]
                R = _rotation_zxz(*angles)
                dx = xs[None, None, :] - centre[0]
                dy = ys[None, :, None] - centre[1]
                dz = z - centre[2]
                q = 0.0
                for k in range(3):   # (R^T d)_k = sum_j R[j, k] d_j
                    comp = R[0, k] * dx + R[1, k] * dy + R[2, k] * dz
                    q = q + (comp / axes[k]) ** 2
                acc += A * (q <= 1.0)
            out[lo:hi] = acc.reshape(hi - lo, s, H, s, W, s).mean(axis=(1, 3, 5))
    # every level of the table is >= 0, but 1 - 0.8 - 0.2 rounds to -5.6e-17: snap such
    # rounding residue to an exact 0
    np.clip(out, 0.0, None, out=out)
    out[np.abs(out) < 1e-12] = 0.0
    return out.astype(dtype)


# ------------------------------------------------------------------------ patches


def _dihedral_permutations(ph, pw):
    """Index permutations of a flattened (ph, pw) patch for the allowed symmetries.

    Square patches: the 8 elements of the dihedral group (4 rotations x optional
    transpose); rectangular: the 4 flips (identity, up-down, left-right, both).
    """
    idx = np.arange(ph * pw).reshape(ph, pw)
    if ph == pw:
        perms = [np.rot90(t, k) for t in (idx, idx.T) for k in range(4)]
    else:
        perms = [idx, idx[::-1], idx[:, ::-1], idx[::-1, ::-1]]
    return np.stack([p.reshape(-1) for p in perms])


def _flip_permutations(patch):
    """Index permutations of a flattened 3-D patch for the 8 combinations of axis flips."""
    idx = np.arange(math.prod(patch)).reshape(patch)
    perms = []
    for f in range(8):
        t = idx
        for axis in range(3):
            if f >> axis & 1:
                t = np.flip(t, axis)
        perms.append(t.reshape(-1))
    return np.stack(perms)


def _as_collection(images):
    """images -> (list of float arrays, spatial ndim, dtype, stack or None).

    ``stack`` is an ``(n_images, *spatial)`` array when all images share one shape."""
    if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
        arr = as_float_array(images, "images", ndim=(2, 3, 4))
        stack = arr[None] if arr.ndim == 2 else arr
        return list(stack), stack.ndim - 1, arr.dtype, stack
    if len(images) == 0:
        raise ValueError("`images` must hold at least one image; got an empty sequence.")
    arrays = [as_float_array(im, f"images[{i}]", ndim=(2, 3)) for i, im in enumerate(images)]
    ndims = {a.ndim for a in arrays}
    dtypes = {a.dtype for a in arrays}
    if len(ndims) > 1:
        raise ValueError("`images` must all be 2-D or all be 3-D; got a mix of "
                         f"{sorted(ndims)}-D arrays.")
    if len(dtypes) > 1:
        raise TypeError(f"`images` must share one float dtype; got {sorted(map(str, dtypes))}."
                        " Cast them explicitly.")
    same = len({a.shape for a in arrays}) == 1
    return arrays, arrays[0].ndim, arrays[0].dtype, np.stack(arrays) if same else None


def extract_patches(images, patch_size, n_patches, rng=None, augment=False):
    """Random patches from an image collection, one flattened patch a row, for training.

    Every patch position of the collection (every image, every corner with the patch fully
    inside) is equally likely; positions are drawn independently, with replacement.

    Parameters
    ----------
    images : ndarray or sequence of ndarray
        ``(H, W)`` one image; ``(n_images, H, W)`` a stack of 2-D images;
        ``(n_images, D, H, W)`` a stack of 3-D volumes; or a list of 2-D (or of 3-D) arrays
        of possibly different sizes. A single 3-D volume is passed as ``[volume]`` or
        ``volume[None]``. Dtype as in the package table (float32/float64 kept, integers
        -> float64).
    patch_size : int or tuple of int
        Patch extent per spatial axis, at most the smallest image extent.
    n_patches : int >= 1
    rng : None, int or numpy.random.Generator
        Draw order: image indices (``rng.integers``, or ``rng.choice`` weighted by the
        number of positions for a list of unequal images), then the corner along each
        axis, then the symmetry index when augmenting.
    augment : bool, default False
        Apply a random symmetry to each patch: for 2-D, one of the 8 dihedral
        transformations (rotations by multiples of 90° and transposition) of a square
        patch, or one of the 4 flips of a rectangular one; for 3-D, one of the 8
        combinations of flips along the three axes.

    Returns
    -------
    patches : ndarray of shape (n_patches, prod(patch_size))
        C-order flattened patches, dtype of `images`.

    Examples
    --------
    >>> from fastscore.data import rectangles, extract_patches
    >>> P = extract_patches(rectangles(10, rng=0), 3, 1000, rng=1, augment=True)
    >>> P.shape
    (1000, 9)
    """
    arrays, ndim, dtype, stack = _as_collection(images)
    patch = check_int_tuple(patch_size, "patch_size", ndim, low=1)
    n_patches = check_int(n_patches, "n_patches", low=1)
    rng = check_rng(rng)
    smallest = tuple(min(a.shape[k] for a in arrays) for k in range(ndim))
    if any(p > m for p, m in zip(patch, smallest)):
        raise ValueError(f"`patch_size` must be at most the smallest image extent {smallest}; "
                         f"got {patch}.")
    d = math.prod(patch)
    if stack is not None:
        which = rng.integers(0, len(arrays), n_patches)
    else:
        counts = np.array([math.prod(n - p + 1 for n, p in zip(a.shape, patch))
                           for a in arrays], dtype=np.float64)
        which = rng.choice(len(arrays), size=n_patches, p=counts / counts.sum())
    shapes = np.array([a.shape for a in arrays], dtype=np.int64)[which]   # (n, ndim)
    corners = [rng.integers(0, shapes[:, k] - patch[k] + 1) for k in range(ndim)]
    offsets = np.indices(patch).reshape(ndim, d)                          # (ndim, d)

    if stack is not None:
        index = (which[:, None],) + tuple(corners[k][:, None] + offsets[k][None, :]
                                          for k in range(ndim))
        out = stack[index]
    else:
        out = np.empty((n_patches, d), dtype=dtype)
        for i in np.unique(which):
            sel = np.flatnonzero(which == i)
            index = tuple(corners[k][sel, None] + offsets[k][None, :] for k in range(ndim))
            out[sel] = arrays[i][index]
    if augment:
        perms = _dihedral_permutations(*patch) if ndim == 2 else _flip_permutations(patch)
        k = rng.integers(0, perms.shape[0], n_patches)
        out = np.take_along_axis(out, perms[k], axis=1)
    return np.ascontiguousarray(out, dtype=dtype)

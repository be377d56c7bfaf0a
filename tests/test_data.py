import math

import numpy as np
import pytest

from fastscore.data import (
    DEFAULT_SUPERSAMPLING,
    DISK_PARAMETERS,
    RECTANGLE_PARAMETERS,
    disks,
    extract_patches,
    rectangles,
    render_disks,
    render_rectangles,
    shepp_logan,
)

LEVELS = DEFAULT_SUPERSAMPLING ** 2


@pytest.fixture(scope="module")
def many_rectangles():
    return rectangles(4000, rng=123, return_params=True)


# ----------------------------------------------------------------------------- rectangles


def test_rectangles_shapes_dtypes():
    x = rectangles(5, rng=0)
    assert x.shape == (5, 16, 16) and x.dtype == np.float64
    y, p = rectangles(3, size=24, rng=0, dtype=np.float32, return_params=True)
    assert y.shape == (3, 24, 24) and y.dtype == np.float32
    assert p.shape == (3, 7) and p.dtype == np.float64
    assert len(RECTANGLE_PARAMETERS) == 7


def test_rectangles_reproducible():
    a = rectangles(6, rng=42)
    b = rectangles(6, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rectangles(6, rng=43))
    # float32 is the float64 image rounded
    np.testing.assert_array_equal(rectangles(6, rng=42, dtype=np.float32),
                                  a.astype(np.float32))


def test_rectangle_parameter_statistics(many_rectangles):
    _, p = many_rectangles
    n = 16
    cx, cy, w, h, angle, b, f = p.T
    # exact ranges
    for c in (cx, cy):
        assert c.min() >= 0.2 * n and c.max() <= 0.8 * n
    for s in (w, h):
        assert s.min() >= 3 * n / 16 and s.max() <= 12 * n / 16
    assert angle.min() >= 0 and angle.max() < math.pi
    # moments; N = 4000, tolerances ~4.5 standard errors
    uniform_std = lambda lo, hi: (hi - lo) / math.sqrt(12)
    for c in (cx, cy):
        assert c.mean() == pytest.approx(0.5 * n, abs=0.12)
        assert c.std() == pytest.approx(uniform_std(0.2 * n, 0.8 * n), abs=0.05)
    for s in (w, h):
        assert s.mean() == pytest.approx(7.5 * n / 16, abs=0.2)
        assert s.std() == pytest.approx(uniform_std(3, 12), abs=0.1)
    assert angle.mean() == pytest.approx(math.pi / 2, abs=0.065)
    assert angle.std() == pytest.approx(uniform_std(0, math.pi), abs=0.03)
    assert b.mean() == pytest.approx(1.0, abs=0.0075)
    assert b.std() == pytest.approx(0.1, abs=0.0055)
    assert f.mean() == pytest.approx(1.0, abs=0.0022)
    assert f.std() == pytest.approx(0.03, abs=0.0017)


def test_rectangle_partial_volume_values(many_rectangles):
    x, p = many_rectangles
    b, f = p[:, 5, None, None], p[:, 6, None, None]
    R = (x - b) / f
    assert R.min() >= -1e-12 and R.max() <= 1 + 1e-12
    # coverage is a multiple of 1 / supersampling^2
    np.testing.assert_allclose(R * LEVELS, np.round(R * LEVELS), atol=1e-6)
    # there are partial-volume pixels, fully covered ones, and background
    assert np.any((R > 0.05) & (R < 0.95)) and np.any(R > 0.999) and np.any(R < 1e-9)


def _corners(p):
    cx, cy, w, h, a = p[:, :5].T
    du = np.stack([np.cos(a), np.sin(a)], 1)
    dv = np.stack([-np.sin(a), np.cos(a)], 1)
    c = np.stack([cx, cy], 1)
    return np.stack([c + su * 0.5 * w[:, None] * du + sv * 0.5 * h[:, None] * dv
                     for su in (-1, 1) for sv in (-1, 1)], 1)          # (n, 4, 2)


def test_rectangle_geometry_area_and_centroid(many_rectangles):
    x, p = many_rectangles
    n = x.shape[-1]
    R = (x - p[:, 5, None, None]) / p[:, 6, None, None]
    corners = _corners(p)
    inside = np.all((corners >= 0) & (corners <= n), axis=(1, 2))
    assert inside.sum() > 1000
    area = R[inside].sum(axis=(1, 2))
    np.testing.assert_allclose(area, p[inside, 2] * p[inside, 3], rtol=0.03, atol=0.3)
    centres = np.arange(n) + 0.5                      # pixel i covers [i, i+1)
    mx = (R[inside] * centres[None, None, :]).sum(axis=(1, 2)) / area
    my = (R[inside] * centres[None, :, None]).sum(axis=(1, 2)) / area
    np.testing.assert_allclose(mx, p[inside, 0], atol=0.1)   # 1/8-px sub-grid
    np.testing.assert_allclose(my, p[inside, 1], atol=0.1)
    # cut by the border: some rectangles are, and then lose area
    assert (~inside).sum() > 100


def test_rectangle_orientation_axis_aligned():
    # angle 0: width along x (columns), height along y (rows)
    p = np.array([[8.0, 4.0, 6.0, 2.0, 0.0, 0.0, 1.0]])
    img = render_rectangles(p)[0]
    expected = np.zeros((16, 16))
    expected[3:5, 5:11] = 1.0                         # y in [3, 5), x in [5, 11)
    np.testing.assert_array_equal(img, expected)
    # angle pi/2: the width axis turns towards increasing row index
    q = p.copy()
    q[0, 4] = math.pi / 2
    img = render_rectangles(q, supersampling=4)[0]
    expected = np.zeros((16, 16))
    expected[1:7, 7:9] = 1.0                          # y in [1, 7), x in [7, 9)
    np.testing.assert_allclose(img, expected, atol=1e-12)


def test_rectangle_orientation_statistics(many_rectangles):
    x, p = many_rectangles
    R = (x - p[:, 5, None, None]) / p[:, 6, None, None]
    corners = _corners(p)
    elongated = (np.abs(p[:, 2] - p[:, 3]) > 3) & np.all((corners >= 0) & (corners <= 16),
                                                         axis=(1, 2))
    c = np.arange(16) + 0.5
    err = []
    for r, q in zip(R[elongated], p[elongated]):
        m = r.sum()
        mx, my = (r * c[None, :]).sum() / m, (r * c[:, None]).sum() / m
        cxx = (r * (c[None, :] - mx) ** 2).sum()
        cyy = (r * (c[:, None] - my) ** 2).sum()
        cxy = (r * (c[None, :] - mx) * (c[:, None] - my)).sum()
        major = 0.5 * math.atan2(2 * cxy, cxx - cyy)     # direction of the longer side
        expected = q[4] if q[2] > q[3] else q[4] + math.pi / 2
        d = (major - expected) % math.pi
        err.append(min(d, math.pi - d))
    assert len(err) > 300 and np.median(err) < 0.02 and max(err) < 0.15


def test_render_reproduces_rectangles(many_rectangles):
    x, p = many_rectangles
    np.testing.assert_array_equal(render_rectangles(p[:50]), x[:50])
    one = render_rectangles(p[0], dtype=np.float32)
    assert one.shape == (1, 16, 16) and one.dtype == np.float32


def test_rectangles_other_size_scales():
    x, p = rectangles(500, size=64, rng=1, return_params=True)
    assert x.shape == (500, 64, 64)
    assert p[:, 0].min() >= 12.8 and p[:, 0].max() <= 51.2
    assert p[:, 2].min() >= 12 and p[:, 2].max() <= 48
    y = rectangles(2, size=8, rng=1, supersampling=1)
    R = (y - y.min(axis=(1, 2), keepdims=True))
    assert set(np.unique(np.round(R / R.max(axis=(1, 2), keepdims=True), 9))) <= {0.0, 1.0}


def test_rectangles_errors():
    with pytest.raises(ValueError, match="n_images"):
        rectangles(0)
    with pytest.raises(TypeError, match="n_images"):
        rectangles(2.5)
    with pytest.raises(ValueError, match="size"):
        rectangles(2, size=0)
    with pytest.raises(ValueError, match="supersampling"):
        rectangles(2, supersampling=0)
    with pytest.raises(TypeError, match="dtype"):
        rectangles(2, dtype=np.int32)
    with pytest.raises(TypeError, match="rng"):
        rectangles(2, rng="seed")
    with pytest.raises(ValueError, match="7 columns"):
        render_rectangles(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="finite"):
        render_rectangles(np.full(7, np.nan))


# ----------------------------------------------------------------------------- disks


def test_disks():
    x, p = disks(3000, rng=5, return_params=True)
    assert x.shape == (3000, 16, 16) and p.shape == (3000, len(DISK_PARAMETERS))
    cx, cy, r, b, f = p.T
    n = 16
    assert r.min() >= 6 * n / 64 and r.max() <= 24 * n / 64
    assert r.mean() == pytest.approx(15 * n / 64, abs=0.06)
    # fully inside
    assert np.all(cx - r >= 0) and np.all(cx + r <= n)
    assert np.all(cy - r >= 0) and np.all(cy + r <= n)
    assert b.mean() == pytest.approx(1.0, abs=0.008) and b.std() == pytest.approx(0.1,
                                                                                  abs=0.006)
    assert f.mean() == pytest.approx(1.0, abs=0.0025) and f.std() == pytest.approx(0.03,
                                                                                   abs=0.002)
    R = (x - b[:, None, None]) / f[:, None, None]
    assert R.min() >= -1e-12 and R.max() <= 1 + 1e-12
    np.testing.assert_allclose(R * LEVELS, np.round(R * LEVELS), atol=1e-6)
    np.testing.assert_allclose(R.sum(axis=(1, 2)), math.pi * r ** 2, rtol=0.04, atol=0.2)
    np.testing.assert_array_equal(render_disks(p[:20]), x[:20])
    np.testing.assert_array_equal(disks(4, rng=9), disks(4, rng=9))
    with pytest.raises(ValueError, match="size"):
        disks(2, size=-1)


# ----------------------------------------------------------------------------- Shepp-Logan


def test_shepp_logan_2d():
    x = shepp_logan(128)
    assert x.shape == (128, 128) and x.dtype == np.float64
    assert x.min() == 0.0 and x.max() == 1.0
    levels = set(np.round(np.unique(x), 9))
    assert levels <= {0.0, 0.1, 0.2, 0.3, 0.4, 1.0} and {0.0, 0.2, 1.0} <= levels
    # symmetric outline; the large ellipse at y = +0.35 is in the upper half
    assert x[64, 2] == 0.0 and x[0, 64] == 0.0
    assert x[41, 64] == pytest.approx(0.3, abs=1e-9)       # y = +0.35: row 41 of 128
    assert x[128 - 41, 64] == pytest.approx(0.2, abs=1e-9)
    # the right dark ellipse (x = +0.22) is darker than the surrounding tissue
    assert x[64, 64 + 14] == pytest.approx(0.0, abs=1e-9)
    assert x[64, 64] == pytest.approx(0.2, abs=1e-9)


def test_shepp_logan_sizes_and_variants():
    a = shepp_logan((100, 160), dtype=np.float32)
    assert a.shape == (100, 160) and a.dtype == np.float32
    # square pixels: the phantom fills the short axis, centred on the long one
    assert np.all(a[:, :30] == 0) and np.all(a[:, -30:] == 0)
    np.testing.assert_array_equal(a[:, 30:130], shepp_logan(100, dtype=np.float32))
    o = shepp_logan(64, variant="original")
    assert set(np.round(np.unique(o), 9)) <= {0.0, 0.01, 0.02, 0.03, 0.04, 1.0}
    s = shepp_logan(64, supersampling=4)
    assert s.min() >= 0 and s.max() <= 1 and len(np.unique(s)) > 10   # partial volume
    assert abs(s.mean() - shepp_logan(256).mean()) < 2e-3


def test_shepp_logan_3d():
    v = shepp_logan((48, 64, 64))
    assert v.shape == (48, 64, 64) and v.min() == 0.0 and v.max() == 1.0
    assert set(np.round(np.unique(v), 9)) <= {0.0, 0.1, 0.2, 0.3, 0.4, 1.0}
    # the skull is an ellipsoid: semi-axes 0.69 (x), 0.92 (y), 0.81 (z)
    extent = lambda line: np.ptp(np.flatnonzero(line > 0)) + 1
    assert extent(v[24, 32]) == pytest.approx(0.69 * 48, abs=2)        # 48 voxels = 2 units
    assert extent(v[24, :, 32]) == pytest.approx(0.92 * 48, abs=2)
    assert extent(v[:, 32, 32]) == pytest.approx(0.81 * 48, abs=2)
    assert shepp_logan((8, 8, 8), supersampling=2).shape == (8, 8, 8)


def test_shepp_logan_errors():
    with pytest.raises(ValueError, match="2 or 3"):
        shepp_logan((4, 4, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        shepp_logan((0, 8))
    with pytest.raises(ValueError, match="variant"):
        shepp_logan(8, variant="toft")
    with pytest.raises(TypeError, match="shape"):
        shepp_logan(8.0)


# ----------------------------------------------------------------------------- patches


def test_extract_patches_values_come_from_images():
    images = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    P = extract_patches(images, (2, 3), 500, rng=0)
    assert P.shape == (500, 6) and P.dtype == np.float32
    # each patch is a contiguous block: value = base + [0,1,2, 7,8,9]
    np.testing.assert_array_equal(P - P[:, :1], np.tile([0, 1, 2, 7, 8, 9], (500, 1)))
    base = P[:, 0].astype(int)
    img, rem = np.divmod(base, 42)
    row, col = np.divmod(rem, 7)
    assert set(np.unique(img)) == {0, 1}
    assert row.max() == 4 and col.max() == 4 and row.min() == 0 and col.min() == 0
    # uniform over the 2 * 5 * 5 positions
    counts = np.bincount(base, minlength=84)[np.unique(base)]
    assert len(counts) == 50 and counts.min() > 0


def test_extract_patches_single_image_list_and_3d():
    x = shepp_logan(32)
    assert extract_patches(x, 5, 10, rng=0).shape == (10, 25)
    a, b = np.ones((8, 8)), 2 * np.ones((20, 20))
    P = extract_patches([a, b], 3, 4000, rng=0)
    # positions weighted: 36 vs 324 -> about 10% from the first image
    assert np.mean(P[:, 0] == 1) == pytest.approx(36 / 360, abs=0.02)
    vol = np.arange(6 * 7 * 8, dtype=np.float64).reshape(1, 6, 7, 8)
    Q = extract_patches(vol, (2, 3, 4), 50, rng=0)
    offsets = (np.arange(2)[:, None, None] * 56 + np.arange(3)[None, :, None] * 8
               + np.arange(4)[None, None, :]).reshape(-1)
    np.testing.assert_array_equal(Q - Q[:, :1], np.tile(offsets, (50, 1)))
    assert extract_patches([vol[0]], 2, 5, rng=0).shape == (5, 8)


def test_extract_patches_reproducible():
    x = rectangles(20, rng=0)
    np.testing.assert_array_equal(extract_patches(x, 3, 100, rng=7, augment=True),
                                  extract_patches(x, 3, 100, rng=7, augment=True))


def test_extract_patches_augment_dihedral():
    patch = np.arange(9.0).reshape(3, 3)
    P = extract_patches(patch, 3, 4000, rng=0, augment=True)
    group = {tuple(np.rot90(t, k).reshape(-1)) for t in (patch, patch.T) for k in range(4)}
    seen = {tuple(row) for row in P}
    assert seen == group                                   # all 8, nothing else
    _, counts = np.unique(P, axis=0, return_counts=True)
    assert counts.min() > 400                              # about 500 each
    rect = np.arange(6.0).reshape(2, 3)
    R = extract_patches(rect, (2, 3), 400, rng=0, augment=True)
    flips = {tuple(t.reshape(-1)) for t in (rect, rect[::-1], rect[:, ::-1], rect[::-1, ::-1])}
    assert {tuple(r) for r in R} == flips
    cube = np.arange(8.0).reshape(1, 2, 2, 2)
    C = extract_patches(cube, 2, 800, rng=0, augment=True)
    assert len({tuple(r) for r in C}) == 8


def test_extract_patches_dtype_rules():
    assert extract_patches(np.ones((4, 4), dtype=np.int16), 2, 3, rng=0).dtype == np.float64
    assert extract_patches(np.ones((4, 4), dtype=np.float16), 2, 3, rng=0).dtype == \
        np.float32


def test_extract_patches_errors():
    x = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="patch_size"):
        extract_patches(x, 9, 10, rng=0)
    with pytest.raises(ValueError, match="patch_size"):
        extract_patches(x, (3, 3, 3), 10, rng=0)
    with pytest.raises(ValueError, match="n_patches"):
        extract_patches(x, 3, 0, rng=0)
    with pytest.raises(ValueError, match="dimensions"):
        extract_patches(np.zeros(8), 3, 1, rng=0)
    with pytest.raises(ValueError, match="empty"):
        extract_patches([], 3, 1, rng=0)
    with pytest.raises(ValueError, match="mix"):
        extract_patches([np.zeros((4, 4)), np.zeros((4, 4, 4))], 2, 1, rng=0)
    with pytest.raises(TypeError, match="dtype"):
        extract_patches([np.zeros((4, 4)), np.zeros((4, 4), np.float32)], 2, 1, rng=0)
    with pytest.raises(TypeError, match="complex"):
        extract_patches(np.zeros((4, 4), complex), 2, 1, rng=0)

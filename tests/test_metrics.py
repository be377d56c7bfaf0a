import math

import numpy as np
import pytest

from fastscore.data import rectangles, shepp_logan
from fastscore.metrics import mse, psnr, ssim


def _noisy(x, sigma, seed=0):
    return x + sigma * np.random.default_rng(seed).standard_normal(x.shape)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_constant_shift_known_value():
    x = np.linspace(0.0, 2.0, 256).reshape(16, 16)        # range 2
    assert psnr(x, x + 0.2) == pytest.approx(20.0)          # 10 log10(4 / 0.04)
    assert psnr(x, x - 0.02) == pytest.approx(40.0)
    assert psnr(x, x + 0.2, data_range=1.0) == pytest.approx(10 * math.log10(1 / 0.04))
    assert mse(x, x + 0.2) == pytest.approx(0.04)


def test_psnr_identical_is_inf_and_dtype_free():
    x = rectangles(1, rng=0)[0]
    assert psnr(x, x) == math.inf
    y = _noisy(x, 0.1)
    assert psnr(x.astype(np.float32), y) == pytest.approx(psnr(x, y), abs=1e-4)


def test_psnr_peak_is_reference_range():
    x = rectangles(1, rng=1)[0]
    y = _noisy(x, 0.05)
    R = x.max() - x.min()
    expected = 10 * math.log10(R ** 2 / np.mean((x - y) ** 2))
    assert psnr(x, y) == pytest.approx(expected)
    assert psnr(y, x) != pytest.approx(expected)            # not symmetric: peak from ref


def test_psnr_errors():
    x = np.ones((8, 8))
    with pytest.raises(ValueError, match="constant"):
        psnr(x, x + 1)
    assert psnr(x, x + 1, data_range=1.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same shape"):
        psnr(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="finite"):
        psnr(np.arange(4.0), np.array([0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.arange(4.0), np.arange(4.0), data_range=0)
    with pytest.raises(TypeError, match="complex"):
        psnr(np.arange(4.0), np.arange(4.0) + 0j)


# ----------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one():
    x = shepp_logan(32)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    v = shepp_logan((12, 16, 16))
    assert ssim(v, v) == pytest.approx(1.0, abs=1e-12)


def test_ssim_properties():
    x = rectangles(1, size=32, rng=3)[0]
    light, heavy = _noisy(x, 0.05), _noisy(x, 0.3)
    assert 0 < ssim(x, heavy) < ssim(x, light) < 1
    # symmetric in the images once the range is fixed
    assert ssim(x, light, data_range=1.0) == pytest.approx(ssim(light, x, data_range=1.0))
    # a pure mean shift lowers only the luminance term; contrast/structure stay
    value, smap = ssim(x, x + 0.1, full=True)
    assert 0.9 < value < 1 and smap.shape == x.shape
    # an unrelated image of the same statistics scores near 0
    other = _noisy(np.zeros_like(x), 1.0, seed=1)
    assert abs(ssim(_noisy(np.zeros_like(x), 1.0, seed=2), other)) < 0.1


def test_ssim_errors():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.random.default_rng(0).random((10, 20)), np.zeros((10, 20)))
    with pytest.raises(ValueError, match="dimensions"):
        ssim(np.zeros(30), np.zeros(30))
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((16, 16)), np.zeros((16, 17)))
    with pytest.raises(ValueError, match="constant"):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)))


@pytest.mark.parametrize("shape", [(16, 16), (40, 33), (13, 14, 15)])
@pytest.mark.parametrize("data_range", [None, 2.5])
def test_ssim_matches_scikit_image(shape, data_range):
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(sum(shape))
    if len(shape) == 2:
        x = rectangles(1, size=max(shape), rng=rng)[0][: shape[0], : shape[1]]
    else:
        x = shepp_logan(shape)
    y = x + 0.1 * rng.standard_normal(shape)
    R = (x.max() - x.min()) if data_range is None else data_range
    expected = metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=R)
    assert ssim(x, y, data_range=data_range) == pytest.approx(expected, abs=1e-3)
    assert ssim(x, y, data_range=data_range) == pytest.approx(expected, abs=1e-10)


def test_psnr_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    x = shepp_logan(48)
    y = _noisy(x, 0.07, seed=2)
    assert psnr(x, y) == pytest.approx(
        metrics.peak_signal_noise_ratio(x, y, data_range=x.max() - x.min()), rel=1e-12)

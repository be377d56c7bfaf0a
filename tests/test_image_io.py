import sys

import numpy as np
import pytest

from fastscore.io import load_image, save_image


def image(shape=(12, 10), seed=0):
    return np.random.default_rng(seed).normal(1.0, 0.3, shape).astype(np.float32)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_numpy_round_trip(tmp_path, suffix):
    x = image()
    path = save_image(tmp_path / f"x{suffix}", x)
    np.testing.assert_array_equal(load_image(path), x)


def test_tiff_round_trip_exact(tmp_path):
    pytest.importorskip("PIL")
    x = image()
    np.testing.assert_array_equal(load_image(save_image(tmp_path / "x.tif", x)), x)


@pytest.mark.parametrize("bits", [8, 16])
def test_png_round_trip_with_recorded_scaling(tmp_path, bits):
    pytest.importorskip("PIL")
    x = image()
    back = load_image(save_image(tmp_path / "x.png", x, bits=bits))
    step = (x.max() - x.min()) / (2 ** bits - 1)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, x, atol=0.51 * step + 1e-6)


@pytest.mark.parametrize("value", [0.0, 1.5, -3.0, 2.0 ** 53, -(2.0 ** 60), 1e30])
def test_png_of_a_constant_image_reads_back(tmp_path, value):
    """A constant image's recorded range must still have low < high, also where adding 1
    to `value` is lost to float64 rounding (|value| >= 2**53)."""
    pytest.importorskip("PIL")
    x = np.full((3, 4), value, np.float64)
    back = load_image(save_image(tmp_path / "c.png", x, bits=8))
    np.testing.assert_array_equal(back, x.astype(np.float32))


def test_plain_png_is_scaled_to_unit_range(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    q = (np.arange(20).reshape(4, 5) * 10).astype(np.uint8)
    Image.fromarray(q).save(tmp_path / "plain.png")
    np.testing.assert_allclose(load_image(tmp_path / "plain.png"), q / 255.0, rtol=1e-6)
    Image.fromarray(np.stack([q, q, q], -1)).save(tmp_path / "rgb.png")
    assert load_image(tmp_path / "rgb.png").shape == (4, 5)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_round_trip(tmp_path, suffix):
    pytest.importorskip("nibabel")
    x = image((4, 6, 5))
    np.testing.assert_array_equal(load_image(save_image(tmp_path / f"v{suffix}", x)), x)


def test_missing_extra_names_it(tmp_path, monkeypatch):
    for name in ("PIL", "PIL.Image", "PIL.PngImagePlugin"):
        monkeypatch.setitem(sys.modules, name, None)   # import now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastscore\[io\]'"):
        save_image(tmp_path / "x.png", image())


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    pytest.importorskip("PIL")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(bad)
    with pytest.raises(ValueError, match="unsupported image format .xyz"):
        (tmp_path / "a.xyz").write_bytes(b"1")
        load_image(tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="2-D images"):
        save_image(tmp_path / "v.png", np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="must be finite"):
        save_image(tmp_path / "n.npy", np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="`bits` must be 8 or 16"):
        save_image(tmp_path / "b.png", image(), bits=12)

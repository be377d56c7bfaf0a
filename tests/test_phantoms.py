import numpy as np
import pytest

from fastscore.phantoms import ellipse_coverage, random_phantoms


def test_deterministic_range_and_dtype():
    a = random_phantoms(3, 32, rng=4)
    b = random_phantoms(3, 32, rng=4, dtype=np.float32)
    np.testing.assert_array_equal(a.astype(np.float32), b)
    assert a.shape == (3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert not np.array_equal(a, random_phantoms(3, 32, rng=5))


def test_piecewise_constant():
    x = random_phantoms(4, 64, rng=0, supersampling=1)        # no partial volume: few levels
    for im in x:
        assert len(np.unique(im)) <= 11
    d = np.abs(np.diff(random_phantoms(4, 64, rng=0), axis=-1))
    assert np.mean(d < 1e-12) > 0.8                            # mostly flat


def test_ellipse_coverage_area():
    c = ellipse_coverage(np.array([32.0]), np.array([30.0]), np.array([20.0]),
                         np.array([7.0]), np.array([0.6]), 64, 8)
    assert abs(c.sum() / (np.pi * 20 * 7) - 1) < 0.01
    assert c.min() >= 0 and c.max() <= 1


def test_errors():
    with pytest.raises(ValueError):
        random_phantoms(0, 32)
    with pytest.raises(ValueError, match="n_shapes"):
        random_phantoms(1, 32, n_shapes=(5, 2))

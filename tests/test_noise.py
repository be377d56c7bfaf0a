import numpy as np
import pytest

import fastscore
from fastscore.noise import estimate_noise_sigma


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.3])
def test_pure_noise_is_estimated(sigma):
    rng = np.random.default_rng(0)
    y = 0.5 + sigma * rng.standard_normal((256, 256))
    assert abs(estimate_noise_sigma(y) / sigma - 1) < 0.03


def test_smooth_image_with_edges_and_volume():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:200, 0:201] / 200.0
    clean = np.sin(3 * xx) * np.cos(2 * yy) + (xx > 0.5)
    assert abs(estimate_noise_sigma(clean + 0.05 * rng.standard_normal(clean.shape))
               / 0.05 - 1) < 0.05
    vol = 0.2 * rng.standard_normal((20, 31, 30))
    assert abs(estimate_noise_sigma(vol) / 0.2 - 1) < 0.05
    assert fastscore.estimate_noise_sigma is estimate_noise_sigma


def test_cannot_estimate():
    with pytest.raises(ValueError, match="constant"):
        estimate_noise_sigma(np.full((32, 32), 0.3))
    with pytest.raises(ValueError, match="zero"):
        estimate_noise_sigma(np.kron(np.eye(4), np.ones((8, 8))))
    with pytest.raises(ValueError, match="at least 2"):
        estimate_noise_sigma(np.zeros((1, 10)))
    with pytest.raises(ValueError):
        estimate_noise_sigma(np.zeros(10))

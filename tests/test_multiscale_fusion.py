"""MultiScaleFusion and upsample_linear: the band fusion of a denoiser across pyramid
levels, against a plain NumPy reference and on the property it exists for."""

import numpy as np
import pytest
from scipy import ndimage

from fastscore import pretrained
from fastscore.multiscale import MultiScaleFusion, mean_pool, upsample_linear
from fastscore.operators import Identity
from fastscore.prior import GaussianPatchScore, PatchPrior
from fastscore.reconstruct import map_estimate


def gaussian_prior(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((9, 9))
    g = GaussianPatchScore().fit(0.3 * rng.standard_normal((500, 9)) @ A)
    return PatchPrior(g, 3)


class IdentityDenoiser:
    """A prior whose denoiser changes nothing (score 0)."""

    sigma_min = None

    def denoise(self, x, sigma, *, rng=None):
        return np.array(x, copy=True)

    def lipschitz(self, image_shape, sigma):
        return 0.0


def upsample_reference(y, shape):
    """Linear interpolation with the coarse samples at fine coordinates 2k + 0.5, the
    edges held (np.interp clamps), one axis after the other."""
    out = np.asarray(y, dtype=float)
    for axis, n in enumerate(shape):
        centres = 2.0 * np.arange(out.shape[axis]) + 0.5
        out = np.apply_along_axis(
            lambda v, n=n, centres=centres: np.interp(np.arange(n), centres, v), axis, out)
    return out


@pytest.mark.parametrize("shape", [(16, 16), (13, 10), (7, 9)])
def test_upsample_linear_matches_reference(shape):
    y = np.random.default_rng(0).standard_normal(tuple((n + 1) // 2 for n in shape))
    np.testing.assert_allclose(upsample_linear(y, shape), upsample_reference(y, shape),
                               rtol=1e-12, atol=1e-12)


def test_upsample_linear_reproduces_ramps_and_constants():
    i, j = np.mgrid[0:16, 0:16].astype(float)
    ramp = 0.3 * i - 0.2 * j + 1.0
    back = upsample_linear(mean_pool(ramp), ramp.shape)  # block means = centre values
    np.testing.assert_allclose(back[1:-1, 1:-1], ramp[1:-1, 1:-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(upsample_linear(np.full((2, 3, 4), 0.7), (5, 8)),
                               np.full((2, 5, 8), 0.7))
    with pytest.raises(ValueError, match="pooled shape"):
        upsample_linear(np.zeros((3, 3)), (8, 8))


def test_identity_denoiser_gives_the_input_at_every_level():
    x = np.random.default_rng(1).standard_normal((2, 21, 18))
    for levels in (1, 2, 3):
        out = MultiScaleFusion(IdentityDenoiser(), levels).denoise(x, 0.1)
        np.testing.assert_allclose(out, x, rtol=0, atol=1e-12)


def test_one_level_is_the_prior_and_two_levels_match_the_formula():
    inner = gaussian_prior()
    x = np.random.default_rng(2).standard_normal((14, 11))
    sigma = 0.3
    np.testing.assert_array_equal(MultiScaleFusion(inner, 1).denoise(x, sigma),
                                  inner.denoise(x, sigma))
    z = inner.denoise(x, sigma)
    coarse = inner.denoise(mean_pool(x), sigma / 2)      # 2-D: noise halves
    diff = ndimage.gaussian_filter(coarse - mean_pool(z), 0.7, mode="nearest")
    expected = z + upsample_reference(diff, x.shape)
    fused = MultiScaleFusion(inner, 2, blur=0.7)
    np.testing.assert_allclose(fused.denoise(x, sigma), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fused.score(x, sigma), (expected - x) / sigma ** 2,
                               rtol=1e-8, atol=1e-8)


def test_batches_and_dtype():
    fused = MultiScaleFusion(gaussian_prior(), 3)
    x = np.random.default_rng(3).standard_normal((2, 20, 17)).astype(np.float32)
    out = fused.denoise(x, 0.2)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out[1], fused.denoise(x[1], 0.2), rtol=1e-5, atol=1e-6)
    assert fused.score(x, 0.2).dtype == np.float32


def test_removes_the_low_frequency_noise_a_dc_free_prior_keeps():
    """On a flat image, a prior of DC-removed 8×8 patches leaves the noise below one
    cycle per patch; two more levels remove much of it (fixed seeds)."""
    prior = pretrained.prior("phantom", stride=4, levels=1)
    rng = np.random.default_rng(5)
    y = 0.5 + 0.1 * rng.standard_normal((64, 64))
    err_one = np.mean((prior.denoise(y, 0.1) - 0.5) ** 2)
    err_fused = np.mean((MultiScaleFusion(prior, 3).denoise(y, 0.1) - 0.5) ** 2)
    assert err_fused < 0.6 * err_one


def test_inside_map_estimate():
    prior = pretrained.prior("phantom", stride=4, levels=2)
    rng = np.random.default_rng(6)
    x = np.zeros((48, 48))
    x[12:36, 10:30] = 1.0
    y = x + 0.1 * rng.standard_normal(x.shape)
    est = map_estimate(y, Identity(y.shape), 0.1, prior, method="hqs", n_steps=4).x
    assert np.all(np.isfinite(est))
    assert np.mean((est - x) ** 2) < 0.25 * np.mean((y - x) ** 2)
    assert prior.lipschitz((48, 48), 0.1) >= prior.prior.lipschitz((48, 48), 0.1)


def test_errors():
    inner = gaussian_prior()
    with pytest.raises(TypeError, match="prior"):
        MultiScaleFusion(object())
    with pytest.raises(ValueError, match="levels"):
        MultiScaleFusion(inner, 0)
    with pytest.raises(ValueError, match="blur"):
        MultiScaleFusion(inner, 2, blur=-1.0)
    fused = MultiScaleFusion(inner, 3)
    with pytest.raises(ValueError, match="at least 2 axes"):
        fused.denoise(np.zeros(8), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        fused.score(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="weight"):
        fused.score(np.zeros((8, 8)), 0.1, weight="sum")


def test_levels_stop_where_the_image_is_smaller_than_a_patch():
    inner = gaussian_prior()                       # 3×3 patches
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (2, 5, 6))               # pooled (3, 3), then (2, 2) < 3: 2 levels
    three, two, one = (MultiScaleFusion(inner, n).denoise(x, 0.1) for n in (3, 2, 1))
    np.testing.assert_array_equal(three, two)
    assert not np.allclose(two, one)
    assert MultiScaleFusion(inner, 3).lipschitz((5, 6), 0.1) == \
        MultiScaleFusion(inner, 2).lipschitz((5, 6), 0.1)
    big = rng.uniform(0, 1, (12, 12))              # (6, 6), (3, 3): all 3 levels
    assert not np.allclose(MultiScaleFusion(inner, 3).denoise(big, 0.1),
                           MultiScaleFusion(inner, 2).denoise(big, 0.1))
    natural = pretrained.prior("natural")          # 8×8 patches: a 16² image has 2 levels
    small = rng.uniform(0, 1, (16, 16)).astype(np.float32)
    np.testing.assert_array_equal(natural.denoise(small, 0.1, rng=1),      # (moving grid)
                                  pretrained.prior("natural", levels=2).denoise(small, 0.1,
                                                                                rng=1))
    assert isinstance(pretrained.prior("natural", levels=1), PatchPrior)


def test_lipschitz_bound_formula_and_holds():
    """L = L_0 + (2 + σ² L_0 + σ_1² L') / σ²: 2/σ² and 4/σ² for a denoiser with L_0 = 0 on
    two and three levels; and no difference quotient of the fused score exceeds it."""
    ident = IdentityDenoiser()
    assert MultiScaleFusion(ident, 2).lipschitz((16, 16), 0.1) == pytest.approx(2 / 0.01)
    assert MultiScaleFusion(ident, 3).lipschitz((16, 16), 0.1) == pytest.approx(4 / 0.01)
    assert MultiScaleFusion(ident, 1).lipschitz((16, 16), 0.1) == 0.0
    fused = MultiScaleFusion(gaussian_prior(), 3)
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (24, 24))
    bound = fused.lipschitz(x.shape, 0.05)
    base = fused.score(x, 0.05)
    ratios = []
    for _ in range(20):
        v = rng.standard_normal(x.shape)
        for _ in range(3):               # drift toward the largest response
            v = fused.score(x + 1e-3 * v, 0.05) - base
            v /= np.linalg.norm(v)
        ratios.append(np.linalg.norm(fused.score(x + 1e-3 * v, 0.05) - base) / 1e-3)
    assert max(ratios) <= bound
    assert bound < 20 * fused.prior.lipschitz(x.shape, 0.05)


def test_posterior_sample_refuses_the_fused_score():
    from fastscore.reconstruct import posterior_sample

    fused = MultiScaleFusion(gaussian_prior(), 2)
    y = np.random.default_rng(9).uniform(0, 1, (12, 12))
    with pytest.raises(TypeError, match="levels=1"):
        posterior_sample(y, Identity(y.shape), 0.1, fused, n_samples=2)
    out = posterior_sample(y, Identity(y.shape), 0.1, fused.prior, n_samples=2,
                           steps_per_sigma=2, rng=0)
    assert out.mean.shape == y.shape

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscore.multiscale import MultiScalePrior, mean_pool, mean_pool_adjoint
from fastscore.prior import GaussianPatchScore, PatchPrior


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=3), st.integers(0, 2),
       st.integers(0, 10 ** 6))
def test_mean_pool_adjoint_is_exact(shape, batch, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    lead = (batch,) if batch else ()
    x = rng.standard_normal(lead + shape)
    y = rng.standard_normal(lead + tuple((n + 1) // 2 for n in shape))
    lhs = np.vdot(mean_pool(x, len(shape)), y)
    rhs = np.vdot(x, mean_pool_adjoint(y, shape))
    assert abs(lhs - rhs) <= 1e-12 * (1 + abs(lhs))


def test_mean_pool_values():
    x = np.arange(15.0).reshape(3, 5)
    expected = np.array([[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2],
                         [(10 + 11) / 2, (12 + 13) / 2, 14.0]])
    np.testing.assert_allclose(mean_pool(x), expected)
    np.testing.assert_allclose(mean_pool(np.ones((6, 7))), np.ones((3, 4)))
    # white noise of level σ becomes σ/2
    n = np.random.default_rng(0).standard_normal((512, 512))
    assert abs(mean_pool(n).std() - 0.5) < 0.01


def gaussian_prior(seed=0, weight=1.0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((9, 9))
    g = GaussianPatchScore().fit(0.3 * rng.standard_normal((500, 9)) @ A)
    return PatchPrior(g, 3, weight=weight)


@pytest.mark.parametrize("shape", [(13, 10), (16, 16)])
def test_score_is_gradient_of_log_density(shape):
    prior = MultiScalePrior(gaussian_prior(), levels=3, weights=[0.5, 0.3, 0.2])
    x = np.random.default_rng(1).standard_normal(shape)
    s = prior.score(x, 0.1)
    h = 1e-6
    rng = np.random.default_rng(2)
    for _ in range(6):
        i = tuple(int(rng.integers(0, n)) for n in shape)
        e = np.zeros(shape)
        e[i] = h
        fd = (prior.log_density(x + e, 0.1) - prior.log_density(x - e, 0.1)) / (2 * h)
        assert abs(s[i] - fd) <= 1e-5 * (1 + abs(fd))


def test_one_level_is_the_prior_and_batches_agree():
    inner = gaussian_prior(weight="mean")
    x = np.random.default_rng(3).standard_normal((2, 12, 11))
    np.testing.assert_allclose(MultiScalePrior(inner, 1).score(x, 0.2), inner.score(x, 0.2))
    two = MultiScalePrior(inner, 2, [0.6, 0.4])
    batch = two.score(x, 0.2)
    np.testing.assert_allclose(batch[1], two.score(x[1], 0.2), rtol=1e-12)
    assert batch.dtype == x.dtype and batch.shape == x.shape


def test_lipschitz_bounds_the_score_differences():
    prior = MultiScalePrior(gaussian_prior(), levels=2, weights=[0.7, 0.3])
    rng = np.random.default_rng(4)
    L = prior.lipschitz((12, 12), 0.1)
    for _ in range(5):
        a, b = rng.standard_normal((2, 12, 12))
        ratio = np.linalg.norm(prior.score(a, 0.1) - prior.score(b, 0.1)) / np.linalg.norm(a - b)
        assert ratio <= L * (1 + 1e-9)


def test_errors():
    inner = gaussian_prior()
    with pytest.raises(TypeError, match="prior"):
        MultiScalePrior(object())
    with pytest.raises(ValueError, match="weights"):
        MultiScalePrior(inner, 2, [1.0])
    with pytest.raises(ValueError, match="too small"):
        MultiScalePrior(inner, 3).score(np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="pooled shape"):
        mean_pool_adjoint(np.zeros((2, 2)), (5, 5))

"""Analytic distributions: scores and divergences vs finite differences, normalisation,
sampling, the TV-pair score field, and input validation."""

import numpy as np
import pytest
from scipy import integrate, stats

from fastscore.distributions import (Gamma, GaussianMixture, GeneralizedGaussianPair,
                                     Normal)


def _fd_score(dist, x, h=1e-5):
    """Central finite-difference gradient of log_density, (N, d)."""
    out = np.empty_like(x)
    for i in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[i] = h
        out[:, i] = (dist.log_density(x + e) - dist.log_density(x - e)) / (2 * h)
    return out


def _fd_divergence(dist, x, h=1e-5):
    """Central finite-difference trace of the score Jacobian, (N,)."""
    out = np.zeros(x.shape[0])
    for i in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[i] = h
        out += (dist.score(x + e)[:, i] - dist.score(x - e)[:, i]) / (2 * h)
    return out


def _points(dist, n, rng):
    """Points where every distribution is smooth (Gamma: inside the support; pair: off
    the diagonal)."""
    if isinstance(dist, Gamma):
        return rng.uniform(0.5, 20.0, size=(n, 1))
    x = rng.normal(scale=3.0, size=(n, dist.dim))
    if isinstance(dist, GeneralizedGaussianPair):
        x[:, 1] = x[:, 0] + rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 3.0, n)
    return x


DISTRIBUTIONS = {
    "normal-1d": Normal(1.0, 2.0),
    "normal-iso-3d": Normal(np.array([0.0, 1.0, -1.0]), 0.7),
    "normal-diag-2d": Normal([1.0, -2.0], [0.5, 3.0]),
    "gamma": Gamma(8.0, 1.0),
    "gamma-scale": Gamma(2.5, 0.5),
    "mixture-1d": GaussianMixture([0.4, 0.6], [3.0, 13.0], [1.0, 3.0]),
    "mixture-iso-2d": GaussianMixture([0.2, 0.3, 0.5], [[0, 0], [3, 1], [-2, 2]],
                                      [1.0, 0.5, 2.0]),
    "mixture-diag-3d": GaussianMixture([0.5, 0.5], [[0, 0, 0], [1, 2, 3]],
                                       [[1.0, 0.5, 2.0], [0.3, 1.0, 1.5]]),
    "tv-pair": GeneralizedGaussianPair(beta=2.0, alpha=1.0),
    "pair-alpha-1.5": GeneralizedGaussianPair(beta=1.0, alpha=1.5),
    "pair-alpha-0.7": GeneralizedGaussianPair(beta=0.5, alpha=0.7),
    "pair-alpha-2": GeneralizedGaussianPair(beta=1.0, alpha=2.0),
    "pair-alpha-3": GeneralizedGaussianPair(beta=0.3, alpha=3.0),
}


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_score_matches_finite_differences_of_log_density(name):
    dist = DISTRIBUTIONS[name]
    x = _points(dist, 50, np.random.default_rng(0))
    np.testing.assert_allclose(dist.score(x), _fd_score(dist, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_divergence_matches_finite_differences_of_score(name):
    dist = DISTRIBUTIONS[name]
    x = _points(dist, 50, np.random.default_rng(1))
    np.testing.assert_allclose(dist.score_divergence(x), _fd_divergence(dist, x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in DISTRIBUTIONS if not n.startswith(("tv", "pair"))])
def test_output_shapes_and_dtype_follow_input(name):
    dist = DISTRIBUTIONS[name]
    x = _points(dist, 7, np.random.default_rng(2))
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        assert dist.log_density(xd).shape == (7,) and dist.log_density(xd).dtype == dtype
        assert dist.score(xd).shape == x.shape and dist.score(xd).dtype == dtype
        assert dist.score_divergence(xd).shape == (7,)
        assert dist.score_divergence(xd).dtype == dtype
    np.testing.assert_allclose(dist.score(x.astype(np.float32)), dist.score(x), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("name", ["normal-1d", "gamma", "mixture-1d"])
def test_one_dimensional_densities_are_normalised(name):
    dist = DISTRIBUTIONS[name]
    total, _ = integrate.quad(lambda t: np.exp(dist.log_density(np.array([[t]])))[0], -40, 60,
                              points=[0.0, 3.0, 8.0, 13.0], limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)


def test_two_dimensional_mixture_is_normalised():
    dist = DISTRIBUTIONS["mixture-iso-2d"]
    g = np.linspace(-15, 15, 601)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    p = np.exp(dist.log_density(np.stack([xx.ravel(), yy.ravel()], axis=1)))
    assert p.sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=1e-6)


def test_log_density_matches_scipy():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 20, size=(20, 1))
    np.testing.assert_allclose(Gamma(8.0, 1.5).log_density(x),
                               stats.gamma(8.0, scale=1.5).logpdf(x[:, 0]), rtol=1e-12)
    y = rng.normal(size=(20, 2))
    np.testing.assert_allclose(
        Normal([1.0, -1.0], [0.5, 2.0]).log_density(y),
        stats.multivariate_normal([1.0, -1.0], np.diag([0.25, 4.0])).logpdf(y), rtol=1e-12)
    mix = DISTRIBUTIONS["mixture-1d"]
    ref = np.log(0.4 * stats.norm(3, 1).pdf(x[:, 0]) + 0.6 * stats.norm(13, 3).pdf(x[:, 0]))
    np.testing.assert_allclose(mix.log_density(x), ref, rtol=1e-12)


def test_mixture_is_stable_far_from_every_component():
    mix = GaussianMixture([0.5, 0.5], [0.0, 1.0], [0.1, 0.1])
    x = np.array([[1e4], [-1e4]])
    s = mix.score(x)
    assert np.all(np.isfinite(mix.log_density(x))) and np.all(np.isfinite(s))
    # far away the nearest component dominates: s = -(x - 1)/0.01 resp. -(x - 0)/0.01
    np.testing.assert_allclose(s[:, 0], [-(1e4 - 1.0) / 0.01, 1e4 / 0.01], rtol=1e-12)
    assert np.all(np.isfinite(mix.score_divergence(x)))


def test_zero_weight_component_is_ignored():
    a = GaussianMixture([1.0, 0.0], [0.0, 5.0], [1.0, 1.0])
    x = np.linspace(-3, 8, 12)[:, None]
    np.testing.assert_allclose(a.score(x), Normal(0.0, 1.0).score(x), atol=1e-12)
    np.testing.assert_allclose(a.log_density(x), Normal(0.0, 1.0).log_density(x), atol=1e-12)


def test_gamma_outside_support():
    g = Gamma(8.0)
    x = np.array([[-1.0], [0.0], [2.0]])
    lp = g.log_density(x)
    assert lp[0] == -np.inf and lp[1] == -np.inf and np.isfinite(lp[2])
    assert np.isnan(g.score(x)[:2]).all() and np.isfinite(g.score(x)[2]).all()
    assert np.isnan(g.score_divergence(x)[:2]).all()


@pytest.mark.parametrize("name", ["normal-1d", "gamma", "mixture-1d"])
def test_samples_follow_the_cdf(name):
    dist = DISTRIBUTIONS[name]
    x = dist.sample(4000, rng=0)
    assert x.shape == (4000, 1)
    assert stats.kstest(x[:, 0], lambda t: dist.cdf(t[:, None])).pvalue > 1e-3


def test_multivariate_samples_moments():
    dist = DISTRIBUTIONS["mixture-diag-3d"]
    x = dist.sample(20000, rng=1)
    assert x.shape == (20000, 3)
    mean = dist.weights @ dist.means
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.05)
    n = Normal([1.0, -2.0], [0.5, 3.0]).sample(20000, rng=2)
    np.testing.assert_allclose(n.std(axis=0), [0.5, 3.0], rtol=0.03)


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_sampling_is_reproducible(name):
    dist = DISTRIBUTIONS[name]
    a = dist.sample(10, rng=5)
    np.testing.assert_array_equal(a, dist.sample(10, rng=np.random.default_rng(5)))
    assert not np.array_equal(a, dist.sample(10, rng=6))
    assert a.shape == (10, dist.dim)


def test_pair_samples_difference_distribution():
    """β|x₂ − x₁|^α ~ Gamma(1/α, 1), midpoints as asked."""
    pair = GeneralizedGaussianPair(beta=2.0, alpha=1.5)
    mid = np.linspace(-1, 1, 5000)
    x = pair.sample(5000, rng=0, midpoint=mid)
    np.testing.assert_allclose(x.mean(axis=1), mid, atol=1e-12)
    w = pair.beta * np.abs(x[:, 1] - x[:, 0]) ** pair.alpha
    assert stats.kstest(w, stats.gamma(1 / pair.alpha).cdf).pvalue > 1e-3
    assert 0.45 < np.mean(x[:, 1] > x[:, 0]) < 0.55


def test_tv_pair_score_field_points_toward_the_diagonal():
    """The TV-pair score moves both pixels toward each other, i.e. toward x₁ = x₂."""
    pair = GeneralizedGaussianPair(beta=1.5, alpha=1.0)
    g = np.linspace(-3, 3, 41)
    x = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    s = pair.score(x)
    off = x[:, 0] != x[:, 1]
    # direction to the nearest point of the diagonal
    to_diag = (x.mean(axis=1, keepdims=True) - x)[off]
    to_diag /= np.linalg.norm(to_diag, axis=1, keepdims=True)
    # the field is beta * sqrt(2) times that unit vector exactly: parallel, pointing to it
    np.testing.assert_allclose(s[off], pair.beta * np.sqrt(2) * to_diag, atol=1e-12)
    assert np.all(np.sum(s[off] * to_diag, axis=1) > 0)
    # a small step along the score reduces the distance to the diagonal everywhere
    step = x[off] + 0.01 * s[off]
    assert np.all(np.abs(step[:, 1] - step[:, 0]) < np.abs(x[off, 1] - x[off, 0]))
    # ... and is tangent-free: no motion along the diagonal (s₁ + s₂ = 0)
    np.testing.assert_allclose(s.sum(axis=1), 0.0, atol=1e-12)
    # on the diagonal the score is defined as 0
    np.testing.assert_array_equal(s[~off], 0.0)


def test_pair_values_on_the_diagonal():
    x = np.array([[1.0, 1.0]])
    assert np.array_equal(GeneralizedGaussianPair(1.0, 0.5).score(x), [[0.0, 0.0]])
    assert GeneralizedGaussianPair(1.0, 1.0).score_divergence(x)[0] == 0.0
    assert GeneralizedGaussianPair(2.0, 2.0).score_divergence(x)[0] == -8.0
    assert GeneralizedGaussianPair(1.0, 1.5).score_divergence(x)[0] == -np.inf
    assert GeneralizedGaussianPair(1.0, 0.5).score_divergence(x)[0] == np.inf
    assert GeneralizedGaussianPair(1.0, 3.0).score_divergence(x)[0] == 0.0


def test_normal_dimension_from_arguments():
    assert Normal().dim == 1
    assert Normal(np.zeros(5), 1.0).dim == 5
    assert Normal(0.0, [1.0, 2.0]).dim == 2
    assert Normal(0.0, 1.0, dim=4).dim == 4
    np.testing.assert_array_equal(Normal(0.0, 2.0, dim=3).std, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("make, match", [
    (lambda: Normal(0.0, -1.0), "`std` must be positive"),
    (lambda: Normal(0.0, [1.0, 0.0]), "`std` must be positive"),
    (lambda: Normal([0.0, 1.0], [1.0, 1.0, 1.0]), "same length"),
    (lambda: Normal([0.0, 1.0], 1.0, dim=3), "`dim`"),
    (lambda: Normal(np.nan, 1.0), "`mean` must be finite"),
    (lambda: Gamma(-1.0), "`shape` must be > 0"),
    (lambda: Gamma(2.0, 0.0), "`scale` must be > 0"),
    (lambda: GaussianMixture([0.5, 0.4], [0.0, 1.0], [1.0, 1.0]), "`weights` must sum to one"),
    (lambda: GaussianMixture([1.2, -0.2], [0.0, 1.0], [1.0, 1.0]), "non-negative"),
    (lambda: GaussianMixture([0.5, 0.5], [0.0, 1.0], [1.0, -1.0]), "`stds` must be positive"),
    (lambda: GaussianMixture([0.5, 0.5], [0.0, 1.0, 2.0], 1.0), "`means` must have 2 rows"),
    (lambda: GaussianMixture([0.5, 0.5], [[0, 0], [1, 1]], np.ones((2, 3))), "`stds` must"),
    (lambda: GaussianMixture([0.5, 0.5], [0.0, 1.0], [1.0, 1.0, 1.0]), "`stds` of shape"),
    (lambda: GeneralizedGaussianPair(beta=0.0), "`beta` must be > 0"),
    (lambda: GeneralizedGaussianPair(alpha=-1.0), "`alpha` must be > 0"),
])
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_points_raise():
    n2 = Normal([0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, 2\)"):
        n2.score(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        Normal().score(np.zeros(3))
    with pytest.raises(ValueError, match="`x` must be finite"):
        n2.log_density(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="`x` must be finite"):
        Gamma(2.0).score(np.array([[np.inf]]))
    with pytest.raises(ValueError, match="`n` must be >= 0"):
        n2.sample(-1)
    with pytest.raises(TypeError, match="`rng`"):
        n2.sample(3, rng="seed")
    with pytest.raises(ValueError, match="`midpoint` must be a scalar or have shape"):
        GeneralizedGaussianPair().sample(3, midpoint=np.zeros(4))
    with pytest.raises(NotImplementedError, match="dim == 1"):
        n2.cdf(np.zeros((1, 2)))

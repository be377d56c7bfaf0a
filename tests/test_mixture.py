"""GaussianMixtureScoreModel: every protocol method vs finite differences, agreement with
the analytic GaussianMixture, the noise-conditional (convolved) mode, parameters, errors."""

import numpy as np
import pytest

from fastscore.distributions import GaussianMixture
from fastscore.mixture import GaussianMixtureScoreModel

H = 1e-6


def _model(d, noise_conditional=False, seed=0):
    rng = np.random.default_rng(seed)
    k = 3
    model = GaussianMixtureScoreModel(rng.normal(size=(k, d)) * 2, rng.uniform(0.5, 1.5, (k, d)),
                                      [0.2, 0.3, 0.5], noise_conditional=noise_conditional)
    theta = model.get_weights() + 0.1 * rng.normal(size=model.n_params)
    x = rng.normal(size=(8, d)) * 2
    sigma = rng.uniform(0.1, 1.0, size=8) if noise_conditional else None
    return model, theta, x, sigma


CASES = [(1, False), (2, False), (3, False), (1, True), (2, True)]


def _fd_params(f, theta):
    g = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = H
        g[k] = (f(theta + e) - f(theta - e)) / (2 * H)
    return g


def _fd_jacobian(model, x, theta, sigma):
    """J[n, i, j] = ∂s_i/∂x_j by central differences."""
    d = x.shape[1]
    jac = np.empty((x.shape[0], d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = H
        jac[:, :, j] = (model.score(x + e, theta, sigma)
                        - model.score(x - e, theta, sigma)) / (2 * H)
    return jac


@pytest.mark.parametrize("d, nc", CASES)
def test_score_is_gradient_of_log_density(d, nc):
    model, theta, x, sigma = _model(d, nc)
    fd = np.empty_like(x)
    for i in range(d):
        e = np.zeros(d)
        e[i] = H
        fd[:, i] = (model.log_density(x + e, theta, sigma)
                    - model.log_density(x - e, theta, sigma)) / (2 * H)
    np.testing.assert_allclose(model.score(x, theta, sigma), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("d, nc", CASES)
def test_jacobian_diagonal_and_jvp_match_finite_differences(d, nc):
    model, theta, x, sigma = _model(d, nc, seed=1)
    jac = _fd_jacobian(model, x, theta, sigma)
    np.testing.assert_allclose(model.jacobian_diagonal(x, theta, sigma),
                               np.einsum("nii->ni", jac), rtol=1e-6, atol=1e-7)
    v = np.random.default_rng(2).normal(size=x.shape)
    np.testing.assert_allclose(model.jvp(x, theta, v, sigma), np.einsum("nij,nj->ni", jac, v),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("d, nc", CASES)
def test_parameter_vjps_match_finite_differences(d, nc):
    model, theta, x, sigma = _model(d, nc, seed=3)
    rng = np.random.default_rng(4)
    g, v = rng.normal(size=x.shape), rng.normal(size=x.shape)
    checks = [
        (lambda t: np.sum(g * model.score(x, t, sigma)),
         model.score_vjp(x, theta, g, sigma)),
        (lambda t: np.sum(g * model.jacobian_diagonal(x, t, sigma)),
         model.jacobian_diagonal_vjp(x, theta, g, sigma)),
        (lambda t: np.sum(g * model.jvp(x, t, v, sigma)),
         model.jvp_vjp(x, theta, v, g, sigma)),
        (lambda t: model.negative_log_likelihood(x, t, sigma)[0],
         model.negative_log_likelihood(x, theta, sigma)[1]),
    ]
    for f, analytic in checks:
        assert analytic.shape == (model.n_params,)
        np.testing.assert_allclose(analytic, _fd_params(f, theta), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("d", [1, 2])
def test_agrees_with_the_analytic_mixture(d):
    model, theta, x, _ = _model(d)
    dist = model.to_distribution(theta)
    np.testing.assert_allclose(model.score(x, theta), dist.score(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.log_density(x, theta), dist.log_density(x), rtol=1e-12)
    np.testing.assert_allclose(model.jacobian_diagonal(x, theta).sum(axis=1),
                               dist.score_divergence(x), rtol=1e-10, atol=1e-12)


def test_noise_conditional_score_is_the_convolved_mixture():
    model, theta, x, _ = _model(2, noise_conditional=True)
    means, stds, weights = model.unpack(theta)
    for sigma in (0.0, 0.3, 2.0):
        noisy = GaussianMixture(weights, means, np.sqrt(stds ** 2 + sigma ** 2))
        np.testing.assert_allclose(model.score(x, theta, np.full(len(x), sigma)),
                                   noisy.score(x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.score(x, theta, sigma), noisy.score(x), rtol=1e-12,
                                   atol=1e-12)
    np.testing.assert_array_equal(model.score(x, theta, None), model.score(x, theta, 0.0))


def test_parameters_pack_unpack_and_copy_semantics():
    model = GaussianMixtureScoreModel([[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [0.5, 0.5]],
                                      [0.25, 0.75])
    assert (model.n_components, model.dim, model.n_params) == (2, 2, 10)
    means, stds, weights = model.unpack()
    np.testing.assert_allclose(means, [[0, 1], [2, 3]])
    np.testing.assert_allclose(stds, [[1, 2], [0.5, 0.5]])
    np.testing.assert_allclose(weights, [0.25, 0.75])
    np.testing.assert_allclose(model.pack(means, stds, weights), model.get_weights())
    theta = model.get_weights()
    theta[0] = 99.0
    assert model.get_weights()[0] == 0.0          # get_weights returns a copy
    model.set_weights(theta)
    theta[0] = -1.0
    assert model.get_weights()[0] == 99.0         # set_weights copies too
    assert GaussianMixtureScoreModel([0.0, 1.0, 2.0], 1.0).unpack()[2] == pytest.approx(
        [1 / 3] * 3)


def test_from_data_and_bounds():
    x = np.random.default_rng(0).gamma(8.0, size=(100, 1))
    model = GaussianMixtureScoreModel.from_data(x, 3)
    means, stds, weights = model.unpack()
    assert np.all(np.diff(means[:, 0]) > 0) and x.min() < means.min() < means.max() < x.max()
    assert np.all(stds > 0) and weights == pytest.approx([1 / 3] * 3)
    b = model.bounds(min_std=0.3)
    assert len(b) == model.n_params
    assert b[3] == (pytest.approx(np.log(0.3)), None) and b[0] == (None, None)
    assert b[-1] == (None, None)


def test_errors():
    model, theta, x, _ = _model(2)
    with pytest.raises(ValueError, match=r"`params` must have shape \(15,\)"):
        model.score(x, theta[:-1])
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, 2\)"):
        model.score(x[:, :1], theta)
    with pytest.raises(ValueError, match="`x` must be finite"):
        model.score(np.full((2, 2), np.nan), theta)
    with pytest.raises(ValueError, match="not noise-conditional"):
        model.score(x, theta, sigma=np.ones(len(x)))
    nc, theta_nc, x_nc, _ = _model(2, noise_conditional=True)
    with pytest.raises(ValueError, match=r"`sigma` must be a scalar or have shape \(8,\)"):
        nc.score(x_nc, theta_nc, sigma=np.ones(3))
    with pytest.raises(ValueError, match="`sigma` must be non-negative"):
        nc.score(x_nc, theta_nc, sigma=-1.0)
    with pytest.raises(ValueError, match=r"`grad` must have shape \(8, 2\)"):
        model.score_vjp(x, theta, np.ones((8, 3)))
    with pytest.raises(ValueError, match="`stds` must be positive"):
        GaussianMixtureScoreModel([0.0, 1.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="`weights` must sum to one"):
        GaussianMixtureScoreModel([0.0, 1.0], 1.0, [0.5, 0.6])
    with pytest.raises(ValueError, match="`weights` must be positive"):
        GaussianMixtureScoreModel([0.0, 1.0], 1.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="`max_std` must be >= `min_std`"):
        model.bounds(min_std=1.0, max_std=0.5)

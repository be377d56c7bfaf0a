"""Exact vector-Jacobian products of patch scores and patch priors (used by DPS and the
probability-flow ODE): float64 central differences of the score along random directions."""

import numpy as np
import pytest

from fastscore.nn import NoiseConditionalScore, PatchScoreModel
from fastscore.prior import GaussianPatchScore, PatchPrior


def small_model(baseline=False):
    ncs = NoiseConditionalScore.for_patches((3, 3), hidden=(16, 16), rng=3, dtype=np.float64,
                                            baseline=baseline, n_threads=1)
    ncs.set_weights(ncs.get_weights() * 3.0)          # a non-trivial Jacobian
    return PatchScoreModel(ncs, 3, sigma_min=0.05, sigma_max=1.0)


def central_jvp(f, x, u, h=1e-5):
    return (f(x + h * u) - f(x - h * u)) / (2 * h)


@pytest.mark.parametrize("baseline", [False, True])
def test_patch_model_vjp_matches_finite_differences(baseline):
    model = small_model(baseline)
    rng = np.random.default_rng(0)
    p = rng.standard_normal((50, 9))
    v, u = rng.standard_normal((2, 50, 9))
    sigma = rng.uniform(0.1, 0.8, 50)
    vjp = model.input_vjp(p, sigma, v)
    # <v, J u> = <Jᵀ v, u> row by row
    jvp = central_jvp(lambda z: model.score(z, sigma), p, u)
    np.testing.assert_allclose(np.sum(v * jvp, 1), np.sum(vjp * u, 1), rtol=1e-6, atol=1e-8)
    assert model.input_vjp(p.astype(np.float32), 0.3, v).dtype == np.float32


@pytest.mark.parametrize("padding, weight", [("reflect", "mean"), ("zero", 0.5),
                                             ("circular", "sum")])
def test_image_prior_vjp_matches_finite_differences(padding, weight):
    prior = PatchPrior(small_model(), 3, padding=padding, weight=weight)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6))
    v, u = rng.standard_normal((2, 2, 7, 6))
    vjp = prior.score_vjp(x, 0.4, v)
    jvp = central_jvp(lambda z: prior.score(z, 0.4), x, u)
    np.testing.assert_allclose(np.sum(v * jvp, (1, 2)), np.sum(vjp * u, (1, 2)), rtol=1e-6)
    # per image: the second image's product does not see the first's
    np.testing.assert_allclose(prior.score_vjp(x[1], 0.4, v[1]), vjp[1], rtol=1e-12)


def test_gaussian_patch_vjp_and_unsupported_priors():
    rng = np.random.default_rng(2)
    score = GaussianPatchScore().fit(rng.standard_normal((200, 4)) @ rng.standard_normal((4, 4)))
    prior = PatchPrior(score, 2, weight="sum")
    x, v, u = rng.standard_normal((3, 5, 5))
    jvp = central_jvp(lambda z: prior.score(z, 0.3), x, u)
    np.testing.assert_allclose(np.sum(v * jvp), np.sum(prior.score_vjp(x, 0.3, v) * u),
                               rtol=1e-8)
    with pytest.raises(NotImplementedError, match="input_vjp"):
        PatchPrior(small_model().with_invariances(dc=True), 3).score_vjp(x, 0.3, v)

    class NoVJP:
        def score(self, patches, sigma):
            return -patches
    with pytest.raises(NotImplementedError, match="NoVJP"):
        PatchPrior(NoVJP(), 2).score_vjp(x, 0.3, v)
    with pytest.raises(ValueError, match="one shape"):
        prior.score_vjp(x, 0.3, v[:4])

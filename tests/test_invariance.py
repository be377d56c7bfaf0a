import numpy as np
import pytest

from fastscore.invariance import (InvariantPatchScore, ScaleInvariantPrior, robust_scale,
                                  symmetry_permutations)
from fastscore.prior import GaussianPatchScore, PatchPrior


class Quadratic:
    """A deliberately non-invariant patch score: s(v) = -A (v - m) / (1 + sigma)."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        B = rng.standard_normal((n, n))
        self.A = B @ B.T / n + np.eye(n)
        self.m = rng.standard_normal(n)

    def score(self, patches, sigma):
        s = np.asarray(sigma, dtype=float)
        s = s[:, None] if s.ndim == 1 else s
        return -((patches - self.m) @ self.A.T) / (1.0 + s)

    def log_density(self, patches, sigma):
        s = np.asarray(sigma, dtype=float)
        d = patches - self.m
        return -0.5 * np.einsum("ni,ij,nj->n", d, self.A, d) / (1.0 + s)


def image(shape=(15, 15), seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def test_dc_invariance_and_no_constant_component():
    prior = PatchPrior(InvariantPatchScore(Quadratic(9), (3, 3), dc=True), 3, weight="sum",
                       padding="circular")
    x = image()
    s = prior.score(x, 0.1)
    np.testing.assert_allclose(prior.score(x + 3.7, 0.1), s, rtol=1e-10, atol=1e-10)
    assert abs(s.sum()) < 1e-9 * np.abs(s).sum()   # orthogonal to the constant image


def test_dc_is_exact_chain_rule():
    inner = Quadratic(9)
    wrapped = InvariantPatchScore(inner, (3, 3), dc=True)
    v = np.random.default_rng(2).standard_normal((4, 9))
    P = np.eye(9) - np.ones((9, 9)) / 9
    logp = lambda w: inner.log_density((P @ w.T).T, 0.2)
    h = 1e-6
    fd = np.array([[(logp(v + h * np.eye(9)[i]) - logp(v - h * np.eye(9)[i]))[n] / (2 * h)
                    for i in range(9)] for n in range(4)])
    np.testing.assert_allclose(wrapped.score(v, 0.2), fd, rtol=1e-6, atol=1e-7)


def test_contrast_is_exact_chain_rule_and_scale_invariant():
    inner = Quadratic(9, seed=3)
    wrapped = InvariantPatchScore(inner, (3, 3), contrast=True, eps=0.05)
    v = np.random.default_rng(4).standard_normal((5, 9))
    sigma = 0.3

    def logp(w):
        c = w - w.mean(axis=1, keepdims=True)
        scale = np.sqrt(np.mean(c ** 2, axis=1, keepdims=True) + 0.05 ** 2)
        return inner.log_density(c / scale, sigma / scale[:, 0])

    # the score uses sigma/c as the inner noise level; differentiate log p~(u(v)) at fixed
    # inner noise levels, which is what the chain rule of the normalisation map gives
    c0 = np.sqrt(np.mean((v - v.mean(1, keepdims=True)) ** 2, axis=1) + 0.05 ** 2)

    def logp_fixed(w):
        c = w - w.mean(axis=1, keepdims=True)
        scale = np.sqrt(np.mean(c ** 2, axis=1, keepdims=True) + 0.05 ** 2)
        return inner.log_density(c / scale, sigma / c0)

    h = 1e-6
    fd = np.array([[(logp_fixed(v + h * np.eye(9)[i]) - logp_fixed(v - h * np.eye(9)[i]))[n]
                    / (2 * h) for i in range(9)] for n in range(5)])
    np.testing.assert_allclose(wrapped.score(v, sigma), fd, rtol=1e-6, atol=1e-7)
    del logp
    # contrast-normalised scores are offset invariant
    np.testing.assert_allclose(wrapped.score(v + 2.0, sigma), wrapped.score(v, sigma),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_symmetrised_prior_is_exactly_equivariant(k, flip):
    score = InvariantPatchScore(Quadratic(9, seed=5), (3, 3), symmetrize=True)
    prior = PatchPrior(score, 3, padding="reflect")
    x = image((12, 12), 6)
    transform = (lambda a: np.rot90(a, k)) if not flip else (lambda a: np.rot90(a.T, k))
    np.testing.assert_allclose(prior.score(transform(x), 0.1), transform(prior.score(x, 0.1)),
                               rtol=1e-12, atol=1e-12)
    plain = PatchPrior(Quadratic(9, seed=5), 3, padding="reflect")
    assert not np.allclose(plain.score(transform(x), 0.1), transform(plain.score(x, 0.1)))


def test_symmetry_groups():
    assert symmetry_permutations((3, 3)).shape == (8, 9)
    assert symmetry_permutations((2, 3)).shape == (4, 6)
    assert symmetry_permutations((2, 2, 2)).shape == (8, 8)
    for perms in (symmetry_permutations((3, 3)), symmetry_permutations((2, 3, 4))):
        assert len({tuple(p) for p in perms}) == len(perms)
        assert all(sorted(p) == list(range(perms.shape[1])) for p in perms)


def test_scale_covariance():
    train = np.random.default_rng(7).standard_normal((4000, 9)) * 0.5 + 1
    prior = ScaleInvariantPrior(PatchPrior(GaussianPatchScore().fit(train), 3), 2.0)
    x = image((10, 10), 8)
    for k in (0.5, 3.0):
        np.testing.assert_allclose(prior.score(k * x, k * 0.1), prior.score(x, 0.1) / k,
                                   rtol=1e-10, atol=1e-12)
    fixed = ScaleInvariantPrior(PatchPrior(GaussianPatchScore().fit(train), 3), 2.0, scale=2.0)
    inner = PatchPrior(GaussianPatchScore().fit(train), 3)
    np.testing.assert_allclose(fixed.score(x, 0.1), inner.score(x / 2, 0.05) / 2, rtol=1e-12)
    assert robust_scale(5 * x) == pytest.approx(5 * robust_scale(x))
    with pytest.raises(ValueError, match="constant image"):
        robust_scale(np.ones((4, 4)))

import itertools

import numpy as np
import pytest

from fastscore.io import ModelFileError
from fastscore.patch_gmm import _SPARSE_BELOW, GaussianMixturePatchScore, zero_mean_basis
from fastscore.prior import PatchPrior


def mixture(seed=0, K=3, p=3, prune=0.0):
    rng = np.random.default_rng(seed)
    m = p * p - 1
    means = 0.3 * rng.standard_normal((K, m))
    U = np.stack([np.linalg.qr(rng.standard_normal((m, m)))[0] for _ in range(K)])
    lam = rng.uniform(0.001, 0.2, (K, m))
    w = rng.uniform(0.5, 1.5, K)
    return GaussianMixturePatchScore(p, means, lam, U, w / w.sum(), prune=prune)


def test_basis_is_orthonormal_and_orthogonal_to_constants():
    B = zero_mean_basis(10)
    np.testing.assert_allclose(B.T @ B, np.eye(9), atol=1e-12)
    np.testing.assert_allclose(B.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.05, 0.3])
def test_score_is_gradient_of_log_density(sigma):
    g = mixture()
    v = np.random.default_rng(1).standard_normal((5, 9))
    s = g.score(v, sigma)
    h = 1e-6
    fd = np.empty_like(v)
    for j in range(9):
        e = np.zeros(9)
        e[j] = h
        fd[:, j] = (g.log_density(v + e, sigma) - g.log_density(v - e, sigma)) / (2 * h)
    np.testing.assert_allclose(s, fd, rtol=1e-5, atol=1e-6)


def test_one_component_is_the_wiener_filter():
    g = mixture(K=1)
    B = g.basis
    C = g.eigenvectors[0] @ np.diag(g.eigenvalues[0]) @ g.eigenvectors[0].T
    v = np.random.default_rng(2).standard_normal((4, 9))
    sigma = 0.2
    expected = -(np.linalg.solve(C + sigma ** 2 * np.eye(8), (v @ B - g.means[0]).T)).T @ B.T
    np.testing.assert_allclose(g.score(v, sigma), expected, rtol=1e-10, atol=1e-12)


def test_dc_invariance_and_float32():
    g = mixture(prune=1e-4)
    v = np.random.default_rng(3).standard_normal((6, 9))
    s = g.score(v, 0.1)
    np.testing.assert_allclose(g.score(v + 0.7, 0.1), s, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(s.sum(axis=1), 0.0, atol=1e-9)
    s32 = g.score(v.astype(np.float32), 0.1)
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, s, rtol=1e-3, atol=1e-3 * np.abs(s).max())


def test_pruning_error_is_small():
    exact, pruned = mixture(prune=0.0), mixture(prune=1e-4)
    v = np.random.default_rng(4).standard_normal((200, 9))
    a, b = exact.score(v, 0.1), pruned.score(v, 0.1)
    assert np.max(np.abs(a - b)) <= 3 * 1e-4 * np.max(np.abs(a))


def test_fit_recovers_two_well_separated_components():
    rng = np.random.default_rng(5)
    B = zero_mean_basis(4)
    mu = np.zeros((2, 3))
    mu[0, 0], mu[1, 0] = 2.0, -2.0
    n0, n1 = 3000, 1000
    c = np.concatenate([mu[0] + 0.3 * rng.standard_normal((n0, 3)),
                        mu[1] + 0.1 * rng.standard_normal((n1, 3))])
    v = c @ B.T + rng.uniform(-1, 1, (n0 + n1, 1))          # random DC: ignored
    g = GaussianMixturePatchScore.fit(v, 2, 2, n_steps=20, rng=0)
    order = np.argsort(g.means[:, 0])[::-1]
    np.testing.assert_allclose(g.weights[order], [0.75, 0.25], atol=0.02)
    np.testing.assert_allclose(g.means[order], mu, atol=0.05)
    np.testing.assert_allclose(np.sqrt(g.eigenvalues[order].mean(axis=1)), [0.3, 0.1],
                               rtol=0.1)
    ll = g.training["log_likelihood"]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ll))          # EM never decreases


def test_fit_is_deterministic_from_seed():
    v = np.random.default_rng(6).standard_normal((400, 9))
    a = GaussianMixturePatchScore.fit(v, 3, 4, n_steps=3, rng=1)
    b = GaussianMixturePatchScore.fit(v, 3, 4, n_steps=3, rng=1)
    np.testing.assert_array_equal(a.eigenvectors, b.eigenvectors)
    np.testing.assert_array_equal(a.means, b.means)


def test_save_load_roundtrip_and_corrupt_file(tmp_path):
    g = mixture(prune=1e-4)
    path = g.save(tmp_path / "g.npz")
    h = GaussianMixturePatchScore.load(path)
    v = np.random.default_rng(7).standard_normal((5, 9))
    np.testing.assert_allclose(h.score(v, 0.1), g.score(v, 0.1), rtol=1e-4, atol=1e-5)
    assert h.patch_size == (3, 3) and h.sigma_min == g.sigma_min
    bad = tmp_path / "bad.npz"
    with open(path, "rb") as f:
        bad.write_bytes(f.read()[:200])
    with pytest.raises(ModelFileError, match="bad.npz"):
        GaussianMixturePatchScore.load(bad)


def test_bad_arguments():
    g = mixture()
    with pytest.raises(ValueError, match="columns"):
        g.score(np.zeros((2, 8)), 0.1)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixturePatchScore(3, g.means, g.eigenvalues, g.eigenvectors, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="eigenvectors"):
        GaussianMixturePatchScore(3, g.means, g.eigenvalues, g.eigenvectors[:, :2],
                                  g.weights)
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixturePatchScore.fit(np.zeros((3, 9)), 3, 2)


def test_in_a_patch_prior_denoises():
    rng = np.random.default_rng(8)
    x = np.kron(rng.uniform(0, 1, (4, 4)), np.ones((6, 6)))            # blocky image
    P = np.lib.stride_tricks.sliding_window_view(x, (3, 3)).reshape(-1, 9)
    g = GaussianMixturePatchScore.fit(P + 0.01 * rng.standard_normal(P.shape), 3, 4,
                                      n_steps=10, rng=0)
    y = x + 0.1 * rng.standard_normal(x.shape)
    z = PatchPrior(g, 3).denoise(y, 0.1)
    assert np.mean((z - x) ** 2) < 0.5 * np.mean((y - x) ** 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma, sparse", [(1.0, False), (0.02, True)])
def test_chunks_match_a_per_component_reference(dtype, sigma, sparse):
    """Several chunks, equal (within rounding) to a per-component NumPy reference of the
    module formula, pruning included — with most (patch, component) pairs kept (the dense
    sum) and with few (the sparse one); a chunk scored alone gives the same rows."""
    g = mixture(seed=7, K=4, prune=1e-3)
    v = np.random.default_rng(8).standard_normal((1300, 9)).astype(dtype)   # 3 chunks
    runs = [(g.score(v, sigma), g.log_density(v, sigma))]
    np.testing.assert_array_equal(g.score(v[512:1024], sigma), runs[0][0][512:1024])
    c = v.astype(np.float64) @ g.basis
    var = g.eigenvalues + sigma ** 2
    ys = [(c - g.means[k]) @ g.eigenvectors[k] for k in range(4)]
    e = np.stack([np.log(g.weights[k]) - 0.5 * np.log(2 * np.pi * var[k]).sum()
                  - 0.5 * np.sum(ys[k] ** 2 / var[k], axis=1) for k in range(4)], axis=1)
    lse = np.log(np.exp(e - e.max(1, keepdims=True)).sum(1)) + e.max(1)
    r = np.exp(e - lse[:, None])
    r[r <= 1e-3] = 0
    assert (np.mean(r > 0) < _SPARSE_BELOW) == sparse        # the path this case takes
    expected = -sum((r[:, k, None] * ys[k] / var[k]) @ g.eigenvectors[k].T
                    for k in range(4)) @ g.basis.T
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(runs[0][0], expected, rtol=tol, atol=tol * np.abs(expected).max())
    np.testing.assert_allclose(runs[0][1], lse, rtol=tol)


def test_sharpened_is_the_mixture_with_covariances_reduced():
    g = mixture(K=1)
    h = g.sharpened(5e-4)
    C = g.eigenvectors[0] @ np.diag(g.eigenvalues[0]) @ g.eigenvectors[0].T
    v = np.random.default_rng(6).standard_normal((4, 9))
    sigma = 0.1
    expected = -(np.linalg.solve(C - 5e-4 * np.eye(8) + sigma ** 2 * np.eye(8),
                                 (v @ g.basis - g.means[0]).T)).T @ g.basis.T
    np.testing.assert_allclose(h.score(v, sigma), expected, rtol=1e-9, atol=1e-12)
    assert h.training["sharpened"] == 5e-4
    np.testing.assert_array_equal(g.sharpened(0.0).eigenvalues, g.eigenvalues)
    floored = g.sharpened(1.0, floor=1e-5).eigenvalues
    np.testing.assert_array_equal(floored, np.full_like(floored, 1e-5))
    with pytest.raises(ValueError, match="variance"):
        g.sharpened(-1e-3)

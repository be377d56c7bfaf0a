import tracemalloc

import numpy as np
import pytest

from fastscore.prior import GaussianPatchScore, PatchPrior, SumPrior, tv_prior
from fastscore.patches import PatchOperator


class Linear:
    """Patch score s(v) = A v + b: makes image-level expectations easy to write down."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def score(self, patches, sigma):
        return patches @ self.A.T.astype(patches.dtype) + self.b.astype(patches.dtype)


def identity_score(n):
    return Linear(np.eye(n), np.zeros(n))


def image(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_tv_prior_score_is_gradient_of_log_density():
    x = image((7, 9))
    prior = tv_prior(beta=2.0, alpha=1.0)
    s = prior.score(x)
    h = 1e-6
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fd[idx] = (prior.log_density(x + e) - prior.log_density(x - e)) / (2 * h)
    np.testing.assert_allclose(s, fd, rtol=1e-6, atol=1e-6)
    # anisotropic TV by hand: -beta * sum |differences|
    tv = np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum()
    assert prior.log_density(x) - prior.log_density(np.zeros_like(x)) == pytest.approx(-2 * tv)


def test_tv_prior_3d_gradient():
    x = image((3, 4, 5), 1)
    prior = tv_prior(beta=1.0, alpha=1.5, ndim=3)
    s = prior.score(x)
    h = 1e-6
    for idx in [(0, 0, 0), (1, 2, 3), (2, 3, 4)]:
        e = np.zeros_like(x)
        e[idx] = h
        fd = (prior.log_density(x + e) - prior.log_density(x - e)) / (2 * h)
        assert s[idx] == pytest.approx(fd, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("padding", ["reflect", "zero", "circular", "valid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_equals_unchunked(padding, dtype):
    rng = np.random.default_rng(2)
    score = Linear(rng.standard_normal((9, 9)), rng.standard_normal(9))
    x = image((2, 21, 17), 3, dtype)
    small = PatchPrior(score, 3, padding=padding, chunk_size=7).score(x, 0.1)
    large = PatchPrior(score, 3, padding=padding, chunk_size=10**6).score(x, 0.1)
    assert small.dtype == dtype
    np.testing.assert_allclose(small, large, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
    for b in range(2):  # batch axis = images one at a time
        np.testing.assert_allclose(large[b], PatchPrior(score, 3, padding=padding).score(
            x[b], 0.1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["reflect", "zero", "circular"])
def test_mean_weight_averages_covering_patches(padding):
    x = image((12, 10), 4)
    prior = PatchPrior(identity_score(9), 3, padding=padding, weight="mean")
    np.testing.assert_allclose(prior.score(x, 0.1), x, rtol=1e-12, atol=1e-12)
    assert prior.denoise(x, 0.5) == pytest.approx(x + 0.25 * x)


def test_sum_and_beta_weights():
    x = image((12, 10), 5)
    G = PatchOperator(x.shape, 3, padding="reflect")
    total = PatchPrior(identity_score(9), 3, weight="sum").score(x, 0.1)
    np.testing.assert_allclose(total, G.counts() * x, rtol=1e-12)
    beta = PatchPrior(identity_score(9), 3, weight=1 / 9).score(x, 0.1)
    np.testing.assert_allclose(beta, G.counts() * x / 9, rtol=1e-12)


@pytest.mark.parametrize("padding", ["reflect", "zero", "circular"])
def test_random_shift_scores_each_pixel_once(padding):
    x = image((13, 11), 6)
    prior = PatchPrior(identity_score(16), 4, tiling="random_shift", padding=padding, rng=0)
    for _ in range(3):  # a fresh shift each call, always one score per pixel
        np.testing.assert_allclose(prior.score(x, 0.1), x, rtol=1e-12, atol=1e-12)


def test_random_shift_moves_block_edges_and_is_seeded():
    rng = np.random.default_rng(7)
    score = Linear(rng.standard_normal((9, 9)), np.zeros(9))
    x = image((12, 12), 8)
    a = PatchPrior(score, 3, tiling="random_shift", rng=1)
    b = PatchPrior(score, 3, tiling="random_shift", rng=1)
    first = [a.score(x, 0.1) for _ in range(4)]
    second = [b.score(x, 0.1) for _ in range(4)]
    for f, s in zip(first, second):
        np.testing.assert_array_equal(f, s)
    assert any(not np.allclose(first[0], f) for f in first[1:])


class LinearVJP(Linear):
    def input_vjp(self, patches, sigma, v):
        return v @ self.A.astype(v.dtype)


def _random_linear(n, seed):
    rng = np.random.default_rng(seed)
    return LinearVJP(rng.standard_normal((n, n)), rng.standard_normal(n))


def test_shifted_overlap_with_stride_one_is_the_fixed_grid():
    score = _random_linear(9, 1)
    x = image((11, 9), 2)
    fixed = PatchPrior(score, 3, padding="reflect")
    moving = PatchPrior(score, 3, padding="reflect", tiling="shifted_overlap", rng=4)
    for _ in range(3):
        np.testing.assert_array_equal(moving.score(x, 0.1), fixed.score(x, 0.1))


@pytest.mark.parametrize("weight", ["mean", "sum"])
def test_shifted_overlap_is_the_fixed_grid_of_a_zero_padded_image(weight):
    # zero padding: the grid moved by (dy, dx) scores x as the centred grid scores x with
    # dy zero rows and dx zero columns put before it (then cropped)
    score = _random_linear(16, 3)
    x = image((12, 11), 4)
    moving = PatchPrior(score, 4, stride=2, padding="zero", weight=weight,
                        tiling="shifted_overlap")
    fixed = PatchPrior(score, 4, stride=2, padding="zero", weight=weight)
    seen = set()
    for seed in range(12):
        dy, dx = (o - 1 for o in moving.draw_origin(np.random.default_rng(seed)))
        seen.add((dy, dx))
        want = fixed.score(np.pad(x, ((dy, 0), (dx, 0))), 0.1)[dy:, dx:]
        np.testing.assert_allclose(moving.score(x, 0.1, rng=seed), want, rtol=1e-12,
                                   atol=1e-12)
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_shifted_overlap_mean_weight_counts_every_grid(padding):
    # a patch score of ones: the "mean" weighting divides by the counts of the grid used
    ones = Linear(np.zeros((16, 16)), np.ones(16))
    prior = PatchPrior(ones, 4, stride=(2, 3), padding=padding, tiling="shifted_overlap",
                       rng=0)
    assert len({prior.draw_origin(np.random.default_rng(s)) for s in range(30)}) == 6
    for _ in range(8):
        np.testing.assert_allclose(prior.score(image((13, 11), 5), 0.1), 1.0, rtol=1e-12)


def test_shifted_overlap_vjp_is_the_adjoint_of_the_same_grid():
    # a linear patch score: s(x + u) − s(x) = J u exactly, J the Jacobian on the drawn grid
    score = _random_linear(16, 6)
    prior = PatchPrior(score, 4, stride=(2, 3), padding="zero", tiling="shifted_overlap")
    x, u, v = image((10, 9), 7), image((10, 9), 8), image((10, 9), 9)
    for seed in range(4):
        Ju = prior.score(x + u, 0.1, rng=seed) - prior.score(x, 0.1, rng=seed)
        JTv = prior.score_vjp(x, 0.1, v, rng=seed)
        np.testing.assert_allclose(np.vdot(JTv, u), np.vdot(v, Ju), rtol=1e-10)
    with pytest.raises(NotImplementedError, match="tiling='overlap'"):
        PatchPrior(score, 4, weight="sum", tiling="shifted_overlap").log_density(x)


def test_shifted_overlap_lipschitz_bounds_every_grid():
    prior = PatchPrior(identity_score(16), 4, stride=3, weight="sum", padding="reflect",
                       tiling="shifted_overlap")
    grids = [prior.counts((11, 10), o).max() for o in
             [(a, b) for a in (1, 2, 3) for b in (1, 2, 3)]]
    assert prior.lipschitz((11, 10), 0.1) == pytest.approx(max(grids) / 0.01)
    assert max(grids) > prior.counts((11, 10)).max()  # a moved grid folds more at the edge


def test_with_tiling_copies_the_prior():
    prior = PatchPrior(_random_linear(9, 2), 3, stride=2)
    moved = prior.with_tiling("shifted_overlap")
    assert prior.tiling == "overlap" and moved.tiling == "shifted_overlap"
    assert moved.patch_score is prior.patch_score and moved.stride == 2
    with pytest.raises(ValueError, match="`tiling` must be one of"):
        prior.with_tiling("moving")
    with pytest.raises(ValueError, match="needs a padded mode"):
        PatchPrior(_random_linear(9, 2), 3, padding="valid").with_tiling("shifted_overlap")


def test_gaussian_patch_prior_matches_dense_quadratic():
    rng = np.random.default_rng(9)
    train = rng.standard_normal((5000, 4)) @ rng.standard_normal((4, 4)) + 0.3
    g = GaussianPatchScore().fit(train)
    np.testing.assert_allclose(g.mean_, train.mean(0), rtol=1e-12)
    shape, sigma = (5, 6), 0.3
    prior = PatchPrior(g, 2, padding="valid", weight="sum")
    G = PatchOperator(shape, 2)
    M = np.array([G.gather(e.reshape(shape)).ravel() for e in np.eye(30)]).T  # (n*4, 30)
    Cinv = np.linalg.inv(np.cov(train, rowvar=False, bias=True) + sigma ** 2 * np.eye(4))
    K = np.kron(np.eye(G.n_patches), Cinv)
    x = image(shape, 10)
    mu = np.tile(train.mean(0), G.n_patches)
    expected = -(M.T @ K @ (M @ x.ravel() - mu)).reshape(shape)
    np.testing.assert_allclose(prior.score(x, sigma), expected, rtol=1e-9, atol=1e-9)
    # score is the gradient of the log density
    e = np.zeros(shape)
    e[2, 3] = 1e-6
    fd = (prior.log_density(x + e, sigma) - prior.log_density(x - e, sigma)) / 2e-6
    assert prior.score(x, sigma)[2, 3] == pytest.approx(fd, rel=1e-6)


def test_bounded_memory_on_large_image():
    x = image((1024, 1024), 11, np.float32)
    prior = PatchPrior(identity_score(9), 3, chunk_size=16384)
    prior.score(x[:64, :64], 0.1)              # warm caches of small objects
    tracemalloc.start()
    prior.score(x, 0.1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    image_bytes = x.nbytes
    patches_bytes = 1024 * 1024 * 9 * 4
    # a few image-sized buffers (output, counts) plus chunks, never the patch matrix
    assert peak < 5 * image_bytes + 4 * 16384 * 9 * 8
    assert peak < patches_bytes / 2


def test_sum_prior_and_errors():
    x = image((6, 6), 12)
    p = PatchPrior(identity_score(9), 3, weight="sum")
    both = p + p
    assert isinstance(both, SumPrior)
    np.testing.assert_allclose(both.score(x, 0.1), 2 * p.score(x, 0.1))
    with pytest.raises(TypeError, match=r"`patch_score` must have a method score"):
        PatchPrior(object(), 3)
    with pytest.raises(ValueError, match=r"`weight` must be one of 'mean', 'sum'"):
        PatchPrior(identity_score(9), 3, weight="max")
    with pytest.raises(ValueError, match=r"`weight` must be > 0"):
        PatchPrior(identity_score(9), 3, weight=-1.0)
    with pytest.raises(ValueError, match=r"`tiling='random_shift'` needs a padded mode"):
        PatchPrior(identity_score(9), 3, tiling="random_shift", padding="valid")
    with pytest.raises(ValueError, match=r"`x` must be finite"):
        p.score(np.full((6, 6), np.nan), 0.1)
    with pytest.raises(ValueError, match=r"`sigma` must be > 0"):
        p.score(x, 0.0)
    with pytest.raises(ValueError, match=r"`x` must have 2 dimensions \(or 3 with a batch axis\)"):
        p.score(np.zeros((2, 2, 6, 6)), 0.1)
    with pytest.raises(NotImplementedError, match=r"scalar `weight`"):
        PatchPrior(identity_score(9), 3).log_density(x)
    with pytest.raises(RuntimeError, match=r"not fitted"):
        GaussianPatchScore().score(np.zeros((2, 4)), 0.1)


def test_patch_shape_must_match_the_model():
    from fastscore.nn import NoiseConditionalScore, PatchScoreModel

    model = PatchScoreModel(NoiseConditionalScore.for_patches(3, hidden=(8,), rng=0), 3,
                            sigma_min=0.1, sigma_max=1.0)
    for shape in [(1, 9), (9, 1), (1, 3, 3)]:           # same pixel count, other shape
        with pytest.raises(ValueError, match=r"`patch_size` .* differs from the patch shape "
                                             r"\(3, 3\)"):
            PatchPrior(model, shape)
    PatchPrior(model, 3)
    PatchPrior(model, (3, 3))


@pytest.mark.parametrize("dtype, sigma", [(np.float32, 1e-30), (np.float32, 1e30),
                                          (np.float64, 1e-300), (np.float64, 1e300)])
def test_sigma_outside_the_working_dtype(dtype, sigma):
    prior = PatchPrior(GaussianPatchScore().fit(image((500, 4), 3)), 2)
    x = image((6, 6), dtype=dtype)
    want = rf"`sigma` must be in \[.*\] for {np.dtype(dtype).name}"
    with pytest.raises(ValueError, match=want):
        prior.score(x, sigma)
    with pytest.raises(ValueError, match=want):
        prior.denoise(x, sigma)                         # once an OverflowError


def test_kde_patch_score_extreme_bandwidth():
    from fastscore.prior import KDEPatchScore

    v = image((20, 4), 4)
    for bandwidth in (1e300, 1e200):                      # once an OverflowError (h²)
        with pytest.raises(ValueError, match=r"`sqrt\(bandwidth² \+ sigma²\)` must be in"):
            KDEPatchScore(v, bandwidth).score(v, 0.1)


def test_kde_bandwidth_means_the_same_in_gaussian_kde_and_kde_patch_score():
    """`bandwidth` is the clean kernel's std h in both; the noise level only widens it to
    sqrt(h² + σ²) in the patch score."""
    from fastscore.kde import GaussianKDE
    from fastscore.prior import KDEPatchScore

    train, query = image((300, 4), 5), image((7, 4), 6)
    h, sigma = 0.3, 0.4
    patch_score = KDEPatchScore(train, h)
    np.testing.assert_array_equal(patch_score.score(query, None),
                                  GaussianKDE(h).fit(train).score(query))
    np.testing.assert_array_equal(patch_score.log_density(query, sigma),
                                  GaussianKDE(np.hypot(h, sigma)).fit(train).log_density(query))
    assert not np.allclose(patch_score.score(query, sigma), patch_score.score(query, None))

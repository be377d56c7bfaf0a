import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastscore.data import rectangles
from fastscore.invariance import IntensityReference, InvariantPatchScore, symmetry_permutations
from fastscore.nn import NoiseConditionalScore, PatchScoreModel
from fastscore.prior import PatchPrior
from fastscore.losses import ncsm
from fastscore.train import fit_patch_score


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
    wrapped = InvariantPatchScore(inner, (3, 3), contrast=True, contrast_eps=0.05)
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


def rectangle_reference():
    return IntensityReference.from_images(list(rectangles(200, rng=0)), rng=0)


def test_calibration_is_equivariant_and_unbiased_under_noise():
    ref = rectangle_reference()
    y = rectangles(1, rng=50)[0] + 0.1 * np.random.default_rng(1).standard_normal((16, 16))
    k, b = ref.calibrate(y, 0.1)
    for a, c in ((0.5, 0.0), (3.0, -2.0), (1.0, 0.7)):
        ka, ba = ref.calibrate(a * y + c, a * 0.1)
        assert ka == pytest.approx(a * k, rel=1e-9)
        assert ba == pytest.approx(a * b + c, rel=1e-9, abs=1e-9)
    # unbiased: images k x + b + noise give back (k, b) on average, at any noise level
    clean = rectangles(40, rng=60)
    rng = np.random.default_rng(2)
    for k_true, b_true, sigma in ((0.5, 0.0, 0.1), (2.0, 0.5, 0.1), (1.0, -1.0, 0.3)):
        est = np.array([ref.calibrate(k_true * x + b_true + sigma * rng.standard_normal(x.shape),
                                      sigma) for x in clean])
        # per image, (k, b) vary with the image (its background is N(1, 0.1²)); on average
        assert np.mean(est[:, 0]) == pytest.approx(k_true, rel=0.06)
        assert np.mean(est[:, 1]) == pytest.approx(b_true, abs=0.1)
        # the noise-blind estimate (σ_n = 0) is biased at this noise level
        naive = np.median([ref.calibrate(k_true * x + sigma * rng.standard_normal(x.shape))[0]
                           for x in clean])
        assert naive > 1.1 * k_true
    with pytest.raises(ValueError, match="constant image"):
        ref.calibrate(np.ones((4, 4)))


@pytest.mark.parametrize("mode", ["scale", "affine"])
def test_intensity_invariance_of_patch_prior(mode):
    ref = rectangle_reference()
    score = Quadratic(9, seed=9)
    prior = PatchPrior(score, 3, intensity=mode, reference=ref)
    x = rectangles(2, rng=70)          # a batch: one (k, b) per image
    base = prior.score(x, 0.1)
    for a, c in ((0.5, 0.0), (4.0, 0.0), (2.0, 0.5)):
        if mode == "scale" and c:
            continue
        np.testing.assert_allclose(prior.score(a * x + c, a * 0.1), base / a, rtol=1e-8,
                                   atol=1e-10)
    # calibrated: fixed (k, b), the inner prior at ((x - b)/k, σ/k) over k
    prior.calibrate(2.0 * x + 0.5 + 0.2 * np.random.default_rng(3).standard_normal(x.shape),
                    0.2)
    (k0, b0), (k1, b1) = prior.intensity.fixed
    inner = PatchPrior(score, 3)
    np.testing.assert_allclose(prior.score(x, 0.1)[1],
                               inner.score((x[1] - b1) / k1, 0.1 / k1) / k1, rtol=1e-12)
    assert (b0 == 0.0) == (mode == "scale")
    assert k0 == pytest.approx(2.0, rel=0.1)
    with pytest.raises(ValueError, match="calibrated for 2 image"):
        prior.score(np.stack([x[0]] * 3), 0.1)
    prior.calibrate(x[1], 0.0)          # one image: its (k, b) for every image of a batch
    np.testing.assert_allclose(prior.score(x, 0.1)[0], prior.score(x[0], 0.1), rtol=1e-12)


def test_intensity_option_errors():
    with pytest.raises(ValueError, match="reference"):
        PatchPrior(Quadratic(9), 3, intensity="affine")
    with pytest.raises(ValueError, match="intensity"):
        PatchPrior(Quadratic(9), 3, intensity="gamma")
    with pytest.raises(ValueError, match="calibrate needs"):
        PatchPrior(Quadratic(9), 3).calibrate(np.zeros((5, 5)), 0.1)
    with pytest.raises(ValueError, match="high > low"):
        IntensityReference([0.0, 1.0], [1.0, 1.0], [0.5, 2.0])


@pytest.mark.parametrize("options", [dict(dc=True), dict(contrast=True, contrast_eps=0.1)])
def test_invariant_training_loss_is_the_composite_score_and_its_gradient(options):
    rng = np.random.default_rng(8)
    ncs = NoiseConditionalScore.for_patches(2, hidden=(6, 5), dtype=np.float64, rng=0)
    model = PatchScoreModel(ncs, 2, sigma_min=0.05, sigma_max=1.0, **options)
    v, z = rng.standard_normal((7, 4)), rng.standard_normal((7, 4))
    sigma = rng.uniform(0.1, 1.0, 7)
    loss, grad = ncsm(ncs, None, v, draws=(sigma, z), **options)
    composite = sigma[:, None] * model.score(v + sigma[:, None] * z, sigma) + z
    assert loss == pytest.approx(0.5 * np.mean(np.sum(composite ** 2, axis=1)), rel=1e-12)
    grad, theta, h = grad.copy(), ncs.net.params.copy(), 1e-6
    for i in rng.choice(theta.size, 12, replace=False):
        ncs.net.params[...] = theta
        ncs.net.params[i] += h
        up = ncsm(ncs, None, v, draws=(sigma, z), grad=False, **options)[0]
        ncs.net.params[i] -= 2 * h
        down = ncsm(ncs, None, v, draws=(sigma, z), grad=False, **options)[0]
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)
    ncs.net.params[...] = theta


def test_trained_options_are_stored_applied_and_reloaded(tmp_path):
    images = rectangles(40, rng=0)
    model = fit_patch_score(images, n_steps=30, batch_size=64, warmup=5, dc=True,
                            symmetrize=True, scale_augment=(0.5, 2.0), intensity="affine",
                            rng=0, dtype=np.float32)
    assert model.invariances == {"dc": True, "contrast": False, "symmetrize": True,
                                 "contrast_eps": 1e-2, "intensity": "affine"}
    assert model.training["scale_augment"] == [0.5, 2.0]
    v = np.random.default_rng(1).standard_normal((6, 9)).astype(np.float32)
    s = model.score(v, 0.2)
    np.testing.assert_allclose(model.score(v + 1.5, 0.2), s, atol=2e-5)   # DC invariant
    np.testing.assert_allclose(s.sum(axis=1), 0, atol=2e-5)
    loaded = PatchScoreModel.load(model.save(tmp_path / "m.npz"))
    assert loaded.invariances == model.invariances
    assert loaded.intensity_reference.to_dict() == model.intensity_reference.to_dict()
    np.testing.assert_array_equal(loaded.score(v, 0.2), s)
    prior = PatchPrior(loaded, 3)
    assert prior.intensity.mode == "affine"
    plain = loaded.with_invariances(dc=False, symmetrize=False, intensity="none")
    assert PatchPrior(plain, 3).intensity is None
    assert not np.allclose(plain.score(v, 0.2), s)
    with pytest.raises(TypeError, match="unknown invariance"):
        loaded.with_invariances(rotate=True)
    with pytest.raises(ValueError, match="scale_augment"):
        fit_patch_score(images, n_steps=1, scale_augment=(2.0, 1.0), dtype=np.float32)
    # trained on patches: no image statistics, so no intensity normalisation
    patches = np.random.default_rng(2).standard_normal((500, 9)).astype(np.float32)
    with pytest.raises(ValueError, match="needs training `images`"):
        fit_patch_score(patches=patches, n_steps=2, intensity="affine")
    default = fit_patch_score(images, n_steps=2, dtype=np.float32)
    assert default.invariances["intensity"] == "none"


class Linear:
    """s(v) = -(v - 0.3) / (1 + σ): any shape, dtype preserved."""

    def score(self, patches, sigma):
        s = np.asarray(sigma, dtype=patches.dtype)
        return -(patches - patches.dtype.type(0.3)) / (1 + (s[:, None] if s.ndim else s))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=3),
       n=st.integers(1, 7), dc=st.booleans(), contrast=st.booleans(), sym=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_invariant_score_shapes_dtypes_and_projection(shape, n, dc, contrast, sym, dtype):
    d = int(np.prod(shape))
    v = np.random.default_rng(d + n).standard_normal((n, d)).astype(dtype)
    score = InvariantPatchScore(Linear(), shape, dc=dc, contrast=contrast, symmetrize=sym)
    s = score.score(v, 0.2)
    assert s.shape == v.shape and s.dtype == v.dtype and np.all(np.isfinite(s))
    if dc or contrast:       # no component along constant patches
        np.testing.assert_allclose(s.sum(axis=1), 0, atol=1e-4 * (1 + np.abs(s).sum()))

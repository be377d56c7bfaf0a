import numpy as np
import pytest

from fastscore.data import rectangles
from fastscore.distributions import GaussianMixture
from fastscore.io import read_model_file
from fastscore.nn import NoiseConditionalScore, PatchScoreModel
from fastscore.losses import ncsm
from fastscore.train import TrainingDiverged, fit_patch_score

SMALL = dict(n_steps=100, batch_size=128, validate_every=50, warmup=10)


@pytest.fixture(scope="module")
def images():
    return rectangles(60, rng=0, dtype=np.float32)


def test_validation_loss_halves_on_rectangles(images):
    model = fit_patch_score(images, n_steps=800, batch_size=256, validate_every=400, rng=1)
    assert isinstance(model, PatchScoreModel) and model.patch_size == (3, 3)
    val = model.history["val_loss"]
    assert model.history["val_step"][0] == 0
    assert val[-1] < 0.5 * val[0], val
    assert model.training["n_steps"] == 800 and model.sigma_min == 0.02


def test_resume_is_bit_for_bit(images, tmp_path):
    straight = fit_patch_score(images, rng=3, **SMALL)
    ckpt = str(tmp_path / "ckpt.npz")
    fit_patch_score(images, rng=3, checkpoint=ckpt, callback=lambda k, x, info: k == 50,
                    **SMALL)
    arrays, meta = read_model_file(ckpt, "checkpoint")
    assert meta["step"] == 50
    resumed = fit_patch_score(images, rng=3, checkpoint=ckpt, resume=True, **SMALL)
    np.testing.assert_array_equal(resumed.net.params, straight.net.params)
    assert resumed.history["loss"] == straight.history["loss"]


def test_interrupt_leaves_resumable_checkpoint(images, tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")

    def interrupt(step, x, info):
        if step == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_patch_score(images, rng=4, checkpoint=ckpt, callback=interrupt, **SMALL)
    _, meta = read_model_file(ckpt, "checkpoint")
    assert meta["step"] == 30
    resumed = fit_patch_score(images, rng=4, checkpoint=ckpt, resume=True, **SMALL)
    straight = fit_patch_score(images, rng=4, **SMALL)
    np.testing.assert_array_equal(resumed.net.params, straight.net.params)


def test_divergence_keeps_last_good_checkpoint(images, tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+") as info:
        fit_patch_score(images, rng=5, step_size=1e30, max_grad_norm=0.0, checkpoint=ckpt,
                        checkpoint_every=1, **SMALL)
    assert info.value.checkpoint == ckpt
    arrays, meta = read_model_file(ckpt, "checkpoint")
    assert np.all(np.isfinite(arrays["params"])) and meta["step"] == info.value.step


def test_same_seed_same_weights(images):
    a = fit_patch_score(images, rng=6, n_threads=1, **SMALL)
    b = fit_patch_score(images, rng=6, n_threads=1, **SMALL)
    np.testing.assert_array_equal(a.net.params, b.net.params)
    assert a.history["loss"] == b.history["loss"]
    c = fit_patch_score(images, rng=7, n_threads=1, **SMALL)
    assert not np.array_equal(c.net.params, a.net.params)     # the seed is used


def test_thread_counts_give_the_same_bits(images, openmp_build):
    """Every kernel of a training step (MLP tiles and slot-ordered gradient sums, Adam,
    EMA, the gradient norm) gives the same bits for any thread count."""
    a = fit_patch_score(images, rng=6, n_threads=1, **SMALL)
    c = fit_patch_score(images, rng=6, n_threads=2, **SMALL)
    np.testing.assert_array_equal(c.net.params, a.net.params)
    assert c.history["loss"] == a.history["loss"]


def test_ladder_patches_input_and_float64(images):
    """Patches of N(0, I_4) on a ladder of 4 levels: the exact score -v / (1 + σ²) has the
    NCSM loss d / (2 (1 + σ²)) per level and the zero score d / 2; 100 float64 steps must
    land between the two (better than knowing nothing, never better than the truth)."""
    ladder = [1.0, 0.5, 0.2, 0.1]
    patches = np.random.default_rng(7).standard_normal((5000, 4))
    model = fit_patch_score(patches=patches, patch_size=2, sigmas=ladder,
                            dtype=np.float64, rng=7, **SMALL)
    assert model.net.params.dtype == np.float64 and model.patch_size == (2, 2)
    assert model.sigma_min == 0.1 and model.sigma_max == 1.0
    assert model.score(patches[:3], 0.5).dtype == np.float64
    exact = np.mean([4 / (2 * (1 + s * s)) for s in ladder])       # 1.63
    zero = 4 / 2
    val = model.history["val_loss"]
    assert 0.9 * exact < val[-1] < 0.95 * zero, (exact, val)
    assert val[-1] < 0.8 * val[0], val


def test_dtype_follows_the_data_and_float64_is_never_narrowed_silently(images):
    wide = images.astype(np.float64)
    assert fit_patch_score(wide, n_steps=2, rng=0).net.params.dtype == np.float64
    assert fit_patch_score(images, n_steps=2, rng=0).net.params.dtype == np.float32
    small = NoiseConditionalScore.for_patches(3, hidden=(8,), rng=0)         # float32
    with pytest.raises(TypeError, match=r"`model` is float32 but the training data is "
                                        r"float64: pass dtype=np.float32"):
        fit_patch_score(wide, model=small, n_steps=2, rng=0)
    # asked for explicitly: float32 training on float64 images, same as on float32 images
    a = fit_patch_score(wide, n_steps=3, rng=0, dtype=np.float32, validation_fraction=0.0)
    b = fit_patch_score(images, n_steps=3, rng=0, validation_fraction=0.0)
    np.testing.assert_array_equal(a.net.params, b.net.params)


def test_training_ncsm_gradient_matches_finite_differences():
    """ncsm(params=None): the gradient the training passes write into net.grad (float64
    network) against central differences of the loss."""
    rng = np.random.default_rng(8)
    model = NoiseConditionalScore.for_patches(2, hidden=(6, 5), dtype=np.float64, rng=0)
    v = rng.standard_normal((7, 4))
    sigma = rng.uniform(0.1, 1.0, 7)
    z = rng.standard_normal((7, 4))
    grad = ncsm(model, None, v, draws=(sigma, z))[1].copy()
    theta = model.net.params.copy()
    h = 1e-6
    for i in rng.choice(theta.size, 12, replace=False):
        model.net.params[...] = theta
        model.net.params[i] += h
        up = ncsm(model, None, v, draws=(sigma, z), grad=False)[0]
        model.net.params[i] -= 2 * h
        down = ncsm(model, None, v, draws=(sigma, z), grad=False)[0]
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)
    model.net.params[...] = theta


def test_learns_the_smoothed_score_of_a_1d_mixture():
    """0.4 N(3, 1) + 0.6 N(13, 3²): the trained score at σ_min is within 10% (relative L2
    over the data region, weighted by the smoothed density) of the true smoothed score."""
    mixture = GaussianMixture([0.4, 0.6], [3.0, 13.0], [1.0, 3.0])
    data = mixture.sample(20000, rng=9)
    sigma_min = 0.5
    model = NoiseConditionalScore.for_patches((1, 1), data, hidden=(64, 64, 64),
                                              conditioning="input",
                                              activations=["silu"] * 3 + ["identity"],
                                              dtype=np.float64, rng=9, n_threads=1)
    trained = fit_patch_score(patches=data, patch_size=(1, 1), model=model,
                              sigma_range=(sigma_min, 1.0), n_steps=4000, batch_size=512,
                              step_size=3e-3,
                              augment=False, rng=9, dtype=np.float64, n_threads=1)
    grid = np.linspace(-1, 22, 400)[:, None]
    smoothed = GaussianMixture([0.4, 0.6], [3.0, 13.0],
                               [np.hypot(1.0, sigma_min), np.hypot(3.0, sigma_min)])
    true = smoothed.score(grid)
    got = trained.score(grid, sigma_min)
    w = np.exp(smoothed.log_density(grid))
    err = np.sqrt(np.sum(w * (got - true).ravel() ** 2) / np.sum(w * true.ravel() ** 2))
    assert err < 0.10, err


def test_errors(images, tmp_path):
    with pytest.raises(ValueError, match=r"exactly one of `images` and `patches`"):
        fit_patch_score()
    with pytest.raises(ValueError, match=r"`sigma_range` must be \(sigma_min, sigma_max\)"):
        fit_patch_score(images, sigma_range=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"sigma_min < sigma_max"):
        fit_patch_score(images, sigma_range=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"`sigma_range` must be \(sigma_min, sigma_max\); got"):
        fit_patch_score(images, sigma_range=(0.1, 0.5, 1.0))
    with pytest.raises(TypeError, match=r"one of `sigma_range` and `sigmas`"):
        fit_patch_score(images, sigma_range=(0.1, 1.0), sigmas=[1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match=r"`resume=True` needs a `checkpoint`"):
        fit_patch_score(images, resume=True)
    with pytest.raises(ValueError, match=r"sigma_min < sigma_max; got \(1.0, 0.02\)"):
        fit_patch_score(images, sigma_range=(1.0, 0.02))      # reversed: not silently swapped
    with pytest.raises(ValueError, match=r"`sigma_range` must be in \[.*\] for float32"):
        fit_patch_score(images, sigma_range=(1e-30, 1.0))
    with pytest.raises(ValueError, match=r"`patches` must have 9 columns"):
        fit_patch_score(patches=np.zeros((10, 4)), patch_size=3)
    with pytest.raises(ValueError, match=r"`images` must be finite"):
        fit_patch_score(np.full((4, 8, 8), np.nan))
    with pytest.raises(TypeError, match=r"`dtype` must be float32 or float64"):
        fit_patch_score(images, dtype=np.int32)


def test_a_far_too_large_learning_rate_is_reported_not_returned():
    """One step with lr = 1e37 leaves non-finite weights: an error, not such a model."""
    images = np.array([[0.0, 1.0]], np.float32)      # the case the property tests found
    with pytest.raises(TrainingDiverged, match=r"non-finite weights after the update"):
        fit_patch_score(images, patch_size=1, n_steps=1, batch_size=1,
                        step_size=3.402823567797336e+37, warmup=0, validation_fraction=0.0, rng=0,
                        dtype=np.float32)

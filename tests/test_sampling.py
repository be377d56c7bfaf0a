"""Langevin samplers: the tutorial's mixture and KDE sampling, annealing, MALA exactness,
schedules, traces, reproducibility and errors."""

import numpy as np
import pytest
from scipy import stats

from fastscore.distributions import Gamma, GaussianMixture, Normal
from fastscore.sampling import SamplingResult, annealed_langevin, langevin, mala

MIXTURE = GaussianMixture([0.4, 0.6], [3.0, 13.0], [1.0, 3.0])
BASIN = 6.08          # the density's minimum between the modes (score = 0)


def _ks(x, dist):
    return stats.kstest(x[:, 0], lambda t: dist.cdf(t[:, None])).statistic


def _noisy_mixture_score(x, sigma):
    """Exact score of the mixture convolved with N(0, σ²)."""
    return GaussianMixture(MIXTURE.weights, MIXTURE.means,
                           np.sqrt(MIXTURE.stds ** 2 + sigma ** 2)).score(x)


def test_langevin_reproduces_the_gaussian_mixture():
    """5000 chains × 600 steps on 0.4·N(3,1) + 0.6·N(13,3²): KS < 0.03.

    Start: N(8, 5²), far from the target (KS ≈ 0.2) and with 35% of the chains in the left
    basin instead of 40%, so the chains have to move mass between the modes. Step 0.1:
    with 0.05, 600 steps do not finish that transfer (KS ≈ 0.02–0.03 depending on the
    seed); from 0.3 up the discretisation bias of unadjusted Langevin shows (the stationary
    variance of a unit Gaussian is 1/(1 − α/2)). KS with step 0.1 was 0.008–0.018 over six
    seeds."""
    x0 = 8.0 + 5.0 * np.random.default_rng(100).standard_normal((5000, 1))
    assert _ks(x0, MIXTURE) > 0.15 and abs(np.mean(x0 < BASIN) - 0.355) < 0.02
    res = langevin(MIXTURE.score, x0, 600, 0.1, rng=0)
    assert res.samples.shape == (5000, 1) and res.n_steps == 600
    assert _ks(res.samples, MIXTURE) < 0.03
    assert abs(np.mean(res.samples < BASIN) - 0.4) < 0.02


def test_langevin_from_the_kde_score_reproduces_the_kde_mixture():
    """Langevin on the score of a Gaussian KDE (200 training samples of the mixture,
    bandwidth 1) samples the KDE's own mixture (1/200 Σ_t N(x_t, 1)), not the training set.

    The chains start at the training points (as a KDE prior would), which carries the
    KDE's mode weights; what the sampler must produce is the KDE's local shape: the
    distance from a sample to its nearest training point, 0 at the start, must follow that
    of exact KDE draws."""
    from fastscore.kde import GaussianKDE

    train = MIXTURE.sample(200, rng=3)
    kde = GaussianKDE(1.0).fit(train)
    kde_mixture = GaussianMixture(np.full(200, 1 / 200), train[:, 0], 1.0)
    x0 = train[np.random.default_rng(1).integers(0, 200, 5000)]
    res = langevin(kde.score, x0, 600, 0.1, rng=2)

    def nearest(x):
        return np.min(np.abs(x - train[:, 0]), axis=1)

    reference = nearest(kde_mixture.sample(20000, rng=4))
    assert stats.ks_2samp(nearest(x0), reference).statistic > 0.9
    # two-sample KS (5000 vs 20000 draws): its 1% critical value is about 0.026
    assert stats.ks_2samp(nearest(res.samples), reference).statistic < 0.04
    assert _ks(res.samples, kde_mixture) < 0.03


def test_annealing_recovers_mode_weights_plain_langevin_cannot():
    """From one mode (x0 = 0), 600 plain Langevin steps leave most chains in the narrow mode;
    600 annealed steps (10 levels 10 → 0.1, Song & Ermon's schedule) find both modes with
    the right weights."""
    x0 = np.zeros((5000, 1))
    plain = langevin(MIXTURE.score, x0, 600, 0.1, rng=0)
    assert _ks(plain.samples, MIXTURE) > 0.2
    annealed = annealed_langevin(_noisy_mixture_score, np.geomspace(10.0, 0.1, 10), 60, 0.01,
                                 x0, rng=1)
    assert annealed.n_steps == 600
    assert _ks(annealed.samples, MIXTURE) < 0.04
    assert abs(np.mean(annealed.samples < BASIN) - 0.4) < 0.03


def test_mala_removes_the_step_size_bias():
    """N(0, 1) with step 0.8: unadjusted Langevin's stationary std is 1/sqrt(1 − 0.4) ≈ 1.29;
    MALA's accept/reject step brings it back to 1."""
    target = Normal(0.0, 1.0)
    x0 = np.random.default_rng(0).standard_normal((4000, 1))
    ula = langevin(target.score, x0, 200, 0.8, rng=1)
    assert ula.samples.std() == pytest.approx(1 / np.sqrt(0.6), rel=0.04)
    res = mala(target.log_density, target.score, x0, 200, 0.8, rng=1)
    assert res.samples.std() == pytest.approx(1.0, rel=0.04)
    assert _ks(res.samples, target) < 0.03
    assert 0.3 < res.acceptance_rate < 0.99


def test_mala_respects_the_support():
    """Gamma(8, 1): proposals with x ≤ 0 (log_density −inf, score NaN) are rejected."""
    gamma = Gamma(8.0, 1.0)
    x0 = np.full((3000, 1), 8.0)
    res = mala(gamma.log_density, gamma.score, x0, 300, 1.0, rng=0)
    assert np.all(res.samples > 0)
    assert _ks(res.samples, gamma) < 0.03
    assert 0.5 < res.acceptance_rate < 1.0


def test_tweedie_final_denoising():
    sigmas = np.geomspace(3.0, 0.5, 4)
    x0 = np.zeros((50, 1))
    raw = annealed_langevin(_noisy_mixture_score, sigmas, 5, 0.05, x0, rng=3,
                            final_denoise=False)
    den = annealed_langevin(_noisy_mixture_score, sigmas, 5, 0.05, x0, rng=3)
    np.testing.assert_allclose(
        den.samples, raw.samples + 0.25 * _noisy_mixture_score(raw.samples, 0.5), rtol=1e-12)


def test_annealed_step_sizes_follow_the_schedule():
    """α_i = ε σ_i²/σ_L² with update x + α_i/2 s + sqrt(α_i) z; a zero score isolates the
    noise, whose variance after T steps per level is Σ_i T α_i."""
    sigmas = np.array([2.0, 1.0, 0.5])
    res = annealed_langevin(lambda x, s: np.zeros_like(x), sigmas, 10, 0.01,
                            np.zeros((20000, 1)), rng=0, final_denoise=False)
    expected = 10 * np.sum(0.01 * sigmas ** 2 / 0.25)
    assert res.samples.var() == pytest.approx(expected, rel=0.03)
    seen = []
    annealed_langevin(lambda x, s: seen.append(s) or np.zeros_like(x), sigmas, 2, 0.01,
                      np.zeros((2, 1)), rng=0)
    assert seen == [2.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.5]   # last: the Tweedie step
    assert all(type(s) is float for s in seen)


@pytest.mark.parametrize("run", [
    lambda rng: langevin(MIXTURE.score, np.full((20, 1), 5.0), 30, 0.1, rng=rng).samples,
    lambda rng: annealed_langevin(_noisy_mixture_score, [3.0, 1.0], 10, 0.05,
                                  np.zeros((20, 1)), rng=rng).samples,
    lambda rng: mala(MIXTURE.log_density, MIXTURE.score, np.full((20, 1), 5.0), 30, 0.5,
                     rng=rng).samples,
])
def test_samplers_are_reproducible_with_a_seed(run):
    a = run(7)
    np.testing.assert_array_equal(a, run(7))
    np.testing.assert_array_equal(a, run(np.random.default_rng(7)))
    assert not np.array_equal(a, run(8))


def test_schedules_scalar_array_callable_agree():
    x0 = np.linspace(-2, 2, 10)[:, None]
    score = Normal(0.0, 1.0).score
    a = langevin(score, x0, 25, 0.05, rng=0).samples
    b = langevin(score, x0, 25, np.full(25, 0.05), rng=0).samples
    c = langevin(score, x0, 25, lambda t: 0.05, rng=0).samples
    d = langevin(score, x0, 25, 0.05, noise_scale=np.sqrt(0.1), rng=0).samples
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(a, d, rtol=1e-15)
    decaying = langevin(score, x0, 25, lambda t: 0.1 / (1 + t), rng=0).samples
    assert not np.array_equal(a, decaying)


def test_zero_noise_is_gradient_ascent():
    res = langevin(Normal(2.0, 1.0).score, np.array([[10.0], [-4.0]]), 200, 0.1,
                   noise_scale=0.0, rng=0)
    np.testing.assert_allclose(res.samples, 2.0, atol=1e-8)


def test_trace_callback_and_batches_of_images():
    x0 = np.ones((3, 4, 4), dtype=np.float32)
    calls = []
    res = langevin(lambda x: -x, x0, 50, 0.01, rng=0, trace_every=20,
                   callback=lambda t, x, info: calls.append(t))
    assert isinstance(res, SamplingResult)
    assert res.samples.shape == (3, 4, 4) and res.samples.dtype == np.float32
    assert res.trace.shape == (3, 3, 4, 4) and res.trace.dtype == np.float32
    np.testing.assert_array_equal(res.trace_steps, [0, 20, 40])
    np.testing.assert_array_equal(res.trace[0], x0)
    assert calls == list(range(1, 51))
    stopped = langevin(lambda x: -x, x0, 50, 0.01, rng=0, callback=lambda t, x, info: t == 7)
    assert stopped.n_steps == 7 and stopped.trace is None
    m = mala(lambda x: -0.5 * np.sum(x ** 2, axis=(1, 2)), lambda x: -x, x0, 10, 0.1, rng=0,
             trace_every=5)
    assert m.trace.shape == (3, 3, 4, 4) and m.samples.dtype == np.float32


@pytest.mark.parametrize("call, error, match", [
    (lambda: langevin(lambda x: -x, np.array([[np.nan]]), 5, 0.1), ValueError,
     "`x0` must be finite"),
    (lambda: langevin(lambda x: -x, 1.0, 5, 0.1), ValueError, "leading chain axis"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), 5, 0.0), ValueError,
     "`step_size` must be positive"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), 5, -0.1), ValueError,
     "`step_size` must be positive"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), 5, np.ones(4)), ValueError,
     r"one entry per step \(5\)"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), 5, lambda t: 0.1 - 0.05 * t),
     ValueError, "got 0.0 at step 2"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), 5, 0.1, noise_scale=-1.0), ValueError,
     "`noise_scale` must be non-negative"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), -1, 0.1), ValueError,
     "`n_steps` must be >= 0"),
    (lambda: langevin(lambda x: x[:1], np.zeros((2, 1)), 5, 0.1), ValueError,
     r"`score` must return an array of the shape of x, \(2, 1\)"),
    (lambda: langevin(lambda x: 1e300 * np.ones_like(x), np.zeros((2, 1)), 5, 1e10),
     FloatingPointError, "reduce the step size"),
    (lambda: langevin(lambda x: -x, np.zeros((2, 1)), 5, 0.1, trace_every=0), ValueError,
     "`trace_every` must be >= 1"),
    (lambda: annealed_langevin(lambda x, s: -x, [1.0, 2.0], 5, 0.1, np.zeros((2, 1))),
     ValueError, "non-increasing"),
    (lambda: annealed_langevin(lambda x, s: -x, [1.0, 0.0], 5, 0.1, np.zeros((2, 1))),
     ValueError, "`sigmas` must be positive"),
    (lambda: annealed_langevin(lambda x, s: -x, [1.0], 5, 0.0, np.zeros((2, 1))),
     ValueError, "`step_size` must be > 0"),
    (lambda: annealed_langevin(lambda x, s: -x, [1.0], 0, 0.1, np.zeros((2, 1))),
     ValueError, "`steps_per_sigma` must be >= 1"),
    (lambda: mala(lambda x: x.sum(), lambda x: -x, np.zeros((2, 1)), 5, 0.1), ValueError,
     r"`log_density` must return shape \(2,\)"),
    (lambda: mala(Gamma(2.0).log_density, Gamma(2.0).score, np.full((2, 1), -1.0), 5, 0.1),
     ValueError, "start inside the support"),
    (lambda: mala(lambda x: -x[:, 0], lambda x: -x, np.zeros((2, 1)), 5, 0.0), ValueError,
     "`step_size` must be positive"),
])
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- annealed HMC, predictor-corrector, probability flow (callback(k, x, info)) ---------------
from fastscore.sampling import annealed_hmc, predictor_corrector, probability_flow  # noqa: E402

MU, VAR = 1.5, 0.3 ** 2


def _gauss_score(x, sigma):
    """Score of N(MU, VAR) convolved with N(0, σ²) (consistent VE marginals)."""
    return -(x - MU) / (VAR + sigma ** 2)


def _gauss_log_density(x, sigma):
    return -0.5 * np.sum((x - MU) ** 2, axis=1) / (VAR + sigma ** 2)


def test_annealed_hmc_metropolis_is_exact_and_unadjusted_is_close():
    """4000 chains × 3 coordinates: with the log-density the last level's law is exact
    (mean and variance within 5 standard errors); the unadjusted variant, adapted to 95%
    estimated acceptance, inflates the variance by v/(1 − ε²/4v), measured ≈ 3%."""
    sigmas = np.geomspace(2.0, 0.01, 10)
    x0 = 2.0 * np.random.default_rng(0).standard_normal((4000, 3))
    target = VAR + 0.01 ** 2
    exact = annealed_hmc(_gauss_score, sigmas, x0, n_steps=10, log_density=_gauss_log_density,
                         rng=1)
    n = exact.samples.size
    assert abs(exact.samples.mean() - MU) < 5 * np.sqrt(target / n)
    assert abs(exact.samples.var() / target - 1) < 5 * np.sqrt(2 / n)
    assert 0.5 < exact.acceptance_rate < 0.85
    assert exact.n_score_evals == 10 * (1 + 10 * 5)
    plain = annealed_hmc(_gauss_score, sigmas, x0, n_steps=10, rng=1)
    assert abs(plain.samples.mean() - MU) < 5 * np.sqrt(target / n)
    assert 1.0 < plain.samples.var() / target < 1.08
    assert plain.acceptance_rate > 0.9


def test_annealed_hmc_escapes_a_bad_start_and_reports():
    seen = []
    res = annealed_hmc(_gauss_score, [0.5, 0.1], np.full((200, 2), 50.0), n_steps=6,
                       log_density=_gauss_log_density, rng=2,
                       callback=lambda k, x, info: seen.append((k, info)) or k == 9,
                       trace_every=3)
    assert res.n_steps == 9 and [k for k, _ in seen] == list(range(1, 10))
    assert {"sigma", "step_size", "acceptance"} <= set(seen[0][1])
    assert list(res.trace_steps) == [0, 3, 6, 9]
    res = annealed_hmc(_gauss_score, [0.5, 0.1], np.full((200, 2), 50.0), n_steps=40,
                       log_density=_gauss_log_density, rng=2)
    assert abs(res.samples.mean() - MU) < 0.1


def test_predictor_corrector_samples_the_last_level():
    """The SNR step rule needs many coordinates per chain (‖z‖/‖s‖ is noisy in few)."""
    sigmas = np.geomspace(2.0, 0.05, 40)
    x0 = MU + np.sqrt(VAR + 4.0) * np.random.default_rng(3).standard_normal((500, 64))
    res = predictor_corrector(_gauss_score, sigmas, x0, n_corrector=1, snr=0.16, rng=4,
                              final_denoise=False)
    target = VAR + 0.05 ** 2
    assert abs(res.samples.mean() - MU) < 5 * np.sqrt(target / res.samples.size)
    assert 0.9 < res.samples.var() / target < 1.15
    assert res.n_score_evals == 39 + 40
    den = predictor_corrector(_gauss_score, sigmas, x0, rng=4)
    # Tweedie at σ_L shrinks by VAR/(VAR + σ_L²)
    np.testing.assert_allclose(den.samples, MU + (res.samples - MU) * VAR / target,
                               rtol=1e-12)


def test_probability_flow_samples_and_round_trips():
    """Decoding N(MU, VAR + σ_max²) along a decreasing ladder gives N(MU, VAR + σ_min²)
    (the ODE is exact for exact scores up to Heun's O(h²)); encoding on the reversed ladder
    returns the start (deterministic, O(h²))."""
    sigmas = np.geomspace(2.0, 0.01, 30)
    x0 = MU + np.sqrt(VAR + 4.0) * np.random.default_rng(5).standard_normal((4000, 3))
    dec = probability_flow(_gauss_score, sigmas, x0)
    assert dec.n_score_evals == 2 * 29
    assert abs(dec.samples.var() / (VAR + 1e-4) - 1) < 5 * np.sqrt(2 / dec.samples.size)
    enc = probability_flow(_gauss_score, sigmas[::-1], dec.samples)
    np.testing.assert_allclose(enc.samples, x0, atol=1e-2 * np.abs(x0).max())
    fine = probability_flow(_gauss_score, np.geomspace(2.0, 0.01, 120), x0).samples
    back = probability_flow(_gauss_score, np.geomspace(0.01, 2.0, 120), fine).samples
    assert np.abs(back - x0).max() < np.abs(enc.samples - x0).max() / 8   # second order


@pytest.mark.parametrize("call, match", [
    (lambda: annealed_hmc(_gauss_score, [0.1, 0.5], np.zeros((2, 1))), "non-increasing"),
    (lambda: probability_flow(_gauss_score, [0.5, 0.1, 0.3], np.zeros((2, 1))), "monotone"),
    (lambda: predictor_corrector(_gauss_score, [], np.zeros((2, 1))), "empty"),
    (lambda: annealed_hmc(_gauss_score, [0.1], np.zeros((2, 1)), n_leapfrog=0), "n_leapfrog"),
    (lambda: annealed_hmc(_gauss_score, [0.1], np.zeros((2, 1)),
                          log_density=lambda x, s: np.zeros(3)), "one value per chain"),
])
def test_new_samplers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()

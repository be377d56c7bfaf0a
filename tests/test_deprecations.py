"""Every renamed name of docs/conventions.rst: the old spelling still works for one release,
warns (FutureWarning naming the new spelling) and gives exactly the new spelling's result."""

import dataclasses
import warnings

import numpy as np
import pytest

from fastscore import data, losses, operators, phantoms, reconstruct, sampling, tv
from fastscore._deprecation import keyword_only, renamed_arguments
from fastscore.distributions import (Distribution, Gamma, GaussianMixture,
                                     GeneralizedGaussianPair, Normal)
from fastscore.mixture import GaussianMixtureScoreModel
from fastscore.invariance import InvariantPatchScore, normalize_patches
from fastscore.optim import (Adam, ConstantLR, ConstantSchedule, CosineLR, CosineSchedule,
                             StepDecaySchedule, StepLR, WarmupLR, WarmupSchedule)
from fastscore.patch_gmm import GaussianMixturePatchScore
from fastscore.prior import DistributionPatchScore, GaussianPatchScore, PatchPrior


def _same(a, b):
    """Exact equality of results: arrays, tuples, dataclasses, scalars."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for field in dataclasses.fields(a):
            _same(getattr(a, field.name), getattr(b, field.name))
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _same(u, v)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
        assert np.asarray(a).dtype == np.asarray(b).dtype
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def _score(x, sigma=None):
    return -x


def _log_density(x):
    return -0.5 * np.sum(x.reshape(len(x), -1) ** 2, axis=1)


X0 = np.linspace(-1, 1, 12).reshape(6, 2)
MODEL = GaussianMixtureScoreModel([-1.0, 1.0], [0.5, 0.7])
THETA = MODEL.get_weights()
POINTS = np.linspace(-2, 2, 15).reshape(-1, 1)
IMAGE = data.rectangles(1, size=12, rng=3)[0]

# (id, old spelling, new spelling, text the warning must contain)
class _Linear:
    """A patch score s(v) = -v (any σ), for the invariance wrapper."""

    def score(self, patches, sigma):
        return -patches


def _adam_run(step_lr=None, step_step_size=None, **options):
    """Parameters after three Adam steps (options of the constructor, or of each step)."""
    theta = np.zeros(3)
    opt = Adam(theta, **options)
    for k in range(3):
        grad = np.array([1.0, -2.0, 0.5]) * (k + 1)
        if step_lr is not None:
            opt.step(grad, lr=step_lr)
        elif step_step_size is not None:
            opt.step(grad, step_size=step_step_size)
        else:
            opt.step(grad)
    return theta


CASES = [
    ("langevin-positional", lambda: sampling.langevin(_score, X0, 5, 0.1, None, 0),
     lambda: sampling.langevin(_score, X0, 5, 0.1, rng=0), "keyword-only"),
    ("annealed_langevin-eps", lambda: sampling.annealed_langevin(
        _score, [1.0, 0.5], 3, x0=X0, eps=0.01, rng=1),
     lambda: sampling.annealed_langevin(_score, [1.0, 0.5], 3, x0=X0, step_size=0.01, rng=1),
     "use `step_size`"),
    ("annealed_langevin-positional", lambda: sampling.annealed_langevin(
        _score, [1.0, 0.5], 3, 0.01, X0, 1),
     lambda: sampling.annealed_langevin(_score, [1.0, 0.5], 3, 0.01, X0, rng=1), "rng=..."),
    ("mala-logpdf", lambda: sampling.mala(logpdf=_log_density, score=_score, x0=X0, n_steps=5,
                                          step_size=0.3, rng=2),
     lambda: sampling.mala(_log_density, _score, X0, 5, 0.3, rng=2), "use `log_density`"),
    ("mala-positional", lambda: sampling.mala(_log_density, _score, X0, 5, 0.3, 2),
     lambda: sampling.mala(_log_density, _score, X0, 5, 0.3, rng=2), "keyword-only"),
    ("dsm-positional", lambda: losses.dsm(MODEL, THETA, POINTS, 0.5, 2, 4),
     lambda: losses.dsm(MODEL, THETA, POINTS, 0.5, n_noise=2, rng=4), "n_noise, rng"),
    ("ncsm-positional", lambda: losses.ncsm(MODEL, THETA, POINTS, [1.0, 0.3], "uniform", 2, 5),
     lambda: losses.ncsm(MODEL, THETA, POINTS, [1.0, 0.3], weighting="uniform", n_noise=2,
                         rng=5), "weighting, n_noise, rng"),
    ("ncsm-tuple-range", lambda: losses.ncsm(MODEL, THETA, POINTS, (0.1, 1.0), rng=6),
     lambda: losses.ncsm(MODEL, THETA, POINTS, sigma_range=(0.1, 1.0), rng=6),
     "use sigma_range="),
    ("sliced_sm-positional", lambda: losses.sliced_sm(MODEL, THETA, POINTS, 3, 7),
     lambda: losses.sliced_sm(MODEL, THETA, POINTS, n_projections=3, rng=7), "n_projections"),
    ("rectangles-positional", lambda: data.rectangles(2, 8, 0, np.float32),
     lambda: data.rectangles(2, 8, rng=0, dtype=np.float32), "rng, dtype"),
    ("disks-positional", lambda: data.disks(2, 8, 0),
     lambda: data.disks(2, 8, rng=0), "keyword-only"),
    ("extract_patches-positional", lambda: data.extract_patches(IMAGE, 3, 5, 1, True),
     lambda: data.extract_patches(IMAGE, 3, 5, rng=1, augment=True), "rng, augment"),
    ("random_phantoms-positional", lambda: phantoms.random_phantoms(1, 16, 2),
     lambda: phantoms.random_phantoms(1, 16, rng=2), "keyword-only"),
    ("cartesian_mask-positional", lambda: operators.cartesian_mask((8, 8), 2, 0.25, 3),
     lambda: operators.cartesian_mask((8, 8), 2, 0.25, rng=3), "keyword-only"),
    ("Normal.sample-positional", lambda: Normal(0.0, 2.0).sample(4, 1),
     lambda: Normal(0.0, 2.0).sample(4, rng=1), "keyword-only"),
    ("GeneralizedGaussianPair.sample-positional",
     lambda: GeneralizedGaussianPair(1.0, 1.0).sample(4, 1),
     lambda: GeneralizedGaussianPair(1.0, 1.0).sample(4, rng=1), "keyword-only"),
    ("GaussianMixtureScoreModel.sample-positional", lambda: MODEL.sample(4, None, 1),
     lambda: MODEL.sample(4, rng=1), "keyword-only"),
    ("tv_denoise-n_iter", lambda: tv.tv_denoise(IMAGE, 0.1, n_iter=7),
     lambda: tv.tv_denoise(IMAGE, 0.1, n_steps=7), "use `n_steps`"),
    ("tv_reconstruct-n_iter",
     lambda: tv.tv_reconstruct(IMAGE, operators.Identity(IMAGE.shape), 0.1, n_iter=7),
     lambda: tv.tv_reconstruct(IMAGE, operators.Identity(IMAGE.shape), 0.1, n_steps=7),
     "use `n_steps`"),
    ("tune_tv_weight-n_iter",
     lambda: tv.tune_tv_weight(IMAGE, IMAGE, [0.01, 0.1], refine=False, n_iter=5).psnrs,
     lambda: tv.tune_tv_weight(IMAGE, IMAGE, [0.01, 0.1], refine=False, n_steps=5).psnrs,
     "use `n_steps`"),
    ("estimate_norm_squared-max_iter",
     lambda: operators.Blur(np.ones((3, 3)) / 9, (12, 12)).estimate_norm_squared(
         method="power", max_iter=4),
     lambda: operators.Blur(np.ones((3, 3)) / 9, (12, 12)).estimate_norm_squared(
         method="power", n_steps=4), "use `n_steps`"),
    ("StepLR-step_size", lambda: [StepLR(1.0, step_size=2, gamma=0.5)(t) for t in range(5)],
     lambda: [StepDecaySchedule(1.0, period=2, gamma=0.5)(t) for t in range(5)],
     "use `period`"),
    ("StepLR", lambda: [StepLR(lr=0.3, period=2, gamma=0.5)(t) for t in range(5)],
     lambda: [StepDecaySchedule(step_size=0.3, period=2, gamma=0.5)(t) for t in range(5)],
     "use optim.StepDecaySchedule"),
    ("ConstantLR", lambda: ConstantLR(lr=0.3)(7), lambda: ConstantSchedule(step_size=0.3)(7),
     "use optim.ConstantSchedule"),
    ("CosineLR", lambda: [CosineLR(lr=1.0, n_steps=8, final_lr=0.1)(t) for t in range(10)],
     lambda: [CosineSchedule(step_size=1.0, n_steps=8, final_step_size=0.1)(t)
              for t in range(10)], "use optim.CosineSchedule"),
    ("WarmupLR", lambda: [WarmupLR(0.5, 3, start_factor=0.2)(t) for t in range(5)],
     lambda: [WarmupSchedule(0.5, 3, start_factor=0.2)(t) for t in range(5)],
     "use optim.WarmupSchedule"),
    ("Adam-lr", lambda: _adam_run(lr=CosineSchedule(0.1, 4)),
     lambda: _adam_run(step_size=CosineSchedule(0.1, 4)), "use `step_size`"),
    ("Adam.step-lr", lambda: _adam_run(step_lr=0.05), lambda: _adam_run(step_step_size=0.05),
     "use `step_size`"),
    ("Adam.current_lr", lambda: Adam(np.zeros(2), step_size=0.25).current_lr(),
     lambda: Adam(np.zeros(2), step_size=0.25).current_step_size(),
     "use .current_step_size()"),
    ("Adam.lr", lambda: Adam(np.zeros(2), step_size=0.25).lr,
     lambda: Adam(np.zeros(2), step_size=0.25).step_size, "use .step_size"),
    ("normalize_patches-eps",
     lambda: normalize_patches(IMAGE.reshape(-1, 4), 0.1, contrast=True, eps=0.05)[0],
     lambda: normalize_patches(IMAGE.reshape(-1, 4), 0.1, contrast=True, contrast_eps=0.05)[0],
     "use `contrast_eps`"),
    ("InvariantPatchScore-eps",
     lambda: InvariantPatchScore(_Linear(), (2, 2), contrast=True, eps=0.05).score(
         IMAGE.reshape(-1, 4), 0.1),
     lambda: InvariantPatchScore(_Linear(), (2, 2), contrast=True, contrast_eps=0.05).score(
         IMAGE.reshape(-1, 4), 0.1), "use `contrast_eps`"),
    ("InvariantPatchScore.eps",
     lambda: InvariantPatchScore(_Linear(), (2, 2), contrast=True, contrast_eps=0.05).eps,
     lambda: InvariantPatchScore(_Linear(), (2, 2), contrast=True,
                                 contrast_eps=0.05).contrast_eps, "use .contrast_eps"),
]


@pytest.mark.parametrize("old, new, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_old_spelling_warns_and_gives_the_same_result(old, new, says):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the new spelling warns about nothing
        expected = new()
    with pytest.warns(FutureWarning, match="removed in fastscore") as record:
        got = old()
    assert any(says in str(w.message) for w in record), [str(w.message) for w in record]
    _same(got, expected)


@pytest.mark.parametrize("dist", [Normal([0.0, 1.0], 2.0), Gamma(3.0),
                                  GaussianMixture([0.3, 0.7], [-1.0, 2.0], [0.5, 1.0]),
                                  GeneralizedGaussianPair(2.0, 1.5)],
                         ids=lambda d: type(d).__name__)
def test_logpdf_is_a_warning_alias_of_log_density(dist):
    x = np.abs(dist.sample(6, rng=0)) + 0.1
    with pytest.warns(FutureWarning, match=r"logpdf\(\) is deprecated; use .log_density\(\)"):
        old = dist.logpdf(x)
    _same(old, dist.log_density(x))


def test_a_distribution_subclass_of_the_old_protocol_still_works():
    class Old(Distribution):
        def logpdf(self, x):
            return -0.5 * np.sum(x ** 2, axis=1)

        def score(self, x):
            return -x

    x = np.ones((3, 1))
    with pytest.warns(FutureWarning, match="define log_density"):
        value = Old().log_density(x)
    _same(value, -0.5 * np.ones(3))

    class Duck:                                 # no base class: the duck-typed protocol
        logpdf, score = Old.logpdf, Old.score

    with pytest.warns(FutureWarning, match=r"logpdf\(\) but no log_density\(\)"):
        patch_score = DistributionPatchScore(Duck())
    _same(patch_score.log_density(x), -0.5 * np.ones(3))


def test_mixture_get_set_params_are_aliases_of_get_set_weights():
    model = GaussianMixtureScoreModel([-1.0, 1.0], [0.5, 0.7])
    with pytest.warns(FutureWarning, match=r"get_params\(\) is deprecated; use .get_weights"):
        theta = model.get_params()
    _same(theta, model.get_weights())
    with pytest.warns(FutureWarning, match=r"set_params\(\) is deprecated; use .set_weights"):
        model.set_params(theta + 1.0)
    _same(model.get_weights(), theta + 1.0)


def test_old_sampler_callback_signature_still_stops_the_chain():
    seen_old, seen_new = [], []
    with pytest.warns(FutureWarning, match=r"callback\(k, x\) is deprecated"):
        old = sampling.langevin(_score, X0, 20, 0.1, rng=0,
                                callback=lambda t, x: seen_old.append(t) or t == 6)
    new = sampling.langevin(_score, X0, 20, 0.1, rng=0,
                            callback=lambda k, x, info: seen_new.append(k) or k == 6)
    assert seen_old == seen_new == list(range(1, 7))
    _same(old, new)


def test_reconstruction_n_iter_and_posterior_eps():
    prior = PatchPrior(GaussianPatchScore().fit(data.extract_patches(
        data.rectangles(4, 12, rng=0), 3, 200, rng=0)), 3)
    y = IMAGE + 0.1
    A = operators.Identity(IMAGE.shape)
    result = reconstruct.map_estimate(y, A, 0.1, prior, n_steps=3, tol=0)
    with pytest.warns(FutureWarning, match=r"Reconstruction.n_iter is deprecated; use "
                                           r".n_steps"):
        assert result.n_iter == result.n_steps == 3
    new = reconstruct.posterior_sample(y, A, 0.1, prior, n_samples=2, sigmas=[0.2, 0.1],
                                       steps_per_sigma=2, step_size=0.5, rng=1)
    with pytest.warns(FutureWarning, match="use `step_size`"):
        old = reconstruct.posterior_sample(y, A, 0.1, prior, n_samples=2, sigmas=[0.2, 0.1],
                                           steps_per_sigma=2, eps=0.5, rng=1)
    _same(old, new)


def test_patch_gmm_fit_n_iter():
    patches = data.extract_patches(data.rectangles(6, 12, rng=0), 2, 300, rng=0)
    new = GaussianMixturePatchScore.fit(patches, 2, 2, n_steps=3, rng=0)
    with pytest.warns(FutureWarning, match="use `n_steps`"):
        old = GaussianMixturePatchScore.fit(patches, 2, 2, n_iter=3, rng=0)
    _same(old.score(patches[:5], 0.1), new.score(patches[:5], 0.1))


def test_fit_patch_score_old_names():
    from fastscore.nn import NoiseConditionalScore
    from fastscore.train import fit_patch_score

    images = data.rectangles(6, rng=0, dtype=np.float32)
    small = dict(n_steps=3, batch_size=16, warmup=0, validation_fraction=0.0, rng=0)

    def fresh():
        return NoiseConditionalScore.for_patches(3, hidden=(8,), rng=0, n_threads=1)

    seen = []
    new = fit_patch_score(images, model=fresh(), step_size=1e-2, sigma_range=(0.05, 0.5),
                          callback=lambda k, x, info: seen.append(info["step_size"]), **small)
    with pytest.warns(FutureWarning) as record:
        old = fit_patch_score(images, model=fresh(), lr=1e-2, sigmas=(0.05, 0.5),
                              callback=lambda step, info: seen.append(info["step_size"]),
                              **small)
    messages = " ".join(str(w.message) for w in record)
    assert "use `step_size`" in messages and "use sigma_range=" in messages
    assert "callback(k, info) is deprecated" in messages
    _same(old.net.params, new.net.params)
    assert seen[:3] == seen[3:] and len(seen) == 6


def test_ncsm_loss_is_a_warning_alias_of_ncsm_with_given_draws():
    from fastscore.noise_conditional import NoiseConditionalScore

    rng = np.random.default_rng(0)
    v, z, sigma = rng.standard_normal((7, 4)), rng.standard_normal((7, 4)), rng.uniform(
        0.1, 1.0, 7)
    for options in ({}, dict(dc=True, contrast=True, contrast_eps=0.1), dict(grad=False)):
        model = NoiseConditionalScore.for_patches(2, hidden=(6,), dtype=np.float64, rng=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            new, grad = losses.ncsm(model, None, v, draws=(sigma, z), **options)
            grad = None if grad is None else grad.copy()
        model.net.grad[...] = 0
        with pytest.warns(FutureWarning, match=r"ncsm_loss\(model, patches, sigma, noise\) "
                                               r"is deprecated; use losses.ncsm"):
            old = losses.ncsm_loss(model, v, sigma, z, **options)
        _same(old, new)
        if grad is not None:
            _same(model.net.grad, grad)


def test_score_field_logpdf():
    pytest.importorskip("matplotlib")
    from fastscore import plot

    with pytest.warns(FutureWarning, match="use `log_density`"):
        fig = plot.score_field(_score, logpdf=_log_density, n=5)
    assert fig is not None


def test_the_helpers_refuse_ambiguous_calls():
    @keyword_only("b")
    @renamed_arguments(old="new")
    def f(a, *, b=0, new=1):
        return a, b, new

    with pytest.raises(TypeError, match=r"got both `new` and its deprecated name `old`"):
        f(1, old=2, new=3)
    with pytest.raises(TypeError, match="takes 1 positional arguments but 3 were given"):
        f(1, 2, 3)
    with pytest.raises(TypeError, match="multiple values for `b`"):
        f(1, 2, b=3)
    with pytest.warns(FutureWarning, match=r"f\(\): passing b positionally"):
        assert f(1, 2, new=4) == (1, 2, 4)


def test_network_get_set_params_are_aliases_of_get_set_weights():
    from fastscore.nn import MLP, NoiseConditionalScore, PatchScoreModel

    ncs = NoiseConditionalScore.for_patches(2, hidden=(5,), rng=0)
    for obj in (MLP((3, 4, 2), rng=1), ncs):
        with pytest.warns(FutureWarning, match=r"get_params\(\) is deprecated; use "
                                               r".get_weights\(\)"):
            theta = obj.get_params()
        _same(theta, obj.get_weights())
        with pytest.warns(FutureWarning, match=r"set_params\(\) is deprecated"):
            obj.set_params(theta * 2)
        _same(obj.get_weights(), (theta * 2).astype(theta.dtype))
    model = PatchScoreModel(ncs, 2, sigma_min=0.1, sigma_max=1.0)
    model.set_weights(np.zeros(ncs.n_params))
    assert not ncs.params.any() and model.get_weights() is not ncs.params


def test_mlp_reset_parameters_positional_rng():
    from fastscore.nn import MLP

    a, b = MLP((3, 4, 2)), MLP((3, 4, 2))
    with pytest.warns(FutureWarning, match="keyword-only"):
        a.reset_parameters(5)
    b.reset_parameters(rng=5)
    _same(a.get_weights(), b.get_weights())


@pytest.mark.parametrize("command, old, value", [("train", "--lr", "0.01"),
                                                 ("sample", "--eps", "3e-05")])
def test_command_line_old_option_names_still_parse(command, old, value):
    from fastscore.cli import build_parser

    required = {"train": ["--phantom", "rectangles", "--out", "m.npz"],
                "sample": ["--model", "m.npz", "--shape", "8", "8", "--out", "s.npy"]}[command]
    parser = build_parser()
    new = parser.parse_args([command, *required, "--step-size", value])
    was = parser.parse_args([command, *required, old, value])
    assert new.step_size == was.step_size == float(value)


@pytest.mark.parametrize("method, new_name", [("hmc", "step_size"), ("langevin", "step_size"),
                                              ("pc", "snr"), ("dps", "guidance"),
                                              ("diffpir", "noise_mix")])
def test_posterior_engines_eps(method, new_name):
    from fastscore import posterior
    from fastscore.operators import GaussianLikelihood

    prior = PatchPrior(GaussianPatchScore().fit(data.extract_patches(
        data.rectangles(4, 12, rng=0), 3, 200, rng=0)), 3)
    A = operators.Blur(np.ones((3, 3)) / 9, IMAGE.shape)
    y = A.forward(IMAGE)
    start = np.repeat(y[np.newaxis], 2, axis=0) + 0.3
    extra = {"steps_per_sigma": 2} if method in ("hmc", "langevin") else {}

    def run(**knob):
        problem = posterior.Problem(GaussianLikelihood(A, y, 0.05), prior,
                                    np.random.default_rng(3), 20)
        return getattr(posterior, method)(problem, start.copy(), [0.3, 0.1], **knob, **extra)

    new = run(**{new_name: 0.5})
    with pytest.warns(FutureWarning, match=f"use `{new_name}`"):
        old = run(eps=0.5)
    _same(old, new)


@pytest.mark.parametrize("dist", [Gamma(3.0), GaussianMixture([0.3, 0.7], [-1.0, 2.0],
                                                               [0.5, 1.0])],
                         ids=lambda d: type(d).__name__)
def test_sample_positional_rng(dist):
    with pytest.warns(FutureWarning, match="keyword-only"):
        old = dist.sample(5, 2)
    _same(old, dist.sample(5, rng=2))


def test_old_schedule_classes_keep_their_attributes():
    with pytest.warns(FutureWarning, match="use optim.StepDecaySchedule"):
        schedule = StepLR(1.0, period=3)
    with pytest.warns(FutureWarning, match=r"StepLR.step_size is deprecated; use .period"):
        assert schedule.step_size == schedule.period == 3
    assert schedule.lr == 1.0 and schedule.gamma == 0.1
    with pytest.warns(FutureWarning, match="use optim.CosineSchedule"):
        cosine = CosineLR(0.5, 10, final_lr=0.05)
    assert (cosine.lr, cosine.n_steps, cosine.final_lr) == (0.5, 10, 0.05)
    assert repr(cosine) == "CosineLR(step_size=0.5, n_steps=10, final_step_size=0.05)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # an old schedule is used without more warnings
        _same(_adam_run(step_size=cosine), _adam_run(step_size=CosineSchedule(0.5, 10, 0.05)))


@pytest.mark.parametrize("run", [
    lambda cb: sampling.annealed_langevin(_score, [1.0, 0.5], 4, 0.01, X0, rng=0, callback=cb),
    lambda cb: sampling.mala(_log_density, _score, X0, 8, 0.3, rng=0, callback=cb),
], ids=["annealed_langevin", "mala"])
def test_old_callback_signature_of_the_other_samplers(run):
    seen_old, seen_new = [], []
    with pytest.warns(FutureWarning, match=r"callback\(k, x\) is deprecated"):
        old = run(lambda t, x: seen_old.append(t) or t == 3)
    new = run(lambda k, x, info: seen_new.append(k) or k == 3)
    assert seen_old == seen_new == [1, 2, 3]
    _same(old, new)


def test_hmc_mass_object_of_the_old_protocol():
    """A mass object with sample(rng, x) still works (warning) and draws the same momenta
    as one with sample(x, *, rng)."""
    class Mass:
        def sample(self, x, *, rng):
            return 2.0 * rng.standard_normal(x.shape)

        def solve(self, p):
            return p / 4.0

    class OldMass(Mass):
        def sample(self, rng, x):
            return Mass.sample(self, x, rng=rng)

    def run(mass):
        return sampling.annealed_hmc(_score, [1.0, 0.5], X0, n_steps=3, n_leapfrog=2,
                                     step_size=0.3, log_density=lambda x, s: _log_density(x),
                                     mass=lambda sigma: mass, rng=4)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = run(Mass())
    with pytest.warns(FutureWarning, match=r"sample\(rng, x\) is deprecated; define "
                                           r"sample\(x, \*, rng\)"):
        old = run(OldMass())
    _same(old, new)

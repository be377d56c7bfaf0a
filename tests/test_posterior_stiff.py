"""Reverse-diffusion samplers on a stiff likelihood (sparse-view CT, small σ_n): the
predictor–corrector's implicit data step and the step guards of DPS and the probability-flow
ODE keep the chains finite where the explicit reverse-SDE step diverges."""

import numpy as np
import pytest

from fastscore import data, metrics, sampling
from fastscore import operators as ops
from fastscore.patches import PatchOperator
from fastscore.posterior import Problem
from fastscore.prior import GaussianPatchScore, PatchPrior
from fastscore.reconstruct import posterior_sample

NOISE = 0.01


@pytest.fixture(scope="module")
def ct():
    x = data.shepp_logan((32, 32)).astype(np.float32)
    A = ops.ParallelBeamCT(x.shape, np.linspace(0, np.pi, 12, endpoint=False))
    train = np.concatenate([PatchOperator((s, s), 3, 1, "reflect").gather(
        data.shepp_logan((s, s))) for s in (48, 64)])
    prior = PatchPrior(GaussianPatchScore().fit(train), 3, weight=1 / 9)
    y = A.simulate(x, NOISE, rng=0).astype(np.float32)
    return x, A, y, prior


def test_the_explicit_step_diverges(ct):
    """The failure the data step and the guard remove (‖A‖² ≈ 370, h ‖A‖²/σ² ≫ 2)."""
    x, A, y, prior = ct
    problem = Problem(ops.GaussianLikelihood(A, y, NOISE), prior, np.random.default_rng(0),
                      50)
    ladder = np.geomspace(0.4, 0.01, 30)
    x0 = A.fbp(y)[None] + np.float32(0.4) * np.random.default_rng(1).standard_normal(
        (2, 32, 32), dtype=np.float32)
    with pytest.raises(FloatingPointError), np.errstate(over="ignore", invalid="ignore"):
        sampling.predictor_corrector(problem.tempered_score, ladder, x0, n_corrector=1,
                                     final_denoise=False, rng=0)


@pytest.mark.parametrize("method", ["pc", "dps", "ode"])
def test_stable_on_sparse_view_ct(ct, method):
    x, A, y, prior = ct
    out = posterior_sample(y, A, NOISE, prior, n_samples=4, method=method, rng=1,
                           steps_per_sigma=2)
    assert np.all(np.isfinite(out.samples)) and out.samples.dtype == np.float32
    fbp = metrics.psnr(x, A.fbp(y))                  # 15.4 dB; MAP with this prior 17.8
    # measured: pc 16.9 dB, dps 15.3 dB, ode 16.1 dB (the guards cap the guidance at
    # small σ; without them dps and ode overflow here)
    margin = {"pc": 1.0, "dps": -0.8, "ode": 0.3}[method]
    assert metrics.psnr(x, out.mean) > fbp + margin
    assert 0 < float(out.std.mean()) < 0.3

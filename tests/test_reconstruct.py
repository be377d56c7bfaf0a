import numpy as np
import pytest
import scipy.linalg

from fastscore import operators as ops
from fastscore.patches import PatchOperator
from fastscore.prior import GaussianPatchScore, PatchPrior
from fastscore.reconstruct import (map_estimate, noise_realizations, posterior_sample,
                                   posterior_summary, sigma_ladder)


def gaussian_prior(patch=2, seed=0):
    rng = np.random.default_rng(seed)
    n = patch * patch
    mix = np.eye(n) + 0.3 * rng.standard_normal((n, n))
    train = rng.standard_normal((20000, n)) @ mix.T + 1.0
    score = GaussianPatchScore().fit(train)
    return PatchPrior(score, patch, padding="valid", weight="sum"), score


def dense_prior(shape, score, sigma):
    """(H, b) with prior score s(x) = -H x + b, for the valid 'sum' Gaussian patch prior."""
    G = PatchOperator(shape, int(np.sqrt(score.mean_.size)))
    n = int(np.prod(shape))
    M = np.array([G.gather(e.reshape(shape)).ravel() for e in np.eye(n)]).T
    C = (score.eigenvectors_ * score.eigenvalues_) @ score.eigenvectors_.T
    K = np.kron(np.eye(G.n_patches), np.linalg.inv(C + sigma ** 2 * np.eye(C.shape[0])))
    mu = np.tile(score.mean_, G.n_patches)
    return M.T @ K @ M, M.T @ K @ mu


def test_map_matches_wiener_solution():
    shape, noise, sigma = (6, 5), 0.3, 0.05
    prior, score = gaussian_prior()
    H, b = dense_prior(shape, score, sigma)
    rng = np.random.default_rng(1)
    y = 1.0 + noise * rng.standard_normal(shape)
    precision = np.eye(H.shape[0]) / noise ** 2 + H
    wiener = np.linalg.solve(precision, y.ravel() / noise ** 2 + b).reshape(shape)
    result = map_estimate(y, ops.Identity(shape), noise, prior, sigma_schedule=sigma,
                          n_steps=3000, momentum=True, tol=1e-12)
    np.testing.assert_allclose(result.x, wiener, rtol=1e-6, atol=1e-6)
    assert result.history["rel_change"][-1] < 1e-8


def test_posterior_samples_match_gaussian_posterior():
    shape, noise, sigma = (3, 3), 0.5, 1e-3
    prior, score = gaussian_prior(seed=2)
    H, b = dense_prior(shape, score, sigma)
    rng = np.random.default_rng(3)
    y = 1.0 + noise * rng.standard_normal(shape)
    precision = np.eye(9) / noise ** 2 + H
    cov = np.linalg.inv(precision)
    mean = cov @ (y.ravel() / noise ** 2 + b)
    out = posterior_sample(y, ops.Identity(shape), noise, prior, n_samples=4000,
                           sigmas=[sigma], steps_per_sigma=600, step_size=0.1, rng=4,
                           x0=mean.reshape(shape), method="langevin")
    samples = out.samples.reshape(4000, 9)
    se = np.sqrt(np.diag(cov) / 4000)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * se + 0.02 * np.sqrt(np.diag(cov)))
    # unadjusted Langevin inflates variances by at most ~eps/2; chains give ~2% noise
    np.testing.assert_allclose(samples.var(0, ddof=1), np.diag(cov), rtol=0.12)
    np.testing.assert_allclose(out.mean, samples.mean(0).reshape(shape))
    summary = posterior_summary(out.samples, credible=0.9)
    inside = ((mean.reshape(shape) > summary["lower"]) & (mean.reshape(shape) < summary["upper"]))
    assert inside.all()


def dense_operator(A, shape):
    """A*A as a dense float64 matrix (columns A*A e_i), for the real inner product."""
    n = int(np.prod(shape))
    return np.array([A.adjoint(A.forward(e.reshape(shape))).real.ravel()
                     for e in np.eye(n)]).T


@pytest.mark.parametrize("name, eps", [("identity", 1.0), ("mask", 1.0), ("blur", 0.5),
                                       ("mri", 1.0)])
def test_preconditioned_samples_match_gaussian_posterior(name, eps):
    """Gaussian prior p_σ (precision H, σ = 0.3) and a linear operator: the target
    N(μ, P⁻¹), P = A*A/σ_n² + H, is analytic. The preconditioned step is linear here,
    x ← K x + ε Q⁻¹P μ + N(0, ε(2−ε) Q⁻¹) with K = I − ε Q⁻¹P, so its stationary law is
    N(μ, Σ_ε) with Σ_ε from a discrete Lyapunov equation: samples must match Σ_ε
    (statistical error only), and Σ_ε must be within the documented factor of P⁻¹.
    The chains start at μ (plus σ noise), so every state has mean μ."""
    shape, noise, sigma, n = (4, 4), 0.3, 0.3, 4000
    prior, score = gaussian_prior(seed=2)
    H, b = dense_prior(shape, score, sigma)
    rng = np.random.default_rng(8)
    A = {"identity": ops.Identity(shape), "mask": ops.Mask(rng.random(shape) > 0.5),
         "blur": ops.Blur(ops.gaussian_kernel(0.8, size=3), shape),
         "mri": ops.MRI(rng.random(shape) > 0.5)}[name]
    x_true = 1.0 + 0.5 * rng.standard_normal(shape)
    y = A.simulate(x_true, noise, rng=9)
    AtA = dense_operator(A, shape)
    P = AtA / noise ** 2 + H
    cov = np.linalg.inv(P)
    mean = cov @ (A.adjoint(y).real.ravel() / noise ** 2 + b)
    c = prior.lipschitz(shape, sigma)
    M = np.linalg.inv(AtA / noise ** 2 + c * np.eye(16))
    K = np.eye(16) - eps * M @ P
    cov_eps = scipy.linalg.solve_discrete_lyapunov(K, eps * (2 - eps) * M)
    lam = np.linalg.eigvals(M @ P).real
    assert lam.max() <= 1 + 1e-9
    # the start's variance (σ² I) has decayed to < 1e-4 of itself within the 120 steps
    assert max(abs(np.linalg.eigvals(K))) ** 240 < 1e-4
    ratio = np.diag(cov_eps) / np.diag(cov)
    assert np.all(ratio <= 1 + 1e-9) and np.all(ratio >= 1 - eps / 2 - 1e-9)
    out = posterior_sample(y, A, noise, prior, n_samples=n, sigmas=[sigma],
                           steps_per_sigma=120, step_size=eps, rng=4, x0=mean.reshape(shape))
    samples = out.samples.reshape(n, 16)
    se = np.sqrt(np.diag(cov_eps) / n)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * se)
    # sample variances of 4000 draws: relative sd sqrt(2/4000) = 2.2%, so 5 sd = 11%
    np.testing.assert_allclose(samples.var(0, ddof=1), np.diag(cov_eps), rtol=0.11)
    np.testing.assert_allclose(out.std.ravel() ** 2, samples.var(0, ddof=1))
    # mean: the states of the last level averaged over chains and steps (an average over
    # correlated states of one chain is no worse than its last state: 5 se of one state)
    assert np.all(np.abs(out.mean.ravel() - mean) < 5 * se)
    assert not np.allclose(out.mean.ravel(), samples.mean(0))    # more than the last state


def test_preconditioned_reaches_the_posterior_from_a_bad_start():
    """Ill-conditioned inpainting (σ_n = 0.01): from a start far off, 40 preconditioned
    steps (ε = 1) reach the analytic posterior mean; plain Langevin with the same budget
    does not."""
    shape, noise, sigma = (4, 4), 0.01, 0.3
    prior, score = gaussian_prior(seed=2)
    H, b = dense_prior(shape, score, sigma)
    rng = np.random.default_rng(3)
    A = ops.Mask(rng.random(shape) > 0.5)
    y = A.simulate(1.0 + 0.5 * rng.standard_normal(shape), noise, rng=4)
    AtA = dense_operator(A, shape)
    cov = np.linalg.inv(AtA / noise ** 2 + H)
    mean = cov @ (A.adjoint(y).real.ravel() / noise ** 2 + b)
    start = np.full(shape, 5.0)
    kwargs = dict(n_samples=2000, sigmas=[sigma], steps_per_sigma=40, rng=5, x0=start)
    pre = posterior_sample(y, A, noise, prior, step_size=1.0, **kwargs).samples.reshape(
        2000, 16)
    lan = posterior_sample(y, A, noise, prior, method="langevin", **kwargs).samples
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(pre.mean(0) - mean) < 0.2 * sd)
    assert np.max(np.abs(lan.reshape(2000, 16).mean(0) - mean) / sd) > 1.0


def blocky_prior():
    """Gaussian 3x3 patch prior fitted on random piecewise-constant block images."""
    rng = np.random.default_rng(11)
    images = np.ones((100, 16, 16))
    for img in images:
        r, c = rng.integers(0, 10, size=2)
        img[r:r + rng.integers(3, 8), c:c + rng.integers(3, 8)] = 2.0
    G = PatchOperator((16, 16), 3, padding="reflect")
    score = GaussianPatchScore().fit(G.gather(images).reshape(-1, 9))
    return PatchPrior(score, 3)


def make_operators(shape, rng):
    return {
        "identity": ops.Identity(shape),
        "mask": ops.Mask(rng.random(shape) > 0.4),
        "blur": ops.Blur(ops.gaussian_kernel(1.0), shape),
        "downsample": ops.Downsample(shape, 2),
        "mri": ops.MRI(ops.cartesian_mask(shape, 2, rng=0)),
        "ct": ops.ParallelBeamCT(shape, np.linspace(0, np.pi, 12, endpoint=False)),
    }


@pytest.mark.parametrize("name", ["identity", "mask", "blur", "downsample", "mri", "ct"])
def test_map_on_every_operator(name):
    """Both methods improve on the start and reach the same stationary point: the HQS fixed
    point x = argmin ||y - Ax||²/2σn² + ||x - D(x)||²/2σ² solves A*(y - Ax)/σn² + s(x) = 0."""
    rng = np.random.default_rng(5)
    shape = (16, 16)
    x = np.ones(shape)
    x[4:11, 5:13] = 2.0
    A = make_operators(shape, rng)[name]
    noise = 0.05
    y = A.simulate(x, noise, rng=6)
    prior = blocky_prior()
    start = map_estimate(y, A, noise, prior, n_steps=1, sigma_schedule=0.1).x
    grad = map_estimate(y, A, noise, prior, n_steps=150, sigma_schedule=0.1, momentum=True)
    hqs = map_estimate(y, A, noise, prior, method="hqs", n_steps=60, sigma_schedule=0.1)
    for result in (grad, hqs):
        assert result.x.shape == shape and result.x.dtype == np.float64
        assert np.linalg.norm(result.x - x) < np.linalg.norm(start - x)
    assert np.linalg.norm(grad.x - hqs.x) < 0.02 * np.linalg.norm(x)
    assert grad.history["score_norm"][-1] < 0.01 * grad.history["score_norm"][0]


def test_float32_and_callback_and_reproducibility():
    shape = (8, 8)
    prior, _ = gaussian_prior()
    y = np.ones(shape, np.float32)
    seen = []
    res = map_estimate(y, ops.Identity(shape), 0.1, prior, n_steps=50,
                       callback=lambda k, x, info: seen.append(info["sigma"]) or k == 4)
    assert res.x.dtype == np.float32 and res.n_steps == 5 and len(seen) == 5
    assert seen[0] > seen[-1]   # annealed from 2 sigma_n downwards
    a = posterior_sample(y, ops.Identity(shape), 0.1, prior, n_samples=3, rng=7)
    b = posterior_sample(y, ops.Identity(shape), 0.1, prior, n_samples=3, rng=7)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.samples.dtype == np.float32
    # the samples are distinct draws, and another seed gives other draws
    assert not np.array_equal(a.samples[0], a.samples[1])
    c = posterior_sample(y, ops.Identity(shape), 0.1, prior, n_samples=3, rng=8)
    assert not np.array_equal(a.samples, c.samples)


def test_noise_realizations_spread_is_that_of_the_linear_map_estimator():
    """With a Gaussian patch prior the converged MAP estimate is linear in y:
    x̂ = P⁻¹ (y / σ_n² + b), P = I / σ_n² + H. Over draws y_j = x + σ_n n_j the estimates
    have mean P⁻¹ (x / σ_n² + b) and covariance P⁻¹ P⁻ᵀ / σ_n²: the returned mean and std
    maps match those within 4 standard errors (fixed seed)."""
    shape, noise, sigma, n = (3, 3), 0.3, 0.05, 400
    prior, score = gaussian_prior()
    H, b = dense_prior(shape, score, sigma)
    x = 1.0 + 0.2 * np.random.default_rng(5).standard_normal(shape)
    p_inv = np.linalg.inv(np.eye(9) / noise ** 2 + H)
    mean = (p_inv @ (x.ravel() / noise ** 2 + b)).reshape(shape)
    std = (np.sqrt(np.diag(p_inv @ p_inv.T)) / noise).reshape(shape)
    out = noise_realizations(x, ops.Identity(shape), noise, prior, n=n, rng=0,
                             map_options={"sigma_schedule": sigma, "n_steps": 3000,
                                          "momentum": True, "tol": 1e-12})
    est = out["estimates"]
    assert est.shape == (n, *shape)
    np.testing.assert_allclose(out["mean"], est.mean(0), rtol=1e-12)
    np.testing.assert_allclose(out["std"], est.std(0, ddof=1), rtol=1e-12)
    assert np.all(np.abs(out["mean"] - mean) < 4 * std / np.sqrt(n))
    assert np.all(np.abs(out["std"] / std - 1) < 4 / np.sqrt(2 * (n - 1)))


def test_errors():
    shape = (8, 8)
    prior, _ = gaussian_prior()
    A = ops.Identity(shape)
    y = np.ones(shape)
    with pytest.raises(ValueError, match=r"`y` must be finite"):
        map_estimate(np.full(shape, np.nan), A, 0.1, prior)
    with pytest.raises(ValueError, match=r"`noise_sigma` must be > 0"):
        map_estimate(y, A, 0.0, prior)
    with pytest.raises(ValueError, match=r"`y`"):
        map_estimate(np.ones((7, 8)), A, 0.1, prior)
    with pytest.raises(TypeError, match=r"`y`"):
        map_estimate(y + 1j, A, 0.1, prior)
    with pytest.raises(TypeError, match=r"`operator` must be a fastscore.operators"):
        map_estimate(y, object(), 0.1, prior)
    with pytest.raises(ValueError, match=r"`method` must be one of 'gradient', 'hqs'"):
        map_estimate(y, A, 0.1, prior, method="admm")
    with pytest.raises(ValueError, match=r"`sigma_schedule` must be a float, \(start, end\)"):
        map_estimate(y, A, 0.1, prior, n_steps=5, sigma_schedule=[1, 2, 3])
    with pytest.raises(ValueError, match=r"`x0` must have shape \(8, 8\)"):
        map_estimate(y, A, 0.1, prior, x0=np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"`sigmas` must be positive and non-increasing"):
        posterior_sample(y, A, 0.1, prior, sigmas=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"`method` must be one of 'preconditioned', 'langevin'"):
        posterior_sample(y, A, 0.1, prior, method="gibbs")
    with pytest.raises(ValueError, match=r"`samples` must have shape \(n_samples >= 2"):
        posterior_summary(np.ones((1, 4, 4)))
    assert sigma_ladder(1.0, 0.01, 3) == pytest.approx([1.0, 0.1, 0.01])


# -- preconditioned conjugate gradients ------------------------------------------------------
from fastscore._cg import conjugate_gradient  # noqa: E402


def _cg(apply, rhs, x, n_iter, tol, precondition=None, n_batch=0):
    return conjugate_gradient(apply, rhs, x, cg_iter=n_iter, tol=tol, precondition=precondition,
                              n_batch=n_batch)


def _counted(apply):
    calls = []

    def wrapped(v):
        calls.append(1)
        return apply(v)
    return wrapped, calls


@pytest.mark.parametrize("name", ["identity", "mask", "blur", "downsample", "mri"])
def test_pcg_with_the_exact_preconditioner_converges_in_one_iteration(name):
    """Q = A*A/σ_n² + c I with c = 1/σ²: with the operator's exact gram preconditioner PCG
    reaches the dense float64 solution in one iteration (plain CG needs many more)."""
    shape, noise, c = (8, 8), 0.02, 1 / 0.3 ** 2
    A = make_operators(shape, np.random.default_rng(2))[name]
    Q = dense_operator(A, shape) / noise ** 2 + c * np.eye(64)
    b = np.random.default_rng(3).standard_normal(shape)
    expected = np.linalg.solve(Q, b.ravel()).reshape(shape)
    apply, calls = _counted(lambda v: A.adjoint(A.forward(v)).real / noise ** 2 + c * v)
    x = _cg(apply, b, np.zeros(shape), 50, 1e-12, A.gram_preconditioner(1 / noise ** 2, c))
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)
    assert len(calls) - 1 <= 2                     # initial residual + at most 2 iterations
    apply, plain = _counted(lambda v: A.adjoint(A.forward(v)).real / noise ** 2 + c * v)
    y = _cg(apply, b, np.zeros(shape), 200, 1e-12)
    np.testing.assert_allclose(y, expected, rtol=1e-8, atol=1e-10)
    if name != "identity":
        assert len(plain) > len(calls)


def test_cg_without_preconditioner_is_unchanged():
    """precondition=None runs plain CG: the same iterates as an identity preconditioner."""
    A = make_operators((8, 8), np.random.default_rng(2))["ct"]
    apply = lambda v: A.adjoint(A.forward(v)) / 0.05 ** 2 + 4.0 * v
    b = np.random.default_rng(1).standard_normal((8, 8))
    for n in (1, 3, 10):
        np.testing.assert_allclose(_cg(apply, b, np.zeros((8, 8)), n, 1e-12),
                                   _cg(apply, b, np.zeros((8, 8)), n, 1e-12, lambda r: r.copy()),
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("precondition", [False, True])
def test_cg_reduces_per_chain(precondition):
    """A batch of systems whose right-hand sides differ by 12 orders of magnitude: each
    system reaches its own relative tolerance, and each batch entry equals the solve of
    that system alone (shared step lengths or a shared stopping test would fail both)."""
    shape, noise, c = (8, 8), 0.05, 4.0
    A = make_operators(shape, np.random.default_rng(2))["ct"]
    Q = dense_operator(A, shape) / noise ** 2 + c * np.eye(64)
    apply = lambda v: A.adjoint(A.forward(v)).real / noise ** 2 + c * v
    M = A.gram_preconditioner(1 / noise ** 2, c) if precondition else None
    rng = np.random.default_rng(4)
    scales = np.array([1e-6, 1.0, 1e6, 3e-3])
    b = rng.standard_normal((4,) + shape) * scales[:, None, None]
    x = _cg(apply, b, np.zeros_like(b), 300, 1e-8, M, n_batch=1)
    for k in range(4):
        exact = np.linalg.solve(Q, b[k].ravel())
        err = np.linalg.norm(x[k].ravel() - exact) / np.linalg.norm(exact)
        assert err < 1e-6, (k, err)
        residual = np.linalg.norm(b[k].ravel() - Q @ x[k].ravel()) / np.linalg.norm(b[k])
        assert residual <= 1e-8 * 1.0001
        alone = _cg(apply, b[k], np.zeros(shape), 300, 1e-8, M)
        np.testing.assert_allclose(x[k], alone, rtol=1e-9, atol=1e-12 * scales[k])


def test_nonsense_arguments_are_refused():
    prior, _ = gaussian_prior()
    A, y = ops.Identity((6, 6)), np.ones((6, 6))
    for cg_iter in (0, -3):                       # once: the data step silently skipped
        with pytest.raises(ValueError, match="`cg_iter` must be >= 1"):
            map_estimate(y, A, 0.1, prior, method="hqs", cg_iter=cg_iter)
    with pytest.raises(ValueError, match="`trace_every` must be >= 1"):
        posterior_sample(y, A, 0.1, prior, trace_every=0, steps_per_sigma=1)
    with pytest.raises(ValueError, match=r"`noise_sigma` must be in \[.*\] for float64"):
        map_estimate(y, A, 1e-300, prior)
    with pytest.raises(ValueError, match=r"`sigma_schedule` must be in \[.*\] for float32"):
        map_estimate(y.astype(np.float32), A, 0.1, prior, sigma_schedule=1e-30)
    with pytest.raises(ValueError, match=r"`sigmas` must be in \[.*\] for float32"):
        posterior_sample(y.astype(np.float32), A, 0.1, prior, sigmas=[1e30, 1.0])


def test_complex_input_is_refused_not_reduced_to_its_real_part():
    prior, _ = gaussian_prior()
    rng = np.random.default_rng(0)
    y = rng.standard_normal((6, 6)) + 1j * rng.standard_normal((6, 6))
    with pytest.raises(TypeError, match="complex"):
        map_estimate(y, ops.Identity((6, 6)), 0.1, prior)

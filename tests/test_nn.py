"""Tests of fastscore.nn: MLP passes against a NumPy reference and finite differences,
precision, threads, workspaces, the noise-conditional chain rule, the patch model and its
files, and the error paths."""

import numpy as np
import pytest

import fastscore
from fastscore import nn, score_model
from fastscore._threads import single_threaded_blas
from fastscore.nn import MLP, NoiseConditionalScore, PatchScoreModel
from reference import mlp as ref
from reference.tolerance import assert_close_ulp

ACTS = ["identity", "relu", "leaky_relu", "tanh", "silu", "gelu"]
SMALL = (4, 7, 6, 3)


def _net(activations, dtype=np.float64, widths=SMALL, seed=1, n_threads=1, **kw):
    # one thread: finite differences make many tiny calls (thread counts: see below)
    net = MLP(widths, activations, dtype=dtype, rng=seed, n_threads=n_threads, **kw)
    # non-zero biases so that no pre-activation sits at a ReLU kink by construction
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    return net


def _data(n, d, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def _central_difference(f, x0, eps):
    """Gradient of the scalar function f at x0 (1-D float64) by central differences."""
    g = np.empty_like(x0)
    for k in range(x0.size):
        xp, xm = x0.copy(), x0.copy()
        xp[k] += eps
        xm[k] -= eps
        g[k] = (f(xp) - f(xm)) / (2 * eps)
    return g


# --------------------------------------------------------------------- construction


def test_default_architecture():
    net = MLP(rng=0)
    assert net.widths == (9, 40, 80, 160, 320, 320, 160, 80, 40, 9)
    assert net.activations == ("leaky_relu",) * 5 + ("tanh",) * 3 + ("identity",)
    assert net.negative_slope == 0.01
    assert net.dtype == np.float32
    assert net.n_params == 238729 == net.params.size == net.grad.size
    # weights and biases are views into the one flat buffer
    for W, b in zip(net.weights, net.biases):
        assert np.shares_memory(W, net.params) and np.shares_memory(b, net.params)
    net.params[:] = 0
    assert all(np.all(W == 0) for W in net.weights)


def test_for_patches_widths():
    net = MLP.for_patches((5, 5), hidden=(16, 16), rng=0)
    assert net.widths == (25, 16, 16, 25)
    assert MLP.for_patches(2, hidden=(8,), rng=0).widths == (4, 8, 4)
    assert MLP.for_patches((2, 3, 4), hidden=(8,), rng=0).widths == (24, 8, 24)
    assert net.activations == ("leaky_relu", "tanh", "identity")
    net = MLP.for_patches((3, 3), extra_inputs=1, rng=0)
    assert net.widths == (10,) + nn.DEFAULT_HIDDEN + (9,)


def test_same_seed_same_init_and_dtype_agreement():
    a, b = MLP(rng=7), MLP(rng=7)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, MLP(rng=8).params)
    c = MLP(rng=7, dtype=np.float64)
    np.testing.assert_array_equal(a.params, c.params.astype(np.float32))


def test_init_scales():
    net = MLP(rng=0)
    # He for the leaky layers, Glorot for tanh and the output
    assert np.std(net.weights[3]) == pytest.approx(np.sqrt(2 / (1.0001 * 160)), rel=0.03)
    assert np.std(net.weights[6]) == pytest.approx(np.sqrt(2 / (160 + 80)), rel=0.05)
    assert all(np.all(b == 0) for b in net.biases)


# ------------------------------------------------------------------ against reference


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("activation", ACTS)
def test_forward_backward_match_reference(activation, dtype, rtol):
    net = _net(activation, dtype)
    x = _data(600, SMALL[0], dtype)          # 3 training tiles: several gradient slots
    y = net.forward(x)
    y0, cache = ref.forward(net.params.astype(float), net.widths, net.activations,
                            x.astype(float))
    np.testing.assert_allclose(y, y0, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(net.predict(x), y0, rtol=rtol, atol=rtol)
    g = _data(600, SMALL[-1], dtype, seed=3)
    gin = net.backward(g, input_grad=True)
    gp0, gin0 = ref.backward(net.params.astype(float), net.widths, cache, g.astype(float))
    scale = np.abs(gp0).max()
    np.testing.assert_allclose(net.grad, gp0, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(gin, gin0, rtol=rtol, atol=rtol * np.abs(gin0).max())


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-11), (np.float32, 1e-4)])
def test_default_model_matches_reference(dtype, rtol):
    net = MLP(dtype=dtype, rng=3)
    x = _data(1100, 9, dtype)
    y = net.forward(x)
    y0, cache = ref.forward(net.params.astype(float), net.widths, net.activations,
                            x.astype(float))
    np.testing.assert_allclose(y, y0, rtol=rtol, atol=rtol * np.abs(y0).max())
    g = _data(1100, 9, dtype, seed=4)
    net.backward(g)
    gp0, _ = ref.backward(net.params.astype(float), net.widths, cache, g.astype(float))
    np.testing.assert_allclose(net.grad, gp0, rtol=rtol, atol=rtol * np.abs(gp0).max())


@pytest.mark.parametrize("activation", ACTS)
def test_jacobian_diagonal_matches_reference(activation):
    net = _net(activation, widths=(4, 9, 5, 4))
    x = _data(70, 4)                          # 3 jacobian tiles, the last one partial
    d, y = net.jacobian_diagonal(x, return_output=True)
    d0 = ref.jacobian_diagonal(net.params, net.widths, net.activations, x)
    np.testing.assert_allclose(d, d0, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y, net.predict(x), rtol=1e-14, atol=1e-14)
    d2 = net.jacobian_diagonal(x, n_dirs=2)
    np.testing.assert_allclose(d2, d0[:, :2], rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------- finite differences


@pytest.mark.parametrize("activation", ACTS)
def test_parameter_gradient_finite_differences(activation):
    net = _net(activation)
    x, g = _data(5, SMALL[0]), _data(5, SMALL[-1], seed=2)
    theta = net.get_weights()

    def loss(p):
        net.set_weights(p)
        return float(np.sum(g * net.predict(x)))

    fd = _central_difference(loss, theta, 1e-6)
    net.set_weights(theta)
    net.forward(x)
    net.backward(g)
    np.testing.assert_allclose(net.grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTS)
def test_input_gradient_finite_differences(activation):
    net = _net(activation)
    x, g = _data(3, SMALL[0]), _data(3, SMALL[-1], seed=2)
    fd = _central_difference(lambda v: float(np.sum(g * net.predict(v.reshape(x.shape)))),
                             x.ravel(), 1e-6).reshape(x.shape)
    net.forward(x)
    np.testing.assert_allclose(net.backward(g, input_grad=True), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTS)
def test_jacobian_diagonal_finite_differences(activation):
    net = _net(activation, widths=(3, 6, 3))
    x = _data(4, 3)
    eps = 1e-6
    fd = np.empty_like(x)
    for i in range(3):
        e = np.zeros(3)
        e[i] = eps
        fd[:, i] = (net.predict(x + e)[:, i] - net.predict(x - e)[:, i]) / (2 * eps)
    np.testing.assert_allclose(net.jacobian_diagonal(x), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTS)
def test_jacobian_diagonal_vjp_finite_differences(activation):
    net = _net(activation, widths=(3, 5, 4, 3))
    x, g = _data(7, 3), _data(7, 2, seed=6)
    theta = net.get_weights()

    def objective(p):
        net.set_weights(p)
        return float(np.sum(g * net.jacobian_diagonal(x, n_dirs=2)))

    fd = _central_difference(objective, theta, 1e-6)
    net.set_weights(theta)
    got = net.jacobian_diagonal_vjp(x, g, n_dirs=2, chunk_size=3)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------- precision


@pytest.mark.parametrize("activations", [None, "silu", "gelu", "relu"])
def test_float32_matches_float64(activations):
    n64 = MLP(activations=activations, dtype=np.float64, rng=5)
    n32 = n64.astype(np.float32)
    x = _data(700, 9)
    g = _data(700, 9, seed=1)
    y64 = n64.forward(x)
    y32 = n32.forward(x.astype(np.float32))
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4 * np.abs(y64).max())
    n64.backward(g)
    n32.backward(g.astype(np.float32))
    np.testing.assert_allclose(n32.grad, n64.grad, rtol=1e-4,
                               atol=1e-4 * np.abs(n64.grad).max())
    rel = np.linalg.norm(n32.grad - n64.grad) / np.linalg.norm(n64.grad)
    assert rel < 1e-4
    d64 = n64.jacobian_diagonal(x[:50])
    d32 = n32.jacobian_diagonal(x[:50].astype(np.float32))
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-4 * np.abs(d64).max())


def test_activation_accuracy():
    """The float32 kernels use their own vectorisable tanh (odd 13/6 rational) and exp
    (Cody-Waite + degree-6 polynomial): libm's do not vectorise. Stated accuracy against
    float64 libm on a dense grid over [-20, 20] plus extreme arguments:
    values: tanh within 4e-7 absolute, SiLU and GELU within 2.5e-7 * max(1, |z|);
    derivatives: tanh 8e-7, SiLU 1.2e-6, GELU 5e-6 absolute (float rounding of 1 - t²
    and 1 - s near saturation dominates). The bounds hold for every SIMD clone: measured
    tanh 2.72e-7 / 5.44e-7 (value / derivative) on the AVX-512 clone (FMA), 3.25e-7 /
    6.49e-7 on the AVX2 clone (no FMA: AVX2-only CPUs). Double precision uses libm (to
    rounding)."""
    mlp = nn._kernels()
    z64 = np.concatenate([np.linspace(-20, 20, 400001), [-100.0, -87.5, 0.0, 88.5, 100.0],
                          np.geomspace(1e-30, 1e-2, 50)])
    z32 = z64.astype(np.float32)
    zz = z32.astype(np.float64)
    value_tol = {"tanh": 4e-7, "silu": 2.5e-7, "gelu": 2.5e-7}
    deriv_tol = {"tanh": 8e-7, "silu": 1.2e-6, "gelu": 5e-6}
    for name, code in nn.ACTIVATIONS.items():
        a = np.empty_like(z32)
        d = np.empty_like(z32)
        mlp.activation(code, 0.01, z32, a, d)
        a0, d0 = ref.activation(name, zz)
        scale = np.abs(zz).clip(1.0) if name in ("silu", "gelu") else 1.0
        assert np.max(np.abs(a - a0) / scale) <= value_tol.get(name, 1e-7), name
        assert np.max(np.abs(d - d0)) <= deriv_tol.get(name, 1e-7), name
        a64 = np.empty_like(z64)
        d64 = np.empty_like(z64)
        mlp.activation(code, 0.01, z64, a64, d64)
        b0, e0 = ref.activation(name, z64)
        np.testing.assert_allclose(a64, b0, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(d64, e0, rtol=1e-13, atol=1e-14)
    # small arguments keep their relative accuracy (odd rational: no cancellation)
    small = np.geomspace(1e-30, 1e-2, 50).astype(np.float32)
    t = np.empty_like(small)
    mlp.activation(nn.ACTIVATIONS["tanh"], 0.0, small, t, None)
    np.testing.assert_allclose(t, np.tanh(small.astype(np.float64)), rtol=3e-7)
    # the exp approximation, through the sigmoid of SiLU: relative error of s(z) = a/z
    zs = np.linspace(-80, 80, 100001).astype(np.float32)
    zs = zs[np.abs(zs) > 1e-3]
    a = np.empty_like(zs)
    mlp.activation(nn.ACTIVATIONS["silu"], 0.0, zs, a, None)
    z = zs.astype(np.float64)
    np.testing.assert_allclose(a / z, 1 / (1 + np.exp(-z)), rtol=1e-6)


# ------------------------------------------------------------------------ threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_gives_identical_results(dtype, openmp_build):
    if not single_threaded_blas.available:
        # the MLP then runs its kernels on one thread (and lets BLAS run its own), so
        # 1, 2 and 3 threads would all be one thread
        pytest.skip("the BLAS behind scipy cannot be pinned to one thread (threadpoolctl "
                    "controls none of its process-wide counts): the MLP runs one thread")
    x, g = _data(2600, 9, dtype), _data(2600, 9, dtype, seed=1)
    results = []
    for threads in (1, 2, 3):
        net = MLP(dtype=dtype, rng=2, n_threads=threads)
        y = net.forward(x)
        gin = net.backward(g, input_grad=True)
        results.append((y, net.grad.copy(), gin, net.predict(x), net.jacobian_diagonal(x[:90])))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)   # bitwise, bias sums included


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [512, 1300])
def test_one_tile_slots_add_into_grad_with_the_same_bits(dtype, n, openmp_build):
    """With one tile per gradient slot (n <= 8 tiles), one thread adds each slot's
    products straight into grad while more threads sum partials and reduce them: the
    gradients (overwritten, accumulated, row-scaled) are the same bits."""
    if not single_threaded_blas.available:
        pytest.skip("the BLAS behind scipy cannot be pinned to one thread: one thread only")
    x, g = _data(n, 9, dtype), _data(n, 9, dtype, seed=1)
    scale = np.random.default_rng(3).uniform(0.5, 2, n).astype(dtype)
    results = []
    for threads in (1, 2):
        net = MLP(dtype=dtype, rng=2, n_threads=threads)
        net.forward(x)
        net.backward(g, row_scale=scale)
        first = net.grad.copy()
        net.backward(g[::-1].copy(), accumulate=True)
        results.append((first, net.grad.copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_blas_threads_restored_and_pinned_during_kernels():
    if not nn._blas.available:
        pytest.skip("no BLAS behind scipy whose process-wide thread count can be set")
    getters = [get for get, _ in nn._blas._resolve()]
    before = [get() for get in getters]
    with nn._blas:
        assert all(get() == 1 for get in getters)
        with nn._blas:          # nested use keeps the pin
            assert all(get() == 1 for get in getters)
        assert all(get() == 1 for get in getters)
    assert [get() for get in getters] == before
    MLP(rng=0).predict(_data(10, 9, np.float32))
    assert [get() for get in getters] == before


# --------------------------------------------------------------------- workspaces


def test_workspaces_are_reused():
    net = MLP(rng=0)
    x = _data(512, 9, np.float32)
    y = np.empty((512, 9), np.float32)
    net.forward(x, out=y)
    net.backward(y)
    ws = net._train
    arrays = {k: v for k, v in ws.items() if isinstance(v, np.ndarray)}
    for _ in range(3):
        net.forward(x, out=y)
        net.backward(y)
        net.predict(x, out=y)
    assert net._train is ws and all(ws[k] is v for k, v in arrays.items())
    scratch = dict(net._scratch)
    net.predict(x, out=y)
    assert all(net._scratch[k] is v for k, v in scratch.items())
    net.forward(x[:100])                      # a new batch size gets a new workspace
    assert net._train is not ws


def test_backward_options():
    net = _net("tanh")
    x, g = _data(300, 4), _data(300, 3, seed=1)
    scale = np.random.default_rng(2).uniform(0.5, 2, 300)
    net.forward(x)
    net.backward(g * scale[:, None])
    expected = net.grad.copy()
    net.backward(g, row_scale=scale)
    np.testing.assert_allclose(net.grad, expected, rtol=1e-13, atol=1e-13)
    net.backward(g, row_scale=scale, accumulate=True)
    np.testing.assert_allclose(net.grad, 2 * expected, rtol=1e-13, atol=1e-13)
    out = np.empty((300, 4))
    assert net.backward(g, input_grad=True, out=out) is out
    assert net.backward(g) is None


def test_readonly_and_noncontiguous_inputs():
    net = _net("gelu")
    x = _data(50, 8)[:, ::2]
    ro = np.ascontiguousarray(x)
    ro.setflags(write=False)
    np.testing.assert_array_equal(net.predict(x), net.predict(ro))   # same path: bitwise
    # forward() also stores the activation derivatives (another fused kernel, another
    # SIMD rounding on some CPUs): equal to rounding
    assert_close_ulp(net.forward(x), net.predict(ro), 8)


def test_empty_batch():
    net = _net("tanh")
    assert net.predict(np.empty((0, 4))).shape == (0, 3)
    assert net.jacobian_diagonal(np.empty((0, 4))).shape == (0, 3)
    assert net.forward(np.empty((0, 4))).shape == (0, 3)
    net.grad[...] = 1
    assert net.backward(np.empty((0, 3)), input_grad=True).shape == (0, 4)
    assert np.all(net.grad == 0)


# -------------------------------------------------------------------------- errors


def test_error_paths():
    with pytest.raises(ValueError, match=r"`activations\[1\]` must be one of"):
        MLP((3, 4, 3), ["tanh", "softmax"])
    with pytest.raises(ValueError, match="`activations` must be one of"):
        MLP((3, 4, 3), "swish")
    with pytest.raises(ValueError, match=r"one activation per layer: 2 for 3 widths; got 3"):
        MLP((3, 4, 3), ["tanh", "tanh", "identity"])
    with pytest.raises(ValueError, match="at least an input and an output width"):
        MLP((3,))
    with pytest.raises(ValueError, match=r"`widths\[1\]` must be in"):
        MLP((3, 0, 3))
    with pytest.raises(TypeError, match=r"`widths\[1\]` must be an int"):
        MLP((3, 2.5, 3))
    with pytest.raises(TypeError, match="`dtype` must be float32 or float64"):
        MLP(dtype=np.int32)
    net = MLP((3, 4, 2), dtype=np.float64, rng=0)
    with pytest.raises(ValueError, match=r"`x` must have 3 columns \(the input width\); "
                                         r"got shape \(5, 4\)"):
        net.forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"`x` must have 2 dimensions"):
        net.predict(np.zeros(3))
    bad = np.zeros((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"`x` must be finite; found 1 NaN/Inf value\(s\), "
                                         r"the first at index \(2, 1\)"):
        net.forward(bad)
    with pytest.raises(TypeError, match="has dtype float32 but this MLP works in float64"):
        net.predict(np.zeros((2, 3), np.float32))
    fresh = MLP((3, 4, 2), dtype=np.float64, rng=0)
    with pytest.raises(RuntimeError, match="needs a forward"):
        fresh.backward(np.zeros((2, 2)))
    net.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"`grad_out` must have shape \(5, 2\)"):
        net.backward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"`theta` must have shape \(26,\)"):
        net.set_weights(np.zeros(3))
    with pytest.raises(ValueError, match=r"`n_dirs` must be in \[1, 2\]"):
        net.jacobian_diagonal(np.zeros((2, 3)), n_dirs=3)
    with pytest.raises(ValueError, match="`n_threads` must be a positive or negative"):
        MLP((3, 2), n_threads=0)


# ------------------------------------------------------------ noise-conditional


def _ncs(conditioning, baseline, dtype=np.float64):
    net = MLP((4 if conditioning == "input" else 3, 8, 6, 3), "tanh", dtype=dtype, rng=4,
              n_threads=1)
    rng = np.random.default_rng(9)
    for b in net.biases:
        b[...] = rng.uniform(-0.3, 0.3, b.shape)
    return NoiseConditionalScore(net, conditioning, mean=[0.3, -0.2, 0.5], std=1.7,
                                 baseline=baseline)


CONDITIONINGS = [("scale", False), ("scale", True), ("input", False), ("input", True)]


@pytest.mark.parametrize("conditioning,baseline", CONDITIONINGS)
def test_noise_conditional_formula(conditioning, baseline):
    m = _ncs(conditioning, baseline)
    x, sigma = _data(6, 3), np.array([0.1, 0.2, 0.5, 1.0, 2.0, 0.05])
    u = (x - m.mean) / m.std
    if conditioning == "input":
        u = np.column_stack([u, np.log(sigma / m.std)])
    expected = m.net.predict(u) / sigma[:, None]
    if baseline:
        expected -= (x - m.mean) / (m.std ** 2 + sigma ** 2)[:, None]
    np.testing.assert_allclose(m.score(x, sigma=sigma), expected, rtol=1e-13)
    np.testing.assert_allclose(m.scaled_score(x, sigma), expected * sigma[:, None],
                               rtol=1e-13)
    np.testing.assert_allclose(m.forward(x, sigma), expected, rtol=1e-13)
    np.testing.assert_allclose(m.score(x, sigma=0.3), m.score(x, sigma=np.full(6, 0.3)))


@pytest.mark.parametrize("conditioning,baseline", CONDITIONINGS)
def test_noise_conditional_chain_rule_finite_differences(conditioning, baseline):
    m = _ncs(conditioning, baseline)
    x, sigma = _data(4, 3), np.array([0.3, 0.7, 1.5, 0.2])
    g = _data(4, 3, seed=5)
    eps = 1e-6
    # Jacobian diagonal in x
    fd = np.empty_like(x)
    for i in range(3):
        e = np.zeros(3)
        e[i] = eps
        fd[:, i] = (m.score(x + e, sigma=sigma)[:, i] - m.score(x - e, sigma=sigma)[:, i]) \
            / (2 * eps)
    np.testing.assert_allclose(m.jacobian_diagonal(x, sigma=sigma), fd, rtol=1e-6, atol=1e-8)
    # input gradient (VJP in x), unscaled and scaled
    for scaled in (False, True):
        f = (lambda v: np.sum(g * m.scaled_score(v.reshape(x.shape), sigma))) if scaled \
            else (lambda v: np.sum(g * m.score(v.reshape(x.shape), sigma=sigma)))
        fdx = _central_difference(f, x.ravel(), eps).reshape(x.shape)
        if scaled:
            m.scaled_score(x, sigma, keep=True)
        else:
            m.forward(x, sigma)
        np.testing.assert_allclose(m.backward(g, input_grad=True), fdx, rtol=1e-6, atol=1e-8)
    # parameter gradients through the protocol
    theta = m.get_weights()
    fdp = _central_difference(lambda p: np.sum(g * m.score(x, p, sigma)), theta, eps)
    np.testing.assert_allclose(m.score_vjp(x, theta, g, sigma), fdp, rtol=1e-6, atol=1e-8)
    fdj = _central_difference(lambda p: np.sum(g * m.jacobian_diagonal(x, p, sigma)), theta,
                              eps)
    np.testing.assert_allclose(m.jacobian_diagonal_vjp(x, theta, g, sigma), fdj, rtol=1e-6,
                               atol=1e-8)


def test_noise_conditional_protocol_and_dtypes():
    m = _ncs("scale", True, dtype=np.float32)
    assert m.noise_conditional and m.n_params == m.net.n_params
    x = _data(5, 3)
    s64 = m.score(x, sigma=0.5)                 # float64 in -> float64 twin, float64 out
    s32 = m.score(x.astype(np.float32), sigma=0.5)
    assert s64.dtype == np.float64 and s32.dtype == np.float32
    np.testing.assert_allclose(s32, s64, rtol=1e-5, atol=1e-6)
    theta = m.get_weights()
    theta[:5] += 0.1
    s = m.score(x, theta, 0.5)                  # params given explicitly are used
    np.testing.assert_array_equal(m.get_weights(), theta.astype(np.float32))
    assert not np.allclose(s, s64)
    with pytest.raises(ValueError, match="`sigma` is required"):
        m.score(x)
    with pytest.raises(ValueError, match=r"`sigma` must be a float or an array of shape "
                                         r"\(5,\)"):
        m.score(x, sigma=np.ones(4))
    with pytest.raises(ValueError, match="`sigma` must be positive and finite"):
        m.score(x, sigma=np.array([1, 1, 0, 1, 1.0]))
    with pytest.raises(ValueError, match=r"`x` must have 3 columns"):
        m.score(np.zeros((2, 4)), sigma=1.0)
    assert m.jacobian_diagonal_vjp(x, theta, x, 0.5).shape == (m.n_params,)
    with pytest.raises(ValueError, match="input width 10 for conditioning='input'"):
        NoiseConditionalScore(MLP(rng=0), "input")


def test_dsm_loss_gradient_through_protocol():
    from fastscore import losses
    m = _ncs("scale", True)
    x = _data(8, 3)
    theta = m.get_weights()
    loss, grad = losses.dsm(m, theta, x, 0.5, rng=3)
    fd = _central_difference(lambda p: losses.dsm(m, p, x, 0.5, rng=3)[0], theta, 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_ism_loss_gradient_through_protocol():
    from fastscore import losses
    m = _ncs("scale", False)
    # ism calls the model with sigma=None: wrap it at a fixed level
    class AtLevel:
        n_params = m.n_params
        get_weights, set_weights = m.get_weights, m.set_weights

        def score(self, x, params, sigma=None):
            return m.score(x, params, 0.5)

        def score_vjp(self, x, params, grad, sigma=None):
            return m.score_vjp(x, params, grad, 0.5)

        def jacobian_diagonal(self, x, params, sigma=None):
            return m.jacobian_diagonal(x, params, 0.5)

        def jacobian_diagonal_vjp(self, x, params, grad, sigma=None):
            return m.jacobian_diagonal_vjp(x, params, grad, 0.5)

    x = _data(6, 3)
    theta = m.get_weights()
    loss, grad = losses.ism(AtLevel(), theta, x)
    fd = _central_difference(lambda p: losses.ism(AtLevel(), p, x)[0], theta, 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_for_patches_standardisation():
    patches = 2.0 + 0.5 * _data(1000, 9)
    m = NoiseConditionalScore.for_patches((3, 3), patches, rng=0)
    assert m.mean == pytest.approx(np.full(9, patches.mean()))
    assert m.std == pytest.approx(patches.std())
    assert m.net.widths == nn.DEFAULT_WIDTHS
    with pytest.raises(ValueError, match="constant"):
        NoiseConditionalScore.for_patches((3, 3), np.ones((10, 9)))


# ------------------------------------------------------------------- patch model


def _patch_model(dtype=np.float32):
    ncs = NoiseConditionalScore.for_patches((2, 2), 1 + 0.2 * _data(100, 4), hidden=(16, 16),
                                            baseline=True, dtype=dtype, rng=0)
    return PatchScoreModel(ncs, 2, sigma_min=0.05, sigma_max=2.0,
                           history={"step": [1, 2], "loss": [1.5, 1.25]},
                           training={"n_steps": 2, "note": "test"})


def test_patch_model_score_chunks_dtype_and_denoise(monkeypatch):
    pm = _patch_model()
    v = 1 + 0.2 * _data(1000, 4)
    full = pm.score(v, 0.3)
    assert full.dtype == np.float64
    np.testing.assert_allclose(full, pm.model.score(v, sigma=0.3), rtol=1e-12)
    monkeypatch.setattr(score_model, "_CHUNK_SCORE", 77)
    # other chunks, other batch sizes: BLAS may block the products differently
    assert_close_ulp(pm.score(v, 0.3), full, 16)
    s32 = pm.score(v.astype(np.float32), 0.3)
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, full, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(pm.score(v), pm.score(v, pm.sigma_min))
    np.testing.assert_allclose(pm.denoise(v, 0.3), v + 0.09 * full, rtol=1e-12)
    with pytest.raises(ValueError, match=r"`patches` must have 4 columns"):
        pm.score(np.zeros((3, 9)))
    with pytest.raises(ValueError, match="has 4 values but the model scores vectors of "
                                         "dimension 9"):
        PatchScoreModel(NoiseConditionalScore.for_patches(3, rng=0), 2, sigma_min=0.1,
                        sigma_max=1)


def test_patch_model_save_load_round_trip(tmp_path):
    from fastscore import io
    pm = _patch_model()
    path = tmp_path / "model.npz"
    pm.save(path)
    back = PatchScoreModel.load(path)
    np.testing.assert_array_equal(back.net.params, pm.net.params)
    assert back.net.params.dtype == np.float32
    assert back.patch_size == (2, 2) and back.sigma_min == 0.05 and back.sigma_max == 2.0
    assert back.model.get_config() == pm.model.get_config()
    assert back.history == pm.history and back.training == pm.training
    v = 1 + 0.2 * _data(10, 4, np.float32)
    np.testing.assert_array_equal(back.score(v, 0.2), pm.score(v, 0.2))
    # corrupt, truncated and foreign files give a clear error
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(io.ModelFileError):
        PatchScoreModel.load(tmp_path / "cut.npz")
    io.write_model_file(tmp_path / "other.npz", "checkpoint", {"a": np.zeros(2)}, {})
    with pytest.raises(io.ModelFileError):
        PatchScoreModel.load(tmp_path / "other.npz")
    arrays, meta = io.read_model_file(path, "patch_score_model")
    arrays["params"] = arrays["params"][:-1]
    meta = {k: v for k, v in meta.items()
            if k not in ("format_version", "kind", "fastscore_version")}
    io.write_model_file(tmp_path / "bad.npz", "patch_score_model", arrays, meta)
    with pytest.raises(io.ModelFileError, match=r"`params` holds 419 values; the architecture \[4, 16, 16, 4\] needs 420"):
        PatchScoreModel.load(tmp_path / "bad.npz")


def test_pickle_and_deepcopy():
    import copy
    import pickle

    pm = _patch_model()
    v = 1 + 0.2 * _data(10, 4, np.float32)
    for clone in (pickle.loads(pickle.dumps(pm)), copy.deepcopy(pm)):
        np.testing.assert_array_equal(clone.net.params, pm.net.params)
        assert not np.shares_memory(clone.net.params, pm.net.params)
        np.testing.assert_array_equal(clone.score(v, 0.2), pm.score(v, 0.2))


def test_lazy_import():
    assert fastscore.MLP is MLP
    assert fastscore.PatchScoreModel is PatchScoreModel


@pytest.mark.parametrize("dtype, sigma", [(np.float32, 1e-50), (np.float32, 1e300),
                                          (np.float32, 1e-20), (np.float32, 1e20),
                                          (np.float64, 1e-300), (np.float64, 1e300)])
def test_sigma_outside_the_working_dtype(dtype, sigma):
    # passes a float64 positivity check, but σ² or 1/σ² is 0 or inf in the working dtype
    pm = _patch_model()
    v = (1 + 0.2 * _data(5, 4)).astype(dtype)
    want = rf"`sigma` must be in \[.*\] for {np.dtype(dtype).name} arithmetic"
    with pytest.raises(ValueError, match=want):
        pm.score(v, sigma)
    with pytest.raises(ValueError, match=want):
        pm.denoise(v, np.full(5, sigma))
    with pytest.raises(ValueError, match=want):
        pm.model.score(v, sigma=sigma)

import math

import numpy as np
import pytest
from reference.optim import NumpyAdam, ema_update, global_norm

from fastscore.optim import (
    EMA,
    Adam,
    ConstantSchedule,
    CosineSchedule,
    StepDecaySchedule,
    WarmupSchedule,
    clip_grad_norm,
    grad_norm,
)

DTYPES = [np.float32, np.float64]
# rounding tolerance after tens of steps: the kernel and the reference do the same IEEE
# operations in the same order, so in practice they agree bit for bit; the tolerance only
# leaves room for a compiler that evaluates differently (e.g. another libm sqrt).
RTOL = {np.float32: 2e-6, np.float64: 1e-14}


def _problem(dtype, n=5003, seed=0):
    rng = np.random.default_rng(seed)
    params = rng.normal(size=n).astype(dtype)
    grads = [rng.normal(scale=s, size=n).astype(dtype) for s in (1.0, 0.1, 3.0, 1e-3) * 8]
    return params, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, True), (0.05, True), (0.05, False)])
def test_adam_matches_numpy_reference(dtype, weight_decay, decoupled):
    params, grads = _problem(dtype)
    ours, ref = params.copy(), params.copy()
    opt = Adam(ours, step_size=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=weight_decay,
               decoupled_weight_decay=decoupled, n_threads=2)
    ref_opt = NumpyAdam(ref, lr=3e-3, betas=(0.8, 0.99), eps=1e-7,
                        weight_decay=weight_decay, decoupled=decoupled)
    for g in grads:
        opt.step(g)
        ref_opt.step(g)
        np.testing.assert_allclose(ours, ref, rtol=RTOL[dtype], atol=0)
        np.testing.assert_allclose(opt.m, ref_opt.m, rtol=RTOL[dtype], atol=0)
        np.testing.assert_allclose(opt.v, ref_opt.v, rtol=RTOL[dtype], atol=0)
    assert ours.dtype == dtype and opt.m.dtype == dtype
    assert opt.step_count == len(grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_first_step_is_sign_times_step_size(dtype):
    # bias correction: after one step m/sqrt(v) = g/|g|, so theta moves by the step size (eps aside)
    params = np.zeros(7, dtype=dtype)
    g = np.array([1, -2, 3, -4, 0.5, -0.25, 8], dtype=dtype)
    Adam(params, step_size=0.01, eps=1e-12).step(g)
    np.testing.assert_allclose(params, -0.01 * np.sign(g), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_thread_count_bit_identical(dtype):
    n = 300_001  # above the parallel threshold, odd so the thread ranges have tails
    rng = np.random.default_rng(1)
    start = rng.normal(size=n).astype(dtype)
    results = []
    for n_threads in (1, 2, 3):
        params = start.copy()
        opt = Adam(params, step_size=1e-2, weight_decay=0.01, n_threads=n_threads)
        r = np.random.default_rng(2)
        for _ in range(5):
            opt.step(r.normal(size=n).astype(dtype))
        results.append((params, opt.m, opt.v))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_state_round_trip_continues_identically(dtype):
    params, grads = _problem(dtype)
    straight = params.copy()
    opt = Adam(straight, step_size=CosineSchedule(1e-2, 40), weight_decay=0.01)
    for g in grads:
        opt.step(g)

    first = params.copy()
    opt1 = Adam(first, step_size=CosineSchedule(1e-2, 40), weight_decay=0.01)
    for g in grads[:13]:
        opt1.step(g)
    state = opt1.state_dict()
    saved = first.copy()
    # mutate the first optimiser afterwards: the state must be a copy
    opt1.step(grads[13])
    resumed = saved.copy()
    opt2 = Adam(resumed, step_size=CosineSchedule(1e-2, 40))
    opt2.load_state_dict(state)
    assert opt2.weight_decay == 0.01 and opt2.step_count == 13
    for g in grads[13:]:
        opt2.step(g)
    np.testing.assert_array_equal(resumed, straight)
    np.testing.assert_array_equal(opt2.m, opt.m)
    np.testing.assert_array_equal(opt2.v, opt.v)


def test_adam_state_dict_is_plain_data():
    import json

    opt = Adam(np.zeros(3), step_size=StepDecaySchedule(1.0, 2))
    state = opt.state_dict()
    json.dumps({k: v for k, v in state.items() if k not in ("m", "v")})
    assert state["m"].shape == (3,) and state["step_count"] == 0


def test_adam_schedule_and_override():
    params = np.zeros(3)
    opt = Adam(params, step_size=StepDecaySchedule(0.1, period=2, gamma=0.5))
    used = [opt.step(np.ones(3)) for _ in range(5)]
    assert used == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert opt.step(np.ones(3), step_size=0.0) == 0.0
    assert opt.current_step_size() == pytest.approx(0.0125)
    assert Adam(np.zeros(2), step_size=lambda t: 0.5 / (t + 1)).current_step_size() == 0.5


def test_adam_multidimensional_buffer_in_place():
    params = np.zeros((4, 5), dtype=np.float32)
    view = params[1]                     # a view of a row must see the update
    Adam(params, step_size=0.1).step(np.ones((4, 5), dtype=np.float32))
    assert np.all(view < 0) and params.shape == (4, 5)


def test_adam_errors():
    with pytest.raises(TypeError, match="numpy.ndarray"):
        Adam([0.0, 1.0])
    with pytest.raises(TypeError, match="float32 or float64"):
        Adam(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        Adam(np.zeros((3, 4))[:, 1])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        Adam(ro)
    with pytest.raises(ValueError, match="betas"):
        Adam(np.zeros(3), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas"):
        Adam(np.zeros(3), betas=0.9)
    with pytest.raises(ValueError, match="eps"):
        Adam(np.zeros(3), eps=0.0)
    with pytest.raises(ValueError, match="step_size"):
        Adam(np.zeros(3), step_size=-1.0)
    with pytest.raises(ValueError, match="n_threads"):
        Adam(np.zeros(3), n_threads=0)
    opt = Adam(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        opt.step(np.zeros(3))                          # float64 never narrowed
    with pytest.raises(ValueError, match="3 entries"):
        opt.step(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="entries"):
        opt.load_state_dict({"step_count": 1, "m": np.zeros(4, np.float32),
                             "v": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="lacks"):
        opt.load_state_dict({"m": np.zeros(3, np.float32)})
    bad = Adam(np.zeros(2), step_size=lambda t: -1.0)
    with pytest.raises(ValueError, match="schedule"):
        bad.step(np.zeros(2))


def test_adam_non_contiguous_gradient_is_read():
    g = np.arange(10.0)[::2]
    p1, p2 = np.zeros(5), np.zeros(5)
    Adam(p1).step(g)
    Adam(p2).step(np.ascontiguousarray(g))
    np.testing.assert_array_equal(p1, p2)


# ----------------------------------------------------------------------------- schedules


def test_constant_schedule():
    assert ConstantSchedule(0.3)(0) == 0.3 and ConstantSchedule(0.3)(10**6) == 0.3


def test_cosine_schedule_values():
    s = CosineSchedule(1.0, 100, final_step_size=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)
    assert s(25) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert s(100) == pytest.approx(0.1) and s(1000) == pytest.approx(0.1)
    values = [s(t) for t in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_step_schedule_values():
    s = StepDecaySchedule(0.1, period=3, gamma=0.5)
    assert [s(t) for t in range(7)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_warmup_composes_with_other_schedules():
    s = WarmupSchedule(CosineSchedule(1.0, 10), n_warmup=4, start_factor=0.2)
    assert [s(t) for t in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert s(4) == pytest.approx(1.0)
    assert s(9) == pytest.approx(0.5)
    assert s(14) == pytest.approx(0.0, abs=1e-15)
    assert WarmupSchedule(0.5, 2)(0) == 0.0 and WarmupSchedule(0.5, 2)(1) == 0.25
    assert WarmupSchedule(0.5, 0)(0) == 0.5
    nested = WarmupSchedule(StepDecaySchedule(1.0, 2, 0.1), 1)
    assert [nested(t) for t in range(4)] == pytest.approx([0.0, 1.0, 1.0, 0.1])


def test_schedule_errors_and_repr():
    with pytest.raises(ValueError, match="n_steps"):
        CosineSchedule(1.0, 0)
    with pytest.raises(ValueError, match="gamma"):
        StepDecaySchedule(1.0, 1, gamma=0.0)
    with pytest.raises(ValueError, match="start_factor"):
        WarmupSchedule(1.0, 3, start_factor=2.0)
    with pytest.raises(ValueError, match="step"):
        ConstantSchedule(1.0)(-1)
    assert "CosineSchedule" in repr(WarmupSchedule(CosineSchedule(1.0, 5), 2))
    assert CosineSchedule(1.0, 5) == CosineSchedule(1.0, 5) and CosineSchedule(1.0, 5) != CosineSchedule(1.0, 6)


# ----------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_norm_accurate_and_thread_independent(dtype):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=1_000_003) * np.exp(rng.normal(size=1_000_003))).astype(dtype)
    norms = [grad_norm(x, n_threads=t) for t in (1, 2, 3, 4)]
    assert len(set(norms)) == 1                       # bit-identical
    assert norms[0] == pytest.approx(global_norm(x), rel=1e-13)  # accumulated in double


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm(dtype):
    rng = np.random.default_rng(4)
    g = rng.normal(size=50_000).astype(dtype)
    norm0 = global_norm(g)
    h = g.copy()
    norm = clip_grad_norm(h, 2.0)
    assert norm == pytest.approx(norm0, rel=1e-12)
    assert global_norm(h) == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_allclose(h, g * (2.0 / (norm0 + 1e-6)), rtol=1e-6)
    # below the threshold: untouched, same bits
    k = g.copy()
    assert clip_grad_norm(k, 1e9) == pytest.approx(norm0, rel=1e-12)
    np.testing.assert_array_equal(k, g)
    # inf only measures
    assert clip_grad_norm(k, math.inf) == pytest.approx(norm0, rel=1e-12)
    np.testing.assert_array_equal(k, g)


def test_clip_grad_norm_thread_independent():
    rng = np.random.default_rng(5)
    g = rng.normal(size=400_001).astype(np.float32)
    a, b = g.copy(), g.copy()
    assert clip_grad_norm(a, 1.0, n_threads=1) == clip_grad_norm(b, 1.0, n_threads=2)
    np.testing.assert_array_equal(a, b)


def test_clip_grad_norm_non_finite_leaves_gradient():
    g = np.array([1.0, np.nan, 2.0])
    assert math.isnan(clip_grad_norm(g, 1.0))
    assert g[0] == 1.0 and g[2] == 2.0
    h = np.array([1.0, np.inf], dtype=np.float32)
    assert clip_grad_norm(h, 1.0) == math.inf and h[0] == 1.0


def test_clip_errors():
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(np.ones(3), 0.0)
    with pytest.raises(TypeError, match="ndarray"):
        clip_grad_norm([1.0, 2.0], 1.0)
    with pytest.raises(TypeError, match="max_norm"):
        clip_grad_norm(np.ones(3), "1")


# ----------------------------------------------------------------------------- EMA


@pytest.mark.parametrize("dtype", DTYPES)
def test_ema_matches_reference(dtype):
    rng = np.random.default_rng(6)
    snapshots = [rng.normal(size=70_001).astype(dtype) for _ in range(6)]
    ema = EMA(0.9, n_threads=2)
    ref = None
    for p in snapshots:
        ema.update(p)
        ref = p.copy() if ref is None else ema_update(ref, p, 0.9)
        np.testing.assert_array_equal(ema.average, ref)
    assert ema.n_updates == 6 and ema.average.dtype == dtype
    # closed form of the average after the first copy
    expected = snapshots[0].astype(np.float64)
    for p in snapshots[1:]:
        expected = 0.9 * expected + 0.1 * p
    np.testing.assert_allclose(ema.average, expected, rtol=1e-5 if dtype == np.float32
                               else 1e-13, atol=1e-6)


def test_ema_threads_state_and_copy_to():
    rng = np.random.default_rng(7)
    snaps = [rng.normal(size=100_000).astype(np.float32) for _ in range(4)]
    one, two = EMA(0.99, n_threads=1), EMA(0.99, n_threads=2)
    for p in snaps:
        one.update(p)
        two.update(p)
    np.testing.assert_array_equal(one.average, two.average)

    resumed = EMA(0.5)
    resumed.load_state_dict(one.state_dict())
    assert resumed.decay == 0.99 and resumed.n_updates == 4
    extra = rng.normal(size=100_000).astype(np.float32)
    one.update(extra)
    resumed.update(extra)
    np.testing.assert_array_equal(one.average, resumed.average)

    out = np.empty((100, 1000), dtype=np.float32)
    assert one.copy_to(out) is out
    np.testing.assert_array_equal(out.reshape(-1), one.average)


def test_ema_errors():
    with pytest.raises(ValueError, match="decay"):
        EMA(1.0)
    ema = EMA(0.9)
    with pytest.raises(RuntimeError, match="no update"):
        ema.copy_to(np.zeros(3))
    ema.update(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="3 entries"):
        ema.update(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        ema.update(np.zeros(3))
    with pytest.raises(ValueError, match="entries"):
        ema.copy_to(np.zeros(3))
    with pytest.raises(ValueError, match="EMA.state_dict"):
        ema.load_state_dict({"decay": 0.9})
    fresh = EMA(0.9)
    fresh.load_state_dict(EMA(0.8).state_dict())
    assert fresh.average is None and fresh.decay == 0.8


@pytest.fixture(autouse=True)
def every_pass_multithreaded(monkeypatch):
    """Let even small test buffers use every requested thread, so that the thread-count
    tests exercise the parallel kernels (the library keeps small passes on one thread)."""
    import fastscore.optim

    monkeypatch.setattr(fastscore.optim, "MIN_ENTRIES_PER_THREAD", 1)


def test_small_passes_stay_on_one_thread(monkeypatch):
    import fastscore.optim

    monkeypatch.setattr(fastscore.optim, "MIN_ENTRIES_PER_THREAD", 1 << 19)
    assert fastscore.optim._threads(2, 238_729) == 1
    assert fastscore.optim._threads(2, 10_000_000) == 2
    assert fastscore.optim._threads(None, 10) == 1

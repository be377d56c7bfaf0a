"""The packed-weight micro-kernel of the MLP (csrc/mlp_gemm*): agreement with the float64
NumPy reference at every SIMD level it can run (forced through FASTSCORE_SIMD in a
subprocess), thread-count invariance, and no stale pack after the parameters change."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastscore

from fastscore import nn
from fastscore._threads import single_threaded_blas
from fastscore.nn import MLP
from fastscore.optim import EMA, Adam
from reference import mlp as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the fastscore under test (installed, or this tree built in place) for the subprocesses,
# which run outside the source tree so that `python -c` cannot pick up an unbuilt copy
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastscore.__file__)))

# Odd widths (not multiples of any vector width: edge panels and edge row blocks), the
# default activations (leaky ReLU fused in the micro-kernel, tanh in a separate pass) and
# one each of ReLU / SiLU / GELU / identity.
_CASES = [((9, 40, 80, 160, 33, 9), None),
          ((5, 17, 3, 29, 4), ("relu", "silu", "gelu", "identity"))]

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from fastscore.nn import MLP
    from reference import mlp as ref

    def panels(m, nr):
        # (rows, cols) -> its panels of nr columns, zero-padded, flattened
        cols = -(-m.shape[1] // nr) * nr
        padded = np.zeros((m.shape[0], cols), m.dtype)
        padded[:, :m.shape[1]] = m
        return padded.reshape(m.shape[0], cols // nr, nr).transpose(1, 0, 2).ravel()

    def check_pack_layout():
        # the pack against its definition (mlp_gemm.h) built in NumPy, bit for bit, and
        # pack_matches: True for its parameters, False after any one value changes (also
        # +0 -> -0, and inside an edge panel); [] when this level has no pack
        from fastscore._ext import mlp as kernels
        failures = []
        for dtype in (np.float32, np.float64):
            for widths in {cases!r}[0][0], (37, 8, 16, 24, 7, 100), (1, 1):
                net = MLP(widths, dtype=dtype, rng=3, n_threads=1)
                lay = net._net.pack_layout(np.dtype(dtype).itemsize)
                if not lay["total"]:
                    return failures
                rng = np.random.default_rng(4)
                net.params[...] = rng.standard_normal(net.n_params)
                net.params[::7] = 0.0
                expected = np.zeros(lay["total"], dtype)
                for l, (W, b) in enumerate(zip(net.weights, net.biases)):
                    for key, block in (("fwd", W), ("bias", b[None, :]), ("bwd", W.T)):
                        part = panels(block, lay["nr"])
                        expected[lay[key][l]:lay[key][l] + part.size] = part
                for n_threads in (1, 2):
                    got = np.full(lay["total"], np.nan, dtype)
                    kernels.pack(net._net, net.params, got, n_threads)
                    if got.tobytes() != expected.tobytes():
                        failures.append(("layout", str(dtype), widths, n_threads))
                if not kernels.pack_matches(net._net, net.params, got):
                    failures.append(("matches", str(dtype), widths))
                zero = int(np.flatnonzero(net.params == 0)[-1])
                for i in {{0, zero, net.n_params - 1, net.n_params // 2}}:
                    changed = net.params.copy()
                    changed[i] = -0.0 if changed[i] == 0 else np.nextafter(
                        changed[i], np.inf, dtype=dtype)
                    if kernels.pack_matches(net._net, changed, got):
                        failures.append(("stale", str(dtype), widths, i))
        return failures

    worst = {{}}
    packed = {{}}
    for dtype in (np.float32, np.float64):
        for widths, acts in {cases!r}:
            net = MLP(widths, acts, dtype=dtype, rng=5, n_threads=1)
            rng = np.random.default_rng(6)
            for b in net.biases:
                b[...] = rng.uniform(-0.3, 0.3, b.shape)
            packed[np.dtype(dtype).name] = net._pack_size
            theta = net.params.astype(float)
            for n in (1, 7, 1031):
                x = rng.standard_normal((n, widths[0])).astype(dtype)
                g = rng.standard_normal((n, widths[-1])).astype(dtype)
                y0, cache = ref.forward(theta, widths, net.activations, x.astype(float))
                gp0, gin0 = ref.backward(theta, widths, cache, g.astype(float))
                y = net.forward(x)
                gin = net.backward(g, input_grad=True)
                errs = {{"forward": (y, y0), "predict": (net.predict(x), y0),
                         "input_grad": (gin, gin0), "grad": (net.grad, gp0)}}
                for name, (a, b) in errs.items():
                    e = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
                    key = np.dtype(dtype).name + " " + name
                    worst[key] = max(worst.get(key, 0.0), e)
    # bitwise thread-count invariance at this level
    x = np.random.default_rng(1).standard_normal((1300, 9)).astype(np.float32)
    g = np.random.default_rng(2).standard_normal((1300, 9)).astype(np.float32)
    runs = []
    for threads in (1, 2, 3):
        net = MLP((9, 40, 80, 35, 9), rng=2, n_threads=threads)
        y = net.forward(x)
        gin = net.backward(g, input_grad=True)
        runs.append([y, net.grad.copy(), gin, net.predict(x)])
    same = all(np.array_equal(a, b) for r in runs[1:] for a, b in zip(runs[0], r))
    print(json.dumps({{"worst": worst, "packed": packed, "threads_identical": same,
                      "layout": check_pack_layout()}}))
""")


def _run(level):
    env = dict(os.environ, FASTSCORE_SIMD=level, PYTHONPATH=PACKAGE_PARENT)
    script = _SCRIPT.format(tests=os.path.join(ROOT, "tests"), cases=_CASES)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300, cwd=tempfile.gettempdir())
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("level", ["avx512", "avx2", "baseline"])
def test_each_simd_level_matches_reference(level):
    out = _run(level)
    # float32: rounding of the products (k <= 160 terms) and of the float tanh / exp
    # approximations; float64: products only
    tol = {"float32": 2e-5, "float64": 1e-12}
    for key, err in out["worst"].items():
        assert err <= tol[key.split()[0]], (level, key, err)
    if level == "baseline":
        # no micro-kernel for the x86-64 baseline: the products go through BLAS
        assert out["packed"] == {"float32": 0, "float64": 0}
    elif MLP((9, 9))._pack_size:
        # this build and CPU have a micro-kernel at a level >= the forced one
        assert all(out["packed"].values()), out["packed"]
    if single_threaded_blas.available or any(out["packed"].values()):
        assert out["threads_identical"], level
    assert out["layout"] == [], (level, out["layout"])


def test_pack_matches_level_of_this_process():
    net = MLP(rng=0)
    level = os.environ.get("FASTSCORE_SIMD", "")
    if net._pack_size:
        assert net._packed() is net._packed()       # one pack per parameter version
    elif level != "baseline":
        pytest.skip("no packed micro-kernel on this CPU / build (BLAS path)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_is_the_same_on_any_thread_count(dtype):
    """The pack's layers are shared among threads: every count writes the same bytes
    (and every value of the pack, whatever was in the buffer before)."""
    from fastscore._ext import mlp as kernels

    net = MLP((9, 40, 80, 33, 160, 9), dtype=dtype, rng=0)
    if not net._pack_size:
        pytest.skip("no packed micro-kernel on this CPU / build (BLAS path)")
    packs = []
    for n_threads, fill in ((1, 0.0), (2, np.nan), (3, 7.0), (16, -1.0)):
        packed = np.full(net._pack.size, fill, dtype=dtype)
        kernels.pack(net._net, net.params, packed, n_threads)
        packs.append(packed)
    assert not np.isnan(packs[1]).any()
    for other in packs[1:]:
        assert packs[0].tobytes() == other.tobytes()
    with pytest.raises(RuntimeError, match="fs_mlp_pack"):       # an internal misuse
        kernels.pack(net._net, net.params, packs[0], 0)


def _reference_y(net, x):
    y, _ = ref.forward(net.params.astype(float), net.widths, net.activations,
                       x.astype(float), net.negative_slope)
    return y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_follows_every_parameter_change(dtype):
    """Each way of changing the weights in place changes the next output accordingly."""
    net = MLP((9, 40, 33, 9), dtype=dtype, rng=0)
    x = np.random.default_rng(0).standard_normal((50, 9)).astype(dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-12

    def check():
        y0 = _reference_y(net, x)
        np.testing.assert_allclose(net.predict(x), y0, atol=tol * np.abs(y0).max())
        y = net.forward(x)
        np.testing.assert_allclose(y, y0, atol=tol * np.abs(y0).max())
        # backward reads the same (current) pack: input gradient of sum(y)
        gin = net.backward(np.ones_like(y), input_grad=True)
        _, cache = ref.forward(net.params.astype(float), net.widths, net.activations,
                               x.astype(float), net.negative_slope)
        _, gin0 = ref.backward(net.params.astype(float), net.widths, cache,
                               np.ones(y.shape))
        np.testing.assert_allclose(gin, gin0, atol=tol * np.abs(gin0).max())
        return y

    outs = [check()]
    rng = np.random.default_rng(1)
    net.weights[1][2, 3] += 0.5                    # one weight through a view
    outs.append(check())
    net.biases[-1][...] = 0.25                     # a bias
    outs.append(check())
    net.set_weights(rng.standard_normal(net.n_params) * 0.1)
    outs.append(check())
    opt = Adam(net.params, step_size=0.05)               # optimiser steps, in place
    for _ in range(2):
        net.forward(x)
        net.backward(np.ones((50, 9), dtype))
        opt.step(net.grad)
        outs.append(check())
    ema = EMA(0.5)
    ema.update(net.params * 2)
    ema.copy_to(net.params)                        # averaged weights copied in
    outs.append(check())
    net.reset_parameters(rng=3)
    outs.append(check())
    for a, b in zip(outs, outs[1:]):
        assert not np.array_equal(a, b)


def test_pack_is_per_version_not_per_call(monkeypatch):
    net = MLP((9, 40, 9), rng=0)
    if not net._pack_size:
        pytest.skip("no packed micro-kernel on this CPU / build (BLAS path)")
    calls = []
    kernels = nn._kernels()
    real = kernels.pack
    monkeypatch.setattr(kernels, "pack", lambda *a: (calls.append(1), real(*a)))
    x = np.ones((20, 9), np.float32)
    for _ in range(3):
        net.predict(x)
        net.forward(x)
        net.backward(np.ones((20, 9), np.float32))
    assert len(calls) == 1
    net.params[0] += 1
    net.predict(x)
    net.predict(x)
    assert len(calls) == 2

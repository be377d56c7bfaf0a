"""Runtime SIMD dispatch: FASTSCORE_SIMD forces a body in every kernel, and every body
computes the same thing.

Each level runs in its own process (the level is read once per process). Results of
different bodies are compared within float rounding (lane counts, tiles and fma
contraction differ), never bit for bit; at one level, kernels that promise it give the
same bits for 1 and 2 threads.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import fastscore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the fastscore under test (installed, or this tree built in place) for the subprocesses,
# which run outside the source tree so that `python -c` cannot pick up an unbuilt copy
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastscore.__file__)))
EXTENSIONS = ("kde", "patches", "mlp", "adam")
LEVELS = {"avx512": 4, "avx2": 3, "baseline": 0}
NAMES = {4: "x86-64-v4", 3: "x86-64-v3", 0: "baseline"}

# Computes every kernel at the process's level, float32 and float64, 1 and 2 threads;
# saves the 1-thread results to argv[1] and prints the dispatch report as JSON.
KERNELS = r"""
import importlib, json, sys
import numpy as np
import fastscore
from fastscore import GaussianKDE, PatchOperator
from fastscore._config import simd_report
from fastscore._ext import _common
from fastscore.mlp import MLP
from fastscore.optim import Adam

def run(dtype, n_threads):
    rng = np.random.default_rng(0)
    res = {}
    X = rng.standard_normal((700, 9)).astype(dtype)
    Q = rng.standard_normal((40, 9)).astype(dtype)
    kde = GaussianKDE(0.5, n_threads=n_threads).fit(X)
    res["kde_score"] = kde.score(Q)
    res["kde_log_density"] = kde.log_density(Q)
    op = PatchOperator((21, 19), 5, stride=2, padding="reflect", n_threads=n_threads)
    img = rng.standard_normal((21, 19)).astype(dtype)
    res["gather"] = op.gather(img)
    res["scatter"] = op.scatter_add(rng.standard_normal(res["gather"].shape).astype(dtype),
                                    out=np.zeros((21, 19), dtype))
    for act in ("tanh", "silu", "gelu", "leaky_relu"):
        net = MLP((9, 24, 24, 9), act, dtype=dtype, rng=1, n_threads=n_threads)
        x = rng.standard_normal((300, 9)).astype(dtype)
        res[f"mlp_{act}_forward"] = net.forward(x).copy()
        res[f"mlp_{act}_input_grad"] = net.backward(
            rng.standard_normal((300, 9)).astype(dtype), input_grad=True).copy()
        res[f"mlp_{act}_grad"] = net.grad.copy()
    p = rng.standard_normal(1000).astype(dtype)
    opt = Adam(p, step_size=1e-2, weight_decay=0.1, n_threads=n_threads)
    for _ in range(3):
        opt.step(rng.standard_normal(1000).astype(dtype))
    res["adam"] = p
    return res

out = {}
for dtype in ("float32", "float64"):
    one, two = run(dtype, 1), run(dtype, 2)
    for key in one:
        out[f"{dtype} {key}"] = one[key]
        # the kernels' promise: the same bits whatever the thread count
        assert np.array_equal(one[key], two[key]), (dtype, key)
np.savez(sys.argv[1], **out)
report = simd_report()
report["level"] = _common.simd_level()
report["clones"] = {n: importlib.import_module(f"fastscore._ext.{n}").simd_clones()
                    for n in report["kernels"]}
print(json.dumps(report))
"""


def run_level(tmp_path, request):
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    env.pop("FASTSCORE_SIMD", None)
    if request is not None:
        env["FASTSCORE_SIMD"] = request
    path = tmp_path / f"{request}.npz"
    res = subprocess.run([sys.executable, "-c", KERNELS, str(path)], capture_output=True,
                         text=True, env=env, cwd=tempfile.gettempdir())
    assert res.returncode == 0, res.stderr
    with np.load(path) as data:
        return json.loads(res.stdout), dict(data)


@pytest.fixture(scope="module")
def default_level(tmp_path_factory):
    return run_level(tmp_path_factory.mktemp("simd"), None)


def expected_body(level, clones, extension=""):
    """The body a dispatch runs at `level` given the bodies built (widest first); the MLP's
    packed matrix products follow the level itself (BLAS at the baseline and in builds
    without them)."""
    for name in clones:
        if name == "baseline" or level >= {"x86-64-v4": 4, "x86-64-v3": 3}[name]:
            if extension != "mlp":
                return name
            gemm = NAMES[level] if level and packed_gemm_built() else "BLAS"
            return name if gemm == name else f"{name} (GEMM {gemm})"
    raise AssertionError(clones)


def packed_gemm_built():
    """Whether this build has the MLP's packed micro-kernels (GCC on x86-64); on a baseline
    CPU it cannot tell, and there every level's products are BLAS anyway."""
    from fastscore._ext import mlp

    return mlp.gemm_clone() != "BLAS"


@pytest.mark.parametrize("request_", ["avx2", "baseline"])
def test_forced_level_runs_everywhere_and_agrees(tmp_path, default_level, request_):
    ref_report, ref = default_level
    report, got = run_level(tmp_path, request_)
    cpu = {v: k for k, v in NAMES.items()}[report["cpu"]]
    level = min(cpu, LEVELS[request_])
    assert report["level"] == level
    assert report["cpu"] == ref_report["cpu"]
    assert report["forced"] == (f"FASTSCORE_SIMD={request_}" if level < cpu else None)
    assert set(report["kernels"]) == set(EXTENSIONS)
    for name, body in report["kernels"].items():
        assert body == expected_body(level, report["clones"][name], name), name
    # the default picks the widest body the CPU runs
    for name, body in ref_report["kernels"].items():
        assert body == expected_body(cpu, ref_report["clones"][name], name), name
    assert ref_report["forced"] is None
    assert set(got) == set(ref)
    for key in ref:
        rtol = 2e-5 if key.startswith("float32") else 1e-12
        scale = np.max(np.abs(ref[key]))
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=rtol * scale,
                                   err_msg=key)


@pytest.mark.parametrize("value", ["avx3", "AVX2", "sse"])
def test_bad_request_is_a_clear_error(value):
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT, FASTSCORE_SIMD=value)
    res = subprocess.run([sys.executable, "-c", "import fastscore"], capture_output=True,
                         text=True, env=env, cwd=tempfile.gettempdir())
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: environment variable FASTSCORE_SIMD must be one of")
    for choice in LEVELS:
        assert repr(choice) in last
    assert repr(value) in last


def test_empty_request_is_no_cap(monkeypatch):
    from fastscore._config import simd_request

    monkeypatch.setenv("FASTSCORE_SIMD", "")
    assert simd_request() is None
    monkeypatch.setenv("FASTSCORE_SIMD", "avx2")
    assert simd_request() == "avx2"

"""The thread policy (fastscore._threads): defaults from the environment, the bound on
counts, effective_threads, the scoped BLAS limit and set_num_threads restoring BLAS."""

import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

import fastscore
from fastscore import _threads
from fastscore._threads import effective_threads, max_threads


def blas_counts():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


@pytest.fixture
def fresh_setting():
    """Run with no set_num_threads in effect, and leave it that way."""
    fastscore.set_num_threads(None)
    yield
    fastscore.set_num_threads(None)


def run_python(code, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("FASTSCORE_NUM_THREADS", "OMP_NUM_THREADS")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


def test_bound_is_a_multiple_of_the_cores():
    assert max_threads() == max(16, 4 * _threads.available_cores())


@pytest.mark.parametrize("make", [
    lambda n: fastscore.set_num_threads(n),
    lambda n: fastscore.GaussianKDE(0.5, n_threads=n),
    lambda n: fastscore.nn.MLP((3, 2), n_threads=n),
    lambda n: fastscore.patches.PatchOperator((8, 8), 3, n_threads=n),
    lambda n: fastscore.optim.Adam(np.zeros(3), n_threads=n),
])
@pytest.mark.parametrize("n", [1000, 100000, 2**31, 2**80])
def test_huge_counts_are_a_value_error_naming_the_argument(make, n):
    with pytest.raises(ValueError, match=r"`(n|n_threads)` must be at most \d+ .*got "
                       + str(n)):
        make(n)


def test_kde_at_the_bound_runs_and_agrees(fresh_setting):
    rng = np.random.default_rng(0)
    X, Q = rng.standard_normal((300, 2)), rng.standard_normal((40, 2))
    one = fastscore.GaussianKDE(0.5, n_threads=1).fit(X).score(Q)
    many = fastscore.GaussianKDE(0.5, n_threads=max_threads()).fit(X).score(Q)
    np.testing.assert_array_equal(one, many)


def test_effective_threads(fresh_setting):
    with fastscore.set_num_threads(2):
        assert effective_threads(None) == 2
        assert effective_threads(None, 0) == 1
        assert effective_threads(None, 1) == 1
        assert effective_threads(None, 10**9) == 2
        assert effective_threads(3, 10**9) == 3
        assert effective_threads(-1, None) == _threads.available_cores()


def test_environment_default_in_a_fresh_process():
    out = run_python("import fastscore; print(fastscore.get_num_threads())",
                     FASTSCORE_NUM_THREADS="3")
    assert out.stdout.strip() == "3", out.stderr


@pytest.mark.parametrize("env, expected", [
    ({"FASTSCORE_NUM_THREADS": "3"}, 3),
    ({"OMP_NUM_THREADS": "3"}, 3),
    ({"OMP_NUM_THREADS": "3,2"}, 3),                     # nested levels: the first
    ({"FASTSCORE_NUM_THREADS": "1", "OMP_NUM_THREADS": "3"}, 1),
    ({"FASTSCORE_NUM_THREADS": "-1"}, None),             # all cores
    ({}, None),
])
def test_environment_sets_the_default(monkeypatch, fresh_setting, env, expected):
    monkeypatch.delenv("FASTSCORE_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fastscore.set_num_threads(None)                      # re-read the environment
    assert fastscore.get_num_threads() == (expected or _threads.available_cores())


@pytest.mark.parametrize("variable", ["FASTSCORE_NUM_THREADS", "OMP_NUM_THREADS"])
@pytest.mark.parametrize("value, message", [
    ("1000", r"must be at most \d+ .*got 1000"),
    (str(2**31), r"must be at most \d+ .*got 2147483648"),
    ("0", "not 0"),
    ("lots", "must be an integer; got 'lots'"),
])
def test_bad_environment_is_a_clear_error(monkeypatch, fresh_setting, variable, value,
                                          message):
    monkeypatch.delenv("FASTSCORE_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(variable, value)
    fastscore.set_num_threads(None)
    kde = fastscore.GaussianKDE(0.5).fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=variable + ".*" + message):
        kde.score(np.zeros((2, 2)))
    monkeypatch.delenv(variable)
    fastscore.set_num_threads(None)
    assert kde.score(np.zeros((2, 2))).shape == (2, 2)


def test_command_rejects_huge_thread_count(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fastscore.cli", "demo", "--quick",
                          "--out", str(tmp_path), "--threads", "1000"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "`--threads` must be at most" in out.stderr and "got 1000" in out.stderr


def test_set_num_threads_restores_blas(fresh_setting):
    before = blas_counts()
    with fastscore.set_num_threads(1):
        assert fastscore.get_num_threads() == 1
        assert all(n == 1 for n in blas_counts())
    assert blas_counts() == before
    fastscore.set_num_threads(1)
    fastscore.set_num_threads(1)                 # a second call keeps the first originals
    assert all(n == 1 for n in blas_counts())
    fastscore.set_num_threads(None)
    assert blas_counts() == before
    assert fastscore.get_num_threads() == _threads._default_threads()


def test_set_num_threads_context_restores_previous_setting(fresh_setting):
    fastscore.set_num_threads(1)
    with fastscore.set_num_threads(2):
        assert fastscore.get_num_threads() == 2
    assert fastscore.get_num_threads() == 1
    assert all(n == 1 for n in blas_counts())


def test_scoped_blas_limit_nests_and_restores():
    scope = _threads.single_threaded_blas
    if not scope.available:
        pytest.skip("no BLAS behind scipy that threadpoolctl can control")
    before = blas_counts()
    with scope:
        with scope:
            pass
        assert 1 in blas_counts()                # still pinned after the inner exit
    assert blas_counts() == before

import io
import os
import subprocess
import sys

import pytest

import fastscore
from fastscore._config import resolve_n_threads
from fastscore._threads import available_cores


def blas_counts():
    import threadpoolctl

    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


def global_threads():
    """What a test may change: the kernels' thread setting and every BLAS thread count."""
    return fastscore.get_num_threads(), blas_counts()


@pytest.fixture
def thread_state():
    """The global thread state before the test (which asserts that it gave it back); put
    back here too if the test failed half-way, so later tests do not inherit it."""
    before = global_threads()
    yield before
    if global_threads() != before:
        fastscore.set_num_threads(None)


def test_set_and_get(thread_state):
    cores = available_cores()
    with fastscore.set_num_threads(1):
        assert fastscore.get_num_threads() == 1
        with fastscore.set_num_threads(-1):             # all cores
            assert fastscore.get_num_threads() == cores
            assert resolve_n_threads(None) == cores
        assert fastscore.get_num_threads() == 1         # the inner handle gave 1 back
    assert resolve_n_threads(3) == 3
    assert resolve_n_threads(-2) == max(1, cores - 1)
    assert global_threads() == thread_state


def test_set_caps_blas_and_gives_the_counts_back(thread_state):
    import threadpoolctl

    assert blas_counts(), "threadpoolctl finds no BLAS"
    # BLAS at a count that is neither 1 nor the kernels' default, so that a handle giving
    # BLAS the kernels' count instead of its own is seen
    own = fastscore.get_num_threads() + 1
    with threadpoolctl.threadpool_limits(limits=own, user_api="blas"):
        assert blas_counts() == [own] * len(blas_counts())
        with fastscore.set_num_threads(1):
            assert all(n == 1 for n in blas_counts())
            with fastscore.set_num_threads(2):
                assert all(n == 2 for n in blas_counts())
            assert all(n == 1 for n in blas_counts())
        assert blas_counts() == [own] * len(blas_counts())
    assert global_threads() == thread_state


def test_openmp_is_built_in_where_ci_requires_it():
    """.ci/run builds with GCC and sets FASTSCORE_REQUIRE_OPENMP=1: a build that lost
    OpenMP (a failed compiler probe in setup.py) must fail there, not run on one thread."""
    if os.environ.get("FASTSCORE_REQUIRE_OPENMP", "") in ("", "0"):
        pytest.skip("FASTSCORE_REQUIRE_OPENMP is not set (CI sets it for its GCC builds)")
    assert fastscore.openmp_enabled(), "fastscore was built without OpenMP"


@pytest.mark.parametrize("bad, exc, match", [
    (0, ValueError, r"`n` must be a positive or negative integer, not 0"),
    (1.5, TypeError, r"`n` must be an integer"),
    (True, TypeError, r"`n` must be an integer"),
])
def test_bad_thread_counts(bad, exc, match):
    with pytest.raises(exc, match=match):
        fastscore.set_num_threads(bad)


def run_python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full)


def test_environment_default():
    out = run_python("import fastscore; print(fastscore.get_num_threads())",
                     FASTSCORE_NUM_THREADS="1")
    assert out.stdout.strip() == "1"
    bad = run_python("import fastscore; fastscore.get_num_threads()",
                     FASTSCORE_NUM_THREADS="many")
    assert "FASTSCORE_NUM_THREADS must be an integer; got 'many'" in bad.stderr


def test_import_is_light():
    out = run_python("import sys, fastscore; "
                     "print(sorted(m for m in ('scipy', 'fastscore.patches', 'torch', "
                     "'matplotlib', 'tqdm') if m in sys.modules))")
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_show_config():
    buf = io.StringIO()
    fastscore.show_config(file=buf)
    text = buf.getvalue()
    for word in ("fastscore", "numpy", "SIMD", "OpenMP", "threads"):
        assert word in text
    assert isinstance(fastscore.openmp_enabled(), bool)
    lines = dict(line.split(None, 1) for line in text.splitlines() if line.strip())
    assert lines["OpenMP"] == ("enabled" if fastscore.openmp_enabled() else "disabled")
    from fastscore._config import simd_report

    report = simd_report()
    assert lines["SIMD"].startswith(", ".join(f"{n} {b}" for n, b in report["kernels"].items()))
    assert f"CPU {report['cpu']}" in lines["SIMD"]
    assert lines["threads"].startswith(f"{fastscore.get_num_threads()} ")
    assert fastscore.__version__ in text


def test_lazy_attributes():
    assert fastscore.PatchOperator is fastscore.patches.PatchOperator
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = fastscore.nonexistent
    assert "PatchOperator" in dir(fastscore)

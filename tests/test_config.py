import io
import subprocess
import sys

import pytest

import fastscore
from fastscore._config import resolve_n_threads


@pytest.fixture
def restore_threads():
    before = fastscore.get_num_threads()
    yield
    fastscore.set_num_threads(before)
    fastscore.set_num_threads(None)     # and give BLAS its own counts back


def test_set_and_get(restore_threads):
    fastscore.set_num_threads(1)
    assert fastscore.get_num_threads() == 1
    fastscore.set_num_threads(-1)               # all cores
    assert fastscore.get_num_threads() >= 1
    assert resolve_n_threads(None) == fastscore.get_num_threads()
    assert resolve_n_threads(3) == 3


def test_set_caps_blas(restore_threads):
    import threadpoolctl

    fastscore.set_num_threads(1)
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)


@pytest.mark.parametrize("bad, exc, match", [
    (0, ValueError, r"`n` must be a positive or negative integer, not 0"),
    (1.5, TypeError, r"`n` must be an integer"),
    (True, TypeError, r"`n` must be an integer"),
])
def test_bad_thread_counts(bad, exc, match):
    with pytest.raises(exc, match=match):
        fastscore.set_num_threads(bad)


def run_python(code, **env):
    import os
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
    assert fastscore.__version__ in text


def test_lazy_attributes():
    assert fastscore.PatchOperator is fastscore.patches.PatchOperator
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = fastscore.nonexistent
    assert "PatchOperator" in dir(fastscore)

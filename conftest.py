"""Make the test suite import the fastscore it is meant to test.

``python -m pytest`` puts the current folder first on ``sys.path``, and pytest puts the
folder of this file there too: from a clone whose extensions are not built, ``import
fastscore`` would find the source tree and fail on its compiled modules. When the source
tree has no built extensions, it is taken off ``sys.path`` so that the installed fastscore
is tested; when there is none either, the run stops with one line saying what to do. With
the extensions built in place (``pip install -e .`` or ``python setup.py build_ext
--inplace``) the source tree is used.
"""

import glob
import importlib.machinery
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))


def _built_in_place():
    """True when every fastscore/_ext/<name>.pyx has its compiled module beside it."""
    ext = os.path.join(ROOT, "fastscore", "_ext")
    names = [os.path.splitext(os.path.basename(p))[0]
             for p in glob.glob(os.path.join(ext, "*.pyx"))]
    return bool(names) and all(
        any(glob.glob(os.path.join(ext, name + suffix))
            for suffix in importlib.machinery.EXTENSION_SUFFIXES) for name in names)


def _use_installed_package():
    sys.path[:] = [p for p in sys.path
                   if os.path.abspath(p or os.curdir) != ROOT]
    for name in [m for m in sys.modules if m == "fastscore" or m.startswith("fastscore.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("fastscore")
    if spec is None or spec.origin is None:
        return (f"fastscore's compiled extensions are not built in {ROOT} and no installed "
                "fastscore was found: run `pip install -e .` (or `python setup.py "
                "build_ext --inplace`) first.")
    return None


_PROBLEM = None if _built_in_place() else _use_installed_package()


def pytest_configure(config):
    if _PROBLEM:
        pytest.exit(_PROBLEM, returncode=4)

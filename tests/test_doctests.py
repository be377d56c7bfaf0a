"""The examples in the docstrings run and show what they claim, on the fastscore under test
(the source tree built in place, or the installed package) — the same examples as
``python -m pytest --doctest-modules fastscore``, with the same option flags."""

import doctest
import importlib
import io
import pkgutil

import pytest

import fastscore

# the flags of [tool.pytest.ini_options] doctest_optionflags in pyproject.toml
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name):
    """The docstrings of module `name` (and of what it defines) that hold examples."""
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder().find(module, name) if test.examples]


def _modules_with_examples():
    names = ["fastscore"] + [m.name for m in
                             pkgutil.walk_packages(fastscore.__path__, "fastscore.")]
    return [name for name in sorted(names) if _examples(name)]


MODULES = _modules_with_examples()


def test_examples_are_found():
    # a broken finder (or a package without examples) must not pass silently
    assert {"fastscore.patches", "fastscore.kde", "fastscore.noise"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in _examples(name):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, report.getvalue()

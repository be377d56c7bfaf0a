"""Hypothesis profiles of the property battery (``tests/test_properties.py``), and the
``openmp_build`` fixture of the tests that compare thread counts.

``ci`` (default): a budget that keeps the whole battery within about a minute on 2 cores,
derandomized (the same cases on every run: no new random failures in CI).
``long``: at least 10 000 cases per entry point, for a run by hand or a nightly job:
``python -m pytest tests/test_properties.py --hypothesis-profile=long``.
``chunk``: 1 000 cases, to run ``long`` as ten runs with ``--hypothesis-seed=0..9`` on a
busy machine. ``dev``: 5 cases, while editing the strategies.

Tests with their own ``@settings(max_examples=...)`` keep their budget in every profile.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=30, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=10_000, **_COMMON)
settings.register_profile("chunk", max_examples=1_000, **_COMMON)
settings.register_profile("dev", max_examples=5, **_COMMON)
settings.load_profile("ci")


#: Set by CI (.ci/run), whose GCC builds must have OpenMP: there a build without it fails
#: the thread tests instead of skipping them.
REQUIRE_OPENMP = os.environ.get("FASTSCORE_REQUIRE_OPENMP", "") not in ("", "0")


@pytest.fixture
def openmp_build():
    """For tests comparing kernel thread counts: without OpenMP every count runs one
    thread and such a comparison proves nothing, so it is skipped, saying why (a build
    with a compiler that has no OpenMP, e.g. Apple clang) -- or fails where CI requires
    OpenMP."""
    import fastscore

    if not fastscore.openmp_enabled():
        message = ("fastscore was built without OpenMP: every thread count runs one "
                   "thread, so thread counts cannot be compared")
        if REQUIRE_OPENMP:
            pytest.fail(message + " (FASTSCORE_REQUIRE_OPENMP is set)")
        pytest.skip(message)

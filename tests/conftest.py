"""Hypothesis profiles of the property battery (``tests/test_properties.py``).

``ci`` (default): a budget that keeps the whole battery within about a minute on 2 cores,
derandomized (the same cases on every run: no new random failures in CI).
``long``: at least 10 000 cases per entry point, for a run by hand or a nightly job:
``python -m pytest tests/test_properties.py --hypothesis-profile=long``.
``chunk``: 1 000 cases, to run ``long`` as ten runs with ``--hypothesis-seed=0..9`` on a
busy machine. ``dev``: 5 cases, while editing the strategies.

Tests with their own ``@settings(max_examples=...)`` keep their budget in every profile.
"""

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=30, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=10_000, **_COMMON)
settings.register_profile("chunk", max_examples=1_000, **_COMMON)
settings.register_profile("dev", max_examples=5, **_COMMON)
settings.load_profile("ci")

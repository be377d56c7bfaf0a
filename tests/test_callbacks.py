"""The one callback convention: ``callback(k, x, info) -> bool``, ``True`` (also NumPy's)
stops, ``None``/``False`` go on, anything else is a ``TypeError`` naming the callback."""

import numpy as np
import pytest

from fastscore import sampling
from fastscore._diffusion import probability_flow
from fastscore.operators import Identity
from fastscore.prior import tv_prior
from fastscore.reconstruct import map_estimate


def _runners():
    y = np.zeros((8, 8))
    prior = tv_prior(beta=1.0)

    return {
        "langevin": lambda cb: sampling.langevin(lambda x: -x, np.zeros((2, 3)), 10, 0.1,
                                                 rng=0, callback=cb),
        "map_estimate": lambda cb: map_estimate(y, Identity(y.shape), 0.1, prior,
                                                n_steps=10, callback=cb),
        "probability_flow": lambda cb: probability_flow(lambda x, s: -x / (1 + s * s),
                                                        np.geomspace(1.0, 0.01, 11),
                                                        np.ones((1, 4)), callback=cb),
    }


@pytest.mark.parametrize("name", ["langevin", "map_estimate", "probability_flow"])
def test_true_stops_and_none_goes_on(name):
    run = _runners()[name]
    for stop in (True, np.True_):
        calls = []
        run(lambda k, x, info, calls=calls, stop=stop: calls.append(k) or stop)
        assert len(calls) == 1, (name, stop, calls)
    calls = []
    run(lambda k, x, info: calls.append(k))            # returns None: never stops
    assert len(calls) >= 10
    calls = []
    run(lambda k, x, info: calls.append(k) or np.False_)
    assert len(calls) >= 10


@pytest.mark.parametrize("name", ["langevin", "map_estimate", "probability_flow"])
def test_other_return_values_are_a_clear_error(name):
    run = _runners()[name]
    for bad in (1, "stop", np.zeros(3)):
        with pytest.raises(TypeError, match="callback.*must return a bool"):
            run(lambda k, x, info, bad=bad: bad)

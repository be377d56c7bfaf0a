"""The Cython bindings (fastscore/_ext): C limits read from the headers, a kernel's status
mapped to an exception naming it, and the MLP profile only in builds that have it."""

import os
import re

import numpy as np
import pytest

from fastscore._ext import kde, mlp
from fastscore.nn import MLP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")


def header_constant(header, name):
    with open(os.path.join(CSRC, header)) as f:
        return int(re.search(rf"^#define {name} (\d+)", f.read(), re.MULTILINE).group(1))


@pytest.mark.skipif(not os.path.isdir(CSRC), reason="needs the source tree (csrc/)")
def test_limits_are_the_headers():
    assert mlp.MAX_LAYERS == header_constant("mlp.h", "FS_MLP_MAX_LAYERS")
    assert mlp.PROFILE_PHASES == header_constant("mlp.h", "FS_MLP_PROFILE_PHASES")
    assert kde.ALIGN == header_constant("kde.h", "FS_KDE_ALIGN")


def test_deepest_network_runs_and_one_more_layer_is_refused():
    """MAX_LAYERS linear layers fill every per-layer array of the binding and the kernels
    (widths, activations, offsets): the deepest network computes what a plain NumPy pass
    does; one more layer is a ValueError before any C array is touched."""
    depth = mlp.MAX_LAYERS
    net = MLP((2,) * (depth + 1), ["tanh"] * (depth - 1) + ["identity"], dtype=np.float64,
              rng=0, n_threads=1)
    x = np.random.default_rng(1).standard_normal((5, 2))
    a = x
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        a = a @ w + b
        a = np.tanh(a) if k < depth - 1 else a
    np.testing.assert_allclose(net.predict(x), a, rtol=1e-12, atol=1e-12)
    assert net.jacobian_diagonal(x).shape == (5, 2)
    with pytest.raises(ValueError, match=f"at most {depth} layers"):
        MLP((2,) * (depth + 2), ["tanh"] * depth + ["identity"])


def test_kernel_status_is_an_exception_naming_the_kernel():
    z = np.zeros(4, np.float32)
    with pytest.raises(RuntimeError, match=r"^fs_mlp_activation: inconsistent sizes "
                                           r"reached the C kernel"):
        mlp.activation(99, 0.0, z, np.empty_like(z), None)      # no such activation code


def test_profile_only_in_a_profiling_build():
    net = mlp.Net([3, 4, 3], [1, 0], 0.0)
    profile = np.zeros(mlp.PROFILE_PHASES * 2)
    if mlp.PROFILE_ENABLED:
        net.set_profile(profile)
        net.set_profile(None)
    else:
        with pytest.raises(RuntimeError, match="FASTSCORE_MLP_PROFILE=1"):
            net.set_profile(profile)
    net.set_profile(None)

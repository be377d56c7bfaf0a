"""The radial-MRI example through sigpy's NUFFT (when sigpy is installed)."""

import os
import sys

import numpy as np
import pytest

from fastscore import data, metrics
from fastscore.prior import GaussianPatchScore, PatchPrior

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "examples"))


@pytest.mark.slow      # sigpy compiles its NUFFT with numba on first use (~15 s)
def test_radial_nufft_example_reconstructs_better_than_gridding():
    pytest.importorskip("sigpy")
    import radial_mri_nufft as example

    patches = data.extract_patches(example.random_ellipses(40, 48, 0), 3, 20000, rng=0)
    prior = PatchPrior(GaussianPatchScore().fit(patches), 3)
    x, gridding, estimate, mismatch = example.reconstruct(prior, n=32, n_spokes=16,
                                                          n_steps=5)
    assert mismatch < 1e-6
    assert np.isrealobj(estimate) and estimate.shape == x.shape
    assert metrics.psnr(x, estimate) > metrics.psnr(x, gridding) + 1.0

"""Multi-coil MRI: SENSE against sigpy, coil maps, 3-D masks, preconditioner, bad input."""

import numpy as np
import pytest

from fastscore import data
from fastscore.operators import (MRI, SENSE, birdcage_maps, cartesian_mask, cartesian_mask_3d,
                                 estimate_coil_maps)


def _crandn(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(16, 12), (9, 7), (6, 8, 10), (5, 7, 6)])
def test_sense_matches_sigpy(shape):
    sigpy_mri = pytest.importorskip("sigpy.mri")
    rng = np.random.default_rng(0)
    maps = _crandn(rng, (4,) + shape)
    mask = rng.random(shape) < 0.4
    mask[tuple(n // 2 for n in shape)] = True
    A = SENSE(maps, mask)
    # sigpy centres both image and k-space (fftshift F ifftshift); fastscore centres only
    # k-space, so fastscore's A(x; s) = sigpy's A(fftshift(x); fftshift(s))
    axes = tuple(range(1, len(shape) + 1))
    S = sigpy_mri.linop.Sense(np.fft.fftshift(maps, axes=axes), weights=mask.astype(float))
    x, y = _crandn(rng, shape), _crandn(rng, (4,) + shape)
    np.testing.assert_allclose(A.forward(x), S * np.fft.fftshift(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(A.adjoint(y), np.fft.ifftshift(S.H * y), rtol=0, atol=1e-12)


def test_one_coil_of_ones_is_the_complex_mri_operator():
    rng = np.random.default_rng(1)
    mask = cartesian_mask((12, 10), 2, 0.2, rng=0)
    A, B = SENSE(np.ones((1, 12, 10)), mask), MRI(mask, complex_image=True)
    x, y = _crandn(rng, (12, 10)), _crandn(rng, (12, 10))
    np.testing.assert_allclose(A.forward(x)[0], B.forward(x), atol=1e-13)
    np.testing.assert_allclose(A.adjoint(y[None]), B.adjoint(y), atol=1e-13)


@pytest.mark.parametrize("shape", [(32, 32), (8, 16, 16)])
def test_norm_bound_is_tight_and_above_the_estimate(shape):
    mask = (cartesian_mask(shape, 4, 0.1, rng=0) if len(shape) == 2
            else cartesian_mask_3d(shape, 4, 0.1, rng=0))
    A = SENSE(birdcage_maps(shape, 6), mask)
    estimate = A.estimate_norm_squared(method="power", tol=1e-7)
    assert estimate <= A.norm_squared() * (1 + 1e-9)
    assert A.norm_squared() == pytest.approx(1.0, abs=1e-5)   # RSS-normalised maps
    assert estimate > 0.97 * A.norm_squared()
    full = SENSE(birdcage_maps(shape, 6), np.ones(shape, dtype=bool))
    assert full.estimate_norm_squared(method="power", tol=1e-9) == pytest.approx(
        full.norm_squared(), rel=1e-6)


@pytest.mark.parametrize("n_coils", [1, 3, 8])
def test_birdcage_maps_are_rss_normalised_and_smooth(n_coils):
    maps = birdcage_maps((40, 48), n_coils)
    assert maps.shape == (n_coils, 40, 48) and maps.dtype == np.complex64
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, rtol=1e-5)
    # smooth: neighbouring pixels differ little
    assert np.max(np.abs(np.diff(maps, axis=-1))) < 0.2
    maps3 = birdcage_maps((6, 16, 16), n_coils, dtype=np.complex128)
    assert maps3.shape == (n_coils, 6, 16, 16)
    np.testing.assert_allclose(np.sum(np.abs(maps3) ** 2, axis=0), 1.0, rtol=1e-12)
    if n_coils > 1:          # coils differ: the maps are not all the same
        assert np.abs(maps[0] - maps[1]).max() > 0.1


@pytest.mark.parametrize("shape", [(64, 64), (16, 32, 32)])
def test_estimated_maps_recover_the_true_ones_on_the_object(shape):
    true = birdcage_maps(shape, 8, dtype=np.complex128)
    x = data.shepp_logan(shape)
    mask = (cartesian_mask(shape, 4, 0.16, rng=0) if len(shape) == 2
            else cartesian_mask_3d(shape, 3, 0.25, rng=0))
    y = SENSE(true, mask).forward(x.astype(np.complex128))
    est = estimate_coil_maps(y)
    inside = x > 0.05
    # magnitudes agree on the object (the object is real and positive: phase too)
    ratio = np.abs(est)[:, inside] / np.abs(true)[:, inside]
    assert np.median(np.abs(ratio - 1)) < 0.06
    phase = np.angle(est[:, inside] * true[:, inside].conj())
    assert np.median(np.abs(phase)) < 0.05
    np.testing.assert_allclose(np.sum(np.abs(est[:, inside]) ** 2, axis=0), 1.0, rtol=1e-6)


def test_cartesian_mask_3d_layout():
    mask = cartesian_mask_3d((8, 20, 30), 4, 0.1, rng=0)
    assert mask.shape == (8, 20, 30) and mask.dtype == bool
    assert (mask == mask[0]).all()                            # full readout lines
    assert mask[0].sum() == round(20 * 30 / 4)
    assert mask[0, 9:11, 14:17].all()                         # 2 x 3 centre box
    np.testing.assert_array_equal(mask, cartesian_mask_3d((8, 20, 30), 4, 0.1, rng=0))


@pytest.mark.parametrize("shape", [(12, 10), (4, 6, 8)])
def test_gram_preconditioner_is_exact_for_a_full_mask_and_none_otherwise(shape):
    rng = np.random.default_rng(2)
    maps = _crandn(rng, (3,) + shape)
    A = SENSE(maps, np.ones(shape, dtype=bool))
    weight, shift = 7.0, 0.5
    M = A.gram_preconditioner(weight, shift)
    v = _crandn(rng, shape)
    np.testing.assert_allclose(M(weight * A.adjoint(A.forward(v)) + shift * v), v, atol=1e-12)
    assert M(v.astype(np.complex64)).dtype == np.complex64
    partial = np.ones(shape, dtype=bool)
    partial[0] = False
    assert SENSE(maps, partial).gram_preconditioner(weight, shift) is None


def test_bad_input_names_the_argument():
    maps = birdcage_maps((16, 16), 4)
    with pytest.raises(ValueError, match="`mask`.*shape"):
        SENSE(maps, np.ones((16, 15), dtype=bool))
    with pytest.raises(ValueError, match="`mask` samples nothing"):
        SENSE(maps, np.zeros((16, 16), dtype=bool))
    with pytest.raises(ValueError, match="`mask` samples nothing"):
        MRI(np.zeros((16, 16), dtype=bool))
    with pytest.raises(TypeError, match="`mask`"):
        SENSE(maps, np.ones((16, 16)))
    with pytest.raises(ValueError, match="`coil_maps`"):
        SENSE(maps[0], np.ones((16, 16), dtype=bool))
    with pytest.raises(ValueError, match="`coil_maps`"):
        SENSE(np.full((2, 4, 4), np.nan), np.ones((4, 4), dtype=bool))
    A = SENSE(maps, np.ones((16, 16), dtype=bool))
    with pytest.raises(ValueError, match="`y` must have shape"):
        A.adjoint(np.zeros((3, 16, 16), complex))
    with pytest.raises(ValueError, match="`x` must have shape"):
        A.forward(np.zeros((15, 16), complex))
    with pytest.raises(ValueError, match="`kspace`"):
        estimate_coil_maps(np.zeros((2, 8, 8), complex))
    with pytest.raises(ValueError, match="`kspace`"):
        estimate_coil_maps(np.ones((8, 8), complex))

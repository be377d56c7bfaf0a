"""Operators from elsewhere: FunctionOperator, check_adjoint, scipy LinearOperator round trips."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg as sla
from hypothesis import given, settings, strategies as st

from fastscore.operators import (MRI, SENSE, Blur, FunctionOperator, LinearOperator,
                                 birdcage_maps, cartesian_mask, from_scipy, gaussian_kernel)


def _matrix_operator(D, shape_in, shape_out, **kw):
    return FunctionOperator(lambda x: (D @ x.ravel()).reshape(shape_out),
                            lambda y: (D.conj().T @ y.ravel()).reshape(shape_in),
                            shape_in, shape_out, **kw)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 12), h=st.integers(1, 5), w=st.integers(1, 5),
       complex_=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_function_operator_adjoint_and_batches(m, h, w, complex_, seed):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, h * w))
    if complex_:
        D = D + 1j * rng.standard_normal((m, h * w))
    A = _matrix_operator(D, (h, w), (m,), complex_range=complex_, complex_domain=complex_)
    assert A.check_adjoint(n_trials=3) < 1e-12
    x = rng.standard_normal((3, h, w))
    np.testing.assert_allclose(A.forward(x), x.reshape(3, -1) @ D.T, atol=1e-12)
    assert A.forward(x.astype(np.float32)).dtype == (np.complex64 if complex_ else np.float32)
    assert A.norm_squared() == pytest.approx(np.linalg.norm(D, 2) ** 2, rel=1e-7)


def test_real_image_complex_range_takes_the_real_part_of_the_adjoint():
    rng = np.random.default_rng(1)
    D = rng.standard_normal((7, 6)) + 1j * rng.standard_normal((7, 6))
    A = _matrix_operator(D, (2, 3), (7,), complex_range=True)   # adjoint returns complex
    assert A.check_adjoint() < 1e-13
    y = rng.standard_normal(7) + 1j * rng.standard_normal(7)
    np.testing.assert_allclose(A.adjoint(y).ravel(), (D.conj().T @ y).real, atol=1e-13)


def test_check_adjoint_catches_a_wrong_adjoint():
    D = np.arange(12.0).reshape(3, 4)
    A = FunctionOperator(lambda x: D @ x, lambda y: 2 * D.T @ y, (4,), (3,))
    assert A.check_adjoint() > 0.1
    with pytest.raises(ValueError, match="does not match"):
        A.check_adjoint(tol=1e-6)
    assert MRI(cartesian_mask((8, 8), 2, rng=0)).check_adjoint(tol=1e-12) < 1e-12


@pytest.mark.parametrize("A", [
    Blur(gaussian_kernel(0.6), (6, 5), "zero"),
    MRI(cartesian_mask((6, 6), 2, 0.2, rng=0)),                       # real image, complex data
    MRI(cartesian_mask((6, 6), 2, 0.2, rng=0), complex_image=True),
    SENSE(birdcage_maps((6, 4), 3), cartesian_mask((6, 4), 2, 0.25, rng=0)),
])
def test_as_scipy_is_the_complex_linear_extension_with_its_hermitian_adjoint(A):
    S = A.as_scipy()
    n, m = S.shape[1], S.shape[0]
    dense = S.matmat(np.eye(n))
    dense_h = S.rmatmat(np.eye(m))
    np.testing.assert_allclose(dense_h, dense.conj().T, atol=1e-12)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(A.shape_in)
    np.testing.assert_allclose(S.matvec(x.ravel()), A.forward(x).ravel(), atol=1e-12)
    # round trip: back to a fastscore operator
    B = from_scipy(S, A.shape_in, A.shape_out, complex_domain=A.complex_domain,
                   complex_range=A.complex_range)
    y = A.forward(x)
    np.testing.assert_allclose(B.forward(x), y, atol=1e-12)
    np.testing.assert_allclose(B.adjoint(y), A.adjoint(y), atol=1e-12)
    assert B.check_adjoint() < 1e-12


def test_from_scipy_accepts_matrices_and_checks_shapes():
    M = scipy.sparse.random(5, 8, density=0.5, random_state=0)
    A = LinearOperator.from_scipy(M, (2, 4))
    x = np.arange(8.0).reshape(2, 4)
    np.testing.assert_allclose(A.forward(x), M @ x.ravel())
    assert A.shape_out == (5,) and not A.complex_domain
    with pytest.raises(ValueError, match="`shape_in`"):
        from_scipy(M, (3, 3))
    # scipy solvers run on the converted operator
    x_ls = sla.lsqr(A.as_scipy(), M @ x.ravel(), atol=1e-12, btol=1e-12)[0]
    np.testing.assert_allclose(M @ x_ls, M @ x.ravel(), atol=1e-8)


def test_bad_callables():
    with pytest.raises(TypeError, match="`forward` must be callable"):
        FunctionOperator(None, lambda y: y, (3,), (3,))
    A = FunctionOperator(lambda x: x[:2], lambda y: y, (3,), (3,))
    with pytest.raises(ValueError, match="`forward` returned shape"):
        A.forward(np.ones(3))
    B = FunctionOperator(lambda x: x + 1j, lambda y: y, (3,), (3,))
    with pytest.raises(TypeError, match="complex_range=False"):
        B.forward(np.ones(3))

"""Tolerances for results that BLAS tiling or SIMD width may round differently.

A dense product's rounding depends on how the BLAS blocks it (batch size, CPU kernel:
``OPENBLAS_CORETYPE``, AVX2 vs AVX-512) and an elementwise kernel's on the SIMD clone that
runs it, so two evaluations that are equal in exact arithmetic may differ by a few units in
the last place of the largest terms. Tests compare those with :func:`assert_close_ulp`;
bit-equality is asserted only where the code promises it (same inputs through the same
path: thread counts, layouts, repeated calls).
"""

import numpy as np


def assert_close_ulp(actual, desired, n_ulp, *, scale=None, err_msg=""):
    """``|actual - desired| <= n_ulp · eps(dtype) · scale`` elementwise.

    `scale` (default ``max |desired|``) is the magnitude of the terms whose rounding can
    differ: a row's entries share the rounding of their common partial sums, so errors
    are relative to the largest value, not to each (possibly cancelled) entry.
    """
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape and actual.dtype == desired.dtype, \
        (actual.shape, actual.dtype, desired.shape, desired.dtype)
    eps = np.finfo(desired.dtype).eps
    if scale is None:
        scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=0, atol=n_ulp * eps * scale,
                               err_msg=err_msg or f"more than {n_ulp} ulp of {scale:.3g}")

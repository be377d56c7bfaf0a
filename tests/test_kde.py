"""fastscore.kde: GaussianKDE score / log-density against a NumPy reference and finite
differences, far-away queries, leave-one-out, thread invariance, input handling, errors.

Tolerances: float64 matches the reference to 1e-9 relative (elementwise, with an absolute
floor of 1e-12 times the largest score). float32 is compared with the float64 evaluation
of the same float32 data by ``relative_score_error`` (max_i |s_i - r_i| / max(|r_i|, 1/σ)),
at most 1e-5 for d = 1, 2 (measured ~1e-7), 2e-5 for d = 9 and 1e-4 for d = 25. At d = 9
the float32 rounding of |q - x|²/(2σ²) ~ 100 dominates: with T = 2e4, σ = 0.1, the worst of
256 standard-normal queries is 3e-6 to 1.2e-5 over seeds 0-11, for every SIMD body and for
the pack in row order as in k-d order (the order only reshuffles which query is worst), so
1e-5 would be near failing.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscore import GaussianKDE
from reference.kde import kde_score_log_density, relative_score_error


def _data(rng, n_points, n_queries, dim, dtype=np.float64):
    X = rng.standard_normal((n_points, dim)).astype(dtype)
    Q = rng.standard_normal((n_queries, dim)).astype(dtype)
    return X, Q


def _assert_close64(actual, expected):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12 * scale)


# sizes hit: specialised (1, 2, 3, 4, 8, 9) and generic (5, 25) dimensions, partial last
# SIMD vector, several training tiles, query counts that are not a multiple of a block
@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5, 8, 9, 25])
@pytest.mark.parametrize("n_points", [1, 37, 3001])
def test_matches_reference_float64(dim, n_points):
    rng = np.random.default_rng(dim * 1000 + n_points)
    X, Q = _data(rng, n_points, 53, dim)
    bandwidth = 0.4 * np.sqrt(dim)
    kde = GaussianKDE(bandwidth).fit(X)
    score, log_density = kde.score_and_log_density(Q)
    ref_score, ref_log_density = kde_score_log_density(X, Q, bandwidth)
    assert score.dtype == np.float64 and score.shape == Q.shape
    assert log_density.dtype == np.float64 and log_density.shape == (Q.shape[0],)
    _assert_close64(score, ref_score)
    np.testing.assert_allclose(log_density, ref_log_density, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dim, tol", [(1, 1e-5), (2, 1e-5), (9, 2e-5), (25, 1e-4)])
def test_matches_reference_float32(dim, tol):
    rng = np.random.default_rng(dim)
    X, Q = _data(rng, 20000, 64, dim, np.float32)
    bandwidth = 0.1 if dim <= 9 else 0.5
    score, log_density = GaussianKDE(bandwidth).fit(X).score_and_log_density(Q)
    ref_score, ref_log_density = kde_score_log_density(X, Q, bandwidth)
    assert score.dtype == np.float32 and log_density.dtype == np.float32
    assert relative_score_error(score, ref_score, bandwidth) <= tol
    np.testing.assert_allclose(log_density, ref_log_density, rtol=1e-5,
                               atol=1e-5 * np.abs(ref_log_density).max())


@pytest.mark.parametrize("dim", [1, 3, 9])
def test_score_is_gradient_of_log_density(dim):
    rng = np.random.default_rng(7)
    X, Q = _data(rng, 500, 20, dim)
    bandwidth = 0.5
    kde = GaussianKDE(bandwidth).fit(X)
    score = kde.score(Q)
    h = 1e-5
    fd = np.empty_like(Q)
    for k in range(dim):
        e = np.zeros(dim)
        e[k] = h
        fd[:, k] = (kde.log_density(Q + e) - kde.log_density(Q - e)) / (2 * h)
    # central differences, h = 1e-5: truncation ~h^2 / sigma^3, rounding ~1e-16 / h;
    # measured ~1e-10 relative
    np.testing.assert_allclose(score, fd, rtol=1e-8, atol=1e-8 * np.abs(score).max())


def test_log_density_is_normalised_1d():
    rng = np.random.default_rng(3)
    X = rng.gamma(3.0, size=(200, 1))
    grid = np.linspace(X.min() - 5, X.max() + 5, 20001)[:, None]
    p = np.exp(GaussianKDE(0.3).fit(X).log_density(grid))
    assert abs(np.sum(p) * (grid[1, 0] - grid[0, 0]) - 1) < 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_far_away_query_points_to_nearest(dtype):
    rng = np.random.default_rng(5)
    bandwidth = 0.1
    X, _ = _data(rng, 5000, 0, 9, dtype)
    direction = rng.standard_normal(9)
    direction /= np.linalg.norm(direction)
    # 1e4 bandwidths beyond the farthest point in that direction
    q = (X.astype(np.float64) @ direction).max() * direction + 1e4 * bandwidth * direction
    Q = np.stack([q, -q]).astype(dtype)
    kde = GaussianKDE(bandwidth).fit(X)
    score, log_density = kde.score_and_log_density(Q)
    assert np.all(np.isfinite(score)) and np.all(np.isfinite(log_density))
    for i in range(2):
        gap = X.astype(np.float64) - Q[i].astype(np.float64)
        nearest = gap[np.argmin(np.einsum("tk,tk->t", gap, gap))]
        expected = nearest / bandwidth ** 2
        cosine = score[i] @ expected / (np.linalg.norm(score[i]) * np.linalg.norm(expected))
        assert cosine > 1 - (1e-12 if dtype == np.float64 else 1e-6)
        rtol = 1e-9 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(score[i], expected, rtol=rtol)


def test_tiny_bandwidth_and_late_nearest_points():
    # the nearest points come last, so the running maximum moves (rescales) many times
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20000, 2))
    Q = np.zeros((3, 2))
    X = X[np.argsort(-np.einsum("tk,tk->t", X, X))]
    for bandwidth in (1e-3, 0.05, 1.0):
        kde = GaussianKDE(bandwidth).fit(X)
        score, log_density = kde.score_and_log_density(Q)
        ref_score, ref_log_density = kde_score_log_density(X, Q, bandwidth)
        _assert_close64(score, ref_score)
        np.testing.assert_allclose(log_density, ref_log_density, rtol=1e-11)


def test_huge_bandwidth_gives_mean_shift():
    rng = np.random.default_rng(2)
    X, Q = _data(rng, 300, 5, 3)
    bandwidth = 1e4
    score = GaussianKDE(bandwidth).fit(X).score(Q)
    np.testing.assert_allclose(score, (X.mean(axis=0) - Q) / bandwidth ** 2, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [1, 9, 25])
def test_exclude_self_matches_leave_one_out(dtype, dim):
    rng = np.random.default_rng(dim)
    X, _ = _data(rng, 1500, 0, dim, dtype)
    bandwidth = 0.3 * np.sqrt(dim)
    kde = GaussianKDE(bandwidth, exclude_self=True).fit(X)
    score, log_density = kde.score_and_log_density(X)
    ref_score, ref_log_density = kde_score_log_density(X, X, bandwidth, exclude_self=True)
    if dtype == np.float64:
        _assert_close64(score, ref_score)
        np.testing.assert_allclose(log_density, ref_log_density, rtol=1e-10)
    else:
        assert relative_score_error(score, ref_score, bandwidth) <= 1e-4
    # leaving the point out differs from keeping it
    full = GaussianKDE(bandwidth).fit(X).score(X)
    assert not np.allclose(full, score)


def test_exclude_self_two_points_and_duplicates():
    X = np.array([[0.0, 0.0], [1.0, 0.0]])
    score = GaussianKDE(0.5, exclude_self=True).fit(X).score(X)
    np.testing.assert_allclose(score, [[4.0, 0.0], [-4.0, 0.0]])
    X = np.array([[0.0], [0.0], [3.0]])          # a duplicate still counts
    score = GaussianKDE(1.0, exclude_self=True).fit(X).score(X)
    ref, _ = kde_score_log_density(X, X, 1.0, exclude_self=True)
    _assert_close64(score, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("dim, bandwidth", [(9, 0.3), (5, 0.15)])
def test_thread_count_does_not_change_results(dtype, exclude_self, dim, bandwidth):
    # (5, 0.15): generic d, tiles summed partly sparse and partly dense
    rng = np.random.default_rng(0)
    X, Q = _data(rng, 2000, 301, dim, dtype)
    Q = X if exclude_self else Q
    results = [GaussianKDE(bandwidth, exclude_self=exclude_self, n_threads=n).fit(X)
               .score_and_log_density(Q) for n in (1, 2, 4)]
    for score, log_density in results[1:]:
        assert np.array_equal(score, results[0][0])
        assert np.array_equal(log_density, results[0][1])


# Offset data (centre c, spread s, bandwidth sigma): |x|^2 ~ d c^2, so the rounding error
# of the far-point bound |x|^2 - 2 q.x is larger than the exp2 cut-off distance; a bound
# without its rounding margins there skips vectors with weights near 1 and changes the
# score by O(1) (checked by zeroing the margins in kde_simd.tmpl.c). Standard-normal rows:
# the benchmark's data, where the bound skips most vectors.
@pytest.mark.parametrize("dtype, dim, centre, spread, bandwidth, tol", [
    (np.float32, 9, 100.0, 0.05, 0.01, 1e-5),
    (np.float32, 2, 100.0, 0.02, 0.003, 1e-5),
    (np.float32, 9, 0.0, 1.0, 0.1, 1e-5),
    (np.float64, 9, 1e6, 0.01, 1e-3, 1e-12),
    (np.float64, 3, 0.0, 1.0, 0.05, 1e-12),
])
def test_far_point_bound_skips_only_zero_weights(dtype, dim, centre, spread, bandwidth,
                                                  tol):
    rng = np.random.default_rng(3)
    X = (centre + spread * rng.standard_normal((3000, dim))).astype(dtype)
    Q = (centre + spread * rng.standard_normal((200, dim))).astype(dtype)
    kde = GaussianKDE(bandwidth, n_threads=2).fit(X)
    fast = kde.score_and_log_density(Q)
    kde._skip_far = False                       # every distance evaluated
    full = kde.score_and_log_density(Q)
    assert relative_score_error(fast[0], full[0], bandwidth) < tol
    np.testing.assert_allclose(fast[1], full[1], rtol=tol, atol=0)


def test_separate_calls_equal_combined():
    rng = np.random.default_rng(1)
    X, Q = _data(rng, 700, 40, 9, np.float32)
    kde = GaussianKDE(0.4).fit(X)
    score, log_density = kde.score_and_log_density(Q)
    assert np.array_equal(kde.score(Q), score)
    assert np.array_equal(kde.log_density(Q), log_density)


def test_query_layouts_and_dtypes_accepted():
    rng = np.random.default_rng(4)
    X, Q = _data(rng, 400, 30, 3)
    kde = GaussianKDE(0.5).fit(X)
    expected = kde.score(Q)
    big = np.ascontiguousarray(Q).astype(">f8")
    assert np.array_equal(kde.score(big), expected)
    assert np.array_equal(kde.score(np.asfortranarray(Q)), expected)
    wide = np.zeros((30, 6))
    wide[:, ::2] = Q
    assert np.array_equal(kde.score(wide[:, ::2]), expected)
    assert np.array_equal(kde.score(Q.tolist()), expected)
    ints = rng.integers(-2, 3, size=(10, 3))
    assert np.array_equal(kde.score(ints), kde.score(ints.astype(np.float64)))
    kde32 = GaussianKDE(0.5).fit(X.astype(np.float32))
    out = kde32.score(ints)                       # integer queries take the fitted dtype
    assert out.dtype == np.float32
    assert np.array_equal(out, kde32.score(ints.astype(np.float32)))
    assert kde.score(np.empty((0, 3))).shape == (0, 3)
    assert kde.log_density(np.empty((0, 3))).shape == (0,)


def test_fit_copies_and_accepts_layouts():
    rng = np.random.default_rng(6)
    X, Q = _data(rng, 100, 10, 2)
    kde = GaussianKDE(0.5).fit(np.asfortranarray(X))
    expected = kde.score(Q)
    X_big = X.astype(">f8")
    assert np.array_equal(GaussianKDE(0.5).fit(X_big).score(Q), expected)
    mutable = X.copy()
    kde = GaussianKDE(0.5).fit(mutable)
    mutable[:] = 0
    assert np.array_equal(kde.score(Q), expected)
    assert not kde.X_.flags.writeable and kde.n_points_ == 100 and kde.n_dims_ == 2
    assert GaussianKDE(0.5).fit(X.astype(np.int64)).X_.dtype == np.float64
    assert "GaussianKDE(bandwidth=0.5" in repr(kde)


@settings(max_examples=25, deadline=None)
@given(n_points=st.integers(1, 300), n_queries=st.integers(1, 40), dim=st.integers(1, 11),
       log_bandwidth=st.floats(-2, 1), seed=st.integers(0, 2 ** 16))
def test_property_matches_reference(n_points, n_queries, dim, log_bandwidth, seed):
    rng = np.random.default_rng(seed)
    X, Q = _data(rng, n_points, n_queries, dim)
    bandwidth = 10.0 ** log_bandwidth
    score, log_density = GaussianKDE(bandwidth).fit(X).score_and_log_density(Q)
    ref_score, ref_log_density = kde_score_log_density(X, Q, bandwidth)
    _assert_close64(score, ref_score)
    np.testing.assert_allclose(log_density, ref_log_density, rtol=1e-10,
                               atol=1e-10 * np.abs(ref_log_density).max())


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bandwidth", [0, -1.0, np.nan, np.inf])
def test_bad_bandwidth(bandwidth):
    with pytest.raises(ValueError, match="`bandwidth`"):
        GaussianKDE(bandwidth)


def test_bandwidth_type_and_too_small_for_float32():
    with pytest.raises(TypeError, match="`bandwidth`"):
        GaussianKDE("0.1")
    X = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"`bandwidth` must be in \[.*\] for float32"):
        GaussianKDE(1e-25).fit(X).score(X)
    with pytest.raises(ValueError, match=r"`bandwidth` must be larger than 1.53e-19 for "
                                         r"float32 data; got 1.2e-19"):
        GaussianKDE(1.2e-19).fit(X).score(X)      # σ² fine, exponent scale overflows
    GaussianKDE(1e-25).fit(X.astype(np.float64)).score(X.astype(np.float64))


@pytest.mark.parametrize("bandwidth", [1e-300, 1e-160, 1e300, 1e160])
def test_bandwidth_out_of_float64_range(bandwidth):
    # σ² underflows / overflows even in float64 (once a ZeroDivisionError)
    with pytest.raises(ValueError, match=r"`bandwidth` must be in \[.*\] for float64"):
        GaussianKDE(bandwidth)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_and_queries(bad):
    X = np.zeros((5, 2))
    X[3, 1] = bad
    with pytest.raises(ValueError, match="`X` must be finite"):
        GaussianKDE(1.0).fit(X)
    kde = GaussianKDE(1.0).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="`Q` must be finite"):
        kde.score(X)
    with pytest.raises(ValueError, match="`Q` must be finite"):
        kde.log_density(X)


def test_empty_and_misshapen_training_set():
    with pytest.raises(ValueError, match="`X` must not be empty"):
        GaussianKDE(1.0).fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="`X` must not be empty"):
        GaussianKDE(1.0).fit(np.zeros((4, 0)))
    with pytest.raises(ValueError, match="`X` must have 2 dimensions"):
        GaussianKDE(1.0).fit(np.zeros(5))
    with pytest.raises(TypeError, match="`X` must be real"):
        GaussianKDE(1.0).fit(np.zeros((3, 2), dtype=complex))
    with pytest.raises(ValueError, match="at least 2 points"):
        GaussianKDE(1.0, exclude_self=True).fit(np.zeros((1, 2)))


def test_wrong_query_dimension():
    kde = GaussianKDE(1.0).fit(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"`Q` must have shape \(n_queries, 3\)"):
        kde.score(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`Q` must have 2 dimensions"):
        kde.score(np.zeros(3))


def test_mismatched_dtypes_name_both():
    kde = GaussianKDE(1.0).fit(np.zeros((5, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="`Q`.*float64.*`X`.*float32"):
        kde.score(np.zeros((2, 3)))
    kde = GaussianKDE(1.0).fit(np.zeros((5, 3)))
    with pytest.raises(TypeError, match="`Q`.*float32.*`X`.*float64"):
        kde.log_density(np.zeros((2, 3), dtype=np.float32))


def test_exclude_self_needs_the_training_points():
    X = np.arange(12.0).reshape(6, 2)
    kde = GaussianKDE(1.0, exclude_self=True).fit(X)
    with pytest.raises(ValueError, match="exclude_self=True, `Q` must be the fitted"):
        kde.score(X[:3])
    with pytest.raises(ValueError, match="other values"):
        kde.score(X + 1)
    kde.score(X.copy())                            # equal values: fine
    with pytest.raises(TypeError, match="`exclude_self`"):
        GaussianKDE(1.0, exclude_self="yes")


def test_overflowing_values_and_unfitted():
    kde = GaussianKDE(1.0).fit(np.zeros((5, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="too large for float32"):
        kde.score(np.full((1, 2), 1e19, dtype=np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        GaussianKDE(1.0).score(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="`n_threads`"):
        GaussianKDE(1.0, n_threads=0)


# -- the pack's k-d order and group boxes (csrc/kde.tmpl.c, "Group boxes") ------------------
def test_group_order_is_a_deterministic_tight_permutation():
    from fastscore._ext import kde as kernels
    from fastscore.kde import _group_order

    rng = np.random.default_rng(8)
    X = rng.standard_normal((5000, 9)).astype(np.float32)
    X[100:140] = X[7]                               # ties: kept in row order
    order = _group_order(X, kernels.GROUP)
    assert np.array_equal(np.sort(order), np.arange(5000))
    assert np.array_equal(order, _group_order(X.copy(), kernels.GROUP))
    tied = order[np.isin(order, np.r_[7, 100:140])]
    assert np.array_equal(tied, np.sort(tied))

    def mean_box_diagonal(rows):
        groups = rows[:rows.shape[0] // 32 * 32].reshape(-1, 32, rows.shape[1])
        return np.linalg.norm(groups.max(axis=1) - groups.min(axis=1), axis=1).mean()

    # groups of the k-d order are tighter than groups of the rows as given (9-D: not much)
    assert mean_box_diagonal(X[order]) < 0.75 * mean_box_diagonal(X)   # measured 0.65
    assert np.array_equal(_group_order(X[:20], 32), np.arange(20))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_order_does_not_change_results(dtype):
    # the pack's k-d order depends on the point set alone (distinct coordinates): a permuted
    # X packs into the same order and gives bit-identical results
    rng = np.random.default_rng(9)
    X, Q = _data(rng, 4000, 60, 9, dtype)
    perm = rng.permutation(4000)
    a = GaussianKDE(0.2).fit(X).score_and_log_density(Q)
    b = GaussianKDE(0.2).fit(X[perm]).score_and_log_density(Q)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# Every SIMD body (forced through FASTSCORE_SIMD, one process each) on data where the group
# boxes skip most groups: clusters (whole groups far from a query, others at its side),
# standard-normal rows, offset rows; against the float64 NumPy reference, with and without
# the skips, with and without leave-one-out (the packed position of the left-out point).
# A group skipped that holds a point with a nonzero weight changes these scores by O(1);
# checked by shifting the group bits by one in kde_simd.tmpl.c.
_BODY_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from fastscore import GaussianKDE
from fastscore._ext import kde as kernels
from fastscore.kde import _group_order
from reference.kde import kde_score_log_density, relative_score_error

rng = np.random.default_rng(12)
centres = 3 * rng.standard_normal((40, 9))
cases = {
    "clusters": (centres[rng.integers(0, 40, 1500)] + 0.05 * rng.standard_normal((1500, 9)),
                 0.04),
    "normal d=9": (rng.standard_normal((1500, 9)), 0.1),
    "normal d=2": (rng.standard_normal((1500, 2)), 0.01),
    "offset d=3": (100 + 0.05 * rng.standard_normal((1500, 3)), 0.005),
    "normal d=5": (rng.standard_normal((1500, 5)), 0.15),
}
worst = {}
for name, (X64, bandwidth) in cases.items():
    for dtype in ("float32", "float64"):
        X = X64.astype(dtype)
        Q = (X[::23] + bandwidth * rng.standard_normal(X[::23].shape)).astype(dtype)
        for exclude in (False, True):
            queries = X if exclude else Q
            ref = kde_score_log_density(X.astype(float), queries.astype(float), bandwidth,
                                        exclude_self=exclude)
            kde = GaussianKDE(bandwidth, exclude_self=exclude, n_threads=2).fit(X)
            for skip in (True, False):
                kde._skip_far = skip
                s, l = kde.score_and_log_density(queries)
                key = f"{dtype} {name} exclude={exclude} skip={skip}"
                worst[key] = [relative_score_error(s, ref[0], bandwidth),
                              float(np.max(np.abs(l - ref[1]) / np.maximum(np.abs(ref[1]), 1)))]

# group modes (csrc/kde.tmpl.c, "Group modes"): queries near the middle of standard-normal
# rows (no sampled box as far as the exp2 cut-off: the pass without group code, first
# reference from the first tile) and queries 7 out along one axis (group boxes, first
# reference from the nearest box), in one call; the same sums with and without the skips
# and for any thread count (d = 9: a specialised body)
X = rng.standard_normal((3000, 9))
Q64 = np.concatenate([0.3 * rng.standard_normal((40, 9)),
                      X[:40] + 7 * np.eye(9)[rng.integers(0, 9, 40)]])
dmax = 127 * 2 * 0.3 ** 2 / np.log2(np.e)        # the exp2 cut-off distance
ref = kde_score_log_density(X, Q64, 0.3)
modes = {}
for dtype in ("float32", "float64"):
    Xd, Q = X.astype(dtype), Q64.astype(dtype)
    packed = Xd[_group_order(Xd, kernels.GROUP)]
    groups = [packed[g:g + kernels.GROUP] for g in range(0, 3000, kernels.GROUP)]
    sample = [groups[j * len(groups) // 16] for j in range(16)]
    bound = np.max([(np.maximum(np.maximum(g.min(axis=0) - Q, Q - g.max(axis=0)), 0) ** 2)
                    .sum(axis=1) for g in sample], axis=0)
    results = []
    for skip, n_threads in ((True, 1), (True, 2), (False, 2)):
        kde = GaussianKDE(0.3, n_threads=n_threads).fit(Xd)
        kde._skip_far = skip
        results.append(kde.score_and_log_density(Q))
    s, l = results[0]
    worst[f"{dtype} modes"] = [relative_score_error(s, ref[0], 0.3),
                               float(np.max(np.abs(l - ref[1]) / np.maximum(np.abs(ref[1]), 1)))]
    # [near queries in group mode, far ones not, all results bit-identical]
    modes[dtype] = [int(np.sum(bound[:40] >= 0.99 * dmax)),
                    int(np.sum(bound[40:] < 1.01 * dmax)),
                    all(np.array_equal(a, b) for r in results[1:] for a, b in zip(r, results[0]))]
print(json.dumps({"body": kernels.simd_clone(), "worst": worst, "modes": modes}))
"""


@pytest.mark.parametrize("level", ["avx512", "avx2", "baseline"])
def test_group_skips_on_every_simd_body(level):
    import json
    import os
    import subprocess
    import sys
    import tempfile

    import fastscore

    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FASTSCORE_SIMD=level,
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(fastscore.__file__))))
    res = subprocess.run([sys.executable, "-c", _BODY_SCRIPT, tests], env=env,
                         capture_output=True, text=True, timeout=300,
                         cwd=tempfile.gettempdir())
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # float32: rounding of |x - q|^2 / (2 sigma^2) (up to ~2e3 for the offset rows)
    tol = {"float32": 1e-4, "float64": 1e-9}
    assert out["modes"] == {"float32": [0, 0, True], "float64": [0, 0, True]}, out["modes"]
    for key, (score_err, log_err) in out["worst"].items():
        assert score_err <= tol[key.split()[0]], (out["body"], key, score_err)
        assert log_err <= tol[key.split()[0]], (out["body"], key, log_err)

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastscore import PatchOperator
from reference.patches import gather as ref_gather, scatter as ref_scatter

MODES = ["valid", "zero", "reflect", "circular"]
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_image(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@st.composite
def geometries(draw, ndim):
    shape = tuple(draw(st.integers(1, 9 if ndim == 2 else 6)) for _ in range(ndim))
    patch = tuple(draw(st.integers(1, n)) for n in shape)
    mode = draw(st.sampled_from(MODES))
    hi = [p if mode != "valid" else 4 for p in patch]
    stride = tuple(draw(st.integers(1, h)) for h in hi)
    return shape, patch, stride, mode


@pytest.mark.parametrize("ndim", [2, 3])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_reference_and_adjoint(ndim, data):
    shape, patch, stride, mode = data.draw(geometries(ndim))
    dtype = data.draw(st.sampled_from(DTYPES))
    G = PatchOperator(shape, patch, stride, mode)
    x = random_image(shape, dtype, seed=1)
    P = G.gather(x)
    expected = ref_gather(x, patch, stride, mode)
    assert P.dtype == dtype
    np.testing.assert_array_equal(P, expected)  # gather is a copy: exact
    Q = random_image(P.shape, dtype, seed=2)
    back = G.scatter(Q)
    np.testing.assert_allclose(back, ref_scatter(Q, shape, patch, stride, mode),
                               rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)
    # adjoint identity <G x, Q> = <x, G^T Q>, accumulated in float64
    lhs = np.vdot(P.astype(np.float64), Q.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), back.astype(np.float64))
    scale = np.abs(P).sum() * np.abs(Q).max() + 1e-30
    assert abs(lhs - rhs) <= RTOL[dtype] * scale


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_adjoint_identity_larger(mode, dtype):
    shape = (37, 41)
    G = PatchOperator(shape, (5, 4), stride=(2, 1), padding=mode)
    x = random_image(shape, dtype, 3)
    Q = random_image((G.n_patches, G.patch_dim), dtype, 4)
    lhs = np.vdot(G.gather(x).astype(np.float64), Q.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), G.scatter(Q).astype(np.float64))
    assert abs(lhs - rhs) <= RTOL[dtype] * abs(lhs) + RTOL[dtype]


@pytest.mark.parametrize("mode", MODES)
def test_counts_equal_scatter_of_ones(mode):
    G = PatchOperator((10, 13), (3, 5), stride=(1, 2), padding=mode)
    ones = np.ones((G.n_patches, G.patch_dim))
    np.testing.assert_array_equal(G.counts(), G.scatter(ones))
    assert G.norm() == pytest.approx(np.sqrt(G.counts().max()))
    if mode != "valid":
        assert (G.counts() > 0).all()


def test_counts_3d_and_centred_patches():
    G = PatchOperator((4, 5, 6), 3, padding="zero")
    assert G.n_patches == 4 * 5 * 6  # one patch centred on every voxel
    x = random_image((4, 5, 6), np.float64)
    centre = G.gather(x)[:, G.patch_dim // 2]
    np.testing.assert_array_equal(centre, x.ravel())
    np.testing.assert_array_equal(G.counts(), G.scatter(np.ones((G.n_patches, 27))))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_chunked_equals_whole(mode, dtype):
    G = PatchOperator((23, 19), (4, 3), stride=(1, 2), padding=mode)
    x = random_image((3, 23, 19), dtype, 5)
    whole = G.gather(x).reshape(-1, G.patch_dim)
    Q = random_image(whole.shape, dtype, 6)
    image = np.zeros_like(x)
    for start, stop in G.chunks(37, n_images=3):
        np.testing.assert_array_equal(G.gather(x, start, stop), whole[start:stop])
        G.scatter_add(Q[start:stop], start, out=image)
    np.testing.assert_allclose(image, G.scatter(Q.reshape(3, G.n_patches, -1)),
                               rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_equals_loop(dtype):
    G = PatchOperator((12, 11), 3, padding="reflect")
    x = random_image((4, 12, 11), dtype, 7)
    P = G.gather(x)
    assert P.shape == (4, G.n_patches, 9)
    for b in range(4):
        np.testing.assert_array_equal(P[b], G.gather(x[b]))
    np.testing.assert_array_equal(G.scatter(P)[2], G.scatter(P[2]))


@pytest.fixture
def multithreaded_small_calls(monkeypatch):
    """Let small test images use every thread, so the parallel kernels are exercised."""
    import fastscore.patches

    monkeypatch.setattr(fastscore.patches, "MIN_ENTRIES_PER_THREAD", 1)


@pytest.mark.parametrize("mode", MODES)
def test_threads_equal(mode, multithreaded_small_calls):
    shape = (64, 70)
    x = random_image(shape, np.float32, 8)
    one = PatchOperator(shape, 5, padding=mode, n_threads=1)
    two = PatchOperator(shape, 5, padding=mode, n_threads=2)
    P = one.gather(x)
    np.testing.assert_array_equal(P, two.gather(x))
    np.testing.assert_array_equal(one.scatter(P), two.scatter(P))


def test_small_calls_stay_on_one_thread():
    G = PatchOperator((8, 8), 3, n_threads=2)
    assert G._threads(64 * 9) == 1
    assert G._threads(4 << 20) == 2


def test_out_buffers_and_nonfinite_values():
    G = PatchOperator((8, 8), 3)
    x = random_image((8, 8), np.float64)
    x[2, 3] = np.nan
    x[5, 5] = np.inf
    out = np.empty((G.n_patches, 9))
    assert G.gather(x, out=out) is out
    assert np.isnan(out).sum() == G.counts()[2, 3]
    image = np.full((8, 8), 7.0)
    assert G.scatter(np.ones((G.n_patches, 9)), out=image) is image
    np.testing.assert_array_equal(image, G.counts())


def test_input_conversions():
    G = PatchOperator((6, 7), 2)
    x = np.arange(42).reshape(6, 7)
    assert G.gather(x).dtype == np.float64                       # int -> float64
    assert G.gather(x.astype(np.float16)).dtype == np.float32    # float16 -> float32
    assert G.gather(x > 3).dtype == np.float64                   # bool -> float64
    xf = np.asfortranarray(x, dtype=np.float32)                  # non-contiguous
    np.testing.assert_array_equal(G.gather(xf), G.gather(x.astype(np.float32)))
    xb = x.astype(">f8")                                         # big-endian
    np.testing.assert_array_equal(G.gather(xb), G.gather(x.astype(np.float64)))
    xs = np.zeros((12, 14))[::2, ::2]                            # strided view
    assert G.gather(xs).shape == (G.n_patches, 4)
    ro = x.astype(np.float64)
    ro.flags.writeable = False                                   # read-only input
    np.testing.assert_array_equal(G.gather(ro), G.gather(x))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(image_shape=(8, 8), patch_size=9), ValueError, r"`patch_size` must be positive and at most the image size \(8, 8\); got \(9, 9\)"),
    (dict(image_shape=(8, 8), patch_size=(0, 3)), ValueError, r"`patch_size` must be >= 1"),
    (dict(image_shape=(8, 8), patch_size=(3, 3, 3)), ValueError, r"`patch_size` must be an int or a sequence of 2 ints"),
    (dict(image_shape=(8, 8), patch_size=3, stride=0), ValueError, r"`stride` must be >= 1"),
    (dict(image_shape=(8, 8), patch_size=2, stride=3, padding="zero"), ValueError, r"`stride` must be at most `patch_size`"),
    (dict(image_shape=(8, 8), patch_size=3, padding="mirror"), ValueError, r"`padding` must be one of 'valid', 'zero', 'reflect', 'circular'; got 'mirror'"),
    (dict(image_shape=(8,), patch_size=3), ValueError, r"`image_shape` must have 2 \(H, W\) or 3"),
    (dict(image_shape=8, patch_size=3), TypeError, r"`image_shape` must be a tuple"),
    (dict(image_shape=(8, 0), patch_size=1), ValueError, r"`image_shape` must be >= 1"),
    (dict(image_shape=(8, 8), patch_size=2.5), TypeError, r"`patch_size` must be an int"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        PatchOperator(**kwargs)


def test_call_errors():
    G = PatchOperator((8, 8), 3)
    x = np.zeros((8, 8))
    with pytest.raises(ValueError, match=r"`x` must have shape \(8, 8\) or \(n_images, 8, 8\); got \(8, 9\)"):
        G.gather(np.zeros((8, 9)))
    with pytest.raises(ValueError, match=r"`x` must have 2 or 3 dimensions; got 1"):
        G.gather(np.zeros(64))
    with pytest.raises(ValueError, match=r"`x` must not be empty"):
        G.gather(np.zeros((0, 8, 8)))
    with pytest.raises(TypeError, match=r"`x` must be real; got complex dtype complex128"):
        G.gather(x + 1j)
    with pytest.raises(TypeError, match=r"`x` must be a numeric array; got dtype"):
        G.gather(np.array([["a"] * 8] * 8))
    with pytest.raises(ValueError, match=r"`stop` must be in \[3, 36\]; got 99"):
        G.gather(x, 3, 99)
    with pytest.raises(ValueError, match=r"`start` must be in \[0, 36\]; got -1"):
        G.gather(x, -1)
    with pytest.raises(ValueError, match=r"`out` must have shape \(36, 9\); got \(36, 8\)"):
        G.gather(x, out=np.empty((36, 8)))
    with pytest.raises(TypeError, match=r"`out` must have dtype float64; got float32"):
        G.gather(x, out=np.empty((36, 9), np.float32))
    with pytest.raises(ValueError, match=r"`patches` must have shape \(36, 9\) or \(n_images, 36, 9\); got \(35, 9\)"):
        G.scatter(np.zeros((35, 9)))
    with pytest.raises(TypeError, match=r"`patches` is float32, `out` is float64"):
        G.scatter_add(np.zeros((4, 9), np.float32), 0, out=np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"rows 34..38 run past the last patch \(36\)"):
        G.scatter_add(np.zeros((4, 9)), 34, out=np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"`patches` must have 9 columns"):
        G.scatter_add(np.zeros((4, 8)), 0, out=np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"`out` must be a writeable, C-contiguous"):
        G.scatter_add(np.zeros((4, 9)), 0, out=np.zeros((8, 16))[:, ::2])
    with pytest.raises(TypeError, match=r"`out` must be a numpy.ndarray"):
        G.scatter_add(np.zeros((4, 9)), 0, out=[[0.0] * 8] * 8)
    with pytest.raises(ValueError, match=r"`chunk_size` must be >= 1; got 0"):
        list(G.chunks(0))


@pytest.mark.parametrize("mode", ["zero", "reflect", "circular"])
@pytest.mark.parametrize("origin", [(0, 0), (2, 1), (1, 3)])
def test_origin_tiling_covers_each_pixel_once(mode, origin):
    shape, p = (11, 13), (3, 4)
    G = PatchOperator(shape, p, stride=p, padding=mode, origin=origin)
    x = random_image(shape, np.float64, 9)
    np.testing.assert_array_equal(G.gather(x), ref_gather(x, p, p, mode, origin))
    Q = random_image((G.n_patches, G.patch_dim), np.float64, 10)
    np.testing.assert_allclose(G.scatter(Q), ref_scatter(Q, shape, p, p, mode, origin),
                               rtol=1e-12, atol=1e-12)
    if mode == "zero":   # non-overlapping tiles: every pixel read exactly once
        np.testing.assert_array_equal(G.counts(), np.ones(shape, dtype=np.int64))


def test_origin_errors():
    with pytest.raises(ValueError, match=r"`origin` needs a padded mode"):
        PatchOperator((8, 8), 3, origin=1)
    with pytest.raises(ValueError, match=r"`origin` must be smaller than `patch_size` \(3, 3\)"):
        PatchOperator((8, 8), 3, padding="zero", origin=(0, 3))


def test_repr_and_empty_chunk():
    G = PatchOperator((8, 8), 3, padding="circular")
    assert "padding='circular'" in repr(G)
    assert G.gather(np.zeros((8, 8)), 5, 5).shape == (0, 9)
    out = np.zeros((8, 8))
    G.scatter_add(np.zeros((0, 9)), 5, out=out)
    assert not out.any()


# -- channels --------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_channels_adjoint_and_layout(data):
    ndim = data.draw(st.sampled_from([2, 3]))
    shape = tuple(data.draw(st.integers(2, 7)) for _ in range(ndim))
    patch = tuple(data.draw(st.integers(1, n)) for n in shape)
    mode = data.draw(st.sampled_from(["valid", "zero", "reflect", "circular"]))
    C = data.draw(st.integers(1, 3))
    n = data.draw(st.integers(1, 2))
    seed = data.draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    G = PatchOperator(shape, patch, 1, mode, channels=C)
    plain = PatchOperator(shape, patch, 1, mode)
    assert G.patch_dim == C * int(np.prod(patch)) and G.n_patches == plain.n_patches
    x = rng.standard_normal((n, C) + shape)
    P = G.gather(x)
    assert P.shape == (n, G.n_patches, G.patch_dim)
    d = plain.patch_dim
    for c in range(C):        # channel-major blocks of the single-channel patches
        np.testing.assert_array_equal(P[..., c * d:(c + 1) * d], plain.gather(x[:, c]))
    Y = rng.standard_normal(P.shape)
    lhs, rhs = np.vdot(P, Y), np.vdot(x, G.scatter(Y))
    assert abs(lhs - rhs) <= 1e-12 * (np.linalg.norm(P) * np.linalg.norm(Y))
    # chunked gather / scatter_add over ranges that cross image boundaries
    chunk = data.draw(st.integers(1, 2 * G.n_patches))
    out = np.zeros_like(x)
    rows = []
    for start, stop in G.chunks(chunk, n):
        block = G.gather(x, start, stop)
        rows.append(block)
        G.scatter_add(Y.reshape(-1, G.patch_dim)[start:stop], start, out=out)
    np.testing.assert_array_equal(np.concatenate(rows), P.reshape(-1, G.patch_dim))
    np.testing.assert_allclose(out, G.scatter(Y), atol=1e-12)
    single = G.gather(x[0])
    np.testing.assert_array_equal(single, P[0])


def test_channels_errors():
    G = PatchOperator((6, 6), 3, channels=2)
    with pytest.raises(ValueError, match="`x` must have 3 or 4 dimensions"):
        G.gather(np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"\(2, 6, 6\)"):
        G.gather(np.zeros((3, 6, 6)))
    with pytest.raises(ValueError, match="channels"):
        PatchOperator((6, 6), 3, channels=0)
    assert "channels=2" in repr(G)


def test_operator_pickles_after_use():
    # a prior holding used operators goes to other processes (Dask workers)
    import pickle

    x = np.random.default_rng(0).normal(size=(9, 8)).astype(np.float32)
    G = PatchOperator(x.shape, 3, padding="reflect")
    P = G.gather(x)
    H = pickle.loads(pickle.dumps(G))
    np.testing.assert_array_equal(H.gather(x), P)
    np.testing.assert_array_equal(H.scatter(P), G.scatter(P))

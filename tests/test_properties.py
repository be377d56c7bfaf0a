"""Property battery: every public entry point, fed generated hostile input.

Shapes (incl. empty and degenerate), dtypes (bool, int, uint, float16/32/64, complex),
layouts (Fortran order, negative and non-unit strides), NaN/Inf, extreme magnitudes and
hostile scalars. The property: a call either returns a result of the documented shape and
dtype, or raises a documented exception - ``TypeError``, ``ValueError`` or
``NotImplementedError`` - with a message; anything else (``ZeroDivisionError``,
``IndexError``, ``OverflowError``, a crash) fails. For finite input of moderate magnitude
the result must also be finite.

Profiles (``tests/conftest.py``): ``ci`` by default, ``--hypothesis-profile=long`` for at
least 10 000 cases per entry point.
"""

import functools
import warnings

import numpy as np
import pytest
from hypothesis import assume, event, given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DOCUMENTED = (TypeError, ValueError, NotImplementedError)

_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8,
           np.uint16, np.bool_, np.complex64, np.complex128]
_REAL_WORKING = (np.float32, np.float64)


# ------------------------------------------------------------------ strategies


def _elements(dtype, special):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        width = 8 * dtype.itemsize
        if special:
            return st.floats(allow_nan=True, allow_infinity=True, width=width)
        return st.floats(-1e3, 1e3, width=width)
    if dtype.kind == "c":
        return st.complex_numbers(max_magnitude=None if special else 1e3,
                                  allow_nan=special, allow_infinity=special,
                                  width=8 * dtype.itemsize)
    return None     # hypothesis' default: full range of the integer / bool type


@st.composite
def hostile_arrays(draw, min_dims=1, max_dims=4, min_side=0, max_side=6, shape=None,
                   dtypes=_DTYPES):
    """(array, finite_and_moderate): any dtype/layout/shape, often with NaN/Inf/extremes."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    special = draw(st.booleans())
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                                      min_side=min_side, max_side=max_side))
    layout = draw(st.sampled_from(["C", "F", "reversed", "strided"]))
    base_shape = tuple(2 * n for n in shape) if layout == "strided" else shape
    arr = draw(hnp.arrays(dtype, base_shape, elements=_elements(dtype, special)))
    if layout == "F" and arr.ndim:
        arr = np.asfortranarray(arr)
    elif layout == "reversed" and arr.ndim:
        arr = arr[..., ::-1]
    elif layout == "strided":
        arr = arr[tuple(slice(None, None, 2) for _ in shape)]
    assert arr.shape == tuple(shape)
    moderate = dtype.kind in "fiub" and dtype.kind != "c" and (
        arr.size == 0 or (np.all(np.isfinite(arr)) and np.max(np.abs(arr.astype(float))) <= 1e3))
    return arr, bool(moderate)


hostile_scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e-320, 1e-300, 1e-50, 1e-8, 1e300, 2.0**31]),
    st.integers(-2**40, 2**40), st.booleans(), st.none(), st.just("0.1"),
    st.complex_numbers(max_magnitude=10, allow_nan=False))

hostile_ints = st.one_of(st.integers(-3, 12), st.integers(-2**63, 2**63),
                         st.sampled_from([1.5, "3", None, True, np.int64(2), np.float64(2.0)]))


def _shape_ints(n):
    return st.one_of(st.tuples(*[hostile_ints] * n),
                     st.lists(st.integers(-2, 9), min_size=0, max_size=4).map(tuple),
                     hostile_ints)


def outcome(fn, *args, _also=(), **kwargs):
    """Call `fn`: a result, or None after a documented exception with a message (`_also`:
    exceptions documented by this entry point only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # overflow etc. in NumPy on extreme input
        try:
            result = fn(*args, **kwargs)
        except DOCUMENTED + tuple(_also) as exc:
            assert str(exc), f"{type(exc).__name__} without a message"
            note(f"{type(exc).__name__}: {exc}")
            event(f"{getattr(fn, '__name__', 'call')}: {type(exc).__name__}")
            return None
    event(f"{getattr(fn, '__name__', 'call')}: returned")
    return result


def _moderate_sigma(sigma):
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        return False
    return isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and 1e-3 <= s <= 1e3


def _extreme(value):
    """A σ-like scalar outside float32's range: refused with a ValueError (check_scale),
    tested by the explicit cases at the end; the properties draw moderate values."""
    try:
        v = abs(float(value))
    except (TypeError, ValueError, OverflowError):
        return False
    return np.isfinite(v) and v != 0 and not 1e-30 <= v <= 1e30


def _check_real_result(out, shape, moderate, dtype=None):
    assert isinstance(out, np.ndarray)
    assert out.shape == tuple(shape), (out.shape, shape)
    assert out.dtype in _REAL_WORKING, out.dtype
    if dtype is not None:
        assert out.dtype == dtype
    if moderate:
        assert np.all(np.isfinite(out)), "non-finite result for finite moderate input"


def _working(dtype):
    dtype = np.dtype(dtype)
    if dtype in _REAL_WORKING:
        return dtype
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(np.float64)


# ------------------------------------------------------------------ memory guard


@pytest.fixture(autouse=True, scope="module")
def _bounded_memory():
    """Hostile sizes must give an error, not a machine out of memory: while this module
    runs, the address space may grow by at most 4 GiB (a soft limit, restored after), so a
    runaway allocation is a MemoryError here instead of the OOM killer's choice."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    limit = vm + 4 * 2**30
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ------------------------------------------------------------------ shared small objects


@functools.cache
def _model():
    from fastscore.nn import NoiseConditionalScore, PatchScoreModel

    ncs = NoiseConditionalScore.for_patches((3, 3), hidden=(8,), rng=0)
    return PatchScoreModel(ncs, 3, sigma_min=0.05, sigma_max=1.0)


@functools.cache
def _prior():
    from fastscore.prior import PatchPrior

    return PatchPrior(_model(), 3)


# ------------------------------------------------------------------ patches and KDE


def test_patch_operator_maps_beyond_memory_name_the_shape():
    """A thin image whose index maps alone exceed this module's 4 GiB cap (found by the long
    profile: a 510M-pixel axis) is a MemoryError that names `image_shape`."""
    from fastscore import PatchOperator

    with pytest.raises(MemoryError, match="`image_shape`"):
        PatchOperator((1_000_000_000, 1), (1, 1), padding="reflect")


@given(image_shape=_shape_ints(2) | _shape_ints(3), patch_size=_shape_ints(2),
       stride=hostile_ints, padding=st.sampled_from(["valid", "zero", "reflect", "circular",
                                                     "same", None]),
       x=hostile_arrays(max_dims=4))
def test_patch_operator(image_shape, patch_size, stride, padding, x):
    from fastscore import PatchOperator

    arr, moderate = x
    try:
        G = outcome(PatchOperator, image_shape, patch_size, stride, padding)
    except MemoryError as err:     # per-axis index maps beyond the 4 GiB cap of this module
        assert "`image_shape`" in str(err), str(err)
        assert sum(abs(int(n)) for n in np.ravel(image_shape)) > 2**24
        return
    if G is None:
        return
    P = outcome(G.gather, arr)
    if P is None:
        return
    batch = arr.shape[:-len(G.image_shape)]
    _check_real_result(P, batch + (G.n_patches, G.patch_dim) if batch else
                       (G.n_patches, G.patch_dim), moderate, _working(arr.dtype))
    back = outcome(G.adjoint, P)
    _check_real_result(back, arr.shape, moderate, P.dtype)


@given(bandwidth=hostile_scalars | st.floats(1e-3, 10), X=hostile_arrays(max_dims=3),
       Q=hostile_arrays(max_dims=3), exclude_self=st.booleans())
def test_gaussian_kde(bandwidth, X, Q, exclude_self):
    from fastscore import GaussianKDE

    (xa, _), (qa, _) = X, Q
    assume(not _extreme(bandwidth))
    kde = outcome(GaussianKDE, bandwidth, exclude_self=exclude_self)
    if kde is None or outcome(kde.fit, xa) is None:
        return
    for method in (kde.score, kde.log_density):
        out = outcome(method, qa)
        if out is None:
            continue
        assert out.shape[0] == qa.shape[0]
        assert out.dtype == kde.X_.dtype
        if method is kde.score:
            assert out.shape == qa.shape


# ------------------------------------------------------------------ networks and models


@given(widths=st.lists(hostile_ints, min_size=0, max_size=4), x=hostile_arrays(max_dims=3),
       activation=st.sampled_from([None, "tanh", "relu", "swish", "gelu", "nope"]),
       dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int32, "float32", None]))
def test_mlp(widths, x, activation, dtype):
    from fastscore import MLP

    arr, moderate = x
    widths = [w for w in widths if not (isinstance(w, int) and abs(w) > 64)]
    net = outcome(MLP, widths, None if activation is None else [activation] * max(
        0, len(widths) - 1), dtype=dtype, rng=0)
    if net is None:
        return
    out = outcome(net.predict, arr)
    if out is not None:
        _check_real_result(out, (arr.shape[0], net.widths[-1]), moderate)


@given(x=hostile_arrays(max_dims=3), sigma=hostile_scalars | hostile_arrays(max_dims=2).map(
    lambda t: t[0]))
def test_patch_score_model(x, sigma):
    arr, moderate = x
    assume(not _extreme(sigma) if np.ndim(sigma) == 0 else True)
    model = _model()
    for method in (model.score, model.denoise):
        out = outcome(method, arr, sigma)
        if out is not None:
            _check_real_result(out, arr.shape, moderate and _moderate_sigma(sigma))


@given(x=hostile_arrays(min_dims=2, max_dims=4, max_side=9),
       sigma=hostile_scalars | st.floats(1e-3, 10))
def test_patch_prior(x, sigma):
    arr, moderate = x
    assume(not _extreme(sigma))
    prior = _prior()
    out = outcome(prior.score, arr, sigma)
    if out is not None and np.iscomplexobj(arr):      # complex images: complex scores
        assert out.shape == arr.shape and out.dtype.kind == "c", out.dtype
        out = None
    if out is not None:
        _check_real_result(out, arr.shape, moderate and _moderate_sigma(sigma))
    out = outcome(prior.denoise, arr, sigma)
    if out is not None:
        assert out.shape == arr.shape


@given(patch_size=_shape_ints(2) | _shape_ints(3), stride=hostile_ints,
       padding=st.sampled_from(["valid", "zero", "reflect", "circular", "x"]),
       weight=st.sampled_from(["mean", "sum", 0.5, 0.0, -1.0, float("nan"), "x"]),
       tiling=st.sampled_from(["overlap", "random_shift", "x"]),
       chunk_size=hostile_ints)
def test_patch_prior_constructor(patch_size, stride, padding, weight, tiling, chunk_size):
    from fastscore.prior import PatchPrior

    prior = outcome(PatchPrior, _model(), patch_size, stride=stride, padding=padding,
                    weight=weight, tiling=tiling, chunk_size=chunk_size)
    if prior is not None:
        x = np.random.default_rng(0).random((8, 8))
        out = outcome(prior.score, x, 0.1, rng=0)
        if out is not None:
            _check_real_result(out, x.shape, True)


# ------------------------------------------------------------------ operators


def _operators(draw_arr, image_shape):
    from fastscore import operators as ops

    mask = np.random.default_rng(0).random(image_shape) < 0.5
    return [
        lambda: ops.Identity(image_shape),
        lambda: ops.Mask(draw_arr),
        lambda: ops.Mask(mask),
        lambda: ops.Blur(draw_arr, image_shape),
        lambda: ops.Blur(ops.gaussian_kernel(1.0, 3), image_shape),
        lambda: ops.Downsample(image_shape, 2),
        lambda: ops.Downsample(image_shape, draw_arr.shape[0] if draw_arr.ndim else 0),
        lambda: ops.MRI(mask),
        lambda: ops.MRI(draw_arr),
        lambda: ops.ParallelBeamCT(image_shape, np.linspace(0, np.pi, 5, endpoint=False)),
        lambda: ops.ParallelBeamCT(image_shape, draw_arr),
        lambda: ops.Identity(image_shape) * float(draw_arr.ravel()[0].real)
        if draw_arr.size else ops.Identity(image_shape),
    ]


@given(image_shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       param=hostile_arrays(max_dims=3), x=hostile_arrays(max_dims=3, max_side=9),
       which=st.integers(0, 11))
def test_operators(image_shape, param, x, which):
    arr, _ = x
    op = outcome(_operators(param[0], image_shape)[which])
    if op is None:
        return
    y = outcome(op.forward, arr)
    if y is not None:
        assert y.shape[-len(op.shape_out):] == tuple(op.shape_out)
        back = outcome(op.adjoint, y)
        if back is not None:
            assert back.shape[-len(op.shape_in):] == tuple(op.shape_in)
    outcome(op.adjoint, arr)


_small_ints = st.one_of(st.integers(-3, 64), st.sampled_from([1.5, "3", None, True]))


@given(shape=st.tuples(_small_ints, _small_ints) | _small_ints, factor=hostile_ints,
       sigma=hostile_scalars, size=_small_ints, acceleration=hostile_scalars)
def test_operator_helpers(shape, factor, sigma, size, acceleration):
    from fastscore import operators as ops

    outcome(ops.Identity, shape)
    outcome(ops.Downsample, shape, factor)
    outcome(ops.gaussian_kernel, sigma, size)
    outcome(ops.cartesian_mask, shape, acceleration, rng=0)
    outcome(ops.radial_mask, shape, size, rng=0)


# ------------------------------------------------------------------ solvers and training


@given(y=hostile_arrays(min_dims=2, max_dims=3, max_side=8), noise_sigma=hostile_scalars,
       method=st.sampled_from(["gradient", "hqs", "x"]), n_steps=hostile_ints,
       cg_iter=st.integers(1, 5), step_size=st.sampled_from(["auto", 0.5, 0.0, 3.0, "x"]))
def test_map_estimate(y, noise_sigma, method, n_steps, cg_iter, step_size):
    from fastscore.operators import Identity
    from fastscore.reconstruct import map_estimate

    arr, _ = y
    assume(not isinstance(n_steps, int) or n_steps <= 5)
    assume(not _extreme(noise_sigma))
    op = outcome(Identity, arr.shape[-2:])
    assume(op is not None)
    # FloatingPointError: the solvers' "diverged at iteration k" (σ far outside the model)
    res = outcome(map_estimate, arr, op, noise_sigma, _prior(),
                  _also=(FloatingPointError,), method=method, n_steps=n_steps,
                  cg_iter=cg_iter, step_size=step_size, rng=0)
    if res is not None:
        assert res.x.shape == arr.shape


@given(y=hostile_arrays(min_dims=2, max_dims=2, max_side=8), noise_sigma=hostile_scalars,
       n_samples=hostile_ints, steps_per_sigma=hostile_ints,
       sigmas=st.none() | hostile_arrays(max_dims=1, max_side=3).map(lambda t: t[0]),
       method=st.sampled_from(["preconditioned", "langevin", "x"]),
       eps=st.sampled_from([None, 0.5, 1.0, 0.0, 2.0, float("nan")]))
def test_posterior_sample(y, noise_sigma, n_samples, steps_per_sigma, sigmas, method, eps):
    from fastscore.operators import Identity
    from fastscore.reconstruct import posterior_sample

    arr, _ = y
    assume(not _extreme(noise_sigma))
    assume(not isinstance(n_samples, int) or n_samples <= 3)
    assume(not isinstance(steps_per_sigma, int) or steps_per_sigma <= 3)
    op = outcome(Identity, arr.shape)
    assume(op is not None)
    res = outcome(posterior_sample, arr, op, noise_sigma, _prior(),
                  _also=(FloatingPointError,), n_samples=n_samples, sigmas=sigmas,
                  steps_per_sigma=steps_per_sigma, method=method, step_size=eps, cg_iter=3, rng=0)
    if res is not None:
        assert res.samples.shape[-2:] == arr.shape


@given(images=hostile_arrays(min_dims=2, max_dims=4, max_side=10),
       patch_size=hostile_ints, n_steps=st.integers(-1, 3), batch_size=hostile_ints,
       sigmas=st.sampled_from([(0.02, 1.0), (1.0, 0.02), (0.0, 1.0), (float("nan"), 1.0),
                               (0.1,), "x"]),
       lr=hostile_scalars | st.just(1e-3))
def test_fit_patch_score(images, patch_size, n_steps, batch_size, sigmas, lr):
    from fastscore import fit_patch_score

    arr, _ = images
    assume(not isinstance(batch_size, int) or batch_size <= 64)
    from fastscore.train import TrainingDiverged

    model = outcome(fit_patch_score, arr, patch_size=patch_size, n_steps=n_steps,
                    batch_size=batch_size, sigma_range=sigmas, step_size=lr, warmup=0,
                    validation_fraction=0.0, rng=0, dtype=np.float32,
                    _also=(TrainingDiverged,))     # documented: a non-finite loss or weights
    if model is not None:
        assert np.all(np.isfinite(model.model.net.params)) or not np.all(np.isfinite(arr))


# ------------------------------------------------------------------ files


@given(x=hostile_arrays(min_dims=0, max_dims=4, max_side=8),
       suffix=st.sampled_from([".npy", ".npz", ".png", ".tif", ".nii", ".nii.gz", ".jpg",
                               ".txt", ""]),
       bits=st.sampled_from([8, 16, 0, 12, "16"]))
def test_save_and_load_image(tmp_path_factory, x, suffix, bits):
    from fastscore.io import load_image, save_image

    arr, _ = x
    path = tmp_path_factory.mktemp("img") / f"a{suffix}"
    written = outcome(save_image, path, arr, bits=bits)
    if written is None:
        return
    back = outcome(load_image, written)
    assert back is not None, "load_image refused what save_image wrote"
    assert back.shape == arr.shape
    if suffix in (".npy", ".npz"):
        np.testing.assert_array_equal(back, arr.astype(back.dtype))


@functools.cache
def _good_model_bytes():
    import os

    from hostile_cases import hostile_path

    with open(hostile_path("model_good.npz"), "rb") as f:
        data = f.read()
    assert os.path.getsize(hostile_path("model_good.npz")) == len(data)
    return data


@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1,
                      max_size=4),
       cut=st.none() | st.integers(0, 10**6),
       meta=st.dictionaries(st.sampled_from(["model", "patch_size", "sigma_min",
                                             "sigma_max", "invariances", "training",
                                             "intensity_reference", "format_version",
                                             "kind"]),
                            st.recursive(st.none() | st.booleans() | st.floats() |
                                         st.integers() | st.text(max_size=5),
                                         lambda c: st.lists(c, max_size=3) |
                                         st.dictionaries(st.text(max_size=5), c,
                                                         max_size=3), max_leaves=8),
                            max_size=3))
def test_model_load(tmp_path_factory, flips, cut, meta):
    """Flipped bytes, truncation and replaced metadata entries: a model or ModelFileError."""
    import json

    from fastscore.io import ModelFileError, read_model_file, write_model_file
    from fastscore.nn import PatchScoreModel

    folder = tmp_path_factory.mktemp("model")
    data = bytearray(_good_model_bytes())
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    path = folder / "flipped.npz"
    path.write_bytes(bytes(data))
    for load in (read_model_file, PatchScoreModel.load):
        try:
            load(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)

    arrays, full = read_model_file(_good_path())
    full = {k: v for k, v in full.items() if k not in ("format_version", "kind",
                                                       "fastscore_version")}
    full.update({k: v for k, v in meta.items() if k not in ("format_version", "kind")})
    path = folder / "meta.npz"
    write_model_file(path, "patch_score_model", arrays, json.loads(json.dumps(full)))
    try:
        PatchScoreModel.load(path)
    except ModelFileError as exc:
        assert str(path) in str(exc)


def _good_path():
    from hostile_cases import hostile_path

    return hostile_path("model_good.npz")


# -------------------------------------------- σ outside the working dtype's range


@pytest.mark.parametrize("sigma", [1e-50, 1e300])
def test_sigma_outside_float32_refused(sigma):
    x = np.zeros((4, 9), np.float32)
    with pytest.raises(ValueError):
        _model().score(x, sigma)


@pytest.mark.parametrize("bandwidth", [1e-300, 1e-320])
def test_kde_bandwidth_underflow_refused(bandwidth):
    from fastscore import GaussianKDE

    with pytest.raises(ValueError):
        GaussianKDE(bandwidth).fit(np.zeros((2, 1), np.float32)).score(np.zeros((1, 1),
                                                                                np.float32))


@pytest.mark.parametrize("noise_sigma", [1e-300, 1e300])
def test_noise_sigma_extremes_refused(noise_sigma):
    from fastscore.operators import Identity
    from fastscore.reconstruct import map_estimate

    with pytest.raises(ValueError):
        map_estimate(np.zeros((8, 8)), Identity((8, 8)), noise_sigma, _prior(), n_steps=2)

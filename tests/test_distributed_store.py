"""The stored iterates of denoise_dask (fastscore._dask_store.ChunkFiles): any box and any
padded window read equals the array, a window read holds only the window, and denoising
through the store equals the in-memory result for every padding, stride and tiling."""

import os
import pickle
import tracemalloc

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from fastscore import _dask_store  # noqa: E402
from fastscore._dask_store import ChunkFiles  # noqa: E402
from fastscore.distributed import denoise_dask  # noqa: E402
from fastscore.intensity import IntensityReference  # noqa: E402
from fastscore.operators import Identity, Mask  # noqa: E402
from fastscore.prior import GaussianPatchScore, PatchPrior  # noqa: E402
from fastscore.reconstruct import map_estimate  # noqa: E402


def _store(a, chunks, path):
    """`a` written chunk by chunk (Fortran-ordered chunks: the writer makes the rows)."""
    stored = ChunkFiles.create(path, a.shape, chunks, a.dtype)
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    for block in np.ndindex(*[len(c) for c in chunks]):
        region = tuple(slice(e[i], e[i + 1]) for e, i in zip(bounds, block))
        stored[region] = np.asfortranarray(a[region])
    return stored


@pytest.mark.parametrize("shape, chunks", [
    ((13, 11, 10), ((6, 7), (5, 6), (4, 6))),           # sizes that do not divide
    ((9, 17), ((4, 5), (3, 3, 11))),
    ((3, 5, 7, 8), ((1, 2), (5,), (3, 4), (8,)))])
def test_chunk_files_read_any_box_and_padded_window(shape, chunks, tmp_path, monkeypatch):
    monkeypatch.setattr(_dask_store, "_BUFFER", 64)     # reads of a few rows at a time
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    _store(a, chunks, tmp_path / "x")
    stored = pickle.loads(pickle.dumps(ChunkFiles.open(tmp_path / "x")))
    assert not [f for f in os.listdir(tmp_path / "x") if f.endswith(".tmp")]
    assert np.array_equal(stored[:], a)
    first = tuple(slice(0, c[0]) for c in chunks)
    assert np.array_equal(np.load(stored.chunk_file((0,) * len(shape))), a[first])
    for _ in range(30):
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, shape)]
        assert np.array_equal(stored.read(lo, hi), a[tuple(map(slice, lo, hi))])
        # windows as the block step reads them: wrapped, reflected, zero (-1), random
        index = []
        for n in shape:
            u = np.arange(int(rng.integers(-n, n)), int(rng.integers(n, 2 * n)))
            index.append([u % n, np.abs(n - 1 - np.abs(n - 1 - u)) % n,
                          np.where((u >= 0) & (u < n), u, -1),
                          rng.integers(-1, n, size=len(u))][int(rng.integers(4))])
        want = a[np.ix_(*[np.maximum(i, 0) for i in index])]
        for axis, i in enumerate(index):
            want[(slice(None),) * axis + (i < 0,)] = 0
        assert np.array_equal(stored.read_indexed(index), want)


def test_chunk_files_window_read_holds_only_the_window(tmp_path):
    # a chunk with a 2-pixel halo from 27 stored chunks of 1 MiB: the read allocates the
    # window and one plane of one chunk (16 KiB), never a whole neighbouring chunk
    chunks = ((64,) * 3,) * 3
    a = np.arange(192 ** 3, dtype=np.float32).reshape((192,) * 3)
    stored = _store(a, chunks, tmp_path / "x")
    del a
    tracemalloc.start()
    try:
        window = stored.read_indexed([np.arange(62, 130)] * 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert window[0, 0, 0] == (62 * 192 + 62) * 192 + 62
    assert peak < window.nbytes + 256 * 1024, (peak, window.nbytes)


def test_chunk_files_errors(tmp_path):
    a = np.zeros((6, 5), dtype=np.float64)
    stored = _store(a, ((3, 3), (5,)), tmp_path / "x")
    with pytest.raises(ValueError, match="one chunk"):
        stored[1:4, :] = a[1:4]
    with pytest.raises(ValueError, match="shape"):
        stored.write_chunk((0, 0), a)
    np.save(stored.chunk_file((1, 0)), np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="expected float64"):
        stored.read([0, 0], [6, 5])
    with open(stored.chunk_file((0, 0)), "r+b") as f:
        f.truncate(200)                      # the header (128 bytes) and 9 values
    with pytest.raises(OSError, match="truncated"):
        stored.read([0, 0], [3, 5])
    with pytest.raises(ValueError, match="tile"):
        ChunkFiles(tmp_path / "y", (6, 5), ((3, 2), (5,)), np.float32)


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return 1.0 + 0.5 * ((sum(grids) // 5) % 2) + 0.1 * rng.standard_normal(shape)


def _gaussian(dim, seed=3):
    return GaussianPatchScore().fit(np.random.default_rng(seed).normal(size=(500, dim)))


def _through_store(y, prior, chunks, tmp_path, monkeypatch, *, mask=None, **options):
    """denoise_dask with `store` (synchronous), counting the padded-window reads."""
    calls = []
    read = ChunkFiles.read_indexed
    monkeypatch.setattr(ChunkFiles, "read_indexed",
                        lambda self, index: calls.append(1) or read(self, index))
    with dask.config.set(scheduler="synchronous"):
        got = denoise_dask(da.from_array(y, chunks=chunks), prior, 0.1, store=tmp_path,
                           mask=None if mask is None else da.from_array(mask, chunks=chunks),
                           **options).compute()
    return got, len(calls)


@pytest.mark.parametrize("padding, stride, tiling", [
    ("reflect", 1, "overlap"), ("zero", 1, "overlap"), ("circular", 1, "overlap"),
    ("valid", 1, "overlap"), ("reflect", (2, 3), "overlap"), ("zero", (2, 3), "overlap"),
    ("valid", (2, 3), "overlap"), ("reflect", 1, "random_shift"),
    ("zero", 1, "random_shift"), ("circular", 1, "random_shift"),
    ("reflect", (2, 3), "shifted_overlap"), ("zero", (3, 2), "shifted_overlap")])
def test_store_equals_in_memory_every_padding(padding, stride, tiling, tmp_path,
                                              monkeypatch):
    # 37 x 29 in 16 x 12 chunks (3 x 3, the last ones short): border and interior windows
    y = _image((37, 29))
    prior = PatchPrior(_gaussian(16), 4, stride=stride, padding=padding, tiling=tiling)
    want = map_estimate(y, Identity(y.shape), 0.1, prior, method="hqs", n_steps=3, tol=0,
                        rng=7).x
    got, windows = _through_store(y, prior, (16, 12), tmp_path, monkeypatch, n_steps=3,
                                  rng=7)
    assert windows == 3 * 3 * 3                         # every block read its window
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.max(np.abs(want)))


def test_store_equals_in_memory_intensity_mask_momentum_3d(tmp_path, monkeypatch):
    # a calibrated intensity normalisation (the chunk re-read after the score), the
    # gradient method with momentum and a mask (point, data and mask chunks), and 3-D
    y = _image((20, 23))
    reference = IntensityReference.from_images([_image((24, 24), seed=s) for s in range(4)],
                                               rng=0)
    prior = PatchPrior(_gaussian(9), 3, intensity="affine",
                       reference=reference).calibrate(3.0 * y + 1.0, 0.3)
    want = map_estimate(3.0 * y + 1.0, Identity(y.shape), 0.1, prior, method="hqs",
                        n_steps=2, tol=0).x
    got, _ = _through_store(3.0 * y + 1.0, prior, (9, 8), tmp_path / "a", monkeypatch,
                            n_steps=2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.max(np.abs(want)))
    mask = np.random.default_rng(5).random(y.shape) < 0.7
    prior = PatchPrior(_gaussian(9), 3, padding="zero")
    want = map_estimate(y * mask, Mask(mask), 0.1, prior, method="gradient", momentum=True,
                        n_steps=4, tol=0).x
    got, _ = _through_store(y * mask, prior, (9, 8), tmp_path / "b", monkeypatch,
                            mask=mask, method="gradient", momentum=True, n_steps=4)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.max(np.abs(want)))
    v = _image((11, 9, 10))
    prior = PatchPrior(_gaussian(27), (3, 3, 3), padding="reflect")
    want = map_estimate(v, Identity(v.shape), 0.1, prior, method="hqs", n_steps=2, tol=0).x
    got, windows = _through_store(v, prior, (5, 4, 6), tmp_path / "c", monkeypatch,
                                  n_steps=2)
    assert windows == 2 * 2 * 2 * 2                 # 11 = 5 + 6: the short chunk merged
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.max(np.abs(want)))

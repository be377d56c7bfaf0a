"""Hostile files through the readers and failing disks through the writers.

Every file of ``tests/data/hostile/`` must give exactly the exception of the table in
``hostile_cases.py``, with a message naming the file; decompression bombs are refused
before anything is inflated; writes that fail (read-only or full disk, a folder as the
destination) raise an ``OSError`` naming the destination, keep the previous file and leave
no temporary file.
"""

import errno
import os
import resource
import tempfile
import tracemalloc

import numpy as np
import pytest

from fastscore import _atomic
from fastscore import io as fio
from fastscore.io import ModelFileError
from hostile_cases import (CASES, GOOD, HOSTILE_DIR, HOSTILE_FILES, hostile_path, loaders,
                           write_zip_bomb)


@pytest.mark.parametrize(("name", "api", "exc", "match"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_hostile_file_gives_its_exact_error(name, api, exc, match):
    path = hostile_path(name)
    with pytest.raises(exc, match=match) as info:
        loaders()[api](path)
    assert type(info.value) is exc
    assert name in str(info.value)


@pytest.mark.parametrize(("name", "api"), GOOD)
def test_control_files_load(name, api):
    assert loaders()[api](hostile_path(name)) is not None


def test_corpus_is_small_and_fully_tabled():
    on_disk = sorted(f for f in os.listdir(HOSTILE_DIR)
                     if not f.endswith(".py") and f not in {g for g, _ in GOOD})
    assert on_disk == HOSTILE_FILES
    sizes = {f: os.path.getsize(hostile_path(f)) for f in on_disk}
    assert max(sizes.values()) <= 8192, sizes
    assert len(on_disk) >= 40


def test_real_zip_bomb_refused_before_inflating(tmp_path):
    """A ~1 MB .npz whose params inflate to 2**28 float32 (1 GiB): refused from the declared
    sizes; neither Python nor NumPy allocates more than a few MB on the way."""
    path = write_zip_bomb(tmp_path / "bomb.npz", 2**28)
    assert os.path.getsize(path) < 2 * 2**20
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # kB on Linux
    tracemalloc.start()
    try:
        for load in (fio.read_model_file, fio.load_array):
            with pytest.raises((ModelFileError, ValueError), match="decompression bomb"):
                load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert peak < 16 * 2**20, peak
    assert rss_growth < 200 * 1024, rss_growth


def test_bomb_limit_spares_ordinary_compressed_archives(tmp_path):
    # a compressed archive of a large constant array below the floor loads
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, array=np.zeros(2**21, np.float32))   # 8 MiB -> ~8 kB
    assert fio.load_array(path).shape == (2**21,)


# ------------------------------------------------------------------ paths that are folders


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".png", ".tif", ".nii", ".nii.gz"])
def test_folder_as_input_names_it(tmp_path, suffix):
    folder = tmp_path / f"data{suffix}"
    folder.mkdir()
    if suffix in (".npy", ".npz"):
        with pytest.raises(IsADirectoryError, match="found a folder") as info:
            fio.load_array(folder)
        assert info.value.filename == str(folder)
    # an image path that is a folder: an OSError or ValueError naming it, nothing else
    with pytest.raises((IsADirectoryError, ValueError)) as info:
        fio.load_image(folder)
    assert str(folder) in str(info.value)
    if suffix == ".npz":
        from fastscore.nn import PatchScoreModel

        with pytest.raises(IsADirectoryError, match=str(folder)):
            PatchScoreModel.load(folder)


def test_folder_as_output_names_it(tmp_path):
    folder = tmp_path / "out.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        fio.write_model_file(folder, "k", {"a": np.zeros(2)})
    with pytest.raises(IsADirectoryError):
        fio.save_image(tmp_path / "out.npz", np.zeros((4, 4)))


# ------------------------------------------------------------------ failing disks


def _leftovers(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".tmp") or f.startswith("."))


_WRITERS = {
    "model": lambda p: fio.write_model_file(p, "k", {"a": np.arange(5000.0)}),
    "array": lambda p: fio.save_array(p, np.arange(5000.0)),
    "png": lambda p: fio.save_image(p, np.arange(4096.0).reshape(64, 64)),
    "tif": lambda p: fio.save_image(p, np.arange(4096.0).reshape(64, 64)),
    "nii": lambda p: fio.save_image(p, np.arange(4096.0).reshape(16, 16, 16)),
    "nii.gz": lambda p: fio.save_image(p, np.arange(4096.0).reshape(16, 16, 16)),
}
_SUFFIX = {"model": ".npz", "array": ".npy", "png": ".png", "tif": ".tif", "nii": ".nii",
           "nii.gz": ".nii.gz"}


@pytest.mark.parametrize("what", sorted(_WRITERS))
def test_full_disk_names_destination_keeps_old_file(tmp_path, monkeypatch, what):
    """Writes go to /dev/full (real ENOSPC from the kernel); the old file survives."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    path = tmp_path / f"out{_SUFFIX[what]}"
    path.write_bytes(b"previous contents")
    real_mkstemp = tempfile.mkstemp

    def full_mkstemp(*args, **kwargs):
        fd, tmp = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), tmp

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", full_mkstemp)
    with pytest.raises(OSError, match="cannot write the file") as info:
        _WRITERS[what](path)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert path.read_bytes() == b"previous contents"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EDQUOT])
@pytest.mark.parametrize("what", ["model", "png", "nii.gz"])
def test_read_only_or_quota_names_destination(tmp_path, monkeypatch, code, what):
    path = tmp_path / f"out{_SUFFIX[what]}"

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), os.path.join(str(tmp_path), ".out.tmp"))

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(OSError) as info:
        _WRITERS[what](path)
    assert info.value.errno == code
    assert info.value.filename == str(path)
    assert "nothing was written" in str(info.value)
    if code == errno.EACCES:
        assert isinstance(info.value, PermissionError)
    assert not path.exists()
    assert _leftovers(tmp_path) == []


def test_failure_at_rename_names_destination(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"

    def refuse(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), src)

    monkeypatch.setattr(_atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="Read-only file system") as info:
        fio.write_model_file(path, "k", {"a": np.zeros(3)})
    assert info.value.filename == str(path)
    assert _leftovers(tmp_path) == []


def test_scaling_written_by_save_image_still_round_trips(tmp_path):
    """The stricter fastscore-scaling check accepts what save_image writes (8 and 16 bit,
    constant images, negative ranges)."""
    rng = np.random.default_rng(0)
    for bits in (8, 16):
        for img in (rng.uniform(-3, -1, (8, 8)), np.full((8, 8), 2.5), rng.normal(size=(8, 8))):
            path = fio.save_image(tmp_path / f"a{bits}.png", img, bits=bits)
            back = fio.load_image(path)
            step = (img.max() - img.min()) / (2**bits - 1)
            np.testing.assert_allclose(back, img, atol=max(step, 1e-6) + 1e-6 * abs(img).max())

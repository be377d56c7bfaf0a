import json
import os
import zipfile

import numpy as np
import pytest

import fastscore
from fastscore import _atomic
from fastscore import io as fio
from fastscore.io import (
    FORMAT_VERSION,
    ModelFileError,
    load_array,
    read_model_file,
    save_array,
    write_model_file,
)


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"W0": rng.standard_normal((9, 40)).astype(np.float32),
            "b0": rng.standard_normal(40).astype(np.float32),
            "layers/1/W": rng.standard_normal((40, 9)),
            "step": np.array(17, dtype=np.int64),
            "mask": rng.random(5) > 0.5}


META = {"architecture": [9, 40, 9], "activations": ["leaky_relu", "identity"],
        "sigma_range": [0.01, 1.0], "patch_size": (3, 3), "dtype": "float32",
        "normalisation": {"mean": np.float32(0.5), "std": 0.25},
        "lr_max": float("inf")}


def _files(folder):
    return sorted(os.listdir(folder))


def test_round_trip(tmp_path):
    path = tmp_path / "model.npz"
    arrays = _arrays()
    assert write_model_file(path, "patch_score_model", arrays, META) == str(path)
    got, meta = read_model_file(path, "patch_score_model")
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["kind"] == "patch_score_model"
    assert meta["fastscore_version"] == fastscore.__version__
    assert meta["architecture"] == [9, 40, 9] and meta["patch_size"] == [3, 3]
    assert meta["normalisation"] == {"mean": 0.5, "std": 0.25}
    assert meta["lr_max"] == float("inf")
    # any kind accepted with kind=None; compressed files read the same
    assert read_model_file(str(path))[1]["kind"] == "patch_score_model"
    write_model_file(tmp_path / "c.npz", "checkpoint", arrays, compress=True)
    got, meta = read_model_file(tmp_path / "c.npz", "checkpoint")
    np.testing.assert_array_equal(got["W0"], arrays["W0"])
    assert _files(tmp_path) == ["c.npz", "model.npz"]          # no temp files left


def test_overwrite_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "m.npz"
    write_model_file(path, "k", {"a": np.zeros(3)})
    os.chmod(path, 0o640)
    write_model_file(path, "k", {"a": np.ones(3)})
    np.testing.assert_array_equal(read_model_file(path, "k")[0]["a"], np.ones(3))
    assert os.stat(path).st_mode & 0o777 == 0o640
    fresh = tmp_path / "fresh.npz"
    write_model_file(fresh, "k", {})
    assert os.stat(fresh).st_mode & 0o777 == 0o666 & ~_atomic.umask()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_model_file(path, "k")


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1, 30])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "m.npz"
    write_model_file(path, "k", _arrays(), META)
    data = path.read_bytes()
    n = int(len(data) * keep) if keep < 1 else keep
    path.write_bytes(data[:n])
    with pytest.raises(ModelFileError, match="truncated") as info:
        read_model_file(path, "k")
    assert isinstance(info.value, ValueError) and info.value.path == str(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        read_model_file(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelFileError, match="not an .npz") as info:
        read_model_file(path, "k")
    assert str(path) in str(info.value)


def test_corrupt_member_detected(tmp_path):
    # flip bytes inside the stored (uncompressed) array data: the zip CRC catches it
    path = tmp_path / "m.npz"
    big = np.arange(10_000, dtype=np.float64)
    write_model_file(path, "k", {"big": big})
    data = bytearray(path.read_bytes())
    offset = data.find(big[5000:5004].tobytes())
    assert offset > 0
    data[offset:offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt"):
        read_model_file(path, "k")


def test_kind_mismatch(tmp_path):
    path = tmp_path / "m.npz"
    write_model_file(path, "checkpoint", {"a": np.zeros(2)})
    with pytest.raises(ModelFileError, match="'checkpoint', not a 'patch_score_model'"):
        read_model_file(path, "patch_score_model")


def _write_raw(path, payload):
    np.savez(path, **payload)


def test_missing_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    _write_raw(path, {"a": np.zeros(3)})
    with pytest.raises(ModelFileError, match="no fastscore metadata"):
        read_model_file(path)


def _meta_bytes(meta):
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def test_newer_format_version(tmp_path):
    path = tmp_path / "future.npz"
    _write_raw(path, {"a": np.zeros(3), fio._METADATA_KEY: _meta_bytes(
        {"format_version": FORMAT_VERSION + 1, "kind": "k", "fastscore_version": "9.0"})})
    with pytest.raises(ModelFileError, match="upgrade fastscore"):
        read_model_file(path, "k")


@pytest.mark.parametrize("meta,match", [
    (b"{not json", "not valid JSON"),
    ([1, 2], "not a JSON object"),
    ({"kind": "k"}, "format_version"),
    ({"format_version": "1", "kind": "k"}, "format_version"),
    ({"format_version": 1}, "kind"),
])
def test_bad_metadata(tmp_path, meta, match):
    path = tmp_path / "bad.npz"
    raw = np.frombuffer(meta, dtype=np.uint8) if isinstance(meta, bytes) else _meta_bytes(meta)
    _write_raw(path, {fio._METADATA_KEY: raw})
    with pytest.raises(ModelFileError, match=match):
        read_model_file(path)


def test_pickled_member_refused(tmp_path):
    path = tmp_path / "pickle.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object),
             **{fio._METADATA_KEY: _meta_bytes({"format_version": 1, "kind": "k"})})
    with pytest.raises(ModelFileError, match="corrupt"):
        read_model_file(path)


def test_atomic_failure_during_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = _arrays(0)
    write_model_file(path, "k", old, {"generation": 1})
    before = path.read_bytes()

    real_write_array = np.lib.format.write_array
    calls = []

    def failing_write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:                     # a few arrays in: half a file on disk
            fp.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write_array)
    with pytest.raises(OSError, match="No space"):
        write_model_file(path, "k", _arrays(1), {"generation": 2})
    monkeypatch.undo()
    assert len(calls) == 3
    assert path.read_bytes() == before                      # old file intact
    arrays, meta = read_model_file(path, "k")
    assert meta["generation"] == 1
    np.testing.assert_array_equal(arrays["W0"], old["W0"])
    assert _files(tmp_path) == ["m.npz"]                    # temp file removed


def test_atomic_failure_at_fsync_and_rename(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    write_model_file(path, "k", {"a": np.zeros(3)})
    before = path.read_bytes()
    for target in ("fsync", "replace"):
        def boom(*args, _target=target, **kwargs):
            raise OSError(5, f"simulated {_target} failure")
        with monkeypatch.context() as m:
            m.setattr(fio.os, target, boom)
            with pytest.raises(OSError, match=target):
                write_model_file(path, "k", {"a": np.ones(3)})
        assert path.read_bytes() == before
        assert _files(tmp_path) == ["m.npz"]


def test_temp_file_is_in_destination_folder(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.dirname(dst), os.path.basename(src)))
        return real(src, dst)

    monkeypatch.setattr(fio.os, "replace", spy)
    write_model_file(tmp_path / "m.npz", "k", {"a": np.zeros(1)})
    (src_dir, dst_dir, name), = seen
    assert src_dir == dst_dir == str(tmp_path) and name.startswith(".m.npz.")


def test_write_errors(tmp_path):
    with pytest.raises(TypeError, match="kind"):
        write_model_file(tmp_path / "m.npz", "", {})
    with pytest.raises(TypeError, match="arrays"):
        write_model_file(tmp_path / "m.npz", "k", [np.zeros(2)])
    with pytest.raises(TypeError, match="object"):
        write_model_file(tmp_path / "m.npz", "k", {"a": np.array([None])})
    with pytest.raises(ValueError, match="names"):
        write_model_file(tmp_path / "m.npz", "k", {fio._METADATA_KEY: np.zeros(1)})
    with pytest.raises(ValueError, match="format_version"):
        write_model_file(tmp_path / "m.npz", "k", {}, {"format_version": 3})
    with pytest.raises(TypeError, match="JSON"):
        write_model_file(tmp_path / "m.npz", "k", {}, {"f": object()})
    with pytest.raises(FileNotFoundError, match="folder"):
        write_model_file(tmp_path / "no" / "m.npz", "k", {})
    assert _files(tmp_path) == []


def test_model_file_is_a_standard_npz(tmp_path):
    path = tmp_path / "m.npz"
    write_model_file(path, "k", {"a": np.arange(3)})
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(["a.npy", fio._METADATA_KEY + ".npy"])
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["a"], np.arange(3))


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_save_load_array(tmp_path, suffix):
    x = np.random.default_rng(0).standard_normal((5, 16, 16)).astype(np.float32)
    path = tmp_path / f"img{suffix}"
    assert save_array(path, x) == str(path)
    y = load_array(path)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(x, y)
    assert _files(tmp_path) == [f"img{suffix}"]


def test_load_array_npz_keys(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, a=np.zeros(2), b=np.ones(3))
    with pytest.raises(ValueError, match="pass `key`"):
        load_array(path)
    np.testing.assert_array_equal(load_array(path, key="b"), np.ones(3))
    with pytest.raises(ValueError, match="no array 'c'"):
        load_array(path, key="c")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_load_array_truncated_and_missing(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    save_array(path, np.arange(1000.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"x\\{suffix}"):
        load_array(path)
    with pytest.raises(FileNotFoundError):
        load_array(tmp_path / f"missing{suffix}")


def test_array_errors(tmp_path):
    with pytest.raises(NotImplementedError, match=".png"):
        save_array(tmp_path / "x.png", np.zeros((2, 2)))
    with pytest.raises(NotImplementedError, match=".nii.gz"):
        load_array(tmp_path / "x.nii.gz")
    with pytest.raises(ValueError, match=".npy or .npz"):
        save_array(tmp_path / "x.txt", np.zeros(2))
    with pytest.raises(TypeError, match="object"):
        save_array(tmp_path / "x.npy", np.array([None]))
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy"):
        load_array(path)

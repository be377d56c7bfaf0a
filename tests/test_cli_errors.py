"""Exit codes of the fastscore command: 2 and one line for every user mistake and hostile
file, 1 for an internal error (traceback with --debug), 130 on Ctrl-C; one overwrite rule."""
import errno
import os
import struct
import time
import zlib

import numpy as np
import pytest

from fastscore.cli import main
from fastscore.data import rectangles
from fastscore.io import save_image
from fastscore.train import fit_patch_score


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small model (training quality is irrelevant here) and a noisy image."""
    folder = tmp_path_factory.mktemp("cli-errors")
    model = fit_patch_score(rectangles(12, rng=0, dtype=np.float32), patch_size=3,
                            n_steps=2, batch_size=32, rng=0)
    x = rectangles(1, rng=1, dtype=np.float32)[0]
    y = x + 0.1 * np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    return {"model": model.save(str(folder / "model.npz")),
            "noisy": save_image(str(folder / "noisy.npy"), y)}


def denoise(files, *extra, out="o.npy"):
    return ["denoise", files["noisy"], "--model", files["model"], "--sigma", "0.1",
            "--out", out, "--steps", "2", *extra]


# ------------------------------------------------------------------- 1, 130, --debug
def _explode(*args, **kwargs):
    raise ValueError("deep inside the computation")


def _type_error(*args, **kwargs):
    raise TypeError("deep inside the computation")


@pytest.mark.parametrize("bug", [_explode, _type_error])
def test_internal_error_exit_1_with_one_line_then_traceback_with_debug(
        bug, files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fastscore.prior.PatchPrior.score", bug)
    code, _, err = run(denoise(files), capsys)
    assert code == 1
    line = one_line(err)
    kind = "ValueError" if bug is _explode else "TypeError"
    assert f"internal error: {kind}: deep inside the computation" in line
    assert "run with --debug for the traceback" in line
    code, _, err = run(denoise(files, "--debug"), capsys)
    assert code == 1
    assert "Traceback" in err and bug.__name__ in err and "--debug" not in err.splitlines()[-1]
    assert not os.path.exists("o.npy")


def test_user_error_traceback_only_with_debug(files, tmp_path, capsys):
    args = denoise(files, out=tmp_path / "o.npy") + ["--sigma", "1e-300"]
    code, _, err = run(args, capsys)
    assert code == 2 and "--sigma must be between" in one_line(err)
    code, _, err = run(args + ["--debug"], capsys)
    assert code == 2 and "Traceback" in err


def test_ctrl_c_exit_130(files, tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("fastscore.prior.PatchPrior.score", interrupt)
    code, _, err = run(denoise(files, out=tmp_path / "o.npy"), capsys)
    assert code == 130 and one_line(err) == "fastscore denoise: interrupted"


# --------------------------------------------------------------- hostile input files
def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width, height):
    """A valid PNG header claiming width x height 8-bit grey pixels, with no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))


def _png_with_scaling(path, text):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("fastscore-scaling", text)
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(path, pnginfo=meta)
    return path


def _nested_model(path, depth=200_000):
    meta = np.frombuffer(b"[" * depth + b"]" * depth, np.uint8)
    np.savez(path, __fastscore_metadata__=meta, params=np.zeros(3, np.float32))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: _png_with_scaling(d / "zero.png", "0,1,0"), "cannot read noisy image"),
    (lambda d: _png_with_scaling(d / "text.png", "low,high,levels"), "cannot read noisy image"),
    (lambda d: _png_with_scaling(d / "nan.png", "nan,1,255"), "invalid fastscore-scaling text"),
    (lambda d: (d / "bomb.png").write_bytes(_png_claiming(30000, 30000)) and d / "bomb.png",
     "cannot read noisy image"),
    (lambda d: np.save(d / "c.npy", np.ones((16, 16), np.complex64)) or d / "c.npy",
     "is complex (complex64)"),
    (lambda d: np.save(d / "big.npy", np.full((16, 16), 1e300)) or d / "big.npy",
     "beyond the float32 range"),
])
def test_hostile_images(make, message, files, tmp_path, capsys):
    path = make(tmp_path)
    args = denoise(files, out=tmp_path / "o.npy")
    args[1] = path
    code, _, err = run(args, capsys)
    assert code == 2 and message in one_line(err)


def test_hostile_model_files(files, tmp_path, capsys):
    code, _, err = run(["info", _nested_model(tmp_path / "deep.npz")], capsys)
    assert code == 2 and "cannot read model" in one_line(err)
    code, _, err = run(["info", tmp_path], capsys)
    assert code == 2 and "is a folder" in one_line(err)
    code, _, err = run(denoise(files, out=tmp_path / "o.npy") + ["--model", tmp_path], capsys)
    assert code == 2 and "is a folder" in one_line(err)


def test_complex_measurements_refused_except_for_mri(files, tmp_path, capsys):
    np.save(tmp_path / "y.npy", np.ones((16, 16), np.complex128))
    code, _, err = run(["reconstruct", "--operator", "blur", "--data", tmp_path / "y.npy",
                        "--model", files["model"], "--noise-sigma", "0.1",
                        "--out", tmp_path / "x.npy"], capsys)
    assert code == 2 and "is complex (complex128)" in one_line(err)


@pytest.mark.parametrize("errno_code, reason", [(errno.EROFS, "Read-only file system"),
                                                (errno.ENOSPC, "No space left on device")])
def test_unwritable_disk(errno_code, reason, files, tmp_path, capsys, monkeypatch):
    def refuse(path, write):
        raise OSError(errno_code, os.strerror(errno_code), path)
    monkeypatch.setattr("fastscore._atomic.atomic_write", refuse)
    code, _, err = run(denoise(files, out=tmp_path / "o.npy"), capsys)
    assert code == 2 and f"cannot write {tmp_path / 'o.npy'}: {reason}" in one_line(err)
    code, _, err = run(["train", "--phantom", "rectangles", "--n-images", "8", "--steps", "2",
                        "--checkpoint-every", "100", "--out", tmp_path / "m.npz"], capsys)
    assert code == 2 and reason in one_line(err)


# ------------------------------------------------------------ sizes and option ranges
@pytest.mark.parametrize("args, message", [
    (["sample", "--shape", "100000", "100000"], "would need about"),
    (["sample", "--shape", "16", "16", "--n", "10000000000"], "would need about"),
    (["sample", "--shape", "16", "16", "--levels", "0"], "--levels: expected an integer >= 1"),
    (["sample", "--shape", "2", "2"], "smaller than the model's patch size"),
    (["sample", "--shape", "16", "16", "16"], "--shape 16 16 16 is 3-D"),
    (["reconstruct", "--operator", "superres", "--factor", "100000", "--noise-sigma", "0.1"],
     "would need about"),
    (["reconstruct", "--operator", "superres", "--noise-sigma", "1e-300"],
     "--noise-sigma must be between"),
    (["denoise", "--sigma", "nan"], "--sigma: expected a number > 0"),
    (["denoise", "--sigma", "1e30"], "--sigma must be between"),
    (["denoise", "--weight", "lots"], "--weight: must be mean, sum or a number"),
    (["denoise", "--threads", "0"], "--threads: expected a nonzero integer"),
])
def test_sizes_and_ranges_refused_before_work(args, message, files, tmp_path, capsys,
                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = {"sample": ["--model", files["model"], "--out", "s"],
            "reconstruct": ["--data", files["noisy"], "--model", files["model"], "--out",
                            "x.npy"],
            "denoise": [files["noisy"], "--model", files["model"], "--sigma", "0.1",
                        "--out", "o.npy"]}[args[0]]
    t0 = time.perf_counter()
    code, _, err = run([args[0], *base, *args[1:]], capsys)
    assert code == 2 and message in one_line(err)
    assert time.perf_counter() - t0 < 20 and not os.listdir(tmp_path)


@pytest.mark.parametrize("extra, message", [
    (["--sigma-min", "2", "--sigma-max", "1"], "--sigma-min (2) must be smaller than"),
    (["--resume"], "--resume: no checkpoint"),
    (["--out", "/missing/folder/m.npz"], "the folder /missing/folder does not exist"),
    (["--scale-augment", "2", "1"], "--scale-augment LOW HIGH needs 0 < LOW <= HIGH"),
    (["--patch-size", "20"], "--patch-size 20 does not fit a training image of shape (16, 16)"),
])
def test_train_refuses_before_training(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fastscore.train.fit_patch_score", _explode)   # must not be reached
    args = ["train", "--phantom", "rectangles", "--n-images", "8", "--out", "m.npz", *extra]
    code, _, err = run(args, capsys)
    assert code == 2 and message in one_line(err)
    assert not os.listdir(tmp_path)


# --------------------------------------------------------------------- one overwrite rule
def test_output_never_an_input_and_never_overwritten_without_flag(files, tmp_path, capsys):
    out = tmp_path / "o.npy"
    for args in (denoise(files, out=files["noisy"]),
                 denoise(files, "--overwrite", out=files["noisy"]),
                 denoise(files, out=files["model"])):
        code, _, err = run(args, capsys)
        assert code == 2 and "is also an input" in one_line(err)
    assert run(denoise(files, out=out), capsys)[0] == 0
    before = out.read_bytes()
    code, _, err = run(denoise(files, "--steps", "3", out=out), capsys)
    assert code == 2 and "exists (use --overwrite to replace it)" in one_line(err)
    assert out.read_bytes() == before
    assert run(denoise(files, "--steps", "3", "--overwrite", out=out), capsys)[0] == 0
    assert out.read_bytes() != before
    # posterior: the _std file counts too
    (tmp_path / "p_std.npy").write_bytes(b"")
    code, _, err = run(denoise(files, "--method", "posterior", "--samples", "2",
                               out=tmp_path / "p.npy"), capsys)
    assert code == 2 and "p_std.npy exists" in one_line(err)


def test_sample_outputs_follow_the_same_rule(files, tmp_path, capsys):
    base = ["sample", "--model", files["model"], "--shape", "8", "8", "--levels", "1",
            "--steps-per-level", "1", "--n", "2"]
    (tmp_path / "notes").write_text("keep me")
    code, _, err = run(base + ["--out", tmp_path / "notes"], capsys)
    assert code == 2 and "exists and is not a folder" in one_line(err)
    assert (tmp_path / "notes").read_text() == "keep me"
    assert run(base + ["--out", tmp_path / "s.png"], capsys)[0] == 0
    code, _, err = run(base + ["--out", tmp_path / "s.png"], capsys)
    assert code == 2 and "s_000.png exists" in one_line(err)
    assert run(base + ["--out", tmp_path / "s.png", "--overwrite"], capsys)[0] == 0
    assert run(base + ["--out", tmp_path / "folder"], capsys)[0] == 0
    code, _, err = run(base + ["--out", tmp_path / "folder"], capsys)
    assert code == 2 and "sample_000.npy exists" in one_line(err)
    code, _, err = run(base + ["--out", tmp_path / "s.jpg"], capsys)
    assert code == 2 and "cannot write .jpg" in one_line(err)
    code, _, err = run(base[:4] + ["8", "8", "8"] + base[6:] + ["--out", tmp_path / "v.png"],
                       capsys)
    assert code == 2


def test_train_overwrite_and_checkpoint_rules(tmp_path, capsys):
    out = tmp_path / "m.npz"
    out.write_bytes(b"old")
    args = ["train", "--phantom", "rectangles", "--n-images", "8", "--steps", "2",
            "--out", out]
    code, _, err = run(args, capsys)
    assert code == 2 and "exists (use --overwrite" in one_line(err)
    code, _, err = run(args + ["--checkpoint", out, "--overwrite"], capsys)
    assert code == 2 and "is also an input" in one_line(err)
    assert out.read_bytes() == b"old"


def test_missing_writer_refused_before_work(files, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "PIL.Image", None)                 # Pillow "missing"
    monkeypatch.setattr("fastscore.prior.PatchPrior.score", _explode)   # must not be reached
    code, _, err = run(denoise(files, out=tmp_path / "o.png"), capsys)
    assert code == 2 and "pip install 'fastscore[io]'" in one_line(err)

"""The fastscore command end to end (small settings), and its one-line user errors."""
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fastscore.cli import main
from fastscore.data import rectangles
from fastscore.io import load_image, save_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    code = main(["train", "--phantom", "rectangles", "--n-images", "40", "--steps", "40",
                 "--batch-size", "128", "--out", str(path), "--no-progress"])
    assert code == 0 and path.exists()
    return path


@pytest.fixture(scope="module")
def noisy_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    x = rectangles(1, size=16, rng=3, dtype=np.float32)[0]
    y = x + 0.1 * np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    return save_image(folder / "noisy.npy", y)


def test_demo_quick(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = run(["demo", "--quick", "--out", out_dir, "--no-progress"], capsys)
    assert code == 0, err
    for word in ("noisy", "MAP", "posterior mean", "TV (best weight)", "PSNR (dB)", "SSIM"):
        assert word in out
    assert (out_dir / "model.npz").exists()
    assert (out_dir / "demo.png").stat().st_size > 1000          # matplotlib is in [test]
    # never overwrites: a second run goes to a new folder
    code, out, _ = run(["demo", "--quick", "--out", out_dir, "--no-progress"], capsys)
    assert code == 0 and f"{out_dir}-2" in out


def test_train_writes_model_and_checkpoint(model_path, capsys):
    assert os.path.exists(str(model_path) + ".checkpoint.npz")
    code, out, _ = run(["info", model_path], capsys)
    assert code == 0
    for word in ("patch size", "3x3", "architecture", "noise range", "fastscore version"):
        assert word in out


def test_train_resume(model_path, tmp_path, capsys):
    out = tmp_path / "m2.npz"
    args = ["train", "--phantom", "rectangles", "--n-images", "40", "--steps", "20",
            "--batch-size", "64", "--out", out, "--no-progress", "--checkpoint",
            tmp_path / "c.npz"]
    assert run(args, capsys)[0] == 0
    code, text, _ = run(args[:-2] + ["--checkpoint", tmp_path / "c.npz", "--resume",
                                     "--overwrite"], capsys)
    assert code == 0 and "trained 20 steps" in text


@pytest.mark.parametrize("method", ["map", "hqs", "posterior"])
def test_denoise(model_path, noisy_path, tmp_path, method, capsys):
    out = tmp_path / "clean.npy"
    code, _, err = run(["denoise", noisy_path, "--model", model_path, "--sigma", "0.1",
                        "--out", out, "--method", method, "--samples", "4", "--steps", "10",
                        "--no-progress"], capsys)
    assert code == 0, err
    assert load_image(out).shape == (16, 16)
    if method == "posterior":
        assert load_image(tmp_path / "clean_std.npy").min() >= 0


def test_denoise_levels_fuse_a_trained_model(model_path, noisy_path, tmp_path, capsys):
    outs = []
    for levels in ("1", "2"):
        outs.append(tmp_path / f"l{levels}.npy")
        code, _, err = run(["denoise", noisy_path, "--model", model_path, "--sigma", "0.1",
                            "--out", outs[-1], "--levels", levels, "-q"], capsys)
        assert code == 0, err
    plain = tmp_path / "plain.npy"
    assert run(["denoise", noisy_path, "--model", model_path, "--sigma", "0.1", "--out",
                plain, "-q"], capsys)[0] == 0
    np.testing.assert_array_equal(load_image(plain), load_image(outs[0]))   # default: 1
    assert not np.allclose(load_image(outs[0]), load_image(outs[1]))


@pytest.mark.parametrize("operator, extra", [
    ("mri", ["--acceleration", "2"]),
    ("ct", ["--angles", "8", "--image-shape", "16", "16"]),
    ("blur", ["--blur-sigma", "1.0"]),
    ("inpaint", ["--mask", "MASK"]),
    ("superres", ["--factor", "2"]),
])
def test_reconstruct(model_path, tmp_path, operator, extra, capsys):
    from fastscore import operators as ops

    x = rectangles(1, size=16, rng=5)[0]
    mask = np.random.default_rng(6).random(x.shape) > 0.3
    save_image(tmp_path / "mask.npy", mask.astype(np.float32))
    A = {"mri": lambda: ops.MRI(ops.cartesian_mask(x.shape, 2, rng=0)),
         "ct": lambda: ops.ParallelBeamCT(x.shape, np.linspace(0, np.pi, 8, endpoint=False)),
         "blur": lambda: ops.Blur(ops.gaussian_kernel(1.0), x.shape),
         "inpaint": lambda: ops.Mask(mask),
         "superres": lambda: ops.Downsample(x.shape, 2)}[operator]()
    y = A.simulate(x, 0.05, rng=7)
    data = tmp_path / "y.npy"
    np.save(data, y if operator == "mri" else y.astype(np.float32))
    extra = [str(tmp_path / "mask.npy") if e == "MASK" else e for e in extra]
    code, _, err = run(["reconstruct", "--operator", operator, "--data", data, "--model",
                        model_path, "--noise-sigma", "0.05", "--out", tmp_path / "x.npy",
                        "--steps", "5", "--no-progress", *extra], capsys)
    assert code == 0, err
    assert load_image(tmp_path / "x.npy").shape == (16, 16)


def test_sample(model_path, tmp_path, capsys):
    code, _, err = run(["sample", "--model", model_path, "--shape", "12", "12", "--n", "2",
                        "--levels", "3", "--steps-per-level", "3", "--out", tmp_path / "s"],
                       capsys)
    assert code == 0, err
    files = sorted(os.listdir(tmp_path / "s"))
    assert len(files) == 2 and load_image(tmp_path / "s" / files[0]).shape == (12, 12)


def test_bench_quick(capfd, monkeypatch):
    monkeypatch.chdir(REPO)
    code = main(["bench", "--only", "patches"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "bench_patches.py" in out and "time / fastscore" in out


@pytest.mark.parametrize("args, message", [
    (["denoise", "missing.npy", "--model", "MODEL", "--sigma", "0.1", "--out", "o.npy"],
     "noisy image file not found: missing.npy"),
    (["denoise", "NOISY", "--model", "nomodel.npz", "--sigma", "0.1", "--out", "o.npy"],
     "model file not found: nomodel.npz"),
    (["denoise", "BADIMAGE", "--model", "MODEL", "--sigma", "0.1", "--out", "o.npy"],
     "cannot read noisy image"),
    (["info", "BADMODEL"], "bad.npz: the .npz (zip) archive is truncated or damaged"),
    (["denoise", "NOISY", "--model", "MODEL5", "--sigma", "0.1", "--out", "o.npy"],
     "smaller than the model's patch size"),
    (["denoise", "NOISY", "--model", "MODEL", "--sigma", "-1", "--out", "o.npy"],
     "--sigma: expected a number > 0"),
    (["reconstruct", "--operator", "inpaint", "--data", "NOISY", "--model", "MODEL",
      "--noise-sigma", "0.1", "--out", "o.npy"], "needs --mask"),
    (["reconstruct", "--operator", "mri", "--data", "NOISY", "--model", "MODEL",
      "--noise-sigma", "0.1", "--out", "o.npy"], "needs complex k-space data"),
    (["reconstruct", "--operator", "ct", "--data", "NOISY", "--model", "MODEL",
      "--noise-sigma", "0.1", "--out", "o.npy"], "needs --image-shape"),
    (["train", "--out", "m.npz"], "give training images"),
    (["denoise", "NOISY", "--model", "MODEL", "--sigma", "0.1", "--out", "o.npy",
      "--weight", "lots"], "--weight: must be mean, sum or a number"),
])
def test_user_mistakes_exit_2_with_one_line(args, message, model_path, noisy_path, tmp_path,
                                            capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    big = tmp_path / "tiny.npy"
    np.save(big, np.zeros((4, 4), np.float32))
    model5 = tmp_path / "m5.npz"
    if "MODEL5" in args:
        assert main(["train", "--phantom", "rectangles", "--n-images", "10", "--steps", "2",
                     "--patch-size", "5", "--out", str(model5), "--no-progress"]) == 0
        capsys.readouterr()
    subst = {"MODEL": str(model_path), "NOISY": str(noisy_path), "BADIMAGE": "bad.png",
             "BADMODEL": "bad.npz", "MODEL5": str(model5)}
    if "MODEL5" in args:
        subst["NOISY"] = str(big)
    code, _, err = run([subst.get(a, a) for a in args], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_help_everywhere():
    for command in ("demo", "train", "denoise", "reconstruct", "reconstruct-many", "sample",
                    "info", "bench"):
        out = subprocess.run([sys.executable, "-m", "fastscore.cli", command, "--help"],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0 and "example:" in out.stdout


def test_invariance_options_train_info_denoise(tmp_path, noisy_path, capsys):
    path = tmp_path / "inv.npz"
    code, _, err = run(["train", "--phantom", "rectangles", "--n-images", "30", "--steps", "10",
                        "--batch-size", "64", "--dc", "--intensity", "affine",
                        "--scale-augment", "0.5", "2", "--out", path, "--no-progress"], capsys)
    assert code == 0, err
    code, out, _ = run(["info", path], capsys)
    assert "invariances" in out and "dc, intensity affine" in out
    assert "training intensities" in out and "scale augment" in out
    y = load_image(noisy_path)
    shifted = tmp_path / "shifted.npy"
    save_image(shifted, 2.0 * y + 0.5)
    outs = {}
    for name, src, sigma, extra in (("plain", noisy_path, "0.1", []),
                                    ("shifted", shifted, "0.2", []),
                                    ("sym", noisy_path, "0.1", ["--symmetrize",
                                                                "--intensity", "scale"])):
        out = tmp_path / f"{name}-denoised.npy"
        code, _, err = run(["denoise", src, "--model", path, "--sigma", sigma, "--out", out,
                            "--method", "hqs", "--steps", "4", "--no-progress", *extra], capsys)
        assert code == 0, err
        outs[name] = load_image(out)
    # intensity normalisation calibrated from the image: denoising is affine-equivariant
    np.testing.assert_allclose(outs["shifted"], 2.0 * outs["plain"] + 0.5, atol=2e-4)
    assert not np.allclose(outs["sym"], outs["plain"], atol=1e-4)


# ----------------------------------------------------------------- help, version, output
def _subparsers():
    from fastscore.cli import build_parser

    parser = build_parser()
    return parser, parser._subparsers._group_actions[0].choices


def test_help_shows_every_option_with_its_default_and_proper_descriptions():
    _, commands = _subparsers()
    assert set(commands) == {"demo", "train", "denoise", "reconstruct", "reconstruct-many",
                             "sample", "info", "bench"}
    for name, p in commands.items():
        assert p.description[0].isupper() and p.description.endswith("."), name
        text = p.format_help()
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings} has no help line"
            flag = action.nargs == 0
            if action.option_strings and not flag and action.default is not None:
                shown = (" ".join(map(str, action.default))
                         if isinstance(action.default, list) else str(action.default))
                assert f"(default: {shown})" in " ".join(text.split()), (name, action.dest)
        for option in ("-q", "-v", "--debug"):
            assert option in p._option_string_actions, (name, option)
        if name in ("info", "bench"):
            for option in ("--seed", "--threads", "--no-progress"):
                assert option not in p._option_string_actions, (name, option)
    assert "MRI, sparse-view CT" in commands["reconstruct"].description
    assert "Langevin" in commands["sample"].description
    assert "MAP" in commands["demo"].description
    for name in ("denoise", "reconstruct", "train"):
        assert "rescaled to [0, 1]" in " ".join(commands[name].format_help().split())
    assert "(default: 3000)" in commands["train"].format_help()


def test_version_and_info_show_it(model_path, capsys):
    from fastscore import __version__

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"fastscore {__version__}"
    code, out, _ = run(["info", model_path], capsys)
    assert code == 0 and f"fastscore version{' ' * 8}{__version__}" in out
    code, _, err = run(["info", model_path, "--seed", "1"], capsys)
    assert code == 2 and "unrecognized arguments: --seed 1" in err


def test_info_json(model_path, capsys):
    from fastscore import __version__

    code, out, err = run(["info", model_path, "--json", "-v"], capsys)
    info = json.loads(out)
    assert "model loaded" in err                         # -v details go to stderr
    assert code == 0 and info["fastscore_version"] == __version__
    assert info["config"]["patch_size"] == [3, 3] and info["n_params"] > 0
    assert info["config"]["training"]["n_steps"] == 40


def test_quiet_and_verbose(model_path, tmp_path, capsys):
    from PIL import Image

    x = rectangles(1, size=16, rng=3)[0]
    Image.fromarray(np.round(255 * np.clip(x, 0, 1)).astype(np.uint8)).save(tmp_path / "y.png")
    base = ["denoise", tmp_path / "y.png", "--model", model_path, "--sigma", "0.1",
            "--steps", "3"]
    code, out, err = run(base + ["--out", tmp_path / "q.npy", "-q"], capsys)
    assert code == 0 and out == "" and err == ""
    code, out, err = run(base + ["--out", tmp_path / "v.npy", "-v"], capsys)
    assert code == 0 and err == ""
    assert "sigma=0.1" in out and "method=hqs" in out                 # the settings used
    assert "model loaded:" in out and "threads:" in out               # timings, threads
    assert "intensities: 8-bit PNG, integer levels divided by 255 into [0, 1]" in out
    code, out, _ = run(base + ["--out", tmp_path / "n.npy"], capsys)
    assert code == 0 and len(out.splitlines()) == 1 and "intensities" not in out
    code, out, _ = run(["info", model_path, "-q"], capsys)
    assert code == 0 and "patch size" in out                          # the result itself


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_only_on_a_terminal(model_path, noisy_path, tmp_path, capsys,
                                          monkeypatch):
    base = ["denoise", noisy_path, "--model", model_path, "--sigma", "0.1", "--steps", "3"]
    code, _, err = run(base + ["--out", tmp_path / "a.npy"], capsys)     # stderr captured
    assert code == 0 and err == "" and "\r" not in err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([str(a) for a in base + ["--out", tmp_path / "b.npy"]]) == 0
    assert "\r" in terminal.getvalue()                                # a bar was drawn
    terminal.truncate(0)
    for flag in ("-q", "--no-progress"):
        assert main([str(a) for a in base + ["--out", tmp_path / f"c{flag}.npy", flag]]) == 0
    assert terminal.getvalue().strip("\x00") == ""


def test_stdin_stdout_round_trip(model_path, noisy_path, tmp_path):
    import fastscore

    # the fastscore under test (installed or built in place), never a bare source tree in
    # the working directory, which `python -m` would put first on sys.path
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastscore.__file__)))
    args = ["--model", str(model_path), "--steps", "3", "--seed", "5", "--threads", "1"]

    def command(*words, stdin=None):
        return subprocess.run([sys.executable, "-m", "fastscore.cli", *words], input=stdin,
                              capture_output=True, env=env, cwd=tmp_path, check=False)

    cases = {"denoise": ["denoise", "-", "--sigma", "0.1", *args],
             "reconstruct": ["reconstruct", "--operator", "blur", "--data", "-",
                             "--noise-sigma", "0.05", *args]}
    for name, words in cases.items():
        done = command(*words, "--out", "-", stdin=pathlib.Path(noisy_path).read_bytes())
        assert done.returncode == 0, done.stderr.decode()
        assert b"standard output" in done.stderr             # messages moved to stderr
        piped = np.load(io.BytesIO(done.stdout), allow_pickle=False)
        reference = tmp_path / f"{name}.npy"
        dash = words.index("-")
        done = command(*words[:dash], str(noisy_path), *words[dash + 1:], "--out",
                       str(reference))
        assert done.returncode == 0, done.stderr.decode()
        np.testing.assert_array_equal(piped, load_image(reference))
    done = command(*cases["denoise"], "--out", "-", stdin=b"not an array")
    assert done.returncode == 2 and done.stdout == b""
    assert b"cannot read the .npy array on standard input" in done.stderr


@pytest.mark.parametrize("out, n, written", [("s.tif", 1, ["s.tif"]),
                                             ("s.png", 2, ["s_000.png", "s_001.png"]),
                                             ("v.nii.gz", 2, ["v_000.nii.gz", "v_001.nii.gz"])])
def test_sample_writes_image_formats(out, n, written, model_path, tmp_path, capsys):
    code, _, err = run(["sample", "--model", model_path, "--shape", "12", "12", "--n", n,
                        "--levels", "2", "--steps-per-level", "2", "--out", tmp_path / out],
                       capsys)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == written
    assert load_image(tmp_path / written[0]).shape == (12, 12)

"""The command with the shipped priors: defaults, --sigma auto, --model NAME, info."""
import json

import numpy as np
import pytest

from fastscore.cli import main
from fastscore.metrics import psnr


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def noisy(tmp_path):
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    clean = (0.5 + 0.3 * np.sin(5 * xx + 2 * yy) * np.cos(3 * yy)).astype(np.float32)
    y = clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "noisy.npy", y)
    return tmp_path / "noisy.npy"


def test_denoise_defaults_natural_prior_and_estimated_sigma(noisy, tmp_path, capsys):
    code, out, err = run(["denoise", noisy, "--out", tmp_path / "x.npy"], capsys)
    assert code == 0 and err == ""
    line = next(l for l in out.splitlines() if l.startswith("noise sigma:"))
    assert abs(float(line.split()[2]) - 0.1) < 0.015                 # the σ used is printed
    assert "hqs estimate" in out
    clean = np.load(tmp_path / "clean.npy")
    x = np.load(tmp_path / "x.npy")
    assert psnr(clean, x) > psnr(clean, np.load(noisy)) + 5


def test_denoise_with_a_pretrained_name_and_quiet(noisy, tmp_path, capsys):
    code, out, err = run(["denoise", noisy, "--model", "phantom", "--sigma", "0.1", "--out",
                          tmp_path / "p.npy", "-q"], capsys)
    assert code == 0 and out == "" and err == ""
    assert np.load(tmp_path / "p.npy").shape == (40, 40)


def test_denoise_levels_are_the_library_fusion(noisy, tmp_path, capsys):
    """Default: the shipped prior fused over its levels, as pretrained.prior() with
    map_options(); --levels 1: the PatchPrior alone."""
    from fastscore import pretrained
    from fastscore.operators import Identity
    from fastscore.reconstruct import map_estimate

    y = np.load(noisy)
    for levels, extra in ((None, []), (1, ["--levels", "1"])):
        out = tmp_path / f"x{levels}.npy"
        assert run(["denoise", noisy, "--model", "phantom", "--sigma", "0.1", "--out", out,
                    "-q", *extra], capsys)[0] == 0
        ref = map_estimate(y, Identity(y.shape), 0.1, pretrained.prior("phantom",
                           levels=levels, rng=0), rng=0,
                           **pretrained.map_options("phantom", 0.1)).x
        np.testing.assert_allclose(np.load(out), ref, rtol=0, atol=1e-6)
    assert not np.allclose(np.load(tmp_path / "xNone.npy"), np.load(tmp_path / "x1.npy"),
                           atol=1e-4)


def test_denoise_posterior_samples_one_level(noisy, tmp_path, capsys):
    code, _, err = run(["denoise", noisy, "--method", "posterior", "--samples", "2",
                        "--sigma", "0.1", "--out", tmp_path / "m.npy", "-q"], capsys)
    assert code == 0 and err == ""
    assert np.load(tmp_path / "m_std.npy").shape == (40, 40)


def test_denoise_bad_input(noisy, tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.full((32, 32), 0.25))
    code, _, err = run(["denoise", tmp_path / "flat.npy", "--out", tmp_path / "f.npy"], capsys)
    assert code == 2 and "cannot estimate" in err and "constant" in err
    assert not (tmp_path / "f.npy").exists()
    code, _, err = run(["denoise", noisy, "--model", "photos", "--out", tmp_path / "u.npy"],
                       capsys)
    assert code == 2 and "natural, phantom" in err
    code, _, err = run(["denoise", noisy, "--sigma", "-1", "--out", tmp_path / "s.npy"],
                       capsys)
    assert code == 2 and "--sigma" in err
    code, _, err = run(["denoise", noisy, "--symmetrize", "--out", tmp_path / "y.npy"], capsys)
    assert code == 2 and "symmetrize" in err
    code, _, err = run(["denoise", noisy, "--method", "posterior", "--levels", "2", "--out",
                        tmp_path / "p.npy"], capsys)
    assert code == 2 and "--levels" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.npy").exists()


def test_info_pretrained(capsys):
    code, out, _ = run(["info", "--pretrained"], capsys)
    assert code == 0
    assert [l.split()[0] for l in out.splitlines()] == ["natural", "phantom"]
    assert all("fused over 3 levels" in l for l in out.splitlines())
    code, out, _ = run(["info", "--pretrained", "--json"], capsys)
    assert code == 0 and set(json.loads(out)) == {"natural", "phantom"}
    code, out, _ = run(["info", "natural", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["kind"] == "gaussian_mixture_patch_score"
    assert info["file"].endswith("natural.npz") and info["n_params"] > 0
    code, _, err = run(["info"], capsys)
    assert code == 2 and "--pretrained" in err

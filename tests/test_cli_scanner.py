"""``fastscore reconstruct`` on scanner data: fan-beam CT from its geometry options, with
every mistake ending in exit code 2 and one line."""

import numpy as np
import pytest

from fastscore.cli import main
from fastscore.data import rectangles
from fastscore.io import load_image
from fastscore.operators import FanBeamCT
from fastscore.train import fit_patch_score
from test_cli_errors import one_line


def run(args, capsys):
    """Exit code (also of option errors, which end in the parser), stdout, stderr."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    return (code, *capsys.readouterr())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-scanner")
    net = fit_patch_score(rectangles(12, rng=0, dtype=np.float32), patch_size=3,
                          n_steps=2, batch_size=32, rng=0)
    return net.save(str(folder / "model.npz"))


FAN = {"source_distance": 40.0, "detector_distance": 90.0, "detector": "arc"}


def _fanbeam_args(model, data, out, *extra):
    return ["reconstruct", "--operator", "fanbeam", "--data", data, "--model", model,
            "--noise-sigma", "0.05", "--out", out, "--image-shape", "16", "16",
            "--source-distance", "40", "--detector-distance", "90", "--detector", "arc",
            "--steps", "3", "-q", *extra]


def test_fanbeam_reconstruct(model, tmp_path, capsys):
    x = rectangles(1, rng=3)[0]
    A = FanBeamCT(x.shape, 36, **FAN)
    np.save(tmp_path / "sino.npy", A.forward(x))
    code, out, err = run(_fanbeam_args(model, tmp_path / "sino.npy", tmp_path / "x.npy"),
                         capsys)
    assert code == 0 and out == "" and err == ""
    r = load_image(tmp_path / "x.npy")
    assert r.shape == (16, 16) and np.all(np.isfinite(r))
    assert np.linalg.norm(r - x) < np.linalg.norm(x)        # moved towards the truth
    # the geometry reaches the operator: a wrong detector distance fits worse
    code, _, _ = run(_fanbeam_args(model, tmp_path / "sino.npy", tmp_path / "x2.npy")[:-7]
                     + ["--source-distance", "40", "--detector-distance", "200",
                        "--steps", "3", "-q"], capsys)
    assert code == 0
    wrong = load_image(tmp_path / "x2.npy")
    assert np.linalg.norm(A.forward(r) - A.forward(x)) < np.linalg.norm(
        A.forward(wrong) - A.forward(x))


@pytest.mark.parametrize("change, message", [
    (lambda a: [v for v in a if v not in ("--source-distance", "40")],
     "--operator fanbeam needs --source-distance and --detector-distance"),
    (lambda a: a[:a.index("--image-shape")] + a[a.index("--image-shape") + 3:],
     "--operator fanbeam needs --image-shape H W"),
    (lambda a: [("20" if v == "90" else v) for v in a],
     "`detector_distance` must be at least source_distance"),
    (lambda a: [("5" if v == "40" else v) for v in a],
     "`source_distance` must exceed half the image diagonal"),
    (lambda a: a + ["--detector", "curved"], "invalid choice: 'curved'"),
    (lambda a: a + ["--pixel-size", "0"], "expected"),
    (lambda a: a + ["--detector-spacing", "8"], "arc detector spans fan angles"),
])
def test_fanbeam_mistakes_exit_2_in_one_line(model, tmp_path, capsys, change, message):
    np.save(tmp_path / "sino.npy", np.zeros((36, 41)))
    args = change(_fanbeam_args(model, tmp_path / "sino.npy", tmp_path / "x.npy"))
    code, _, err = run(args, capsys)
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "x.npy").exists()


def test_fanbeam_data_must_be_a_real_sinogram(model, tmp_path, capsys):
    np.save(tmp_path / "vol.npy", np.zeros((3, 36, 41)))
    code, _, err = run(_fanbeam_args(model, tmp_path / "vol.npy", tmp_path / "x.npy"), capsys)
    assert code == 2 and "needs a 2-D sinogram (views, detector bins)" in one_line(err)
    np.save(tmp_path / "c.npy", np.zeros((36, 41), complex))
    code, _, err = run(_fanbeam_args(model, tmp_path / "c.npy", tmp_path / "x.npy"), capsys)
    assert code == 2 and "is complex" in one_line(err)


def test_denoise_keeps_the_nifti_geometry(model, tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    affine = np.array([[0.0, -0.9, 0.0, 12.5], [1.2, 0.0, 0.0, -30.0],
                       [0.0, 0.0, 2.5, 7.25], [0.0, 0.0, 0.0, 1.0]])
    image = nib.Nifti1Image(rectangles(1, rng=4, dtype=np.float32)[0], affine)
    image.header["descrip"] = b"scanner volume"
    image.to_filename(tmp_path / "noisy.nii.gz")
    code, _, err = run(["denoise", tmp_path / "noisy.nii.gz", "--model", model, "--sigma",
                        "0.1", "--steps", "2", "--out", tmp_path / "clean.nii.gz", "-q"],
                       capsys)
    assert code == 0, err
    out = nib.load(tmp_path / "clean.nii.gz")
    np.testing.assert_allclose(out.affine, affine, atol=1e-6)
    assert out.header["descrip"].item() == b"scanner volume"
    code, _, err = run(["denoise", tmp_path / "noisy.nii.gz", "--model", model, "--sigma",
                        "0.1", "--steps", "2", "--out", tmp_path / "clean.npy", "-q"], capsys)
    assert code == 0 and load_image(tmp_path / "clean.npy").shape == (16, 16)


# -- multi-coil MRI -------------------------------------------------------------------------
def _fastmri(coil_images):
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_images, axes=axes),
                                       norm="ortho"), axes=axes)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """Two slices, 4 coils, 16×16, every other phase-encode line plus the centre."""
    h5py = pytest.importorskip("h5py")
    from fastscore.operators import birdcage_maps

    folder = tmp_path_factory.mktemp("sense")
    x = rectangles(2, rng=5) * np.exp(1j * np.linspace(0, 0.5, 16))[None, None, :]
    maps = birdcage_maps((16, 16), 4)
    lines = np.zeros(16, bool)
    lines[::2] = True
    lines[6:10] = True
    k = _fastmri(maps[None] * x[:, None]) * lines
    with h5py.File(folder / "k.h5", "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64))
        f.create_dataset("mask", data=lines.astype(np.float32))
    with h5py.File(folder / "nok.h5", "w") as f:
        f.create_dataset("reconstruction_rss", data=np.abs(x))
    np.save(folder / "maps.npy", maps.astype(np.complex64))
    np.save(folder / "bad_maps.npy", maps[:3])
    return {"x": x, "maps": maps, "mask": np.broadcast_to(lines, (16, 16)), "folder": folder}


def _sense_args(model, data, out, *extra):
    return ["reconstruct", "--operator", "sense", "--data", data, "--model", model,
            "--noise-sigma", "0.02", "--out", out, "--steps", "3", "-q", *extra]


def test_sense_reconstructs_fastmri_file_with_complex_and_magnitude_outputs(model, scan,
                                                                            tmp_path, capsys):
    f = scan["folder"]
    code, out, err = run(_sense_args(model, f / "k.h5", tmp_path / "x.npy"), capsys)
    assert code == 0 and out == "" and err == "", err
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (2, 16, 16) and np.iscomplexobj(x)
    np.testing.assert_allclose(np.load(tmp_path / "x_magnitude.npy"), np.abs(x))
    truth = np.abs(scan["x"])
    assert np.linalg.norm(np.abs(x) - truth) < 0.5 * np.linalg.norm(truth)
    # given maps, one slice, complex NIfTI out
    code, _, err = run(_sense_args(model, f / "k.h5", tmp_path / "one.nii.gz", "--slices",
                                   "1", "--coil-maps", f / "maps.npy"), capsys)
    assert code == 0, err
    one = load_image(tmp_path / "one.nii.gz")
    assert one.shape == (16, 16) and one.dtype.kind == "c"
    assert load_image(tmp_path / "one_magnitude.nii.gz").dtype.kind == "f"


def test_sense_from_npy_kspace_in_fastscore_layout(model, scan, tmp_path, capsys):
    from fastscore.operators import SENSE

    y = SENSE(scan["maps"], scan["mask"]).forward(scan["x"][0].astype(np.complex128))
    np.save(tmp_path / "k.npy", y)
    code, _, err = run(_sense_args(model, tmp_path / "k.npy", tmp_path / "x.npz",
                                   "--coil-maps", scan["folder"] / "maps.npy",
                                   "--samples", "2"), capsys)
    assert code == 0, err
    assert load_image(tmp_path / "x.npz").shape == (16, 16)
    assert load_image(tmp_path / "x_std.npz").dtype.kind == "f"


@pytest.mark.parametrize("extra, data, out, message", [
    (["--coil-maps", "{f}/bad_maps.npy"], "k.h5", "x.npy", "--coil-maps"),
    ([], "nok.h5", "x.npy", "no 'kspace' dataset"),
    ([], "k.h5", "x.png", "the result is complex; use one of .npy"),
    ([], "k.h5", "-", "give a file name, not -"),
    (["--slices", "5"], "k.h5", "x.npy", "out of range"),
    (["--mask", "{f}/maps.npy"], "k.h5", "x.npy", "is read from the file"),
    (["--coil-maps", "{f}/missing.npy"], "k.h5", "x.npy", "coil maps file not found"),
])
def test_sense_mistakes_exit_2_in_one_line(model, scan, tmp_path, capsys, extra, data, out,
                                           message):
    f = scan["folder"]
    extra = [e.format(f=f) for e in extra]
    target = out if out == "-" else tmp_path / out
    code, _, err = run(_sense_args(model, f / data, target, *extra), capsys)
    assert code == 2 and message in one_line(err)
    np.save(tmp_path / "real.npy", np.ones((4, 16, 16)))
    code, _, err = run(_sense_args(model, tmp_path / "real.npy", tmp_path / "x.npy"), capsys)
    assert code == 2 and "expected complex k-space" in one_line(err)

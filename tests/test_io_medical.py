"""Scanner files: NIfTI geometry round trips (checked with nibabel), DICOM series ordering
and rescaling (series written with pydicom), multi-page TIFF, fastMRI HDF5 k-space, and
the errors for bad input."""

import os
import sys

import numpy as np
import pytest

from fastscore.io import load_image, save_image
from fastscore.io_medical import (
    load_dicom,
    load_dicom_series,
    load_kspace,
    load_nifti,
    load_tiff,
    save_nifti,
)
from fastscore.operators import MRI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _volume(shape=(6, 5, 4), seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(1.0, 0.3, shape).astype(dtype)


def test_io_extra_installs_every_reader():
    tomllib = pytest.importorskip("tomllib")          # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = {req.split(">")[0].split("=")[0].split("[")[0].strip().lower()
             for req in extras["io"]}
    assert {"pillow", "nibabel", "pydicom", "tifffile", "h5py"} <= names


# -- NIfTI ----------------------------------------------------------------------------------
OBLIQUE = np.array([[0.0, -0.9, 0.1, 12.5], [1.2, 0.0, 0.0, -30.0],
                    [0.0, 0.05, 2.5, 7.25], [0.0, 0.0, 0.0, 1.0]])


def _nifti_with_header(tmp_path, name, array):
    nib = pytest.importorskip("nibabel")
    image = nib.Nifti1Image(array, OBLIQUE)
    header = image.header
    header["descrip"] = b"fastscore test volume"
    header.set_xyzt_units("mm", "sec")
    header["intent_code"] = 1001
    header.set_qform(OBLIQUE, code=1)
    header.set_sform(OBLIQUE, code=2)
    path = tmp_path / name
    image.to_filename(path)
    return path


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_nifti_round_trip_keeps_affine_and_header(tmp_path, name, dtype):
    nib = pytest.importorskip("nibabel")
    x = _volume(dtype=np.float64)
    x = (x + 1j * x[::-1]).astype(dtype) if np.dtype(dtype).kind == "c" else x.astype(dtype)
    vol = load_nifti(_nifti_with_header(tmp_path, name, x))
    assert vol.array.dtype == dtype
    np.testing.assert_array_equal(vol.array, x)
    np.testing.assert_allclose(vol.affine, OBLIQUE, atol=1e-6)
    out = save_nifti(tmp_path / ("out_" + name), vol.array * 2, vol.affine, vol.header)
    back = nib.load(out)                              # checked by nibabel itself
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), x * 2)
    np.testing.assert_allclose(back.affine, OBLIQUE, atol=1e-6)
    h = back.header
    assert h["descrip"].item() == b"fastscore test volume"
    assert h.get_xyzt_units() == ("mm", "sec") and int(h["intent_code"]) == 1001
    assert (int(h["qform_code"]), int(h["sform_code"])) == (1, 2)
    np.testing.assert_allclose(h.get_zooms(), vol.header.get_zooms())
    assert h.get_data_dtype() == dtype


def test_save_image_nifti_keeps_the_affine_and_complex(tmp_path):
    nib = pytest.importorskip("nibabel")
    x = _volume((7, 6))
    path = save_image(tmp_path / "x.nii.gz", x, affine=OBLIQUE)
    np.testing.assert_allclose(nib.load(path).affine, OBLIQUE, atol=1e-6)
    np.testing.assert_array_equal(load_image(path), x)
    plain = nib.load(save_image(tmp_path / "plain.nii", x))
    np.testing.assert_array_equal(plain.affine, np.eye(4))
    z = (x + 1j * x[::-1]).astype(np.complex64)
    back = load_image(save_image(tmp_path / "z.nii", z))
    assert back.dtype == np.complex64
    np.testing.assert_array_equal(back, z)
    np.testing.assert_array_equal(load_image(save_image(tmp_path / "z.npy", z)), z)
    ints = load_nifti(save_nifti(tmp_path / "i.nii", np.arange(12).reshape(3, 4)))
    assert ints.array.dtype == np.float32


def test_nifti_errors_name_the_problem(tmp_path):
    pytest.importorskip("nibabel")
    x = _volume((4, 4))
    with pytest.raises(ValueError, match="`path` must end in .nii or .nii.gz"):
        save_nifti(tmp_path / "x.png", x)
    with pytest.raises(ValueError, match=r"`affine` must be a finite 4×4 array"):
        save_nifti(tmp_path / "x.nii", x, np.eye(3))
    with pytest.raises(TypeError, match="`header` must be a nibabel Nifti1Header"):
        save_nifti(tmp_path / "x.nii", x, header={"descrip": "x"})
    with pytest.raises(ValueError, match="must be finite"):
        save_nifti(tmp_path / "x.nii", np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="`affine` and `header` are for NIfTI files"):
        save_image(tmp_path / "x.png", x, affine=np.eye(4))
    with pytest.raises(ValueError, match="is complex"):
        save_image(tmp_path / "x.png", x + 1j)
    (tmp_path / "bad.nii").write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(ValueError, match=r"bad.nii: not a readable NIfTI file"):
        load_nifti(tmp_path / "bad.nii")
    with pytest.raises(FileNotFoundError):
        load_nifti(tmp_path / "missing.nii")
    nib = pytest.importorskip("nibabel")
    nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)).to_filename(
        tmp_path / "4d.nii")
    with pytest.raises(ValueError, match=r"4d.nii: expected a 2-D image or 3-D volume"):
        load_nifti(tmp_path / "4d.nii")
    forged = bytearray((tmp_path / "4d.nii").read_bytes())
    forged[42:44] = (30000).to_bytes(2, "little")             # dim[1]: 3 -> 30000
    (tmp_path / "forged.nii").write_bytes(bytes(forged))
    with pytest.raises(ValueError, match="forged.nii: the NIfTI header declares shape"):
        load_nifti(tmp_path / "forged.nii")


# -- DICOM ----------------------------------------------------------------------------------
ROW_DIR = np.array([np.cos(0.3), np.sin(0.3), 0.0])
COL_DIR = np.array([0.0, 0.0, -1.0])                # oblique-coronal slices
NORMAL = np.cross(ROW_DIR, COL_DIR)


def _write_slice(path, stored, position, *, slope=1.0, intercept=0.0, series="1.2.3.4",
                 orientation=None, instance=1, spacing=(0.8, 0.6)):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", series, instance
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 2.5
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
        o = np.concatenate([ROW_DIR, COL_DIR]) if orientation is None else orientation
        ds.ImageOrientationPatient = [float(v) for v in o]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = stored.astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def _series(folder, n=6, shape=(5, 7), seed=0):
    """A shuffled series: file k holds slice order[k]; returns the expected volume."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    origin = np.array([-40.0, 12.0, 80.0])
    expected = np.empty((n,) + shape, np.float32)
    order = rng.permutation(n)
    for k, z in enumerate(order):
        stored = rng.integers(0, 4000, shape)
        slope, intercept = [1.0, 0.5, 2.0][z % 3], [-1024.0, 0.0, -10.5][z % 3]
        expected[z] = stored * slope + intercept
        _write_slice(folder / f"IM{k:04d}", stored, origin + 2.5 * z * NORMAL, slope=slope,
                     intercept=intercept, instance=int(n - z))
    return expected, origin


def test_dicom_series_is_ordered_by_position_and_rescaled(tmp_path):
    pytest.importorskip("pydicom")
    expected, origin = _series(tmp_path / "ct")
    (tmp_path / "ct" / ".DS_Store").write_bytes(b"junk")     # hidden files are ignored
    vol = load_dicom_series(tmp_path / "ct")
    assert vol.array.dtype == np.float32 and vol.array.shape == (6, 5, 7)
    np.testing.assert_array_equal(vol.array, expected)
    np.testing.assert_allclose(vol.metadata["positions"], origin @ NORMAL + 2.5 * np.arange(6))
    assert vol.metadata["ordered_by"] == "position" and vol.metadata["modality"] == "CT"
    np.testing.assert_allclose(vol.metadata["spacing"], (2.5, 0.8, 0.6))
    # voxel (slice k, row i, column j) -> IPP_k + i * 0.8 * column dir + j * 0.6 * row dir
    for k, i, j in [(0, 0, 0), (5, 4, 6), (2, 1, 3)]:
        want = origin + 2.5 * k * NORMAL + i * 0.8 * COL_DIR + j * 0.6 * ROW_DIR
        np.testing.assert_allclose((vol.affine @ [k, i, j, 1])[:3], want, atol=1e-9)
    np.testing.assert_array_equal(load_image(tmp_path / "ct"), expected)
    np.testing.assert_array_equal(load_dicom(vol.metadata["files"][0]), expected[0])


def test_single_dcm_file_through_load_image(tmp_path):
    pytest.importorskip("pydicom")
    stored = np.arange(12).reshape(3, 4) * 100
    _write_slice(tmp_path / "one.dcm", stored, (0, 0, 0), slope=0.25, intercept=-3.0)
    np.testing.assert_allclose(load_image(tmp_path / "one.dcm"), stored * 0.25 - 3.0)


def test_dicom_series_without_positions_uses_instance_numbers(tmp_path):
    pytest.importorskip("pydicom")
    folder = tmp_path / "s"
    folder.mkdir()
    for k, instance in enumerate([3, 1, 2]):
        _write_slice(folder / f"f{k}", np.full((2, 2), instance), None, instance=instance)
    vol = load_dicom_series(folder)
    assert vol.metadata["ordered_by"] == "instance_number"
    np.testing.assert_array_equal(vol.array[:, 0, 0], [1, 2, 3])


def test_dicom_series_errors_name_the_files(tmp_path):
    pytest.importorskip("pydicom")
    origin = np.zeros(3)
    bad = tmp_path / "sizes"
    bad.mkdir()
    _write_slice(bad / "a", np.zeros((4, 4)), origin)
    _write_slice(bad / "b", np.zeros((4, 5)), origin + NORMAL)
    with pytest.raises(ValueError, match=r"b: slice of 4×5 pixels in a series of 4×4"):
        load_dicom_series(bad)
    two = tmp_path / "two"
    two.mkdir()
    _write_slice(two / "a", np.zeros((3, 3)), origin, series="1.1")
    _write_slice(two / "b", np.zeros((3, 3)), origin + NORMAL, series="1.1")
    _write_slice(two / "c", np.ones((3, 3)), origin, series="2.2")
    with pytest.raises(ValueError, match=r"holds 2 series: '1.1' \(2 files\), '2.2' \(1 files\)"):
        load_dicom_series(two)
    assert load_dicom_series(two, series_uid="2.2").array.shape == (1, 3, 3)
    with pytest.raises(ValueError, match="`series_uid` '9.9' is not in"):
        load_dicom_series(two, series_uid="9.9")
    dup = tmp_path / "dup"
    dup.mkdir()
    _write_slice(dup / "a", np.zeros((3, 3)), origin)
    _write_slice(dup / "b", np.zeros((3, 3)), origin)
    with pytest.raises(ValueError, match="two slices at the same position"):
        load_dicom_series(dup)
    gap = tmp_path / "gap"
    gap.mkdir()
    for k, z in enumerate([0.0, 2.0, 4.0, 8.0]):
        _write_slice(gap / f"s{k}", np.zeros((3, 3)), origin + z * NORMAL)
    with pytest.raises(ValueError, match=r"s2 and .*s3: slice gap 4 mm .* a missing slice"):
        load_dicom_series(gap)
    tilt = tmp_path / "tilt"
    tilt.mkdir()
    _write_slice(tilt / "a", np.zeros((3, 3)), origin)
    _write_slice(tilt / "b", np.zeros((3, 3)), origin + NORMAL,
                 orientation=[1, 0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="b: ImageOrientationPatient .* differs"):
        load_dicom_series(tilt)
    junk = tmp_path / "junk"
    junk.mkdir()
    _write_slice(junk / "a", np.zeros((3, 3)), origin)
    (junk / "notes.txt").write_text("scan notes")
    with pytest.raises(ValueError, match=r"notes.txt: not a readable DICOM file"):
        load_dicom_series(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DICOM files"):
        load_dicom_series(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_dicom_series(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="expected a folder"):
        load_dicom_series(junk / "a")


def test_missing_pydicom_names_the_io_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    (tmp_path / "s").mkdir()
    with pytest.raises(ImportError, match=r"fastscore\[io\]"):
        load_image(tmp_path / "s")


# -- TIFF -----------------------------------------------------------------------------------
def test_multipage_tiff_is_a_volume(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    x = _volume((3, 8, 9))
    tifffile.imwrite(tmp_path / "v.tif", x, photometric="minisblack")
    np.testing.assert_array_equal(load_image(tmp_path / "v.tif"), x)
    q = (np.arange(2 * 4 * 5).reshape(2, 4, 5) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "q.tiff", q, photometric="minisblack")
    np.testing.assert_allclose(load_tiff(tmp_path / "q.tiff"), q / 65535.0, rtol=1e-6)
    rgb = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    luma = rgb.astype(float) @ [0.299, 0.587, 0.114] / 255
    np.testing.assert_allclose(load_tiff(tmp_path / "rgb.tif"), luma, rtol=1e-5)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb[0], -1, 0), photometric="rgb",
                     planarconfig="separate")
    np.testing.assert_allclose(load_tiff(tmp_path / "planar.tif"), luma[0], rtol=1e-5)
    single = save_image(tmp_path / "one.tif", x[0])
    np.testing.assert_array_equal(load_image(single), x[0])


def test_multipage_tiff_written_by_pillow(tmp_path):
    pytest.importorskip("tifffile")
    Image = pytest.importorskip("PIL.Image")
    pages = [Image.fromarray(np.full((4, 6), v, np.float32), mode="F") for v in (1.0, 2.0, 3.5)]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    np.testing.assert_array_equal(load_image(tmp_path / "p.tif")[:, 0, 0], [1.0, 2.0, 3.5])


def test_tiff_errors(tmp_path, monkeypatch):
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as w:
        w.write(np.zeros((4, 4), np.float32))
        w.write(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"mixed.tif: .*page 1 is \(5, 4\)"):
        load_image(tmp_path / "mixed.tif")
    tifffile.imwrite(tmp_path / "forged.tif", np.zeros((4, 4), np.uint8),
                     photometric="minisblack")
    with tifffile.TiffFile(tmp_path / "forged.tif") as tif:
        offsets = [tif.pages[0].tags[n].valueoffset for n in ("ImageWidth", "ImageLength")]
    forged = bytearray((tmp_path / "forged.tif").read_bytes())
    for offset in offsets:                               # 4 x 4 -> 60000 x 60000 pixels
        forged[offset:offset + 4] = (60000).to_bytes(4, "little")
    (tmp_path / "forged.tif").write_bytes(bytes(forged))
    with pytest.raises(ValueError, match="forged.tif: .*far more than the file holds"):
        load_tiff(tmp_path / "forged.tif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match="bad.tif: not a readable TIFF"):
        load_tiff(tmp_path / "bad.tif")
    pytest.importorskip("PIL")
    Image = pytest.importorskip("PIL.Image")
    pages = [Image.fromarray(np.zeros((3, 3), np.float32), mode="F") for _ in range(2)]
    pages[0].save(tmp_path / "v.tif", save_all=True, append_images=pages[1:])
    monkeypatch.setitem(sys.modules, "tifffile", None)       # no tifffile: no silent page 0
    with pytest.raises(ImportError, match=r"2 pages; .*fastscore\[io\]"):
        load_image(tmp_path / "v.tif")


# -- fastMRI k-space ------------------------------------------------------------------------
def _fastmri_kspace(image):
    """The fastMRI convention: k = fftshift(F(ifftshift(x))), orthonormal."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), norm="ortho"),
                           axes=axes)


def _images(n_slices, n_coils, H, W, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    x = np.exp(-((yy - H / 2) ** 2 + (xx - W / 2.5) ** 2) / (0.1 * H * W))
    phase = np.exp(1j * (0.02 * yy + 0.03 * xx))
    slices = np.stack([x * phase * (1 + 0.2 * s) for s in range(n_slices)])
    maps = np.stack([np.exp(1j * c) * (1 + 0.1 * c * yy / H) for c in range(n_coils)])
    return slices[:, None] * maps[None] + 0.01 * rng.normal(size=(1, 1, H, W))


def _write_h5(path, kspace=None, mask=None, attrs=None, **datasets):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        if kspace is not None:
            f.create_dataset("kspace", data=kspace)
        if mask is not None:
            f.create_dataset("mask", data=mask)
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return path


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, kspace):
        self.calls.append(kspace.copy())
        return np.ones_like(kspace) * len(self.calls)


@pytest.mark.parametrize("shape", [(16, 12), (15, 9)])
def test_fastmri_layout_becomes_fastscore_layout(tmp_path, shape):
    pytest.importorskip("h5py")
    coil_images = _images(3, 4, *shape).astype(np.complex64)
    path = _write_h5(tmp_path / "k.h5", _fastmri_kspace(coil_images),
                     attrs={"acquisition": "CORPD_FBK", "max": np.float32(0.5)})
    data = load_kspace(path, coil_maps=False)
    assert data.kspace.shape == (3, 4) + shape and data.kspace.dtype == np.complex64
    assert data.mask.shape == shape and data.mask.all() and data.coil_maps is None
    assert data.slices == (0, 1, 2)
    assert data.attrs == {"acquisition": "CORPD_FBK", "max": 0.5}
    A = MRI(data.mask, complex_image=True)
    np.testing.assert_allclose(A.adjoint(data.kspace[2, 1]), coil_images[2, 1], atol=1e-5)
    same = load_kspace(path, layout="fastscore", coil_maps=False)
    np.testing.assert_array_equal(same.kspace, _fastmri_kspace(coil_images))


def test_kspace_mask_slices_and_estimator(tmp_path):
    pytest.importorskip("h5py")
    H, W = 12, 10
    k = _fastmri_kspace(_images(4, 3, H, W)).astype(np.complex64)
    lines = np.zeros(W, bool)
    lines[[0, 4, 5, 6, 9]] = True
    k[..., ~lines] = 0
    path = _write_h5(tmp_path / "k.h5", k, lines.astype(np.float32))
    est = _Recorder()
    data = load_kspace(path, slices=[3, 1, 3], estimator=est)
    assert data.slices == (3, 1, 3) and data.kspace.shape == (3, 3, H, W)
    np.testing.assert_array_equal(data.mask, np.broadcast_to(lines, (H, W)))
    full = load_kspace(path, coil_maps=False)
    np.testing.assert_array_equal(data.kspace[0], full.kspace[3])
    np.testing.assert_array_equal(data.kspace[1], full.kspace[1])
    assert len(est.calls) == 3 and est.calls[0].shape == (3, H, W)
    np.testing.assert_array_equal(est.calls[1], full.kspace[1])      # fastscore layout
    np.testing.assert_array_equal(data.coil_maps[:, 0, 0, 0], [1, 2, 3])
    assert load_kspace(path, slices=slice(1, 3), coil_maps=False).slices == (1, 2)
    assert load_kspace(path, slices=-1, coil_maps=False).slices == (3,)
    # no mask in the file: the sampled entries are the nonzero ones
    nomask = load_kspace(_write_h5(tmp_path / "n.h5", k), coil_maps=False)
    np.testing.assert_array_equal(nomask.mask, data.mask)


def test_single_coil_and_real_pair_kspace(tmp_path):
    pytest.importorskip("h5py")
    k = _fastmri_kspace(_images(2, 1, 8, 8))[:, 0]
    single = load_kspace(_write_h5(tmp_path / "s.h5", k.astype(np.complex128)),
                         coil_maps=False)
    assert single.kspace.shape == (2, 1, 8, 8) and single.kspace.dtype == np.complex128
    pairs = np.stack([k.real, k.imag], axis=-1).astype(np.float32)
    from_pairs = load_kspace(_write_h5(tmp_path / "p.h5", pairs), coil_maps=False)
    assert from_pairs.kspace.dtype == np.complex64
    np.testing.assert_allclose(from_pairs.kspace, single.kspace, atol=1e-6)


def test_kspace_errors_name_the_file(tmp_path):
    pytest.importorskip("h5py")
    k = _fastmri_kspace(_images(2, 2, 8, 6)).astype(np.complex64)
    with pytest.raises(ValueError, match=r"r.h5: no 'kspace' dataset; the file holds "
                                         r"\['reconstruction_rss'\]"):
        load_kspace(_write_h5(tmp_path / "r.h5", reconstruction_rss=np.zeros((2, 8, 6))))
    with pytest.raises(ValueError, match=r"m.h5: 'mask' has shape \(8,\) .* expected \(6,\)"):
        load_kspace(_write_h5(tmp_path / "m.h5", k, np.ones(8)))
    with pytest.raises(ValueError, match="z.h5: the sampling mask samples nothing"):
        load_kspace(_write_h5(tmp_path / "z.h5", k, np.zeros(6)))
    with pytest.raises(ValueError, match=r"real.h5: 'kspace' has shape \(2, 2, 8, 6\) and "
                                         "dtype float64; expected complex"):
        load_kspace(_write_h5(tmp_path / "real.h5", k.real.astype(np.float64)))
    with pytest.raises(ValueError, match=r"`slices` \[5\] is out of range for .*holds 2"):
        load_kspace(_write_h5(tmp_path / "k.h5", k), slices=[5])
    with pytest.raises(TypeError, match="`slices` must be an int"):
        load_kspace(tmp_path / "k.h5", slices=[0.5])
    with pytest.raises(ValueError, match="`layout` must be one of"):
        load_kspace(tmp_path / "k.h5", layout="bart")
    with pytest.raises(ValueError, match=r"`estimator` returned coil maps of shape \(3,\)"):
        load_kspace(tmp_path / "k.h5", estimator=lambda kspace: np.zeros(3))
    (tmp_path / "x.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="x.h5: not a readable HDF5 file"):
        load_kspace(tmp_path / "x.h5")
    with pytest.raises(FileNotFoundError):
        load_kspace(tmp_path / "missing.h5")


def test_kspace_coil_maps_from_the_default_estimator(tmp_path):
    pytest.importorskip("h5py")
    from fastscore.operators import SENSE, birdcage_maps

    H, W = 24, 20
    yy, xx = np.mgrid[:H, :W]
    x = np.where((yy - H / 2) ** 2 / 64 + (xx - W / 2) ** 2 / 49 < 1, 1.0, 0.05)
    maps = birdcage_maps((H, W), 4)
    lines = np.zeros(W, bool)
    lines[::3] = True
    lines[W // 2 - 4:W // 2 + 4] = True
    k = _fastmri_kspace(maps * x)[None] * lines
    data = load_kspace(_write_h5(tmp_path / "k.h5", k.astype(np.complex64),
                                 lines.astype(np.uint8)))
    assert data.coil_maps.shape == (1, 4, H, W)
    rss = np.sqrt(np.sum(np.abs(data.coil_maps[0]) ** 2, axis=0))
    inside = x > 0.5
    np.testing.assert_allclose(rss[inside], 1.0, atol=1e-5)     # normalised where measured
    # the estimated maps explain the data: SENSE with them, applied to the coil-combined
    # zero-filled image, comes close to the measured k-space (measured 0.075; the true
    # maps give 0.042)
    A = SENSE(data.coil_maps[0], data.mask)
    y = data.kspace[0]
    fit = A.forward(A.adjoint(y))
    assert np.linalg.norm(fit - y) < 0.15 * np.linalg.norm(y)

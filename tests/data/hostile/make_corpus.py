"""Write the hostile-file corpus of this folder, deterministically.

Run from the repository root: ``PYTHONPATH=$PWD python tests/data/hostile/make_corpus.py``.
Every file is a few kB; what each must give through the API is the table in
``tests/hostile_cases.py``. Zip archives, PNG, TIFF and gzip streams are assembled by hand
(fixed timestamps), so the bytes depend only on this script, NumPy's .npy format and
nibabel's NIfTI header layout.
"""

import gzip
import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
META = "__fastscore_metadata__"
DATE = (1980, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------ building blocks


def npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=arr.dtype.hasobject)
    return buf.getvalue()


def npz_bytes(members, compress=False):
    """A zip of ``{name: bytes}`` (names without .npy) with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            zf.writestr(info, data)
    return buf.getvalue()


def raw_zip(entries):
    """A zip whose entries are ``(name, compressed bytes, crc, declared size)``, method
    deflate, written by hand so the declared sizes can be anything."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, comp, crc, size in entries:
        offset = out.tell()
        fname = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc,
                              len(comp), size, len(fname), 0))
        out.write(fname)
        out.write(comp)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21,
                                  crc, len(comp), size, len(fname), 0, 0, 0, 0, 0, offset))
        central.write(fname)
    cd = central.getvalue()
    start = out.tell()
    out.write(cd)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                          len(cd), start, 0))
    return out.getvalue()


def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def meta_bytes(meta):
    return np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)


def png_bytes(width, height, bit_depth, rows, texts=(), crc_ok=True):
    """A greyscale PNG; `rows` the raw filtered scanlines (filter byte 0 + pixels)."""

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", crc if crc_ok else crc ^ 1)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for key, value in texts:
        out += chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))
    return out + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def tiff_bytes(width, height, pixels):
    """A little-endian baseline 8-bit greyscale TIFF with one strip."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(pixels))]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(tags) + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        if tag == 273:
            value = data_offset
        fmt = "<HHIHH" if kind == 3 else "<HHII"
        out += struct.pack(fmt, tag, kind, 1, value, 0) if kind == 3 else \
            struct.pack(fmt, tag, kind, 1, value)
    return out + struct.pack("<I", 0) + pixels


def nifti_bytes(arr):
    import nibabel as nib

    return nib.Nifti1Image(np.asarray(arr, dtype=np.float32), np.eye(4)).to_bytes()


def set_nifti_dims(data, dims):
    """Overwrite the int16 dim[8] field (offset 40) of a NIfTI-1 header."""
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    return data[:40] + struct.pack("<8h", *dim) + data[56:]


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def base_model_members():
    """The members of a small valid patch score model file (3x3 patches, float32)."""
    import tempfile

    from fastscore.nn import NoiseConditionalScore, PatchScoreModel

    ncs = NoiseConditionalScore.for_patches((3, 3), hidden=(8,), rng=0)
    model = PatchScoreModel(ncs, 3, sigma_min=0.05, sigma_max=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        model.save(path)
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop(META).tobytes())
    meta["fastscore_version"] = "0"          # the corpus does not change with the version
    return arrays, meta


def model_npz(arrays, meta, compress=False):
    members = {k: npy_bytes(v) for k, v in arrays.items()}
    members[META] = npy_bytes(meta_bytes(meta))
    return npz_bytes(members, compress)


# ------------------------------------------------------------------ the corpus


def corpus():
    files = {}
    arrays, meta = base_model_members()
    good = model_npz(arrays, meta)
    files["model_good.npz"] = good                       # the control: loads
    files["model_truncated.npz"] = good[: len(good) // 2]
    flipped = bytearray(good)
    pos = good.index(npy_bytes(arrays["params"])[128:136])   # inside the params data
    flipped[pos + 3] ^= 0x10
    files["model_bitflip_data.npz"] = bytes(flipped)
    flipped = bytearray(good)
    pos = good.index(b"'shape': (") + len("'shape': (")   # first header: a digit of a shape
    flipped[pos] = ord("9")
    files["model_bitflip_header.npz"] = bytes(flipped)
    flipped = bytearray(good)
    eocd = good.rindex(b"PK\x05\x06")
    flipped[eocd + 16] ^= 0x40                            # central directory offset
    files["model_bitflip_directory.npz"] = bytes(flipped)
    lying = npy_bytes(arrays["params"]).replace(b"(161,)", b"(961,)")
    files["model_header_lies.npz"] = npz_bytes(
        {"params": lying, "mean": npy_bytes(arrays["mean"]), META: npy_bytes(meta_bytes(meta))})
    files["model_empty.npz"] = b""
    files["model_random_bytes.npz"] = np.random.default_rng(0).bytes(2048)

    # zip bomb: params declared as 2**28 float32 (1 GiB), stored as a short deflate stream
    header = np.lib.format.magic(1, 0) + struct.pack("<H", 118) + \
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (268435456,), }".ljust(117) + b"\n"
    assert len(header) == 128
    body = header + bytes(2**20)
    entries = [("params.npy", deflate(body), zlib.crc32(body), 128 + 2**30)]
    for name, value in (("mean", arrays["mean"]), (META, meta_bytes(meta))):
        data = npy_bytes(value)
        entries.append((name + ".npy", deflate(data), zlib.crc32(data), len(data)))
    files["model_zipbomb.npz"] = raw_zip(entries)

    deep = dict(meta, training=json.loads("[" * 64 + "]" * 64))
    files["model_deep_metadata_64.npz"] = model_npz(arrays, deep)
    text = json.dumps(meta, sort_keys=True)[:-1] + ', "z": ' + "[" * 200_000 + "]" * 200_000 \
        + "}"
    members = {k: npy_bytes(v) for k, v in arrays.items()}
    members[META] = npy_bytes(np.frombuffer(text.encode(), np.uint8))
    files["model_deep_metadata_200k.npz"] = npz_bytes(members, compress=True)
    members = {k: npy_bytes(v) for k, v in arrays.items()}
    members["obj"] = npy_bytes(np.array([{"a": 1}, None], dtype=object))
    members[META] = npy_bytes(meta_bytes(meta))
    files["model_object_array.npz"] = npz_bytes(members)
    files["model_params_wrong_size.npz"] = model_npz(dict(arrays, params=arrays["params"][:-1]),
                                                     meta)
    files["model_params_wrong_dtype.npz"] = model_npz(
        dict(arrays, params=arrays["params"].astype(np.float64)), meta)
    files["model_params_2d.npz"] = model_npz(
        dict(arrays, params=arrays["params"].reshape(1, -1)), meta)
    files["model_mean_wrong_shape.npz"] = model_npz(dict(arrays, mean=np.zeros(4, np.float32)),
                                                    meta)
    files["model_no_params.npz"] = model_npz({"mean": arrays["mean"]}, meta)
    files["model_metadata_list.npz"] = npz_bytes(
        {**{k: npy_bytes(v) for k, v in arrays.items()}, META: npy_bytes(meta_bytes([1, 2]))})
    files["model_metadata_not_utf8.npz"] = npz_bytes(
        {**{k: npy_bytes(v) for k, v in arrays.items()},
         META: npy_bytes(np.frombuffer(b"\xff\xfe{}", np.uint8))})
    files["model_future_version.npz"] = model_npz(arrays, dict(meta, format_version=99))
    files["model_checkpoint_kind.npz"] = model_npz(arrays, dict(meta, kind="checkpoint"))
    files["model_widths_string.npz"] = model_npz(
        arrays, dict(meta, model=dict(meta["model"], net=dict(meta["model"]["net"],
                                                             widths="abc"))))
    files["model_patch_size_negative.npz"] = model_npz(arrays, dict(meta, patch_size=[-3, -3]))
    files["model_sigma_nan.npz"] = model_npz(arrays, dict(meta, sigma_min="nan"))
    files["model_text_member.npz"] = good.replace(b"mean.npy", b"mean.txt")

    # plain arrays
    good_npy = npy_bytes(np.arange(64, dtype=np.float32).reshape(8, 8))
    files["array_truncated.npy"] = good_npy[:-40]
    files["array_huge_shape.npy"] = good_npy.replace(b"'shape': (8, 8), ",
                                                     b"'shape': (1099511627776,), ")
    files["array_object.npy"] = npy_bytes(np.array([1, "a", None], dtype=object))
    files["array_bad_magic.npy"] = b"\x93NUMPX" + good_npy[6:]
    files["array_header_garbage.npy"] = good_npy.replace(b"'descr': '<f4'", b"'descr': 'q!!'")
    files["array_trailing_bytes.npy"] = good_npy + b"\x00" * 16
    files["array_two_keys.npz"] = npz_bytes({"a": good_npy, "b": good_npy})

    # images
    rows16 = b"".join(b"\x00" + struct.pack(">4H", *range(i, i + 4)) for i in range(4))
    for name, text in (("scaling_levels_zero", "0.0,1.0,0"), ("scaling_garbage", "a,b"),
                       ("scaling_nan", "nan,inf,65535"), ("scaling_reversed", "1.0,0.0,65535"),
                       ("scaling_overflow", "-1e308,1e308,65535")):
        files[f"image_{name}.png"] = png_bytes(4, 4, 16, rows16, [("fastscore-scaling", text)])
    files["image_bomb_30000x30000.png"] = png_bytes(30000, 30000, 8, b"\x00" * 30001)
    good_png = png_bytes(16, 16, 8, b"".join(b"\x00" + bytes(range(16)) for _ in range(16)))
    files["image_truncated.png"] = good_png[: len(good_png) - 30]
    files["image_bad_crc.png"] = png_bytes(16, 16, 8, b"\x00" * 17 * 16, crc_ok=False)
    files["image_random_bytes.png"] = np.random.default_rng(1).bytes(1024)
    files["image_bomb_30000x30000.tif"] = tiff_bytes(30000, 30000, bytes(64))
    good_tif = tiff_bytes(16, 16, bytes(range(256)))
    files["image_truncated.tif"] = good_tif[:-200]
    files["image_random_bytes.tif"] = np.random.default_rng(2).bytes(1024)
    vol = nifti_bytes(np.zeros((4, 4, 4)))
    files["volume_huge_dims.nii"] = set_nifti_dims(vol, (30000, 30000, 30000))
    files["volume_huge_dims.nii.gz"] = gz(set_nifti_dims(vol, (30000, 30000, 30000)))
    files["volume_4d.nii"] = nifti_bytes(np.zeros((4, 4, 2, 2)))
    files["volume_truncated.nii.gz"] = gz(nifti_bytes(np.arange(64.0).reshape(4, 4, 4)))[:-40]
    files["volume_random_bytes.nii"] = np.random.default_rng(3).bytes(1024)
    return files


def main():
    for old in os.listdir(HERE):
        if old.split(".")[0].startswith(("model_", "array_", "image_", "volume_")):
            os.unlink(os.path.join(HERE, old))
    for name, data in sorted(corpus().items()):
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(f"{len(data):>8}  {name}")


if __name__ == "__main__":
    main()

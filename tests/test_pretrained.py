import importlib.util
import os
import sys

import numpy as np
import pytest

from fastscore import pretrained
from fastscore.io import ModelFileError, read_model_file
from fastscore.multiscale import MultiScaleFusion
from fastscore.prior import PatchPrior

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def test_available_and_load_each():
    assert pretrained.available() == ("natural", "phantom")
    rng = np.random.default_rng(0)
    for name in pretrained.available():
        model = pretrained.load(name)
        assert 0 < model.sigma_min < 0.05 and model.sigma_max >= 0.5
        assert isinstance(model.invariances, dict)
        v = rng.uniform(0, 1, (7, int(np.prod(model.patch_size)))).astype(np.float32)
        s = model.score(v, 0.1)
        assert s.shape == v.shape and s.dtype == np.float32 and np.all(np.isfinite(s))
        fused = pretrained.prior(name)
        assert isinstance(fused, MultiScaleFusion) and isinstance(fused.prior, PatchPrior)
        assert fused.levels == pretrained.FUSION_OPTIONS[name]["levels"]
        assert fused.prior.stride == pretrained.PRIOR_OPTIONS[name]["stride"]
        assert fused.prior.tiling == pretrained.FUSION_OPTIONS[name]["tiling"]
        assert pretrained.prior(name, levels=1).tiling == "overlap"   # a density's score


def test_fused_grid_moves_between_calls_and_is_seeded():
    from fastscore.operators import Identity
    from fastscore.reconstruct import map_estimate

    y = np.random.default_rng(2).uniform(0.2, 0.8, (40, 36)).astype(np.float32)
    opts = pretrained.map_options("phantom", 0.1)
    moving = pretrained.prior("phantom")
    fixed = pretrained.prior("phantom", tiling="overlap")
    assert fixed.prior.tiling == "overlap"
    a, b = (map_estimate(y, Identity(y.shape), 0.1, moving, rng=5, **opts).x
            for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c = map_estimate(y, Identity(y.shape), 0.1, moving, rng=6, **opts).x
    d = map_estimate(y, Identity(y.shape), 0.1, fixed, rng=5, **opts).x
    assert not np.allclose(a, c, atol=1e-5) and not np.allclose(a, d, atol=1e-5)


def test_natural_prior_denoises_a_smooth_image():
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    clean = (0.5 + 0.3 * np.sin(4 * xx) * np.cos(3 * yy)).astype(np.float32)
    y = clean + 0.1 * np.random.default_rng(1).standard_normal(clean.shape).astype(np.float32)
    z = pretrained.prior("natural").denoise(y, 0.1)
    assert np.mean((z - clean) ** 2) < 0.3 * np.mean((y - clean) ** 2)


def test_unknown_name_lists_the_available():
    with pytest.raises(ValueError, match="natural, phantom"):
        pretrained.load("photos")
    with pytest.raises(TypeError, match="str"):
        pretrained.load(3)


def test_missing_and_corrupt_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "_HERE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="natural.npz"):
        pretrained.load("natural")
    (tmp_path / "phantom.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFileError, match="phantom.npz"):
        pretrained.load("phantom")


def _train_module():
    spec = importlib.util.spec_from_file_location("train_pretrained",
                                                  os.path.join(BENCH, "train_pretrained.py"))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, BENCH)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(BENCH)
    return module


def test_training_script_is_deterministic(tmp_path):
    train = _train_module()
    files = []
    for k in range(2):
        out = tmp_path / f"phantom{k}.npz"
        train.main(["phantom", "--out", str(out), "--scale", "0.01"])
        files.append(read_model_file(out))
    (a, meta_a), (b, meta_b) = files
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert meta_a == meta_b


def test_map_options_scale_with_the_noise_level():
    from fastscore import pretrained

    for name in pretrained.available():
        a, b = pretrained.map_options(name, 0.1), pretrained.map_options(name, 0.2)
        assert a["method"] == "hqs" and a["n_steps"] == pretrained.MAP_OPTIONS[name]["n_steps"]
        np.testing.assert_allclose(np.array(b["sigma_schedule"]),
                                   2 * np.array(a["sigma_schedule"]))
        assert a["sigma_schedule"][0] > 0.1 > a["sigma_schedule"][1]
    with pytest.raises(ValueError, match="available"):
        pretrained.map_options("nope", 0.1)
    with pytest.raises(ValueError, match="noise_sigma"):
        pretrained.map_options("natural", 0.0)

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fastscore import plot  # noqa: E402


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((16, 16))
    paths = [
        plot.image_panels([img, img + 1, img * 2], ["a", "b", "c"], path=tmp_path / "p.png"),
        plot.uncertainty_map(np.abs(img), path=tmp_path / "u.png"),
        plot.reconstruction_figure(img, {"noisy": img + 0.1, "MAP": img}, np.abs(img),
                                   path=tmp_path / "r.png"),
        plot.training_curves({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0],
                              "val_step": [3], "val_loss": [1.5]}, path=tmp_path / "t.png"),
        plot.score_field(lambda x: -x, log_density=lambda x: -0.5 * (x ** 2).sum(1),
                         path=tmp_path / "s.png"),
        plot.patch_statistics(rng.random((4, 8, 8)), path=tmp_path / "h.png"),
    ]
    for p in paths:
        assert is_png(p) and p.stat().st_size > 1000


def test_volume_and_errors(tmp_path):
    fig = plot.image_panels([np.zeros((3, 4, 4))])
    assert fig is not None
    with pytest.raises(ValueError, match=r"`images\[0\]` must have 2 or 3 dimensions"):
        plot.image_panels([np.zeros(4)])

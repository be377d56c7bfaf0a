"""Training, validation and test images of the pretrained priors (scikit-image, offline).

Every image ships with scikit-image (``skimage.data``, no download) and is converted to
grey in [0, 1] (RGB by the ITU-R 601 luma weights of ``skimage.color.rgb2gray``). The
split is fixed here, once, and is the whole truth about which image is used for what:

* ``TRAIN``: training patches of the "natural" prior;
* ``VALIDATION``: separate images on which every setting (model family, patch size,
  weight, iterations, σ schedule, method) is chosen;
* ``TEST``: ``moon``, ``coins``, ``clock`` — the denoising benchmark's held-out images,
  never a training or validation patch.

``cat`` is the same picture as ``chelsea`` (a validation image) and is not used.
``camera`` is reserved for independent evaluation and appears nowhere.
Sources and licences: ``docs/pretrained.md``.
"""

import numpy as np

TRAIN = ("astronaut", "brick", "cell", "grass", "gravel", "hubble_deep_field",
         "immunohistochemistry", "page", "retina", "text", "microaneurysms", "lfw_subset")
#: more photographs, studied as an addition (large smooth surfaces, which TRAIN lacks)
TRAIN_MORE = ("stereo_motorcycle",)
VALIDATION = ("chelsea", "rocket", "coffee")
TEST = ("moon", "coins", "clock")
MAX_SIDE = 512          # larger images: central crop (keeps one image from dominating)


def _grey(name):
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    img = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":                # (left, right, disparity): one view
        img = img[0]
    img = np.asarray(img)
    if name == "lfw_subset":                       # 200 faces of 25×25, already [0, 1]
        return [np.clip(f, 0, 1) for f in img.astype(np.float64)]
    img = img_as_float(img)
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
    return [np.clip(img, 0.0, 1.0)]


def _central(img, side):
    h, w = img.shape
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[top:top + side, left:left + side]


def load(names, dtype=np.float32, max_side=MAX_SIDE):
    """Grey [0, 1] images of `names` (a face set expands to its faces), central crops of at
    most `max_side`; returns a list of C-contiguous arrays."""
    if "camera" in names:
        raise ValueError("`camera` is reserved for independent evaluation.")
    out = []
    for name in names:
        for img in _grey(name):
            out.append(np.ascontiguousarray(_central(img, max_side), dtype=dtype))
    return out


def crops(names, side, dtype=np.float64):
    """One central `side`² crop per image (the evaluation images)."""
    return {name: np.ascontiguousarray(_central(_grey(name)[0], side), dtype=dtype)
            for name in names}

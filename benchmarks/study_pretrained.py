"""Which prior to ship: model families measured on the validation images only.

    python benchmarks/study_pretrained.py train [KEY ...]   # train (cached) study models
    python benchmarks/study_pretrained.py eval  [KEY ...]   # HQS denoising on validation

Models are cached in ``benchmarks/_cache/pretrained`` (resumable: a cached model is not
trained again; every run is deterministic from its seed). Evaluation: central 128² crops
of the validation images (``_pretrained_data.VALIDATION``, for the natural prior) or
fresh phantoms (seed 99, for the phantom prior) at σ = 0.05, 0.1, 0.2, PSNR of MAP by HQS
against BM3D on the same crops.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_pretrained as tp

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache", "pretrained")

#: key -> (data, family, options)
MODELS = {
    "natural_mlp3": ("natural", "mlp", {"patch": 3, "steps": 2000}),
    "natural_mlp5dc": ("natural", "mlp", {"patch": 5, "steps": 2000, "dc": True}),
    "natural_mlp8dc": ("natural", "mlp", {"patch": 8, "steps": 2000, "dc": True}),
    "natural_gmm8_k16": ("natural", "gmm", {"patch": 8, "n_components": 16,
                                            "n_patches": 50000, "n_iter": 15}),
    "natural_gmm8_k32": ("natural", "gmm", {"patch": 8, "n_components": 32,
                                            "n_patches": 50000, "n_iter": 15}),
    "natural_gmm8_k64": ("natural", "gmm", {"patch": 8, "n_components": 64,
                                            "n_patches": 100000, "n_iter": 20}),
    "phantom_gmm8_k32": ("phantom", "gmm", {"patch": 8, "n_components": 32,
                                            "n_patches": 50000, "n_iter": 15}),
    "phantom_gmm8_k64": ("phantom", "gmm", {"patch": 8, "n_components": 64,
                                            "n_patches": 100000, "n_iter": 20}),
    "phantom_mlp5dc": ("phantom", "mlp", {"patch": 5, "steps": 2000, "dc": True}),
    # more data per parameter: a full 64-dimensional covariance has 2080 entries, and
    # 32 components from 50 000 patches see ~1 600 patches each
    "natural_gmm8_k32_n300k": ("natural", "gmm", {"patch": 8, "n_components": 32,
                                                  "n_patches": 300000, "n_iter": 15}),
    "phantom_gmm8_k32_n300k": ("phantom", "gmm", {"patch": 8, "n_components": 32,
                                                  "n_patches": 300000, "n_iter": 15}),
    "natural_gmm8_k64_n600k": ("natural", "gmm", {"patch": 8, "n_components": 64,
                                                  "n_patches": 600000, "n_iter": 15}),
    "phantom_gmm8_k64_n600k": ("phantom", "gmm", {"patch": 8, "n_components": 64,
                                                  "n_patches": 600000, "n_iter": 15}),
    "natural_gmm8_k128_n600k": ("natural", "gmm", {"patch": 8, "n_components": 128,
                                                   "n_patches": 600000, "n_iter": 15}),
    # the network families at a budget the quiet machine allows (~9 ms a step, one core)
    "natural_mlp5dc_40k": ("natural", "mlp", {"patch": 5, "steps": 40000, "dc": True}),
    "natural_mlp8dc_40k": ("natural", "mlp", {"patch": 8, "steps": 40000, "dc": True}),
    # "natural+": the training images and TRAIN_MORE (_pretrained_data.py)
    "natural+_gmm8_k32_n300k": ("natural+", "gmm", {"patch": 8, "n_components": 32,
                                                    "n_patches": 300000, "n_iter": 15}),
    "natural+_gmm8_k64_n600k": ("natural+", "gmm", {"patch": 8, "n_components": 64,
                                                    "n_patches": 600000, "n_iter": 15}),
    # sharper edges and flatter areas from the same photographs (study_natural_phantoms.py):
    # "natural-pyramid" adds every image's 2× and 4× mean-pooled copies; "contrast" scales
    # each patch by a random factor in [1/2, 2]
    "natural-pyramid_gmm8_k64_n600k": ("natural-pyramid", "gmm",
                                       {"patch": 8, "n_components": 64, "n_patches": 600000,
                                        "n_iter": 15}),
    "natural_gmm8_k64_n600k_contrast2": ("natural", "gmm",
                                         {"patch": 8, "n_components": 64,
                                          "n_patches": 600000, "n_iter": 15, "contrast": 2.0}),
}


def model_path(key):
    return os.path.join(CACHE, f"{key}.npz")


def load_model(key):
    from fastscore.pretrained import load_file
    return load_file(model_path(key))


def train(key, seed=0):
    path = model_path(key)
    if os.path.exists(path):
        return
    os.makedirs(CACHE, exist_ok=True)
    data, family, opts = MODELS[key]
    images = (tp.natural_images(more=data == "natural+", pyramid=data == "natural-pyramid")
              if data.startswith("natural") else tp.phantom_images(seed))
    t0 = time.perf_counter()
    model = (tp.train_mlp if family == "mlp" else tp.train_gmm)(images, seed=seed, **opts)
    model.save(path)
    print(f"trained {key} in {time.perf_counter() - t0:.0f} s", flush=True)


def main():
    stage, keys = sys.argv[1], sys.argv[2:]
    keys = keys or list(MODELS)
    if stage == "train":
        for key in keys:
            train(key)
    elif stage == "eval":
        from study_eval import evaluate_all
        evaluate_all(keys)
    else:
        raise SystemExit(f"unknown stage {stage!r}: train or eval")


if __name__ == "__main__":
    main()

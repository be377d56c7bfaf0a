"""Distribution shift: do patch priors generalise, and which invariances help?

Models are trained with the same NCSM recipe (or loaded from benchmarks/_cache) on the toy
rectangles; MAP denoising (HQS, σ = 0.1) is evaluated on held-out rectangles (in
distribution), disks, rectangles scaled by 0.5 and 2, rectangles plus an offset of 0.5,
and a Shepp–Logan phantom, against TV with its best weight per image.

1. Invariance settings of the 3×3 model: none; DC (test time, and trained); contrast
   (trained); rotations/flips symmetrised; image intensity normalised ("scale", "affine";
   calibrated from the noisy image, or estimated at every call); random-scale training
   augmentation; and "on" = affine + symmetrised.
2. The target: with invariances on, within 1 dB of a model trained on each shifted set's
   own distribution, and never below TV.
3. Is the best "patch" the whole image? Patch sizes 3, 5, 8 and a whole-image score model
   (an MLP on all 256 pixels of a 16×16 image), in distribution and under each shift, with
   training time and model size.
4. MAP from random initial images (several seeds): the spread of the results.

    python benchmarks/bench_shift.py            # the study (trains ~12 models once)
    python benchmarks/bench_shift.py --quick    # small, for CI
"""

import os
import time

import numpy as np

from _timing import Table, header, parser, try_import

import fastscore
from fastscore import data, metrics
from fastscore.nn import DEFAULT_HIDDEN, NoiseConditionalScore, PatchScoreModel
from fastscore.operators import Identity
from fastscore.prior import PatchPrior
from fastscore.reconstruct import map_estimate
from fastscore.train import fit_patch_score
from fastscore.tv import tune_tv_weight

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cache")
SIGMA = 0.1
WHOLE = 16       # the whole-image model scores 16×16 images


def hidden_for(patch):
    """The tutorial's widths, widened to at least 2·d so no layer is a bottleneck."""
    return tuple(max(w, 2 * patch * patch) for w in DEFAULT_HIDDEN)


def train(key, images, steps, patch=3, **options):
    """Train (or load the cached) model; returns (model, training seconds)."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"shift_{key}_{steps}.npz")
    if os.path.exists(path):
        model = PatchScoreModel.load(path)
        return model, model.training["seconds"]
    stats = data.extract_patches(list(images), (patch, patch), 20000, rng=0)
    net = NoiseConditionalScore.for_patches(patch, stats, hidden=hidden_for(patch), rng=0)
    model = fit_patch_score(images, patch_size=patch, model=net, n_steps=steps,
                            sigma_range=(0.02, 0.5), rng=0, dtype=np.float32, **options)
    model.save(path)
    print(f"#   trained {key} in {model.training['seconds']:.0f} s", flush=True)
    return model, model.training["seconds"]


def shepp_family(size):
    """Shepp–Logan renderings at other sizes (the phantom's own distribution)."""
    return [data.shepp_logan((m, m)).astype(np.float32)
            for m in (size // 2, size + size // 4, 2 * size)]


def test_sets(n, size):
    rect = data.rectangles(n, rng=100, dtype=np.float32)
    return {
        "rectangles (in distribution)": rect,
        "disks": data.disks(n, rng=101, dtype=np.float32),
        "rectangles x0.5": 0.5 * rect,
        "rectangles x2": 2.0 * rect,
        "rectangles +0.5": rect + 0.5,
        f"Shepp-Logan {size}²": data.shepp_logan((size, size)).astype(np.float32)[None],
    }


def own_training_sets(rect, size, n):
    return {
        "disks": data.disks(n, rng=1, dtype=np.float32),
        "rectangles x0.5": 0.5 * rect,
        "rectangles x2": 2.0 * rect,
        "rectangles +0.5": rect + 0.5,
        f"Shepp-Logan {size}²": shepp_family(size),
    }


def make_prior(model, **options):
    p = model.patch_size[0]
    whole = p == WHOLE
    return PatchPrior(model.with_invariances(**options), p,
                      weight="mean" if whole else 1.0 / p ** 2,
                      padding="valid" if whole else "reflect")


def denoise(prior, noisy, *, calibrate=True, x0=None, method="hqs"):
    if prior.intensity is not None:
        if calibrate:
            prior.calibrate(noisy, SIGMA)
        else:
            prior.intensity.fixed = None
    A = Identity(noisy.shape[1:])
    steps = 6 if method == "hqs" else 100
    return map_estimate(noisy, A, SIGMA, prior, method=method, n_steps=steps, x0=x0).x


def psnr(clean, est):
    return float(np.mean([metrics.psnr(c, e) for c, e in zip(clean, est)]))


ON = {"intensity": "affine", "symmetrize": True}
PLAIN = {"intensity": "none"}


def settings(models):
    """Invariance settings of the 3×3 rectangle model: label -> (model, options, calibrate)."""
    base = models["rect3"]
    return {
        "none": (base, PLAIN, True),
        "dc": (base, dict(PLAIN, dc=True), True),
        "dc (trained)": (models["rect3-dc"], PLAIN, True),
        "contrast (trained)": (models["rect3-contrast"], PLAIN, True),
        "sym": (base, dict(PLAIN, symmetrize=True), True),
        "scale": (base, {"intensity": "scale"}, True),
        "affine": (base, {"intensity": "affine"}, True),
        "affine per call": (base, {"intensity": "affine"}, False),
        "scale augment": (models["rect3-scaleaug"], PLAIN, True),
        "on": (base, ON, True),
        "dc (trained) + on": (models["rect3-dc"], ON, True),
    }


def save_figure(path, examples):
    plt = try_import("matplotlib.pyplot")
    if plt is None:
        print("# matplotlib not installed: no figure")
        return
    names = list(examples)
    columns = ["clean", "noisy", "TV", "none", "on", "own"]
    fig, axes = plt.subplots(len(names), len(columns), figsize=(2 * len(columns),
                                                               2 * len(names)))
    for i, name in enumerate(names):
        clean = examples[name]["clean"]
        lo, hi = float(clean.min()), float(clean.max())
        for j, col in enumerate(columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = examples[name].get(col)
            if img is None:
                ax.axis("off")
                continue
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            title = col if col == "clean" else f"{col} {metrics.psnr(clean, img):.1f} dB"
            ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"# figure: {path}")


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--figure", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "shift.png"))
    args = p.parse_args()
    quick = args.quick
    steps = 150 if quick else 6000
    n_train, n_test, size = (200, 2, 32) if quick else (4000, 16, 64)
    fastscore.set_num_threads(max(args.threads))
    print(header("distribution shift of patch priors (MAP by HQS, sigma 0.1)",
                 training_steps=steps, training_images=n_train, test_images=n_test))
    rect = data.rectangles(n_train, rng=0, dtype=np.float32)
    t0 = time.perf_counter()
    specs = {
        "rect3": (rect, 3, {}),
        "rect3-dc": (rect, 3, {"dc": True}),
        "rect3-contrast": (rect, 3, {"contrast": True}),
        "rect3-scaleaug": (rect, 3, {"scale_augment": (0.25, 4.0)}),
        "rect5": (rect, 5, {}),
        "rect8": (rect, 8, {}),
        "whole": (rect, WHOLE, {}),
    }
    # the whole-image model again with 5x the images and 5x the steps
    many = data.rectangles(5 * n_train, rng=10, dtype=np.float32)
    models, seconds = {}, {}
    for key, (images, patch, options) in specs.items():
        models[key], seconds[key] = train(key, images, steps, patch, **options)
    models["whole-long"], seconds["whole-long"] = train("whole", many, 5 * steps, WHOLE)
    own = {}
    for name, images in own_training_sets(rect, size, n_train).items():
        key = "own-" + name.split()[0] + name.split()[-1].replace("²", "")
        own[name], _ = train(key, images, steps)
    print(f"# models ready in {time.perf_counter() - t0:.0f} s", flush=True)

    rng = np.random.default_rng(7)
    sets = test_sets(n_test, size)
    noisy_sets = {name: clean + SIGMA * rng.standard_normal(clean.shape).astype(np.float32)
                  for name, clean in sets.items()}
    tv = {name: np.stack([tune_tv_weight(y, c).estimate for y, c in
                          zip(noisy_sets[name], clean)]) for name, clean in sets.items()}
    examples = {}

    # 1. invariance settings
    conf = settings(models)
    table = Table(["test set", "noisy", "TV best", *conf])
    results = {}
    for name, clean in sets.items():
        noisy = noisy_sets[name]
        row = [name, f"{psnr(clean, noisy):.2f}", f"{psnr(clean, tv[name]):.2f}"]
        results[name] = {}
        for label, (model, options, calibrate) in conf.items():
            est = denoise(make_prior(model, **options), noisy, calibrate=calibrate)
            results[name][label] = psnr(clean, est)
            row.append(f"{results[name][label]:.2f}")
            if label in ("none", "on"):
                examples.setdefault(name, {"clean": clean[0], "noisy": noisy[0],
                                           "TV": tv[name][0]})[label] = est[0]
        table.add(*row)
    print("\n## PSNR (dB) of the 3x3 rectangle model by invariance setting\n")
    print(table.render())

    # 2. the target: on vs own-distribution model and TV
    table = Table(["test set", "TV best", "on", "own model (best of plain/on)",
                   "gap to own", "within 1 dB", "above TV"])
    for name, clean in sets.items():
        noisy = noisy_sets[name]
        on = results[name]["on"]
        t = psnr(clean, tv[name])
        if name not in own:
            table.add(name, f"{t:.2f}", f"{on:.2f}", "(the model's own)", "-", "-",
                      "yes" if on > t else "NO")
            continue
        ests = {label: denoise(make_prior(own[name], **options), noisy)
                for label, options in (("plain", PLAIN), ("on", ON))}
        best = max(ests, key=lambda k: psnr(clean, ests[k]))
        ref = psnr(clean, ests[best])
        examples[name]["own"] = ests[best][0]
        table.add(name, f"{t:.2f}", f"{on:.2f}", f"{ref:.2f} ({best})", f"{on - ref:+.2f}",
                  "yes" if on >= ref - 1 else "NO", "yes" if on > t else "NO")
    print("\n## Target: invariances on within 1 dB of the own-distribution model, above TV\n")
    print(table.render())

    # 3. patch size and the whole image
    sizes = [("3x3", "rect3"), ("5x5", "rect5"), ("8x8", "rect8"), ("whole 16x16", "whole"),
             ("whole 16x16, 5x data and steps", "whole-long")]
    table = Table(["test set"] + [f"{label} {mode}" for label, _ in sizes
                                  for mode in ("plain", "on")])
    for name, clean in sets.items():
        row = [name]
        for _, key in sizes:
            for options in (PLAIN, ON):
                est = denoise(make_prior(models[key], **options), noisy_sets[name])
                row.append(f"{psnr(clean, est):.2f}")
        table.add(*row)
    print("\n## PSNR (dB) by patch size (plain / invariances on); the whole-image model is "
          "applied to larger images as a 16x16 patch prior\n")
    print(table.render())
    table = Table(["model", "training images", "steps", "parameters", "file size (MB)",
                   "training (s)", "final validation loss"])
    for label, key in sizes:
        m = models[key]
        path = os.path.join(CACHE, f"shift_{key.replace('-long', '')}_"
                                   f"{m.training['n_steps']}.npz")
        table.add(label, m.training["data"].split()[0], m.training["n_steps"],
                  f"{m.model.n_params:,}", f"{os.path.getsize(path) / 1e6:.2f}",
                  f"{seconds[key]:.0f}", f"{m.training['final_val_loss']:.3f}")
    print(f"\n## Model size and training time (batch 512, {max(args.threads)} thread(s), "
          "training seconds as measured when the model was trained)\n")
    print(table.render())

    # 4. MAP from random initial images
    name = "rectangles (in distribution)"
    clean, noisy = sets[name], noisy_sets[name]
    table = Table(["method", "PSNR from y (dB)", "PSNR over random starts (dB)",
                   "spread (std over seeds)", "pixel std between starts"])
    for method in ("hqs", "gradient"):
        prior = make_prior(models["rect3"], **ON)
        ref = psnr(clean, denoise(prior, noisy, method=method))
        ests = []
        for seed in range(3 if quick else 5):
            x0 = np.random.default_rng(seed).uniform(0.0, 3.0, clean.shape).astype(np.float32)
            ests.append(denoise(make_prior(models["rect3"], **ON), noisy, x0=x0,
                                method=method))
        values = [psnr(clean, e) for e in ests]
        table.add(method, f"{ref:.2f}", f"{np.mean(values):.2f}", f"{np.std(values):.3f}",
                  f"{float(np.mean(np.std(np.stack(ests), axis=0))):.2e}")
    print("\n## MAP from random initial images (uniform in [0, 3]), invariances on\n")
    print(table.render())
    if not quick:
        save_figure(args.figure, examples)


if __name__ == "__main__":
    main()

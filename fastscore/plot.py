"""Figures (matplotlib, optional: ``pip install 'fastscore[plot]'``).

Every function draws into new or given axes and returns the figure; nothing is shown or
saved unless asked (``path=...`` writes the file, PNG by extension). matplotlib is imported
when a function is called, with the non-interactive Agg backend when no display is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._deprecation import renamed_arguments
from ._optional import import_optional
from ._validation import as_float_array

__all__ = ["image_panels", "uncertainty_map", "reconstruction_figure", "training_curves",
           "score_field", "patch_statistics", "save"]


def _pyplot():
    import os

    matplotlib = import_optional("matplotlib", "plot")
    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Write `fig` to `path` (format from the extension) and close it."""
    plt = _pyplot()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _finish(fig, path):
    return save(fig, path) if path is not None else fig


def image_panels(images: Sequence[ArrayLike], titles: Sequence[str] | None = None, *,
                 shared: bool = True, cmap: str = "gray", colorbar: bool = True,
                 ncols: int | None = None, path: str | os.PathLike[str] | None = None) -> Any:
    """A row (or grid) of images with one shared colour scale.

    Parameters
    ----------
    images : sequence of 2-D arrays (3-D volumes show their middle slice)
    titles : sequence of str, optional
    shared : bool
        One colour scale for all panels (from the first image's range), so intensities
        compare across panels.
    ncols : int, optional
    path : str, optional
        Save the figure there (and close it) instead of returning it.
    """
    plt = _pyplot()
    arrays = [_middle_slice(as_float_array(im, f"images[{k}]", ndim=(2, 3)))
              for k, im in enumerate(images)]
    n = len(arrays)
    ncols = n if ncols is None else ncols
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    vmin, vmax = (float(arrays[0].min()), float(arrays[0].max())) if shared else (None, None)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        im = ax.imshow(arrays[k], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
        if colorbar:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _finish(fig, path)


def _middle_slice(arr):
    return arr[arr.shape[0] // 2] if arr.ndim == 3 else arr


def uncertainty_map(std: ArrayLike, *, title: str = "posterior std", ax: Any = None,
                    path: str | os.PathLike[str] | None = None) -> Any:
    """Pixelwise standard deviation with its own colour bar (magma colour map)."""
    plt = _pyplot()
    arr = _middle_slice(as_float_array(std, "std", ndim=(2, 3)))
    fig, ax = (plt.subplots(figsize=(3.6, 3.0)) if ax is None else (ax.figure, ax))
    im = ax.imshow(arr, cmap="magma", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _finish(fig, path)


def reconstruction_figure(clean: ArrayLike, estimates: Mapping[str, ArrayLike],
                          std: ArrayLike | None = None, *, std_title: str = "posterior std",
                          path: str | os.PathLike[str] | None = None) -> Any:
    """Clean image, estimates (PSNR in the titles) on one colour scale, and an uncertainty map.

    Parameters
    ----------
    clean : 2-D array (the reference; 3-D volumes show their middle slice)
    estimates : dict name -> array of the same shape (e.g. noisy, MAP, posterior mean)
    std : array, optional
        Pixelwise standard deviation, drawn with its own colour scale (magma).
    """
    from .metrics import psnr

    plt = _pyplot()
    ref = _middle_slice(as_float_array(clean, "clean", ndim=(2, 3)))
    items = [("clean", ref)] + [(name, _middle_slice(as_float_array(im, name, ndim=(2, 3))))
                                for name, im in estimates.items()]
    n = len(items) + (std is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    axes = axes[0]
    lo, hi = float(ref.min()), float(ref.max())
    for ax, (name, im) in zip(axes, items):
        handle = ax.imshow(im, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        title = name if im is ref else f"{name}\n{psnr(ref, im):.2f} dB"
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(handle, ax=ax, fraction=0.046, pad=0.04)
    if std is not None:
        uncertainty_map(std, title=std_title, ax=axes[-1])
    fig.tight_layout()
    return _finish(fig, path)


def training_curves(history: Mapping[str, Sequence[float]], *,
                    path: str | os.PathLike[str] | None = None) -> Any:
    """Training and validation loss against the step (log scale when positive).

    Parameters
    ----------
    history : dict with ``step`` and ``loss`` lists, optionally ``val_step``/``val_loss``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(history["step"], history["loss"], lw=0.8, alpha=0.7, label="training loss")
    if history.get("val_loss"):
        ax.plot(history.get("val_step", history["step"][:len(history["val_loss"])]),
                history["val_loss"], "o-", ms=3, label="validation loss")
    values = np.asarray(history["loss"], dtype=float)
    if values.size and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)


@renamed_arguments(logpdf="log_density")
def score_field(score: Callable[[np.ndarray], np.ndarray],
                extent: tuple[float, float, float, float] = (-3, 3, -3, 3), *, n: int = 21,
                log_density: Callable[[np.ndarray], np.ndarray] | None = None,
                ax: Any = None, path: str | None = None) -> Any:
    """Arrows of a 2-D score field ``s(x) = ∇ log p(x)`` over a grid, density underneath.

    Parameters
    ----------
    score : callable (N, 2) -> (N, 2)
    extent : (x_min, x_max, y_min, y_max)
    n : int, grid points per axis
    log_density : callable (N, 2) -> (N,), optional, drawn as filled contours
        (formerly ``logpdf``)
    """
    plt = _pyplot()
    x0, x1, y0, y1 = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    s = np.asarray(score(pts), dtype=float)
    fig, ax = (plt.subplots(figsize=(4, 4)) if ax is None else (ax.figure, ax))
    if log_density is not None:
        fx, fy = np.meshgrid(np.linspace(x0, x1, 120), np.linspace(y0, y1, 120))
        dens = np.exp(np.asarray(log_density(np.column_stack([fx.ravel(), fy.ravel()]))))
        ax.contourf(fx, fy, dens.reshape(fx.shape), levels=20, cmap="Blues")
    norm = np.hypot(s[:, 0], s[:, 1])
    scale = np.where(norm > 0, 1.0 / np.maximum(norm, 1e-12), 0.0) ** 0.5
    ax.quiver(pts[:, 0], pts[:, 1], s[:, 0] * scale, s[:, 1] * scale, norm, cmap="viridis")
    ax.set_aspect("equal")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    fig.tight_layout()
    return _finish(fig, path)


def patch_statistics(images: ArrayLike, *, bins: int = 80,
                     path: str | os.PathLike[str] | None = None) -> Any:
    """Joint histograms of neighbouring pixels (right and down neighbours) of images.

    The tutorial's "patch statistics" figure: the mass on the diagonal shows how strongly
    neighbouring pixels agree (a piecewise-constant image puts almost all of it there).

    Parameters
    ----------
    images : ndarray of shape (n, H, W) or (H, W)
    """
    plt = _pyplot()
    arr = as_float_array(images, "images", ndim=(2, 3))
    arr = arr[np.newaxis] if arr.ndim == 2 else arr
    pairs = {"horizontal neighbours": (arr[:, :, :-1], arr[:, :, 1:]),
             "vertical neighbours": (arr[:, :-1, :], arr[:, 1:, :])}
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
    lo, hi = float(arr.min()), float(arr.max())
    for ax, (name, (a, b)) in zip(axes, pairs.items()):
        h, xe, ye = np.histogram2d(a.ravel(), b.ravel(), bins=bins, range=[[lo, hi], [lo, hi]])
        ax.imshow(np.log1p(h.T), origin="lower", extent=[xe[0], xe[-1], ye[0], ye[-1]],
                  cmap="viridis", aspect="auto")
        ax.set_title(f"{name} (log counts)", fontsize=9)
        ax.set_xlabel("x_i")
        ax.set_ylabel("x_j")
    fig.tight_layout()
    return _finish(fig, path)

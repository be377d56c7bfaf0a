"""Exact invariances of patch priors: DC offset, contrast, rotations/flips, image scale.

A learned score is not invariant to intensity offset, scale, rotation or flips unless the
method makes it so. These wrappers make a patch score (``score(patches, sigma)`` on
``(n, patch_dim)`` arrays) or an image prior exactly invariant, through the chain rule of
the transformation applied before the score:

- **DC offset.** ``s(v) = P s̃(P v)`` with ``P = I − 11ᵀ/n`` the centring projection: the
  exact gradient of ``log p̃(P v)``. Adding a constant to an image then leaves every patch
  score, hence the image score, unchanged, and the image score has no component along
  constant images locally.
- **Contrast.** ``u(v) = P v / c(v)``, ``c(v) = sqrt(‖P v‖²/n + ε²)``: the patch is centred
  and scaled to unit RMS before scoring, at noise level ``σ / c(v)``; the score is mapped
  back with the exact Jacobian ``J = (P − u uᵀ/n) / c`` (symmetric): ``s(v) = J s̃(u)``.
- **Rotations and flips.** ``s(v) = (1/|T|) Σ_T Tᵀ s̃(T v)`` over the dihedral group of the
  patch (8 transforms of a square 2-D patch; 4 flips of a rectangle; the 8 axis flips of a
  3-D patch): the symmetrised score is exactly equivariant.

The global intensity normalisation of images (``IntensityReference``,
``IntensityNormalization``) is in :mod:`fastscore.intensity`; both names remain importable
from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import check_scalar
from .data import _dihedral_permutations, _flip_permutations
from .intensity import IntensityNormalization, IntensityReference  # noqa: F401 (old path)

__all__ = ["InvariantPatchScore", "map_back", "normalize_patches", "symmetry_permutations"]


def symmetry_permutations(patch_shape: Sequence[int]) -> np.ndarray:
    """Index permutations (n_transforms, patch_dim) of the patch's symmetry group."""
    patch_shape = tuple(patch_shape)
    if len(patch_shape) == 2:
        return _dihedral_permutations(*patch_shape)
    if len(patch_shape) == 3:
        return _flip_permutations(patch_shape)
    raise ValueError(f"`patch_shape` must have 2 or 3 entries; got {patch_shape}.")


def normalize_patches(patches: np.ndarray, sigma: float | np.ndarray | None, *,
                      dc: bool = False, contrast: bool = False, eps: float = 1e-2,
                      ) -> tuple[np.ndarray, float | np.ndarray | None, np.ndarray | None]:
    """``(u, σ_u, c)``: patches as an invariant score sees them, their noise level(s) and
    the per-patch contrast ``c`` (shape (n, 1); None without `contrast`).

    DC: ``u = P v``, ``σ_u = σ``. Contrast: ``u = P v / c``, ``c = sqrt(‖P v‖²/n + ε²)``,
    ``σ_u = σ / c`` (one level per patch). Neither: `patches` and `sigma` unchanged.
    """
    if not (dc or contrast):
        return patches, sigma, None
    u = patches - patches.mean(axis=1, keepdims=True)
    if not contrast:
        return u, sigma, None
    c = np.sqrt(np.mean(u ** 2, axis=1, keepdims=True) + eps ** 2)
    u /= c
    sigma_u = None if sigma is None else np.asarray(sigma, dtype=u.dtype) / c[:, 0]
    return u, sigma_u, c


def map_back(g: np.ndarray, u: np.ndarray, c: np.ndarray | None, *,
             dc: bool = True) -> np.ndarray:
    """``J g``: a score `g` at the normalised patches `u` mapped back through the
    normalisation's (symmetric) Jacobian: ``P g`` (DC), ``(P g − u (uᵀg)/n) / c``
    (contrast, ``c`` from :func:`normalize_patches`), `g` itself (neither)."""
    if not dc and c is None:
        return g
    Pg = g - g.mean(axis=1, keepdims=True)
    if c is None:
        return Pg
    Pg -= u * (np.sum(u * g, axis=1, keepdims=True) / g.shape[1])
    Pg /= c
    return Pg


class InvariantPatchScore:
    """A patch score made exactly invariant to DC offset, contrast and/or rotations/flips.

    Parameters
    ----------
    patch_score : object with ``score(patches, sigma)``
        The inner score s̃ (σ may be a scalar or, with ``contrast=True``, an array of one
        noise level per patch).
    patch_shape : tuple of int
    dc : bool
        Score the centred patch and project the score (``s = P s̃(P v)``).
    contrast : bool
        Score the centred patch scaled to unit RMS (implies the DC invariance), with the
        exact Jacobian of the normalisation.
    symmetrize : bool
        Average ``Tᵀ s̃(T v)`` over the patch's symmetry group.
    eps : float > 0
        Floor of the contrast ``c(v)`` (flat patches), in intensity units.

    Notes
    -----
    Holds no scratch: :meth:`score` may be called from several Python threads at once
    when the wrapped patch score allows it (a :class:`fastscore.nn.PatchScoreModel` does).
    """

    def __init__(self, patch_score: Any, patch_shape: Sequence[int], *, dc: bool = False,
                 contrast: bool = False, symmetrize: bool = False, eps: float = 1e-2) -> None:
        if not callable(getattr(patch_score, "score", None)):
            raise TypeError("`patch_score` must have a method score(patches, sigma).")
        self.patch_score = patch_score
        self.patch_shape = tuple(int(p) for p in patch_shape)
        self.dc = bool(dc) or bool(contrast)
        self.contrast = bool(contrast)
        self.symmetrize = bool(symmetrize)
        self.eps = check_scalar(eps, "eps", low=0, low_inclusive=False)
        self._perms = symmetry_permutations(self.patch_shape) if symmetrize else None
        if self._perms is not None:
            self._inverse = np.argsort(self._perms, axis=1)
        for name in ("sigma_min", "sigma_max"):
            if hasattr(patch_score, name):
                setattr(self, name, getattr(patch_score, name))

    def _symmetric_score(self, patches, sigma):
        if self._perms is None:
            return self.patch_score.score(patches, sigma)
        total = np.zeros_like(patches)
        for perm, inverse in zip(self._perms, self._inverse):
            total += self.patch_score.score(patches[:, perm], sigma)[:, inverse]
        total /= patches.dtype.type(len(self._perms))
        return total

    def score(self, patches: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
        """Invariant patch score ``J s̃_T(u(v); σ_u)``, shape and dtype of `patches`."""
        v = np.asarray(patches)
        if v.ndim != 2 or v.shape[1] != math.prod(self.patch_shape):
            raise ValueError(f"`patches` must have shape (n, {math.prod(self.patch_shape)}); "
                             f"got {v.shape}.")
        u, sigma_u, c = normalize_patches(v, sigma, dc=self.dc, contrast=self.contrast,
                                          eps=self.eps)
        return map_back(self._symmetric_score(u, sigma_u), u, c, dc=self.dc)

"""The trained patch prior: :class:`PatchScoreModel`.

A noise-conditional score (:class:`fastscore.noise_conditional.NoiseConditionalScore`)
with the patch size, the σ range it was trained on, the training summary and the
patch-level invariances; ``score``/``denoise`` on patches in bounded memory, and
``save``/``load`` to the model file format of :mod:`fastscore.io`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import (
    as_float_array,
    check_choice,
    check_int,
    check_out,
    check_patch_size,
    check_scalar,
    check_sigma,
)
from .noise_conditional import NoiseConditionalScore

if TYPE_CHECKING:
    from .intensity import IntensityReference
    from .mlp import MLP

__all__ = ["PatchScoreModel"]

_CHUNK_SCORE = 16384    # rows per chunk of the standardisation temporaries in score()


class PatchScoreModel:
    """A trained patch prior: noise-conditional score, patch size, σ range, training info.

    Parameters
    ----------
    model : NoiseConditionalScore
        Its dimension must equal ``prod(patch_size)``.
    patch_size : int or sequence of int
        Patch shape (an int ``p`` means ``(p, p)``).
    sigma_min, sigma_max : float > 0
        Noise range the model was trained on; ``score(patches)`` without σ uses σ_min.
    history : dict of lists, optional
        Training curves (``step``, ``loss``, ``val_step``, ``val_loss``, ``time``).
    training : dict, optional
        JSON-serialisable training summary.
    dc, contrast, symmetrize : bool, default False
        Patch-level invariances applied by :meth:`score`
        (:class:`fastscore.invariance.InvariantPatchScore`): exact DC invariance, per-patch
        contrast normalisation (floor `contrast_eps`), symmetrisation over the patch's
        rotations/flips. A model trained with ``dc``/``contrast`` must keep them on.
    intensity : {"none", "scale", "affine"}, default "none"
        Global intensity normalisation used by :class:`fastscore.prior.PatchPrior` built on
        this model (needs `intensity_reference`).
    intensity_reference : fastscore.invariance.IntensityReference, optional
        Intensity statistics of the training images.
    channels : int, default 1
        Channels per patch: 2 for a complex prior (real and imaginary parts of a complex
        patch as one vector, ``[Re v | Im v]``); the model then scores vectors of
        ``channels · prod(patch_size)`` values. Patch-level invariances need 1 channel.

    All options are stored by :meth:`save`; :meth:`with_invariances` changes them.

    Notes
    -----
    Thread safety: :meth:`score` and :meth:`denoise` may be called from several Python
    threads sharing one model (the network's workspaces are per thread) and give exactly
    the serial results; loading or training a model is for one thread.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.nn import NoiseConditionalScore, PatchScoreModel
    >>> ncs = NoiseConditionalScore.for_patches((3, 3), rng=0)
    >>> model = PatchScoreModel(ncs, 3, sigma_min=0.05, sigma_max=1.0)
    >>> v = np.random.default_rng(0).standard_normal((5, 9)).astype(np.float32)
    >>> model.score(v, 0.1).shape
    (5, 9)
    """

    kind = "patch_score_model"

    def __init__(self, model: NoiseConditionalScore, patch_size: int | Sequence[int], *,
                 sigma_min: float, sigma_max: float,
                 history: Mapping[str, Sequence[float]] | None = None,
                 training: Mapping[str, Any] | None = None, dc: bool = False,
                 contrast: bool = False, symmetrize: bool = False,
                 contrast_eps: float = 1e-2, intensity: str = "none",
                 intensity_reference: IntensityReference | None = None,
                 channels: int = 1) -> None:
        from .intensity import IntensityReference
        from .invariance import InvariantPatchScore

        if not isinstance(model, NoiseConditionalScore):
            raise TypeError(f"`model` must be a NoiseConditionalScore; got "
                            f"{type(model).__name__}.")
        self.patch_size = check_patch_size(patch_size)
        self.channels = check_int(channels, "channels", low=1)
        self.patch_dim = self.channels * math.prod(self.patch_size)
        if self.patch_dim != model.dim:
            raise ValueError(f"`patch_size` {self.patch_size} with {self.channels} channel(s) "
                             f"has {self.patch_dim} values but the model scores vectors of "
                             f"dimension {model.dim}.")
        if self.channels > 1 and (dc or contrast or symmetrize or intensity != "none"):
            raise ValueError("dc, contrast, symmetrize and intensity need a single-channel "
                             f"model; got channels={self.channels}.")
        self.sigma_min = check_scalar(sigma_min, "sigma_min", low=0.0, low_inclusive=False)
        self.sigma_max = check_scalar(sigma_max, "sigma_max", low=self.sigma_min)
        self.model = model
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.training = dict(training or {})
        self.invariances: dict[str, Any] = {
            "dc": bool(dc) or bool(contrast), "contrast": bool(contrast),
            "symmetrize": bool(symmetrize),
            "contrast_eps": check_scalar(contrast_eps, "contrast_eps", low=0,
                                         low_inclusive=False),
            "intensity": check_choice(intensity, "intensity", ("none", "scale", "affine"))}
        if intensity_reference is not None and \
                not isinstance(intensity_reference, IntensityReference):
            raise TypeError("`intensity_reference` must be an IntensityReference; got "
                            f"{type(intensity_reference).__name__}.")
        if intensity != "none" and intensity_reference is None:
            raise ValueError(f"`intensity={intensity!r}` needs `intensity_reference` (the "
                             "training images' statistics).")
        self.intensity_reference = intensity_reference
        inv = self.invariances
        self._invariant = None
        if inv["dc"] or inv["symmetrize"]:
            self._invariant = InvariantPatchScore(_RawScore(self), self.patch_size, dc=inv["dc"],
                                                  contrast=inv["contrast"],
                                                  symmetrize=inv["symmetrize"],
                                                  contrast_eps=inv["contrast_eps"])

    @property
    def net(self) -> MLP:
        """The network of :attr:`model`."""
        return self.model.net

    def get_weights(self) -> np.ndarray:
        """A copy of the network's flat weight vector, shape (n_params,)."""
        return self.model.get_weights()

    def set_weights(self, theta: ArrayLike) -> None:
        """Copy `theta` of shape (n_params,) into the network's weights."""
        self.model.set_weights(theta)

    def with_invariances(self, **options: Any) -> PatchScoreModel:
        """A model sharing this network with some invariance options changed (`dc`,
        `contrast`, `symmetrize`, `contrast_eps`, `intensity`)."""
        unknown = set(options) - set(self.invariances)
        if unknown:
            raise TypeError(f"unknown invariance option(s) {sorted(unknown)}; expected "
                            f"{sorted(self.invariances)}.")
        return PatchScoreModel(self.model, self.patch_size, sigma_min=self.sigma_min,
                               sigma_max=self.sigma_max, history=self.history,
                               training=self.training,
                               intensity_reference=self.intensity_reference,
                               channels=self.channels, **{**self.invariances, **options})

    def score(self, patches: ArrayLike, sigma: float | np.ndarray | None = None, *,
              out: np.ndarray | None = None) -> np.ndarray:
        """Patch score ``s_V(v; σ)`` in bounded memory; dtype follows `patches`.

        Parameters
        ----------
        patches : ndarray of shape (N, patch_dim)
        sigma : float > 0, ndarray of shape (N,), or None
            Noise level(s); None means ``sigma_min``. Levels outside the trained range
            are extrapolation.
        out : ndarray of shape (N, patch_dim), optional

        Returns
        -------
        ndarray of shape (N, patch_dim)

        Notes
        -----
        Streams the rows in chunks (standardisation temporaries of at most
        16384 rows); the network itself needs memory independent of N.
        """
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        if arr.shape[1] != self.patch_dim:
            raise ValueError(f"`patches` must have {self.patch_dim} columns (patch size "
                             f"{self.patch_size}); got shape {arr.shape}.")
        n = arr.shape[0]
        sig = check_sigma(self.sigma_min if sigma is None else sigma, n, arr.dtype)
        if self._invariant is None:
            return self._raw_score(arr, sig, out)
        if out is None:
            return self._invariant.score(arr, sig)
        out = check_out(out, "out", arr.shape, arr.dtype)
        out[...] = self._invariant.score(arr, sig)
        return out

    def _raw_score(self, arr, sig, out=None):
        """The network's score of rows `arr` at levels `sig` (shape (N,)), chunked."""
        n = arr.shape[0]
        res = np.empty(arr.shape, dtype=arr.dtype) if out is None else \
            check_out(out, "out", arr.shape, arr.dtype)
        net = self.model.network_for(arr.dtype)
        for lo in range(0, n, _CHUNK_SCORE):
            hi = min(n, lo + _CHUNK_SCORE)
            x, s = arr[lo:hi], sig[lo:hi]
            h = net.predict(self.model.network_inputs(x, s), out=res[lo:hi])
            self.model.score_from_output(h, x, s)
        return res

    def input_vjp(self, patches: ArrayLike, sigma: float | np.ndarray | None,
                  v: ArrayLike) -> np.ndarray:
        """Exact vector-Jacobian product ``Σ_i v_{n,i} ∂s_i(p_n; σ)/∂p_n`` of the patch
        score (the network's backward pass, chunked; see
        :meth:`fastscore.noise_conditional.NoiseConditionalScore.input_vjp`).

        Parameters
        ----------
        patches, v : ndarray of shape (N, patch_dim)
        sigma : float > 0, ndarray of shape (N,), or None (``sigma_min``)

        Returns
        -------
        ndarray of shape (N, patch_dim), dtype of `patches`

        Raises
        ------
        NotImplementedError
            With patch-level invariances (their symmetrised score has no backward pass
            here).
        """
        if self._invariant is not None:
            raise NotImplementedError("input_vjp is defined for a model without patch-level "
                                      "invariances; use with_invariances() to switch them off.")
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        if arr.shape[1] != self.patch_dim:
            raise ValueError(f"`patches` must have {self.patch_dim} columns (patch size "
                             f"{self.patch_size}); got shape {arr.shape}.")
        vec = as_float_array(v, "v", ndim=2, finite=True).astype(arr.dtype, copy=False)
        if vec.shape != arr.shape:
            raise ValueError(f"`v` must have the shape of `patches`, {arr.shape}; got "
                             f"{vec.shape}.")
        sig = check_sigma(self.sigma_min if sigma is None else sigma, arr.shape[0], arr.dtype)
        out = np.empty_like(arr)
        for lo in range(0, arr.shape[0], _CHUNK_SCORE):
            hi = min(arr.shape[0], lo + _CHUNK_SCORE)
            out[lo:hi] = self.model.input_vjp(arr[lo:hi], vec[lo:hi], sig[lo:hi])
        return out

    def denoise(self, patches: ArrayLike,
                sigma: float | np.ndarray | None = None) -> np.ndarray:
        """Tweedie's MMSE denoiser ``v + σ² s_V(v; σ)`` for patches with noise level σ."""
        arr = as_float_array(patches, "patches", ndim=2, finite=True)
        sig = check_sigma(self.sigma_min if sigma is None else sigma, arr.shape[0],
                           arr.dtype)
        s = self.score(arr, sig)
        s *= (sig * sig)[:, None]
        s += arr
        return s

    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description (everything but the arrays) as :meth:`save`
        stores it."""
        ref = self.intensity_reference
        return {"model": self.model.get_config(), "patch_size": list(self.patch_size),
                "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "training": self.training, "invariances": dict(self.invariances),
                "channels": self.channels,
                "intensity_reference": None if ref is None else ref.to_dict()}

    def save(self, path: str | os.PathLike[str]) -> str | os.PathLike[str]:
        """Write the model to `path` (``.npz`` + JSON metadata, atomically); returns path."""
        from .model_file import write_model_file

        arrays = {"params": self.model.net.params, "mean": self.model.mean}
        for key, values in self.history.items():
            arrays[f"history/{key}"] = np.asarray(values, dtype=np.float64)
        return write_model_file(path, self.kind, arrays, self.get_config())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             n_threads: int | None = None) -> PatchScoreModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No file at `path`.
        fastscore.io.ModelFileError
            Not a fastscore patch score model, truncated, corrupt or inconsistent.
        """
        from .intensity import IntensityReference
        from .model_file import ModelFileError, read_model_file

        arrays, meta = read_model_file(path, cls.kind)
        try:
            config = meta["model"]
            params = arrays["params"]
            net_cfg = config["net"]
            widths = [int(w) for w in net_cfg["widths"]]
            expected = sum(widths[l] * widths[l + 1] + widths[l + 1]
                           for l in range(len(widths) - 1))
            if params.ndim != 1 or params.size != expected:
                raise ValueError(f"`params` holds {params.size} values; the architecture "
                                 f"{widths} needs {expected}")
            if params.dtype != np.dtype(net_cfg["dtype"]):
                raise ValueError(f"`params` is {params.dtype}, metadata says "
                                 f"{net_cfg['dtype']}")
            config = dict(config, mean=arrays["mean"])
            ncs = NoiseConditionalScore.from_config(config, params, n_threads=n_threads)
            history = {k.split("/", 1)[1]: v.tolist() for k, v in arrays.items()
                       if k.startswith("history/")}
            ref = meta.get("intensity_reference")
            return cls(ncs, tuple(meta["patch_size"]), sigma_min=meta["sigma_min"],
                       sigma_max=meta["sigma_max"], history=history,
                       training=meta.get("training"),
                       intensity_reference=None if ref is None
                       else IntensityReference.from_dict(ref),
                       channels=int(meta.get("channels", 1)),
                       **meta.get("invariances", {}))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            what = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ModelFileError(path, f"not a valid patch score model: {what}.") from None

    def __repr__(self) -> str:
        on = [k for k in ("dc", "contrast", "symmetrize") if self.invariances[k]]
        if self.invariances["intensity"] != "none":
            on.append(f"intensity={self.invariances['intensity']}")
        return (f"PatchScoreModel(patch_size={self.patch_size}, sigma=[{self.sigma_min:g}, "
                f"{self.sigma_max:g}], invariances=[{', '.join(on)}], {self.model!r})")


class _RawScore:
    """The network of a PatchScoreModel as a plain patch score (the invariances' inner s̃)."""

    def __init__(self, owner):
        self.owner = owner

    def score(self, patches, sigma):
        sig = check_sigma(sigma, patches.shape[0], patches.dtype)
        return self.owner._raw_score(np.ascontiguousarray(patches), sig)

"""Patch extraction (gather) and its exact adjoint (scatter-add) for 2-D images and 3-D volumes.

The patch operator ``G`` maps an image to the matrix of its patches, one patch a row:
``(G x)[q] = G_q x``; its adjoint sums patch rows back into an image, ``Gᵀ P = Σ_q G_qᵀ P[q]``.
The Markov-random-field prior ``s(x) = Σ_q G_qᵀ s_V(G_q x)`` is built from these two.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._threads import effective_threads, resolve_n_threads
from ._ext import patches as _kernels
from ._validation import (as_float_array, check_choice, check_int, check_int_tuple,
                          check_out, check_same_dtype, check_size)

__all__ = ["PatchOperator"]

PADDING_MODES = ("valid", "zero", "reflect", "circular")

#: Patch entries per thread below which a call stays on one thread: such a call takes well
#: under a millisecond, less than a second thread can lose waiting for a busy core. Results
#: are bit-identical for any thread count, so this only affects speed.
MIN_ENTRIES_PER_THREAD = 1 << 20


def _axis_map(n, padded, before, mode):
    """Padded coordinate -> source coordinate (-1 for zero padding), shape (padded,)."""
    u = np.arange(padded, dtype=np.intp) - before
    if mode in ("valid", "zero"):
        return np.where((u >= 0) & (u < n), u, -1).astype(np.intp)
    if mode == "circular":
        return np.mod(u, n).astype(np.intp)
    # reflect about the edge pixels without repeating them (numpy's "reflect")
    if n == 1:
        return np.zeros(padded, dtype=np.intp)
    period = 2 * (n - 1)
    v = np.mod(u, period)
    return np.where(v < n, v, period - v).astype(np.intp)


def _inverse_map(axis_map, n):
    """CSR inverse of an axis map: for each source s, the padded coordinates reading s."""
    valid = np.flatnonzero(axis_map >= 0)
    order = np.argsort(axis_map[valid], kind="stable")
    idx = valid[order].astype(np.intp)
    ptr = np.zeros(n + 1, dtype=np.intp)
    np.cumsum(np.bincount(axis_map[valid], minlength=n), out=ptr[1:])
    return ptr, idx


def _axis_layout(n, p, s, mode, origin=None):
    """(pad_before, padded length, number of patch positions) along one axis."""
    if mode == "valid":
        return 0, n, (n - p) // s + 1
    before = (p - 1) // 2 if origin is None else origin   # default: centred patches
    padded = n + before + p // 2
    grid = (padded - p) // s + 1
    end = before + n                            # extend so the last pixels are covered
    if (grid - 1) * s + p < end:
        grid += 1
        padded = (grid - 1) * s + p
    return before, padded, grid


class PatchOperator:
    """Gather the patches of an image and scatter-add patch rows back (exact adjoint).

    .. math::

        P = G x, \\quad P_{q,\\,t} = \\tilde x[\\mathrm{corner}_q + \\mathrm{offset}_t],
        \\qquad G^\\top P = \\sum_q G_q^\\top P_q

    where :math:`\\tilde x` is the padded image and the adjoint folds padding back onto the
    pixels it was copied from (reflect and circular padding add mirrored / wrapped
    contributions to their source pixels; zero padding drops them).

    Parameters
    ----------
    image_shape : tuple of 2 or 3 int
        ``(H, W)`` or ``(D, H, W)``; inputs may carry a leading batch axis.
    patch_size : int or tuple of int
        Patch extent per axis, at least 1 and at most the image size.
    stride : int or tuple of int, default 1
        Step between patch corners per axis. Padded modes need ``stride <= patch_size`` so
        that every pixel is covered.
    padding : {"valid", "zero", "reflect", "circular"}, default "valid"
        "valid": patches inside the image only. The others pad ``(p-1)//2`` before and at
        least ``p//2`` after each axis, so with stride 1 there is one patch centred on every
        pixel (for odd ``p``) and every pixel is covered by ``prod(patch_size)`` patches.
    origin : int or tuple of int, optional
        Padded modes only: number of padding pixels before the image along each axis
        (``0 <= origin < patch_size``), i.e. where the patch grid starts. Default
        ``(p-1)//2`` (centred patches). With ``stride = patch_size`` and a random origin per
        call this gives the random-shift tiling of PaDIS: every pixel in exactly one patch.
    channels : int, optional
        Multi-channel images ``(C, *image_shape)`` (batches ``(n, C, *image_shape)``), e.g.
        the real and imaginary parts of a complex image: one patch row holds the patch of
        every channel at the same place, channel-major, ``[P_0 | P_1 | … | P_{C−1}]``
        (length ``C · prod(patch_size)``); the adjoint scatters each block back into its
        channel. Default None: single-channel images without a channel axis.
    n_threads : int, optional
        Threads of the compiled kernels; ``None`` uses :func:`fastscore.get_num_threads`.

    Attributes
    ----------
    patch_shape : tuple of int
    patch_dim : int
        ``channels · prod(patch_shape)`` (``prod(patch_shape)`` without channels), the
        length of one patch row.
    grid_shape : tuple of int
        Number of patch positions per axis.
    n_patches : int
        Patches per image, ``prod(grid_shape)``.

    Notes
    -----
    Gather writes each patch row from one thread; scatter-add gives each thread whole
    *output* image rows and sums every patch entry that lands on them, so there are no
    races and the result does not depend on the thread count. Calls with fewer than
    ``MIN_ENTRIES_PER_THREAD`` (2²⁰) patch entries per thread use fewer threads. For bounded memory on large
    images, loop over :meth:`chunks`: ``gather(x, start, stop)`` → process →
    ``scatter_add(P, start, out=image)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore import PatchOperator
    >>> x = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    >>> G = PatchOperator(x.shape, 3, padding="reflect")
    >>> P = G.gather(x)
    >>> P.shape
    (256, 9)
    >>> int(G.counts()[8, 8])     # interior pixels are read by 9 patches
    9
    >>> bool(np.allclose(G.scatter(P)[8, 8], 9 * x[8, 8]))
    True
    """

    def __init__(self, image_shape: Sequence[int], patch_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: str = "valid", *,
                 origin: Sequence[int] | None = None, channels: int | None = None,
                 n_threads: int | None = None) -> None:
        if isinstance(image_shape, (int, np.integer)) or not hasattr(image_shape, "__len__"):
            raise TypeError(f"`image_shape` must be a tuple of 2 or 3 ints; got {image_shape!r}.")
        if len(image_shape) not in (2, 3):
            raise ValueError(
                f"`image_shape` must have 2 (H, W) or 3 (D, H, W) entries; got {image_shape!r}.")
        ndim = len(image_shape)
        self.image_shape = check_int_tuple(image_shape, "image_shape", ndim, low=1)
        self.padding = check_choice(padding, "padding", PADDING_MODES)
        check_size(self.image_shape, "image_shape")
        self.patch_shape = check_int_tuple(patch_size, "patch_size", ndim, low=1)
        self.stride = check_int_tuple(stride, "stride", ndim, low=1)
        if any(p > n for p, n in zip(self.patch_shape, self.image_shape)):
            raise ValueError(
                f"`patch_size` must be positive and at most the image size {self.image_shape}; "
                f"got {self.patch_shape}.")
        if padding != "valid" and any(s > p for s, p in zip(self.stride, self.patch_shape)):
            raise ValueError(
                f"`stride` must be at most `patch_size` {self.patch_shape} with padding "
                f"{padding!r} (every pixel must be covered); got {self.stride}.")
        self.n_threads = None if n_threads is None else resolve_n_threads(n_threads)
        if origin is not None:
            if padding == "valid":
                raise ValueError("`origin` needs a padded mode ('zero', 'reflect' or "
                                 "'circular'); got padding='valid'.")
            origin = check_int_tuple(origin, "origin", ndim, low=0)
            if any(o >= p for o, p in zip(origin, self.patch_shape)):
                raise ValueError(f"`origin` must be smaller than `patch_size` "
                                 f"{self.patch_shape} along every axis; got {origin}.")
        self.origin: Sequence[int] | None = origin
        layout = [_axis_layout(n, p, s, padding, None if origin is None else origin[a])
                  for a, (n, p, s) in enumerate(zip(self.image_shape, self.patch_shape,
                                                    self.stride))]
        self.pad_before = tuple(l[0] for l in layout)
        self.padded_shape = tuple(l[1] for l in layout)
        self.grid_shape = tuple(l[2] for l in layout)
        self.n_patches = math.prod(self.grid_shape)
        self.channels = None if channels is None else check_int(channels, "channels", low=1)
        self._spatial_dim = math.prod(self.patch_shape)
        self.patch_dim = (self.channels or 1) * self._spatial_dim
        check_size((self.n_patches, self.patch_dim), "patch matrix shape")
        try:
            self._maps = [_axis_map(n, q, b, padding) for n, q, b in
                          zip(self.image_shape, self.padded_shape, self.pad_before)]
        except MemoryError:
            need = 8 * sum(self.padded_shape)
            raise MemoryError(
                f"`image_shape` {self.image_shape}: its per-axis index maps need {need} bytes "
                "(8 per padded pixel along each axis), more than can be allocated here."
            ) from None
        self._geometries: dict[int, Any] = {}

    def __getstate__(self):
        """Pickled without the compiled geometries (rebuilt on first use), so a prior that
        holds this operator can be sent to other processes (e.g. Dask workers)."""
        state = self.__dict__.copy()
        state["_geometries"] = {}
        return state

    # -- geometry ------------------------------------------------------------------------
    def _geometry(self, n_batch):
        """The C geometry for a batch of `n_batch` images (depth 1 for 2-D images)."""
        if n_batch not in self._geometries:
            pad = 3 - len(self.image_shape)
            dims = ((1,) * pad + self.image_shape, (1,) * pad + self.padded_shape,
                    (0,) * pad + self.pad_before, (1,) * pad + self.patch_shape,
                    (1,) * pad + self.stride, (1,) * pad + self.grid_shape)
            maps = [np.zeros(1, dtype=np.intp)] * pad + self._maps
            inverse = [_inverse_map(m, n) for m, n in zip(maps, dims[0])]
            self._geometries[n_batch] = _kernels.Geometry(
                n_batch, *dims, maps, [p for p, _ in inverse], [i for _, i in inverse])
        return self._geometries[n_batch]

    def _threads(self, n_entries):
        return effective_threads(self.n_threads, n_entries // MIN_ENTRIES_PER_THREAD)

    def _check_image(self, x, name, dtype=None):
        """Validate an image or batch; return (C-contiguous array, n_batch, batched)."""
        shape = self.image_shape if self.channels is None else (
            (self.channels,) + self.image_shape)
        k = len(shape)
        arr = as_float_array(x, name, ndim=(k, k + 1), dtype=dtype)
        if arr.shape[-k:] != shape:
            raise ValueError(
                f"`{name}` must have shape {shape} or (n_images, "
                f"{', '.join(map(str, shape))}); got {arr.shape}.")
        batched = arr.ndim == k + 1
        return arr, (arr.shape[0] if batched else 1), batched

    def _check_range(self, start, stop, total):
        start = check_int(start, "start", low=0, high=total)
        stop = total if stop is None else check_int(stop, "stop", low=start, high=total)
        return start, stop

    # -- the operator --------------------------------------------------------------------
    def gather(self, x: ArrayLike, start: int = 0, stop: int | None = None, *,
               out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Patches of `x` as rows: ``P[q - start] = G_q x`` for ``start <= q < stop``.

        Parameters
        ----------
        x : ndarray of shape ``image_shape`` or ``(n_images, *image_shape)``
            Any real dtype (int/bool → float64, float16 → float32); non-finite values
            are copied like any other.
        start, stop : int, optional
            Patch index range (patches of image ``b`` are ``b * n_patches + q``);
            default all patches.
        out : ndarray of shape (stop - start, patch_dim), optional
            C-contiguous buffer of the working dtype to write into.

        Returns
        -------
        P : ndarray of shape (stop - start, patch_dim), or (n_images, n_patches, patch_dim)
            for a batch when no range is given.
        """
        arr, n_batch, batched = self._check_image(x, "x")
        total = n_batch * self.n_patches
        whole = start == 0 and stop is None
        start, stop = self._check_range(start, stop, total)
        shape = (stop - start, self.patch_dim)
        if out is None:
            out = np.empty(shape, dtype=arr.dtype)
        else:
            check_out(out, "out", shape, arr.dtype)
        if stop > start and self.channels is not None:
            self._gather_channels(arr, n_batch, start, stop, out)
        elif stop > start:
            _kernels.gather(self._geometry(n_batch), arr.reshape(-1), out, start, stop,
                            self._threads(out.size))
        if batched and whole:
            return out.reshape(n_batch, self.n_patches, self.patch_dim)
        return out

    def scatter(self, patches: ArrayLike, *, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Adjoint of :meth:`gather`: ``x = Gᵀ P = Σ_q G_qᵀ P[q]``.

        Parameters
        ----------
        patches : ndarray of shape (n_patches, patch_dim) or (n_images, n_patches, patch_dim)
        out : ndarray of the image shape, optional
            Overwritten with the result (C-contiguous, same dtype as `patches`).

        Returns
        -------
        x : ndarray of shape ``image_shape`` or ``(n_images, *image_shape)``
        """
        arr = as_float_array(patches, "patches", ndim=(2, 3))
        if arr.shape[-2:] != (self.n_patches, self.patch_dim):
            raise ValueError(
                f"`patches` must have shape ({self.n_patches}, {self.patch_dim}) or "
                f"(n_images, {self.n_patches}, {self.patch_dim}); got {arr.shape}.")
        batched = arr.ndim == 3
        n_batch = arr.shape[0] if batched else 1
        shape = ((n_batch,) if batched else ()) + ((
            () if self.channels is None else (self.channels,)) + self.image_shape)
        if out is None:
            out = np.zeros(shape, dtype=arr.dtype)
        else:
            check_same_dtype(patches=arr, out=out)
            check_out(out, "out", shape, arr.dtype)
            out.fill(0)
        if self.channels is not None:
            self._scatter_channels(arr.reshape(-1, self.patch_dim), n_batch, 0, out)
            return out
        _kernels.scatter_add(self._geometry(n_batch), arr.reshape(-1, self.patch_dim),
                             out.reshape(-1), 0, n_batch * self.n_patches,
                             self._threads(arr.size))
        return out

    def scatter_add(self, patches: ArrayLike, start: int = 0, *,
                    out: NDArray[Any]) -> NDArray[Any]:
        """Accumulate patch rows ``start, start+1, …`` into `out` in place: ``out += Σ G_qᵀ P``.

        Parameters
        ----------
        patches : ndarray of shape (n_rows, patch_dim)
            Rows for patches ``start <= q < start + n_rows`` (batch items numbered as in
            :meth:`gather`).
        start : int
        out : ndarray of shape ``image_shape`` or ``(n_images, *image_shape)``
            Writeable, C-contiguous, same dtype as `patches`; updated in place.

        Returns
        -------
        out : the same array.
        """
        if not isinstance(out, np.ndarray):
            raise TypeError(f"`out` must be a numpy.ndarray; got {type(out).__name__}.")
        arr = as_float_array(patches, "patches", ndim=2, allow_empty=True)
        check_same_dtype(patches=arr, out=out)
        _, n_batch, _ = self._check_image(out, "out", dtype=arr.dtype)
        check_out(out, "out", out.shape, arr.dtype)
        if arr.shape[1] != self.patch_dim:
            raise ValueError(
                f"`patches` must have {self.patch_dim} columns (patch {self.patch_shape}); "
                f"got shape {arr.shape}.")
        total = n_batch * self.n_patches
        start = check_int(start, "start", low=0, high=total)
        stop = start + arr.shape[0]
        if stop > total:
            raise ValueError(
                f"`patches` rows {start}..{stop} run past the last patch ({total}) of `out`.")
        if stop > start and self.channels is not None:
            self._scatter_channels(arr, n_batch, start, out)
        elif stop > start:
            _kernels.scatter_add(self._geometry(n_batch), arr, out.reshape(-1), start, stop,
                                 self._threads(arr.size))
        return out

    # -- channels: the single-channel kernels on the (n·C) images, one block per channel --
    def _segments(self, start, stop):
        """Split patch range [start, stop) at image boundaries: (image, q0, q1, row0)."""
        t = start
        while t < stop:
            b, q0 = divmod(t, self.n_patches)
            q1 = min(self.n_patches, q0 + stop - t)
            yield b, q0, q1, t - start
            t += q1 - q0

    def _gather_channels(self, arr, n_batch, start, stop, out):
        C, d = self.channels, self._spatial_dim
        geometry = self._geometry(n_batch * C)
        flat = arr.reshape(-1)
        buffer = np.empty((stop - start, d), dtype=arr.dtype)
        for b, q0, q1, row in self._segments(start, stop):
            rows = slice(row, row + q1 - q0)
            for c in range(C):
                first = (b * C + c) * self.n_patches
                block = buffer[:q1 - q0]
                _kernels.gather(geometry, flat, block, first + q0, first + q1,
                                self._threads(block.size))
                out[rows, c * d:(c + 1) * d] = block

    def _scatter_channels(self, patches, n_batch, start, out):
        C, d = self.channels, self._spatial_dim
        geometry = self._geometry(n_batch * C)
        flat = out.reshape(-1)
        for b, q0, q1, row in self._segments(start, start + patches.shape[0]):
            for c in range(C):
                block = np.ascontiguousarray(patches[row:row + q1 - q0, c * d:(c + 1) * d])
                first = (b * C + c) * self.n_patches
                _kernels.scatter_add(geometry, block, flat, first + q0, first + q1,
                                     self._threads(block.size))

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Same as :meth:`gather` (operator interface)."""
        return self.gather(x)

    def adjoint(self, patches: ArrayLike) -> NDArray[Any]:
        """Same as :meth:`scatter` (operator interface)."""
        return self.scatter(patches)

    # -- facts ---------------------------------------------------------------------------
    def counts(self) -> NDArray[np.int64]:
        """Number of patch entries that read each pixel, shape `image_shape`, int64.

        ``GᵀG = diag(counts)`` since every patch entry reads one pixel (or a zero), so
        ``‖G‖² = counts().max()``.
        """
        out = np.ones((1,) * 0, dtype=np.int64)
        for n, p, s, g, m in zip(self.image_shape, self.patch_shape, self.stride,
                                 self.grid_shape, self._maps):
            covered = np.zeros(len(m), dtype=np.int64)
            for offset in range(p):                      # padded counts along this axis
                covered[offset:offset + (g - 1) * s + 1:s] += 1
            ok = m >= 0
            axis = np.bincount(m[ok], weights=covered[ok], minlength=n).astype(np.int64)
            out = np.multiply.outer(out, axis)
        return out

    def norm(self) -> float:
        """Operator norm ``‖G‖ = sqrt(max counts)``."""
        return float(np.sqrt(self.counts().max()))

    def chunks(self, chunk_size: int, n_images: int = 1) -> Iterator[tuple[int, int]]:
        """Yield ``(start, stop)`` patch ranges of at most `chunk_size` patches.

        Parameters
        ----------
        chunk_size : int >= 1
        n_images : int >= 1
            Batch size of the images the ranges index.
        """
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
        n_images = check_int(n_images, "n_images", low=1)
        total = n_images * self.n_patches
        for start in range(0, total, chunk_size):
            yield start, min(start + chunk_size, total)

    def __repr__(self) -> str:
        extra = "" if self.origin is None else f", origin={self.origin}"
        extra += "" if self.channels is None else f", channels={self.channels}"
        return (f"PatchOperator(image_shape={self.image_shape}, patch_size={self.patch_shape}, "
                f"stride={self.stride}, padding={self.padding!r}{extra})")

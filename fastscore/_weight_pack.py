"""The MLP's weights packed for its compiled micro-kernel, made once per parameter version."""

from __future__ import annotations

import threading

import numpy as np

#: Byte alignment of the kernel's operand buffers: a cache line (and an AVX-512 vector),
#: so that the micro-kernel's vector loads of a pack never straddle two lines.
ALIGNMENT = 64


def aligned_empty(size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised 1-D array of `size` values of `dtype` starting on an
    :data:`ALIGNMENT`-byte boundary (a view into a slightly larger buffer)."""
    dtype = np.dtype(dtype)
    raw = np.empty(size * dtype.itemsize + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size * dtype.itemsize].view(dtype)


class WeightPack:
    """The pack of a network's parameters for the micro-kernel (``csrc/mlp_gemm.h``).

    Made once per parameter version: every pass first checks that the pack is the pack of
    the current parameters, bit for bit (``pack_matches``: the pack's weight panels and
    biases against the parameters, one read of each, ~1/300 of a training step of the
    default model at batch 512), so any change of the parameters — an optimiser step, EMA
    weights copied in, ``set_weights``, a write through ``weights`` — repacks before use
    and a stale pack is never read. The pack's transposed panels are made from its own
    weight panels, so a pack whose weight panels and biases equal the parameters is their
    pack as a whole, even if the parameters changed while it was being made. A pack is
    never modified once made (a new one replaces it), so a thread still computing with the
    previous one is unaffected.

    Parameters
    ----------
    size : int
        Values of a pack (the kernel's ``pack_size``; 0: this SIMD level uses BLAS).
    dtype : numpy dtype of the parameters
    """

    def __init__(self, size: int, dtype: np.dtype) -> None:
        self.size = int(size)
        self.dtype = np.dtype(dtype)
        self._packed: np.ndarray | None = None
        self._lock = threading.Lock()

    def of(self, kernels, net, params: np.ndarray, n_threads: int = 1) -> np.ndarray | None:
        """The pack of `params` (n_params,) for the compiled `net`, or None (BLAS); a
        repack shares its layers among `n_threads` threads (same result for any count)."""
        if not self.size:
            return None
        packed = self._packed
        if packed is not None and kernels.pack_matches(net, params, packed):
            return packed
        with self._lock:
            packed = self._packed
            if packed is None or not kernels.pack_matches(net, params, packed):
                packed = aligned_empty(self.size, self.dtype)
                kernels.pack(net, params, packed, n_threads)
                self._packed = packed
        return packed

"""The MLP's weights packed for its compiled micro-kernel, made once per parameter version."""

from __future__ import annotations

import threading

import numpy as np


class WeightPack:
    """The pack of a network's parameters for the micro-kernel (``csrc/mlp_gemm.h``).

    Made once per parameter version: the pack keeps a snapshot of the parameters it was
    made from, and every pass first compares the parameters with it bytewise (one memcmp,
    ~1/100 of a pass of the default model on a batch of 512), so any change of the
    parameters — an optimiser step, EMA weights copied in, ``set_weights``, a write through
    ``weights`` — repacks before use and a stale pack is never read. A pack is never
    modified once made (a new one replaces it), so a thread still computing with the
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
        self._state: tuple[np.ndarray, np.ndarray] | None = None   # (snapshot, pack)
        self._lock = threading.Lock()

    def of(self, kernels, net, params: np.ndarray, n_threads: int = 1) -> np.ndarray | None:
        """The pack of `params` (n_params,) for the compiled `net`, or None (BLAS); a
        repack shares its layers among `n_threads` threads (same result for any count)."""
        if not self.size:
            return None
        state = self._state
        if state is not None and kernels.same_values(state[0], params):
            return state[1]
        with self._lock:
            state = self._state
            if state is None or not kernels.same_values(state[0], params):
                snapshot = params.copy()
                packed = np.empty(self.size, dtype=self.dtype)
                kernels.pack(net, snapshot, packed, n_threads)
                state = (snapshot, packed)
                self._state = state
        return state[1]

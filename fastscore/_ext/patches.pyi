# Type stubs of the compiled extension fastscore/_ext/patches.pyx (float32 or float64
# C-contiguous arrays; the dtype of every floating array of one call is the same).
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

_Arr = NDArray[np.floating]

class Geometry:
    def __init__(self, n_batch: int, shape: Sequence[int], padded: Sequence[int],
                 pad_before: Sequence[int], patch: Sequence[int], stride: Sequence[int],
                 grid: Sequence[int], maps: Sequence[NDArray[np.intp]],
                 inv_ptrs: Sequence[NDArray[np.intp]],
                 inv_idxs: Sequence[NDArray[np.intp]]) -> None: ...

def gather(geometry: Geometry, x: _Arr, out: _Arr, start: int, stop: int,
           n_threads: int) -> None: ...
def scatter_add(geometry: Geometry, patches: _Arr, out: _Arr, start: int, stop: int,
                n_threads: int) -> None: ...
def simd_clone() -> str: ...
def simd_clones() -> tuple[str, ...]: ...

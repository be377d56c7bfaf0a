# Type stubs of the compiled extension fastscore/_ext/kde.pyx (float32 or float64
# C-contiguous arrays; the dtype of every array of one call is the same).
import numpy as np
from numpy.typing import NDArray

_Arr = NDArray[np.floating]

ALIGN: int

def leading_dim(n_points: int, single: bool) -> int: ...
def pack(X: _Arr, out: _Arr) -> None: ...
def score(xt: _Arr, n_points: int, queries: _Arr, sigma: float, exclude_start: int,
          score_out: _Arr | None, log_density_out: _Arr | None, n_threads: int) -> None: ...

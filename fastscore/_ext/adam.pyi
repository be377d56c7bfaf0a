# Type stubs of the compiled extension fastscore/_ext/adam.pyx (float32 or float64
# contiguous arrays; the dtype of every array of one call is the same).
import numpy as np
from numpy.typing import NDArray

_Vec = NDArray[np.floating]

def adam_step(param: _Vec, grad: _Vec, m: _Vec, v: _Vec, beta1: float, beta2: float,
              one_minus_beta1: float, one_minus_beta2: float, step_size: float,
              inv_sqrt_bc2: float, eps: float, decay_factor: float, l2: float,
              decoupled: bool, n_threads: int) -> None: ...
def ema_update(avg: _Vec, param: _Vec, decay: float, n_threads: int) -> None: ...
def sum_squares(x: _Vec, n_threads: int) -> float: ...
def scale(x: _Vec, factor: float, n_threads: int) -> None: ...

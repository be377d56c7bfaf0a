"""Input validation: user input -> checked arrays and scalars, or a clear exception.

Every public function calls these helpers before any kernel runs; nothing else in the
package validates. Messages name the argument, what was received and what was expected.

Dtype table (one rule for the whole package):

=====================  ===========
input dtype            working dtype
=====================  ===========
float32, float64       kept
float16                float32
bool, int*, uint*      float64
complex*               TypeError (unless the caller allows complex)
anything else          TypeError
=====================  ===========
"""

import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_activations",
    "check_choice",
    "check_finite",
    "check_float_dtype",
    "check_float_dtype_match",
    "check_int",
    "check_int_tuple",
    "check_out",
    "check_patch_size",
    "check_rng",
    "check_same_dtype",
    "check_scalar",
    "check_scale",
    "check_sigma",
    "check_size",
    "check_widths",
]


def _working_dtype(dtype, name, allow_complex=False):
    dtype = np.dtype(dtype)
    if dtype.kind in "fc" and not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype.kind == "c":
        if allow_complex:
            return np.dtype(np.complex64) if dtype == np.complex64 else np.dtype(np.complex128)
        raise TypeError(f"`{name}` must be real; got complex dtype {dtype}.")
    raise TypeError(f"`{name}` must be a numeric array; got dtype {dtype}.")


def as_float_array(x, name, *, ndim=None, dtype=None, finite=False, allow_complex=False,
                   allow_empty=False):
    """Return `x` as a C-contiguous, native-endian float32/float64 array.

    Parameters
    ----------
    x : array_like
    name : str
        Argument name used in error messages.
    ndim : int or tuple of int, optional
        Accepted numbers of dimensions.
    dtype : {None, float32, float64}
        Force this dtype (the caller has already decided, e.g. to follow another array);
        a float64 input is never narrowed silently: a mismatch raises ``TypeError``.
    finite : bool
        Reject NaN and Inf.
    allow_complex : bool
        Accept complex input (kept complex64/complex128).
    allow_empty : bool
        Accept arrays with zero elements.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists etc.
            raise TypeError(f"`{name}` must be array-like; got {type(x).__name__}.") from exc
    if arr.dtype == object:
        raise TypeError(f"`{name}` must be a numeric array; got dtype object.")
    work = _working_dtype(arr.dtype, name, allow_complex)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if work != dtype:
            if work.kind == "f" and arr.dtype.kind == "f" and work.itemsize > dtype.itemsize:
                raise TypeError(
                    f"`{name}` has dtype {arr.dtype} but {dtype} is required here; "
                    "float64 is never narrowed silently: cast it explicitly.")
            if arr.dtype.kind == "f" and arr.dtype != np.float16:
                raise TypeError(f"`{name}` has dtype {arr.dtype}; expected {dtype}.")
            work = dtype
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(
                f"`{name}` must have {want} dimensions; got {arr.ndim} (shape {arr.shape}).")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"`{name}` must not be empty; got shape {arr.shape}.")
    arr = np.asarray(arr, dtype=work, order="C")   # keeps 0-d arrays 0-d
    if finite:
        check_finite(arr, name)
    return arr


def check_finite(arr, name):
    """Raise ``ValueError`` if `arr` holds NaN or Inf (says how many and where the first is)."""
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`{name}` must be finite; found {int(bad.sum())} NaN/Inf value(s), "
            f"the first at index {first}.")
    return arr


def check_same_dtype(**arrays):
    """Raise ``TypeError`` if the given float arrays do not share one dtype."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    dtypes = {np.dtype(v.dtype) for _, v in items}
    if len(dtypes) > 1:
        desc = ", ".join(f"`{k}` is {v.dtype}" for k, v in items)
        raise TypeError(f"arrays must share one float dtype; {desc}. Cast one explicitly.")
    return items[0][1].dtype if items else None


def check_out(out, name, shape, dtype):
    """Check a caller-provided output buffer: exact shape, dtype, C-contiguous, writable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; got {type(out).__name__}.")
    if out.dtype != dtype:
        raise TypeError(f"`{name}` must have dtype {np.dtype(dtype)}; got {out.dtype}.")
    if out.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}; got {out.shape}.")
    if not out.flags.c_contiguous or not out.flags.writeable or not out.dtype.isnative:
        raise ValueError(f"`{name}` must be a writeable, C-contiguous, native-endian array.")
    return out


def check_scalar(x, name, *, kind=numbers.Real, low=None, high=None,
                 low_inclusive=True, high_inclusive=True):
    """Check a real scalar against an interval; return it as float (or int for Integral)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, kind):
        what = "an integer" if kind is numbers.Integral else "a real number"
        raise TypeError(f"`{name}` must be {what}; got {x!r} ({type(x).__name__}).")
    value = int(x) if kind is numbers.Integral else float(x)
    if kind is not numbers.Integral and not np.isfinite(value):   # ints are finite (and
        raise ValueError(f"`{name}` must be finite; got {x!r}.")    # may exceed int64)
    bad_low = low is not None and (value < low if low_inclusive else value <= low)
    bad_high = high is not None and (value > high if high_inclusive else value >= high)
    if bad_low or bad_high:
        if high is None:
            want = f"{'>=' if low_inclusive else '>'} {low}"
        elif low is None:
            want = f"{'<=' if high_inclusive else '<'} {high}"
        else:
            want = ("in " + ("[" if low_inclusive else "(") + f"{low}, {high}"
                    + ("]" if high_inclusive else ")"))
        raise ValueError(f"`{name}` must be {want}; got {x!r}.")
    return value


def check_int(x, name, *, low=None, high=None):
    """Check an integer scalar (bool rejected) and return it as ``int``."""
    return check_scalar(x, name, kind=numbers.Integral, low=low, high=high)


def check_int_tuple(x, name, n, *, low=None):
    """Expand an int or a length-`n` sequence of ints into a tuple of `n` ints >= `low`."""
    if isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)):
        values = (int(x),) * n
    else:
        try:
            values = tuple(x)
        except TypeError:
            raise TypeError(
                f"`{name}` must be an int or a sequence of {n} ints; got {x!r}.") from None
        if len(values) != n or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
                for v in values):
            raise ValueError(f"`{name}` must be an int or a sequence of {n} ints; got {x!r}.")
        values = tuple(int(v) for v in values)
    if low is not None and any(v < low for v in values):
        raise ValueError(f"`{name}` must be >= {low} along every axis; got {x!r}.")
    return values


def check_size(shape, name, itemsize=8):
    """Raise ``ValueError`` if an array of `shape` could not be addressed (more than
    2**62 bytes at `itemsize` bytes per element): checked before anything is allocated."""
    n = 1
    for v in shape:
        n *= int(v)
    if n * itemsize > 2**62:
        raise ValueError(f"`{name}` {tuple(shape)} is too large: {n} elements cannot be "
                         "addressed.")
    return tuple(shape)


def check_choice(x, name, choices):
    """Check that `x` is one of `choices` (strings compared exactly)."""
    if x not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {options}; got {x!r}.")
    return x


def check_rng(rng):
    """``None``, an int seed, a ``SeedSequence`` or a ``Generator`` -> ``numpy.random.Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)) and not \
            isinstance(rng, (bool, np.bool_)):
        if isinstance(rng, numbers.Integral) and rng < 0:
            raise ValueError(f"`rng` seed must be non-negative; got {rng}.")
        return np.random.default_rng(rng)
    raise TypeError(
        f"`rng` must be None, an int seed or a numpy.random.Generator; got {type(rng).__name__}.")


def check_scale(value, name, dtype):
    """Check that a positive scale (a noise level σ or a bandwidth; float or array) works in
    `dtype` arithmetic: σ² and 1/σ² finite and nonzero (σ² a normal number). Returns it.

    ``ValueError`` names the argument, the value and the range for that dtype, e.g.
    ``score(x32, 1e-50)``: σ = 1e-50 passes a float64 check but σ² is 0 in float32.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        dtype = np.dtype(np.float32) if dtype == np.complex64 else np.dtype(np.float64)
    info = np.finfo(dtype)
    low = float(np.sqrt(info.tiny))                # σ² normal, so 1/σ² finite
    high = float(np.sqrt(info.max / 16))           # σ² finite, with room for sums
    arr = np.asarray(value, dtype=np.float64)
    if arr.size and not (np.all(arr >= low) and np.all(arr <= high)):
        bad = arr[(arr < low) | (arr > high) | ~np.isfinite(arr)]
        shown = bad.flat[0] if bad.size else arr.flat[0]
        raise ValueError(f"`{name}` must be in [{low:.3g}, {high:.3g}] for {dtype} "
                         f"arithmetic (σ² and 1/σ² finite and nonzero); got {float(shown)!r}.")
    return value


def check_float_dtype(dtype, name="dtype"):
    """A requested working precision: float32 or float64 (as ``numpy.dtype``), else
    ``TypeError``."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"`{name}` must be float32 or float64; got {dtype}.")
    return dtype


def check_float_dtype_match(x, name, dtype, other):
    """Raise ``TypeError`` if float input `x` works in another precision than `dtype`.

    The working dtype of `x` follows the dtype table; for float (or float16) input it must
    equal `dtype`, the dtype of the array named `other` (e.g. fitted training points):
    mismatched float dtypes are never cast, in either direction. Integer and bool input is
    left to :func:`as_float_array` (it follows `dtype`).
    """
    x_dtype = getattr(x, "dtype", None)
    x_dtype = np.dtype(np.asarray(x).dtype if x_dtype is None else x_dtype)
    if x_dtype.kind == "f":
        work = _working_dtype(x_dtype, name) if x_dtype.itemsize <= 8 else x_dtype
        if work != np.dtype(dtype):
            raise TypeError(f"`{name}` has dtype {x_dtype} but {other} is {np.dtype(dtype)}; "
                            "the dtypes must match: cast one of them explicitly.")


def check_widths(widths, max_layers):
    """Layer widths of a dense network: a sequence of at least two ints in [1, 2**20]
    (input, hidden..., output), at most `max_layers` layers; returned as a tuple."""
    try:
        values = tuple(widths)
    except TypeError:
        raise TypeError(f"`widths` must be a sequence of positive ints; got "
                        f"{widths!r}.") from None
    if len(values) < 2:
        raise ValueError(f"`widths` needs at least an input and an output width; got "
                         f"{values!r}.")
    if len(values) - 1 > max_layers:
        raise ValueError(f"`widths` allows at most {max_layers} layers; got "
                         f"{len(values) - 1}.")
    out = []
    for k, w in enumerate(values):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral):
            raise TypeError(f"`widths[{k}]` must be an int; got {w!r}.")
        if not 1 <= int(w) <= 1 << 20:
            raise ValueError(f"`widths[{k}]` must be in [1, {1 << 20}]; got {w!r}.")
        out.append(int(w))
    return tuple(out)


def check_activations(activations, n_layers, choices):
    """One activation name per layer, from `choices`: a single name applies to the hidden
    layers and leaves the output ``"identity"``; a sequence must have `n_layers` names."""
    if isinstance(activations, str):
        check_choice(activations, "activations", choices)
        return (activations,) * (n_layers - 1) + ("identity",)
    try:
        values = tuple(activations)
    except TypeError:
        raise TypeError(f"`activations` must be a name or a sequence of names; got "
                        f"{activations!r}.") from None
    if len(values) != n_layers:
        raise ValueError(f"`activations` must name one activation per layer: "
                         f"{n_layers} for {n_layers + 1} widths; got {len(values)} "
                         f"({values!r}).")
    return tuple(check_choice(a, f"activations[{k}]", choices) for k, a in enumerate(values))


def check_patch_size(patch_size, name="patch_size"):
    """A patch shape: an int ``p`` -> ``(p, p)``; a non-empty sequence -> a tuple of
    positive ints (any number of axes)."""
    if isinstance(patch_size, numbers.Integral) and not isinstance(patch_size, (bool, np.bool_)):
        p = check_int(patch_size, name, low=1)
        return (p, p)
    try:
        n = len(patch_size)
    except TypeError:
        raise TypeError(f"`{name}` must be an int or a sequence of ints; got "
                        f"{patch_size!r}.") from None
    if n < 1:
        raise ValueError(f"`{name}` must not be empty.")
    return check_int_tuple(patch_size, name, n, low=1)


def check_sigma(sigma, n, dtype, name="sigma"):
    """Noise level(s) of a noise-conditional score as an ``(n,)`` array of `dtype`: a
    scalar is broadcast; every level positive, finite and usable in `dtype` arithmetic
    (:func:`check_scale`); None is a ``ValueError`` (the level is required)."""
    if sigma is None:
        raise ValueError(f"`{name}` is required: this is a noise-conditional score "
                         "s(x; σ); give the noise level(s), a float or an array of shape "
                         "(N,).")
    if np.ndim(sigma) == 0:
        value = check_scalar(sigma, name, low=0.0, low_inclusive=False)
        check_scale(value, name, dtype)
        return np.full(n, value, dtype=dtype)
    arr = np.asarray(sigma)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must be real; got dtype {arr.dtype}.")
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must be a float or an array of shape ({n},) (one "
                         f"level per row); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"`{name}` must be positive and finite; got minimum "
                         f"{np.nanmin(arr)!r}.")
    check_scale(arr, name, dtype)
    return np.ascontiguousarray(arr, dtype=dtype)

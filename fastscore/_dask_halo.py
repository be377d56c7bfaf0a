"""Exact patch-prior scores on one chunk of a large image (the block step of
:func:`fastscore.distributed.denoise_dask`).

A patch prior's score at a pixel depends only on the patches that cover it, i.e. on the
pixels within ``p − 1`` of it, and on the image border through the padding. So the score
of a chunk ``[a, b)`` (per axis) is computed exactly from the chunk plus a halo of
``p − 1`` pixels: per axis,

1. the *window* is ``[a − (p−1), b + (p−1))``, clipped to the padded image
   ``[−before, n + after)`` of the whole-image :class:`~fastscore.patches.PatchOperator`
   (and started on its patch grid, corners at ``−before + k·stride``);
2. each window position ``u`` reads the pixel the whole-image padding reads there (reflect,
   wrap, zero), taken from the loaded chunk-with-halo;
3. the patches of the window ("valid", the whole-image grid) are scored and scatter-added
   into the window;
4. the window is folded back onto the chunk with the adjoint of the padding (mirrored
   positions add to their source pixel for reflect, padding is dropped for zero and for
   the random-shift tiling) and divided by the whole-image covering counts.

Circular padding with overlapping stride-1 patches is the periodic image: its halo is the
wrapped neighbour (``boundary="periodic"`` of :func:`dask.array.overlap.overlap`) and no
clipping or folding is needed. Every sum is the whole-image sum over the same patches, so
the chunked score equals the in-memory one up to the order of floating-point additions.
"""

import numpy as np

from .patches import PatchOperator, _axis_layout
from .prior import PatchPrior, SumPrior

__all__ = []


def patch_priors(prior):
    """The :class:`PatchPrior` terms of `prior` (a PatchPrior or a SumPrior of them)."""
    terms = prior.priors if isinstance(prior, SumPrior) else [prior]
    for term in terms:
        if not isinstance(term, PatchPrior):
            raise NotImplementedError(
                f"chunked computation is defined for PatchPrior and sums of them; got a "
                f"{type(term).__name__} term.")
        if term.tiling != "random_shift" and term.padding == "circular" and any(
                s != 1 for s in _strides(term)):
            raise NotImplementedError("chunked computation of circular padding needs "
                                      f"stride=1 with overlapping patches; got {term.stride}.")
        if term.intensity is not None and (term.intensity.fixed is None
                                           or len(term.intensity.fixed) != 1):
            raise ValueError(
                "a prior with intensity normalisation must be calibrated for one image "
                "before chunked use (prior.calibrate(y, noise_sigma) on the volume or a "
                "representative part of it): per-chunk estimates would differ from the "
                "whole-image ones.")
    return terms


def _strides(term):
    k = len(term._patch_shape)
    if term.tiling == "random_shift":
        return term._patch_shape
    s = term.stride
    return (int(s),) * k if np.ndim(s) == 0 else tuple(int(v) for v in s)


def halo(terms):
    """Halo depth per axis (largest ``p − 1``) and whether it must wrap (circular)."""
    depth = tuple(max(t._patch_shape[a] - 1 for t in terms)
                  for a in range(len(terms[0]._patch_shape)))
    return depth, any(t.padding == "circular" for t in terms)


def _axis_plan(n, a, b, lo, p, s, mode, tiling, origin):
    """One axis of the window of chunk ``[a, b)`` (loaded from global index `lo` on; None:
    nothing loaded, `read` gives image indices, wrapped modulo `n` for circular padding).

    Returns ``(read, direct, extra)``: the loaded-array index each window position reads
    (−1: a zero), the run ``(j0, j1, t0)`` of window positions ``[j0, j1)`` that are the
    chunk pixels ``[t0, t0 + j1 − j0)``, and the mirrored positions ``(j, t)`` whose scores
    fold onto chunk pixel ``t`` (reflect padding, overlapping patches).
    """
    before, padded, _ = _axis_layout(n, p, s, mode, origin)
    after = padded - before - n
    periodic = mode == "circular" and tiling != "random_shift"
    w0, w1 = a - (p - 1), b + (p - 1)
    if not periodic:
        w0, w1 = max(w0, -before), min(w1, n + after)
        w0 += (-(w0 + before)) % s                   # first corner of the image's grid
    u = np.arange(w0, max(w0, w1))
    if mode == "circular":                           # the halo holds the wrapped pixels
        read = np.mod(u, n) if lo is None else u - lo
    else:
        if mode == "reflect":
            period = max(2 * (n - 1), 1)
            v = np.mod(u, period)
            source = np.where(v < n, v, period - v)
        else:
            source = np.where((u >= 0) & (u < n), u, -1)
        read = np.where(source >= 0, source - (0 if lo is None else lo), -1)
    first, last = max(a, w0), min(b, w1)
    direct = (first - w0, max(first, last) - w0, first - a)
    extra = []
    if mode == "reflect" and tiling != "random_shift":
        mirrored = (source != u) & (source >= a) & (source < b)
        extra = [(int(j), int(source[j] - a)) for j in np.flatnonzero(mirrored)]
    return read, direct, extra


def _fold(arr, direct, extra, length, axis):
    """Adjoint of the window read along `axis`: chunk pixel t sums the window positions
    that are it (`direct`) or mirror it (`extra`). When the direct run is the whole chunk
    (always, but for grids that leave chunk pixels uncovered) the mirrored positions are
    added into it in place — `arr` is overwritten — and the result is a view of `arr`: no
    chunk-sized copy. The sums are the same, in the same order."""
    j0, j1, t0 = direct
    index = (slice(None),) * axis
    if t0 == 0 and j1 - j0 == length:        # mirrored positions lie outside [j0, j1)
        for j, t in extra:
            arr[index + (j0 + t,)] += arr[index + (j,)]
        return arr[index + (slice(j0, j1),)]
    moved = np.moveaxis(arr, axis, 0)
    out = np.zeros((length,) + moved.shape[1:], dtype=arr.dtype)
    out[t0:t0 + j1 - j0] = moved[j0:j1]
    for j, t in extra:
        out[t] += moved[j]
    return np.moveaxis(out, 0, axis)


def _axis_counts(n, p, s, mode, origin=None):
    """Whole-image covering counts along one axis (overlap tilings; `origin`: the grid's
    origin along it, None: centred)."""
    op = PatchOperator((n, 1), (p, 1), (s, 1), mode,
                       origin=None if origin is None else (origin, 0))
    return op.counts()[:, 0]


def window_plans(term, starts, stops, lo, shape, origin):
    """:func:`_axis_plan` of each axis for one PatchPrior and the chunk ``[starts,
    stops)`` (`lo`: the global index of the loaded array's first element, or None)."""
    return [_axis_plan(n, a, e, None if lo is None else lo[axis], p, s, term.padding,
                       term.tiling, None if origin is None else origin[axis])
            for axis, (n, a, e, p, s) in enumerate(
                zip(shape, starts, stops, term._patch_shape, _strides(term)))]


def term_score(term, loaded, starts, stops, lo, shape, sigma, weight, origin):
    """Score ``s(x; σ)`` of one PatchPrior on the chunk ``[starts, stops)`` of an image of
    `shape`, from `loaded` (the chunk with its halo, first element at global `lo`)."""
    plans = window_plans(term, starts, stops, lo, shape, origin)
    reads = [read for read, _, _ in plans]
    if all(len(r) and r[0] >= 0 and np.array_equal(r, np.arange(r[0], r[0] + len(r)))
           for r in reads):                          # no padding to make: a view
        window = loaded[tuple(slice(r[0], r[0] + len(r)) for r in reads)]
        owned = False
    else:
        window, owned = loaded[np.ix_(*[np.maximum(r, 0) for r in reads])], True
    return window_score(term, window, owned, plans, starts, stops, shape, sigma, weight,
                        origin)


def window_score(term, window, owned, plans, starts, stops, shape, sigma, weight, origin):
    """:func:`term_score` from the term's window (``loaded[np.ix_(*reads)]`` of its
    `plans`, on the grid of `origin`; `owned`: it may be overwritten, else it is left as
    it is)."""
    dtype = window.dtype
    k = None
    if term.intensity is not None:                   # calibrated (checked in patch_priors)
        k, b = term.intensity.fixed[0]
        if owned:
            window -= dtype.type(b)
            window /= dtype.type(k)
        else:
            window = (window - dtype.type(b)) / dtype.type(k)
        sigma = None if sigma is None else sigma / k
    for axis, (read, _, _) in enumerate(plans):
        if np.any(read < 0):                         # zero padding (after normalising)
            window[(slice(None),) * axis + (read < 0,)] = 0
    strides = _strides(term)
    if all(w >= p for w, p in zip(window.shape, term._patch_shape)):
        valid = PatchPrior(term.patch_score, term._patch_shape, stride=strides,
                           padding="valid", weight="sum", chunk_size=term.chunk_size,
                           n_threads=term.n_threads, intensity="none")
        total = valid.score(window, sigma)
    else:                                            # no patch of the grid in the window
        total = np.zeros_like(window)
    for axis, (_, direct, extra) in enumerate(plans):
        total = _fold(total, direct, extra, stops[axis] - starts[axis], axis)
    if weight == "mean":
        if term.tiling != "random_shift":            # the whole image's int64 counts, a
            axes = [_axis_counts(n, p, s, term.padding,          # slice at a time
                                 None if origin is None else origin[axis])[a:e]
                    for axis, (n, a, e, p, s) in enumerate(
                        zip(shape, starts, stops, term._patch_shape, strides))]
            inner = np.ones((), dtype=np.int64)
            for c in axes[1:]:
                inner = np.multiply.outer(inner, c)
            for i, c0 in enumerate(axes[0]):
                counts = c0 * inner
                np.divide(total[i], counts, out=total[i], where=counts > 0, casting="unsafe")
    elif weight != "sum":
        total *= dtype.type(weight)
    if k is not None:
        total /= dtype.type(k)
    return total


def prior_score(terms, loaded, starts, stops, lo, shape, sigma, weight, origins):
    """Σ over the terms, in their order (as :class:`~fastscore.prior.SumPrior` adds them)."""
    total = None
    for term, origin in zip(terms, origins):
        w = term.weight if weight is None else weight
        s = term_score(term, loaded, starts, stops, lo, shape, sigma, w, origin)
        total = s if total is None else total + s
    return total

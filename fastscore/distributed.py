"""Past one machine: large volumes, datasets and sharded KDE priors on Dask.

Needs the optional extra ``pip install 'fastscore[dask]'`` (``dask[array]``,
``distributed``); ``import fastscore`` never imports it.

- :func:`denoise_dask`: MAP denoising / inpainting (:func:`fastscore.map_estimate` with the
  :class:`~fastscore.operators.Identity` or :class:`~fastscore.operators.Mask` operator)
  of a ``dask.array`` chunk by chunk, each iteration one halo exchange of ``patch − 1``
  pixels, equal to the in-memory result up to float rounding.
- :func:`reconstruct_many`: independent reconstructions of many measurements on a Dask
  cluster, written to a directory as they finish, restartable.
- :class:`ShardedKDE`: the Gaussian-KDE score over training points split across workers,
  combined exactly.

What does not distribute exactly. A chunk needs only its neighbours when the whole
computation is local: patch priors (reach ``p − 1``) and pixelwise data terms (Identity,
Mask). Operators that couple distant pixels — the FFT of :class:`~fastscore.operators.MRI`
and SENSE, a periodic or large :class:`~fastscore.operators.Blur`, CT projections — and
global statistics (an uncalibrated intensity normalisation, a noise estimate) cannot be
chunked without changing the result. For those, distribute over independent items
instead (slices, frames, coils-combined volumes, subjects: :func:`reconstruct_many`), or
compute the global quantity once (``prior.calibrate``, ``estimate_noise_sigma``) and pass
it in.
"""

import os
import shutil
import sys

import numpy as np

from . import _dask_halo as _halo
from ._dask_store import ChunkFiles
from ._optional import import_optional
from ._validation import (_working_dtype, check_choice, check_int, check_rng, check_scalar,
                          check_scale)
from .operators import Identity, Mask
from ._sigma_ladder import _anneal_start, _prior_sigmas

__all__ = ["denoise_dask", "reconstruct_many", "ShardedKDE", "DatasetRun", "combine_shards"]


def _dask_array():
    return import_optional("dask.array", "dask")


def _regular_chunks(x, minimum):
    """`x` rechunked so every chunk along axis a holds at least ``minimum[a]`` pixels
    (a short chunk is merged into its neighbour)."""
    chunks = []
    for sizes, m in zip(x.chunks, minimum):
        merged = []
        for c in sizes:
            if merged and merged[-1] < m:
                merged[-1] += c
            else:
                merged.append(c)
        if len(merged) > 1 and merged[-1] < m:
            merged[-2] += merged.pop()
        chunks.append(tuple(merged))
    chunks = tuple(chunks)
    return x if chunks == x.chunks else x.rechunk(chunks)


def _starts(chunks):
    return [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]


def _read_window(store, starts, stops, depth, periodic, shape):
    """The chunk ``[starts, stops)`` with its halo, read from a stored iterate
    (:class:`~fastscore._dask_store.ChunkFiles`): what :func:`dask.array.overlap.overlap`
    would give (wrapped when `periodic`, else cut at the image border). Only the window's
    rows are read from the neighbouring chunks' files."""
    if periodic:
        return store.read_indexed([np.arange(a - d, b + d) % n for a, b, d, n in
                                   zip(starts, stops, depth, shape)])
    return store.read([max(a - d, 0) for a, d in zip(starts, depth)],
                      [min(b + d, n) for b, d, n in zip(stops, depth, shape)])


def _block_step(loaded, y, mask, prior, *, paths, shape, starts, depth, periodic, sigma,
                origins, method, params, block_id=None):
    """One iteration on one chunk: the patch-prior score from the chunk with its halo, then
    the pixelwise HQS data step or gradient step. `prior` is the whole image prior. With
    `paths` the chunk with its halo, `y` and `mask` are read from those stored arrays
    (:class:`~fastscore._dask_store.ChunkFiles`; the task then depends on no other task,
    so a worker holds only the chunks it works on)."""
    terms = _halo.patch_priors(prior)
    lo_idx = [int(starts[a][block_id[a]]) for a in range(len(shape))]
    hi_idx = [int(starts[a][block_id[a] + 1]) for a in range(len(shape))]
    weight = None if method == "gradient" else "mean"
    if paths is not None and len(terms) == 1 and len(shape) == len(terms[0]._patch_shape):
        s, x = _score_from_store(paths["x"], terms[0], lo_idx, hi_idx, shape, sigma,
                                 weight, origins[0])
    else:
        if paths is not None:
            loaded = _read_window(paths["x"], lo_idx, hi_idx, depth, periodic, shape)
        lo = [a - (d if (periodic or a > 0) else 0) for a, d in zip(lo_idx, depth)]
        x = loaded[tuple(slice(a - l, e - l) for a, e, l in zip(lo_idx, hi_idx, lo))]
        if len(shape) > len(terms[0]._patch_shape):      # a stack: each image on its own
            s = np.stack([_halo.prior_score(terms, image, lo_idx[1:], hi_idx[1:], lo[1:],
                                            shape[1:], sigma, weight, origins)
                          for image in loaded])
        else:
            s = _halo.prior_score(terms, loaded, lo_idx, hi_idx, lo, shape, sigma, weight,
                                  origins)
    dtype = x.dtype
    if paths is not None:                    # read after the score: not held during it
        flat = (0,) * len(shape)
        y = _read_window(paths["y"], lo_idx, hi_idx, flat, False, shape)
        mask = (None if paths.get("mask") is None else
                _read_window(paths["mask"], lo_idx, hi_idx, flat, False, shape))
    inv_n2 = params["inv_n2"]
    if method == "gradient":                 # one slice at a time (temporaries of a slice)
        for i in range(s.shape[0]):
            lik = y[i] - x[i] if mask is None else (y[i] - x[i] * mask[i]) * mask[i]
            lik *= dtype.type(inv_n2)                        # A*(y − A x)/σ_n²
            lik += s[i]
            lik *= dtype.type(params["alpha"])
            lik += x[i]                                      # x + α (lik + s)
            s[i] = lik
        return s
    if method == "tweedie":                                  # prior.denoise(x, σ)
        s *= dtype.type(sigma) ** 2
        s += x
        return s
    # HQS, the operations of map_estimate, one slice at a time (temporaries of a slice):
    # z = x + σ² s (prior.denoise), then the data step's exact diagonal preconditioner
    # M = (m/σ_n² + 1/σ²)⁻¹ applied from z (one exact CG step)
    inv_s2 = 1.0 / sigma ** 2
    both = dtype.type(1.0 / (inv_n2 + inv_s2))
    for i in range(s.shape[0]):
        z = s[i]
        z *= dtype.type(sigma) ** 2
        z += x[i]
        m = None if mask is None else mask[i]
        residual = (y[i] if m is None else y[i] * m) * inv_n2     # A* y / σ_n²
        residual += z * inv_s2
        gram = (z if m is None else z * m) * inv_n2                # A*A z / σ_n²
        gram += z * inv_s2
        residual -= gram
        residual *= both if m is None else np.where(m, both, dtype.type(1.0 / inv_s2))
        z += residual                                              # x = z + M r
    return s


def _score_from_store(stored, term, starts, stops, shape, sigma, weight, origin):
    """The score of one PatchPrior on the chunk ``[starts, stops)`` and the chunk itself,
    from a stored iterate: the term's window, padding included, is read straight from
    the files (no clipped chunk-with-halo besides it, the one copy a border chunk would
    otherwise need), and the chunk is a view of it unless the score overwrote it."""
    plans = _halo.window_plans(term, starts, stops, None, shape, origin)
    window = stored.read_indexed([read for read, _, _ in plans])
    s = _halo.window_score(term, window, True, plans, starts, stops, shape, sigma,
                           term.weight if weight is None else weight, origin)
    direct = [d for _, d, _ in plans]
    if term.intensity is None and all(t0 == 0 and j1 - j0 == b - a for (j0, j1, t0), a, b
                                      in zip(direct, starts, stops)):
        return s, window[tuple(slice(j0, j1) for j0, j1, _ in direct)]
    del window
    return s, stored.read(starts, stops)


def _block_lazy(*args, block_id=None, **kwargs):
    """Lazy-graph mode: :func:`_block_step` with a result that owns its memory (a view
    would keep its whole window alive while Dask holds the block)."""
    s = _block_step(*args, block_id=block_id, **kwargs)
    return s if s.base is None else s.copy()


def _block_write(prior, *, paths, out, shape, starts, beta, block_id=None, **step):
    """Store mode: one iteration on one chunk (:func:`_block_step`, every input read from
    the store) whose result is written as its chunk of ``out["x"]`` (with momentum also
    the point ``x + β (x − x_prev)`` into ``out["point"]``) from inside the task. Returns a
    one-element token: no finished block waits in a worker's memory for a write task."""
    x = _block_step(None, None, None, prior, paths=paths, shape=shape, starts=starts,
                    block_id=block_id, **step)
    if "point" in out:                       # the operations of the lazy graph's point
        region = [(int(s[b]), int(s[b + 1])) for s, b in zip(starts, block_id)]
        point = paths["previous"].read([a for a, _ in region], [b for _, b in region])
        np.subtract(x, point, out=point)
        point *= x.dtype.type(beta)
        point += x
        out["point"].write_chunk(block_id, point)
        del point
    out["x"].write_chunk(block_id, x)
    return np.ones((1,) * len(shape), dtype=np.int8)


def _run_tokens(tokens, task_callback):
    """Compute the block tokens; with a distributed client as the scheduler and a
    `task_callback`, as futures, calling ``task_callback()`` as each one finishes (else
    once per token after all)."""
    dask = import_optional("dask", "dask")
    client = getattr(dask.base.get_scheduler(), "__self__", None)   # Client.get's client
    distributed = sys.modules.get("distributed")      # imported if a client exists
    if task_callback is None or distributed is None or not isinstance(client,
                                                                      distributed.Client):
        tokens.compute()
        if task_callback is not None:
            for _ in range(tokens.npartitions):
                task_callback()
        return
    futures = client.compute(list(tokens.to_delayed().ravel()))
    for future in distributed.as_completed(futures):
        future.result()                       # a failed block raises here
        task_callback()


def _proxy_shape(shape, terms):
    """A small image shape whose covering counts have the same maximum as `shape`'s (the
    border patterns and one period of the interior, same residue modulo the stride)."""
    out = []
    for a, n in enumerate(shape):
        base = max(4 * (t._patch_shape[a] + _halo._strides(t)[a]) for t in terms)
        step = int(np.lcm.reduce([_halo._strides(t)[a] for t in terms]))
        out.append(n if n <= base + step else base + (n - base) % step)
    return tuple(out)


def denoise_dask(volume, prior, noise_sigma, *, method="hqs", n_steps=8, step_size="auto",
                 sigma_schedule=None, momentum=False, mask=None, rng=None, store=None,
                 callback=None, task_callback=None):
    """MAP denoising (or inpainting) of a large image chunk by chunk on Dask.

    The iterations of :func:`fastscore.map_estimate` for ``y = A x + n`` with ``A`` the
    identity (or a pixel mask ``m``). ``method="hqs"``:

    .. math::

        z_k = x_k + σ_k^2\\, s(x_k; σ_k), \\qquad
        x_{k+1} = \\frac{m ⊙ y / σ_n^2 + z_k / σ_k^2}{m / σ_n^2 + 1 / σ_k^2}

    ``method="gradient"``: ``x_{k+1} = x_k + α_k (m ⊙ (y − x_k)/σ_n² + s(x_k; σ_k))``. The
    prior score ``s`` of a chunk needs the pixels within ``p − 1`` of it (p the patch size)
    as they are at step k: each iteration is one :func:`dask.array.overlap.overlap` (halo
    ``p − 1``, wrapped for circular padding) and one task per chunk, which computes the
    score exactly as the whole-image :class:`~fastscore.prior.PatchPrior` would (padding at
    the image border, folding of reflected patches, covering counts; see
    :mod:`fastscore._dask_halo`); the data step is pixelwise.

    Equality: the result equals ``map_estimate(y, A, noise_sigma, prior, method=method,
    n_steps=n_steps, tol=0, ...)`` up to float rounding (sums in a different order, and the
    exact pixelwise data solve instead of the conjugate-gradient step with a global step
    length ≈ 1), for any chunking and every padding mode, including the random-shift tiling
    when the same `rng` is given: its grid offsets are drawn here, in the same order.

    Parameters
    ----------
    volume : dask.array.Array (or ndarray) of shape (H, W) or (D, H, W)
        The noisy image ``y`` (zeros where `mask` is False), or a stack of images with one
        more leading axis (each denoised on its own, as a batch of
        :func:`~fastscore.map_estimate`), real; float32/float64 kept,
        int/bool → float64, float16 → float32. Chunks shorter than the patch along an axis
        are merged into a neighbour.
    prior : fastscore.prior.PatchPrior or a sum of them (``tv_prior``)
        With an intensity normalisation the prior must be calibrated first
        (``prior.calibrate``); random-shift tiling is supported.
    noise_sigma : float > 0
        σ_n, noise standard deviation.
    method : {"hqs", "gradient", "tweedie"}
        "tweedie": one pass of Tweedie averaging, ``x + σ² s(x; σ)`` from the noisy image
        with σ = `noise_sigma` (or a float `sigma_schedule`), equal to
        ``prior.denoise(volume, σ)``; `n_steps`, `mask` and `store` do not apply.
    n_steps : int >= 1
        Iterations (all run: there is no early stop, ``tol=0``).
    step_size : "auto" or float in (0, 2)
        Gradient method: fraction of ``1/L_k``.
    sigma_schedule : as in :func:`fastscore.map_estimate`
        Default geometric ``σ_start → σ_n/4``: σ_start = 2σ_n for denoising; with a mask
        the spread of the zero-filled start image (one global reduction).
    momentum : bool
        Nesterov acceleration (gradient method).
    mask : dask.array.Array or ndarray of bool, optional
        Observed pixels (inpainting, ``A = Mask(mask)``); None is denoising.
    rng : None, int or Generator
        Random shifts of a ``tiling="random_shift"`` prior.
    store : str or os.PathLike, optional
        A directory: each iterate is written there (one ``.npy`` file per chunk, see
        Notes) and read back by the next iteration, so a worker holds a few chunks, never
        its share of the volume: each block task reads its window from the store and
        writes its result there itself (no block passes through the graph); the returned
        array reads the last iterate. It must be a directory every worker can read and
        write (local, or a shared file system on a multi-machine cluster). None builds
        one lazy graph of all iterations (Dask keeps the iterates between steps in the
        workers' memory).
    callback : callable(step, n_steps), optional
        Called after each iteration is built (with `store`: computed and written).
    task_callback : callable(n_done, n_total), optional
        With `store`: called on the client as each block task finishes (``n_total`` =
        ``n_steps`` × number of chunks; as they finish when the scheduler is a
        ``distributed.Client``, else after each iteration), for a progress display.

    Returns
    -------
    dask.array.Array of the volume's shape, chunks and working dtype (lazy unless `store`).

    Notes
    -----
    Store layout: ``<store>/y_0/`` (the data; with a mask also ``x_0/`` and ``mask_0/``)
    and the iterates ``x_<k>/`` (with momentum ``point_<k>/``), the two latest kept. Each
    is a directory with ``chunks.json`` (shape, dtype, chunk sizes per axis) and one plain
    uncompressed ``.npy`` file per chunk named by its block index (``0.1.2.npy``), written
    to a temporary name and renamed into place (a rerun task rewrites it whole).

    Memory per block task with `store`: the chunk's window with its halo (≈ 1.1 chunk
    sizes at 128³), the prior score on the window and its fold onto the chunk, then the
    data chunk read after the score (≈ 3 chunk sizes at the peak), plus the prior's patch
    working set, bounded by ``prior.chunk_size`` (≈ 4 · chunk_size · patch_dim values: 13
    MiB for 3 × 3 × 3 float32 patches at the default 32 768; lower it with
    ``PatchPrior(chunk_size=...)``). A window read takes only the window's rows from the
    neighbouring chunks' files, a few rows at a time (≤ 1 MiB), straight into the window;
    writes go out a few rows at a time. The prior is sent to each worker
    once (one graph key). Complex images and priors other than patch priors are not
    chunked (``NotImplementedError``).
    """
    da = _dask_array()
    method = check_choice(method, "method", ("hqs", "gradient", "tweedie"))
    n_steps = check_int(n_steps, "n_steps", low=1)
    if step_size != "auto":
        step_size = check_scalar(step_size, "step_size", low=0, high=2, low_inclusive=False,
                                 high_inclusive=False)
    noise_sigma = check_scalar(noise_sigma, "noise_sigma", low=0, low_inclusive=False)
    terms = _halo.patch_priors(prior)
    y = volume if isinstance(volume, da.Array) else da.from_array(np.asarray(volume))
    k = len(terms[0]._patch_shape)
    if y.ndim not in (k, k + 1):
        raise ValueError(f"`volume` must have {k} dimensions (or {k + 1}: a stack of "
                         f"images) for patch size {terms[0]._patch_shape}; got shape "
                         f"{y.shape}.")
    if any(t.intensity is not None and t.tiling == "random_shift" for t in terms) and \
            y.ndim > k:
        raise NotImplementedError("a stack of images with a random-shift prior that "
                                  "normalises intensities is not chunked.")
    if any(n < p for n, p in zip(y.shape[-k:], terms[0]._patch_shape)):
        raise ValueError(f"`volume` of shape {y.shape} is smaller than the patch "
                         f"{terms[0]._patch_shape}.")
    dtype = _working_dtype(y.dtype, "volume")
    check_scale(noise_sigma, "noise_sigma", dtype)
    depth, periodic = _halo.halo(terms)
    depth = (0,) * (y.ndim - k) + depth                      # no halo across a stack
    minimum = [d + 1 for d in depth]
    y = _regular_chunks(y.astype(dtype), minimum)
    if mask is not None:
        m = mask if isinstance(mask, da.Array) else da.from_array(np.asarray(mask))
        if m.dtype != bool:
            raise TypeError(f"`mask` must be a boolean array; got dtype {m.dtype}.")
        if m.shape != y.shape:
            raise ValueError(f"`mask` must have the volume's shape {y.shape}; got {m.shape}.")
        m = m.rechunk(y.chunks)
        x = y * m                                            # A* y / ‖A‖² (‖A‖² = 1)
        operator = Mask(np.ones((1,), dtype=bool))           # only its kind is used below
    else:
        m, x, operator = None, y, Identity((1,))
    if method == "tweedie":
        if mask is not None:
            raise ValueError("method='tweedie' denoises; it takes no `mask`.")
        n_steps, store = 1, None
        sigmas = np.array([noise_sigma if sigma_schedule is None else check_scalar(
            sigma_schedule, "sigma_schedule", low=0, low_inclusive=False)])
    else:
        sigmas = _prior_sigmas(sigma_schedule, noise_sigma, n_steps, prior,
                           _anneal_start(operator, x, noise_sigma, prior))
    check_scale(sigmas, "sigma_schedule", dtype)
    rng = check_rng(rng)
    shape = tuple(int(n) for n in y.shape)
    starts = _starts(y.chunks)
    prior_key = import_optional("dask", "dask").delayed(prior, traverse=False)
    fraction = 1.0 if step_size == "auto" else step_size
    L_lik = (1.0 if m is None or bool(m.any().compute()) else 0.0) / noise_sigma ** 2
    proxy = _proxy_shape(shape[-k:], terms)
    boundary = "periodic" if periodic else "none"
    momentum = momentum and method == "gradient"
    if store is not None:                     # the start, the data and the mask, once
        saved = _persist(store, 0, {"y": y} if m is None else {"x": x, "y": y, "mask": m},
                         y.chunks)
        saved.setdefault("x", saved["y"])     # denoising starts from the data
        data = {"y": saved["y"], "mask": saved.get("mask")}
    point = x
    tick = None
    if task_callback is not None:
        n_total, n_done = n_steps * int(np.prod(y.numblocks)), [0]

        def tick():
            n_done[0] += 1
            task_callback(n_done[0], n_total)
    for step in range(n_steps):
        sigma = float(sigmas[step])
        origins = [t.draw_origin(rng) for t in terms]
        params = {"inv_n2": 1.0 / noise_sigma ** 2}
        if method == "gradient":
            params["alpha"] = fraction / (L_lik + prior.lipschitz(proxy, sigma))
        if store is None:                     # one halo exchange in the graph
            args = (da.overlap.overlap(point if momentum else x, depth=dict(enumerate(depth)),
                                       boundary=boundary), y, m)
        else:                                 # each task reads its window from disk and
            paths = dict(data, x=saved.get("point" if momentum else "x", saved["x"]),
                         previous=saved["x"])
            out = _create(store, step + 1, dict.fromkeys(
                ("x", "point") if momentum else ("x",), dtype), shape, y.chunks)
            _run_tokens(da.map_blocks(
                _block_write, prior_key, paths=paths, out=out, shape=shape, starts=starts,
                beta=step / (step + 3.0), depth=depth, periodic=periodic, sigma=sigma,
                origins=origins, method=method, params=params,
                chunks=tuple((1,) * len(c) for c in y.chunks), dtype=np.int8), tick)
            _remove(store, step - 1, out)
            saved = out
            x = da.from_array(saved["x"], chunks=y.chunks, name=False, asarray=False)
            if callback is not None:
                callback(step, n_steps)
            continue
        x_new = da.map_blocks(
            _block_lazy, *args, prior_key, paths=None, shape=shape, starts=starts,
            depth=depth, periodic=periodic, sigma=sigma, origins=origins, method=method,
            params=params, chunks=y.chunks, dtype=dtype)
        if momentum:
            point = x_new + dtype.type(step / (step + 3.0)) * (x_new - x)
        x = x_new
        if callback is not None:
            callback(step, n_steps)
    return x


def _create(store, step, dtypes, shape, chunks):
    """Empty arrays ``store/<name>_<step>/`` with the dask chunks as stored chunks (each
    has one writer): :class:`~fastscore._dask_store.ChunkFiles` by name."""
    root = os.fspath(store)
    return {name: ChunkFiles.create(os.path.join(root, f"{name}_{step}"), shape, chunks,
                                    dtype) for name, dtype in dtypes.items()}


def _remove(store, step, keep):
    """Delete the iterates of `step` (no task reads them any more) but not `keep`'s."""
    kept = {stored.path for stored in keep.values()}
    for name in ("x", "point"):
        old = os.path.join(os.fspath(store), f"{name}_{step}")
        if step > 0 and old not in kept and os.path.isdir(old):
            shutil.rmtree(old, ignore_errors=True)


def _persist(store, step, arrays, chunks):
    """Write dask arrays to new stored arrays ``store/<name>_<step>/`` in one pass (one
    task per chunk); the :class:`~fastscore._dask_store.ChunkFiles` by name."""
    da = _dask_array()
    shape = next(iter(arrays.values())).shape
    saved = _create(store, step, {k: v.dtype for k, v in arrays.items()}, shape, chunks)
    da.store(list(arrays.values()), [saved[k] for k in arrays], lock=False)
    return saved


from ._dask_dataset import DatasetRun, reconstruct_many  # noqa: E402
from ._dask_kde import ShardedKDE, combine_shards  # noqa: E402

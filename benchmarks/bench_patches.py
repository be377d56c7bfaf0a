"""Patch gather (G x) and scatter-add (Gᵀ P): fastscore against the alternatives.

Prints, per case and thread count, the best time over interleaved rounds (each contender
timed once per round, round-robin, so that background load hits all alike) and the
throughput in GB/s counted as
bytes of the patch matrix per second, for fastscore, NumPy (``sliding_window_view`` copy,
strided-slice copies/adds over the patch offsets, ``np.add.at``, ``np.bincount``) and torch
``unfold``/``fold`` in torch's native layout (patch-major) when torch is installed, with the
machine's copy bandwidth (``np.copyto`` of 256 MB) for scale. Ratios are contender time /
fastscore time from the same run (> 1: fastscore is faster).

    python benchmarks/bench_patches.py            # full sweep
    python benchmarks/bench_patches.py --quick    # small sizes, for CI
"""

import itertools
import math
import time

import numpy as np

from _timing import Table, header, measure, parser, try_import  # noqa: F401

import fastscore
from fastscore import PatchOperator


def numpy_gather_window(x, p):
    view = np.lib.stride_tricks.sliding_window_view(x, p)
    return view.reshape(-1, math.prod(p)).copy()


def numpy_gather_slices(x, p):
    grid = tuple(n - q + 1 for n, q in zip(x.shape, p))
    out = np.empty(grid + (math.prod(p),), dtype=x.dtype)
    for k, offset in enumerate(itertools.product(*[range(q) for q in p])):
        out[..., k] = x[tuple(slice(o, o + g) for o, g in zip(offset, grid))]
    return out.reshape(-1, math.prod(p))


def numpy_scatter_slices(P, shape, p):
    grid = tuple(n - q + 1 for n, q in zip(shape, p))
    out = np.zeros(shape, dtype=P.dtype)
    Pg = P.reshape(grid + (math.prod(p),))
    for k, offset in enumerate(itertools.product(*[range(q) for q in p])):
        out[tuple(slice(o, o + g) for o, g in zip(offset, grid))] += Pg[..., k]
    return out


def pixel_index(shape, p):
    """Flat source index of every patch entry, shape (n_patches, patch_dim)."""
    idx = np.arange(math.prod(shape)).reshape(shape)
    return numpy_gather_window(idx, p)


def numpy_scatter_add_at(P, shape, index):
    out = np.zeros(math.prod(shape), dtype=P.dtype)
    np.add.at(out, index.ravel(), P.ravel())
    return out.reshape(shape)


def numpy_scatter_bincount(P, shape, index):
    return np.bincount(index.ravel(), weights=P.ravel(),
                       minlength=math.prod(shape)).astype(P.dtype).reshape(shape)


def copy_bandwidth():
    a = np.ones(256 * 2**20 // 8)
    b = np.empty_like(a)
    med, _ = measure(lambda: np.copyto(b, a), repeat=5)
    return a.nbytes / med / 1e9


def run_case(shape, p, threads, quick, torch, table, copy_gbs):
    dtype = np.float32
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    G = PatchOperator(shape, p)
    P = G.gather(x)
    nbytes = P.nbytes
    case = f"{'x'.join(map(str, shape))} p={'x'.join(map(str, p))}"
    big = nbytes > 300e6

    # every contender is timed once per round, round-robin, and the minimum over rounds is
    # kept: background load then hits all contenders alike instead of whichever ran last
    calls = []     # (op, contender, threads, fn); threads 0 = single-threaded NumPy

    out = np.empty_like(P)
    image = np.empty(shape, dtype)
    for t in threads:
        Gt = PatchOperator(shape, p, n_threads=t)
        calls.append(("gather", "fastscore", t, lambda Gt=Gt: Gt.gather(x, out=out)))
        calls.append(("scatter", "fastscore", t, lambda Gt=Gt: Gt.scatter(P, out=image)))
        if torch is not None and len(shape) == 2:
            xt = torch.from_numpy(x)[None, None]
            Pt = torch.nn.functional.unfold(xt, p)           # (1, patch_dim, n_patches)

            def with_threads(fn, t=t):
                def call():
                    torch.set_num_threads(t)
                    return fn()
                return call
            calls.append(("gather", "torch unfold", t,
                          with_threads(lambda: torch.nn.functional.unfold(xt, p))))
            calls.append(("scatter", "torch fold", t,
                          with_threads(lambda: torch.nn.functional.fold(Pt, shape, p))))
    calls.append(("gather", "numpy sliding_window_view copy", 0,
                  lambda: numpy_gather_window(x, p)))
    calls.append(("gather", "numpy slice copies", 0, lambda: numpy_gather_slices(x, p)))
    calls.append(("scatter", "numpy slice adds", 0, lambda: numpy_scatter_slices(P, shape, p)))
    if not big:
        index = pixel_index(shape, p)
        calls.append(("scatter", "numpy bincount", 0,
                      lambda: numpy_scatter_bincount(P, shape, index)))
        calls.append(("scatter", "numpy add.at", 0,
                      lambda: numpy_scatter_add_at(P, shape, index)))
    rounds = 3 if quick or big else 9
    best = {}
    for fn_entry in calls:                       # warm-up
        fn_entry[3]()
    for _ in range(rounds):
        for op, name, t, fn in calls:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            key = (op, name)
            best.setdefault(key, {})
            best[key][t] = min(dt, best[key].get(t, float("inf")))
    results = best

    for op in ("gather", "scatter"):
        for t in threads:
            ours = results[(op, "fastscore")][t]
            for (o, name), by_t in results.items():
                if o != op:
                    continue
                sec = by_t.get(t, by_t.get(0))
                if sec is None:
                    continue
                gbs = nbytes / sec / 1e9
                ratio = sec / ours
                table.add(case, op, t, name, f"{sec * 1e3:.2f}", f"{gbs:.2f}",
                          f"{100 * gbs / copy_gbs:.0f}%", f"{ratio:.2f}")
        if torch is None or len(shape) != 2:
            table.add(case, op, "-", "torch", "n/a", "n/a", "",
                      "not installed" if torch is None else "no 3-D unfold")


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    torch = try_import("torch")
    copy_gbs = copy_bandwidth()
    if args.quick:
        cases = [((128, 128), (3, 3)), ((32, 32, 32), (3, 3, 3))]
    else:
        cases = [((512, 512), (3, 3)), ((512, 512), (8, 8)), ((128, 128, 128), (5, 5, 5))]
    print(header("patch gather / scatter, float32, stride 1, padding 'valid'",
                 threads=args.threads,
                 torch=getattr(torch, "__version__", "not installed"),
                 copy_bandwidth=f"{copy_gbs:.1f} GB/s (np.copyto of 256 MB)"))
    table = Table(["case", "op", "threads", "contender", "ms (min of rounds)", "GB/s",
                   "of copy bw", "time / fastscore"])
    for shape, p in cases:
        run_case(shape, p, args.threads, args.quick, torch, table, copy_gbs)
    print(table.render())
    fastscore.set_num_threads(max(args.threads))


if __name__ == "__main__":
    main()

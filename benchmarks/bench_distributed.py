"""Chunked MAP denoising of large volumes on a Dask cluster (fastscore.distributed).

Measures, on a ``distributed.LocalCluster`` of worker processes (1 thread each):

1. peak RSS per worker against the chunk size (``denoise_dask(..., store=...)``: each
   block task reads its window from the stored iterate and writes its result there, so a
   worker holds a few chunks, never its share of the volume). Each case restarts the
   workers and runs a small warm-up (32³); "idle" is then the worker's RSS, its peak
   (VmHWM) is reset, and "peak − idle" is what the case added, also as a multiple of one
   chunk's bytes (target: at most 4 chunk sizes plus the model);
2. throughput with 1 and 2 workers (strong scaling on this machine);
3. the task overhead per chunk: one halo exchange + one block task per chunk with a
   do-nothing block function, divided by the number of chunks;
4. one large volume (512³ float32 by default) denoised end to end.

The prior is a Gaussian patch score on 3 × 3 × 3 patches (fitted to patches of the volume),
so the run takes minutes on 2 cores; a learned network costs more per voxel, not more
memory per chunk. Volumes are generated chunk by chunk (never on the client).

    python benchmarks/bench_distributed.py --quick          # 96³, a few seconds per case
    python benchmarks/bench_distributed.py                  # 256³ sweeps, then 512³
    python benchmarks/bench_distributed.py --big 384 --steps 2
"""

import os
import shutil
import sys
import tempfile
import time

import distributed
import numpy as np

from _timing import Table, header

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _phantom_block(block, block_info=None):
    """Noisy piecewise-constant blocks, deterministic per chunk location."""
    loc = block_info[None]["array-location"]
    grids = np.ogrid[tuple(slice(a, b) for a, b in loc)]
    out = ((sum(g // 24 for g in grids)) % 2).astype(np.float32)
    out *= 0.5
    out += 1.0
    seed = hash(tuple(a for a, _ in loc)) % (2 ** 32)
    out += 0.1 * np.random.default_rng(seed).standard_normal(out.shape, dtype=np.float32)
    return out


def volume(n, chunk):
    import dask.array as da

    return da.map_blocks(_phantom_block, da.empty((n,) * 3, chunks=chunk, dtype=np.float32),
                         dtype=np.float32)


def make_prior():
    from fastscore.patches import PatchOperator
    from fastscore.prior import GaussianPatchScore, PatchPrior

    rng = np.random.default_rng(0)
    small = volume(48, 48).compute(scheduler="synchronous")
    patches = PatchOperator(small.shape, (3, 3, 3)).gather(small)
    score = GaussianPatchScore().fit(patches[rng.choice(len(patches), 20000)]
                                     .astype(np.float64))
    return PatchPrior(score, (3, 3, 3))


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _reset_peak():
    """The worker's RSS now (KiB); its peak RSS (VmHWM) is reset to it (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def _peak_rss_kib():
    return _status_kib("VmHWM")


def _deep_bytes(obj, seen):
    """Bytes of `obj` and of the containers and strings it holds (each object once)."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_bytes(k, seen) + _deep_bytes(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(_deep_bytes(v, seen) for v in obj)
    return size


def _profile_history(dask_worker):
    """(cycles, MiB) of the worker's statistical-profile history: Dask samples the
    running task's stack every 10 ms and keeps one profile tree per second, up to an hour
    of them, so a worker's memory grows with the wall time of the run."""
    history = list(dask_worker.profile_history)
    return len(history), _deep_bytes(history, set()) / 2 ** 20


def _phase_peak_kib():
    """The worker's peak RSS (KiB) since the last reset; the peak is reset (Linux)."""
    peak = _status_kib("VmHWM")
    _reset_peak()
    return peak


def _warm_up(store_root, prior):
    """A small run (32³, 16³ chunks, one step) on the restarted workers: every code path,
    codec and buffer pool of a case is touched once, so what stays is the runtime
    baseline of a worker, measured after it on the idle worker."""
    import dask.array as da
    from fastscore.distributed import denoise_dask

    store = tempfile.mkdtemp(dir=store_root)
    noisy = os.path.join(store, "noisy.zarr")
    da.to_zarr(volume(32, 16), noisy)
    x = denoise_dask(da.from_zarr(noisy), prior, 0.1, n_steps=1, store=store)
    da.to_zarr(x, os.path.join(store, "out.zarr"), overwrite=True)
    shutil.rmtree(store, ignore_errors=True)


def run_case(client, n, chunk, prior, steps, store_root):
    """Denoise n³ (read from Zarr) with the given chunks, the result written to Zarr;
    returns (seconds, baseline MiB, peak MiB, phases): the idle worker's RSS after a
    warm-up and the peak RSS of the run, of the worker with the largest peak; `phases`
    maps each phase (the input written to the store with step 1, each further step, the
    result written to Zarr) to the largest peak − idle over the workers in MiB."""
    import dask.array as da
    from fastscore.distributed import denoise_dask

    store = tempfile.mkdtemp(dir=store_root)
    noisy = os.path.join(store, "noisy.zarr")          # the input: a volume on disk
    da.to_zarr(volume(n, chunk), noisy)
    client.restart()
    _warm_up(store_root, prior)
    idle = client.run(_reset_peak)                      # peak RSS counted from here
    phases, peak = {}, dict(idle)

    def phase(name):
        for w, kib in client.run(_phase_peak_kib).items():
            peak[w] = max(peak[w], kib)
            phases[name] = max(phases.get(name, 0.0), (kib - idle[w]) / 1024)

    t0 = time.perf_counter()
    x = denoise_dask(da.from_zarr(noisy), prior, 0.1, n_steps=steps, store=store,
                     callback=lambda step, n: phase("input + step 1" if step == 0
                                                    else f"step {step + 1}"))
    da.to_zarr(x, os.path.join(store, "out.zarr"), overwrite=True)
    seconds = time.perf_counter() - t0
    phase("output to Zarr")
    history = client.run(_profile_history)
    print("  profile history per worker (one-second cycles, MiB held): " + ", ".join(
        f"{cycles} {mib:.1f}" for cycles, mib in history.values()), flush=True)
    shutil.rmtree(store, ignore_errors=True)
    worker = max(peak, key=lambda w: peak[w] - idle[w])
    return seconds, idle[worker] / 1024, peak[worker] / 1024, phases


def overhead(client, n, chunk):
    """Seconds per chunk of one overlap + do-nothing block task (scheduler + transfer)."""
    import dask.array as da

    x = volume(n, chunk).persist()
    distributed.wait(x)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        y = da.overlap.overlap(x, depth=2, boundary="none").map_blocks(
            lambda b: b[:1, :1, :1], chunks=tuple((1,) * k for k in x.numblocks),
            dtype=x.dtype)
        y.sum().compute()
        best = min(best, time.perf_counter() - t0)
    return best / x.npartitions


def block_tasks(n, chunk, prior, store_root):
    """Every block task of one HQS step on n³ (`chunk`³ chunks) run in this process, one
    after the other as a worker runs them: per kind of block (how many axes touch the
    border), the largest peak RSS − idle and the largest tracemalloc peak, in MiB. The
    process runs with Dask's worker setting MALLOC_TRIM_THRESHOLD_=65536 (freed memory is
    returned, as in a worker), so the RSS peak is the live memory's, not the heap's."""
    import tracemalloc

    import dask
    from fastscore import _dask_halo, distributed as fd

    dask.config.set(scheduler="synchronous")
    _warm_up(store_root, prior)
    store = tempfile.mkdtemp(dir=store_root)
    chunks = ((chunk,) * (n // chunk),) * 3
    y = fd._persist(store, 0, {"y": volume(n, chunk)}, chunks)["y"]
    out = fd._create(store, 1, {"x": np.dtype(np.float32)}, (n,) * 3, chunks)
    depth, periodic = _dask_halo.halo(_dask_halo.patch_priors(prior))
    step = dict(paths={"x": y, "y": y, "mask": None, "previous": y}, out=out,
                shape=(n,) * 3, starts=fd._starts(chunks), beta=0.0, depth=depth,
                periodic=periodic, sigma=0.2, origins=[None], method="hqs",
                params={"inv_n2": 100.0})
    kinds = {}
    tracemalloc.start()
    idle = _reset_peak()
    for block in np.ndindex(*(len(c) for c in chunks)):
        tracemalloc.reset_peak()
        _reset_peak()
        fd._block_write(prior, block_id=block, **step)
        kind = sum(b in (0, len(c) - 1) for b, c in zip(block, chunks))
        rss, traced = kinds.get(kind, (0.0, 0.0))
        kinds[kind] = (max(rss, (_peak_rss_kib() - idle) / 1024),
                       max(traced, tracemalloc.get_traced_memory()[1] / 2 ** 20))
    tracemalloc.stop()
    shutil.rmtree(store, ignore_errors=True)
    return kinds


def _row(table, n, chunk, workers, steps, result):
    seconds, idle, peak, phases = result
    chunk_mib = chunk ** 3 * 4 / 2 ** 20
    table.add(f"{n}^3", chunk, (-(-n // chunk)) ** 3, workers, f"{seconds:.1f}",
              f"{n ** 3 * steps / seconds / 1e6:.2f}", f"{idle:.0f}", f"{peak:.0f}",
              f"{peak - idle:.1f}", f"{chunk_mib:.2f}", f"{(peak - idle) / chunk_mib:.2f}")
    print(" | ".join(table.rows[-1]), flush=True)
    print("  peak - idle MiB by phase (largest over the workers): " + ", ".join(
        f"{name} {mib:.1f}" for name, mib in phases.items()), flush=True)


def main():
    import argparse
    import pickle

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small volumes (CI)")
    p.add_argument("--size", type=int, default=256, help="edge of the sweep volumes")
    p.add_argument("--chunks", type=int, nargs="+", default=[32, 64, 128],
                   help="chunk edges of the sweep")
    p.add_argument("--big", type=int, default=512, help="edge of the large volume (0: skip)")
    p.add_argument("--steps", type=int, default=2, help="HQS iterations")
    p.add_argument("--store", default=None,
                   help="folder for the input, the iterates and the output (default: tmp)")
    p.add_argument("--no-sweep", action="store_true",
                   help="only the task overhead and the large volume")
    p.add_argument("--no-scaling", action="store_true", help="skip the 1-worker run")
    p.add_argument("--no-overhead", action="store_true", help="skip the task overhead")
    p.add_argument("--mmap-threshold", type=int, default=None,
                   help="MALLOC_MMAP_THRESHOLD_ of the workers in bytes (glibc: blocks this "
                   "large are mapped and unmapped on free, never kept in the heap)")
    p.add_argument("--blocks", type=int, default=0,
                   help="instead: every block task of one step on this edge (128^3 chunks) "
                   "in one process, peak memory per kind of block")
    p.add_argument("--no-profile", action="store_true",
                   help="switch off the workers' statistical profiler "
                   "(distributed.worker.profile.enabled), whose history grows with time")
    args = p.parse_args()
    if args.blocks and os.environ.get("MALLOC_TRIM_THRESHOLD_") != "65536":
        os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"       # as in a Dask worker
        os.execv(sys.executable, [sys.executable] + sys.argv)
    n = 96 if args.quick else args.size
    big = 0 if args.quick else args.big
    chunks = [24, 48] if args.quick else args.chunks
    store_root = args.store or tempfile.mkdtemp(prefix="fastscore-bench-")
    prior = make_prior()
    if args.blocks:
        chunk = 128
        print(f"every block task of one HQS step on {args.blocks}^3, {chunk}^3 chunks "
              f"({chunk ** 3 * 4 / 2 ** 20:.0f} MiB), in one process (MiB):")
        for kind, (rss, traced) in sorted(block_tasks(args.blocks, chunk, prior,
                                                      store_root).items()):
            print(f"  blocks on the border along {kind} axes: peak RSS - idle {rss:.1f}, "
                  f"traced peak {traced:.1f}", flush=True)
        shutil.rmtree(store_root, ignore_errors=True)
        return
    print(header("fastscore.distributed: chunked HQS denoising on a LocalCluster",
                 prior="Gaussian patch score, 3x3x3 patches, reflect padding",
                 steps=args.steps, dtype="float32", workers="processes, 1 thread each",
                 model_bytes=len(pickle.dumps(prior))))
    if args.mmap_threshold is not None:
        import dask

        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_":
                         str(args.mmap_threshold)})
    if args.no_profile:
        import dask

        dask.config.set({"distributed.worker.profile.enabled": False})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", memory_limit=0) as cluster, \
            distributed.Client(cluster) as client:
        table = Table(["volume", "chunk", "chunks", "workers", "seconds", "Mvoxel-iter/s",
                       "idle MiB", "peak MiB", "peak - idle MiB", "chunk MiB",
                       "(peak - idle) / chunk"])
        for chunk in [] if args.no_sweep else chunks:
            _row(table, n, chunk, 2, args.steps,
                 run_case(client, n, chunk, prior, args.steps, store_root))
        if not args.no_sweep and not args.no_scaling:
            mid = chunks[-1] if args.quick else 64
            cluster.scale(1)
            client.wait_for_workers(1)
            while len(client.scheduler_info()["workers"]) > 1:
                time.sleep(0.2)
            result1 = run_case(client, n, mid, prior, args.steps, store_root)
            _row(table, n, mid, 1, args.steps, result1)
            cluster.scale(2)
            client.wait_for_workers(2)
            seconds2 = next(float(r[4]) for r in table.rows if r[1] == str(mid) and r[3] == "2")
            print(f"\nstrong scaling at chunk {mid}: 1 worker {result1[0]:.1f} s, 2 workers "
                  f"{seconds2:.1f} s, speed-up {result1[0] / seconds2:.2f}x", flush=True)
        if not args.no_overhead:
            per_chunk = overhead(client, min(n, 128), 16 if not args.quick else 12)
            print(f"task overhead: {per_chunk * 1e3:.2f} ms per chunk (halo exchange + one "
                  "do-nothing block task, chunk 16^3)", flush=True)
        if big:
            _row(table, big, 128, 2, args.steps,
                 run_case(client, big, 128, prior, args.steps, store_root))
        print(table.render())
    if args.store is None:
        shutil.rmtree(store_root, ignore_errors=True)


if __name__ == "__main__":
    main()

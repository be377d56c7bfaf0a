"""Chunked MAP denoising of large volumes on a Dask cluster (fastscore.distributed).

Measures, on a ``distributed.LocalCluster`` of worker processes (1 thread each):

1. peak RSS per worker against the chunk size (``denoise_dask(..., store=...)``: each
   iterate goes to Zarr, so a worker holds a few chunks, never its share of the volume),
   as extra MiB over the idle worker and as a multiple of one chunk's bytes (target: at
   most 4 chunk sizes plus the model);
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
import resource
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


def _peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kib():
    """RSS of a worker with the modules of a run imported (the baseline of a case)."""
    import psutil
    import zarr  # noqa: F401

    import fastscore.distributed  # noqa: F401

    return psutil.Process().memory_info().rss // 1024


def run_case(client, n, chunk, prior, steps, store_root):
    """Denoise n³ (read from Zarr) with the given chunks, the result written to Zarr;
    returns (seconds, peak RSS over the idle worker in MiB, largest over the workers)."""
    import dask.array as da
    from fastscore.distributed import denoise_dask

    store = tempfile.mkdtemp(dir=store_root)
    noisy = os.path.join(store, "noisy.zarr")          # the input: a volume on disk
    da.to_zarr(volume(n, chunk), noisy)
    client.restart()                                    # peak RSS counted from here
    idle = client.run(_rss_kib)
    t0 = time.perf_counter()
    x = denoise_dask(da.from_zarr(noisy), prior, 0.1, n_steps=steps, store=store)
    da.to_zarr(x, os.path.join(store, "out.zarr"), overwrite=True)
    seconds = time.perf_counter() - t0
    peak = client.run(_peak_rss_kib)
    shutil.rmtree(store, ignore_errors=True)
    extra = max((peak[w] - idle[w]) / 1024 for w in peak)
    return seconds, extra


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


def main():
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small volumes (CI)")
    p.add_argument("--size", type=int, default=256, help="edge of the sweep volumes")
    p.add_argument("--big", type=int, default=512, help="edge of the large volume (0: skip)")
    p.add_argument("--steps", type=int, default=2, help="HQS iterations")
    p.add_argument("--store", default=None, help="folder for the Zarr iterates (default: tmp)")
    p.add_argument("--no-sweep", action="store_true",
                   help="only the task overhead and the large volume")
    args = p.parse_args()
    n = 96 if args.quick else args.size
    big = 0 if args.quick else args.big
    chunks = [24, 48] if args.quick else [32, 64, 128]
    store_root = args.store or tempfile.mkdtemp(prefix="fastscore-bench-")
    prior = make_prior()
    print(header("fastscore.distributed: chunked HQS denoising on a LocalCluster",
                 prior="Gaussian patch score, 3x3x3 patches, reflect padding",
                 steps=args.steps, dtype="float32", workers="processes, 1 thread each"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", memory_limit=0) as cluster, \
            distributed.Client(cluster) as client:
        table = Table(["volume", "chunk", "chunks", "workers", "seconds", "Mvoxel-iter/s",
                       "peak extra MiB/worker", "chunk MiB", "peak / chunk"])
        for chunk in [] if args.no_sweep else chunks:
            seconds, extra = run_case(client, n, chunk, prior, args.steps, store_root)
            chunk_mib = chunk ** 3 * 4 / 2 ** 20
            table.add(f"{n}^3", chunk, (-(-n // chunk)) ** 3, 2, f"{seconds:.1f}",
                      f"{n ** 3 * args.steps / seconds / 1e6:.2f}", f"{extra:.0f}",
                      f"{chunk_mib:.2f}", f"{extra / chunk_mib:.1f}")
            print(table.rows[-1], flush=True)
        if not args.no_sweep:
            mid = chunks[-1] if args.quick else 64
            cluster.scale(1)
            client.wait_for_workers(1)
            while len(client.scheduler_info()["workers"]) > 1:
                time.sleep(0.2)
            seconds1, extra1 = run_case(client, n, mid, prior, args.steps, store_root)
            table.add(f"{n}^3", mid, (-(-n // mid)) ** 3, 1, f"{seconds1:.1f}",
                      f"{n ** 3 * args.steps / seconds1 / 1e6:.2f}", f"{extra1:.0f}",
                      f"{mid ** 3 * 4 / 2 ** 20:.2f}", f"{extra1 / (mid ** 3 * 4 / 2 ** 20):.1f}")
            cluster.scale(2)
            client.wait_for_workers(2)
            seconds2 = next(float(r[4]) for r in table.rows if r[1] == str(mid) and r[3] == "2")
            print(table.render())
            print(f"\nstrong scaling at chunk {mid}: 1 worker {seconds1:.1f} s, 2 workers "
                  f"{seconds2:.1f} s, speed-up {seconds1 / seconds2:.2f}x")
        _overhead_and_big(client, n, big, prior, args, store_root)
    if args.store is None:
        shutil.rmtree(store_root, ignore_errors=True)


def _overhead_and_big(client, n, big, prior, args, store_root):
    per_chunk = overhead(client, min(n, 128), 16 if not args.quick else 12)
    print(f"task overhead: {per_chunk * 1e3:.2f} ms per chunk (halo exchange + one "
          "do-nothing block task, chunk 16^3)", flush=True)
    if big:
        seconds, extra = run_case(client, big, 128, prior, args.steps, store_root)
        chunk_mib = 128 ** 3 * 4 / 2 ** 20
        print(f"\n{big}^3 float32, chunk 128, 2 workers, {args.steps} HQS steps: "
              f"{seconds:.0f} s ({big ** 3 * args.steps / seconds / 1e6:.2f} "
              f"Mvoxel-iter/s), peak extra {extra:.0f} MiB per worker = "
              f"{extra / chunk_mib:.1f} chunk sizes", flush=True)


if __name__ == "__main__":
    main()

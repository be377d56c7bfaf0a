"""Same-process A/B of the MLP training step between two builds of fastscore.

Two trees, each holding a built ``fastscore`` package (e.g. a copy of ``main``'s and of a
branch's), are copied under other names (``fs0``, ``fs1``) into a scratch directory and
imported side by side in one process. Blocks of training steps (forward + residual +
backward + Adam, the step of ``bench_mlp.py``) alternate A, B, A, B, ... so both see the
same machine load at a fine grain; per block the median time of each part (thread CPU time
on one thread, wall time on more), and the ratio B / A per block pair (median and
quartiles). Checks that both builds give the same parameters after the same steps.

The compiled modules import ``fastscore._ext._common`` by its name: the first tree's
``fastscore`` is put on the path for it (the two builds must share an unchanged
``_common``).

Run: python benchmarks/ab_mlp_step.py TREE_A TREE_B [--batch 512] [--threads 1]
     [--blocks 150] [--per-block 10]   (FASTSCORE_SIMD=avx2 to force the AVX2 bodies)
"""

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

PARTS = ("forward", "backward", "adam", "step")


def load(tree, name, scratch):
    shutil.copytree(os.path.join(tree, "fastscore"), os.path.join(scratch, name))
    return (importlib.import_module(name), importlib.import_module(f"{name}.nn"),
            importlib.import_module(f"{name}.optim"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("trees", nargs=2)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--blocks", type=int, default=150)
    p.add_argument("--per-block", type=int, default=10)
    args = p.parse_args()
    import scipy.linalg.cython_blas  # noqa: F401  (loaded before the BLAS cap, as in bench_mlp)

    scratch = tempfile.mkdtemp(prefix="ab_mlp_")
    sys.path.insert(0, scratch)
    sys.path.append(os.path.abspath(args.trees[0]))
    runs = []
    for i, tree in enumerate(args.trees):
        fs, nn, optim = load(tree, f"fs{i}", scratch)
        fs.set_num_threads(args.threads)
        net = nn.MLP(rng=0, n_threads=args.threads)
        opt = optim.Adam(net.params, step_size=1e-4, n_threads=args.threads)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((args.batch, net.widths[0])).astype(np.float32)
        target = rng.standard_normal((args.batch, net.widths[-1])).astype(np.float32)
        runs.append((net, opt, x, target, np.empty_like(target), np.empty_like(target)))
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    inv = np.float32(1.0 / args.batch)

    def block(run, n):
        net, opt, x, target, y, r = run
        times = []
        for _ in range(n):
            t0 = clock()
            net.forward(x, out=y)
            t1 = clock()
            np.subtract(y, target, out=r)
            np.multiply(r, inv, out=r)
            t2 = clock()
            net.backward(r)
            t3 = clock()
            opt.step(net.grad)
            t4 = clock()
            times.append((t1 - t0, t3 - t2, t4 - t3, t4 - t0))
        return np.median(np.array(times[2:]), axis=0)

    for run in runs:
        block(run, 20)
    per = [[], []]
    for b in range(args.blocks):
        for i in ((0, 1) if b % 2 == 0 else (1, 0)):
            per[i].append(block(runs[i], args.per_block))
    per = np.array(per) * 1e3                       # (2, blocks, parts) ms
    for tree, values in zip(args.trees, per):
        print(f"{tree}: " + ", ".join(f"{p} {v:.3f}" for p, v in
                                      zip(PARTS, np.median(values, axis=0))) + " ms")
    q = np.percentile(per[1] / per[0], [25, 50, 75], axis=0)
    print("B / A, median [quartiles]: " + ", ".join(
        f"{p} {q[1, k]:.3f} [{q[0, k]:.3f}, {q[2, k]:.3f}]" for k, p in enumerate(PARTS)))
    same = runs[0][0].params.tobytes() == runs[1][0].params.tobytes()
    print(f"same parameters after the same steps: {same}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

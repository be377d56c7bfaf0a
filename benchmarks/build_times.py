"""Build time per extension, and what each SIMD clone and KDE specialisation buys.

Two parts, both run from the repository root (they build into ``_cache/build/``, never in
place):

- ``--times``: compile each extension alone (serial, forced) and print the wall and CPU time per
  extension, then the whole parallel build (``setup.py build_ext``, as ``pip`` runs it).
- ``--variants kde|mlp``: build the extension in variants (one SIMD clone forced by
  building only that clone, or no dimension specialisation) and time the kernel of each
  variant in a fresh process, alternating variants over ``--rounds`` rounds (best time per
  variant, so a busy machine disturbs the ratios less). Prints time / reference variant.
  With ``--before TREE`` every variant is also built from another checkout (e.g. the
  kernel before a change) and timed in the same rounds: before/after from one run.
  ``--lock FILE`` holds that file lock (``flock``) during the builds only, so builds on a
  shared machine are serialised with other builds but the timing rounds do not block them.
  ``--no-build`` times the trees of an earlier run again (``_cache/build/<ext>/``).

    python benchmarks/build_times.py --times
    python benchmarks/build_times.py --variants kde --rounds 3
    python benchmarks/build_times.py --variants kde --before /tmp/old-checkout
    python benchmarks/build_times.py --variants mlp
"""

import argparse
import contextlib
import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "_cache", "build")
EXTENSIONS = ("_common", "adam", "kde", "mlp", "patches")
ALL_DIMS = "0x31E"                       # d = 1, 2, 3, 4, 8, 9

# name -> environment of the build (see setup.py)
VARIANTS = {
    "kde": {
        "v4 (all specialisations)": {"FASTSCORE_CLONE_SET": "3",
                                     "FASTSCORE_KDE_SPEC": f"{ALL_DIMS},{ALL_DIMS}"},
        "v3 forced": {"FASTSCORE_CLONE_SET": "1",
                      "FASTSCORE_KDE_SPEC": f"{ALL_DIMS},{ALL_DIMS}"},
        "baseline forced": {"FASTSCORE_CLONE_SET": "0",
                            "FASTSCORE_KDE_SPEC": f"{ALL_DIMS},{ALL_DIMS}"},
        "v4, no specialisation": {"FASTSCORE_CLONE_SET": "3", "FASTSCORE_KDE_SPEC": "0,0"},
    },
    "mlp": {
        "v4": {"FASTSCORE_CLONE_SET": "3"},
        "v3 forced": {"FASTSCORE_CLONE_SET": "1"},
        "baseline forced": {"FASTSCORE_CLONE_SET": "0"},
    },
}

KDE_CODE = r"""
import json, time, numpy as np, fastscore
from fastscore import GaussianKDE
rng = np.random.default_rng(0)
out = {}
for d in (1, 2, 3, 4, 8, 9):
    T, N = 20000, max(500, 40000 // d)
    X = rng.standard_normal((T, d)).astype(np.float32)
    Q = rng.standard_normal((N, d)).astype(np.float32)
    kde = GaussianKDE(0.1, n_threads=1).fit(X)
    for mode in ("score", "log_density"):
        f = getattr(kde, mode)
        f(Q[:64])
        best = min((lambda t0: (f(Q), time.perf_counter() - t0)[1])(time.perf_counter())
                   for _ in range(3))
        out[f"d={d} {mode}"] = N * T / best / 1e9
print(json.dumps(out))
"""

MLP_CODE = r"""
import json, time, numpy as np
from fastscore.nn import MLP
rng = np.random.default_rng(0)
out = {}
net = MLP(rng=0, n_threads=1)
x = rng.standard_normal((65536, 9)).astype(np.float32)
net.predict(x[:1024])
def best(f, k):
    return min((lambda t0: (f(), time.perf_counter() - t0)[1])(time.perf_counter())
               for _ in range(k))
out["predict 65536 (Mrow/s)"] = 65536 / best(lambda: net.predict(x), 5) / 1e6
xb = x[:512]
g = rng.standard_normal((512, 9)).astype(np.float32)
def step():
    net.forward(xb)
    net.backward(g, input_grad=True)
out["forward+backward 512 (krow/s)"] = 512 / best(step, 30) / 1e3
print(json.dumps(out))
"""


def build(env_extra, out_dir, only, root=ROOT):
    """Build the extensions `only` of the tree `root` into out_dir (forced); return
    (wall seconds, CPU seconds of the build and its compilers)."""
    env = dict(os.environ, FASTSCORE_BUILD_ONLY=",".join(only), **env_extra)
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "-b", out_dir, "-t", tmp,
                    "--force"], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def times(root):
    rows = []
    out = os.path.join(CACHE, "times")
    for name in EXTENSIONS:
        rows.append((name,) + build({"FASTSCORE_BUILD_JOBS": "1"}, out, [name], root))
        print(f"{name}: wall {rows[-1][1]:.1f} s, CPU {rows[-1][2]:.1f} s", flush=True)
    wall, cpu = build({}, out, list(EXTENSIONS), root)
    print(f"# tree {root}; CPU s = user + sys of setup.py and the compilers; on an idle "
          f"machine wall ~ CPU (serial)")
    print("| extension | wall s (serial, alone) | CPU s |\n|---|---|---|")
    for name, w, c in rows:
        print(f"| {name} | {w:.1f} | {c:.1f} |")
    print(f"| sum of the above | {sum(r[1] for r in rows):.1f} | "
          f"{sum(r[2] for r in rows):.1f} |")
    print(f"| whole build (setup.py build_ext, default jobs) | {wall:.1f} | {cpu:.1f} |")


def tree_path(ext, name):
    """Directory of the package tree of variant `name` of `ext`."""
    return os.path.join(CACHE, ext, "".join(c if c.isalnum() else "_" for c in name))


def variant_tree(name, env_extra, ext, root=ROOT):
    """A package tree whose `ext` is the variant built from the checkout `root` and whose
    other modules are that checkout's in-place build; returns (its path, the build's CPU
    seconds)."""
    tree = tree_path(ext, name)
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(os.path.join(root, "fastscore"), os.path.join(tree, "fastscore"),
                    ignore=shutil.ignore_patterns(f"{ext}.*.so", "__pycache__", "*.c"))
    return tree, build(env_extra, tree, [ext], root)[1]


@contextlib.contextmanager
def locked(path):
    """Hold the flock(1)-compatible exclusive lock on `path` (nothing if path is None)."""
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def variants(ext, rounds, before=None, lock=None, rebuild=True):
    code = KDE_CODE if ext == "kde" else MLP_CODE
    from concurrent.futures import ThreadPoolExecutor

    builds = [(name, env_extra, ROOT) for name, env_extra in VARIANTS[ext].items()]
    if before:
        builds = [b for name, env_extra, _ in builds
                  for b in ((f"{name} [before]", env_extra, before), (name, env_extra, ROOT))]
    if not rebuild:
        trees = {name: (tree_path(ext, name), float("nan")) for name, _, _ in builds}
    else:
        with locked(lock), ThreadPoolExecutor(len(VARIANTS[ext])) as pool:  # side by side
            jobs = {name: pool.submit(variant_tree, name, env_extra, ext, root)
                    for name, env_extra, root in builds}
            trees = {name: job.result() for name, job in jobs.items()}
    for name, (_, cpu) in trees.items() if rebuild else ():
        print(f"built {ext} variant {name!r}: {cpu:.1f} CPU s (concurrent builds: "
              f"the CPU time of each is not separable)", flush=True)
    best = {}
    for _ in range(rounds):
        for name, (tree, _) in trees.items():
            env = dict(os.environ, PYTHONPATH=tree)
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True, cwd=CACHE)
            got = json.loads(res.stdout)
            keep = best.setdefault(name, {})
            for key, rate in got.items():
                keep[key] = max(keep.get(key, 0.0), rate)
    names = list(trees)
    keys = list(best[names[0]])
    print(f"\n{ext}: rate of each variant (higher is faster; 1 thread, best of "
          f"{rounds} rounds) and rate / first variant")
    print("| case | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for key in keys:
        ref = best[names[0]][key]
        cells = [f"{best[n][key]:.3f} ({best[n][key] / ref:.2f})" for n in names]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print("| build CPU s | " + " | ".join(f"{trees[n][1]:.1f}" for n in names) + " |")
    if before:
        after = [n for n in names if not n.endswith(" [before]")]
        print(f"\n{ext}: after / before, same rounds (before: {before})")
        print("| case | " + " | ".join(after) + " |")
        print("|---" * (len(after) + 1) + "|")
        for key in keys:
            cells = [f"{best[n][key] / best[n + ' [before]'][key]:.2f}" for n in after]
            print(f"| {key} | " + " | ".join(cells) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--times", action="store_true")
    p.add_argument("--variants", choices=sorted(VARIANTS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--root", default=ROOT, help="tree to time (--times; default: this one)")
    p.add_argument("--no-build", action="store_true",
                   help="--variants: time the trees built by an earlier run")
    p.add_argument("--lock", help="--variants: hold this file lock (flock) while building")
    p.add_argument("--before", help="--variants: also build each variant from this checkout "
                   "(with its in-place build) and time both in the same rounds")
    args = p.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    if args.times:
        times(os.path.abspath(args.root))
    if args.variants:
        variants(args.variants, args.rounds,
                 os.path.abspath(args.before) if args.before else None, args.lock,
                 not args.no_build)


if __name__ == "__main__":
    main()

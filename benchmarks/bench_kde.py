"""Gaussian-KDE score: fastscore against NumPy, numba and torch implementations.

For each case (d, T training points, N queries, bandwidth 0.1, standard-normal data) and
thread count, prints the time of one ``score(Q)``, the pair evaluations per second
(N·T / time), the maximum relative score error against a float64 reference
(``tests/reference/kde.py`` on the same data, first ``--n-check`` queries;
error = max_i |s_i - r_i| / max(|r_i|, 1/σ)) and the ratio contender time / fastscore
time from the same run (> 1: fastscore is faster). Contenders:

- numpy GEMM: chunks of queries, exponents ``(2 q·x - |x|²) / (2σ²)`` from one GEMM
  (BLAS threads capped by threadpoolctl), a stable softmax (row max subtracted) and a second
  GEMM for ``Σ w x``; the elementwise part is single-threaded. "clamped": exponents below
  -87 (relative to the row max) are set to -inf before ``np.exp``, so those weights are
  exactly 0 and no denormal arithmetic happens in ``exp`` or in the second GEMM (raising
  them to -87 instead would leave weights ~1e-38 whose products with x are denormal).
- numba: ``@njit(parallel=True, fastmath=True)``, ``prange`` over queries, two passes over
  the training points (maximum, then sums); "clamped" skips terms below -87.
- torch (when installed): ``cdist``-style chunks (``addmm`` of the norms and the Gram
  matrix), ``softmax``, ``mm``; "clamped": exponents raised to -87 with torch's
  flush-denormal mode on (the fastest torch variant measured).

Slow contenders are timed on the first ``n`` queries only, n chosen so that one run takes
about 2 s (the rate N·T/time does not depend on N here); the column "queries" says how
many. Every time is the best of several runs (3 to 5), so a busy machine disturbs the
ratios less.

    python benchmarks/bench_kde.py                 # the cases of the issue
    python benchmarks/bench_kde.py --quick         # small sizes, for CI
    python benchmarks/bench_kde.py --dtype float64
    python benchmarks/bench_kde.py --against OLD.so   # this kernel against another build

``--against`` times this tree's kernel and the KDE extension file of an earlier build (main's
``fastscore/_ext/kde*.so`` copied aside; the packed layout before group boxes) on one
thread, alternating in one process, by thread CPU time (median of ``--rounds``), d = 9,
T = 20 000, at σ = 0.1, 0.2, 0.5 and 3: ratios that a busy machine disturbs little.
"""

import os
import sys
import time

import numpy as np

from _timing import Table, header, measure, parser, try_import

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from reference.kde import kde_score_log_density, relative_score_error  # noqa: E402

import fastscore  # noqa: E402
from fastscore import GaussianKDE  # noqa: E402

CLAMP = -87.0          # exp(-87) ~ 1.6e-38: the smallest normal float32 is 1.2e-38
BANDWIDTH = 0.1


# -- contenders --------------------------------------------------------------------------
def numpy_kde(X, Q, sigma, clamp=False, chunk_elems=4_000_000):
    """Chunked GEMM + stable softmax; returns the score (N, d) in X's dtype."""
    dtype = X.dtype
    a = dtype.type(1.0 / (sigma * sigma))
    half_sq = (0.5 * a) * np.einsum("tk,tk->t", X, X)
    out = np.empty(Q.shape, dtype=dtype)
    chunk = max(1, chunk_elems // X.shape[0])
    for i0 in range(0, Q.shape[0], chunk):
        q = Q[i0:i0 + chunk]
        e = q @ X.T                          # (n, T) Gram matrix
        e *= a
        e -= half_sq                         # exponent + |q|^2 / (2 sigma^2) (cancels)
        e -= e.max(axis=1, keepdims=True)
        if clamp:                            # exactly zero weight, never a denormal one
            np.copyto(e, dtype.type(-np.inf), where=e < dtype.type(CLAMP))
        np.exp(e, out=e)
        s0 = e.sum(axis=1, keepdims=True)
        out[i0:i0 + chunk] = (e @ X / s0 - q) * a
    return out


def make_numba_kde(numba):
    @numba.njit(inline="always", fastmath=True)
    def dist2(X, t, q):
        d2 = X[t, 0] - X[t, 0]               # a zero of the data dtype
        for k in range(q.shape[0]):
            diff = X[t, k] - q[k]
            d2 += diff * diff
        return d2

    @numba.njit(parallel=True, fastmath=True)
    def kernel(X, Q, inv_two_s2, clamp, out):
        n_queries, dim = Q.shape
        n_points = X.shape[0]
        for i in numba.prange(n_queries):
            q = Q[i]
            best = -dist2(X, 0, q) * inv_two_s2
            for t in range(1, n_points):
                e = -dist2(X, t, q) * inv_two_s2
                if e > best:
                    best = e
            s0 = 0.0
            acc = np.zeros(dim, dtype=np.float64)
            for t in range(n_points):
                e = -dist2(X, t, q) * inv_two_s2 - best
                if clamp and e < CLAMP:
                    continue
                w = np.exp(e)
                s0 += w
                for k in range(dim):
                    acc[k] += w * (X[t, k] - q[k])
            for k in range(dim):
                out[i, k] = acc[k] / s0 * (2.0 * inv_two_s2)

    def run(X, Q, sigma, clamp=False):
        out = np.empty(Q.shape, dtype=X.dtype)
        kernel(X, Q, X.dtype.type(0.5 / (sigma * sigma)), clamp, out)
        return out

    return run


def make_torch_kde(torch):
    def run(X, Q, sigma, clamp=False, chunk_elems=4_000_000):
        # clamped: exponents raised to -87 and torch's flush-denormal mode on (weights
        # ~1e-38 times x would be denormal in the mm); the fastest of the variants tried
        # (masking them to -inf, thresholding the weights, FTZ alone)
        if clamp:
            torch.set_flush_denormal(True)
        try:
            return _run(X, Q, sigma, clamp, chunk_elems)
        finally:
            if clamp:
                torch.set_flush_denormal(False)

    def _run(X, Q, sigma, clamp, chunk_elems):
        Xt = torch.from_numpy(X)
        Qt = torch.from_numpy(Q)
        a = 1.0 / (sigma * sigma)
        x_sq = (Xt * Xt).sum(dim=1)
        out = torch.empty_like(Qt)
        chunk = max(1, chunk_elems // X.shape[0])
        with torch.no_grad():
            for i0 in range(0, Q.shape[0], chunk):
                q = Qt[i0:i0 + chunk]
                q_sq = (q * q).sum(dim=1, keepdim=True)
                # cdist's matrix-multiply path: |q|^2 + |x|^2 - 2 q.x
                d2 = torch.addmm(q_sq + x_sq[None, :], q, Xt.T, alpha=-2.0)
                e = d2.mul_(-0.5 * a)
                if clamp:                    # no denormal arithmetic: see run()
                    e -= e.max(dim=1, keepdim=True).values
                    e.clamp_(min=CLAMP)
                    w = e.exp_()
                    w /= w.sum(dim=1, keepdim=True)
                else:
                    w = torch.softmax(e, dim=1)
                out[i0:i0 + chunk] = (w @ Xt - q) * a
        return out.numpy()

    return run


# -- driver ------------------------------------------------------------------------------
def blas_limit(n):
    threadpoolctl = try_import("threadpoolctl")
    if threadpoolctl is None:
        return None
    return threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def time_rate(fn, n_queries, budget, quick):
    """Grow the query count until one run of fn(n) costs ~budget s (at most n_queries),
    then time it: best of a few runs. Returns (n, seconds)."""
    n = min(n_queries, 256)
    fn(n)                                     # warm-up (and numba compilation)
    t0 = time.perf_counter()
    fn(n)
    sec = time.perf_counter() - t0
    while n < n_queries and sec < 0.5 * budget:
        n = min(n_queries, max(2 * n, int(n * 0.7 * budget / max(sec, 1e-6))))
        t0 = time.perf_counter()
        fn(n)
        sec = time.perf_counter() - t0
    _, best = measure(lambda: fn(n), repeat=2 if quick else 3, warmup=0)
    return n, min(sec, best)


def run_case(dim, n_points, n_queries, dtype, threads, args, contenders, table, summary):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_points, dim)).astype(dtype)
    Q = rng.standard_normal((n_queries, dim)).astype(dtype)
    n_check = min(args.n_check, n_queries)
    ref, _ = kde_score_log_density(X, Q[:n_check], BANDWIDTH, chunk=max(1, 2_000_000 // (
        n_points * dim)))
    case = f"d={dim} T={n_points} N={n_queries}"
    budget = 0.5 if args.quick else 2.0
    rows = {}
    for t in threads:
        fastscore.set_num_threads(t)
        limiter = blas_limit(t)
        kde = GaussianKDE(BANDWIDTH, n_threads=t).fit(X)
        kde.score(Q[:64])
        _, sec = measure(lambda: kde.score(Q), repeat=3 if args.quick else 5, warmup=0)
        err = relative_score_error(kde.score(Q[:n_check]), ref, BANDWIDTH)
        rows[("fastscore", t)] = (n_queries, sec, err)
        for name, fn in contenders(t):
            n, sec = time_rate(lambda n: fn(X, Q[:n]), n_queries, budget, args.quick)
            err = relative_score_error(fn(X, Q[:n_check]), ref, BANDWIDTH)
            rows[(name, t)] = (n, sec, err)
        if limiter is not None:
            limiter.restore_original_limits()
    for t in threads:
        ours = rows[("fastscore", t)][1] / rows[("fastscore", t)][0]
        best = None
        for (name, tt), (n, sec, err) in rows.items():
            if tt != t:
                continue
            per_query = sec / n
            ratio = per_query / ours
            if name != "fastscore" and (best is None or ratio < best[1]):
                best = (name, ratio)
            table.add(case, np.dtype(dtype).name, t, name, n, f"{sec * 1e3:.1f}",
                      f"{n * n_points / sec / 1e9:.3f}", f"{err:.1e}", f"{ratio:.2f}")
        if best is not None:
            summary.append(f"{case} {np.dtype(dtype).name} threads={t}: fastscore "
                           f"{n_points / ours / 1e9:.2f} Gpair/s, {best[1]:.2f}x the best "
                           f"contender ({best[0]})")


def compare_builds(path, rounds):
    """Speed-up of this tree's kernel over the extension file `path` (see the docstring)."""
    import importlib.util
    import statistics

    from fastscore._ext import kde as ours
    from fastscore.kde import _aligned_empty

    spec = importlib.util.spec_from_file_location("fastscore._ext.kde", path)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 9)).astype(np.float32)
    Q = rng.standard_normal((2_000, 9)).astype(np.float32)
    # 64-byte aligned as GaussianKDE packs it: np.zeros' alignment varies from process to
    # process, and the other kernel's speed with it (by up to ~1.3x at sigma = 0.1)
    packed = _aligned_empty((10, other.leading_dim(X.shape[0], True)), np.float32, 64)
    other.pack(X, packed)
    kde = GaussianKDE(BANDWIDTH).fit(X)
    print(f"# body: {ours.simd_clone()} (other build: {other.simd_clone()})")
    for sigma in (0.1, 0.2, 0.5, 3.0):
        q = Q if sigma < 0.3 else Q[:250]
        out = np.empty_like(q)
        runs = {
            "other": lambda: other.score(packed, X.shape[0], q, sigma, -1, out, None, True, 1),
            "ours": lambda: ours.score(kde._packed, kde._ld, X.shape[0], q, sigma, -1,
                                       kde._where, out, None, True, 1)}
        times = {name: [] for name in runs}
        for r in range(rounds):
            for name in (("other", "ours") if r % 2 == 0 else ("ours", "other")):
                t0 = time.thread_time()
                runs[name]()
                times[name].append(time.thread_time() - t0)
        a, b = (statistics.median(times[k]) for k in ("other", "ours"))
        print(f"sigma={sigma}: other {a * 1e3:.1f} ms, ours {b * 1e3:.1f} ms, "
              f"speed-up {a / b:.2f}x ({q.shape[0] * X.shape[0] / b / 1e9:.2f} Gpair/s)")


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--n-check", type=int, default=256,
                   help="queries checked against the float64 reference (default 256)")
    p.add_argument("--only", choices=["fastscore"], default=None,
                   help="time fastscore alone (profiling)")
    p.add_argument("--dims", type=int, nargs="+", default=[9, 2, 1],
                   help="cases to run, by dimension (default: 9 2 1)")
    p.add_argument("--against", metavar="SO", default=None,
                   help="time this kernel against another build's KDE extension file")
    p.add_argument("--rounds", type=int, default=15, help="runs of each (with --against)")
    args = p.parse_args()
    if args.against:
        compare_builds(args.against, args.rounds)
        return
    dtype = np.dtype(args.dtype)
    numba = try_import("numba")
    torch = try_import("torch")
    numba_kde = make_numba_kde(numba) if numba is not None else None
    torch_kde = make_torch_kde(torch) if torch is not None else None

    def contenders(t):
        if args.only:
            return []
        out = [("numpy GEMM", lambda X, Q: numpy_kde(X, Q, BANDWIDTH)),
               ("numpy GEMM clamped", lambda X, Q: numpy_kde(X, Q, BANDWIDTH, clamp=True))]
        if numba_kde is not None:
            numba.set_num_threads(t)
            out += [("numba", lambda X, Q: numba_kde(X, Q, BANDWIDTH)),
                    ("numba clamped", lambda X, Q: numba_kde(X, Q, BANDWIDTH, clamp=True))]
        if torch_kde is not None:
            torch.set_num_threads(t)
            out += [("torch cdist", lambda X, Q: torch_kde(X, Q, BANDWIDTH)),
                    ("torch cdist clamped",
                     lambda X, Q: torch_kde(X, Q, BANDWIDTH, clamp=True))]
        return out

    if args.quick:
        cases = [(9, 20_000, 2_000), (2, 20_000, 20_000), (1, 20_000, 20_000)]
    else:
        cases = [(9, 100_000, 10_000), (2, 100_000, 100_000), (1, 100_000, 100_000)]
    print(header(f"Gaussian-KDE score, {dtype.name}, bandwidth {BANDWIDTH}, "
                 "standard-normal data",
                 threads=args.threads,
                 numba=getattr(numba, "__version__", "not installed"),
                 torch=getattr(torch, "__version__", "not installed"),
                 error="max_i |s_i - r_i| / max(|r_i|, 1/sigma) vs float64 reference, "
                       f"first {args.n_check} queries"))
    table = Table(["case", "dtype", "threads", "contender", "queries", "ms", "Gpair/s",
                   "max rel err", "time / fastscore"])
    summary = []
    for dim, n_points, n_queries in cases:
        if dim not in args.dims:
            continue
        run_case(dim, n_points, n_queries, dtype, args.threads, args, contenders, table,
                 summary)
    print(table.render())
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()

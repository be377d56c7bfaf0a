"""Benchmark of the patch score network (fastscore.nn.MLP), default 3x3 architecture.

Cases (float32, the same thread count for every contender, ratios from the same run):

- forward throughput (patches/s) on a batch of 65 536 patches; contenders may chunk it
  (each gets its best chunk of a few; fastscore takes the whole batch in one call);
- training step = forward + residual + backward + Adam at batch 512 and 4096;
- concurrent throughput: 1 and 2 Python threads calling ``predict`` on one shared MLP
  against one MLP per thread (the thread-safety cost; workspaces are per thread).

Contenders: fastscore (compiled tiles over its packed micro-kernel, or scipy's BLAS where
the SIMD level has none - the header says which; Adam = fastscore.optim.Adam when
present, else a NumPy Adam over the flat buffer - the table says which); a clean
vectorised NumPy implementation (numpy's BLAS, flat-buffer NumPy Adam); PyTorch CPU
(torch.nn.Sequential + torch.optim.Adam(fused=True), torch.set_num_threads matched) when
installed. Threads: fastscore.set_num_threads(n) caps both OpenBLAS copies (numpy's and
scipy's, via threadpoolctl), torch.set_num_threads(n) sets torch's.

Also printed: achieved GFLOP/s against the measured 2048^2 sgemm peak (through
scipy.linalg.blas.sgemm = scipy's OpenBLAS, the library fastscore calls, and through numpy
matmul = numpy's OpenBLAS), and where fastscore's time goes per layer (GEMM vs elementwise)
plus the time outside the kernels (Python, validation, threading), from the kernels'
profile (compiled in only by a build with FASTSCORE_MLP_PROFILE=1; otherwise skipped).

The machine may be shared: contenders are timed round-robin (one call each, repeated) so
they see the same load, and the minimum is reported. ``--wait-idle`` waits for the other
processes to go quiet before each thread count.

Run: python benchmarks/bench_mlp.py [--quick] [--threads 1 2] [--wait-idle]
"""

import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import Table, header, parser, try_import  # noqa: E402

import fastscore  # noqa: E402
from fastscore.nn import DEFAULT_WIDTHS, MLP  # noqa: E402

WIDTHS = DEFAULT_WIDTHS
ACTS = ("leaky_relu",) * 5 + ("tanh",) * 3 + ("identity",)
SLOPE = 0.01
FWD_FLOP = 2 * sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(len(WIDTHS) - 1))
# backward: dW for every layer, dX for every layer but the first
BWD_FLOP = FWD_FLOP + 2 * sum(WIDTHS[i] * WIDTHS[i + 1] for i in range(1, len(WIDTHS) - 1))
TRAIN_FLOP = FWD_FLOP + BWD_FLOP
LR, BETAS, EPS = 1e-4, (0.9, 0.999), 1e-8


# ------------------------------------------------------------------- contenders


class NumpyAdam:
    """Adam over a flat buffer in NumPy (in-place array expressions)."""

    def __init__(self, params):
        self.params = params
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.t = 0
        self.tmp = np.empty_like(params)

    def step(self, grad):
        b1, b2 = BETAS
        self.t += 1
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        np.multiply(grad, grad, out=self.tmp)
        self.tmp *= 1 - b2
        self.v += self.tmp
        c1 = 1 - b1 ** self.t
        c2 = 1 - b2 ** self.t
        np.sqrt(self.v, out=self.tmp)
        self.tmp *= 1 / math.sqrt(c2)
        self.tmp += EPS
        np.divide(self.m, self.tmp, out=self.tmp)
        self.tmp *= LR / c1
        self.params -= self.tmp


class NumpyMLP:
    """Clean vectorised NumPy MLP with the same flat layout as fastscore's."""

    def __init__(self, params):
        self.params = params.copy()
        self.grad = np.zeros_like(self.params)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        k = 0
        for i in range(len(WIDTHS) - 1):
            n = WIDTHS[i] * WIDTHS[i + 1]
            self.W.append(self.params[k:k + n].reshape(WIDTHS[i], WIDTHS[i + 1]))
            self.gW.append(self.grad[k:k + n].reshape(WIDTHS[i], WIDTHS[i + 1]))
            k += n
            self.b.append(self.params[k:k + WIDTHS[i + 1]])
            self.gb.append(self.grad[k:k + WIDTHS[i + 1]])
            k += WIDTHS[i + 1]
        self.cache = []

    def forward(self, x, keep=True):
        self.cache = []
        a = x
        for W, b, act in zip(self.W, self.b, ACTS):
            z = a @ W
            z += b
            d = None
            if act == "leaky_relu":
                d = np.where(z > 0, np.float32(1), np.float32(SLOPE))
                z *= d
            elif act == "tanh":
                np.tanh(z, out=z)
            if keep:
                self.cache.append((a, z, d))
            a = z
        return a

    def backward(self, g):
        for l in range(len(self.W) - 1, -1, -1):
            a_prev, out, d = self.cache[l]
            if ACTS[l] == "leaky_relu":
                g = g * d
            elif ACTS[l] == "tanh":
                g = g * (1 - out * out)
            np.matmul(a_prev.T, g, out=self.gW[l])
            np.sum(g, axis=0, out=self.gb[l])
            if l:
                g = g @ self.W[l].T


def torch_model(torch, params):
    layers = []
    k = 0
    for i in range(len(WIDTHS) - 1):
        lin = torch.nn.Linear(WIDTHS[i], WIDTHS[i + 1])
        n = WIDTHS[i] * WIDTHS[i + 1]
        W = params[k:k + n].reshape(WIDTHS[i], WIDTHS[i + 1])
        k += n
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(params[k:k + WIDTHS[i + 1]].copy()))
        k += WIDTHS[i + 1]
        layers.append(lin)
        if ACTS[i] == "leaky_relu":
            layers.append(torch.nn.LeakyReLU(SLOPE))
        elif ACTS[i] == "tanh":
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


# --------------------------------------------------------------------- timing


#: seconds of rest before each contender's block when several threads run: a BLAS or
#: OpenMP pool keeps its idle threads spinning for a while after a call (OpenBLAS ~0.1 s,
#: Intel OpenMP 0.2 s), and the next contender's threads would share the cores with them
#: (measured: numpy's 2-thread sgemm right after scipy's ran at 194 instead of 388 GFLOP/s)
SETTLE = 0.0


def round_robin(fns, repeat, min_time=0.0, block=0.05):
    """{name: min seconds of one call}: each round runs every contender for a block of
    calls (>= `block` seconds, at least one call) after `SETTLE` seconds of rest, so all
    see the same machine load; at least `repeat` rounds and `min_time` seconds in all."""
    for fn in fns.values():
        fn()
    best = {k: math.inf for k in fns}
    spent = 0.0
    rounds = 0
    while rounds < repeat or spent < min_time:
        for k, fn in fns.items():
            if SETTLE:
                time.sleep(SETTLE)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                best[k] = min(best[k], t1 - t0)
                if t1 - start >= block:
                    break
            spent += t1 - start
        rounds += 1
        if rounds > 500:
            break
    return best


def busy_fraction(dt=0.5):
    """CPU share used by the whole machine over `dt` seconds (0 idle .. 1 all cores)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    try:
        i0, t0 = read()
        time.sleep(dt)
        i1, t1 = read()
    except OSError:
        return float("nan")
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_idle(limit=0.1, max_wait=600):
    start = time.time()
    while busy_fraction() > limit and time.time() - start < max_wait:
        time.sleep(3)


def sgemm_peaks(n, repeat):
    """2048^2 sgemm GFLOP/s through scipy's and numpy's BLAS."""
    import scipy.linalg.blas as sblas

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    af, bf = np.asfortranarray(a), np.asfortranarray(b)
    c = np.empty((n, n), np.float32)
    best = round_robin({"scipy": lambda: sblas.sgemm(1.0, af, bf),
                        "numpy": lambda: np.matmul(a, b, out=c)}, repeat)
    return {k: 2 * n ** 3 / t / 1e9 for k, t in best.items()}


# ------------------------------------------------------------------------ cases


def blas_twin(net):
    """The same network with its layer products through BLAS (no packed micro-kernel):
    the same-run reference of the packed kernel's gain; None if net has no pack."""
    if not net._pack_size:
        return None
    twin = net.copy()
    twin._pack_size = 0
    return twin


def forward_cases(n_threads, fs_net, np_net, tnet, torch, x, chunks, repeat):
    n = x.shape[0]
    out = np.empty((n, WIDTHS[-1]), np.float32)
    fns = {"fastscore": lambda: fs_net.predict(x, out=out)}
    fs_blas = blas_twin(fs_net)
    if fs_blas is not None:
        fns["fastscore, BLAS"] = lambda: fs_blas.predict(x, out=out)
    for c in chunks:
        def run_np(c=c):
            for i in range(0, n, c):
                out[i:i + c] = np_net.forward(x[i:i + c], keep=False)
        fns[f"numpy/{c}"] = run_np
    if torch is not None:
        xt = torch.from_numpy(x)
        for c in chunks:
            def run_torch(c=c):
                with torch.inference_mode():
                    for i in range(0, n, c):
                        tnet(xt[i:i + c])
            fns[f"torch/{c}"] = run_torch
    best = round_robin(fns, repeat)
    result = {k: (best[k], "1 call") for k in ("fastscore", "fastscore, BLAS") if k in best}
    for name in ("numpy", "torch"):
        opts = {k: v for k, v in best.items() if k.startswith(name + "/")}
        if opts:
            k = min(opts, key=opts.get)
            result[name] = (opts[k], f"chunks of {k.split('/')[1]}")
    return result


def train_cases(batch, fs_net, fs_opt, np_net, np_opt, tnet, topt, torch, repeat, min_time):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, WIDTHS[0])).astype(np.float32)
    target = rng.standard_normal((batch, WIDTHS[-1])).astype(np.float32)
    y = np.empty_like(target)
    r = np.empty_like(target)
    inv = np.float32(1.0 / batch)

    def fastscore_step(net, opt):
        def step():
            net.forward(x, out=y)
            np.subtract(y, target, out=r)
            np.multiply(r, inv, out=r)
            net.backward(r)
            opt.step(net.grad)
        return step

    fs_blas = blas_twin(fs_net)
    fs_blas_opt = None
    if fs_blas is not None:
        fs_blas_opt = (NumpyAdam(fs_blas.params) if isinstance(fs_opt, NumpyAdam) else
                       type(fs_opt)(fs_blas.params, step_size=LR, betas=BETAS, eps=EPS))

    def np_step():
        out = np_net.forward(x)
        g = (out - target) * inv
        np_net.backward(g)
        np_opt.step(np_net.grad)

    fns = {"fastscore": fastscore_step(fs_net, fs_opt), "numpy": np_step}
    if fs_blas is not None:
        fns["fastscore, BLAS"] = fastscore_step(fs_blas, fs_blas_opt)
    if torch is not None:
        xt, tt = torch.from_numpy(x), torch.from_numpy(target)

        def torch_step():
            topt.zero_grad(set_to_none=False)
            out = tnet(xt)
            loss = 0.5 * ((out - tt) ** 2).sum() / batch
            loss.backward()
            topt.step()
        fns["torch"] = torch_step
    best = round_robin(fns, repeat, min_time)
    return {k: (v, "") for k, v in best.items()}


def profile_fastscore(net, x, batch, n_threads, repeat):
    """Per-layer GEMM / elementwise seconds (per call, averaged over threads) and the time
    outside the kernels, for predict on x and for forward+backward at `batch`; None when
    the kernels were built without their timers (FASTSCORE_MLP_PROFILE=1 builds them in)."""
    from fastscore._ext import mlp as kern

    if not kern.PROFILE_ENABLED:
        return None
    L = len(WIDTHS) - 1
    rows = {}
    xb = x[:batch].copy()
    yb = np.empty((batch, WIDTHS[-1]), np.float32)
    out = np.empty((x.shape[0], WIDTHS[-1]), np.float32)
    for case, fn in (("forward", lambda: net.predict(x, out=out)),
                     ("train", lambda: (net.forward(xb, out=yb), net.backward(yb)))):
        fn()
        prof = np.zeros(n_threads * kern.PROFILE_PHASES * L)
        net._net.set_profile(prof)
        wall = 0.0
        try:
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                wall += time.perf_counter() - t0
        finally:
            net._net.set_profile(None)
        p = prof.reshape(n_threads, kern.PROFILE_PHASES, L) / repeat
        rows[case] = {"per_layer": p[:, :4, :].mean(axis=0),       # (4 phases, L)
                      "busy": p[:, 4, 0],                           # per thread
                      "wall": wall / repeat}
    return rows


# ------------------------------------------------------------------------- main


def concurrent_throughput(x, n_python, repeat, calls=4):
    """Patches/s of `n_python` Python threads each predicting its own batch `calls` times,
    all sharing one MLP or each with its own (same weights; kernels on one thread each).
    Returns {"shared": s, "separate": s}, seconds per round (min over rounds)."""
    import threading

    base = MLP(rng=0, n_threads=1)
    models = {"shared": [base] * n_python,
              "separate": [base] + [base.copy() for _ in range(n_python - 1)]}
    batches = [np.ascontiguousarray(x[k::n_python]) for k in range(n_python)]
    best = {}
    for name, nets in models.items():
        for net, b in zip(nets, batches):
            net.predict(b)                      # warm-up: workspaces of every thread
        times = []
        for _ in range(repeat):
            start = threading.Barrier(n_python + 1)

            def work(net, b, start):
                start.wait()
                for _ in range(calls):
                    net.predict(b)

            threads = [threading.Thread(target=work, args=(net, b, start))
                       for net, b in zip(nets, batches)]
            for t in threads:
                t.start()
            t0 = time.perf_counter()
            start.wait()
            for t in threads:
                t.join()
            times.append(time.perf_counter() - t0)
        best[name] = min(times)
    return best


def main():
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=None, help="rounds per case")
    p.add_argument("--wait-idle", action="store_true",
                   help="wait for other processes to go quiet before each thread count")
    args = p.parse_args()
    quick = args.quick
    repeat = args.repeat or (3 if quick else 15)
    n_fwd = 8192 if quick else 65536
    batches = (512,) if quick else (512, 4096)
    chunks = (4096,) if quick else (4096, 16384)

    torch = try_import("torch")
    try:
        from fastscore.optim import Adam
        adam_name = "fastscore.optim.Adam"
    except ImportError:
        Adam = None
        adam_name = "NumPy Adam over the flat buffer (fastscore.optim not available)"
    threadpoolctl = try_import("threadpoolctl")
    import scipy.linalg.cython_blas  # noqa: F401  (load scipy's BLAS to list it below)

    print(header("bench_mlp: patch score MLP (default 3x3 architecture), float32",
                 widths=WIDTHS, activations="leaky_relu x5, tanh x3, identity",
                 flop_per_patch=f"forward {FWD_FLOP / 1e6:.3f} MFLOP, train step "
                                f"{TRAIN_FLOP / 1e6:.3f} MFLOP",
                 torch=getattr(torch, "__version__", "not installed"),
                 fastscore_adam=adam_name,
                 fastscore_layer_products=MLP((9, 9))._products(),
                 threadpoolctl=getattr(threadpoolctl, "__version__", "not installed")))
    if threadpoolctl is not None:
        for lib in threadpoolctl.threadpool_info():
            if lib.get("user_api") == "blas":
                print(f"# BLAS: {lib.get('internal_api')} {lib.get('version')} "
                      f"{lib.get('architecture')} ({os.path.basename(lib['filepath'])})")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_fwd, WIDTHS[0])).astype(np.float32)
    base = MLP(rng=0)
    base_params = base.params.copy()

    table = Table(["case", "threads", "contender", "ms", "patches/s", "GFLOP/s",
                   "% sgemm peak", "vs fastscore", "note"])
    breakdown = []
    peaks_seen = {}
    raw_rows = []
    for n_threads in args.threads:
        if args.wait_idle:
            wait_idle()
        load = busy_fraction()
        global SETTLE
        SETTLE = 0.25 if n_threads > 1 else 0.0
        fastscore.set_num_threads(n_threads)
        if torch is not None:
            torch.set_num_threads(n_threads)
        peaks = sgemm_peaks(2048, 3 if quick else 5)

        fs_net = MLP(rng=0, n_threads=n_threads)
        np_net = NumpyMLP(base_params)
        tnet = torch_model(torch, base_params) if torch is not None else None
        # outputs agree (sanity)
        y_fs = fs_net.predict(x[:1000])
        y_np = np_net.forward(x[:1000], keep=False)
        diffs = [np.abs(y_fs - y_np).max()]
        if torch is not None:
            with torch.inference_mode():
                diffs.append(np.abs(tnet(torch.from_numpy(x[:1000])).numpy() - y_fs).max())

        def add_rows(case, flop, n_rows, res):
            ref_t = res["fastscore"][0]
            for name, (t, note) in res.items():
                raw_rows.append((case, n_threads, name, t, ref_t, flop, n_rows, note))

        res = forward_cases(n_threads, fs_net, np_net, tnet, torch, x, chunks, repeat)
        add_rows(f"forward {n_fwd}", FWD_FLOP, n_fwd, res)
        for batch in batches:
            fs_net.params[...] = base_params
            np_net.params[...] = base_params
            fs_opt = Adam(fs_net.params, step_size=LR, betas=BETAS, eps=EPS,
                          n_threads=n_threads) if Adam else NumpyAdam(fs_net.params)
            np_opt = NumpyAdam(np_net.params)
            topt = None
            if torch is not None:
                tnet = torch_model(torch, base_params)
                topt = torch.optim.Adam(tnet.parameters(), lr=LR, betas=BETAS, eps=EPS,
                                        fused=True)
            res = train_cases(batch, fs_net, fs_opt, np_net, np_opt, tnet, topt, torch,
                              repeat * 3, 0.5 if quick else 2.0)
            add_rows(f"train step {batch}", TRAIN_FLOP, batch, res)
        breakdown.append((n_threads, profile_fastscore(fs_net, x, batches[0], n_threads,
                                                       3 if quick else 10), diffs))
        # the peak again after the cases: under a varying load keep the better estimate
        again = sgemm_peaks(2048, 3 if quick else 5)
        peaks_seen[n_threads] = ({k: max(v, again[k]) for k, v in peaks.items()}, load,
                                 busy_fraction())

    print()
    for n_threads, (peaks, load, load_after) in peaks_seen.items():
        print(f"# {n_threads} thread(s): sgemm 2048^2 peak {peaks['scipy']:.0f} GFLOP/s "
              f"through scipy.linalg.blas.sgemm (scipy's OpenBLAS, used by fastscore), "
              f"{peaks['numpy']:.0f} through numpy matmul (numpy's OpenBLAS), best of "
              f"before and after the cases; whole machine busy {load:.0%} before and "
              f"{load_after:.0%} after (other processes included)")
    print("# '% sgemm peak' uses the scipy figure; ratios 'vs fastscore' are time / "
          "fastscore time (> 1: fastscore faster)")
    for case, n_threads, name, t, ref_t, flop, n_rows, note in raw_rows:
        rate = n_rows / t
        gf = flop * rate / 1e9
        peak = peaks_seen[n_threads][0]["scipy"]
        table.add(case, n_threads, name, f"{t * 1e3:.2f}", f"{rate:,.0f}", f"{gf:.0f}",
                  f"{100 * gf / peak:.0f}%",
                  f"{t / ref_t:.2f}x" if name != "fastscore" else "1", note)
    print()
    print(table.render())

    L = len(WIDTHS) - 1
    for n_threads, prof, diffs in breakdown:
        print()
        print(f"## where fastscore's time goes, {n_threads} thread(s) "
              f"(max |y - y_numpy| {diffs[0]:.1e}"
              + (f", |y - y_torch| {diffs[1]:.1e})" if len(diffs) > 1 else ")"))
        if prof is None:
            print("(per-layer profile not built in: rebuild the mlp extension with "
                  "FASTSCORE_MLP_PROFILE=1 to see it)")
            continue
        for case, info in prof.items():
            per = info["per_layer"] * 1e3
            busy = info["busy"].max() * 1e3
            wall = info["wall"] * 1e3
            t = Table(["layer", "shape", "fwd GEMM ms", "fwd elementwise ms",
                       "bwd GEMM ms", "bwd elementwise ms", "GEMM GFLOP/s/thread"])
            rows_per_call = n_fwd if case == "forward" else batches[0]
            for l in range(L):
                k, m = WIDTHS[l], WIDTHS[l + 1]
                gemm_flop = 2 * k * m * rows_per_call / n_threads
                gemm_t = per[0, l] + (per[2, l] if case == "train" else 0.0)
                n_gemm = 1 + (0 if case == "forward" else (1 if l == 0 else 2))
                gf = n_gemm * gemm_flop / (gemm_t / 1e3) / 1e9 if gemm_t else 0.0
                t.add(l + 1, f"{k}->{m}", f"{per[0, l]:.3f}", f"{per[1, l]:.3f}",
                      f"{per[2, l]:.3f}" if case == "train" else "-",
                      f"{per[3, l]:.3f}" if case == "train" else "-", f"{gf:.0f}")
            gemm = per[0].sum() + per[2].sum()
            elem = per[1].sum() + per[3].sum()
            t.add("all", "", f"{per[0].sum():.3f}", f"{per[1].sum():.3f}",
                  f"{per[2].sum():.3f}" if case == "train" else "-",
                  f"{per[3].sum():.3f}" if case == "train" else "-", "")
            label = (f"predict {n_fwd}" if case == "forward"
                     else f"forward+backward {batches[0]} (no Adam)")
            print(f"### {label}: wall {wall:.3f} ms per call; per thread: GEMM "
                  f"{gemm:.3f} ms ({100 * gemm / wall:.0f}%), elementwise {elem:.3f} ms "
                  f"({100 * elem / wall:.0f}%), other work in the kernel (copies, gradient "
                  f"reduction, load imbalance) {busy - gemm - elem:.3f} ms, outside the "
                  f"kernels (Python, validation, thread start-up) {wall - busy:.3f} ms")
            print(t.render())

    # concurrency: one model shared by Python threads (per-thread workspaces, no lock)
    # against one model per thread; the kernels run on one OpenMP thread each
    print()
    print("## concurrent throughput: Python threads calling predict on their own batches "
          f"({n_fwd} patches split between them, 4 calls each per round; kernels on 1 "
          "thread each)")
    t = Table(["python threads", "models", "ms per round", "patches/s", "vs separate"])
    for n_python in (1, 2):
        res = concurrent_throughput(x, n_python, repeat)
        for name in ("shared", "separate") if n_python > 1 else ("shared",):
            rate = 4 * n_fwd / res[name]
            t.add(n_python, "one shared" if name == "shared" else "one per thread",
                  f"{res[name] * 1e3:.1f}", f"{rate:,.0f}",
                  f"{res[name] / res['separate']:.2f}x" if n_python > 1 else "-")
    print(t.render())


if __name__ == "__main__":
    main()

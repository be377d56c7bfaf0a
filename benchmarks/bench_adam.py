"""Adam step on a flat parameter buffer: fastscore against NumPy and PyTorch.

One optimiser step (moments + parameter update, AdamW form, weight decay 0.01) on the flat
buffer of the default 3x3 patch MLP (widths 9-40-80-160-320-320-160-80-40-9, 238 729
parameters) and on a 10 M buffer, float32 (and float64 with ``--dtype float64``), for 1
and 2 threads. Contenders:

- fastscore ``Adam`` (one fused compiled pass, OpenMP + SIMD);
- a clean vectorised NumPy step (in-place ufuncs into preallocated scratch; NumPy's
  elementwise ufuncs are single-threaded, so its time does not change with threads);
- ``torch.optim.Adam(fused=True)``, ``foreach=True`` and the single-tensor loop
  (``foreach=False``) on the same flat buffer as one tensor, plus ``foreach=True`` on the
  MLP's 18 per-layer tensors (how a torch model holds them), when torch is installed;
  ``torch.set_num_threads`` is set to the same thread count.

The effective bandwidth counts 7 streams (read parameters, gradient, m, v; write parameters,
m, v). Contenders are timed in interleaved rounds (each round times every contender once,
a batch of calls of about 2 ms), so load from elsewhere on the machine hits them alike;
median and best per-call times are printed. Ratio = contender time / fastscore time from
the same run (> 1: fastscore faster).

    python benchmarks/bench_adam.py            # full sweep
    python benchmarks/bench_adam.py --quick    # small sizes, for CI
"""

import math
import statistics
import time

import numpy as np
from _timing import Table, header, parser, try_import

from fastscore.optim import Adam

WIDTHS = (9, 40, 80, 160, 320, 320, 160, 80, 40, 9)
LAYER_SHAPES = [s for a, b in zip(WIDTHS, WIDTHS[1:]) for s in ((b, a), (b,))]
MLP_PARAMS = sum(math.prod(s) for s in LAYER_SHAPES)
LR, BETAS, EPS, WD = 1e-4, (0.9, 0.999), 1e-8, 0.01


class NumpyAdamW:
    """AdamW with in-place ufuncs and preallocated scratch (what a careful NumPy user writes)."""

    def __init__(self, p):
        self.p = p
        self.m = np.zeros_like(p)
        self.v = np.zeros_like(p)
        self.tmp = np.empty_like(p)
        self.t = 0

    def step(self, g):
        T = self.p.dtype.type
        b1, b2 = BETAS
        self.t += 1
        step_size = T(LR / (1 - b1 ** self.t))
        isb = T(1 / math.sqrt(1 - b2 ** self.t))
        m, v, tmp, p = self.m, self.v, self.tmp, self.p
        m *= T(b1)
        np.multiply(g, T(1 - b1), out=tmp)
        m += tmp
        v *= T(b2)
        np.multiply(g, g, out=tmp)
        tmp *= T(1 - b2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= isb
        tmp += T(EPS)
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        p *= T(1 - LR * WD)
        p -= tmp


def torch_contenders(torch, start, grad, n_threads):
    """name -> step function for each torch variant on copies of `start`."""
    torch.set_num_threads(n_threads)
    out = {}
    variants = [("torch fused", {"fused": True}), ("torch foreach", {"foreach": True}),
                ("torch for-loop", {"foreach": False})]
    for name, kw in variants:
        p = torch.nn.Parameter(torch.from_numpy(start.copy()))
        p.grad = torch.from_numpy(grad.copy())
        try:
            opt = torch.optim.AdamW([p], lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, **kw)
            opt.step()
        except (RuntimeError, TypeError, ValueError) as exc:  # e.g. fused unsupported
            out[name] = exc
            continue
        out[name] = opt.step
    if start.size == MLP_PARAMS:
        params, offset = [], 0
        for shape in LAYER_SHAPES:
            k = math.prod(shape)
            q = torch.nn.Parameter(torch.from_numpy(start[offset:offset + k].reshape(shape)
                                                    .copy()))
            q.grad = torch.from_numpy(grad[offset:offset + k].reshape(shape).copy())
            params.append(q)
            offset += k
        opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD,
                                foreach=True)
        opt.step()
        out["torch foreach, 18 tensors"] = opt.step
    return out


def check_agreement(torch, dtype):
    """fastscore and torch fused AdamW take the same steps (rounding aside)."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal(10_000).astype(dtype)
    q = torch.nn.Parameter(torch.from_numpy(p.copy()))
    opt_t = torch.optim.AdamW([q], lr=1e-2, betas=BETAS, eps=EPS, weight_decay=WD,
                              fused=True)
    opt_f = Adam(p, step_size=1e-2, betas=BETAS, eps=EPS, weight_decay=WD)
    for _ in range(20):
        g = rng.standard_normal(p.size).astype(dtype)
        q.grad = torch.from_numpy(g.copy())
        opt_t.step()
        opt_f.step(g)
    return float(np.max(np.abs(q.detach().numpy() - p)))


def interleaved(contenders, rounds, target=2e-3):
    """Median and best seconds per call of each contender, timed in interleaved rounds.

    Each round times every contender once (a batch of calls lasting about `target`
    seconds), so a burst of load from elsewhere hits all contenders alike.
    """
    batch = {}
    for name, fn in contenders:
        fn()                                             # warm-up
        t0 = time.perf_counter()
        fn()
        batch[name] = max(1, int(target / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name, _ in contenders}
    for _ in range(rounds):
        for name, fn in contenders:
            k = batch[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: (statistics.median(v), min(v)) for name, v in samples.items()}


def run_case(n, dtype, threads, quick, torch, table):
    rng = np.random.default_rng(0)
    start = rng.standard_normal(n).astype(dtype)
    grad = rng.standard_normal(n).astype(dtype)
    nbytes = 7 * n * np.dtype(dtype).itemsize
    case = f"{'MLP 3x3' if n == MLP_PARAMS else f'{n / 1e6:g}M'} ({n}) {np.dtype(dtype).name}"
    rounds = 5 if quick else 25
    for t in threads:
        opt = Adam(start.copy(), step_size=LR, betas=BETAS, eps=EPS, weight_decay=WD,
                   n_threads=t)
        ref = NumpyAdamW(start.copy())
        contenders = [("fastscore", lambda opt=opt: opt.step(grad)),
                      ("numpy", lambda ref=ref: ref.step(grad))]
        if torch is not None:
            for name, fn in torch_contenders(torch, start, grad, t).items():
                if isinstance(fn, Exception):
                    table.add(case, t, name, "n/a", "n/a", "-", f"({type(fn).__name__})")
                else:
                    contenders.append((name, fn))
        if torch is not None:
            with torch.no_grad():
                times = interleaved(contenders, rounds)
        else:
            times = interleaved(contenders, rounds)
        ours = times["fastscore"]
        for name, (med, best) in times.items():
            table.add(case, t, name, f"{med * 1e3:.3f}", f"{best * 1e3:.3f}",
                      f"{nbytes / best / 1e9:.1f}", f"{med / ours[0]:.2f} / {best / ours[1]:.2f}")


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="float32")
    args = p.parse_args()
    torch = try_import("torch")
    sizes = [MLP_PARAMS] if args.quick else [MLP_PARAMS, 10_000_000]
    dtypes = {"float32": [np.float32], "float64": [np.float64],
              "both": [np.float32, np.float64]}[args.dtype]
    print(header("Adam step on a flat buffer (AdamW, weight_decay=0.01)",
                 threads=args.threads, dtypes=[np.dtype(d).name for d in dtypes],
                 torch=getattr(torch, "__version__", "not installed")))
    if torch is not None:
        for d in dtypes:
            print(f"# max |fastscore - torch fused| after 20 steps, {np.dtype(d).name}: "
                  f"{check_agreement(torch, d):.2e}")
    table = Table(["case", "threads", "contender", "median ms", "best ms",
                   "GB/s (7 streams, best)", "ratio vs fastscore (median / best)"])
    for d in dtypes:
        for n in sizes:
            run_case(n, d, args.threads, args.quick, torch, table)
    print(table.render())


if __name__ == "__main__":
    main()

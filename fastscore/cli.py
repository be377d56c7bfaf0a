"""The ``fastscore`` command.

Only this module prints. Every user mistake ends in one line on stderr and exit code 2.
"""

import argparse
import sys

import numpy as np

__all__ = ["main"]


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2."""


def _cmd_demo(args):
    """Build check and patch round trip (the full demo arrives with the reconstruction)."""
    import fastscore
    from fastscore import PatchOperator

    if args.threads is not None:
        fastscore.set_num_threads(args.threads)
    fastscore.show_config()
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((64, 64)).astype(np.float32)
    G = PatchOperator(x.shape, 3, padding="reflect")
    P = G.gather(x)
    Q = rng.standard_normal(P.shape).astype(np.float32)
    lhs = float(np.vdot(P.astype(np.float64), Q))
    rhs = float(np.vdot(x.astype(np.float64), G.scatter(Q)))
    print(f"patch round trip: {G}, {G.n_patches} patches of {G.patch_dim} pixels; "
          f"<Gx, P> - <x, G^T P> = {abs(lhs - rhs):.2e} (relative {abs(lhs - rhs) / abs(lhs):.1e})")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastscore",
        description="Score-based patch priors for imaging on ordinary CPUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo", help="run the demonstration on built-in data",
        description="Run the demonstration on built-in data.",
        epilog="example: fastscore demo --seed 0")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--threads", type=int, default=None, help="kernel threads")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"fastscore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastscore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

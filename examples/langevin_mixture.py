"""Langevin sampling of 0.4·N(3, 1) + 0.6·N(13, 3²) from its score, and from a KDE score.

Five thousand chains, each run

- plain (unadjusted) Langevin, 600 steps of size 0.1, from N(8, 5²);
- the same from x0 = 0: all chains start in the narrow mode and 600 steps do not bring 60%
  of them across the low-density gap — Langevin alone gets mode weights wrong;
- annealed Langevin (Song & Ermon), 10 noise levels 10 → 0.1 × 60 steps, from x0 = 0, with
  the exact score of the noise-convolved mixture: the large noise levels connect the modes;
- MALA, 600 steps of size 0.5 from N(8, 5²) (acceptance rate printed);
- plain Langevin on the score of a Gaussian KDE (bandwidth 1) of 200 training samples,
  started at the training points: it samples the KDE's mixture, not the true one.

Printed: the Kolmogorov–Smirnov distance of the final samples to the target, the fraction
of samples left of the density minimum (target 0.40) and the run time.

    python examples/langevin_mixture.py            # writes langevin_mixture.png
"""
import argparse
import time

import numpy as np
from scipy import stats

from fastscore.distributions import GaussianMixture
from fastscore.kde import GaussianKDE
from fastscore.sampling import annealed_langevin, langevin, mala

MIXTURE = GaussianMixture([0.4, 0.6], [3.0, 13.0], [1.0, 3.0])
BASIN = 6.08


def noisy_score(x, sigma):
    """Score of the mixture convolved with N(0, σ²): stds sqrt(σ_k² + σ²)."""
    return GaussianMixture(MIXTURE.weights, MIXTURE.means,
                           np.sqrt(MIXTURE.stds ** 2 + sigma ** 2)).score(x)


def ks(x, dist):
    return stats.kstest(x[:, 0], lambda t: dist.cdf(t[:, None])).statistic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="langevin_mixture.png")
    parser.add_argument("--no-figure", action="store_true")
    args = parser.parse_args()
    n, seed = args.chains, args.seed

    broad = 8.0 + 5.0 * np.random.default_rng(seed + 100).standard_normal((n, 1))
    zeros = np.zeros((n, 1))
    train = MIXTURE.sample(200, rng=seed + 3)
    kde = GaussianKDE(1.0).fit(train)
    kde_mixture = GaussianMixture(np.full(200, 1 / 200), train[:, 0], 1.0)
    at_train = train[np.random.default_rng(seed + 1).integers(0, 200, n)]

    runs = {
        "Langevin from N(8, 5^2)": (lambda: langevin(MIXTURE.score, broad, 600, 0.1, rng=seed),
                                    MIXTURE),
        "Langevin from 0": (lambda: langevin(MIXTURE.score, zeros, 600, 0.1, rng=seed),
                            MIXTURE),
        "annealed Langevin from 0": (
            lambda: annealed_langevin(noisy_score, np.geomspace(10.0, 0.1, 10), 60, 0.01,
                                      zeros, rng=seed), MIXTURE),
        "MALA from N(8, 5^2)": (
            lambda: mala(MIXTURE.log_density, MIXTURE.score, broad, 600, 0.5, rng=seed), MIXTURE),
        "Langevin on KDE score": (lambda: langevin(kde.score, at_train, 600, 0.1, rng=seed),
                                  kde_mixture),
    }
    print(f"{n} chains; target 0.4 N(3,1) + 0.6 N(13,3^2) (KDE run: the KDE's own mixture)")
    print(f"{'run':<28}{'KS':>8}{'left mass':>11}{'time [s]':>10}  note")
    samples = {}
    for name, (run, target) in runs.items():
        start = time.perf_counter()
        res = run()
        seconds = time.perf_counter() - start
        samples[name] = res.samples[:, 0]
        note = "" if res.acceptance_rate is None else f"acceptance {res.acceptance_rate:.2f}"
        print(f"{name:<28}{ks(res.samples, target):>8.4f}"
              f"{np.mean(res.samples < BASIN):>11.3f}{seconds:>10.2f}  {note}")
    print(f"{'(start N(8, 5^2))':<28}{ks(broad, MIXTURE):>8.4f}{np.mean(broad < BASIN):>11.3f}")

    if args.no_figure:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install 'fastscore[plot]')")
        return
    g = np.linspace(-3, 25, 600)[:, None]
    fig, axes = plt.subplots(1, len(samples), figsize=(4 * len(samples), 3.2), sharey=True)
    for ax, (name, x) in zip(axes, samples.items()):
        target = runs[name][1]
        ax.hist(x, bins=80, range=(-3, 25), density=True, color="0.75")
        ax.plot(g[:, 0], np.exp(target.log_density(g)), "k", lw=1.5)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"figure: {args.output}")


if __name__ == "__main__":
    main()

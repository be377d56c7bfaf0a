"""Slow, obvious NumPy evaluation of the Gaussian-KDE score and log-density (float64).

Direct coordinate differences, a stable log-sum-exp over all training points at once
(per chunk of queries), no tiling and no SIMD: the yardstick for fastscore.kde.
"""

import numpy as np

__all__ = ["kde_score_log_density", "relative_score_error"]


def kde_score_log_density(X, Q, bandwidth, *, exclude_self=False, chunk=64):
    """Score (N, d) and log-density (N,) of the Gaussian KDE of `X` at `Q`, in float64.

    ``exclude_self``: query row i leaves out training point i (Q must be X).
    """
    X = np.asarray(X, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    T, d = X.shape
    s2 = float(bandwidth) ** 2
    n_terms = T - 1 if exclude_self else T
    score = np.empty(Q.shape, dtype=np.float64)
    log_density = np.empty(Q.shape[0], dtype=np.float64)
    for i0 in range(0, Q.shape[0], chunk):
        q = Q[i0:i0 + chunk]
        diff = X[None, :, :] - q[:, None, :]              # (n, T, d)
        e = -np.einsum("ntk,ntk->nt", diff, diff) / (2 * s2)
        if exclude_self:
            rows = np.arange(q.shape[0])
            e[rows, i0 + rows] = -np.inf
        m = e.max(axis=1, keepdims=True)
        w = np.exp(e - m)
        s0 = w.sum(axis=1)
        score[i0:i0 + chunk] = np.einsum("nt,ntk->nk", w, diff) / (s0[:, None] * s2)
        log_density[i0:i0 + chunk] = (np.log(s0) + m[:, 0] - np.log(n_terms)
                                      - 0.5 * d * np.log(2 * np.pi * s2))
    return score, log_density


def relative_score_error(score, reference, bandwidth):
    """max_i ||s_i - r_i|| / max(||r_i||, 1/sigma): relative, floored at the score unit.

    The floor 1/sigma is the size of the score one bandwidth away from a single point; it
    keeps queries where the score nearly vanishes (balanced neighbours, the mode of the
    data) from turning rounding into an infinite relative error. An error of e in these
    units moves the Tweedie denoiser x + sigma^2 s(x) by at most e * max(sigma^2 |s|, sigma).
    """
    score = np.asarray(score, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    err = np.linalg.norm(score - reference, axis=1)
    scale = np.maximum(np.linalg.norm(reference, axis=1), 1.0 / float(bandwidth))
    return float(np.max(err / scale))

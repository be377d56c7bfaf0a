"""Analytic distributions with closed-form scores: the reference densities of the toy problems.

Every distribution works on a batch of points ``x`` of shape ``(N, d)`` (one-dimensional
data as ``(N, 1)``) and provides

- ``log_density(x)`` -> ``(N,)``: log-density, normalised where a closed form exists (the
  docstring of each class says when it is not);
- ``score(x)`` -> ``(N, d)``: :math:`s(x) = \\nabla_x \\log p(x)`;
- ``score_divergence(x)`` -> ``(N,)``: :math:`\\sum_i \\partial s_i / \\partial x_i`, the
  trace of the score Jacobian (the term of implicit score matching);
- ``sample(n, *, rng=None)`` -> ``(n, d)`` float64 draws;
- ``cdf(x)`` -> ``(N,)`` for the one-dimensional ones (Kolmogorov–Smirnov checks).

Inputs follow the package dtype table (float32/float64 kept, integers -> float64) and the
output dtype follows the input; parameters are held in float64. Points must be finite.
``logpdf`` is a deprecated alias of ``log_density`` (``docs/conventions.rst``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from ._deprecation import keyword_only, warn_deprecated
from ._validation import as_float_array, check_int, check_rng, check_scalar

__all__ = ["Distribution", "Normal", "Gamma", "GaussianMixture", "GeneralizedGaussianPair"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _float64_param(value: ArrayLike, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    """A finite float64 parameter array; 0-d input stays 0-d."""
    arr = as_float_array(value, name, ndim=ndim, finite=True, allow_empty=True)
    return arr.astype(np.float64).reshape(np.shape(value))


def _positive_array(value: ArrayLike, name: str) -> np.ndarray:
    """Float64 array of a strictly positive, finite parameter (scalar or array)."""
    arr = _float64_param(value, name, (0, 1, 2))
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty.")
    if np.any(arr <= 0):
        raise ValueError(f"`{name}` must be positive; got minimum {arr.min()!r}.")
    return arr


class Distribution:
    """Base class: input checks shared by the analytic distributions.

    Attributes
    ----------
    dim : int
        Dimension ``d`` of a point.
    """

    dim = 1

    def _check_x(self, x: ArrayLike) -> np.ndarray:
        x = as_float_array(x, "x", ndim=(1, 2), finite=True)
        if x.ndim == 1 or x.shape[1] != self.dim:
            hint = " (1-D data as x.reshape(-1, 1))" if self.dim == 1 and x.ndim == 1 else ""
            raise ValueError(
                f"`x` must have shape (N, {self.dim}){hint}; got {x.shape}.")
        return x

    def _check_n(self, n):
        return check_int(n, "n", low=0)

    def log_density(self, x: ArrayLike) -> np.ndarray:
        """Log-density ``log p(x)``, shape (N,)."""
        if type(self).logpdf is not Distribution.logpdf:     # a subclass of the old protocol
            warn_deprecated(f"{type(self).__name__}.logpdf() is deprecated; define "
                            "log_density() instead.")
            return self.logpdf(x)
        raise NotImplementedError

    def logpdf(self, x: ArrayLike) -> np.ndarray:
        """Deprecated alias of :meth:`log_density`."""
        warn_deprecated(f"{type(self).__name__}.logpdf() is deprecated; use .log_density().")
        return self.log_density(x)

    def score(self, x: ArrayLike) -> np.ndarray:
        raise NotImplementedError

    def score_divergence(self, x: ArrayLike) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int, *, rng: int | np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError


class Normal(Distribution):
    """Gaussian with diagonal covariance: isotropic or per-axis standard deviations.

    .. math::

        \\log p(x) = -\\frac12 \\sum_i \\Big(\\frac{x_i - \\mu_i}{\\sigma_i}\\Big)^2
        - \\sum_i \\log \\sigma_i - \\frac d2 \\log 2\\pi, \\qquad
        s_i(x) = -\\frac{x_i - \\mu_i}{\\sigma_i^2}, \\qquad
        \\nabla\\!\\cdot s = -\\sum_i \\sigma_i^{-2}

    Parameters
    ----------
    mean : float or array_like of shape (d,), default 0
        :math:`\\mu`.
    std : float > 0 or array_like of shape (d,), default 1
        :math:`\\sigma`; a scalar gives an isotropic Gaussian.
    dim : int, optional
        Dimension when both `mean` and `std` are scalars (default 1); if given it must
        agree with their lengths.

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.distributions import Normal
    >>> p = Normal(mean=[0.0, 1.0], std=2.0)
    >>> p.score(np.array([[2.0, 1.0]]))
    array([[-0.5, -0. ]])
    """

    def __init__(self, mean=0.0, std=1.0, *, dim=None):
        mean = _float64_param(mean, "mean", (0, 1))
        std = _positive_array(std, "std")
        if std.ndim > 1:
            raise ValueError(f"`std` must be a scalar or have shape (d,); got {std.shape}.")
        sizes = {a.size for a in (mean, std) if a.ndim == 1}
        if len(sizes) > 1:
            raise ValueError(
                f"`mean` and `std` must have the same length; got {mean.shape} and {std.shape}.")
        d = sizes.pop() if sizes else None
        if dim is not None:
            dim = check_int(dim, "dim", low=1)
            if d is not None and dim != d:
                raise ValueError(f"`dim` = {dim} disagrees with the length {d} of `mean`/`std`.")
            d = dim
        d = 1 if d is None else d
        self.dim = d
        self.mean = np.broadcast_to(mean, (d,)).copy()
        self.std = np.broadcast_to(std, (d,)).copy()

    def __repr__(self):
        return f"Normal(mean={self.mean.tolist()}, std={self.std.tolist()})"

    def log_density(self, x: ArrayLike) -> np.ndarray:
        x = self._check_x(x)
        z = (x - self.mean) / self.std
        out = -0.5 * np.sum(z * z, axis=1) - np.sum(np.log(self.std)) - 0.5 * self.dim * _LOG_2PI
        return out.astype(x.dtype, copy=False)

    def score(self, x):
        x = self._check_x(x)
        return (-(x - self.mean) / self.std ** 2).astype(x.dtype, copy=False)

    def score_divergence(self, x):
        x = self._check_x(x)
        return np.full(x.shape[0], -np.sum(self.std ** -2.0), dtype=x.dtype)

    @keyword_only("rng")
    def sample(self, n: int, *, rng: int | np.random.Generator | None = None) -> np.ndarray:
        n, rng = self._check_n(n), check_rng(rng)
        return self.mean + self.std * rng.standard_normal((n, self.dim))

    def cdf(self, x):
        """Cumulative distribution function (``dim == 1`` only), shape (N,)."""
        if self.dim != 1:
            raise NotImplementedError("`cdf` is defined for dim == 1 only.")
        x = self._check_x(x)
        return special.ndtr((x[:, 0] - self.mean[0]) / self.std[0]).astype(x.dtype, copy=False)


class Gamma(Distribution):
    """One-dimensional Gamma distribution with shape ``k`` and scale ``θ``.

    .. math::

        \\log p(x) = (k-1)\\log x - x/\\theta - \\log\\Gamma(k) - k\\log\\theta, \\qquad
        s(x) = \\frac{k-1}{x} - \\frac1\\theta, \\qquad s'(x) = -\\frac{k-1}{x^2}

    for :math:`x > 0`. Outside the support (:math:`x \\le 0`) ``log_density`` is ``-inf`` and
    ``score`` and ``score_divergence`` are NaN (there is no score there).

    Parameters
    ----------
    shape : float > 0
        :math:`k`.
    scale : float > 0, default 1
        :math:`\\theta`.
    """

    dim = 1

    def __init__(self, shape, scale=1.0):
        self.shape = check_scalar(shape, "shape", low=0, low_inclusive=False)
        self.scale = check_scalar(scale, "scale", low=0, low_inclusive=False)

    def __repr__(self):
        return f"Gamma(shape={self.shape!r}, scale={self.scale!r})"

    def log_density(self, x: ArrayLike) -> np.ndarray:
        x = self._check_x(x)
        k, theta = self.shape, self.scale
        u = x[:, 0].astype(np.float64)
        pos = u > 0
        safe = np.where(pos, u, 1.0)
        out = (k - 1.0) * np.log(safe) - safe / theta - special.gammaln(k) - k * np.log(theta)
        return np.where(pos, out, -np.inf).astype(x.dtype, copy=False)

    def score(self, x):
        x = self._check_x(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (self.shape - 1.0) / x - 1.0 / self.scale
        return np.where(x > 0, s, np.nan).astype(x.dtype, copy=False)

    def score_divergence(self, x):
        x = self._check_x(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            div = -(self.shape - 1.0) / x[:, 0] ** 2
        return np.where(x[:, 0] > 0, div, np.nan).astype(x.dtype, copy=False)

    @keyword_only("rng")
    def sample(self, n: int, *, rng: int | np.random.Generator | None = None) -> np.ndarray:
        n, rng = self._check_n(n), check_rng(rng)
        return rng.gamma(self.shape, self.scale, size=(n, 1))

    def cdf(self, x):
        """Cumulative distribution function, shape (N,)."""
        x = self._check_x(x)
        u = np.maximum(x[:, 0], 0.0) / self.scale
        return special.gammainc(self.shape, u).astype(x.dtype, copy=False)


class GaussianMixture(Distribution):
    """Mixture of Gaussians with diagonal covariances, in any dimension.

    .. math::

        p(x) = \\sum_k w_k\\, \\mathcal N(x;\\, \\mu_k, \\mathrm{diag}\\,\\sigma_k^2), \\qquad
        s(x) = \\sum_k r_k(x)\\, a_k(x), \\quad a_{ki} = -\\frac{x_i - \\mu_{ki}}{\\sigma_{ki}^2},
        \\quad r_k = \\frac{w_k \\mathcal N_k(x)}{p(x)}

    .. math::

        \\nabla\\!\\cdot s = \\sum_i \\Big[\\sum_k r_k \\big(a_{ki}^2 - \\sigma_{ki}^{-2}\\big)
        - s_i^2\\Big]

    The responsibilities :math:`r_k` and ``log_density`` use a log-sum-exp over components, so
    points far from every component give finite, correct results.

    Parameters
    ----------
    weights : array_like of shape (K,)
        :math:`w_k \\ge 0`, summing to one (within 1e-6).
    means : array_like of shape (K,) or (K, d)
        :math:`\\mu_k`; shape ``(K,)`` means one-dimensional components.
    stds : float > 0, array_like of shape (K,) or (K, d)
        :math:`\\sigma_k`: one value for all, one per component (isotropic), or per
        component and axis (diagonal).

    Examples
    --------
    >>> import numpy as np
    >>> from fastscore.distributions import GaussianMixture
    >>> p = GaussianMixture([0.4, 0.6], [3.0, 13.0], [1.0, 3.0])
    >>> x = p.sample(5, rng=np.random.default_rng(0))
    >>> x.shape, p.score(x).shape, p.log_density(x).shape
    ((5, 1), (5, 1), (5,))
    """

    def __init__(self, weights, means, stds):
        weights = as_float_array(weights, "weights", ndim=1, finite=True).astype(np.float64)
        if np.any(weights < 0):
            raise ValueError(f"`weights` must be non-negative; got minimum {weights.min()!r}.")
        total = float(weights.sum())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"`weights` must sum to one; got sum {total!r} (normalise them first).")
        n_components = weights.size
        means = as_float_array(means, "means", ndim=(1, 2), finite=True).astype(np.float64)
        if means.ndim == 1:
            means = means[:, None]
        if means.shape[0] != n_components:
            raise ValueError(
                f"`means` must have {n_components} rows (one per weight); got shape "
                f"{means.shape}.")
        d = means.shape[1]
        stds = _positive_array(stds, "stds")
        if stds.ndim == 1:
            if stds.size != n_components:
                raise ValueError(
                    f"`stds` of shape (K,) must have K = {n_components} entries; got "
                    f"{stds.size}.")
            stds = stds[:, None]
        if stds.ndim == 2 and stds.shape not in ((n_components, 1), (n_components, d)):
            raise ValueError(
                f"`stds` must be a scalar or have shape ({n_components},) or "
                f"({n_components}, {d}); got {stds.shape}.")
        self.dim = d
        self.weights = weights
        self.means = means
        self.stds = np.broadcast_to(stds, (n_components, d)).copy()
        with np.errstate(divide="ignore"):
            self._log_weights = np.log(weights)

    @property
    def n_components(self):
        return self.weights.size

    def __repr__(self):
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim})"

    def _terms(self, x):
        """Per-component quantities: a (N, K, d), log w_k N_k(x) (N, K), log p (N,), r (N, K)."""
        x64 = x.astype(np.float64, copy=False)
        precision = self.stds ** -2.0
        delta = x64[:, None, :] - self.means[None]
        a = -delta * precision
        log_comp = (self._log_weights
                    - 0.5 * np.einsum("nkd,nkd->nk", delta, -a)
                    - np.sum(np.log(self.stds), axis=1) - 0.5 * self.dim * _LOG_2PI)
        log_p = special.logsumexp(log_comp, axis=1)
        r = np.exp(log_comp - log_p[:, None])
        return a, log_p, r, precision

    def log_density(self, x: ArrayLike) -> np.ndarray:
        x = self._check_x(x)
        return self._terms(x)[1].astype(x.dtype, copy=False)

    def responsibilities(self, x):
        """Posterior component probabilities :math:`r_k(x)`, shape (N, K)."""
        x = self._check_x(x)
        return self._terms(x)[2].astype(x.dtype, copy=False)

    def score(self, x):
        x = self._check_x(x)
        a, _, r, _ = self._terms(x)
        return np.einsum("nk,nkd->nd", r, a).astype(x.dtype, copy=False)

    def score_divergence(self, x):
        x = self._check_x(x)
        a, _, r, precision = self._terms(x)
        s = np.einsum("nk,nkd->nd", r, a)
        div = np.einsum("nk,nkd->n", r, a * a - precision[None]) - np.sum(s * s, axis=1)
        return div.astype(x.dtype, copy=False)

    @keyword_only("rng")
    def sample(self, n: int, *, rng: int | np.random.Generator | None = None) -> np.ndarray:
        n, rng = self._check_n(n), check_rng(rng)
        k = rng.choice(self.n_components, size=n, p=self.weights)
        return self.means[k] + self.stds[k] * rng.standard_normal((n, self.dim))

    def cdf(self, x):
        """Cumulative distribution function (``dim == 1`` only), shape (N,)."""
        if self.dim != 1:
            raise NotImplementedError("`cdf` is defined for dim == 1 only.")
        x = self._check_x(x)
        z = (x[:, 0:1].astype(np.float64) - self.means[:, 0]) / self.stds[:, 0]
        return (special.ndtr(z) @ self.weights).astype(x.dtype, copy=False)


class GeneralizedGaussianPair(Distribution):
    """Generalised-Gaussian prior on the difference of two neighbouring pixels (a 2×1 patch).

    .. math::

        p(x) \\propto \\exp(-\\beta\\, |x_2 - x_1|^\\alpha), \\qquad u = x_2 - x_1, \\qquad
        s(x) = \\beta\\alpha\\, |u|^{\\alpha-1} \\operatorname{sign}(u)\\, (1, -1)

    .. math::

        \\nabla\\!\\cdot s = -2\\beta\\alpha(\\alpha - 1)\\, |u|^{\\alpha - 2}

    ``alpha = 1`` is the total-variation (TV) prior, ``alpha = 2`` a Gaussian smoothness
    prior. The score pushes both pixels toward each other, i.e. toward the diagonal
    :math:`x_1 = x_2`, and is orthogonal to it.

    Conventions on the diagonal :math:`u = 0`, where :math:`|u|^\\alpha` is not smooth for
    :math:`\\alpha \\le 1`: the **score is defined as 0** there (the minimal-norm
    subgradient; for ``alpha < 1`` the pointwise limit does not exist). The divergence at
    ``u = 0`` is its pointwise limit: 0 for ``alpha > 2``, :math:`-4\\beta` for
    ``alpha = 2``, ``-inf`` for ``1 < alpha < 2``, ``+inf`` for ``alpha < 1``; for
    ``alpha = 1`` (TV) it is 0 everywhere, i.e. the singular (Dirac) part on the diagonal
    is dropped.

    The density is **improper**: it is constant along the diagonal direction
    :math:`x_1 + x_2`, so ``log_density`` is the unnormalised :math:`-\\beta |u|^\\alpha`, and
    ``sample`` draws from the distribution conditioned on the midpoint
    :math:`(x_1 + x_2)/2` (the difference :math:`u` is a proper generalised Gaussian with
    :math:`\\beta |u|^\\alpha \\sim \\mathrm{Gamma}(1/\\alpha, 1)`).

    Parameters
    ----------
    beta : float > 0, default 1
        :math:`\\beta`, strength (inverse temperature).
    alpha : float > 0, default 1
        :math:`\\alpha`, exponent.
    """

    dim = 2

    def __init__(self, beta=1.0, alpha=1.0):
        self.beta = check_scalar(beta, "beta", low=0, low_inclusive=False)
        self.alpha = check_scalar(alpha, "alpha", low=0, low_inclusive=False)

    def __repr__(self):
        return f"GeneralizedGaussianPair(beta={self.beta!r}, alpha={self.alpha!r})"

    def log_density(self, x: ArrayLike) -> np.ndarray:
        """Unnormalised log-density :math:`-\\beta |x_2 - x_1|^\\alpha` (improper density)."""
        x = self._check_x(x)
        u = np.abs(x[:, 1] - x[:, 0])
        return (-self.beta * u ** self.alpha).astype(x.dtype, copy=False)

    def score(self, x):
        x = self._check_x(x)
        u = x[:, 1] - x[:, 0]
        au = np.abs(u)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = self.beta * self.alpha * np.sign(u) * au ** (self.alpha - 1.0)
        g = np.where(u == 0, 0.0, g)
        return np.stack([g, -g], axis=1).astype(x.dtype, copy=False)

    def score_divergence(self, x):
        x = self._check_x(x)
        b, a = self.beta, self.alpha
        au = np.abs(x[:, 1] - x[:, 0])
        if a == 1.0:
            return np.zeros(x.shape[0], dtype=x.dtype)
        if a == 2.0:
            return np.full(x.shape[0], -4.0 * b, dtype=x.dtype)
        with np.errstate(divide="ignore"):
            div = -2.0 * b * a * (a - 1.0) * au ** (a - 2.0)
        at_zero = 0.0 if a > 2.0 else (-np.inf if a > 1.0 else np.inf)
        return np.where(au == 0, at_zero, div).astype(x.dtype, copy=False)

    @keyword_only("rng")
    def sample(self, n: int, *, rng: int | np.random.Generator | None = None,
               midpoint: ArrayLike = 0.0) -> np.ndarray:
        """Draw ``n`` pairs with the given midpoint :math:`(x_1 + x_2)/2`.

        Parameters
        ----------
        n : int >= 0
        rng : None, int or numpy.random.Generator
        midpoint : float or array_like of shape (n,), default 0
            The density is flat along the diagonal; samples are drawn conditionally on it.

        Returns
        -------
        x : ndarray of shape (n, 2), float64
        """
        n, rng = self._check_n(n), check_rng(rng)
        mid = _float64_param(midpoint, "midpoint", (0, 1))
        if mid.ndim == 1 and mid.shape != (n,):
            raise ValueError(f"`midpoint` must be a scalar or have shape ({n},); "
                             f"got {mid.shape}.")
        magnitude = (rng.gamma(1.0 / self.alpha, 1.0, size=n) / self.beta) ** (1.0 / self.alpha)
        u = np.where(rng.random(n) < 0.5, -magnitude, magnitude)
        return np.stack([mid - 0.5 * u, mid + 0.5 * u], axis=1)

"""A parametric Gaussian-mixture score model with analytic parameter gradients.

:class:`GaussianMixtureScoreModel` implements the whole score-model protocol of
:mod:`fastscore.losses` in closed form (score, its parameter vector-Jacobian product, the
diagonal of the input Jacobian and its VJP, the input JVP and its VJP), so every
score-matching objective — and maximum likelihood, through
:meth:`GaussianMixtureScoreModel.negative_log_likelihood` — can be minimised with
``scipy.optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B")``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ._deprecation import deprecated_alias, keyword_only
from ._validation import as_float_array, check_int, check_rng, check_scalar
from .distributions import GaussianMixture

__all__ = ["GaussianMixtureScoreModel"]

_LOG_2PI = float(np.log(2.0 * np.pi))

_Vec = NDArray[np.float64]
_Sigma = float | ArrayLike | None


class _Forward:
    """Intermediate quantities of one evaluation, kept for the reverse (VJP) passes.

    With :math:`v_{ki} = e^{2\\rho_{ki}} + \\sigma^2` (variance), :math:`p = 1/v`,
    :math:`\\delta = x - \\mu_k`, :math:`a = -\\delta p` and
    :math:`e_k = \\ell_k + \\sum_i(-\\tfrac12 \\delta_{ki}^2 p_{ki} + \\tfrac12 \\log p_{ki})`,
    the responsibilities are :math:`r = \\mathrm{softmax}_k(e)` and the score is
    :math:`s = \\sum_k r_k a_k`.
    """

    def __init__(self, model, x, params, sigma):
        K, d = model.n_components, model.dim
        mu = params[:K * d].reshape(K, d)
        rho = params[K * d:2 * K * d].reshape(K, d)
        self.logits = params[2 * K * d:]
        self.var0 = np.exp(2.0 * rho)                                  # (K, d)
        if sigma is None:
            self.var = self.var0[None]                                 # (1, K, d)
        else:
            self.var = self.var0[None] + (sigma ** 2)[:, None, None]   # (N, K, d)
        self.p = 1.0 / self.var
        self.delta = x[:, None, :] - mu[None]                          # (N, K, d)
        self.a = -self.delta * self.p
        self.e = self.logits + np.sum(-0.5 * self.delta ** 2 * self.p
                                      + 0.5 * np.log(self.p), axis=2)  # (N, K)
        self.lse = special.logsumexp(self.e, axis=1)
        self.r = np.exp(self.e - self.lse[:, None])
        self.s = np.einsum("nk,nkd->nd", self.r, self.a)

    def jacobian_diagonal(self):
        """:math:`\\partial s_i/\\partial x_i = \\sum_k r_k (a_{ki}^2 - p_{ki}) - s_i^2`."""
        return (np.einsum("nk,nkd->nd", self.r, self.a ** 2 - self.p)
                - self.s ** 2)

    def backward(self, a_bar=None, p_bar=None, r_bar=None, s_bar=None, e_bar=None):
        """Gradient w.r.t. the parameters from upstream gradients on a, p, r, s and e."""
        N, K, d = self.delta.shape
        r3 = self.r[:, :, None]
        a_bar = np.zeros_like(self.delta) if a_bar is None else a_bar
        r_bar = np.zeros_like(self.r) if r_bar is None else r_bar
        if s_bar is not None:                      # s = sum_k r_k a_k
            a_bar = a_bar + r3 * s_bar[:, None, :]
            r_bar = r_bar + np.einsum("nkd,nd->nk", self.a, s_bar)
        # softmax: e_bar = r (r_bar - <r, r_bar>)
        e_tot = self.r * (r_bar - np.sum(self.r * r_bar, axis=1, keepdims=True))
        if e_bar is not None:
            e_tot = e_tot + e_bar
        e3 = e_tot[:, :, None]
        # a = -delta p ; e = l + sum(-1/2 delta^2 p + 1/2 log p)
        delta_bar = -a_bar * self.p + e3 * self.a
        p_tot = -a_bar * self.delta + e3 * (-0.5 * self.delta ** 2 + 0.5 * self.var)
        if p_bar is not None:
            p_tot = p_tot + p_bar
        mu_bar = -delta_bar.sum(axis=0)
        # p = 1/(exp(2 rho) + sigma^2):  dp/drho = -2 exp(2 rho) p^2
        rho_bar = np.sum(p_tot * (-2.0 * self.var0 * self.p ** 2), axis=0)
        logit_bar = e_tot.sum(axis=0)
        return np.concatenate([mu_bar.ravel(), rho_bar.ravel(), logit_bar])


class GaussianMixtureScoreModel:
    """Score of a Gaussian mixture with diagonal covariances, as a trainable score model.

    .. math::

        s(x;\\theta) = \\nabla_x \\log \\sum_k w_k\\,
        \\mathcal N(x;\\, \\mu_k, \\mathrm{diag}\\,\\sigma_k^2), \\qquad
        \\theta = (\\mu,\\ \\log\\sigma,\\ \\ell), \\quad w = \\mathrm{softmax}(\\ell)

    Parameter vector layout (length ``2·K·d + K``): ``means.ravel()`` (K·d, row-major
    ``(K, d)``), then ``log(stds).ravel()`` (K·d), then the mixture logits (K).

    With ``noise_conditional=True`` the model is noise-conditional in the exact way a
    Gaussian mixture allows: ``score(x, params, sigma)`` is the score of the mixture
    convolved with :math:`\\mathcal N(0, \\sigma^2 I)` (variances
    :math:`\\sigma_k^2 + \\sigma^2`), and ``sigma=None`` the clean score. With
    ``noise_conditional=False`` (default) ``sigma`` must be ``None`` and
    :func:`fastscore.losses.ncsm` uses the :math:`s(x;\\sigma) = \\tilde s(x)/\\sigma`
    parametrisation.

    All computations are float64; memory is O(N·K·d).

    Parameters
    ----------
    means : array_like of shape (K,) or (K, d)
        Initial means (shape ``(K,)``: one-dimensional model).
    stds : float > 0 or array_like of shape (K,) or (K, d)
        Initial standard deviations.
    weights : array_like of shape (K,), optional
        Initial mixture weights (positive, summing to one); default uniform.
    noise_conditional : bool, default False

    Attributes
    ----------
    n_components, dim, n_params : int
    noise_conditional : bool

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.optimize import minimize
    >>> from fastscore.distributions import Gamma
    >>> from fastscore.mixture import GaussianMixtureScoreModel
    >>> from fastscore.losses import ism
    >>> x = Gamma(8.0).sample(100, rng=np.random.default_rng(0))
    >>> model = GaussianMixtureScoreModel.from_data(x, 3)
    >>> res = minimize(lambda th: ism(model, th, x), model.get_weights(), jac=True,
    ...                method="L-BFGS-B")
    >>> model.set_weights(res.x)
    """

    def __init__(self, means: ArrayLike, stds: ArrayLike, weights: ArrayLike | None = None, *,
                 noise_conditional: bool = False) -> None:
        if weights is None:
            n = np.shape(means)[0] if np.ndim(means) >= 1 else 0
            weights = np.full(n, 1.0 / max(n, 1))
        mixture = GaussianMixture(weights, means, stds)  # validates shapes and values
        if np.any(mixture.weights <= 0):
            raise ValueError("`weights` must be positive (a logit of -inf cannot be trained).")
        self.n_components = mixture.n_components
        self.dim = mixture.dim
        self.n_params = 2 * self.n_components * self.dim + self.n_components
        self.noise_conditional = bool(noise_conditional)
        self._params = self.pack(mixture.means, mixture.stds, mixture.weights)

    @classmethod
    def from_data(cls, x: ArrayLike, n_components: int, *,
                  noise_conditional: bool = False) -> GaussianMixtureScoreModel:
        """Initialise from data: means at evenly spaced quantiles, stds = data std / K.

        Parameters
        ----------
        x : array_like of shape (N, d)
        n_components : int >= 1
        noise_conditional : bool, default False
        """
        x = as_float_array(x, "x", ndim=2, finite=True).astype(np.float64)
        k = check_int(n_components, "n_components", low=1)
        levels = (np.arange(k) + 0.5) / k
        means = np.quantile(x, levels, axis=0)                       # (K, d)
        spread = np.maximum(x.std(axis=0), 1e-3 * (1.0 + np.abs(x).max()))
        stds = np.broadcast_to(spread / k, means.shape)
        return cls(means, stds, noise_conditional=noise_conditional)

    # ---------------------------------------------------------------- parameters
    def pack(self, means: ArrayLike, stds: ArrayLike, weights: ArrayLike) -> _Vec:
        """(means (K, d), stds (K, d), weights (K,)) -> parameter vector."""
        means = np.asarray(means, dtype=np.float64).reshape(self.n_components, self.dim)
        stds = np.broadcast_to(np.asarray(stds, dtype=np.float64),
                               (self.n_components, self.dim))
        weights = np.asarray(weights, dtype=np.float64)
        return np.concatenate([means.ravel(), np.log(stds).ravel(), np.log(weights)])

    def unpack(self, params: ArrayLike | None = None) -> tuple[_Vec, _Vec, _Vec]:
        """Parameter vector -> ``(means (K, d), stds (K, d), weights (K,))``."""
        theta = self._params if params is None else self._check_params(params)
        K, d = self.n_components, self.dim
        means = theta[:K * d].reshape(K, d).copy()
        stds = np.exp(theta[K * d:2 * K * d]).reshape(K, d)
        weights = special.softmax(theta[2 * K * d:])
        return means, stds, weights

    def get_weights(self) -> np.ndarray:
        """A copy of the current flat parameter vector θ, shape (n_params,), float64.

        (``get_params`` is scikit-learn's hyper-parameter protocol, hence the name.)
        """
        return self._params.copy()

    def set_weights(self, params: ArrayLike) -> None:
        """Set the current flat parameter vector θ, shape (n_params,) (copied)."""
        self._params = self._check_params(params).copy()

    get_params = deprecated_alias("get_weights", "get_params")
    set_params = deprecated_alias("set_weights", "set_params")

    def bounds(self, min_std=None, max_std=None):
        """Box constraints for ``scipy.optimize.minimize(..., method="L-BFGS-B")``.

        Bounds the log-standard-deviations to ``[log min_std, log max_std]`` and leaves the
        means and logits free. A lower bound matters for ISM: its objective is unbounded
        below when a component collapses onto a data point (:math:`\\partial_x s \\to
        -\\infty`), the overfitting that RSM's penalty and DSM's noise avoid.

        Parameters
        ----------
        min_std, max_std : float > 0, optional

        Returns
        -------
        list of (low, high) tuples, length n_params (``None`` = unbounded)
        """
        lo = None if min_std is None else float(
            np.log(check_scalar(min_std, "min_std", low=0, low_inclusive=False)))
        hi = None if max_std is None else float(
            np.log(check_scalar(max_std, "max_std", low=0, low_inclusive=False)))
        if lo is not None and hi is not None and hi < lo:
            raise ValueError(f"`max_std` must be >= `min_std`; got {max_std!r} < {min_std!r}.")
        kd = self.n_components * self.dim
        return [(None, None)] * kd + [(lo, hi)] * kd + [(None, None)] * self.n_components

    def to_distribution(self, params: ArrayLike | None = None) -> GaussianMixture:
        """The mixture as a :class:`fastscore.distributions.GaussianMixture`."""
        means, stds, weights = self.unpack(params)
        return GaussianMixture(weights / weights.sum(), means, stds)

    # ---------------------------------------------------------------- checks
    def _check_params(self, params):
        theta = as_float_array(params, "params", ndim=1, finite=True).astype(np.float64)
        if theta.shape != (self.n_params,):
            raise ValueError(f"`params` must have shape ({self.n_params},) for this model "
                             f"(K={self.n_components}, d={self.dim}); got {theta.shape}.")
        return theta

    def _check_x(self, x, name="x"):
        x = as_float_array(x, name, ndim=2, finite=True).astype(np.float64, copy=False)
        if x.shape[1] != self.dim:
            raise ValueError(f"`{name}` must have shape (N, {self.dim}); got {x.shape}.")
        return x

    def _check_sigma(self, sigma, n):
        if sigma is None:
            return None
        if not self.noise_conditional:
            raise ValueError("this model is not noise-conditional: `sigma` must be None "
                             "(create it with noise_conditional=True).")
        if np.ndim(sigma) == 0:
            sigma = np.full(n, sigma, dtype=np.float64)
        sigma = as_float_array(sigma, "sigma", ndim=1, finite=True).astype(np.float64)
        if sigma.shape != (n,):
            raise ValueError(f"`sigma` must be a scalar or have shape ({n},); got {sigma.shape}.")
        if np.any(sigma < 0):
            raise ValueError(f"`sigma` must be non-negative; got minimum {sigma.min()!r}.")
        return sigma.astype(np.float64, copy=False)

    def _forward(self, x, params, sigma):
        x = self._check_x(x)
        return _Forward(self, x, self._check_params(params), self._check_sigma(sigma, len(x)))

    def _check_grad(self, grad: ArrayLike, shape: tuple[int, ...], name: str = "grad") -> _Vec:
        grad = as_float_array(grad, name, ndim=2, finite=True).astype(np.float64, copy=False)
        if grad.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}; got {grad.shape}.")
        return grad

    # ---------------------------------------------------------------- protocol
    def score(self, x: ArrayLike, params: ArrayLike, sigma: _Sigma = None) -> _Vec:
        """:math:`s(x;\\theta)`, shape (N, d)."""
        return self._forward(x, params, sigma).s

    def score_vjp(self, x: ArrayLike, params: ArrayLike, grad: ArrayLike,
                  sigma: _Sigma = None) -> _Vec:
        """:math:`\\sum_{n,i} g_{ni}\\, \\partial s_i(x_n;\\theta)/\\partial\\theta`."""
        f = self._forward(x, params, sigma)
        return f.backward(s_bar=self._check_grad(grad, f.s.shape))

    def jacobian_diagonal(self, x: ArrayLike, params: ArrayLike, sigma: _Sigma = None) -> _Vec:
        """:math:`\\partial s_i/\\partial x_i`, shape (N, d)."""
        return self._forward(x, params, sigma).jacobian_diagonal()

    def jacobian_diagonal_vjp(self, x: ArrayLike, params: ArrayLike, grad: ArrayLike,
                              sigma: _Sigma = None) -> _Vec:
        """:math:`\\sum_{n,i} g_{ni}\\, \\partial(\\partial_i s_i)(x_n)/\\partial\\theta`."""
        f = self._forward(x, params, sigma)
        h = self._check_grad(grad, f.s.shape)
        r3 = f.r[:, :, None]
        # D = sum_k r_k (a^2 - p) - s^2
        a_bar = r3 * 2.0 * f.a * h[:, None, :]
        p_bar = -r3 * h[:, None, :]
        r_bar = np.einsum("nkd,nd->nk", f.a ** 2 - f.p, h)
        return f.backward(a_bar=a_bar, p_bar=p_bar, r_bar=r_bar, s_bar=-2.0 * f.s * h)

    def jvp(self, x: ArrayLike, params: ArrayLike, v: ArrayLike, sigma: _Sigma = None) -> _Vec:
        """Input Jacobian times a vector, :math:`(J v)_i = \\sum_j \\partial_j s_i\\, v_j`."""
        f = self._forward(x, params, sigma)
        v = self._check_grad(v, f.s.shape, "v")
        return self._jvp(f, v)

    @staticmethod
    def _jvp(f, v):
        # J = sum_k r_k diag(-p_k) + sum_k r_k a_k (a_k - s)^T
        c = np.einsum("nkd,nd->nk", f.a, v)
        t = np.sum(f.s * v, axis=1)
        return (np.einsum("nk,nkd->nd", f.r, -f.p * v[:, None, :] + f.a * c[:, :, None])
                - f.s * t[:, None])

    def jvp_vjp(self, x: ArrayLike, params: ArrayLike, v: ArrayLike, grad: ArrayLike,
                sigma: _Sigma = None) -> _Vec:
        """:math:`\\sum_{n,i} g_{ni}\\, \\partial (J v)_{ni} / \\partial\\theta`, (n_params,)."""
        f = self._forward(x, params, sigma)
        v = self._check_grad(v, f.s.shape, "v")
        g = self._check_grad(grad, f.s.shape)
        r3 = f.r[:, :, None]
        c = np.einsum("nkd,nd->nk", f.a, v)
        t = np.sum(f.s * v, axis=1)
        r_bar = np.einsum("nkd,nd->nk", -f.p * v[:, None, :] + f.a * c[:, :, None], g)
        p_bar = -r3 * (g * v)[:, None, :]
        c_bar = f.r * np.einsum("nkd,nd->nk", f.a, g)
        a_bar = r3 * g[:, None, :] * c[:, :, None] + c_bar[:, :, None] * v[:, None, :]
        t_bar = -np.sum(g * f.s, axis=1)
        s_bar = -g * t[:, None] + t_bar[:, None] * v
        return f.backward(a_bar=a_bar, p_bar=p_bar, r_bar=r_bar, s_bar=s_bar)

    # ---------------------------------------------------------------- likelihood
    def log_density(self, x: ArrayLike, params: ArrayLike, sigma: _Sigma = None) -> _Vec:
        """Normalised :math:`\\log p(x;\\theta)`, of the noise-convolved mixture if `sigma`."""
        f = self._forward(x, params, sigma)
        return f.lse - special.logsumexp(f.logits) - 0.5 * self.dim * _LOG_2PI

    def negative_log_likelihood(self, x: ArrayLike, params: ArrayLike, sigma: _Sigma = None
                                ) -> tuple[float, _Vec]:
        """Mean negative log-likelihood and its gradient: the maximum-likelihood objective.

        .. math::

            L(\\theta) = -\\frac1N \\sum_n \\log p(x_n;\\theta)

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
        """
        f = self._forward(x, params, sigma)
        n = f.s.shape[0]
        loss = -np.mean(f.lse) + special.logsumexp(f.logits) + 0.5 * self.dim * _LOG_2PI
        grad = f.backward(e_bar=-f.r / n)
        grad[2 * self.n_components * self.dim:] += special.softmax(f.logits)
        return float(loss), grad

    @keyword_only("rng")
    def sample(self, n: int, params: ArrayLike | None = None, *,
               rng: int | np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` points from the mixture, shape (n, d)."""
        return self.to_distribution(params).sample(n, rng=check_rng(rng))

"""Closed-form laws of shrinking ResNets and their limits (``forward.md`` §6).

* :func:`log_norm_law`: ``log(|X_t| / |X_0|) ~ N((n - 2) c^2 t / 2 + mu t, c^2 t)``, the
  log-normal norm (geometric Brownian motion when n = 1), in the setting of §6.2;
* :func:`neuron_law`: ``X_t =d X_0 exp(G_t)``, a Gaussian times an independent log-normal,
  for an isotropic Gaussian start (§6.3);
* :func:`discrete_log_norm`: the exact law at finite depth, as i.i.d. per-layer ratios;
* :func:`moment_ode`: first and second moments for the identity activation (§6.5).
"""

from __future__ import annotations

import dataclasses
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _st

from .activations import gauss_hermite
from .networks import ResNet

__all__ = [
    "log_norm_law",
    "neuron_law",
    "GaussianLogNormal",
    "discrete_log_norm",
    "moment_ode",
    "norm_volatility",
]


def norm_volatility(net: ResNet) -> float:
    """The rate ``c`` of ``dX = c |X| dB`` when the network's limit has that form.

    That is the zero-drift, bias-free setting with ``|phi(x)| = |x|``: form A with the
    identity or ``|x|`` (``c = s_w``), or form B with ``phi''(0) = 0`` (``c = p1 s_w``).

    Raises:
        ValueError: naming the condition that fails.
    """
    act = net.activation
    if net.sigma_b != 0 or np.any(np.asarray(net.mu_b) != 0):
        raise ValueError("the log-normal norm law needs sigma_b = 0 and mu_b = 0")
    if net.form == "A" and act.name in ("identity", "abs"):
        if net.M is not None and act.name != "identity":
            raise ValueError("a mean weight M keeps the norm log-normal only for the identity")
        return net.s_w
    if net.form == "B" and abs(act.p2) < 1e-12 and net.M is None:
        return abs(act.p1) * net.s_w
    raise ValueError(
        "the log-normal norm law holds for form A with activation 'identity' or 'abs', or "
        f"form B with phi''(0) = 0 and M = None; got form {net.form} with {act.name!r}"
    )


def _mean_rate(net: ResNet) -> float:
    """``mu`` when ``M = mu I`` (form A identity), else 0."""
    if net.M is None:
        return 0.0
    M = np.asarray(net.M, dtype=np.float64)
    mu = M[0, 0]
    if not np.allclose(M, mu * np.eye(M.shape[0])):
        raise ValueError("the log-normal norm law needs M = mu * identity")
    return float(mu)


def log_norm_law(net: ResNet, t: float | None = None):
    """Law of ``log(|X_t| / |X_0|)`` in the limit: a scipy normal distribution.

    Width-scaled with ``sigma_w = 1``: ``N((1/2 - 1/n) t, t / n)``. ``t`` defaults to the
    horizon.
    """
    c = norm_volatility(net)
    t = net.horizon if t is None else t
    n = net.width
    mean = (n - 2) * c**2 * t / 2 + _mean_rate(net) * t
    return _st.norm(loc=mean, scale=c * math.sqrt(t))


@dataclasses.dataclass(frozen=True)
class GaussianLogNormal:
    """Law of ``Y = S Z exp(G)``: ``Z ~ N(0,1)``, ``G ~ N(mu, s^2)`` independent.

    A Gaussian scale mixture with log-normal scale (``forward.md`` §6.3); its CDF and
    density are integrals over ``G`` done by 96-node Gauss-Hermite quadrature.
    """

    scale: float
    mu: float
    s: float

    def _nodes(self):
        z, w = gauss_hermite(96)
        return self.scale * np.exp(self.mu + self.s * z), w

    def cdf(self, y):
        sd, w = self._nodes()
        y = np.asarray(y, dtype=np.float64)[..., None]
        return np.sum(w * _st.norm.cdf(y / sd), axis=-1)

    def pdf(self, y):
        sd, w = self._nodes()
        y = np.asarray(y, dtype=np.float64)[..., None]
        return np.sum(w * _st.norm.pdf(y / sd) / sd, axis=-1)

    def var(self) -> float:
        return self.scale**2 * math.exp(2 * self.mu + 2 * self.s**2)

    def excess_kurtosis(self) -> float:
        return 3 * math.exp(4 * self.s**2) - 3


def neuron_law(net: ResNet, sigma0: float, t: float | None = None) -> GaussianLogNormal:
    """Law of one coordinate of ``X_t`` when ``X_0 ~ N(0, sigma0^2 I_n)``.

    ``X_t =d X_0 exp(G_t)`` with ``G_t`` the log-norm law of :func:`log_norm_law`,
    independent of ``X_0`` (skew product: the direction is a spherical Brownian motion on
    a deterministic clock).
    """
    g = log_norm_law(net, t)
    return GaussianLogNormal(float(sigma0), float(g.mean()), float(g.std()))


def discrete_log_norm(net: ResNet, key: jax.Array, samples: int) -> np.ndarray:
    """Exact samples of ``log(|x_L| / |x_0|)`` at the network's finite depth.

    With Gaussian parameters each layer multiplies ``|x|^2`` by the i.i.d. ratio
    ``(1 + c sqrt(dt) g)^2 + c^2 dt chi^2_{n-1}`` (``forward.md`` §6.2).
    """
    c = norm_volatility(net)
    if net.M is not None:
        raise ValueError("the exact discrete law is implemented for M = None")
    n, L, h = net.width, net.depth, net.param_dt
    # the ratio (1 + c sqrt(h) g)^2 + c^2 h chi^2_{n-1} is |e_1 + c sqrt(h) z|^2 for a
    # standard normal n-vector z: n normals per layer (much faster than a gamma draw)
    z = jax.random.normal(key, (samples, L, n), jnp.float64)
    ratio = jnp.sum(z**2, axis=-1) * c**2 * h + 2 * c * math.sqrt(h) * z[..., 0] + 1
    return np.asarray(0.5 * jnp.sum(jnp.log(ratio), axis=1))


def moment_ode(net: ResNet, x0, ts) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``m_t`` and second moment ``S_t = E X_t X_t^T`` for form A with ``phi = id``.

    ``m' = mu_b + M m`` and ``S' = mu_b m^T + m mu_b^T + M S + S M^T
    + (sigma_b^2 + s_w^2 tr S) I`` from ``m_0 = x0``, ``S_0 = x0 x0^T``, solved with an
    adaptive Dormand-Prince 8(7) method in float64 (``rtol = 1e-10``).

    Returns arrays of shapes ``(len(ts), n)`` and ``(len(ts), n, n)``.
    """
    if net.form != "A" or net.activation.name != "identity":
        raise ValueError("moment ODEs close only for form A with the identity activation")
    n = net.width
    x0 = jnp.asarray(x0, jnp.float64).reshape(n)
    mu = jnp.broadcast_to(jnp.asarray(net.mu_b, jnp.float64), (n,))
    M = jnp.zeros((n, n)) if net.M is None else jnp.asarray(net.M, jnp.float64)

    def field(t, y, args):
        m, S = y
        dS = jnp.outer(mu, m) + jnp.outer(m, mu) + M @ S + S @ M.T
        dS = dS + (net.sigma_b**2 + net.s_w**2 * jnp.trace(S)) * jnp.eye(n)
        return mu + M @ m, dS

    ts = jnp.asarray(ts, jnp.float64)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Dopri8(), 0.0, float(ts[-1]), 1e-3,
        (x0, jnp.outer(x0, x0)), saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
    )
    return np.asarray(sol.ys[0]), np.asarray(sol.ys[1])

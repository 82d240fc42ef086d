"""Closed-form laws of shrinking ResNets and their limits (``forward.md`` §6).

* :func:`log_norm_law`: ``log(|X_t| / |X_0|) ~ N((n - 2) c^2 t / 2 + mu t, c^2 t)``, the
  log-normal norm (geometric Brownian motion when n = 1), in the setting of §6.2;
* :func:`neuron_law`: ``X_t =d X_0 exp(G_t)``, a Gaussian times an independent log-normal,
  for an isotropic Gaussian start (§6.3);
* :func:`discrete_log_norm`: the exact law at finite depth, as i.i.d. per-layer ratios;
* :func:`moment_ode`: first and second moments for the identity activation (§6.5).

Fixed width, infinite depth (``finite_width.md`` §4-§7), for Hayou's network:

* :func:`gbm_activation`: recognise ``phi = a x + b`` or ``phi = a |x - c|``, the
  activations for which ``|phi(X_t)|`` is a geometric Brownian motion;
* :func:`gbm_log_norm_law`, :func:`gbm_norm_law`, :func:`gbm_neuron_law`: its laws;
* :func:`relu_residual_law`, :func:`relu_live_active_mean`, :func:`relu_initial_log_drift`:
  the ReLU post-activation norm identity and the initial drift behind the regime change.
"""

from __future__ import annotations

import dataclasses
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _st

from deeplimits._core.validation import check_int, check_real
from deeplimits.spec.activations import gauss_hermite
from deeplimits.spec.blocks import FormA, FormB
from deeplimits.spec.laws import Gaussian
from deeplimits.spec.networks import ResNet

__all__ = [
    "log_norm_law", "neuron_law", "GaussianLogNormal", "discrete_log_norm", "moment_ode",
    "norm_volatility", "GBMActivation", "gbm_activation", "gbm_log_norm_law", "gbm_norm_law",
    "gbm_neuron_law", "relu_residual_law", "relu_live_active_mean", "relu_initial_log_drift"
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
    if isinstance(net.block, FormA) and act.name in ("identity", "abs"):
        if net.M is not None and act.name != "identity":
            raise ValueError("a mean weight M keeps the norm log-normal only for the identity")
        return net.s_w
    if isinstance(net.block, FormB) and abs(act.p2) < 1e-12 and net.M is None:
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
    z = Gaussian().sample(key, (samples, L, n), jnp.float64)
    ratio = jnp.sum(z**2, axis=-1) * c**2 * h + 2 * c * math.sqrt(h) * z[..., 0] + 1
    return np.asarray(0.5 * jnp.sum(jnp.log(ratio), axis=1))


def moment_ode(net: ResNet, x0, ts) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``m_t`` and second moment ``S_t = E X_t X_t^T`` for form A with ``phi = id``.

    ``m' = mu_b + M m`` and ``S' = mu_b m^T + m mu_b^T + M S + S M^T
    + (sigma_b^2 + s_w^2 tr S) I`` from ``m_0 = x0``, ``S_0 = x0 x0^T``, solved with an
    adaptive Dormand-Prince 8(7) method in float64 (``rtol = 1e-10``).

    Returns arrays of shapes ``(len(ts), n)`` and ``(len(ts), n, n)``.
    """
    if not isinstance(net.block, FormA) or net.activation.name != "identity":
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


# Grid on which an activation is recognised as a member of the GBM family: irrational
# offset so that no node falls exactly on a kink at a round number.
_GBM_GRID = np.linspace(-8.0, 8.0, 1601) + 1e-3 * math.pi


@dataclasses.dataclass(frozen=True)
class GBMActivation:
    """``phi(x) = slope (x - shift)`` (``kind="affine"``) or ``slope |x - shift|``
    (``kind="abs"``): the activations with ``(phi')^2 = slope^2`` and ``phi phi'' = 0`` off
    the zeros of ``phi``, for which ``Z = |phi(X)|^2`` is an autonomous geometric Brownian
    motion (``finite_width.md`` §4). ``a x + b`` is ``slope = a``, ``shift = -b / a``."""

    kind: str
    slope: float
    shift: float = 0.0

    def __post_init__(self):
        if self.kind not in ("affine", "abs"):
            raise ValueError(f"kind must be 'affine' or 'abs', got {self.kind!r}")
        if not (math.isfinite(self.slope) and self.slope != 0):
            raise ValueError(f"slope must be finite and non-zero, got {self.slope!r}")
        if not math.isfinite(self.shift):
            raise ValueError(f"shift must be finite, got {self.shift!r}")

    def __call__(self, x):
        u = x - self.shift
        return self.slope * (u if self.kind == "affine" else jnp.abs(u))

    @property
    def name(self) -> str:
        if self.kind == "affine":
            b = -self.slope * self.shift
            return f"{self.slope:g}x" + (f"{b:+g}" if b else "")
        return f"{self.slope:g}|x{-self.shift:+g}|" if self.shift else f"{self.slope:g}|x|"


def gbm_activation(activation) -> GBMActivation:
    """Recognise an activation of the GBM family, or raise ``ValueError``.

    ``activation`` is a :class:`GBMActivation`, a registered name or a callable (an
    :class:`~deeplimits.activations.Activation`). It is tested on a grid of [-8, 8] by
    autodiff: ``|phi'|`` must be one constant ``alpha > 0`` on the grid (ReLU fails: its
    slope is 0 on the negative half-line), and ``phi`` must equal ``alpha (x - c)`` or
    ``+-alpha |x - c|`` there to 1e-9 relative.
    By §4 no other piecewise-C^2 activation makes ``|phi(X)|`` a geometric BM.
    """
    from deeplimits.spec.activations import get_activation

    if isinstance(activation, GBMActivation):
        return activation
    act = get_activation(activation)
    x = jnp.asarray(_GBM_GRID, jnp.float64)
    f = np.asarray(act(x), dtype=np.float64)
    d = np.asarray(act.deriv(x), dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(f))))
    off_zero = np.abs(f) > 1e-9 * scale
    slopes = np.abs(d)
    if not off_zero.any() or slopes.max() == 0:
        raise ValueError(f"activation {act.name!r} is constant on [-8, 8]: not of the form "
                         "a x + b or a |x - c| with a != 0")
    alpha = float(np.median(slopes))
    if np.max(np.abs(slopes - alpha)) > 1e-9 * alpha:
        raise ValueError(
            f"activation {act.name!r} is not of the form a x + b or a |x - c|: |phi'| ranges "
            f"over [{slopes.min():.3g}, {slopes.max():.3g}] on [-8, 8], it must be constant")
    i = int(np.flatnonzero(off_zero)[0])
    candidates = [GBMActivation("affine", float(d[i]), float(x[i] - f[i] / d[i]))]
    signs = np.sign(d[off_zero])
    if signs.min() < 0 < signs.max():
        j = int(np.flatnonzero(off_zero)[np.argmax(signs != signs[0])]) - 1  # left of kink
        j = max(j, i)
        sign = -1.0 if d[j] > 0 else 1.0  # phi = sign alpha |x - c|: sign of phi right of c
        c = float(x[j] - f[j] / d[j])
        candidates.append(GBMActivation("abs", sign * alpha, c))
    for cand in candidates:
        if np.max(np.abs(np.asarray(cand(x)) - f)) <= 1e-9 * scale:
            return cand
    raise ValueError(f"activation {act.name!r} has |phi'| constant but is neither a x + b nor "
                     "a |x - c| (its kinks are not at zeros of phi)")


def gbm_log_norm_law(activation, width: int, t: float, *, sigma_w: float = 1.0):
    """Law of ``log(|phi(X_t)| / |phi(X_0)|)`` for Hayou's network with ``phi`` in the GBM
    family (``finite_width.md`` §4): a scipy normal

        N(alpha^2 sigma_w^2 (1/2 - 1/n) t,  alpha^2 sigma_w^2 t / n),

    independent of ``X_0`` (given ``phi(X_0) != 0``). ``alpha = |slope|``.
    """
    g = gbm_activation(activation)
    n = check_int(width, "width")
    t = check_real(t, "t", positive=True)
    rate = g.slope**2 * sigma_w**2
    return _st.norm(loc=rate * (0.5 - 1.0 / n) * t, scale=math.sqrt(rate * t / n))


def gbm_norm_law(activation, x0, t: float, *, sigma_w: float = 1.0):
    """Law of ``|phi(X_t)|`` started from the state ``x0`` (``(n,)``): a scipy log-normal
    with scale ``|phi(x0)| exp(mean)`` and shape the standard deviation of
    :func:`gbm_log_norm_law`."""
    g = gbm_activation(activation)
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 1 or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be a finite 1-D state (n,), got shape {x0.shape}")
    start = float(np.linalg.norm(np.asarray(g(jnp.asarray(x0)))))
    if start == 0:
        raise ValueError("phi(x0) = 0: the network is frozen at x0, the law is a point mass")
    law = gbm_log_norm_law(g, x0.size, t, sigma_w=sigma_w)
    return _st.lognorm(s=float(law.std()), scale=start * math.exp(float(law.mean())))


def gbm_neuron_law(activation, width: int, t: float, sigma0: float, *,
                   sigma_w: float = 1.0) -> GaussianLogNormal:
    """Law of one coordinate of ``X_t`` for ``X_0 ~ N(0, sigma0^2 I_n)`` and ``phi = a x`` or
    ``a |x|`` (shift 0): ``X_t =d X_0 exp(G_t)`` with ``G_t`` of :func:`gbm_log_norm_law`
    (skew product, ``forward.md`` §6.3). A shift breaks the isotropy: ``ValueError``."""
    g = gbm_activation(activation)
    if g.shift != 0:
        raise ValueError(f"the neuron law needs phi(0) = 0 (shift 0), got {g.name}: with a "
                         "shift the isotropic start is not centred at the kink")
    if not sigma0 > 0:
        raise ValueError(f"sigma0 must be > 0, got {sigma0!r}")
    law = gbm_log_norm_law(g, width, t, sigma_w=sigma_w)
    return GaussianLogNormal(float(sigma0), float(law.mean()), float(law.std()))


def relu_residual_law(width: int, t: float, *, sigma_w: float = 1.0):
    """Law of ``R_t = log(|phi(X_t)|/|phi(X_0)|) - (sigma_w^2 / 2n) int_0^t (N_s - 2) ds``
    for ReLU (``finite_width.md`` §5, Case II): exactly ``N(0, sigma_w^2 t / n)``."""
    n = check_int(width, "width")
    return _st.norm(0.0, sigma_w * math.sqrt(check_real(t, "t", positive=True) / n))


def relu_live_active_mean(width: int) -> float:
    """``E[N_0 | N_0 >= 1] = n / (2 (1 - 2^-n))`` for ``X_0 ~ N(0, s^2 I_n)`` (§7)."""
    n = check_int(width, "width")
    return n / (2.0 * (1.0 - 2.0**-n))


def relu_initial_log_drift(width: int, *, sigma_w: float = 1.0) -> float:
    """Initial drift ``sigma_w^2 (E[N_0 | N_0 >= 1] - 2) / (2n)`` of
    ``E log |phi(X_t)|`` at a live isotropic start (§6-§7): negative for ``n <= 3``,
    positive for ``n >= 4``."""
    n = check_int(width, "width")
    return sigma_w**2 * (relu_live_active_mean(n) - 2.0) / (2.0 * n)



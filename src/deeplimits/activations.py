"""Activations and their Gaussian dual expectations.

An :class:`Activation` is a scalar function phi applied coordinatewise. It provides

* ``phi``, ``phi'`` and ``phi''`` (autodiff, so any JAX-traceable callable works);
* ``phi(0)``, ``p1 = phi'(0)`` and ``p2 = phi''(0)``, which decide the form B limit
  (``forward.md`` §4.3);
* the dual expectations of ``kernels.md`` §3, for ``(u, u') ~ N(0, [[k11, k12], [k12, k22]])``::

      V_phi(k11, k22, k12)  = E[phi(u) phi(u')]
      V_phi'(k11, k22, k12) = E[phi'(u) phi'(u')]

  in closed form for ReLU, |x|, the identity and erf [CS09, W97], and by a product
  Gauss-Hermite rule with 64 probabilists' nodes per axis otherwise;
* the one-dimensional moments ``E phi(sqrt(v) Z)`` and ``E phi(sqrt(v) Z)^2``.

Registered names: ``relu``, ``abs``, ``identity`` (alias ``linear``, ``id``), ``tanh``,
``erf``, ``gelu``, ``swish``, ``softplus_shifted``, ``sin``, ``leaky_relu``. Any other
callable is accepted by :func:`get_activation` and gets quadrature duals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf as _erf

__all__ = [
    "Activation",
    "get_activation",
    "register_activation",
    "activation_names",
    "gauss_hermite",
]

DualFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@functools.lru_cache(maxsize=8)
def gauss_hermite(nodes: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum to 1.

    ``sum(w * f(z))`` approximates ``E f(Z)`` for ``Z ~ N(0, 1)``; exact for polynomials of
    degree ``< 2 * nodes``.
    """
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    return z, w / w.sum()


def _angle(k11, k22, k12):
    """Return ``(sqrt(k11 k22), theta)`` with ``theta = arccos(clip(k12 / sqrt(k11 k22)))``.

    A zero variance gives correlation 0 (then ``k12`` must be 0 for a PSD matrix).
    """
    norm = jnp.sqrt(k11 * k22)
    safe = jnp.where(norm > 0, norm, 1.0)
    rho = jnp.where(norm > 0, jnp.clip(k12 / safe, -1.0, 1.0), 0.0)
    return norm, jnp.arccos(rho)


def _relu_dual(k11, k22, k12):
    norm, theta = _angle(k11, k22, k12)
    return norm * (jnp.sin(theta) + (jnp.pi - theta) * jnp.cos(theta)) / (2 * jnp.pi)


def _relu_dual_deriv(k11, k22, k12):
    _, theta = _angle(k11, k22, k12)
    return (jnp.pi - theta) / (2 * jnp.pi)


def _abs_dual(k11, k22, k12):
    norm, theta = _angle(k11, k22, k12)
    return (2 / jnp.pi) * norm * (jnp.sin(theta) + (jnp.pi / 2 - theta) * jnp.cos(theta))


def _abs_dual_deriv(k11, k22, k12):
    _, theta = _angle(k11, k22, k12)
    return 1 - 2 * theta / jnp.pi


def _identity_dual(k11, k22, k12):
    return k12 + 0 * (k11 + k22)


def _identity_dual_deriv(k11, k22, k12):
    return jnp.ones_like(k12 + k11 + k22)


def _erf_dual(k11, k22, k12):
    a = (1 + 2 * k11) * (1 + 2 * k22)
    return (2 / jnp.pi) * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(a), -1.0, 1.0))


def _erf_dual_deriv(k11, k22, k12):
    return (4 / jnp.pi) / jnp.sqrt((1 + 2 * k11) * (1 + 2 * k22) - 4 * k12**2)


def _homogeneous_parts(fn) -> tuple[float, float]:
    """``(a, b)`` with ``phi(x) = a relu(x) - b relu(-x)`` for positively homogeneous phi."""
    with jax.ensure_compile_time_eval():
        return float(fn(jnp.float64(1.0))), -float(fn(jnp.float64(-1.0)))


class Activation(eqx.Module):
    """A coordinatewise activation phi with derivatives and Gaussian dual expectations.

    Attributes:
        name: registry name (or the callable's ``__name__``).
        fn: JAX-traceable scalar function, applied elementwise to arrays.
        closed_dual: optional closed form ``(k11, k22, k12) -> V_phi``.
        closed_dual_deriv: optional closed form ``(k11, k22, k12) -> V_phi'``.
        smooth: whether phi is C^2 at 0 (ReLU-like kinks are not); form B needs it.
        homogeneous: whether phi(a x) = a phi(x) for a > 0 (ReLU, |x|, identity, leaky
            ReLU): kernels then depend on a pair of inputs only through its norms and angle.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    closed_dual: DualFn | None = None
    closed_dual_deriv: DualFn | None = None
    smooth: bool = True
    homogeneous: bool = False

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)

    def deriv(self, x: jax.Array) -> jax.Array:
        """phi'(x), elementwise, by autodiff."""
        x = jnp.asarray(x)
        return jnp.vectorize(jax.grad(self.fn))(x)

    def second_deriv(self, x: jax.Array) -> jax.Array:
        """phi''(x), elementwise, by autodiff."""
        x = jnp.asarray(x)
        return jnp.vectorize(jax.grad(jax.grad(self.fn)))(x)

    @property
    def phi0(self) -> float:
        """phi(0)."""
        with jax.ensure_compile_time_eval():  # a Python float even under jit
            return float(self.fn(jnp.float64(0.0)))

    @property
    def p1(self) -> float:
        """phi'(0)."""
        with jax.ensure_compile_time_eval():  # a Python float even under jit
            return float(self.deriv(jnp.float64(0.0)))

    @property
    def p2(self) -> float:
        """phi''(0)."""
        with jax.ensure_compile_time_eval():  # a Python float even under jit
            return float(self.second_deriv(jnp.float64(0.0)))

    def dual(self, k11, k22, k12, *, nodes: int = 64) -> jax.Array:
        """V_phi = E[phi(u) phi(u')], broadcast over arrays of 2 x 2 covariances.

        Closed forms where registered; for other positively homogeneous phi
        (``a relu(x) - b relu(-x)``) the exact ``(a^2 + b^2) V_relu(k12) - 2ab V_relu(-k12)``;
        otherwise ``nodes``-point product Gauss-Hermite quadrature.
        """
        k11, k22, k12 = _as_float(k11, k22, k12)
        if self.closed_dual is not None:
            return self.closed_dual(k11, k22, k12)
        if self.homogeneous:
            a, b = _homogeneous_parts(self.fn)
            return ((a * a + b * b) * _relu_dual(k11, k22, k12)
                    - 2 * a * b * _relu_dual(k11, k22, -k12))
        return self._quadrature(self.fn, k11, k22, k12, nodes)

    def dual_deriv(self, k11, k22, k12, *, nodes: int = 64) -> jax.Array:
        """V_phi' = E[phi'(u) phi'(u')], broadcast over arrays of 2 x 2 covariances."""
        k11, k22, k12 = _as_float(k11, k22, k12)
        if self.closed_dual_deriv is not None:
            return self.closed_dual_deriv(k11, k22, k12)
        if self.homogeneous:
            a, b = _homogeneous_parts(self.fn)
            return ((a * a + b * b) * _relu_dual_deriv(k11, k22, k12)
                    + 2 * a * b * _relu_dual_deriv(k11, k22, -k12))
        return self._quadrature(self.deriv, k11, k22, k12, nodes)

    def mean(self, var, *, nodes: int = 64) -> jax.Array:
        """nu(v) = E phi(sqrt(v) Z) for Z ~ N(0, 1) (exact for homogeneous phi)."""
        s = jnp.sqrt(jnp.asarray(var, jnp.float64))
        if self.homogeneous:
            a, b = _homogeneous_parts(self.fn)
            return s * (a - b) / math.sqrt(2 * math.pi)
        z, w = gauss_hermite(nodes)
        return jnp.sum(w * self.fn(s[..., None] * z), axis=-1)

    def second_moment(self, var, *, nodes: int = 64) -> jax.Array:
        """nu_2(v) = E phi(sqrt(v) Z)^2 = V_phi(v, v, v)."""
        return self.dual(var, var, var, nodes=nodes)

    @staticmethod
    def _quadrature(f, k11, k22, k12, nodes):
        # u = sqrt(k11) z1, u' = sqrt(k22) (rho z1 + sqrt(1 - rho^2) z2): a product rule
        # that is exact for the degenerate case k11 = 0 as well (then rho = 0 and u = 0).
        k11, k22, k12 = _as_float(k11, k22, k12)
        norm, theta = _angle(k11, k22, k12)
        rho = jnp.cos(theta)
        z, w = gauss_hermite(nodes)
        z1, z2 = z[:, None], z[None, :]
        ww = w[:, None] * w[None, :]
        e = (...,) + (None, None)
        u = jnp.sqrt(k11)[e] * z1
        v = jnp.sqrt(k22)[e] * (rho[e] * z1 + jnp.sqrt(1 - rho[e] ** 2) * z2)
        del norm
        return jnp.sum(ww * f(u) * f(v), axis=(-2, -1))


def _as_float(*arrays):
    return jnp.broadcast_arrays(*(jnp.asarray(a, jnp.float64) for a in arrays))


def _gelu(x):
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def _swish(x):
    return x * jax.nn.sigmoid(x)


def _softplus_shifted(x):
    return jax.nn.softplus(x) - math.log(2.0)


def _leaky_relu(x, slope=0.1):
    return jnp.where(x > 0, x, slope * x)


_REGISTRY: dict[str, Activation] = {}
_ALIASES = {"linear": "identity", "id": "identity", "shifted_softplus": "softplus_shifted"}


def register_activation(activation: Activation, *, overwrite: bool = False) -> Activation:
    """Add an activation to the registry under ``activation.name``."""
    if activation.name in _REGISTRY and not overwrite:
        raise ValueError(f"activation {activation.name!r} is already registered")
    _REGISTRY[activation.name] = activation
    return activation


for _act in (
    Activation("relu", jax.nn.relu, _relu_dual, _relu_dual_deriv, smooth=False,
               homogeneous=True),
    Activation("abs", jnp.abs, _abs_dual, _abs_dual_deriv, smooth=False, homogeneous=True),
    Activation("identity", lambda x: x, _identity_dual, _identity_dual_deriv,
               homogeneous=True),
    Activation("tanh", jnp.tanh),
    Activation("erf", _erf, _erf_dual, _erf_dual_deriv),
    Activation("gelu", _gelu),
    Activation("swish", _swish),
    Activation("softplus_shifted", _softplus_shifted),
    Activation("sin", jnp.sin),
    Activation("leaky_relu", _leaky_relu, smooth=False, homogeneous=True),
):
    register_activation(_act)


def activation_names() -> list[str]:
    """Names accepted by :func:`get_activation`, aliases included."""
    return sorted([*_REGISTRY, *_ALIASES])


def get_activation(spec: str | Activation | Callable) -> Activation:
    """Resolve a registry name, an :class:`Activation` or a plain callable.

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
        TypeError: for anything that is neither a string nor callable.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = _ALIASES.get(spec.lower(), spec.lower())
        if key not in _REGISTRY:
            raise ValueError(
                f"unknown activation {spec!r}; choose one of {activation_names()} "
                "or pass a callable"
            )
        return _REGISTRY[key]
    if callable(spec):
        return Activation(getattr(spec, "__name__", "custom"), spec)
    raise TypeError(f"activation must be a name or a callable, got {type(spec).__name__}")

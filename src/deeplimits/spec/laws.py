"""Laws of the standardised parameter noise epsilon (``forward.md`` §2).

Every layer draws ``b_l = mu_b dt + sigma_b sqrt(dt) eps_b`` and
``W_l = M dt + s_w sqrt(dt) E_l`` where the entries of ``eps_b`` and ``E_l`` are i.i.d. with
mean 0 and variance 1. A :class:`ParameterLaw` draws those standardised entries. The limit
depends on the law only through its first two moments (universality, ``forward.md`` §9), but
the exact-in-law samplers need Gaussian noise, so each law says whether it is Gaussian.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deeplimits._core.registry import Registry

__all__ = ["ParameterLaw", "Gaussian", "Rademacher", "Uniform", "CustomLaw", "get_law"]

class ParameterLaw(eqx.Module):
    """A standardised (mean 0, variance 1) law for parameter noise."""

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @property
    def is_gaussian(self) -> bool:
        return False

    def sample(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Draw i.i.d. standardised entries of the given shape.

        The entries are drawn flat and reshaped. With JAX's counter-based PRNG the numbers
        are the same as a draw of the full shape, but XLA on CPU compiles a flat draw about
        twice as fast as one of rank 3 or 4 (seconds per compiled sampler).
        """
        return self.draw(key, math.prod(shape), dtype).reshape(shape)

    @abc.abstractmethod
    def draw(self, key: jax.Array, size: int, dtype=jnp.float32) -> jax.Array:
        """``size`` i.i.d. standardised entries, shape ``(size,)``."""


class Gaussian(ParameterLaw):
    """Standard normal entries."""

    @property
    def name(self) -> str:
        return "gaussian"

    @property
    def is_gaussian(self) -> bool:
        return True

    def draw(self, key, size, dtype=jnp.float32):
        return jax.random.normal(key, (size,), dtype)


class Rademacher(ParameterLaw):
    """Entries +1 or -1 with probability 1/2 each."""

    @property
    def name(self) -> str:
        return "rademacher"

    def draw(self, key, size, dtype=jnp.float32):
        return jax.random.rademacher(key, (size,), dtype)


class Uniform(ParameterLaw):
    """Uniform on ``[-sqrt(3), sqrt(3)]`` (variance 1)."""

    @property
    def name(self) -> str:
        return "uniform"

    def draw(self, key, size, dtype=jnp.float32):
        s = math.sqrt(3.0)
        return jax.random.uniform(key, (size,), dtype, minval=-s, maxval=s)


class CustomLaw(ParameterLaw):
    """A user-supplied standardised law ``draw(key, shape, dtype) -> array``.

    The constructor checks by Monte Carlo (``2**16`` draws) that the mean is 0 and the
    variance 1 within six standard errors, so that a mis-scaled law is caught at once.
    """

    label: str
    fn: Callable

    def __init__(self, draw: Callable, name: str = "custom"):
        self.fn = draw
        self.label = name
        x = np.asarray(draw(jax.random.key(0), (2**16,), jnp.float64), dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"law {name!r} produced non-finite values")
        m, v = x.mean(), x.var()
        se_m = math.sqrt(v / x.size)
        se_v = math.sqrt(max(np.mean((x - m) ** 4) - v**2, 1e-12) / x.size)
        if abs(m) > 6 * se_m or abs(v - 1) > 6 * se_v:
            raise ValueError(
                f"law {name!r} must be standardised (mean 0, variance 1); "
                f"measured mean {m:.4f}, variance {v:.4f}"
            )

    @property
    def name(self) -> str:
        return self.label

    def draw(self, key, size, dtype=jnp.float32):
        return jnp.asarray(self.fn(key, (size,), dtype), dtype)


_LAWS: Registry[type[ParameterLaw]] = Registry(
    "parameter law", lambda law: law.__name__.lower(), aliases={"normal": "gaussian"},
    case_sensitive=False)
for _law in (Gaussian, Rademacher, Uniform):
    _LAWS.register(_law)


def get_law(spec: str | ParameterLaw | Callable) -> ParameterLaw:
    """Resolve ``"gaussian"``, ``"rademacher"``, ``"uniform"``, a law, or a draw callable."""
    if isinstance(spec, ParameterLaw):
        return spec
    if isinstance(spec, str):
        return _LAWS.get(spec)()
    if callable(spec):
        return CustomLaw(spec, getattr(spec, "__name__", "custom"))
    raise TypeError(f"law must be a name, a ParameterLaw or a callable, got {type(spec)}")

"""Checks at the public boundary: clear errors before any work starts."""

from __future__ import annotations

import math
import numbers
import operator

import jax.numpy as jnp
import numpy as np

__all__ = ["check_inputs", "check_samples", "check_int", "check_real", "require_real",
           "as_int", "is_positive_int", "require"]


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as a Python int, or ``ValueError`` naming ``name`` unless it is an integer
    (NumPy integers included, bools not) of at least ``minimum``."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be {what}, got {value!r}") from None
    if count < minimum:
        raise ValueError(f"{name} must be {what}, got {count}")
    return count


def check_samples(value, name: str = "samples") -> int:
    """A positive integer count."""
    return check_int(value, name, 1)


def require_real(value, name: str) -> None:
    """``TypeError`` naming ``name`` unless ``value`` is a real number (no str, bool, None),
    checked before any arithmetic so the message is not Python's nameless one."""
    if value is None or isinstance(value, str | bytes | bool | complex) or (
            hasattr(value, "dtype") and not jnp.issubdtype(value.dtype, jnp.number)):
        raise TypeError(f"{name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")


def check_real(value, name: str, *, positive: bool = False, nonnegative: bool = False
               ) -> float:
    """``value`` as a finite Python float, or ``ValueError`` naming ``name`` (and the bound
    asked for: ``> 0`` with ``positive``, ``>= 0`` with ``nonnegative``)."""
    bound = " > 0" if positive else " >= 0" if nonnegative else ""
    if (hasattr(value, "dtype") and np.ndim(value) == 0
            and (np.issubdtype(value.dtype, np.integer)
                 or np.issubdtype(value.dtype, np.floating))):
        value = value.item()  # a 0-d NumPy or JAX array
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0) or (nonnegative and v < 0):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return v


def check_inputs(net, x, dtype) -> jnp.ndarray:
    """Inputs as a ``(k, net.input_dim)`` array of finite values.

    A 1-D array is one input. Raises ``ValueError`` naming the expected shape otherwise.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"inputs must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    d = net.input_dim
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] == 0:
        raise ValueError(
            f"inputs must have shape (inputs, {d}) (or ({d},) for one input), "
            f"got {np.shape(x)}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("inputs contain NaN or infinite values")
    return jnp.asarray(arr, dtype)


def as_int(value):
    """NumPy integers as Python ints; anything else (bools included) is left for the check."""
    if isinstance(value, bool):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


def is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def require(condition, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition``."""
    if not condition:
        raise ValueError(message)

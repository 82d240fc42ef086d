"""Checks at the public boundary: clear errors before any work starts."""

from __future__ import annotations

import operator

import jax.numpy as jnp
import numpy as np

__all__ = ["check_inputs", "check_samples"]

def check_samples(value, name: str = "samples") -> int:
    """A positive integer count."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if count <= 0:
        raise ValueError(f"{name} must be a positive integer, got {count}")
    return count


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

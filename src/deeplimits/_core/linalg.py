"""Small dense linear-algebra helpers shared by the samplers and SDEs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["psd_sqrt", "correlated_normal"]

def psd_sqrt(gram: jax.Array) -> jax.Array:
    """A square root ``R`` with ``R @ R.T == gram`` for a symmetric PSD ``(k, k)`` matrix.

    Uses an eigendecomposition with negative eigenvalues clipped to zero, so singular Gram
    matrices (duplicate inputs, phi(x) = 0) are handled exactly and no jitter is ever added
    (``forward.md`` §5). A ``1 x 1`` matrix takes the scalar square root.
    """
    if gram.shape[-1] == 1:
        return jnp.sqrt(jnp.clip(gram, 0.0))
    lam, q = jnp.linalg.eigh(0.5 * (gram + jnp.swapaxes(gram, -1, -2)))
    return q * jnp.sqrt(jnp.clip(lam, 0.0))[..., None, :]


def correlated_normal(key: jax.Array, gram: jax.Array, width: int, dtype) -> jax.Array:
    """``(k, width)`` array whose columns are i.i.d. ``N(0, gram)``."""
    z = jax.random.normal(key, (gram.shape[-1], width), dtype)
    root = psd_sqrt(gram).astype(dtype)
    # one input: a scalar scale, O(width) work with no matmul
    return root * z if gram.shape[-1] == 1 else root @ z

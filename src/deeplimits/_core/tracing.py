"""Split from ``deeplimits._depth_flow``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def traced_floats(tree):
    """``tree`` with its Python floats as 0-d arrays: under ``eqx.filter_jit`` they are then
    traced arguments instead of constants compiled into the program. The arrays are weakly
    typed, like the floats they replace: they take the precision of the arrays they meet, so
    a float32 simulation stays in float32."""
    return jax.tree.map(lambda v: jnp.asarray(v) if isinstance(v, float) else v, tree)

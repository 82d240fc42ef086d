"""The flow in depth of wide-network kernel dynamics, shared by dense and conv kernels.

A dynamics object provides ``field(state)`` (the right-hand side of the depth ODE) and
``layer(state, dt)`` (one layer of the infinitely wide network of finite depth). At finite
depth the kernel is ``L`` layer maps with ``dt = T / L``; at infinite depth it is the ODE,
integrated by classical RK4 (``kernels.md`` §4, §5).

The step count and size are traced values, and so are the network's float
hyperparameters (:func:`traced_floats`): one compilation serves every depth of a depth
sweep and every point of a hyperparameter grid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rk4_step(field, y, h):
    """One classical Runge-Kutta step of ``y' = field(y)`` for a pytree state ``y``."""
    add = lambda y, k, a: jax.tree.map(lambda u, v: u + a * v, y, k)
    k1 = field(y)
    k2 = field(add(y, k1, h / 2))
    k3 = field(add(y, k2, h / 2))
    k4 = field(add(y, k3, h))
    return jax.tree.map(lambda u, a, b, c, d: u + h / 6 * (a + 2 * b + 2 * c + d),
                        y, k1, k2, k3, k4)


def flow(dynamics, state, count, h, rk4: bool):
    """``count`` steps of size ``h`` from ``state``: RK4 of ``dynamics.field`` when ``rk4``
    (infinite depth), else ``dynamics.layer`` (one layer each, finite depth)."""
    if rk4:
        step = lambda _, y: rk4_step(dynamics.field, y, h)
    else:
        step = lambda _, y: dynamics.layer(y, h)
    return jax.lax.fori_loop(0, count, step, state)


def step_plan(depth: float, steps: int, horizon: float) -> tuple[jax.Array, jax.Array, bool]:
    """``(count, h, rk4)`` for :func:`flow`: ``steps`` RK4 steps on ``[0, horizon]`` at
    infinite depth, else ``depth`` layers of ``horizon / depth``; count and step as arrays so
    that they are traced."""
    rk4 = depth == float("inf")
    count = int(steps) if rk4 else int(depth)
    return jnp.asarray(count), jnp.asarray(horizon / count, jnp.float64), rk4


def traced_floats(tree):
    """``tree`` with its Python floats as 0-d arrays: under ``eqx.filter_jit`` they are then
    traced arguments instead of constants compiled into the program. The arrays are weakly
    typed, like the floats they replace: they take the precision of the arrays they meet, so
    a float32 simulation stays in float32."""
    return jax.tree.map(lambda v: jnp.asarray(v) if isinstance(v, float) else v, tree)

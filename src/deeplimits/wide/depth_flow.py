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

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Kernel", "flow", "rk4_step", "step_plan"]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Output kernels of a wide network (dense or convolutional) for inputs ``x1`` (rows) and
    ``x2`` (columns).

    Attributes:
        nngp: ``K_f``, float64 ``(len(x1), len(x2))``.
        ntk: ``Theta`` of the same shape, or ``None`` if not computed.
        depth: the depth (``math.inf`` for the ODE limit).
    """

    nngp: np.ndarray
    ntk: np.ndarray | None
    depth: float


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

"""The flow in depth of wide-network kernel dynamics, shared by dense and conv kernels.

A dynamics object provides ``field(state)`` (the right-hand side of the depth ODE) and
``layer(state, dt)`` (one layer of the infinitely wide network of finite depth). At finite
depth the kernel is ``L`` layer maps with ``dt = T / L``; at infinite depth it is the ODE,
integrated by classical RK4 (``kernels.md`` §4, §5) with a step count chosen from a
tolerance (:func:`choose_steps`: step doubling on a pilot set of pairs, the Richardson
estimate ``|y_n - y_2n| 16/15`` of the error of ``n`` steps), or given.

The step count and size are traced values, and so are the network's float
hyperparameters (:func:`traced_floats`): one compilation serves every depth of a depth
sweep and every point of a hyperparameter grid.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Kernel", "flow", "rk4_step", "step_plan", "choose_steps", "DEFAULT_RTOL",
           "MAX_STEPS", "pilot_indices", "relative_difference"]

DEFAULT_RTOL = 1e-9
"""The one default accuracy of every infinite-depth kernel entry point: the RK4 step count
is the smallest found whose estimated error, relative to the largest kernel entry, is at
most this, on the NNGP and the NTK."""

MAX_STEPS = 2**14
"""Step doubling stops here (with a warning if the tolerance is not met)."""

_FIRST_STEPS = 4

_MIN_RATE = 8.0  # e(n/2) / e(n) at least this (order >= 3 of RK4's 4) to trust a prediction

_SAFETY = 0.5  # steps are chosen for an estimate of at most _SAFETY * rtol: the estimate
# is asymptotic and the pilot pairs stand for, but are not, all pairs (costs 2^(1/4) steps)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Output kernels of a wide network (dense or convolutional) for inputs ``x1`` (rows) and
    ``x2`` (columns).

    Attributes:
        nngp: ``K_f``, float64 ``(len(x1), len(x2))``.
        ntk: ``Theta`` of the same shape, or ``None`` if not computed.
        depth: the depth (``math.inf`` for the ODE limit).
        steps: the RK4 steps used at infinite depth (``None`` at finite depth).
        error: at infinite depth, the estimated discretisation error of the NNGP and NTK,
            relative to the largest entry of each (the larger of the two): the Richardson
            estimate of :func:`choose_steps` on its pilot pairs (measured, or predicted by
            the rate the estimates converged at); ``None`` at finite depth,
            where the recursion is exact up to rounding.
        table_error: when the kernel was evaluated from a Chebyshev table of pair flows
            (:mod:`deeplimits.wide.pair_tables`), the measured difference between the table
            and the general path (same depth and steps) on the pilot pairs, relative to the
            largest entry (larger of NNGP and NTK); ``None`` when no table was used.
    """

    nngp: np.ndarray
    ntk: np.ndarray | None
    depth: float
    steps: int | None = None
    error: float | None = None
    table_error: float | None = None


_RK4_NODES = np.array([0.0, 0.5, 0.5, 1.0])
_RK4_WEIGHTS = np.array([1.0, 2.0, 2.0, 1.0]) / 6


def rk4_step(field, y, h):
    """One classical Runge-Kutta step of ``y' = field(y)`` for a pytree state ``y``.

    The four stages run as a ``lax.scan`` over the stage index, so that ``field`` is traced
    (and compiled) once per step instead of four times: for a dual given by a long series
    (the Mehler series of smooth activations) that divides the compile time by about four.
    """
    def stage(carry, coef):
        k_prev, acc = carry
        node, weight = coef
        k = field(jax.tree.map(lambda u, v: u + node * h * v, y, k_prev))
        return (k, jax.tree.map(lambda a, v: a + weight * v, acc, k)), None

    zeros = jax.tree.map(jnp.zeros_like, y)
    coefs = (jnp.asarray(_RK4_NODES), jnp.asarray(_RK4_WEIGHTS))
    (_, acc), _ = jax.lax.scan(stage, (zeros, zeros), coefs)
    return jax.tree.map(lambda u, a: u + h * a, y, acc)


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


def pilot_indices(values: np.ndarray, rows: int = 16) -> np.ndarray:
    """``rows`` indices standing for inputs whose initial variances are ``values``: the
    smallest and the largest, then evenly spaced ones (repeated when there are fewer
    inputs, so that the pilot tile has one shape and compiles once)."""
    values = np.asarray(values)
    even = np.linspace(0, len(values) - 1, rows - 2).round().astype(int)
    idx = np.concatenate([[int(np.argmin(values)), int(np.argmax(values))], even])
    return idx[:rows]


def relative_difference(a, b) -> float:
    """``max |a - b| / max |b|`` over every array of the tuples (largest over arrays)."""
    worst = 0.0
    for u, v in zip(a, b, strict=True):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        scale = float(np.max(np.abs(v))) if v.size else 0.0
        diff = float(np.max(np.abs(u - v))) if v.size else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst if np.isfinite(worst) else math.inf


def choose_steps(pilot: Callable[[int], tuple], rtol: float, steps: int | None = None,
                 ) -> tuple[int, float]:
    """RK4 step count for a tolerance, and the estimated error of that count.

    ``pilot(n)`` returns the outputs (a tuple of arrays) of ``n`` RK4 steps on a small set
    of pairs that stands for the kernel (its extreme and evenly spaced inputs). RK4's
    error is ``C h^4`` asymptotically, so ``e(n) = |y_n - y_2n| 16/15`` estimates the error
    of ``n`` steps. With ``steps`` given, returns ``(steps, e(steps))``. Otherwise ``n``
    doubles from 4 until the tolerance ``rtol / 2`` (a margin for an asymptotic estimate on
    pilot pairs) is met within ``(n, 2n]``:

    * if ``e(n)`` meets it, the count ``n* = n (2 e(n)/rtol)^(1/4)`` predicted by the rate
      (at most ``n``, more than ``n/2``) is tried, and kept if its own measured ``e(n*)``
      meets ``rtol / 2`` (else ``n``);
    * if the estimates already converge at the rate (``e(n/2) / e(n) >= 8``, i.e. an
      observed order ``p = log2(e(n/2) / e(n)) >= 3``, used capped at 4) and the rate
      predicts ``e(m) = e(n) (n / m)^p <= rtol / 2`` for some ``m <= 2n``, the smallest such
      ``m`` (times 1.05) is returned with that predicted error: the doubling stops one
      level (``y_4n``) and one verification (``y_n*``, ``y_2n*``) earlier, which halves the
      pilot's cost where every flow is expensive (a Mehler-series dual).

    Errors are relative to the largest entry of each output.
    """
    if steps is not None:
        return int(steps), 16 / 15 * relative_difference(pilot(steps), pilot(2 * steps))
    if not (isinstance(rtol, numbers.Real) and rtol > 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number > 0, got {rtol!r}")
    target = _SAFETY * rtol
    n, y_n = _FIRST_STEPS, pilot(_FIRST_STEPS)
    previous = None  # e(n / 2)
    while True:
        y_2n = pilot(2 * n)
        err = 16 / 15 * relative_difference(y_n, y_2n)
        if err <= target:
            break
        if previous is not None and err > 0 and previous / err >= _MIN_RATE:
            order = min(4.0, math.log2(previous / err))
            if err * 2.0**-order <= target:  # the rate reaches the target within (n, 2n]
                m = min(2 * n, math.ceil(n * (err / target) ** (1 / order) * 1.05))
                return m, err * (n / m) ** order
        if 2 * n > MAX_STEPS:
            warnings.warn(f"RK4 with {n} steps has an estimated error {err:.2g} > rtol = "
                          f"{rtol:.2g}; returning it (MAX_STEPS = {MAX_STEPS})", stacklevel=3)
            return n, err
        n, y_n, previous = 2 * n, y_2n, err
    best = max(n // 2 + 1, math.ceil(n * (err / target) ** 0.25 * 1.05)) if err > 0 else n
    best = max(1, min(n, best))
    if best < n:
        err_best = 16 / 15 * relative_difference(pilot(best), pilot(2 * best))
        if err_best <= target:
            return best, err_best
    return n, err

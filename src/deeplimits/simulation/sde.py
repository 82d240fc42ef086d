"""Pathwise solutions of the limiting SDE (diffrax) and the finite networks coupled to them."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from deeplimits._core.validation import check_inputs, check_samples
from deeplimits.spec.networks import ResNet

__all__ = ["solve_sde", "brownian_increments", "network_on_path"]

def _path_keys(key, samples):
    """Per-sample ``(embed, brownian)`` keys shared by :func:`solve_sde` and
    :func:`network_on_path`, so that both see the same path."""
    keys = jax.random.split(key, samples)
    return jax.vmap(lambda k: jax.random.split(k))(keys)


def solve_sde(
    net: ResNet,
    x,
    key: jax.Array,
    *,
    steps: int,
    samples: int = 1,
    solver: diffrax.AbstractSolver | None = None,
    trajectory: bool = False,
    dtype=jnp.float64,
) -> jax.Array:
    """Solve the pathwise limiting SDE with diffrax on one Brownian path per sample.

    Args:
        net: the network (forms A and B; form C has no finite pathwise form).
        x: inputs ``(k, input_dim)``.
        key: JAX key; sample ``s`` uses the path of ``jax.random.split(key, samples)[s]``.
        steps: constant steps on ``[0, T]``.
        solver: a diffrax solver (default :class:`diffrax.Euler`, i.e. Euler-Maruyama).
        trajectory: also return the states at the ``steps + 1`` grid times.

    Returns:
        ``(samples, k, n)``, or ``(samples, steps + 1, k, n)`` with ``trajectory``.
    """
    sde = net.sde()
    sde.brownian_shapes()  # form C raises here, before any work
    x = check_inputs(net, x, dtype)
    check_samples(samples)
    check_samples(steps, "steps")
    solver = diffrax.Euler() if solver is None else solver
    return _solve_paths(net, solver, x, _path_keys(key, samples), steps, trajectory, dtype)


# Compiled once per network, shapes and options (module-level, so that a repeated call
# reuses the program: diffrax's Brownian tree takes seconds to compile and, holding host
# callbacks, cannot enter JAX's persistent cache)
@eqx.filter_jit
def _solve_paths(net, solver, x, keys, steps: int, trajectory: bool, dtype):
    sde, T = net.sde(), net.horizon
    grid = jnp.linspace(0.0, T, steps + 1)
    saveat = diffrax.SaveAt(ts=grid) if trajectory else diffrax.SaveAt(t1=True)

    def one(keys):
        X0 = net.embed(keys[0], x)
        bm = sde.brownian_motion(keys[1], dtype)
        sol = diffrax.diffeqsolve(
            sde.terms(bm), solver, 0.0, T, T / steps, X0, saveat=saveat, max_steps=steps,
        )
        return sol.ys if trajectory else sol.ys[-1]

    return jax.vmap(one)(keys)


@eqx.filter_jit
def _increments(net, keys, steps: int, dtype):
    sde = net.sde()
    grid = jnp.linspace(0.0, net.horizon, steps + 1)

    def one(keys):
        bm = sde.brownian_motion(keys[1], dtype)
        return jax.vmap(bm.evaluate)(grid[:-1], grid[1:])

    return jax.vmap(one)(keys)


@eqx.filter_jit
def _network_on_increments(net, x, coarse, embed_keys, trajectory: bool):
    def one(dB, embed_key):
        params = net.params_from_increments(dB, embed_key)
        return net.apply(params, x, trajectory=trajectory)

    return jax.vmap(one)(coarse, embed_keys)


def brownian_increments(
    net: ResNet, key: jax.Array, *, steps: int, samples: int = 1, dtype=jnp.float64
) -> dict[str, jax.Array]:
    """Increments of the driving Brownian motions over ``steps`` equal steps of ``[0, T]``.

    The path of sample ``s`` is the one :func:`solve_sde` uses with the same ``key``.
    Returns ``{"W": (samples, steps, n, n), "b": (samples, steps, n)}``; summing groups of
    consecutive increments gives those of any coarser grid.
    """
    sde = net.sde()
    sde.brownian_shapes()
    check_samples(samples)
    check_samples(steps, "steps")
    return _increments(net, _path_keys(key, samples), steps, dtype)


def network_on_path(
    net: ResNet,
    x,
    key: jax.Array,
    *,
    samples: int = 1,
    trajectory: bool = False,
    increments: dict[str, jax.Array] | None = None,
    dtype=jnp.float64,
) -> jax.Array:
    """The finite network whose parameters are the Brownian increments of the SDE path.

    Layer ``l`` uses ``W_l = M dt + s_w (B^W_{t_l} - B^W_{t_{l-1}})`` and
    ``b_l = mu_b dt + sigma_b (B^b_{t_l} - B^b_{t_{l-1}})``: Gaussian parameters of exactly
    the network's law, coupled to :func:`solve_sde` with the same ``key``. For form A the
    result equals ``solve_sde(..., steps=net.depth)`` up to rounding (the Euler-Maruyama
    identity); for form B it converges to the SDE path as the depth grows.

    ``increments`` (from :func:`brownian_increments` on a grid of ``m * depth`` steps, same
    key) skips re-evaluating the path: groups of ``m`` fine increments are summed.
    """
    x = check_inputs(net, x, dtype)
    if increments is None:
        increments = brownian_increments(net, key, steps=net.depth, samples=samples,
                                         dtype=dtype)
    fine = increments["b"].shape[1]
    if fine % net.depth:
        raise ValueError(f"increments on {fine} steps cannot be grouped into depth "
                         f"{net.depth}: the depth must divide the number of steps")
    coarse = jax.tree.map(
        lambda a: a.reshape(a.shape[0], net.depth, fine // net.depth, *a.shape[2:]).sum(2),
        increments,
    )
    embed_keys = _path_keys(key, coarse["b"].shape[0])[:, 0]
    return _network_on_increments(net, x, coarse, embed_keys, trajectory)

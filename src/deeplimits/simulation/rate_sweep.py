r"""Learning-rate sweeps across depth under two parameterisations (``trained_scaling.md`` §10).

The network is the fully connected recursion of §2 without delta (variant ``none``),
``h_{k+1} = h_k + m_L sigma(A_k h_k + b_k)``, trained for a fixed budget of epochs (no
early stop: the optimal learning rate of a budget is what is compared across depth):

==================  ======================  ==========================================
parameterisation    branch multiplier m_L   learning rate used for base rate eta
==================  ======================  ==========================================
``standard``        1                       eta (SGD and Adam)
``depth-mup``       1 / sqrt(L)             eta (SGD); eta / sqrt(L) (Adam, RMSprop)
==================  ======================  ==========================================

Why these rates [derived, TP6]: a gradient step changes the output by about
``sum_k m_L^2 |g_k|^2 eta`` under SGD (each layer's gradient carries one factor m_L and its
effect on the output another), i.e. ``L m_L^2 eta``: O(eta) under Depth-muP, ``L eta`` in the
standard parameterisation, whose best rate therefore falls like 1/L. Adam moves every
parameter by about eta whatever its gradient, so the output moves by ``L m_L eta``:
``sqrt(L) eta`` under Depth-muP (hence the rule eta / sqrt(L)), ``L eta`` in the standard one.

:func:`train_rate_grid` trains every (parameterisation, depth, base rate, seed) cell of a
grid with one compiled, vmapped epoch function per group of depths (the one of
:mod:`deeplimits.simulation.training`: cells padded with exact no-op layers). A cell's
initial weights and mini-batch order depend on (seed, depth) only, so the cells of one
(depth, seed) differ by their parameterisation and rate alone (common random numbers
across the rate grid, which makes the loss-versus-rate curve smooth).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from deeplimits._core.keys import seed_key
from deeplimits._core.provenance import provenance
from deeplimits.data.scaling import ScalingData
from deeplimits.simulation.training import (  # the epoch machinery of train_cells, reused
    TrainConfig,
    _epoch_fn,
    _eval_fn,
    _init_cell,
    _select,
    depth_buckets,
    load_data,
)
from deeplimits.spec.trainable import init_fc_resnet

__all__ = ["PARAMETERISATIONS", "branch_multiplier", "rate_used", "train_rate_grid"]

PARAMETERISATIONS = ("standard", "depth-mup")


def _check_parameterisation(name: str) -> None:
    if name not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, got {name!r}")


def branch_multiplier(parameterisation: str, depth: int) -> float:
    """``m_L``: 1 (standard) or ``1/sqrt(L)`` (Depth-muP)."""
    _check_parameterisation(parameterisation)
    return 1.0 / math.sqrt(depth) if parameterisation == "depth-mup" else 1.0


def rate_used(parameterisation: str, optimizer: str, base_rate: float, depth: int) -> float:
    """The learning rate a cell trains with: ``eta`` except Depth-muP with an adaptive
    optimiser (Adam, RMSprop), ``eta / sqrt(L)``."""
    _check_parameterisation(parameterisation)
    if parameterisation == "depth-mup" and optimizer != "sgd":
        return base_rate / math.sqrt(depth)
    return base_rate


def _check_grid(depths, rates, seeds, parameterisations, config) -> None:
    if not depths or any(isinstance(L, bool) or int(L) != L or L < 1 for L in depths):
        raise ValueError(f"depths must be integers >= 1, got {list(depths)}")
    if len(set(depths)) != len(depths):
        raise ValueError(f"depths must be distinct, got {list(depths)}")
    if not rates or not all(isinstance(r, int | float) and math.isfinite(r) and r > 0
                            for r in rates) or len(set(rates)) != len(rates):
        raise ValueError(f"rates must be distinct finite numbers > 0, got {list(rates)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {list(seeds)}")
    if not parameterisations or len(set(parameterisations)) != len(parameterisations):
        raise ValueError(f"parameterisations must be distinct, got {list(parameterisations)}")
    for p in parameterisations:
        _check_parameterisation(p)
    if config.delta != "none":
        raise ValueError("a rate sweep compares branch multipliers, so the model must have no "
                         f"trainable delta (TrainConfig(delta='none')), got {config.delta!r}")
    if config.depth_scaled:
        raise ValueError("the parameterisation sets the multiplier and rate rule; pass "
                         "TrainConfig(depth_scaled=False)")


def train_rate_grid(config: TrainConfig, depths: Sequence[int], rates: Sequence[float],
                    seeds: Sequence[int], *,
                    parameterisations: Sequence[str] = PARAMETERISATIONS,
                    data: ScalingData | None = None, bucket_ratio: float = 2.0) -> xr.Dataset:
    """Train every (parameterisation, depth, base rate, seed) cell for ``config.max_epochs``
    epochs (``tol`` and ``patience`` are not used: a fixed budget) with ``config``'s
    optimiser, loss, batch size, activation and initialisation.

    Returns a dataset with dimensions (parameterisation, depth, rate, seed):

    * ``loss``: the full training-set loss after the budget; a cell whose loss turned
      non-finite, or ended above its initial loss, gets its initial loss (a diverged run
      is no better than no training), and ``diverged`` says which;
    * ``initial_loss``: the training loss at initialisation (shared by the rates);
    * ``rate_used`` (parameterisation, depth, rate): the learning rate of :func:`rate_used`.

    Attributes: the configuration (JSON), the data set, versions and seeds (provenance).

    Raises:
        ValueError: for a bad grid, a model with a trainable delta, ``depth_scaled=True``
            or a batch size larger than the training set; all before any training.
    """
    depths = [int(L) for L in depths]
    rates = [float(r) for r in rates]
    seeds = [int(s) for s in seeds]
    parameterisations = list(parameterisations)
    _check_grid(depths, rates, seeds, parameterisations, config)
    data = load_data(config) if data is None else data
    n = data.x_train.shape[0]
    if n < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n} training samples")
    shape = (len(parameterisations), len(depths), len(rates), len(seeds))
    loss, initial = np.full(shape, np.nan), np.full(shape, np.nan)
    diverged = np.zeros(shape, bool)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    epoch, direction, _ = _epoch_fn(config, n)
    evaluate = _eval_fn(config.activation, config.delta, config.loss)
    skeleton = eqx.filter(init_fc_resnet(jax.random.key(0), 1, 1, activation=config.activation,
                                         delta=config.delta), eqx.is_array)
    for group in depth_buckets(depths, bucket_ratio):
        pad = max(group)
        cells = [(p, L, r, s) for p in range(len(parameterisations)) for L in group
                 for r in range(len(rates)) for s in seeds]
        inits = {(L, s): _init_cell(config, L, s, data.dim, pad) for L in group for s in seeds}
        stacked = [jnp.asarray(np.stack(a)) for a in zip(*[inits[(L, s)] for _, L, _, s in cells],
                                                         strict=True)]
        params = jax.tree.unflatten(jax.tree.structure(skeleton), stacked)
        opt_state = jax.vmap(direction.init)(params)
        scale = jnp.asarray(np.stack([
            np.where(np.arange(pad) < L, branch_multiplier(parameterisations[p], L), 0.0)
            for p, L, _, _ in cells]), jnp.float32)
        lr = jnp.asarray([rate_used(parameterisations[p], config.optimizer, rates[r], L)
                          for p, L, r, _ in cells], jnp.float32)
        keys = jax.random.wrap_key_data(jnp.stack([jax.random.key_data(seed_key(s, L))
                                                   for _, L, _, s in cells]))
        start = np.asarray(evaluate(params, scale, x, y), np.float64)
        active = np.ones(len(cells), bool)
        for e in range(config.max_epochs):
            new_params, new_state, value = epoch(params, opt_state, keys, jnp.int32(e + 1),
                                                 scale, lr, x, y)
            finite = np.isfinite(np.asarray(value, np.float64))
            active &= finite  # a cell stops at its last finite weights
            accept = jnp.asarray(active)
            params = _select(accept, new_params, params)
            opt_state = _select(accept, new_state, opt_state)
            if not active.any():
                break
        final = np.asarray(evaluate(params, scale, x, y), np.float64)
        bad = ~active | ~np.isfinite(final) | (final > start)
        for c, (p, L, r, s) in enumerate(cells):
            at = (p, depths.index(L), r, seeds.index(s))
            initial[at] = start[c]
            diverged[at] = bad[c]
            loss[at] = start[c] if bad[c] else final[c]
    used = np.array([[[rate_used(p, config.optimizer, r, L) for r in rates] for L in depths]
                     for p in parameterisations])
    attrs = provenance(config.to_dict(), seeds[0])
    attrs.update(data=data.name, epochs=config.max_epochs, seeds=seeds)
    return xr.Dataset(
        {"loss": (("parameterisation", "depth", "rate", "seed"), loss),
         "initial_loss": (("parameterisation", "depth", "rate", "seed"), initial),
         "diverged": (("parameterisation", "depth", "rate", "seed"), diverged),
         "rate_used": (("parameterisation", "depth", "rate"), used)},
        coords={"parameterisation": parameterisations, "depth": depths, "rate": rates,
                "seed": seeds}, attrs=attrs)

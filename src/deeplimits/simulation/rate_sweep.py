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

:func:`train_rate_grid` trains every (optimiser, parameterisation, depth, rate, seed) cell
of a grid with one compiled, vmapped epoch function per group of depths: cells are padded
with exact no-op layers as in :mod:`deeplimits.simulation.training`, and SGD and Adam cells
share the function (:func:`~deeplimits.simulation.training.epoch_fn` with both optimisers:
each step computes every optimiser's direction and a per-cell index picks one), so a grid
costs one compilation, not one per optimiser. A cell's
initial weights and mini-batch order depend on (seed, depth) only, so the cells of one
(depth, seed) differ by their optimiser, parameterisation and rate alone (common random
numbers across the rate grid, which makes the loss-versus-rate curve smooth).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from deeplimits._core.keys import seed_key
from deeplimits._core.provenance import provenance
from deeplimits.data.scaling import ScalingData
from deeplimits.simulation.training import (  # the machinery of train_cells, reused
    TrainConfig,
    depth_buckets,
    epoch_fn,
    eval_fn,
    init_cell,
    load_data,
    select_cells,
)
from deeplimits.spec.trainable import init_fc_resnet

__all__ = ["PARAMETERISATIONS", "RATE_OPTIMIZERS", "branch_multiplier", "rate_used",
           "train_rate_grid"]

PARAMETERISATIONS = ("standard", "depth-mup")

RATE_OPTIMIZERS = ("sgd", "adam")
"""The optimisers a rate sweep trains with; both in one compiled function (see
:func:`train_rate_grid`)."""


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


def _check_grid(depths, seeds, optimizers, parameterisations, config) -> None:
    if not depths or any(isinstance(L, bool) or int(L) != L or L < 1 for L in depths):
        raise ValueError(f"depths must be integers >= 1, got {list(depths)}")
    if len(set(depths)) != len(depths):
        raise ValueError(f"depths must be distinct, got {list(depths)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {list(seeds)}")
    for name, given, allowed in (("parameterisation", parameterisations, PARAMETERISATIONS),
                                 ("optimizer", optimizers, RATE_OPTIMIZERS)):
        if not given or len(set(given)) != len(given):
            raise ValueError(f"{name}s must be distinct, got {list(given)}")
        for v in given:
            if v not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {v!r}")
    if config.delta != "none":
        raise ValueError("a rate sweep compares branch multipliers, so the model must have no "
                         f"trainable delta (TrainConfig(delta='none')), got {config.delta!r}")
    if config.depth_scaled:
        raise ValueError("the parameterisation sets the multiplier and rate rule; pass "
                         "TrainConfig(depth_scaled=False)")


def _rate_table(rates, optimizers, parameterisations) -> np.ndarray:
    """(optimizer, parameterisation, rate_index) base rates from a shared sequence or a
    mapping ``{(optimizer, parameterisation): sequence}`` (equal lengths)."""
    if isinstance(rates, Mapping):
        missing = [(o, p) for o in optimizers for p in parameterisations if (o, p) not in rates]
        if missing:
            raise ValueError(f"rates has no grid for {missing}")
        table = [[list(rates[(o, p)]) for p in parameterisations] for o in optimizers]
    else:
        table = [[list(rates) for _ in parameterisations] for _ in optimizers]
    sizes = {len(g) for row in table for g in row}
    if len(sizes) != 1 or sizes == {0}:
        raise ValueError(f"every rate grid must be non-empty and of one length, got {sizes}")
    out = np.asarray(table, dtype=object)
    for grid in out.reshape(-1, out.shape[-1]):
        ok = all(isinstance(r, int | float) and not isinstance(r, bool) and math.isfinite(r)
                 and r > 0 for r in grid)
        if not ok or len(set(grid)) != len(grid) or list(grid) != sorted(grid):
            raise ValueError(f"rates must be distinct, increasing finite numbers > 0, got "
                             f"{list(grid)}")
    return out.astype(np.float64)


def train_rate_grid(config: TrainConfig, depths: Sequence[int],
                    rates: Sequence[float] | Mapping[tuple[str, str], Sequence[float]],
                    seeds: Sequence[int], *, optimizers: Sequence[str] = RATE_OPTIMIZERS,
                    parameterisations: Sequence[str] = PARAMETERISATIONS,
                    data: ScalingData | None = None, bucket_ratio: float = math.inf
                    ) -> xr.Dataset:
    """Train every (optimiser, parameterisation, depth, rate, seed) cell for
    ``config.max_epochs`` epochs (``tol`` and ``patience`` are not used: a fixed budget) with
    ``config``'s loss, batch size, activation and initialisation (``config.optimizer`` is
    replaced by ``optimizers``).

    ``rates``: base rates ``eta``, one increasing grid for all, or one per
    ``(optimizer, parameterisation)`` (equal lengths), so that each grid can be centred on
    where its optimum lies. ``bucket_ratio``: depths within this factor are trained together
    (:func:`~deeplimits.simulation.training.depth_buckets`; one compilation per group; the
    default trains all together).

    Returns a dataset with dimensions (optimizer, parameterisation, depth, rate_index, seed):

    * ``loss``: the full training-set loss after the budget; a cell whose loss turned
      non-finite, or ended above its initial loss, gets its initial loss (a diverged run
      is no better than no training), and ``diverged`` says which;
    * ``initial_loss``: the training loss at initialisation (shared by the rates);
    * ``rate`` (optimizer, parameterisation, rate_index): the base rates;
      ``rate_used`` (optimizer, parameterisation, depth, rate_index): :func:`rate_used`.

    Attributes: the configuration (JSON), the data set, versions and seeds (provenance).

    Raises:
        ValueError: for a bad grid, a model with a trainable delta, ``depth_scaled=True``
            or a batch size larger than the training set; all before any training.
    """
    depths = [int(L) for L in depths]
    seeds = [int(s) for s in seeds]
    optimizers, parameterisations = list(optimizers), list(parameterisations)
    _check_grid(depths, seeds, optimizers, parameterisations, config)
    table = _rate_table(rates, optimizers, parameterisations)
    data = load_data(config) if data is None else data
    n = data.x_train.shape[0]
    if n < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n} training samples")
    n_rates = table.shape[-1]
    shape = (len(optimizers), len(parameterisations), len(depths), n_rates, len(seeds))
    loss, initial = np.full(shape, np.nan), np.full(shape, np.nan)
    diverged = np.zeros(shape, bool)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    # one program for every optimiser: each cell takes its own direction (choice)
    epoch, init_state, _ = epoch_fn(config.activation, "none", tuple(optimizers), config.loss,
                                    config.batch_size, n)
    evaluate = eval_fn(config.activation, "none", config.loss)
    skeleton = eqx.filter(init_fc_resnet(jax.random.key(0), 1, 1, activation=config.activation,
                                         delta="none"), eqx.is_array)
    for group in depth_buckets(depths, bucket_ratio):
        pad = max(group)
        cells = [(o, p, L, r, s) for o in range(len(optimizers))
                 for p in range(len(parameterisations)) for L in group
                 for r in range(n_rates) for s in seeds]
        inits = {(L, s): init_cell(config, L, s, data.dim, pad) for L in group for s in seeds}
        stacked = [jnp.asarray(np.stack(a)) for a in zip(
            *[inits[(L, s)] for _, _, L, _, s in cells], strict=True)]
        params = jax.tree.unflatten(jax.tree.structure(skeleton), stacked)
        state = init_state(params)
        scale = jnp.asarray(np.stack([
            np.where(np.arange(pad) < L, branch_multiplier(parameterisations[p], L), 0.0)
            for _, p, L, _, _ in cells]), jnp.float32)
        lr = jnp.asarray([rate_used(parameterisations[p], optimizers[o], table[o, p, r], L)
                          for o, p, L, r, _ in cells], jnp.float32)
        choice = jnp.asarray([o for o, *_ in cells], jnp.int32)
        keys = jax.random.wrap_key_data(jnp.stack([jax.random.key_data(seed_key(s, L))
                                                   for *_, L, _, s in cells]))
        start = np.asarray(evaluate(params, scale, x, y), np.float64)
        active = np.ones(len(cells), bool)
        for e in range(config.max_epochs):
            new_params, new_state, value = epoch(params, state, keys, jnp.int32(e + 1), scale,
                                                 lr, choice, x, y)
            active &= np.isfinite(np.asarray(value, np.float64))  # stop at the last finite
            accept = jnp.asarray(active)
            params = select_cells(accept, new_params, params)
            state = select_cells(accept, new_state, state)
            if not active.any():
                break
        final = np.asarray(evaluate(params, scale, x, y), np.float64)
        bad = ~active | ~np.isfinite(final) | (final > start)
        for c, (o, p, L, r, s) in enumerate(cells):
            at = (o, p, depths.index(L), r, seeds.index(s))
            initial[at], diverged[at] = start[c], bad[c]
            loss[at] = start[c] if bad[c] else final[c]
    used = np.array([[[[rate_used(p, o, table[i, j, r], L) for r in range(n_rates)]
                       for L in depths] for j, p in enumerate(parameterisations)]
                     for i, o in enumerate(optimizers)])
    attrs = provenance(config.to_dict(), seeds[0])
    attrs.update(data=data.name, epochs=config.max_epochs, seeds=seeds)
    cell_dims = ("optimizer", "parameterisation", "depth", "rate_index", "seed")
    return xr.Dataset(
        {"loss": (cell_dims, loss), "initial_loss": (cell_dims, initial),
         "diverged": (cell_dims, diverged),
         "rate": (("optimizer", "parameterisation", "rate_index"), table),
         "rate_used": (("optimizer", "parameterisation", "depth", "rate_index"), used)},
        coords={"optimizer": optimizers, "parameterisation": parameterisations,
                "depth": depths, "rate_index": np.arange(n_rates), "seed": seeds},
        attrs=attrs)

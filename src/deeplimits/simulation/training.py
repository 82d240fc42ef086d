r"""Training :class:`~deeplimits.scaling.models.FCResNet` across a depth grid
(``trained_scaling.md`` §4, §10).

* :class:`TrainConfig`: model, optimiser (optax Adam / SGD / RMSprop), loss (MSE, mean over
  all entries; or softmax cross-entropy of the outputs against the targets), stopping
  rules (epoch-mean loss below ``tol``; ``patience`` epochs without a relative improvement of
  ``min_improvement`` on the best loss; ``max_epochs``) and the depth-scaled rule of §10
  (branch multiplier ``1/sqrt(L)``, Adam / RMSprop learning rate ``eta/sqrt(L)``, SGD ``eta``).
* :func:`train_depth`: pure; trains several seeds at one depth at once (``vmap``), each
  epoch one compiled ``lax.scan`` over mini-batches whose forward pass is a ``lax.scan``
  over layers. Returns one dataset per seed with the initial and trained weights, the loss
  curve and the status. A seed whose loss turns non-finite is stopped at its last finite
  weights and marked ``failed``; the other seeds carry on.
* :func:`train_sweep`: a thin driver writing one file per (depth, seed) cell atomically and
  a ``manifest.json``; a rerun skips cells already written. :func:`load_sweep` reads it back.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from deeplimits._core.keys import seed_key
from deeplimits._core.provenance import provenance
from deeplimits.data.scaling import ScalingData, digits_embedding, synthetic_ode_data
from deeplimits.spec.trainable import (
    ACTIVATIONS,
    DELTA_VARIANTS,
    INITS,
    FCResNet,
    MarionResNet,
    init_fc_resnet,
)

__all__ = [
    "TrainConfig", "OPTIMIZERS", "LOSSES", "load_data", "train_cells", "train_depth",
    "depth_buckets", "epoch_fn", "train_grid", "loss_fn", "cell_losses", "train_marion"
]

OPTIMIZERS = ("adam", "sgd", "rmsprop")


LOSSES = ("mse", "cross-entropy")


DATASETS = ("synthetic", "digits")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run except the depth and the seed (§4 defaults)."""

    activation: str = "tanh"
    delta: str = "shared"
    init: str = "xavier"
    init_scale: float = 1e-4
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 50
    max_epochs: int = 200
    loss: str = "mse"
    tol: float = 1e-3
    patience: int = 5
    min_improvement: float = 0.01
    depth_scaled: bool = False
    data: str = "synthetic"
    data_seed: int = 0

    def __post_init__(self):
        choices = {"activation": tuple(ACTIVATIONS), "delta": DELTA_VARIANTS, "init": INITS,
                   "optimizer": OPTIMIZERS, "loss": LOSSES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("batch_size", "max_epochs", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("init_scale", "learning_rate", "tol", "min_improvement"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def multiplier(self, depth: int) -> float:
        return 1.0 / math.sqrt(depth) if self.depth_scaled else 1.0

    def learning_rate_at(self, depth: int) -> float:
        if self.depth_scaled and self.optimizer != "sgd":
            return self.learning_rate / math.sqrt(depth)
        return self.learning_rate


def load_data(config: TrainConfig) -> ScalingData:
    """The built-in data set named by ``config.data`` (``synthetic`` or ``digits``)."""
    if config.data == "synthetic":
        return synthetic_ode_data(config.data_seed)
    if config.data == "digits":
        return digits_embedding(config.data_seed)
    raise ValueError(f"config.data must be one of {DATASETS} (or pass data=...), got "
                     f"{config.data!r}")


_DIRECTIONS = {"adam": optax.scale_by_adam, "sgd": optax.identity, "rmsprop": optax.scale_by_rms}


def loss_fn(model: FCResNet, x, y, loss: str = "mse", layer_scale=None) -> jax.Array:
    """MSE (mean over all entries) or softmax cross-entropy of ``model(x)`` against ``y``."""
    out = model(x, layer_scale)
    if loss == "mse":
        return jnp.mean((out - y) ** 2)
    return jnp.mean(optax.softmax_cross_entropy(out, y))




def static_part(activation: str, delta: str):
    dummy = init_fc_resnet(jax.random.key(0), 1, 1, activation=activation, delta=delta)
    return eqx.partition(dummy, eqx.is_array)[1]


def _epoch_fn(config: TrainConfig, n: int):
    return epoch_fn(config.activation, config.delta, (config.optimizer,), config.loss,
                    config.batch_size, n)


@functools.lru_cache(maxsize=32)
def epoch_fn(activation: str, delta: str, optimizers: tuple[str, ...], loss: str,
             batch_size: int, n: int):
    """One epoch for a batch of cells (vmapped): shuffle, then a ``lax.scan`` over
    mini-batches of gradient steps ``p <- p - lr * direction(grad)``, where each cell takes
    the direction of ``optimizers[choice]`` (``choice`` a per-cell index; with one optimizer
    it is ignored). Compiled once per configuration and shape (the padded depth).

    Returns ``(epoch, init_state, static)``: ``epoch(params, state, keys, epoch_number,
    layer_scale, lr, choice, x, y) -> (params, state, mean_loss)`` with a leading cell axis
    on every argument but ``epoch_number``, ``x`` and ``y``; ``init_state(params)`` the
    optimiser state of a batch of cells; ``static`` the model's non-array part."""
    static = static_part(activation, delta)
    directions = tuple(_DIRECTIONS[o]() for o in optimizers)
    nb = n // batch_size

    def update(grads, state, params, choice):
        if len(directions) == 1:
            return directions[0].update(grads, state, params)
        moved = [d.update(grads, s, params) for d, s in zip(directions, state, strict=True)]
        chosen = jax.tree.map(lambda *u: jnp.stack(u)[choice], *[u for u, _ in moved])
        return chosen, tuple(s for _, s in moved)

    def init_one(params):
        if len(directions) == 1:
            return directions[0].init(params)
        return tuple(d.init(params) for d in directions)

    def one_cell(params, opt_state, key, epoch, layer_scale, lr, choice, x, y):
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)[: nb * batch_size]

        def step(carry, idx):
            p, s = carry
            value, grads = jax.value_and_grad(lambda q: loss_fn(
                eqx.combine(q, static), x[idx], y[idx], loss, layer_scale))(p)
            updates, s = update(grads, s, p, choice)
            return (jax.tree.map(lambda a, u: a - lr * u, p, updates), s), value

        (params, opt_state), values = jax.lax.scan(
            step, (params, opt_state), perm.reshape(nb, batch_size))
        return params, opt_state, values.mean()

    return (jax.jit(jax.vmap(one_cell, in_axes=(0, 0, 0, None, 0, 0, 0, None, None))),
            jax.vmap(init_one), static)


@jax.jit
def select_cells(mask, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                        new, old)


@functools.lru_cache(maxsize=32)
def eval_fn(activation: str, delta: str, loss: str):
    static = static_part(activation, delta)
    f = lambda p, scale, x, y: loss_fn(eqx.combine(p, static), x, y, loss, scale)
    return jax.jit(jax.vmap(f, in_axes=(0, 0, None, None)))


def _pad_layers(a: np.ndarray, pad: int) -> np.ndarray:
    return np.concatenate([a, np.zeros((pad - a.shape[0],) + a.shape[1:], a.dtype)])


def init_cell(config: TrainConfig, depth: int, seed: int, width: int, pad: int) -> list:
    """Initial (A, b[, delta]) of one cell as numpy arrays, drawn at its own depth from a
    generator seeded by (seed, depth), padded with zero layers to ``pad``."""
    rng = np.random.default_rng([int(seed), int(depth)])
    model = init_fc_resnet(rng, depth, width, activation=config.activation, delta=config.delta,
                           init=config.init, scale=config.init_scale)
    leaves = [np.asarray(model.A), np.asarray(model.b)]
    if model.delta is not None:
        d = np.asarray(model.delta)
        leaves.append(d if d.ndim == 0 else _pad_layers(d, pad))
    return [_pad_layers(leaves[0], pad), _pad_layers(leaves[1], pad), *leaves[2:]]


def _pad_cell(tree, pad: int):
    """One cell's weights (numpy leaves, layer axis first where there is one) zero-padded to
    ``pad`` layers."""
    return jax.tree.map(lambda a: _pad_layers(a, pad) if a.ndim else a, tree)


@dataclasses.dataclass
class _Batch:
    """The cells being trained together: their weights, optimiser states, layer factors,
    rates and keys (leading cell axis; layers padded to ``pad``), and which cells they are.

    Stopped cells stay in the batch with frozen weights until :meth:`repacked` finds that
    dropping them (and the layers that only they use) would pay: it at least halves the
    work of an epoch (cells x padded depth), and the time it saves if the kept cells ran
    every remaining epoch exceeds twice the compilation that the new shape costs (both
    measured on this batch). Then the batch is gathered down to the cells still training.
    Padded layers are exact no-ops, so the choice changes no cell's arithmetic, only speed
    (early-stopped cells, as under SGD, gain most; cells that stop one by one, little)."""

    params: object
    state: object
    scale: jax.Array
    lr: jax.Array
    keys: jax.Array
    cells: np.ndarray
    pad: int
    first_epoch: float = math.nan  # seconds: the first epoch of this shape (with compiling)
    epoch: float = math.nan  # seconds: the latest epoch

    def timed(self, seconds: float) -> None:
        if math.isnan(self.first_epoch):
            self.first_epoch = seconds
        else:
            self.epoch = seconds

    def repacked(self, active: np.ndarray, depth_of: np.ndarray, final: dict,
                 epochs_left: int = 0) -> _Batch:
        keep = np.flatnonzero(active[self.cells])
        pad = int(depth_of[self.cells[keep]].max()) if keep.size else 0
        work = keep.size * pad / (len(self.cells) * self.pad)
        if keep.size:
            if work > 0.5 or math.isnan(self.epoch):
                return self
            compile_cost = max(self.first_epoch - self.epoch, 0.0)
            if epochs_left * self.epoch * (1 - work) <= 2 * compile_cost:
                return self
        host = jax.tree.map(np.asarray, self.params)
        for j, c in enumerate(self.cells):
            if not active[c]:
                final[int(c)] = jax.tree.map(lambda a, j=j: a[j], host)
        if not keep.size:
            return self

        def take(a):  # the kept cells; the layer axis (1, on leaves with one) cut to pad
            a = a[keep]
            return a[:, :pad] if a.ndim >= 2 else a

        return _Batch(jax.tree.map(take, self.params), jax.tree.map(take, self.state),
                      take(self.scale), self.lr[keep], self.keys[keep], self.cells[keep], pad)


def train_cells(config: TrainConfig, cells: Sequence[tuple[int, int]],
                data: ScalingData | None = None) -> list[xr.Dataset]:
    """Train the (depth, seed) ``cells`` at once; one dataset per cell, in order.

    All cells are padded with no-op layers (zero weights, layer factor 0) to the largest
    depth and trained together by one compiled, vmapped epoch function, so a batch of cells
    costs one compilation. A cell's result does not depend on which cells it is trained with:
    its initialisation and shuffling come from ``(seed, depth)`` alone, and padded layers are
    exact no-ops with zero gradients.

    Each dataset has ``A`` (layer, row, col), ``b`` (layer, row), ``delta`` ((layer,) or 0-d;
    absent for variant ``none``), their ``*_init`` values, ``loss`` (epoch; epoch-mean
    training loss, NaN after the stop) and attributes ``status`` (``converged``, ``plateau``,
    ``max_epochs`` or ``failed``), ``message``, ``epochs``, ``train_loss`` and ``test_loss``
    (full-set losses of the returned weights), ``depth``, ``seed``, ``config`` (JSON).
    A cell whose loss turns non-finite stops at its last finite weights, ``failed``.
    """
    cells = [(int(L), int(s)) for L, s in cells]
    if not cells or len(set(cells)) != len(cells):
        raise ValueError(f"cells must be a non-empty list of distinct (depth, seed), got {cells}")
    if min(L for L, _ in cells) < 1:
        raise ValueError("depths must be >= 1")
    data = load_data(config) if data is None else data
    if data.x_train.shape[0] < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {data.x_train.shape[0]} "
                         "training samples")
    width, pad, S = data.dim, max(L for L, _ in cells), len(cells)
    inits = [init_cell(config, L, s, width, pad) for L, s in cells]
    stacked = [jnp.asarray(np.stack(a)) for a in zip(*inits, strict=True)]
    epoch, init_state, _ = _epoch_fn(config, data.x_train.shape[0])
    skeleton = eqx.filter(init_fc_resnet(jax.random.key(0), 1, 1, activation=config.activation,
                                         delta=config.delta), eqx.is_array)
    params = jax.tree.unflatten(jax.tree.structure(skeleton), stacked)
    init_params = params
    scale_full = jnp.asarray(np.stack([np.where(np.arange(pad) < L, config.multiplier(L), 0.0)
                                       for L, _ in cells]), jnp.float32)
    batch = _Batch(params, init_state(params), scale_full,
                   jnp.asarray([config.learning_rate_at(L) for L, _ in cells], jnp.float32),
                   jax.random.wrap_key_data(jnp.stack([jax.random.key_data(seed_key(s, int(L)))
                                                       for L, s in cells])),
                   np.arange(S), pad)
    depth_of = np.array([L for L, _ in cells])
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

    curves = np.full((S, config.max_epochs), np.nan)
    active = np.ones(S, bool)
    status, message = ["max_epochs"] * S, [""] * S
    best, waited, epochs = np.full(S, np.inf), np.zeros(S, int), np.zeros(S, int)
    final: dict[int, object] = {}  # a cell's weights once it has left the batch
    for e in range(config.max_epochs):
        started = time.perf_counter()
        new_params, new_state, value = epoch(batch.params, batch.state, batch.keys,
                                             jnp.int32(e + 1), batch.scale, batch.lr,
                                             jnp.zeros(len(batch.cells), jnp.int32), x, y)
        value = np.asarray(value, dtype=np.float64)
        batch.timed(time.perf_counter() - started)
        finite = np.isfinite(value)
        accept = jnp.asarray(active[batch.cells] & finite)
        batch.params = select_cells(accept, new_params, batch.params)
        batch.state = select_cells(accept, new_state, batch.state)
        for j, c in enumerate(batch.cells):
            if not active[c]:
                continue
            if not finite[j]:
                active[c], status[c] = False, "failed"
                message[c] = (f"non-finite training loss ({value[j]}) in epoch {e + 1}; weights "
                              f"kept from epoch {e}")
                continue
            curves[c, e], epochs[c] = value[j], e + 1
            if value[j] < config.tol:
                active[c], status[c] = False, "converged"
                message[c] = f"epoch-mean loss {value[j]:.3g} < tol {config.tol:g}"
            elif value[j] < best[c] * (1 - config.min_improvement):
                best[c], waited[c] = value[j], 0
            else:
                waited[c] += 1
                if waited[c] >= config.patience:
                    active[c], status[c] = False, "plateau"
                    message[c] = (f"{config.patience} epochs without a "
                                  f"{100 * config.min_improvement:g}% improvement")
        if not active.any():
            break
        batch = batch.repacked(active, depth_of, final, config.max_epochs - e - 1)
    batch.repacked(np.zeros(S, bool), depth_of, final)  # every cell's final weights
    params = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)),
                          *[_pad_cell(final[c], pad) for c in range(S)])
    evaluate = eval_fn(config.activation, config.delta, config.loss)
    train_loss = np.asarray(evaluate(params, scale_full, x, y), np.float64)
    test_loss = (np.asarray(evaluate(params, scale_full, jnp.asarray(data.x_test),
                                     jnp.asarray(data.y_test)), np.float64)
                 if data.x_test.shape[0] else np.full(S, np.nan))
    cfg = config.to_dict()
    out = []
    for c, (L, seed) in enumerate(cells):
        p, p0 = (jax.tree.map(lambda a, c=c: np.asarray(a[c]), t) for t in (params, init_params))
        variables = {
            "A": (("layer", "row", "col"), p.A[:L]), "b": (("layer", "row"), p.b[:L]),
            "A_init": (("layer", "row", "col"), p0.A[:L]), "b_init": (("layer", "row"), p0.b[:L]),
            "loss": (("epoch",), curves[c]),
        }
        if p.delta is not None:
            shared = p.delta.ndim == 0
            variables["delta"] = ((), p.delta) if shared else (("layer",), p.delta[:L])
            variables["delta_init"] = ((), p0.delta) if shared else (("layer",), p0.delta[:L])
        attrs = provenance(cfg, seed)
        attrs.update(depth=L, status=status[c], message=message[c], epochs=int(epochs[c]),
                     train_loss=float(train_loss[c]), test_loss=float(test_loss[c]),
                     data=data.name, multiplier=config.multiplier(L),
                     learning_rate_used=config.learning_rate_at(L))
        out.append(xr.Dataset(variables, coords={"epoch": np.arange(1, config.max_epochs + 1)},
                              attrs=attrs))
    return out


def cell_losses(config: TrainConfig, weights: Sequence[tuple], x, y) -> np.ndarray:
    """Losses on (x, y) of networks given as ``(A, b, delta)`` tuples of any depths (delta
    ``None``, 0-d or (L,), as the variant of ``config``), evaluated together padded to the
    largest depth (one compilation). Used to compare trained and denoised (trend) weights."""
    pad = max(np.shape(w[0])[0] for w in weights)
    leaves, scale = [], []
    for A, b, delta in weights:
        L = np.shape(A)[0]
        row = [_pad_layers(np.asarray(A, np.float32), pad), _pad_layers(np.asarray(b, np.float32),
                                                                         pad)]
        if delta is not None:
            d = np.asarray(delta, np.float32)
            row.append(d if d.ndim == 0 else _pad_layers(d, pad))
        leaves.append(row)
        scale.append(np.where(np.arange(pad) < L, config.multiplier(L), 0.0))
    skeleton = eqx.filter(init_fc_resnet(jax.random.key(0), 1, 1, activation=config.activation,
                                         delta=config.delta), eqx.is_array)
    params = jax.tree.unflatten(jax.tree.structure(skeleton),
                                [jnp.asarray(np.stack(a)) for a in zip(*leaves, strict=True)])
    evaluate = eval_fn(config.activation, config.delta, config.loss)
    return np.asarray(evaluate(params, jnp.asarray(np.stack(scale), jnp.float32),
                               jnp.asarray(x), jnp.asarray(y)), np.float64)


def train_depth(config: TrainConfig, depth: int, seeds: Sequence[int],
                data: ScalingData | None = None) -> list[xr.Dataset]:
    """Train ``seeds`` at one depth at once (:func:`train_cells`); one dataset per seed."""
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return train_cells(config, [(int(depth), int(s)) for s in seeds], data)


def train_grid(config: TrainConfig, depths: Sequence[int], seeds: Sequence[int],
               data: ScalingData | None = None, *, bucket_ratio: float = 2.0
               ) -> list[xr.Dataset]:
    """Train every (depth, seed) of a grid in groups of depths within ``bucket_ratio``
    (:func:`depth_buckets`; ``math.inf`` trains everything together). Pure: writes nothing."""
    data = load_data(config) if data is None else data
    out = []
    for group in depth_buckets(depths, bucket_ratio):
        out += train_cells(config, [(L, s) for L in group for s in seeds], data)
    return out


def depth_buckets(depths: Sequence[int], ratio: float = 2.0) -> list[list[int]]:
    """Consecutive sorted depths grouped so that max/min <= ``ratio`` within a group (the
    padding overhead of training a group together is below ``ratio``)."""
    groups: list[list[int]] = []
    for L in sorted(set(depths)):
        if groups and L <= ratio * groups[-1][0]:
            groups[-1].append(L)
        else:
            groups.append([L])
    return groups


def train_marion(models: Sequence[MarionResNet], data: ScalingData, *, epochs: int = 5,
                 learning_rate: float = 1e-3, batch_size: int = 50, seed: int = 0
                 ) -> tuple[list[MarionResNet], np.ndarray]:
    """Train res-1 / res-3 networks (§9) of any depths together with Adam on the MSE of
    ``B h_L`` against the targets, for a fixed number of epochs (no early stop).

    The networks must share kind, width, activation and input/output sizes; they are padded
    to the largest depth with zero layers (exact no-ops) and trained by one compiled, vmapped
    loop. Returns the trained networks and the (n_models, epochs) epoch-mean losses.
    """
    if not models:
        raise ValueError("train_marion needs at least one model")
    kinds = {(m.W is None, m.V.shape[1:], m.A.shape, m.B.shape, m.activation) for m in models}
    if len(kinds) != 1:
        raise ValueError("the models must share kind, width, activation and input/output sizes")
    if data.x_train.shape[0] < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the training set")
    pad = max(m.depth for m in models)

    def padded(m):
        V = jnp.concatenate([m.V, jnp.zeros((pad - m.depth,) + m.V.shape[1:], m.V.dtype)])
        W = None if m.W is None else jnp.concatenate(
            [m.W, jnp.zeros((pad - m.depth,) + m.W.shape[1:], m.W.dtype)])
        return eqx.tree_at(lambda t: (t.V, t.W), m, (V, W), is_leaf=lambda x: x is None)

    stacked = [padded(m) for m in models]
    arrays, static = eqx.partition(stacked[0], eqx.is_array)
    leaves = [jax.tree.leaves(eqx.filter(m, eqx.is_array)) for m in stacked]
    params = jax.tree.unflatten(jax.tree.structure(arrays),
                                [jnp.stack(a) for a in zip(*leaves, strict=True)])
    scale = jnp.asarray(np.stack([np.where(np.arange(pad) < m.depth, m.depth ** (-m.beta), 0.0)
                                  for m in models]), models[0].V.dtype)
    opt = optax.adam(learning_rate)
    n = data.x_train.shape[0]
    nb = n // batch_size
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

    def one(p, s, c, key):
        perm = jax.random.permutation(key, n)[: nb * batch_size].reshape(nb, batch_size)

        def step(carry, idx):
            p, s = carry
            f = lambda q: jnp.mean((eqx.combine(q, static)(x[idx], c) - y[idx]) ** 2)
            value, g = jax.value_and_grad(f)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (p, s), values = jax.lax.scan(step, (p, s), perm)
        return p, s, values.mean()

    epoch = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))
    state = jax.vmap(opt.init)(params)
    curves = np.empty((len(models), epochs))
    for e in range(epochs):
        key = jax.random.fold_in(jax.random.key(int(seed)), e)
        params, state, value = epoch(params, state, scale, key)
        curves[:, e] = np.asarray(value)
    out = []
    for i, m in enumerate(models):
        p = jax.tree.map(lambda a, i=i: a[i], params)
        V = p.V[: m.depth]
        W = None if p.W is None else p.W[: m.depth]
        out.append(eqx.tree_at(lambda t: (t.A, t.V, t.W, t.B), m, (p.A, V, W, p.B),
                               is_leaf=lambda x: x is None))
    return out, curves

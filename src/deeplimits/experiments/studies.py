"""The built-in studies that sweeps can run (see :mod:`deeplimits.sweeps`).

- ``claim``: one registered claim at a scale (what ``deeplimits reproduce`` runs).
- ``forward``: the law of a finite network's output at one input: moments of the log
  squared norm and of a neuron, and neuron quantiles, from the exact (or any) sampler.
- ``kernel``: NNGP and NTK of the infinitely wide network between inputs on a circle.
- ``gradient``: squared parameter and input gradients of a finite network at one input.
- ``paths``: Hayou's finite-width network at t = 1: log-norm law and ReLU occupation.
- ``regression``: one model fitted on a bundled data set (a block of the regression table).
- ``simulate``: samples of a network at fixed inputs against its limit (``simulate``).
- ``train``: one trained FC ResNet (a depth, a seed and every ``TrainConfig`` field), as
  ``train_sweep`` writes it, so that a training grid can run on Dask like any sweep
  (``train_sweep`` itself batches the seeds of a depth group in one vmapped program: the
  faster choice on one machine).
- ``marion-map`` (:mod:`deeplimits.experiments.marion_maps`): Marion et al.'s maps.

The network studies name their activation; since a name can be registered again with
another function (``register_activation(..., overwrite=True)``), each cell's identity also
holds the activation's values (see :func:`_activation_identity`), so a redefined
activation makes new cells instead of returning the old one's results.
"""

from __future__ import annotations

import functools
import hashlib
import math

import jax.numpy as jnp
import numpy as np
import xarray as xr

from deeplimits.experiments.sweeps import REQUIRED, Cell, Study, register_study

__all__ = ["CLAIM", "FORWARD", "GRADIENT", "KERNEL", "PATHS", "REGRESSION", "SIMULATE"]

def _check_claim(params: dict) -> None:
    from deeplimits.experiments.claims import (
        SCALES,  # CHECK
        registry,  # CHECK
    )

    if params["claim"] not in registry():
        raise ValueError(f"unknown claim {params['claim']!r}; known: {sorted(registry())}")
    if params["scale"] not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {params['scale']!r}")


def _run_claim(cell: Cell) -> xr.Dataset:
    from deeplimits.experiments.claims import registry  # CHECK

    p = cell.parameters
    return registry()[p["claim"]].run(p["scale"], cell.seed).dataset


CLAIM = register_study(Study(
    "claim", _run_claim, {"claim": REQUIRED, "scale": "quick"}, _check_claim,
    "one claim of the reproduction report, with its verdict"))

# ``marion-map`` (Marion et al.'s maps) lives with its analysis and figure; importing the
# module registers it
from deeplimits.experiments import marion_maps as _marion_maps  # noqa: E402, F401

_NETWORK = {"form": "A", "activation": "relu", "width": 4, "depth": 256, "sigma_w": 1.0,
            "sigma_b": 0.0, "law": "gaussian", "scaling": "shrinking", "horizon": 1.0}


_QUANTILES = (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)

# where an activation is looked at to tell it from another: irregularly spaced points of
# [-8, 8], 0 included, and a few 2x2 covariances for a closed-form dual
_PROBE = np.concatenate([[0.0], np.linspace(-8.0, 8.0, 40) + 0.0123])
_COVARIANCES = np.array([[1.0, 1.0, 0.3], [2.0, 0.5, -0.7], [4.0, 4.0, 3.9]])


def _activation_identity(params: dict) -> str:
    """The activation a cell's ``activation`` names, by what it computes: a hash of phi and
    phi' at 41 points of [-8, 8] (12 significant digits, so the last bits of a platform's
    arithmetic do not matter), of its closed-form duals at three covariances, and of its
    ``smooth``/``homogeneous`` flags. Two functions with the same name but other values get
    other cells; a function equal to another at all these points would share its cells."""
    from deeplimits.spec.activations import get_activation

    return f"activation:{_fingerprint(get_activation(params['activation']))}"


@functools.lru_cache(maxsize=256)
def _fingerprint(act) -> str:
    x = jnp.asarray(_PROBE, jnp.float64)
    parts = [np.asarray(act(x)), np.asarray(act.deriv(x))]
    k11, k22, k12 = (jnp.asarray(_COVARIANCES[:, i]) for i in range(3))
    parts += [np.asarray(dual(k11, k22, k12)) for dual in (act.closed_dual,
                                                          act.closed_dual_deriv) if dual]
    text = ";".join(",".join(f"{v:.12g}" for v in np.ravel(part)) for part in parts)
    text += f";smooth={act.smooth};homogeneous={act.homogeneous}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _network(params: dict):
    from deeplimits.spec.networks import ResNet

    return ResNet(**{k: params[k] for k in _NETWORK})


def _check_forward(params: dict) -> None:
    from deeplimits.simulation.samplers import get_sampler

    net = _network(params)
    if not (isinstance(params["samples"], int) and params["samples"] >= 2):
        raise ValueError(f"samples must be an integer >= 2, got {params['samples']!r}")
    get_sampler(params["sampler"], net).check(net)


def _run_forward(cell: Cell) -> xr.Dataset:
    from deeplimits.simulation.samplers import sample

    p = cell.parameters
    net = _network(p)
    x0 = jnp.ones((1, net.width))  # norm sqrt(n): coordinates of order one
    X = np.asarray(sample(net, x0, cell.jax_key(), samples=p["samples"],
                          sampler=p["sampler"]), dtype=np.float64)[:, 0, :]
    log_norm = np.log(np.sum(X**2, axis=-1) / net.width)
    neuron = X[:, 0]
    z = (neuron - neuron.mean()) / neuron.std()
    return xr.Dataset(
        {"log_norm_mean": log_norm.mean(), "log_norm_var": log_norm.var(ddof=1),
         "neuron_var": neuron.var(ddof=1), "neuron_excess_kurtosis": np.mean(z**4) - 3.0,
         "neuron_quantile": ("quantile", np.quantile(neuron, _QUANTILES))},
        coords={"quantile": list(_QUANTILES)},
        attrs={"samples": p["samples"], "input": "ones(width)"})


FORWARD = register_study(Study(
    "forward", _run_forward, _NETWORK | {"samples": 2000, "sampler": "exact"}, _check_forward,
    "law of a finite network at one input: log-norm and neuron moments, neuron quantiles",
    identity=_activation_identity))


def _kernel_net(params: dict):
    from deeplimits.spec.networks import InputLayer, ResNet

    return ResNet(width=2, depth=1, form=params["form"], activation=params["activation"],
                  sigma_w=params["sigma_w"], sigma_b=params["sigma_b"],
                  input_layer=InputLayer(2) if params["form"] == "A" else None)


def _depth(params: dict) -> float:
    depth = params["depth"]
    if depth == "inf":
        return math.inf
    if not (isinstance(depth, int) and depth > 0):
        raise ValueError(f"depth must be a positive integer or 'inf', got {depth!r}")
    return depth


def _check_kernel(params: dict) -> None:
    from deeplimits.wide.kernels import check_kernel_net

    check_kernel_net(_kernel_net(params))
    _depth(params)
    if not (isinstance(params["angles"], int) and params["angles"] >= 2):
        raise ValueError(f"angles must be an integer >= 2, got {params['angles']!r}")


def _run_kernel(cell: Cell) -> xr.Dataset:
    from deeplimits.wide.kernels import kernel

    p = cell.parameters
    theta = np.linspace(0.0, math.pi, p["angles"])
    x = np.sqrt(2.0) * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    k = kernel(_kernel_net(p), x[:1], x, _depth(p))
    return xr.Dataset({"nngp": ("angle", np.asarray(k.nngp)[0]),
                       "ntk": ("angle", np.asarray(k.ntk)[0])}, coords={"angle": theta})


KERNEL = register_study(Study(
    "kernel", _run_kernel,
    {"form": "A", "activation": "relu", "depth": "inf", "sigma_w": 1.0, "sigma_b": 0.0,
     "angles": 33}, _check_kernel,
    "NNGP and NTK of the wide network between inputs on a circle, against their angle",
    identity=_activation_identity))


def _check_samples(params: dict) -> None:
    if not (isinstance(params["samples"], int) and not isinstance(params["samples"], bool)
            and params["samples"] >= 2):
        raise ValueError(f"samples must be an integer >= 2, got {params['samples']!r}")


def _check_gradient(params: dict) -> None:
    from deeplimits.simulation.gradients import check_method, get_loss

    _check_samples(params)
    check_method(_network(params), params["method"])
    get_loss(params["loss"])


def _run_gradient(cell: Cell) -> xr.Dataset:
    from deeplimits.simulation.gradients import sample_gradients

    p = cell.parameters
    net = _network(p)
    out = sample_gradients(net, jnp.ones((1, net.width)), cell.jax_key(), samples=p["samples"],
                           method=p["method"], loss=p["loss"])
    w2 = np.asarray(out["weight_grad_sq"], np.float64)[:, 0]
    b2 = np.asarray(out["bias_grad_sq"], np.float64)[:, 0]
    grad = np.asarray(out["grad"], np.float64)[:, 0]
    n = len(w2)
    return xr.Dataset(
        {"weight_grad_sq_mean": w2.mean(), "weight_grad_sq_se": w2.std(ddof=1) / np.sqrt(n),
         "bias_grad_sq_mean": b2.mean(), "bias_grad_sq_se": b2.std(ddof=1) / np.sqrt(n),
         "input_grad_norm_sq_mean": np.mean(np.sum(grad**2, axis=-1))},
        attrs={"samples": p["samples"], "input": "ones(width)"})


GRADIENT = register_study(Study(
    "gradient", _run_gradient,
    _NETWORK | {"samples": 1000, "method": "exact", "loss": "sin"}, _check_gradient,
    "gradients of a finite network at one input: squared parameter and input gradients",
    identity=_activation_identity))


def _hayou(params: dict):
    from deeplimits.spec.networks import hayou_resnet

    return hayou_resnet(params["width"], params["depth"], params["activation"],
                        sigma_w=params["sigma_w"])


def _check_paths(params: dict) -> None:
    _check_samples(params)
    _hayou(params)


def _run_paths(cell: Cell) -> xr.Dataset:
    from deeplimits.simulation.finite_width import simulate_paths

    p = cell.parameters
    net = _hayou(p)
    ds = simulate_paths(net, np.ones((1, net.width)), cell.jax_key(), samples=p["samples"])
    final = ds.isel(time=-1, input=0)
    log_norm = np.asarray(final["log_norm"], np.float64)
    return xr.Dataset(
        {"log_norm_mean": log_norm.mean(), "log_norm_var": log_norm.var(ddof=1),
         "occupation_mean": float(np.mean(np.asarray(final["occupation"], np.float64)))},
        attrs={"samples": p["samples"], "input": "ones(width)"})


PATHS = register_study(Study(
    "paths", _run_paths,
    {"width": 4, "depth": 256, "activation": "relu", "sigma_w": 1.0, "samples": 500},
    _check_paths,
    "Hayou's finite-width network (1/sqrt(L) weights): log-norm law and ReLU occupation "
    "at t = 1", identity=_activation_identity))


def _check_regression(params: dict) -> None:
    from deeplimits.data.tabular import DATASETS
    from deeplimits.experiments.regression import BASELINES, _family_spec, _settings

    if params["dataset"] not in DATASETS:
        raise ValueError(f"unknown data set {params['dataset']!r}; choose one of "
                         f"{sorted(DATASETS)}")
    if params["model"] not in BASELINES:
        _family_spec(params["model"], params["activation"])
    _settings(params["scale"], params["max_samples"], params["folds"], params["sigma_w_grid"],
              params["sigma_b_grid"], params["ridge_grid"], params["steps"])


def _run_regression(cell: Cell) -> xr.Dataset:
    from deeplimits.data.tabular import load_split
    from deeplimits.experiments.regression import _settings, fit_cell

    p = cell.parameters
    cfg = _settings(p["scale"], p["max_samples"], None, None, None, None, None)
    split = load_split(p["dataset"], max_samples=cfg["max_samples"], test_size=p["test_size"],
                       seed=cell.seed)
    return fit_cell(split, p["model"], p, cell.seed)


REGRESSION = register_study(Study(
    "regression", _run_regression,
    {"dataset": REQUIRED, "model": REQUIRED, "scale": "quick", "max_samples": "scale",
     "test_size": 0.25, "folds": None, "sigma_w_grid": None, "sigma_b_grid": None,
     "ridge_grid": None, "steps": None, "time": None, "activation": None},
    _check_regression,
    "one model (kernel family A/B/C, rbf-gp or ridge) fitted on a bundled data set: its rows "
    "of the regression table, with test predictions"))


def _check_simulate(params: dict) -> None:
    from deeplimits.simulation.samplers import get_sampler

    net = _network(params)
    get_sampler(params["sampler"], net, params["steps"]).check(net)
    for name in ("samples", "inputs"):
        if not (isinstance(params[name], int) and not isinstance(params[name], bool)
                and params[name] >= 1):
            raise ValueError(f"{name} must be a positive integer, got {params[name]!r}")


def _run_simulate(cell: Cell) -> xr.Dataset:
    from deeplimits.experiments.simulate import default_inputs, simulate

    p = cell.parameters
    net = _network(p)
    x = default_inputs(net.input_dim, p["inputs"], cell.seed)
    return simulate(net, x, samples=p["samples"], seed=cell.seed, sampler=p["sampler"],
                    steps=p["steps"], trajectory=p["trajectory"])


SIMULATE = register_study(Study(
    "simulate", _run_simulate,
    _NETWORK | {"samples": 1000, "inputs": 1, "sampler": "exact", "steps": None,
                "trajectory": False},
    _check_simulate,
    "samples of a network at fixed inputs, compared with its limit (what `deeplimits "
    "simulate` computes)", identity=_activation_identity))


def _train_config(params: dict):
    import dataclasses

    from deeplimits.simulation.training import TrainConfig

    return TrainConfig(**{f.name: params[f.name] for f in dataclasses.fields(TrainConfig)})


def _check_train(params: dict) -> None:
    _train_config(params)  # TrainConfig validates every field
    depth = params["depth"]
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")


def _run_train(cell: Cell) -> xr.Dataset:
    from deeplimits._core.provenance import provenance
    from deeplimits.simulation.training import train_cells

    ds = train_cells(_train_config(cell.parameters), [(cell.parameters["depth"], cell.seed)])[0]
    # the results store writes the provenance (versions, time, seed, these parameters)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in provenance({}, 0)}
    return ds


def _train_defaults() -> dict:
    import dataclasses

    from deeplimits.simulation.training import TrainConfig

    return {"depth": REQUIRED} | dataclasses.asdict(TrainConfig())


TRAIN = register_study(Study(
    "train", _run_train, _train_defaults(), _check_train,
    "one trained FC ResNet (depth, seed and every TrainConfig field): its weights, initial "
    "weights, loss curve and stopping status, as train_sweep writes them"))

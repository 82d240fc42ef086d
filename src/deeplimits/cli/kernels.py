"""``deeplimits kernel`` and ``deeplimits regress``: wide-limit kernels and predictors."""

from __future__ import annotations

import math
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deeplimits._core.progress import progress_bar
from deeplimits.cli._common import (
    ACTIVATION_HELP,
    Form,
    Scale,
    check_output,
    err,
    fail,
    load_inputs,
    report_cost,
)

# Finite-depth kernels: measured time of one layer's recursion for 5 inputs with ReLU on one
# CPU core (smooth activations without a closed-form dual take about 10 times longer).
_SECONDS_PER_LAYER = 2.5e-5


def _depth(value: str) -> float:
    if value.lower() in ("inf", "infinity", "oo"):
        return math.inf
    try:
        depth = int(value)
    except ValueError:
        raise fail(f"depth must be a positive integer or 'inf', got {value!r}") from None
    if depth <= 0:
        raise fail(f"depth must be a positive integer or 'inf', got {value!r}")
    return depth


def kernel(
    x: Annotated[Path, typer.Option(help="Inputs (.npy or .csv), one row per input.")],
    x2: Annotated[Path | None, typer.Option(help="Second inputs (default: --x).")] = None,
    form: Annotated[Form, typer.Option(help="Residual block form.")] = Form.A,
    activation: Annotated[str, typer.Option(help=ACTIVATION_HELP)] = "relu",
    depth: Annotated[str, typer.Option(help="Depth L, or 'inf' for the ODE limit.")] = "inf",
    sigma_w: Annotated[float, typer.Option(help="Weight scale.")] = 1.0,
    sigma_b: Annotated[float, typer.Option(help="Bias scale.")] = 0.0,
    input_layer: Annotated[bool, typer.Option(help="Gaussian input layer.")] = True,
    which: Annotated[str, typer.Option(help="nngp, ntk or both.")] = "both",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    dask: Annotated[bool, typer.Option(help="Compute tiles on a Dask cluster.")] = False,
    workers: Annotated[int, typer.Option(help="LocalCluster workers with --dask.")] = 2,
    max_memory_mb: Annotated[int, typer.Option(help="Working-memory bound per tile.")] = 1024,
    rtol: Annotated[float, typer.Option(
        help="Depth inf: target error relative to the largest entry (RK4 steps chosen for "
             "it).")] = 1e-9,
    steps: Annotated[int | None, typer.Option(
        help="Depth inf: RK4 steps, overriding --rtol.")] = None,
    out: Annotated[Path, typer.Option(help=".npy (one kernel), .nc or .zarr (both).")] = Path(
        "results/kernel.nc"),
) -> None:
    """Compute the NNGP and/or NTK of the infinitely wide network for given inputs.

    At depth inf the RK4 step count is chosen from --rtol (default 1e-9) and the steps and
    estimated error are printed and stored."""
    from deeplimits.experiments.store import atomic_path, provenance, save_dataset
    from deeplimits.spec.networks import InputLayer, ResNet
    from deeplimits.wide.kernels import kernel as compute

    if which not in ("nngp", "ntk", "both"):
        raise fail(f"--which must be nngp, ntk or both, got {which!r}")
    check_output(out, ".npy", ".nc", ".zarr", folder=out.suffix == ".zarr")
    if out.suffix == ".npy" and which == "both":
        raise fail("a .npy output holds one kernel: pass --which nngp or --which ntk")
    depth_value = _depth(depth)
    if not (math.isfinite(rtol) and rtol > 0):
        raise fail(f"--rtol must be a finite number > 0, got {rtol!r}")
    if steps is not None and steps <= 0:
        raise fail(f"--steps must be a positive integer, got {steps!r}")
    accuracy = {"rtol": rtol, "steps": steps}
    xs = load_inputs(x)
    xs2 = load_inputs(x2) if x2 is not None else None
    try:
        if np.ndim(xs) != 2:
            raise ValueError(f"inputs must be a 2-D array (inputs, features), got {np.shape(xs)}")
        d = np.shape(xs)[1]
        net = ResNet(width=max(d, 1), depth=1 if math.isinf(depth_value) else depth_value,
                     form=form.value, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
                     input_layer=InputLayer(d) if input_layer else None)
        from deeplimits.wide.kernels import as_kernel_inputs, check_kernel_net

        check_kernel_net(net)
        as_kernel_inputs(xs, "x", d)
        if xs2 is not None:
            as_kernel_inputs(xs2, "x2", d)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not math.isinf(depth_value):  # one recursion step per layer: at least ~25 us each
        pairs = len(xs) * len(xs if xs2 is None else xs2)
        report_cost(depth_value * _SECONDS_PER_LAYER * max(1.0, pairs / 25),
                    hint="--depth inf solves the limit ODE instead, at a cost free of L")
    start = time.perf_counter()
    need_ntk = which != "nngp"
    if dask or scheduler is not None or out.suffix == ".zarr":
        from deeplimits.wide.distributed import distributed_kernel

        try:
            result = distributed_kernel(
                net, xs, xs2, depth_value, scheduler=scheduler, workers=workers,
                zarr_path=out if out.suffix == ".zarr" else None, compute_ntk=need_ntk,
                progress=True, max_memory=max_memory_mb * 2**20, **accuracy)
        except ValueError as exc:
            raise fail(str(exc)) from None
    else:
        result = compute(net, xs, xs2, depth_value, compute_ntk=need_ntk,
                         max_memory=max_memory_mb * 2**20, progress=True, **accuracy)
    if out.suffix == ".npy":
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, result.ntk if which == "ntk" else result.nngp)
    elif out.suffix == ".nc":
        import xarray as xr

        data = {"nngp": (("x1", "x2"), result.nngp)} if which != "ntk" else {}
        if need_ntk:
            data["ntk"] = (("x1", "x2"), result.ntk)
        ds = xr.Dataset(data)
        from deeplimits.experiments.simulate import network_config

        solve = ({"steps": result.steps, "estimated_error": result.error, "rtol": rtol}
                 if result.steps is not None else {})
        ds.attrs.update(provenance(network_config(net) | {"depth": str(depth_value)} | solve))
        save_dataset(ds, out)
    solved = (f", {result.steps} RK4 steps, estimated relative error {result.error:.1e}"
              if result.steps is not None else "")
    err.print(f"wrote {out} ({len(xs)} x {len(xs if xs2 is None else xs2)}, depth {depth}"
              f"{solved}) in {time.perf_counter() - start:.1f} s")


class Task(StrEnum):
    auto = "auto"
    classification = "classification"
    regression = "regression"


def _max_samples(value: str | None):
    """``None``: the scale's default; ``"all"``: every sample; else an integer >= 4."""
    if value is None:
        return "scale"
    if value.lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise fail(f"--max-samples must be an integer >= 4 or 'all', got {value!r}") from None
    if count < 4:
        raise fail(f"--max-samples must be an integer >= 4 or 'all', got {value!r}")
    return count


def regress(
    dataset: Annotated[list[str] | None, typer.Option(
        help="Bundled data set (digits, breast_cancer, wine, diabetes); repeatable.")] = None,
    x: Annotated[Path | None, typer.Option(help="Your features (.npy/.csv/.txt).")] = None,
    y: Annotated[Path | None, typer.Option(
        help="Your labels (numbers or names) or targets (.npy/.csv/.txt).")] = None,
    task: Annotated[Task, typer.Option(
        help="Classification: kernel regression on one-hot labels, argmax, scored by "
             "accuracy; regression: scored by RMSE; auto: integer labels with at most 20 "
             "values (or names) are classes.")] = Task.auto,
    activation: Annotated[str | None, typer.Option(
        help="One activation for every kernel family (default: A relu, B tanh, C relu). "
             + ACTIVATION_HELP)] = None,
    models: Annotated[str, typer.Option(
        help="Kernel families, comma separated: A (ReLU, input layer), B (tanh: linear), C "
             "(ReLU).")] = "A,B,C",
    max_samples: Annotated[str | None, typer.Option(
        help="Subsample each data set to this many points (stratified for classes), or "
             "'all' (default: 400 at --scale quick, all at full).")] = None,
    scale: Annotated[Scale, typer.Option(
        help="quick (400 points, 3 folds, small grids) or full.")] = Scale.quick,
    seed: Annotated[int, typer.Option(help="Split and CV seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Table dataset (.nc).")] = Path(
        "results/regression.nc"),
) -> None:
    """Test scores of wide-ResNet kernel predictors (forms A, B, C, weakly and fully trained)
    beside an RBF-kernel GP and ridge regression, hyperparameters by cross-validation."""
    from deeplimits.data.tabular import DATASETS, SCALES, load_split, split_arrays
    from deeplimits.experiments.regression import format_table, regression_table
    from deeplimits.experiments.store import provenance, save_dataset
    from deeplimits.wide.depth_flow import DEFAULT_RTOL

    check_output(out, ".nc")
    if (x is None) != (y is None):
        raise fail("--x and --y go together")
    names = list(dataset or [])
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise fail(f"unknown data set(s) {unknown}; choose from {list(DATASETS)}")
    families = tuple(m.strip().upper() for m in models.split(",") if m.strip())
    cap = _max_samples(max_samples)
    cfg = dict(SCALES[scale.value])
    limit = cfg["max_samples"] if cap == "scale" else cap
    try:
        splits = [load_split(n, max_samples=limit, seed=seed) for n in names]
        if x is not None:
            features = load_inputs(x)
            labels = np.ravel(load_inputs(y, numeric=False))
            if len(labels) == len(features) + 1 and labels.dtype.kind == "U":
                labels = labels[1:]  # class names under a header row
            splits.append(split_arrays(x.stem, features, labels, task=task.value,
                                       seed=seed, max_samples=limit))
        elif task != Task.auto:
            raise ValueError("--task applies to your data (--x, --y); the bundled sets know "
                             "theirs")
        if not splits:
            splits = [load_split(n, max_samples=limit, seed=seed) for n in DATASETS]
        # every option checked (form B's activation included) before the first fit
        regression_table(splits[:0], scale=scale.value, max_samples=cap, models=families,
                         activation=activation, seed=seed)
    except ValueError as exc:
        raise fail(str(exc)) from None
    steps = cfg["steps"]
    solve = (f"RK4 with {steps} steps" if steps is not None else
             f"RK4 steps chosen for each kernel to rtol = {DEFAULT_RTOL:g}")
    err.print(f"kernels of infinitely deep, wide ResNets (depth = inf, ODE by {solve}), "
              f"{cfg['folds']}-fold CV over sigma_w {list(cfg['sigma_w'])}, sigma_b "
              f"{list(cfg['sigma_b'])}, relative ridge {list(cfg['ridge'])}")
    for s in splits:
        n = len(s.X_train) + len(s.X_test)
        kept = (f"subsampled to {n} of {s.n_available} (--max-samples all for every one)"
                if s.n_available is not None and n < s.n_available else f"{n} samples")
        how = ("classification: kernel regression on one-hot labels, argmax, accuracy"
               if s.task == "classification" else "regression, RMSE")
        err.print(f"  {s.name}: {kept}, {len(s.X_train)} train / {len(s.X_test)} test, "
                  f"{s.n_features} features; {how}")
    with progress_bar(console=err, transient=True) as bar:
        task_id = bar.add_task("fitting", total=None)
        table = regression_table(splits, scale=scale.value, max_samples=cap, seed=seed,
                                 models=families, activation=activation,
                                 progress=lambda msg: bar.update(task_id, description=msg))
    table.attrs.update(provenance(seed=seed))
    save_dataset(table, out)
    typer.echo(format_table(table))
    for i, name in enumerate(table.dataset.values):
        scores = table.score.values[i]
        metric = str(table.metric.values[i])
        best = int(np.nanargmax(scores) if metric == "accuracy" else np.nanargmin(scores))
        typer.echo(f"{name}: best test {metric} {scores[best]:.4g} ({table.model.values[best]})")
    err.print(f"wrote {out}")

"""``deeplimits kernel`` and ``deeplimits regress``: wide-limit kernels and predictors."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deeplimits._core.progress import progress_bar
from deeplimits.cli._common import Form, Scale, check_output, err, fail, load_inputs


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
    activation: Annotated[str, typer.Option(help="Activation name.")] = "relu",
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
    if out.suffix not in (".npy", ".nc", ".zarr"):
        raise fail(f"output {out} must end in .npy, .nc or .zarr")
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


def regress(
    dataset: Annotated[list[str] | None, typer.Option(
        help="Bundled data set (digits, breast_cancer, wine, diabetes); repeatable.")] = None,
    x: Annotated[Path | None, typer.Option(help="Your features (.npy/.csv).")] = None,
    y: Annotated[Path | None, typer.Option(help="Your labels or targets (.npy/.csv).")] = None,
    task: Annotated[str, typer.Option(help="auto, classification or regression.")] = "auto",
    scale: Annotated[Scale, typer.Option(help="quick or full grids.")] = Scale.quick,
    seed: Annotated[int, typer.Option(help="Split and CV seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Table dataset (.nc).")] = Path(
        "results/regression.nc"),
) -> None:
    """Test scores of wide-ResNet kernel predictors (forms A, B, C, weakly and fully trained)
    beside an RBF-kernel GP and ridge regression, hyperparameters by cross-validation."""
    from deeplimits.data.tabular import DATASETS, split_arrays
    from deeplimits.experiments.regression import format_table, regression_table
    from deeplimits.experiments.store import provenance, save_dataset

    check_output(out, ".nc")
    if (x is None) != (y is None):
        raise fail("--x and --y go together")
    names = list(dataset or [])
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise fail(f"unknown data set(s) {unknown}; choose from {list(DATASETS)}")
    items: list = list(names)
    if x is not None:
        try:
            items.append(split_arrays(x.stem, load_inputs(x), np.ravel(load_inputs(y)),
                                      task=task, seed=seed))
        except ValueError as exc:
            raise fail(str(exc)) from None
    if not items:
        items = list(DATASETS)
    with progress_bar(console=err, transient=True) as bar:
        task_id = bar.add_task("fitting", total=None)
        table = regression_table(items, scale=scale.value, seed=seed,
                                 progress=lambda msg: bar.update(task_id, description=msg))
    table.attrs.update(provenance(seed=seed))
    save_dataset(table, out)
    typer.echo(format_table(table))
    err.print(f"wrote {out}")

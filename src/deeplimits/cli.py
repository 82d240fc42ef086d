"""Command line: ``deeplimits simulate`` and ``deeplimits reproduce``.

Every option is checked before any work starts; an invalid one exits with status 2 and a
message that names the constraint, and nothing is written.
"""

from __future__ import annotations

import json
import math
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import jax
import numpy as np
import typer
from rich.console import Console

from ._progress import progress_bar

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Very deep residual networks as diffusions: simulate and reproduce.")
err = Console(stderr=True)


class Form(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class SamplerName(StrEnum):
    exact = "exact"
    dense = "dense"
    sde = "sde"


class Scaling(StrEnum):
    shrinking = "shrinking"
    iid = "iid"


class Scale(StrEnum):
    quick = "quick"
    full = "full"


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _load_inputs(path: Path) -> np.ndarray:
    if not path.exists():
        raise _fail(f"input file {path} does not exist")
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix in (".csv", ".txt"):
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    raise _fail(f"inputs must be a .npy or .csv file, got {path.name}")


def _check_output(path: Path, suffix: str) -> None:
    if path.suffix != suffix:
        raise _fail(f"output {path} must end in {suffix}")
    if path.exists() and path.is_dir():
        raise _fail(f"output {path} is a directory")


@app.command()
def simulate(
    form: Annotated[Form, typer.Option(help="Residual block form.")] = Form.A,
    activation: Annotated[str, typer.Option(help="Activation name.")] = "relu",
    width: Annotated[int, typer.Option(help="Width n.")] = 4,
    depth: Annotated[int, typer.Option(help="Depth L.")] = 1000,
    samples: Annotated[int, typer.Option(help="Independent networks.")] = 10_000,
    inputs: Annotated[int, typer.Option(help="Number of inputs (ignored with --x).")] = 1,
    x: Annotated[Path | None, typer.Option(help="Inputs from a .npy or .csv file.")] = None,
    sampler: Annotated[SamplerName, typer.Option(help="Sampler.")] = SamplerName.exact,
    steps: Annotated[int | None, typer.Option(help="Steps of the sde sampler.")] = None,
    law: Annotated[str, typer.Option(help="gaussian, rademacher or uniform.")] = "gaussian",
    scaling: Annotated[Scaling, typer.Option(help="Parameter scaling.")] = Scaling.shrinking,
    sigma_w: Annotated[float, typer.Option(help="Weight scale.")] = 1.0,
    sigma_b: Annotated[float, typer.Option(help="Bias scale.")] = 0.0,
    width_scaled: Annotated[bool, typer.Option(help="Weight variance sigma_w^2 / n.")] = True,
    trajectory: Annotated[bool, typer.Option(help="Keep every layer's state.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Dataset path (.nc).")] = Path("results/sim.nc"),
    figure: Annotated[Path | None, typer.Option(help="Figure path (.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Sample a network, compare it with its limit, and save a dataset and a figure."""
    from .networks import ResNet
    from .report import figure_png
    from .simulate import default_inputs, network_config, plot_simulation
    from .simulate import simulate as run
    from .storage import atomic_path, provenance, save_dataset

    figure = out.with_suffix(".png") if figure is None else figure
    _check_output(out, ".nc")
    _check_output(figure, ".png")
    try:
        net = ResNet(width=width, depth=depth, form=form.value, activation=activation,
                     sigma_w=sigma_w, sigma_b=sigma_b, law=law, scaling=scaling.value,
                     width_scaled=width_scaled)
        if samples <= 0:
            raise ValueError(f"samples must be a positive integer, got {samples}")
        if inputs <= 0:
            raise ValueError(f"inputs must be a positive integer, got {inputs}")
        xs = _load_inputs(x) if x is not None else default_inputs(width, inputs, seed)
        from ._validation import check_inputs
        from .samplers import get_sampler

        check_inputs(net, xs, np.float64)
        get_sampler(sampler.value, net, steps).check(net)
    except ValueError as exc:
        raise _fail(str(exc)) from None

    start = time.perf_counter()
    with progress_bar(console=err, transient=True) as bar:
        task = bar.add_task(f"{sampler.value} sampler", total=samples)
        ds = run(net, xs, samples=samples, seed=seed, sampler=sampler.value, steps=steps,
                 trajectory=trajectory, progress=lambda k: bar.advance(task, k))
    config = network_config(net)
    config.update(sampler=sampler.value, steps=steps, samples=samples, seed=seed,
                  inputs=np.asarray(xs).tolist())
    ds.attrs.update(provenance(config, seed))
    save_dataset(ds, out)
    with atomic_path(figure) as tmp:
        tmp.write_bytes(figure_png(plot_simulation(ds)))
    final = ds.x.isel(time=-1) if "time" in ds.x.dims else ds.x
    summary = {
        "output": str(out), "figure": str(figure), "seconds": time.perf_counter() - start,
        "config": config | {"inputs": len(np.atleast_2d(xs))},
        "mean": final.mean("sample").values.tolist(),
        "variance": final.var("sample").values.tolist(),
        "reference": ds.attrs["reference"],
    }
    for name in ("ks_pvalue", "ks_statistic", "w1"):
        if name in ds.attrs:
            summary[name] = float(ds.attrs[name])
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        err.print(f"wrote {out} and {figure} in {summary['seconds']:.1f} s; reference: "
                  f"{summary['reference']}"
                  + (f", KS p = {summary['ks_pvalue']:.3g}" if "ks_pvalue" in summary else ""))


def _depth(value: str) -> float:
    if value.lower() in ("inf", "infinity", "oo"):
        return math.inf
    try:
        depth = int(value)
    except ValueError:
        raise _fail(f"depth must be a positive integer or 'inf', got {value!r}") from None
    if depth <= 0:
        raise _fail(f"depth must be a positive integer or 'inf', got {value!r}")
    return depth


@app.command()
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
    out: Annotated[Path, typer.Option(help=".npy (one kernel), .nc or .zarr (both).")] = Path(
        "results/kernel.nc"),
) -> None:
    """Compute the NNGP and/or NTK of the infinitely wide network for given inputs."""
    from .kernels import kernel as compute
    from .networks import InputLayer, ResNet
    from .storage import atomic_path, provenance, save_dataset

    if which not in ("nngp", "ntk", "both"):
        raise _fail(f"--which must be nngp, ntk or both, got {which!r}")
    if out.suffix not in (".npy", ".nc", ".zarr"):
        raise _fail(f"output {out} must end in .npy, .nc or .zarr")
    if out.suffix == ".npy" and which == "both":
        raise _fail("a .npy output holds one kernel: pass --which nngp or --which ntk")
    depth_value = _depth(depth)
    xs = _load_inputs(x)
    xs2 = _load_inputs(x2) if x2 is not None else None
    try:
        if np.ndim(xs) != 2:
            raise ValueError(f"inputs must be a 2-D array (inputs, features), got {np.shape(xs)}")
        d = np.shape(xs)[1]
        net = ResNet(width=max(d, 1), depth=1 if math.isinf(depth_value) else depth_value,
                     form=form.value, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
                     input_layer=InputLayer(d) if input_layer else None)
        from .kernels import _as_inputs, _check_kernel_net

        _check_kernel_net(net)
        _as_inputs(xs, "x", d)
        if xs2 is not None:
            _as_inputs(xs2, "x2", d)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    start = time.perf_counter()
    need_ntk = which != "nngp"
    if dask or scheduler is not None or out.suffix == ".zarr":
        from .distributed import distributed_kernel

        try:
            result = distributed_kernel(
                net, xs, xs2, depth_value, scheduler=scheduler, workers=workers,
                zarr_path=out if out.suffix == ".zarr" else None, compute_ntk=need_ntk,
                progress=True, max_memory=max_memory_mb * 2**20)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    else:
        result = compute(net, xs, xs2, depth_value, compute_ntk=need_ntk,
                         max_memory=max_memory_mb * 2**20, progress=True)
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
        from .simulate import network_config

        ds.attrs.update(provenance(network_config(net) | {"depth": str(depth_value)}))
        save_dataset(ds, out)
    err.print(f"wrote {out} ({len(xs)} x {len(xs if xs2 is None else xs2)}, depth {depth}) "
              f"in {time.perf_counter() - start:.1f} s")


@app.command()
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
    from .datasets import DATASETS, format_table, regression_table, split_arrays
    from .storage import provenance, save_dataset

    _check_output(out, ".nc")
    if (x is None) != (y is None):
        raise _fail("--x and --y go together")
    names = list(dataset or [])
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise _fail(f"unknown data set(s) {unknown}; choose from {list(DATASETS)}")
    items: list = list(names)
    if x is not None:
        try:
            items.append(split_arrays(x.stem, _load_inputs(x), np.ravel(_load_inputs(y)),
                                      task=task, seed=seed))
        except ValueError as exc:
            raise _fail(str(exc)) from None
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


@app.command()
def reproduce(
    scale: Annotated[Scale, typer.Option(help="quick (minutes) or full (hours).")] = Scale.quick,
    seed: Annotated[int, typer.Option(help="Random seed of every claim.")] = 0,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    only: Annotated[list[str] | None, typer.Option(help="Claim ids (repeatable).")] = None,
    list_claims: Annotated[bool, typer.Option("--list", help="List the claims.")] = False,
) -> None:
    """Check every claim and write results/report.html with figures and datasets."""
    from .reproduce import reproduce as run
    from .reproduce import select_claims

    try:
        claims = select_claims(only)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if list_claims:
        for c in claims:
            typer.echo(f"{c.id}\t{c.title}")
        return
    if out.exists() and not out.is_dir():
        raise _fail(f"results folder {out} exists and is not a directory")
    err.print(f"JAX backend: {jax.default_backend()}; {len(claims)} claims at {scale.value} "
              f"scale, seed {seed}")
    with progress_bar(console=err) as bar:
        task = bar.add_task("claims", total=len(claims))

        def started(cid):
            bar.update(task, description=f"claim {cid}")

        def finished(result):
            v = result.verdict
            mark = "[green]pass[/]" if v.passed else "[red]FAIL[/]"
            bar.console.print(f"{mark} {result.claim.id}: {v.statistic} = {v.measured:.4g} "
                              f"({result.seconds:.0f} s)")
            bar.advance(task)

        results, report = run(out, scale=scale.value, seed=seed, only=only,
                              on_claim=finished, on_start=started)
    passed = sum(r.verdict.passed for r in results)
    err.print(f"{passed}/{len(results)} claims pass; report: {report}")
    if passed < len(results):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()

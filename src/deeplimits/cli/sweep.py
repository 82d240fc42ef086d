"""``deeplimits sweep``, ``deeplimits collect`` and ``deeplimits plot``: grids of cells run
anywhere, their results assembled, and any figure redrawn from saved data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deeplimits.cli._common import ExecutorName, check_writable, err, fail, make_executor


def sweep(
    spec: Annotated[Path | None, typer.Argument(help="Sweep file (.toml).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Results folder (default: results/<file name>).")] = None,
    executor: Annotated[ExecutorName, typer.Option(
        help="inprocess, local (process pool) or dask.")] = ExecutorName.local,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Rerun cells that raised.")] = False,
    collected: Annotated[str, typer.Option(
        "--collect", help="Assemble into <out>/<this> (.nc or .zarr); 'none' to skip.")
    ] = "collected.nc",
    list_studies: Annotated[bool, typer.Option("--list", help="List the studies.")] = False,
) -> None:
    """Run every missing cell of a sweep; finished cells are skipped, so rerunning after a
    crash completes exactly what is missing."""
    from deeplimits.experiments.sweeps import (
        Sweep,
        SweepInterrupted,
        collect,
        run_sweep,
        save_collected,
        studies,
    )

    if list_studies:
        for name, study in studies().items():
            params = ", ".join(f"{k}" for k in study.parameters)
            typer.echo(f"{name}\t{study.description}\n\tparameters: {params}")
        return
    if spec is None:
        raise fail("give a sweep file (or --list for the studies)")
    out = Path("results") / spec.stem if out is None else out
    if collected != "none" and Path(collected).suffix not in (".nc", ".zarr"):
        raise fail(f"--collect must end in .nc or .zarr (or be 'none'), got {collected!r}")
    try:
        plan = Sweep.from_toml(spec)
        cells = plan.validate()
        from deeplimits.experiments.store import ResultStore

        ResultStore(out).check()
        check_writable(out / "manifest.json")
        pool = make_executor(executor, workers, scheduler)
    except ValueError as exc:
        raise fail(str(exc)) from None
    err.print(f"study {plan.study}: {len(cells)} cells, {executor.value} executor, into {out}")
    try:
        report = run_sweep(plan, out, executor=pool, retry_failed=retry_failed, progress=True)
    except ValueError as exc:  # the executor did not start, the folder is in use: no work
        raise fail(str(exc)) from None
    except OSError as exc:  # a result could not be written, the scheduler went away
        err.print(f"[bold red]error:[/] {exc.strerror or exc}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    except SweepInterrupted as exc:  # Ctrl-C or kill: workers ended, finished cells kept
        err.print(str(exc), soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(code=130) from None
    err.print(f"{len(report.computed)} computed, {len(report.skipped)} already done, "
              f"{len(report.failed)} failed, in {report.seconds:.1f} s")
    for key, error in report.failed.items():
        err.print(f"[red]failed[/] {key}: {error}")
    if collected != "none" and len(report.failed) < len(cells):
        path = save_collected(collect(out, plan), out / collected)
        err.print(f"collected into {path}")
    if report.failed:
        err.print("rerun with --retry-failed to try the failed cells again")
        raise typer.Exit(code=1)


def collect(
    folder: Annotated[Path, typer.Argument(help="Results folder of a sweep.")],
    out: Annotated[Path | None, typer.Option(
        help="Output (.nc or .zarr; default <folder>/collected.nc).")] = None,
) -> None:
    """Assemble the finished cells of a results folder into one dataset."""
    from deeplimits.experiments.sweeps import collect as assemble
    from deeplimits.experiments.sweeps import save_collected

    out = folder / "collected.nc" if out is None else out
    if out.suffix not in (".nc", ".zarr"):
        raise fail(f"output {out} must end in .nc or .zarr")
    try:
        ds = assemble(folder)
    except ValueError as exc:
        raise fail(str(exc)) from None
    save_collected(ds, out)
    err.print(f"wrote {out}: {ds.attrs['cells_finished']} of {ds.attrs['cells_total']} cells, "
              f"dimensions {dict(ds.sizes)}")


def plot(
    path: Annotated[Path, typer.Argument(
        help="A saved dataset (.nc/.zarr) or a results folder (all claim figures).")],
    out: Annotated[Path | None, typer.Option(
        help="Figure (.png) for one dataset (default: beside it).")] = None,
    x: Annotated[str | None, typer.Option(
        "--x", help="Grid axis on the horizontal axis of a collected sweep's figure "
        "(default: its first numeric axis).")] = None,
) -> None:
    """Redraw figures from saved datasets, without rerunning anything."""
    from deeplimits.experiments.figures import sweep_figure
    from deeplimits.experiments.report import figure_for, figure_png, redraw_figures
    from deeplimits.experiments.store import atomic_path, load_dataset

    if not path.exists():
        raise fail(f"{path} does not exist")
    if path.is_dir() and path.suffix != ".zarr":
        if out is not None or x is not None:
            raise fail("--out and --x are for one dataset; a results folder gets "
                       "figures/<claim>.png")
        try:
            written = redraw_figures(path)
        except ValueError as exc:
            raise fail(str(exc)) from None
        err.print(f"redrew {len(written)} figure(s) in {path / 'figures'}")
        return
    out = path.with_suffix(".png") if out is None else out
    if out.suffix != ".png":
        raise fail(f"figure {out} must end in .png")
    try:
        ds = load_dataset(path)
        if x is not None and "cells_total" not in ds.attrs:
            raise ValueError("--x is for a collected sweep; this dataset is not one")
        fig = sweep_figure(ds, x=x) if x is not None else figure_for(ds)
    except ValueError as exc:
        raise fail(str(exc)) from None
    with atomic_path(out) as tmp:
        tmp.write_bytes(figure_png(fig))
    err.print(f"wrote {out}")

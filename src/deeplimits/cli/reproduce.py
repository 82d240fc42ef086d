"""``deeplimits reproduce``: check every claim, as a resumable sweep, and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import jax
import typer

from deeplimits.cli._common import (
    ExecutorName,
    Scale,
    check_writable,
    err,
    fail,
    make_executor,
)


def reproduce(
    scale: Annotated[Scale, typer.Option(help="quick (minutes) or full (hours).")] = Scale.quick,
    seed: Annotated[int, typer.Option(help="Random seed of every claim.")] = 0,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    only: Annotated[list[str] | None, typer.Option(help="Claim ids (repeatable).")] = None,
    list_claims: Annotated[bool, typer.Option("--list", help="List the claims.")] = False,
    executor: Annotated[ExecutorName, typer.Option(
        help="inprocess, local (process pool) or dask.")] = ExecutorName.inprocess,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Rerun claims that raised.")] = False,
) -> None:
    """Check every claim and write results/report.html with figures and datasets.

    Claims already checked in the results folder (same scale and seed) are not rerun, so a
    run that was interrupted resumes where it stopped.
    """
    from deeplimits.experiments.reproduce import claim_sweep, select_claims
    from deeplimits.experiments.reproduce import reproduce as run
    from deeplimits.experiments.store import ResultStore

    try:
        claims = select_claims(only)
        if list_claims:
            for c in claims:
                typer.echo(f"{c.id}\t{c.title}")
            return
        claim_sweep(scale.value, seed, only).validate()
        ResultStore(out).check()
        check_writable(out / "manifest.json")
        pool = make_executor(executor, workers, scheduler)
    except ValueError as exc:
        raise fail(str(exc)) from None
    err.print(f"JAX backend: {jax.default_backend()}; {len(claims)} claims at {scale.value} "
              f"scale, seed {seed}, {executor.value} executor")

    def finished(cell, outcome):
        if outcome.error is not None:
            err.print(f"[red]ERROR[/] {cell.parameters['claim']}: {outcome.error}")
            return
        a = outcome.dataset.attrs
        mark = "[green]pass[/]" if a["passed"] else "[red]FAIL[/]"
        err.print(f"{mark} {a['claim']}: {a['statistic']} = {float(a['measured']):.4g} "
                  f"({outcome.seconds:.0f} s)")

    try:
        results, failures, report = run(out, scale=scale.value, seed=seed, only=only,
                                         executor=pool, retry_failed=retry_failed,
                                         progress=True, on_cell=finished)
    except ValueError as exc:  # raised before the first claim: the executor did not start
        raise fail(str(exc)) from None
    passed = sum(r.verdict.passed for r in results)
    total = len(results) + len(failures)
    err.print(f"{passed}/{total} claims pass; report: {report}")
    if failures:
        err.print(f"[red]{len(failures)} claim(s) raised[/]: {sorted(failures)}; rerun with "
                  "--retry-failed")
    if passed < total:
        raise typer.Exit(code=1)

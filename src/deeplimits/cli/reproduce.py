"""``deeplimits reproduce``: check every claim and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import jax
import typer

from .._progress import progress_bar
from ._common import Scale, err, fail


def reproduce(
    scale: Annotated[Scale, typer.Option(help="quick (minutes) or full (hours).")] = Scale.quick,
    seed: Annotated[int, typer.Option(help="Random seed of every claim.")] = 0,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    only: Annotated[list[str] | None, typer.Option(help="Claim ids (repeatable).")] = None,
    list_claims: Annotated[bool, typer.Option("--list", help="List the claims.")] = False,
) -> None:
    """Check every claim and write results/report.html with figures and datasets."""
    from ..reproduce import reproduce as run
    from ..reproduce import select_claims

    try:
        claims = select_claims(only)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if list_claims:
        for c in claims:
            typer.echo(f"{c.id}\t{c.title}")
        return
    if out.exists() and not out.is_dir():
        raise fail(f"results folder {out} exists and is not a directory")
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

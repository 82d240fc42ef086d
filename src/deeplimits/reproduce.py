"""Run every registered claim and write datasets, figures and the HTML report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .claims import ClaimResult, pick, registry
from .report import figure_png, render_report
from .storage import atomic_path, provenance, save_dataset

__all__ = ["reproduce", "select_claims"]


def select_claims(only: Sequence[str] | None = None) -> list:
    """The registered claims, or those whose id equals or starts with one of ``only``."""
    claims = list(registry().values())
    if not only:
        return claims
    chosen = [c for c in claims if any(c.id == o or c.id.startswith(o + "-") for o in only)]
    unknown = [o for o in only if not any(c.id == o or c.id.startswith(o + "-") for c in claims)]
    if unknown:
        raise ValueError(f"unknown claim id(s) {unknown}; known: {[c.id for c in claims]}")
    return chosen


def reproduce(
    out: str | Path = "results",
    *,
    scale: str = "quick",
    seed: int = 0,
    only: Sequence[str] | None = None,
    on_claim: Callable[[ClaimResult], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> tuple[list[ClaimResult], Path]:
    """Check the claims at ``scale`` (``"quick"`` or ``"full"``) and write the report.

    Writes ``out/data/<id>.nc`` (each dataset with its verdict and provenance),
    ``out/figures/<id>.png`` and ``out/report.html``. Every file is written atomically.

    Returns:
        The results and the report's path.
    """
    pick(scale, None, None)
    claims = select_claims(only)
    out = Path(out)
    start = time.perf_counter()
    results, figures = [], {}
    for claim in claims:
        if on_start:
            on_start(claim.id)
        result = claim.run(scale, seed)
        result.dataset.attrs.update(provenance(seed=seed))
        save_dataset(result.dataset, out / "data" / f"{claim.id}.nc")
        figures[claim.id] = figure_png(claim.plot(result.dataset))
        with atomic_path(out / "figures" / f"{claim.id}.png") as tmp:
            tmp.write_bytes(figures[claim.id])
        results.append(result)
        if on_claim:
            on_claim(result)
    report = render_report(results, figures, out / "report.html", scale=scale, seed=seed,
                           seconds=time.perf_counter() - start)
    return results, report

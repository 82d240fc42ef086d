"""The reproduction report: one self-contained HTML page (figures embedded), readable
offline, with a verdict table, the figures, run times, versions and seeds."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from deeplimits.experiments.claims import ClaimResult
from deeplimits.experiments.store import atomic_path, provenance

__all__ = ["render_report", "figure_png", "figure_for", "redraw_figures"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.pass { background: #d9f2d9; font-weight: bold; }
td.fail { background: #f8d0d0; font-weight: bold; }
section { margin-top: 2.5em; }
img { max-width: 100%; }
.small { font-size: 0.85em; color: #555; }
code { background: #f6f6f6; padding: 0 3px; }
"""


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def figure_for(ds):
    """The figure of a saved dataset, drawn from it alone: a claim's own figure for a claim
    dataset, :func:`~deeplimits.plotting.sweep_figure` for a collected sweep.

    Raises:
        ValueError: for a dataset of neither kind (or of a claim this version lacks).
    """
    from deeplimits.experiments.claims import registry  # CHECK
    from deeplimits.experiments.figures import sweep_figure

    claim = ds.attrs.get("claim")
    if claim is not None:
        if claim not in registry():
            raise ValueError(f"dataset of claim {claim!r}, unknown to this version")
        return registry()[claim].plot(ds)
    if "cells_total" in ds.attrs:
        return sweep_figure(ds)
    raise ValueError("not a claim dataset nor a collected sweep: nothing says how to draw it")


def redraw_figures(folder: str | Path) -> list[Path]:
    """Redraw ``folder/figures/<claim>.png`` for every claim dataset in a results folder."""
    from deeplimits.experiments.store import ResultStore, load_dataset

    store = ResultStore(folder)
    store.check()
    files = sorted((Path(folder) / "data").glob("*.nc"))
    if not files:
        raise ValueError(f"{folder} holds no datasets (no data/*.nc)")
    written = []
    for file in files:
        ds = load_dataset(file)
        if "claim" not in ds.attrs:
            continue
        path = Path(folder) / "figures" / f"{ds.attrs['claim']}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(figure_png(figure_for(ds)))
        written.append(path)
    return written


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _control_cells(r: ClaimResult) -> str:
    """The control-verdict and detectable-effect cells of a row: green when the negative
    control was rejected (as it must be), red when it passed or was never judged."""
    e, v = html.escape, r.verdict
    name = r.dataset.attrs.get("control", r.claim.control.name if r.claim.control else "")
    if v.control is None:
        return "<td class='fail'>no control</td><td></td>"
    status = "rejected" if v.control_rejected else "accepted"
    css = "pass" if v.control_rejected else "fail"
    return (f"<td class='{css}'>{e(name)}: {status} ({_fmt(v.control.measured)})</td>"
            f"<td>{e(v.detectable)}</td>")


def _control_text(r: ClaimResult) -> str:
    e, v, c = html.escape, r.verdict, r.claim.control
    if v.control is None or c is None:
        return "<b>none judged</b> (the verdict has no demonstrated power)."
    return (f"<b>{e(c.name)}</b>, {e(c.description)}: "
            f"<b>{'rejected' if v.control_rejected else 'ACCEPTED'}</b>, "
            f"{e(v.statistic)} = {_fmt(v.control.measured)}. {e(v.control.details)} "
            f"The check {e(v.detectable.removeprefix('detects '))}." if v.detectable else "")


def render_report(
    results: Sequence[ClaimResult],
    figures: dict[str, bytes],
    path: str | Path,
    *,
    scale: str,
    seed: int,
    seconds: float,
    data: Mapping[str, str] | None = None,
    failures: Mapping[str, str] | None = None,
    executor: str = "inprocess",
) -> Path:
    """Write the HTML report atomically and return its path.

    ``data`` maps claim ids to their dataset paths relative to the report; ``failures``
    maps the ids of claims that raised to their error, listed as failed rows.
    """
    e = html.escape
    data, failures = dict(data or {}), dict(failures or {})
    passed = sum(r.verdict.passed for r in results)
    total = len(results) + len(failures)
    rows = []
    for r in results:
        v, c = r.verdict, r.claim
        status = "pass" if v.passed else "fail"
        rows.append(
            f"<tr><td><a href='#{e(c.id)}'>{e(c.id)}</a></td><td>{e(c.title)}</td>"
            f"<td>{e(c.source)}</td><td>{e(v.statistic)}</td><td>{e(v.tolerance)}</td>"
            f"<td>{_fmt(v.measured)}</td><td class='{status}'>{status}</td>"
            f"{_control_cells(r)}<td>{r.seconds:.1f}</td></tr>"
        )
    for cid, error in failures.items():
        rows.append(f"<tr><td>{e(cid)}</td><td colspan='5'>raised {e(error)}</td>"
                    f"<td class='fail'>error</td><td></td><td></td><td></td></tr>")
    sections = []
    for r in results:
        c, v = r.claim, r.verdict
        png = base64.b64encode(figures[c.id]).decode()
        sections.append(
            f"<section id='{e(c.id)}'><h2>{e(c.id)}: {e(c.title)}</h2>"
            f"<p class='small'>Source: {e(c.source)}. Verdict: <b>{'pass' if v.passed else 'fail'}"
            f"</b>; {e(v.statistic)} = {_fmt(v.measured)} (tolerance: {e(v.tolerance)}).</p>"
            f"<p class='small'>{e(v.details)}</p>"
            f"<p class='small'>Negative control: {_control_text(r)}</p>"
            f"<img alt='figure for {e(c.id)}' src='data:image/png;base64,{png}'>"
            f"<p class='small'>Data: <code>{e(data.get(c.id, f'data/{c.id}.nc'))}</code>; figure: "
            f"<code>figures/{e(c.id)}.png</code>; {r.seconds:.1f} s.</p></section>"
        )
    prov = provenance(seed=seed)
    prov_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in prov.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deeplimits reproduction report</title>
<style>{_STYLE}</style></head><body>
<h1>deeplimits reproduction report</h1>
<p>Scale <b>{e(scale)}</b>, seed <b>{seed}</b>: <b>{passed} of {total}</b> claims pass.
Total time {seconds:.0f} s on the <code>{e(executor)}</code> executor; each claim's own
run time is in the table (a claim found already checked in the results folder is not rerun).
Every claim states its statistic, its tolerance and the sample
sizes behind it; the datasets beside this page hold the numbers behind every figure.</p>
<table id="verdicts"><thead><tr><th>claim</th><th>statement</th><th>source</th>
<th>statistic</th><th>tolerance</th><th>measured</th><th>verdict</th>
<th>control verdict</th><th>detectable effect</th><th>seconds</th></tr>
</thead><tbody>{''.join(rows)}</tbody></table>
{''.join(sections)}
<section><h2>Provenance</h2><table>{prov_rows}</table></section>
</body></html>
"""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path

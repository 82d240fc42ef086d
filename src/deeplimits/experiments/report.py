"""The reproduction report: one self-contained HTML page (figures embedded), readable
offline, with the verdicts grouped by paper, a computed summary per paper, every figure
beside its row, each claim's negative control and detectable effect, links to the theory
pages, run times, versions and seeds."""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from deeplimits.experiments.claims import ClaimResult
from deeplimits.experiments.store import atomic_path, provenance

__all__ = ["render_report", "figure_png", "figure_for", "redraw_figures", "PAPERS",
           "paper_of", "theory_anchor", "paper_summary"]

PAPERS = (
    ("Peluchetti & Favaro (PF20, PF21): infinitely deep networks as diffusions, their "
     "gradients, convolutional extension and doubly infinite kernels", ("F", "B", "V", "K")),
    ("Hayou (H23) and Hayou & Yang (HY23): fixed width, infinite depth", ("W",)),
    ("Cohen, Cont, Rossier & Xu (CCRX21, CRX22) and follow-ups (MFBV22, TP6): trained "
     "weights across depth", ("T",)),
)
"""The report's paper groups: a title and the claim-id prefixes it holds."""

_THEORY_REF = re.compile(r"([a-z_]+)\.md[`'\"*]*[ \t]*§§?[ \t]*(\d+(?:\.\d+)*)")


def paper_of(claim_id: str) -> str:
    """The title of the paper group of a claim id (by its leading letter)."""
    for title, prefixes in PAPERS:
        if claim_id[:1] in prefixes:
            return title
    return "Other claims"


def theory_anchor(source: str) -> str | None:
    """``<page>#sN-M`` (e.g. ``forward.md#s4-3``) of the first theory section a claim's
    source cites (``None`` if it cites none): the anchors of ``docs/theory``."""
    m = _THEORY_REF.search(source)
    if m is None:
        return None
    return f"{m.group(1)}.md#s{m.group(2).replace('.', '-')}"


def _status(r) -> str:
    v = r.verdict
    if v.passed and v.control_rejected:
        return "confirmed"
    if not v.passed and v.control_rejected:
        return "refuted"
    return "inconclusive"


def paper_summary(results: Sequence[ClaimResult], failures: Mapping[str, str]) -> str:
    """One paragraph: how many claims of the group are confirmed (pass, control rejected),
    refuted (fail, control rejected) and inconclusive (control not rejected or not judged,
    or the claim raised), with their ids."""
    groups: dict[str, list[str]] = {"confirmed": [], "refuted": [], "inconclusive": []}
    for r in results:
        groups[_status(r)].append(r.claim.id)
    groups["inconclusive"] += [f"{cid} (raised)" for cid in failures]
    total = sum(len(v) for v in groups.values())
    parts = [f"{len(groups['confirmed'])} of {total} claims confirmed"
             + (f" ({', '.join(groups['confirmed'])})" if groups["confirmed"] else "")]
    if groups["refuted"]:
        parts.append(f"{len(groups['refuted'])} refuted ({', '.join(groups['refuted'])}): the "
                     "check has power, since its negative control was rejected, and the "
                     "model failed it")
    else:
        parts.append("none refuted")
    if groups["inconclusive"]:
        parts.append(f"{len(groups['inconclusive'])} inconclusive "
                     f"({', '.join(groups['inconclusive'])}): the negative control was not "
                     "rejected or not judged, so a pass would not be evidence")
    else:
        parts.append("none inconclusive")
    return "; ".join(parts) + "."

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em;
       max-width: 1500px; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
/* long formulas and numbers wrap inside their cell, so twelve columns fit a laptop screen */
th, td { border: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f0f0f0; }
td.pass { background: #d9f2d9; font-weight: bold; }
td.fail { background: #f8d0d0; font-weight: bold; }
td.ctl-ok { background: #d9f2d9; }
td.ctl-bad { background: #f8d0d0; font-weight: bold; }
tr.group-start td { border-top: 3px solid #888; }
td.paper { font-weight: bold; background: #fafafa; }
section { margin-top: 2.5em; }
img { max-width: 100%; }
img.thumb { width: 160px; }
p.summary { background: #f6f6f6; padding: 6px 10px; }
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
        return "<td class='ctl-bad'>no control</td><td></td>"
    status = "rejected" if v.control_rejected else "accepted"
    css = "ctl-ok" if v.control_rejected else "ctl-bad"
    return (f"<td class='{css}'>{e(name)}: {status} ({_fmt(v.control.measured)})</td>"
            f"<td>{e(v.detectable)}</td>")


def _control_text(r: ClaimResult) -> str:
    e, v, c = html.escape, r.verdict, r.claim.control
    if v.control is None or c is None:
        return "<b>none judged</b> (the verdict has no demonstrated power)."
    power = f" The check {e(v.detectable)}." if v.detectable else ""
    return (f"<b>{e(c.name)}</b>, {e(c.description)}: "
            f"<b>{'rejected' if v.control_rejected else 'ACCEPTED'}</b>, "
            f"{e(v.statistic)} = {_fmt(v.control.measured)}. {e(v.control.details)}{power}")


def _theory_base(path: str | Path, base: str | None) -> str:
    if base is not None:
        return base if base.endswith("/") else base + "/"
    docs = Path(__file__).resolve().parents[3] / "docs" / "theory"
    if docs.is_dir():
        rel = os.path.relpath(docs, Path(path).resolve().parent)
        return Path(rel).as_posix() + "/"
    return "docs/theory/"


# Claims of the specification that nothing checks yet: the report says so rather than
# leaving them out silently (none today: every claim of the specification has a row).
NOT_CHECKED: tuple[str, ...] = ()


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
    theory_base: str | None = None,
) -> Path:
    """Write the HTML report atomically and return its path.

    ``data`` maps claim ids to their dataset paths relative to the report; ``failures``
    maps the ids of claims that raised to their error, listed as failed rows;
    ``theory_base`` prefixes the theory-page links (default: the relative path from the
    report to this checkout's ``docs/theory/`` when it exists, else ``docs/theory/``).
    """
    e = html.escape
    data, failures = dict(data or {}), dict(failures or {})
    passed = sum(r.verdict.passed for r in results)
    total = len(results) + len(failures)
    theory = _theory_base(path, theory_base)

    def link(c) -> str:
        anchor = theory_anchor(c.source)
        if anchor is None:
            return e(c.source)
        return f"<a href='{e(theory + anchor)}'>{e(c.source)}</a>"

    def row(r) -> str:
        v, c = r.verdict, r.claim
        status = "pass" if v.passed else "fail"
        png = base64.b64encode(figures[c.id]).decode()
        return (f"<tr><td><a href='#{e(c.id)}'>{e(c.id)}</a></td><td>{e(c.title)}</td>"
                f"<td>{link(c)}</td><td>{e(v.statistic)}</td><td>{e(v.tolerance)}</td>"
                f"<td>{_fmt(v.measured)}</td><td class='{status}'>{status}</td>"
                f"{_control_cells(r)}<td>{r.seconds:.1f}</td>"
                f"<td><a href='#{e(c.id)}'><img class='thumb' alt='figure for {e(c.id)}' "
                f"src='data:image/png;base64,{png}'></a></td></tr>")

    # rows grouped by paper in one table (the last cell of a group's first row names the
    # paper and spans the group), each paper's summary paragraph above the table
    rows, summaries = [], []
    titles = [t for t, _ in PAPERS] + ["Other claims"]
    for title in titles:
        rs = [r for r in results if paper_of(r.claim.id) == title]
        fs = {cid: err for cid, err in failures.items() if paper_of(cid) == title}
        if not rs and not fs:
            continue
        summaries.append(f"<h3>{e(title)}</h3><p class='summary'>"
                         f"{e(paper_summary(rs, fs))}</p>")
        group = [row(r) for r in rs]
        group += [f"<tr><td>{e(cid)}</td><td colspan='5'>raised {e(err)}</td>"
                  f"<td class='fail'>error</td><td></td><td></td><td></td><td></td></tr>"
                  for cid, err in fs.items()]
        group[0] = group[0][:-len("</tr>")] + (
            f"<td class='paper' rowspan='{len(group)}'>{e(title.split(':')[0])}</td></tr>")
        group[0] = group[0].replace("<tr>", "<tr class='group-start'>", 1)
        rows += group
    sections = []
    for r in results:
        c, v = r.claim, r.verdict
        png = base64.b64encode(figures[c.id]).decode()
        sections.append(
            f"<section id='{e(c.id)}'><h2>{e(c.id)}: {e(c.title)}</h2>"
            f"<p class='small'>Source: {link(c)}. Verdict: <b>{'pass' if v.passed else 'fail'}"
            f"</b>; {e(v.statistic)} = {_fmt(v.measured)} (tolerance: {e(v.tolerance)}).</p>"
            f"<p class='small'>{e(v.details)}</p>"
            f"<p class='small'>Negative control: {_control_text(r)}</p>"
            f"<img alt='figure for {e(c.id)}' src='data:image/png;base64,{png}'>"
            f"<p class='small'>Data: <code>{e(data.get(c.id, f'data/{c.id}.nc'))}</code>; figure: "
            f"<code>figures/{e(c.id)}.png</code>; {r.seconds:.1f} s.</p></section>"
        )
    confirmed = sum(_status(r) == "confirmed" for r in results)
    not_checked = (f'<p>Not checked (no implementation yet, so no row): '
                   f'{e(", ".join(NOT_CHECKED))}.</p>' if NOT_CHECKED else "")
    prov = provenance(seed=seed)
    prov_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in prov.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deeplimits reproduction report</title>
<style>{_STYLE}</style></head><body>
<h1>deeplimits reproduction report</h1>
<p>Scale <b>{e(scale)}</b>, seed <b>{seed}</b>: <b>{passed} of {total}</b> claims pass;
<b>{confirmed}</b> are confirmed (they pass and their negative control, a deliberately wrong
twin judged by the same decision, fails).
Total time {seconds:.0f} s on the <code>{e(executor)}</code> executor; each claim's own
run time is in the table (a claim found already checked in the results folder is not rerun).
Every claim states its statistic, its tolerance and the sample
sizes behind it; the datasets beside this page hold the numbers behind every figure.</p>
{not_checked}
<section class="summaries"><h2>Summary by paper</h2>{''.join(summaries)}</section>
<table id="verdicts"><thead><tr><th>claim</th><th>statement</th><th>source (theory page)</th>
<th>statistic</th><th>tolerance</th><th>measured</th><th>verdict</th>
<th>control verdict</th><th>detectable effect</th><th>seconds</th><th>figure</th>
<th>paper</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
{''.join(sections)}
<section><h2>Provenance</h2><table>{prov_rows}</table></section>
</body></html>
"""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path

"""Every ``name.md §N.M`` cited in the source resolves to a theory page and an anchor.

Docstrings, error messages and the report cite the theory as ``forward.md §4.3``,
``kernels.md`` §3, ``trained_scaling.md §5-6`` or ``backward.md §§2-4``. Each must name a
page ``docs/theory/<name>.md`` and, when a section is given, that page must carry the
anchor ``{#sN-M}`` (``{#sN}`` for a bare number). A range or a list cites its first
section. Pure text: nothing from ``deeplimits`` is imported.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
THEORY = ROOT / "docs" / "theory"

# `name.md`, then optionally closing quotes/backticks/asterisks and spaces, then § or §§
# and a section number N or N.M (a range such as §5-6 or §4-§7 cites its first section).
REFERENCE = re.compile(
    r"(?<![A-Za-z0-9_-])([a-z_]+)\.md(?:[`'\"*]*[ \t]*§§?[ \t]*(\d+(?:\.\d+)*))?"
)
# Files other than Python that the report is rendered from.
TEMPLATE_SUFFIXES = {".html", ".j2", ".jinja", ".jinja2", ".md", ".txt", ".tmpl"}


def source_files() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    files += sorted(
        p
        for p in SRC.rglob("*")
        if p.is_file()
        and p.suffix in TEMPLATE_SUFFIXES
        and "template" in str(p.relative_to(SRC)).lower()
    )
    return [p for p in files if ".egg-info" not in str(p)]


def references(text: str) -> list[tuple[int, str, str | None]]:
    out = []
    for match in REFERENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        out.append((line, match.group(1), match.group(2)))
    return out


def anchor(section: str) -> str:
    return "{#s" + section.replace(".", "-") + "}"


def test_reference_pattern():
    text = "see ``forward.md`` §4.3, kernels.md §§2-4 and trained_scaling.md §5-6; conv.md"
    assert references(text) == [
        (1, "forward", "4.3"),
        (1, "kernels", "2"),
        (1, "trained_scaling", "5"),
        (1, "conv", None),
    ]
    assert anchor("4.3") == "{#s4-3}" and anchor("7") == "{#s7}"


def test_every_source_reference_resolves():
    files = source_files()
    assert files, f"no source files under {SRC}"
    pages: dict[str, str | None] = {}
    unresolved, count = [], 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for line, name, section in references(text):
            count += 1
            if name not in pages:
                page = THEORY / f"{name}.md"
                pages[name] = page.read_text(encoding="utf-8") if page.is_file() else None
            where = f"{path.relative_to(ROOT)}:{line}"
            cited = f"{name}.md" + (f" §{section}" if section else "")
            if pages[name] is None:
                unresolved.append(f"{where}: {cited} (no page docs/theory/{name}.md)")
            elif section and anchor(section) not in pages[name]:
                unresolved.append(f"{where}: {cited} (no anchor {anchor(section)})")
    assert count > 0, "no references found: has the pattern or the tree changed?"
    assert not unresolved, f"{len(unresolved)} unresolved references:\n" + "\n".join(
        unresolved
    )

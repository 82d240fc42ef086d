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


# --- error messages ---------------------------------------------------------------------

def error_message_references(tree_text: str) -> list[tuple[int, str, str | None]]:
    """References inside the string constants of ``raise`` statements (error messages,
    f-strings included), with their line numbers."""
    import ast

    out = []
    for node in ast.walk(ast.parse(tree_text)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        for sub in ast.walk(node.exc):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                for _, name, section in references(sub.value):
                    out.append((sub.lineno, name, section))
    return out


def _unresolved(name: str, section: str | None) -> str | None:
    page = THEORY / f"{name}.md"
    if not page.is_file():
        return f"no page docs/theory/{name}.md"
    if section and anchor(section) not in page.read_text(encoding="utf-8"):
        return f"no anchor {anchor(section)}"
    return None


def test_error_message_pattern():
    code = 'def f(x):\n    raise ValueError(f"x={x}: see forward.md §4.3")\n'
    assert error_message_references(code) == [(2, "forward", "4.3")]


def test_every_error_message_reference_resolves():
    unresolved = []
    for path in (p for p in source_files() if p.suffix == ".py"):
        for line, name, section in error_message_references(path.read_text(encoding="utf-8")):
            why = _unresolved(name, section)
            if why:
                unresolved.append(f"{path.relative_to(ROOT)}:{line}: {name}.md §{section} ({why})")
    assert not unresolved, "\n".join(unresolved)


# --- the report -------------------------------------------------------------------------

def test_every_claim_source_in_the_report_resolves():
    """The report prints each claim's ``source`` (e.g. "PF21 [abstract]; kernels.md §4.3
    [derived, simulated]"): every reference in it, as the claims registry holds it at run
    time, must resolve."""
    from deeplimits.experiments.claims import registry

    claims = registry()
    assert claims, "no claims registered"
    unresolved, count = [], 0
    for claim in claims.values():
        for _, name, section in references(f"{claim.title} {claim.source}"):
            count += 1
            why = _unresolved(name, section)
            if why:
                unresolved.append(f"claim {claim.id}: {name}.md §{section} ({why})")
    assert count >= len(claims) // 2, "few claims cite the theory: has the pattern changed?"
    assert not unresolved, "\n".join(unresolved)


# --- links inside the docs --------------------------------------------------------------

DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*(?:\{#([\w.-]+)\})?\s*$", re.M)
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)", re.M)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)  # LaTeX: [a](b) there is no link


def slug(heading: str) -> str:
    """Python-Markdown's toc slug: lower case, punctuation dropped, spaces to '-'."""
    import unicodedata

    text = unicodedata.normalize("NFKD", re.sub(r"[`*_]", "", heading))
    text = re.sub(r"[^\w\s-]", "", text.encode("ascii", "ignore").decode()).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """Every anchor of a docs page: explicit ``{#id}``, heading slugs and mkdocstrings ids
    (each ``::: target`` gives ``target`` and, for a module, ``target.<name>`` of its
    ``__all__``)."""
    import importlib

    text = page.read_text(encoding="utf-8")
    out = set(re.findall(r"\{#([\w.-]+)\}", text))
    for title, explicit in HEADING.findall(FENCE.sub("", text)):
        out.add(explicit or slug(title))
    for target in DIRECTIVE.findall(text):
        out.add(target)
        try:
            module = importlib.import_module(target)
        except ImportError:
            continue
        out.update(f"{target}.{name}" for name in getattr(module, "__all__", ()))
    return out


def test_slug():
    assert slug("1. Network") == "1-network"
    assert slug("`deeplimits.spec`: what a network is") == "deeplimitsspec-what-a-network-is"


def test_every_link_inside_the_docs_resolves():
    pages = sorted(DOCS.rglob("*.md"))
    assert pages
    cache: dict[Path, set[str]] = {}
    broken, count = [], 0
    for page in pages:
        text = MATH.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
        for match in LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            count += 1
            path, _, frag = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.is_file():
                broken.append(f"{where} (no file)")
            elif frag and dest.suffix == ".md":
                if dest not in cache:
                    cache[dest] = anchors(dest)
                if frag not in cache[dest]:
                    broken.append(f"{where} (no anchor #{frag})")
    assert count > 50, "few links found: has the pattern changed?"
    assert not broken, f"{len(broken)} broken links:\n" + "\n".join(broken)

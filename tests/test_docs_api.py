"""The API reference covers every public name, and the command-line page is current.

Markdown-level and fast (no site build, no network): every name of ``deeplimits.__all__``
must be rendered by some ``::: target`` directive of a ``docs/api`` page, either directly
(``::: deeplimits.ResNet``) or through the module that defines it (``::: deeplimits.spec.
networks``, which renders that module's ``__all__``); every name of a front door's
``__all__`` through ``::: deeplimits.<door>``. mkdocs.yml must keep
``show_if_no_docstring: true`` (otherwise an undocumented name would silently vanish from
the rendered page), and each such module's ``__all__`` must actually hold the name.
"""

from __future__ import annotations

import importlib
import re
import runpy
from pathlib import Path

import pytest

import deeplimits

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
DOORS = ["conv", "finite_width", "backward", "scaling"]
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)", re.M)


def directives() -> dict[str, str]:
    """``{target: page}`` of every ``::: target`` in docs/api."""
    out = {}
    for page in sorted(API.glob("*.md")):
        for target in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            out[target] = page.name
    return out


def test_undocumented_names_are_rendered():
    assert re.search(r"^\s*show_if_no_docstring:\s*true", (ROOT / "mkdocs.yml").read_text(),
                     re.M), "mkdocs.yml must set show_if_no_docstring: true"


def _covered(module: str, name: str | None, targets: dict[str, str]) -> bool:
    if name is not None and f"{module}.{name}" in targets:
        return True
    if module not in targets:
        return False
    if name is None:
        return True
    members = getattr(importlib.import_module(module), "__all__", None)
    return members is not None and name in members


def test_every_top_level_name_is_in_the_api_reference():
    targets = directives()
    missing = []
    for name in deeplimits.__all__:
        where = deeplimits._NAMES[name]
        if where.startswith("module:"):
            ok = _covered(where[len("module:"):], None, targets)
        else:
            ok = _covered(where, name, targets) or f"deeplimits.{name}" in targets
        if not ok:
            missing.append(f"deeplimits.{name} (defined in {where})")
    assert not missing, "not in any docs/api page:\n" + "\n".join(missing)


@pytest.mark.parametrize("door", DOORS)
def test_every_front_door_name_is_in_the_api_reference(door):
    module = f"deeplimits.{door}"
    names = importlib.import_module(module).__all__
    assert names
    targets = directives()
    missing = [n for n in names if not _covered(module, n, targets)]
    assert not missing, f"{module}: not in any docs/api page: {missing}"


def test_coverage_check_can_fail():
    assert not _covered("deeplimits.spec.networks", "not_a_name", directives())
    assert not _covered("deeplimits.nowhere", None, directives())


def test_cli_page_is_current():
    render = runpy.run_path(str(API / "cli_page.py"))["render"]
    assert (API / "cli.md").read_text(encoding="utf-8") == render(), (
        "docs/api/cli.md is stale: run `python3 docs/api/cli_page.py`")


LAYERS = ["spec", "data", "analysis", "simulation", "wide", "experiments"]


def test_every_public_module_of_a_layer_has_its_section():
    """A module added to a layer (one with an ``__all__``) gets its ``::: module`` section
    on the layer's page, so the reference does not silently fall behind the package."""
    targets = directives()
    missing = []
    for layer in LAYERS:
        for path in sorted((ROOT / "src" / "deeplimits" / layer).glob("[!_]*.py")):
            module = f"deeplimits.{layer}.{path.stem}"
            if "__all__" in path.read_text(encoding="utf-8") and module not in targets:
                missing.append(f"{module} (add `::: {module}` to docs/api/{layer}.md)")
    assert not missing, "\n".join(missing)

"""Every tutorial runs end to end at the small scale it is written at.

Each page of docs/tutorials (but the index) is a narrative whose ``python`` blocks run in
order in one namespace, inside a temporary folder; the asserts in the blocks are the
tutorial's own checks. Each tutorial is one test, and must stay cheap (under ~20 s on an
idle core; the scale is chosen in the page, not here).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(p for p in TUTORIALS.glob("*.md") if p.name != "index.md")


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_block_extraction():
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a\n"]


def test_every_tutorial_is_listed_in_the_index_and_the_nav():
    index = (TUTORIALS / "index.md").read_text(encoding="utf-8")
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert len(PAGES) >= 6
    for page in PAGES:
        assert f"({page.name})" in index, f"{page.name} is not linked from tutorials/index.md"
        assert f"tutorials/{page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_tutorial_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} has no python blocks"
    monkeypatch.chdir(tmp_path)
    # a subprocess started by a tutorial (the CLI) imports this checkout's package
    src = str(ROOT / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])]))
    namespace = {"__name__": f"tutorial_{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{page.name}, python block {i} failed: {err!r}") from err
    assert sys.modules  # the namespace ran to the end

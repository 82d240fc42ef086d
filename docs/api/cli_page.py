"""Write docs/api/cli.md, the command-line reference, from the `deeplimits` Typer app.

Run ``python3 docs/api/cli_page.py`` after changing a command; tests/test_docs_api.py fails
while the page differs from what this renders.
"""

from pathlib import Path

import typer.core

HEADER = """# Command line

The `deeplimits` command (installed by `pip install .`). Each subcommand's `--help` is
reproduced below; bad options exit with status 2 and a message naming the constraint,
before any work and without writing. The same functionality is in Python: see the other
pages of the [API reference](index.md). This page is written by `docs/api/cli_page.py`
and a test checks that it is current.
"""


def render() -> str:
    from typer.main import get_command

    from deeplimits.cli import app

    out = [HEADER]

    def walk(cmd, path):
        ctx = type(cmd).context_class(cmd, info_name=" ".join(path), terminal_width=92,
                                      max_content_width=92)
        out.append(f"## `{' '.join(path)}`" + " {#" + "-".join(path) + "}")
        out.extend(["", "```text", cmd.get_help(ctx).rstrip(), "```", ""])
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])

    has_rich = typer.core.HAS_RICH
    typer.core.HAS_RICH = False  # plain click help: no box drawing, no terminal wrapping
    try:
        walk(get_command(app), ["deeplimits"])
    finally:
        typer.core.HAS_RICH = has_rich
    return "\n".join(out)


if __name__ == "__main__":
    Path(__file__).with_name("cli.md").write_text(render(), encoding="utf-8")

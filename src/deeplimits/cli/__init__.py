"""Command line: ``deeplimits <command>``.

Every option is checked before any work starts; an invalid one exits with status 2 and a
message that names the constraint, and nothing is written. Each command lives in its own
module; this one only assembles them.
"""

from __future__ import annotations

import typer

from deeplimits.cli import conv, finite_width, gradients, scaling
from deeplimits.cli.kernels import kernel, regress
from deeplimits.cli.reproduce import reproduce
from deeplimits.cli.simulate import simulate
from deeplimits.cli.sweep import collect, plot, sweep

__all__ = ["app"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  rich_markup_mode=None,
                  help="Very deep residual networks as diffusions: simulate and reproduce.")


for command in (simulate, kernel, regress, reproduce, sweep, collect, plot):
    app.command()(command)


# command groups, each a typer app of its own module
for name, group in (("finite-width", finite_width.app), ("gradients", gradients.app),
                    ("conv", conv.app), ("scaling", scaling.app)):
    if group.registered_commands:
        app.add_typer(group, name=name)


if __name__ == "__main__":
    app()

"""``deeplimits finite-width`` (being written)."""

import typer

app = typer.Typer(no_args_is_help=True, help="finite-width studies.")

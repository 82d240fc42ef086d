"""What every command shares: the error console, the exit on bad input, input files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

err = Console(stderr=True)


class Form(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class SamplerName(StrEnum):
    exact = "exact"
    dense = "dense"
    sde = "sde"


class Scaling(StrEnum):
    shrinking = "shrinking"
    iid = "iid"


class Scale(StrEnum):
    quick = "quick"
    full = "full"


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # one line: greppable
    return typer.Exit(code=2)


def load_inputs(path: Path) -> np.ndarray:
    if not path.exists():
        raise fail(f"input file {path} does not exist")
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix in (".csv", ".txt"):
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    raise fail(f"inputs must be a .npy or .csv file, got {path.name}")


def check_output(path: Path, suffix: str) -> None:
    if path.suffix != suffix:
        raise fail(f"output {path} must end in {suffix}")
    if path.exists() and path.is_dir():
        raise fail(f"output {path} is a directory")


class ExecutorName(StrEnum):
    inprocess = "inprocess"
    local = "local"
    dask = "dask"


def make_executor(name: ExecutorName, workers: int | None, scheduler: str | None):
    """The executor for ``--executor``, ``--workers`` and ``--scheduler`` (checked now; it
    starts, and an unreachable scheduler is reported, before the first cell)."""
    from deeplimits.experiments.sweeps import get_executor

    return get_executor(name.value, workers, scheduler)

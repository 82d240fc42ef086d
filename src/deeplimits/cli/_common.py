"""What every command shares: the error console, the exit on bad input, input files."""

from __future__ import annotations

import os
import tempfile
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


class ConvForm(StrEnum):
    """Forms of conv networks (form C has no conv version)."""

    A = "A"
    B = "B"


class Law(StrEnum):
    gaussian = "gaussian"
    rademacher = "rademacher"
    uniform = "uniform"


#: the registered activations (``deeplimits.activation_names()`` without aliases), named
#: here so that ``--help`` does not import the numerical layers; a test keeps them equal
ACTIVATIONS = ("abs", "erf", "gelu", "identity", "leaky_relu", "relu", "sin",
               "softplus_shifted", "swish", "tanh")

#: help of every ``--activation`` option
ACTIVATION_HELP = f"Activation: {', '.join(ACTIVATIONS)} (linear = identity)."


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


def _parse_table(path: Path, delimiter: str | None, numeric: bool) -> np.ndarray:
    """Rows of a text table; a first row that is not numbers (while the rest are) is a
    header and is skipped. Ragged rows and values that are not numbers are refused with the
    line that holds them."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {path}: {exc}") from None
    rows = [(i + 1, [v.strip() for v in (line.split(delimiter) if delimiter else line.split())])
            for i, line in enumerate(text.splitlines())
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise fail(f"{path} holds no rows")

    def number(v):
        try:
            return float(v)
        except ValueError:
            return None

    def is_numeric(row):
        return all(number(v) is not None for v in row)

    if len(rows) > 1 and not is_numeric(rows[0][1]) and all(is_numeric(r) for _, r in rows[1:]):
        rows = rows[1:]  # a header row
    width = len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise fail(f"{path} line {line} has {len(row)} values, the first row has {width}: "
                       "every row must have the same number of columns")
    values = [v for _, row in rows for v in row]
    if all(number(v) is not None for v in values):
        return np.array([[float(v) for v in row] for _, row in rows], dtype=np.float64)
    if not numeric:  # labels may be names
        return np.array([row for _, row in rows], dtype=str)
    for line, row in rows:
        for v in row:
            if number(v) is None:
                raise fail(f"{path} line {line}: {v!r} is not a number")
    raise AssertionError("unreachable")


def load_inputs(path: Path, *, numeric: bool = True) -> np.ndarray:
    """A 2-D array from ``.npy``, ``.csv`` (comma separated) or ``.txt`` (whitespace), with a
    header row detected and skipped; unreadable files exit with status 2 and say why.
    ``numeric=False`` lets a table of names through (class labels)."""
    if not path.exists():
        raise fail(f"input file {path} does not exist")
    if path.is_dir():
        raise fail(f"input file {path} is a directory")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise fail(f"cannot read {path} as a .npy array: {exc}") from None
        if numeric and not np.issubdtype(arr.dtype, np.number):
            raise fail(f"{path} holds {arr.dtype} values, not numbers")
        return arr
    if path.suffix in (".csv", ".txt"):
        arr = _parse_table(path, "," if path.suffix == ".csv" else None, numeric)
        return arr
    raise fail(f"inputs must be a .npy, .csv or .txt file, got {path.name}")


#: estimated run times (seconds) from which a command prints its estimate, and warns
NOTE_SECONDS, WARN_SECONDS = 10.0, 600.0
#: result sizes (bytes) from which a command warns
WARN_BYTES = 2 * 2**30


def report_cost(seconds: float, result_bytes: float = 0.0, *, hint: str = "") -> None:
    """Print the estimated cost of a run before it starts: a note from
    :data:`NOTE_SECONDS`, a warning from :data:`WARN_SECONDS` or :data:`WARN_BYTES`; a
    result larger than the machine's memory exits with status 2 (it could not be held)."""
    from deeplimits.experiments.simulate import format_seconds

    hint = f"; {hint}" if hint else ""
    if seconds >= WARN_SECONDS:
        err.print(f"[bold yellow]warning:[/] this run is estimated to take about "
                  f"{format_seconds(seconds)} on one CPU core{hint}")
    elif seconds >= NOTE_SECONDS:
        err.print(f"estimated time: about {format_seconds(seconds)} on one CPU core")
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if result_bytes > memory:
        raise fail(f"the result would hold about {result_bytes / 2**30:.3g} GiB, more than this "
                   f"machine's {memory / 2**30:.3g} GiB of memory{hint}")
    if result_bytes >= WARN_BYTES:
        err.print(f"[bold yellow]warning:[/] the result will hold about "
                  f"{result_bytes / 2**30:.3g} GiB in memory and on disk{hint}")


def renamed_option(old, new, old_name: str, new_name: str):
    """The value of an option renamed from ``old_name`` to ``new_name`` (the old spelling
    still works, hidden from ``--help``, with a warning; giving both is an error)."""
    if old is None:
        return new
    if new is not None:
        raise fail(f"{old_name} is the old spelling of {new_name}: give only {new_name}")
    err.print(f"[yellow]warning:[/] {old_name} is deprecated; use {new_name}")
    return old


def check_writable(path: Path) -> None:
    """Exit with status 2 now, before any work, if ``path`` could not be written later: its
    nearest existing ancestor must be a folder we may write in (nothing is created here)."""
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():
            raise fail(f"cannot create {path.parent}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise fail(f"cannot create {path.parent}: {parent} is a file, not a folder")
    try:  # os.access says yes to root everywhere; a file that is made and removed does not
        with tempfile.TemporaryFile(dir=parent, prefix=".deeplimits-probe-"):
            pass
    except OSError as exc:
        raise fail(f"cannot write {path}: {parent} does not take new files ({exc.strerror})"
                   ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise fail(f"cannot write {path}: no permission to overwrite it")


def check_output(path: Path, *suffixes: str, folder: bool = False) -> None:
    """An output file (or with ``folder=True`` a folder store such as ``.zarr``) that ends
    in one of ``suffixes`` and can be written: checked before any work."""
    if path.suffix not in suffixes:
        raise fail(f"output {path} must end in {' or '.join(suffixes)}")
    if path.exists() and path.is_dir() and not folder:
        raise fail(f"output {path} is a directory")
    check_writable(path)


class ExecutorName(StrEnum):
    inprocess = "inprocess"
    local = "local"
    dask = "dask"


def make_executor(name: ExecutorName, workers: int | None, scheduler: str | None):
    """The executor for ``--executor``, ``--workers`` and ``--scheduler`` (checked now; it
    starts, and an unreachable scheduler is reported, before the first cell)."""
    from deeplimits.experiments.sweeps import get_executor

    return get_executor(name.value, workers, scheduler)

"""Progress reporting shared by long-running calls (rich bars, or a user callback)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_callback", "progress_bar"]

def progress_bar(**kwargs) -> Progress:
    """The house style of progress bar: description, bar, count, elapsed, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        **kwargs,
    )


@contextlib.contextmanager
def progress_callback(
    progress: bool | Callable[[int], None], total: int, description: str
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(count)``: a rich bar if ``progress`` is True, the user's callback if
    it is callable, and a no-op otherwise."""
    if callable(progress):
        yield progress
    elif progress:
        with progress_bar(transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda count: bar.advance(task, count)
    else:
        yield lambda count: None

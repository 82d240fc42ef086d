"""Split from ``deeplimits.distributed``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from deeplimits._core.workers import core_shares, pin_dask_workers

__all__ = ["dask_client"]

@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2, timeout: float = 10.0
                ) -> Iterator:
    """A Dask client: connected to ``scheduler``, or to a fresh ``LocalCluster`` of
    ``workers`` single-threaded processes that is closed on exit. Local workers get
    disjoint shares of the cores (XLA's thread pools would otherwise oversubscribe them).

    Raises:
        ValueError: when the scheduler cannot be reached within ``timeout`` seconds.
    """
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pin_dask_workers(client, core_shares(workers))
        yield client

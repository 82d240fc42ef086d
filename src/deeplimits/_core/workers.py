"""Local worker processes, each confined to its own share of this machine's cores.

XLA on CPU runs every operation on a pool of as many threads as the process may use cores,
and current jaxlib has no flag to shrink that pool. Worker processes that each saw every
core would run ``workers x cores`` threads and thrash. So a local worker is confined (CPU
affinity) to a disjoint share of the cores before it first touches JAX, and XLA sizes its
pool to that share. BLAS and OpenMP pools that are already loaded (NumPy's, SciPy's,
scikit-learn's) are cut to the share with ``threadpoolctl``: OpenBLAS with more threads
than cores spins, and one claim ran 15 times slower for it. Platforms without CPU affinity
(macOS) leave workers as they are.

A worker also belongs to the process that started it: it ignores Ctrl-C (the terminal sends
SIGINT to the whole process group; the parent decides what to do and ends its workers), and
on Linux it is sent SIGTERM when its parent dies, even by SIGKILL, so no worker outlives
the sweep that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import threadpoolctl

__all__ = ["core_shares", "pin", "pin_dask_workers", "pin_next", "init_worker",
           "belong_to_parent"]

def core_shares(workers: int) -> list[tuple[int, ...]]:
    """Disjoint shares of the cores this process may use, one per worker (round robin;
    with more workers than cores, workers share single cores). Empty without affinity."""
    if not hasattr(os, "sched_getaffinity"):
        return [()] * workers
    cores = sorted(os.sched_getaffinity(0))
    return [tuple(cores[w::workers]) or (cores[w % len(cores)],) for w in range(workers)]


def pin(cores: tuple[int, ...]) -> None:
    """Confine every thread of this process to ``cores``; threads started later inherit it."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        return
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cores)
    threadpoolctl.threadpool_limits(len(cores))  # pools loaded later size to the affinity


def pin_next(counter, shares: list[tuple[int, ...]]) -> None:
    """Process-pool initializer: take the next share (``counter`` is a shared integer)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    pin(shares[index % len(shares)])


def belong_to_parent(parent: int | None = None) -> None:
    """Ignore SIGINT, and (Linux) get SIGTERM when the parent process ``parent`` (by default
    the current one) dies; exit at once if it is already gone."""
    with contextlib.suppress(ValueError):  # not the main thread: signals stay as they are
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != (parent if parent is not None else os.getppid()) or os.getppid() == 1:
        os._exit(1)  # the parent died before the request was made


def init_worker(counter, shares: list[tuple[int, ...]], parent: int) -> None:
    """Process-pool initializer: :func:`pin_next`, then :func:`belong_to_parent`."""
    pin_next(counter, shares)
    belong_to_parent(parent)


def pin_dask_workers(client, shares: list[tuple[int, ...]]) -> None:
    """Pin the workers of a ``LocalCluster`` (named 0, 1, ...) to one share each, now and
    whenever a worker is restarted (a worker plugin), and tie them to their nanny."""
    from distributed import WorkerPlugin

    class Pin(WorkerPlugin):
        name = "deeplimits-pin"

        def setup(self, worker):
            name = worker.name
            pin(shares[name % len(shares)] if isinstance(name, int) else ())
            belong_to_parent()

    client.register_plugin(Pin())

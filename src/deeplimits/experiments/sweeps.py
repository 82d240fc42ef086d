"""Sweeps: a grid of independent cells, run in-process, in local processes or on Dask, and
stored so that nothing is lost.

A :class:`Sweep` names a registered :class:`Study`, its grid axes, its seeds and the fixed
parameters. Each :class:`Cell` (one point of the grid, one seed) has a deterministic
:attr:`Cell.key`, a readable slug plus a hash of its study, parameters and seed, from which
its JAX key (:meth:`Cell.jax_key`) and its output file derive; so results do not depend on
the executor, the number of workers or the order in which cells finish.

:func:`run_sweep` computes the missing cells on an :class:`Executor` and writes each into a
:class:`~deeplimits.storage.ResultStore` as soon as it arrives; :func:`collect` assembles
the finished cells into one :class:`xarray.Dataset` with one dimension per varying axis and
``seed``. Everything is checked before the first cell starts.

Example (TOML)::

    study = "forward"
    seeds = [0, 1]
    [grid]
    activation = ["relu", "tanh"]
    width = [2, 4, 8]
    [config]
    depth = 256
    samples = 2000
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr

from deeplimits._core.progress import progress_bar
from deeplimits._core.registry import Registry
from deeplimits._core.workers import core_shares, init_worker
from deeplimits.experiments.store import ResultStore, provenance

__all__ = [
    "Study", "Cell", "Sweep", "SweepReport", "Executor", "InProcess", "LocalProcesses",
    "DaskExecutor", "REQUIRED", "register_study", "get_study", "studies", "get_executor",
    "register_executor", "EXECUTORS",
    "run_sweep", "collect", "save_collected", "SweepInterrupted", "SchedulerLost"
]

REQUIRED = object()


"""Marks a study parameter without a default: every sweep must give it."""


@dataclasses.dataclass(frozen=True)
class Study:
    """A computation of one cell, by name, with its parameters and their defaults.

    Attributes:
        name: what sweeps call it.
        run: ``Cell -> Dataset``; a pure function of the cell's parameters and its JAX key
            (or its seed). It runs on workers, so it must be importable at module level.
        parameters: every parameter the study takes, with its default (or ``REQUIRED``).
        check: optional ``params -> None`` that raises ``ValueError`` for a bad cell; it
            runs for every cell before any work starts.
        description: one line for ``deeplimits sweep --list``.
        identity: optional ``params -> str``: what the parameters *refer to* that their
            values do not say, for a parameter that names something users can redefine (an
            activation registered under a name). It enters the cell's hash, so redefining
            the thing makes new cells instead of reusing results of the old one.
    """

    name: str
    run: Callable[[Cell], xr.Dataset]
    parameters: Mapping[str, Any]
    check: Callable[[dict], None] | None = None
    description: str = ""
    identity: Callable[[dict], str] | None = None


_STUDIES: Registry[Study] = Registry("study", lambda study: study.name)


def register_study(study: Study) -> Study:
    """Make ``study`` available to sweeps by its name (which must be new)."""
    return _STUDIES.register(study)


def studies() -> dict[str, Study]:
    """Every registered study, by name (the built-in ones are registered on first use)."""
    from deeplimits.experiments import studies as _builtin  # noqa: F401  (registers studies)

    return _STUDIES.all()


def get_study(name: str) -> Study:
    studies()
    return _STUDIES.get(name)


def _canonical(value, name: str = "value"):
    """A JSON-stable form of a parameter value (tuples as lists, NumPy scalars and arrays as
    Python numbers and lists).

    Raises:
        TypeError: for anything else (a function, an object): a cell is known by the text
            of its parameters, and a function's text (its name) does not change when the
            function does, so reusing results keyed on it could return stale numbers.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    if isinstance(value, tuple | list):
        return [_canonical(v, name) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _canonical(v, name) for k, v in value.items()}
    what = "a callable" if callable(value) else f"a {type(value).__name__}"
    raise TypeError(
        f"sweep parameter {name!r} is {what} ({value!r}); sweep parameters must be numbers, "
        "strings, booleans or lists of them, because cells are identified by their values. "
        "Register a custom activation under a name (deeplimits.register_activation) and "
        "give the name")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of a sweep: a study, its full parameters and a seed."""

    study: str
    params: tuple[tuple[str, Any], ...]
    seed: int
    axes: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    """The grid axes: they name the cell's file; they do not enter its hash or its key."""
    identity: str = ""
    """The study's :attr:`Study.identity` of the parameters (empty without one): part of
    the hash, so a redefined activation of the same name is another cell."""

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    def describe(self) -> dict[str, Any]:
        described = {"study": self.study, "params": self.parameters, "seed": self.seed}
        return described | ({"identity": self.identity} if self.identity else {})

    @property
    def digest(self) -> str:
        text = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def key(self) -> str:
        """``<study>-<grid values>-s<seed>-<hash>``: readable, unique and deterministic."""
        params = self.parameters
        values = "-".join(str(params[a]) for a in self.axes if isinstance(params[a], str | int
                                                                          | float))
        slug = re.sub(r"[^A-Za-z0-9.=+-]+", "_", f"{self.study}-{values}")[:80]
        return f"{slug}-s{self.seed}-{self.digest[:10]}"

    def jax_key(self) -> jax.Array:
        """The cell's PRNG key: its seed's key folded with the hash of everything else, so
        that two cells share no randomness unless they are the same cell."""
        rest = json.dumps({"study": self.study, "params": self.parameters}, sort_keys=True)
        fold = int.from_bytes(hashlib.sha256(rest.encode()).digest()[:4], "little") >> 1
        return jax.random.fold_in(jax.random.key(self.seed), fold)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A declarative grid: ``study`` x ``grid`` axes x ``seeds``, with fixed ``config``.

    Cells enumerate the grid in the order its axes are given, seeds varying fastest.
    """

    study: str
    grid: Mapping[str, Sequence] = dataclasses.field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: Mapping) -> Sweep:
        unknown = set(spec) - {"study", "grid", "seeds", "config"}
        if unknown:
            raise ValueError(f"unknown sweep entries {sorted(unknown)}; a sweep has study, "
                             "grid, seeds and config")
        if "study" not in spec:
            raise ValueError("a sweep must name its study (study = \"...\")")
        seeds = spec.get("seeds", [0])
        if isinstance(seeds, int):
            seeds = list(range(seeds))
        return cls(study=spec["study"], grid=dict(spec.get("grid", {})),
                   seeds=tuple(seeds), config=dict(spec.get("config", {})))

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> Sweep:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"sweep file {path} does not exist")
        try:
            spec = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(spec)

    def to_dict(self) -> dict:
        return {"study": self.study, "grid": {k: _canonical(list(v)) for k, v in
                                              self.grid.items()},
                "seeds": [int(s) for s in self.seeds], "config": _canonical_map(self.config)}

    def validate(self) -> list[Cell]:
        """Every cell, after checking the whole sweep; raises ``ValueError`` naming the
        first constraint broken (unknown study or axis, empty axis, bad seed, bad cell)."""
        study = get_study(self.study)
        for name in list(self.grid) + list(self.config):
            if name not in study.parameters:
                raise ValueError(f"{name!r} is not a parameter of study {study.name!r}; its "
                                 f"parameters are {sorted(study.parameters)}")
        both = set(self.grid) & set(self.config)
        if both:
            raise ValueError(f"{sorted(both)} appear both in grid and in config")
        for name, values in self.grid.items():
            if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
                raise ValueError(f"grid axis {name!r} must be a non-empty list, got {values!r}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                     and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of non-negative integers, got "
                             f"{list(self.seeds)!r}")
        base = {k: v for k, v in study.parameters.items()} | dict(self.config)
        missing = [k for k, v in base.items() if v is REQUIRED and k not in self.grid]
        if missing:
            raise ValueError(f"study {study.name!r} needs {missing} in grid or config")
        grid = {n: [_canonical(v, n) for v in values] for n, values in self.grid.items()}
        base = {k: v if v is REQUIRED else _canonical(v, k) for k, v in base.items()}
        cells = []
        names = list(grid)
        for values in itertools.product(*(grid[n] for n in names)):
            params = dict(sorted((base | dict(zip(names, values, strict=True))).items()))
            if study.check is not None:
                study.check(params)
            identity = study.identity(params) if study.identity is not None else ""
            cells.extend(Cell(study.name, tuple(params.items()), int(s), tuple(names),
                              identity) for s in self.seeds)
        return cells

    def cells(self) -> list[Cell]:
        return self.validate()


def _canonical_map(mapping: Mapping) -> dict:
    return {k: _canonical(v) for k, v in mapping.items()}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a worker sends back: the dataset, or the error that stopped the cell."""

    dataset: xr.Dataset | None
    error: str | None
    traceback: str | None
    seconds: float


def _stamp(cell: Cell, seconds: float) -> dict:
    """What the store adds to a cell's dataset: provenance, the cell's key and run time."""
    return provenance(cell.describe(), cell.seed) | {"cell_key": cell.key,
                                                     "cell_seconds": float(seconds)}


def execute(cell: Cell) -> Outcome:
    """Run one cell, catching its error (runs on the workers)."""
    import deeplimits._core  # noqa: F401  (the package root: float64 and the registries in a fresh worker)

    start = time.perf_counter()
    try:
        ds = get_study(cell.study).run(cell)
        seconds = time.perf_counter() - start
        stamp = _stamp(cell, seconds)
        clash = sorted(k for k in ds.attrs.keys() & stamp.keys() if ds.attrs[k] != stamp[k])
        if clash:
            raise ValueError(f"study {cell.study!r} returned attributes {clash}, which the "
                             "results store writes as provenance; give them other names")
        return Outcome(ds, None, None, seconds)
    except Exception as exc:  # a failed cell is a result, reported and retried on request
        return Outcome(None, f"{type(exc).__name__}: {exc}", traceback.format_exc(),
                       time.perf_counter() - start)


class Executor(abc.ABC):
    """Where cells run. ``map`` yields ``(cell, outcome)`` as cells finish, in any order.

    Use as a context manager: entering starts the workers (and raises ``ValueError`` when
    they cannot be reached), leaving stops them.
    """

    name: str = ""

    @classmethod
    def of(cls, workers: int | None = None, scheduler: str | None = None) -> Executor:
        """The executor for ``workers`` processes; ``scheduler`` only where it applies."""
        if scheduler is not None:
            raise ValueError("a scheduler address needs the dask executor (--executor dask)")
        return cls()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    @abc.abstractmethod
    def map(self, cells: Sequence[Cell]) -> Iterator[tuple[Cell, Outcome]]: ...


class InProcess(Executor):
    """Cells one after another in this process: no set-up, compiled code reused."""

    name = "inprocess"

    def map(self, cells):
        for cell in cells:
            yield cell, execute(cell)


class LocalProcesses(Executor):
    """A pool of ``workers`` fresh Python processes on this machine (spawned, not forked:
    JAX is not fork-safe), each on its own share of the cores."""

    name = "local"

    @classmethod
    def of(cls, workers=None, scheduler=None):
        super().of(None, scheduler)  # refuses a scheduler
        return InProcess() if workers == 1 else cls(workers)  # one worker: no pool

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = None

    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=init_worker,
            initargs=(context.Value("i", 0), core_shares(self.workers), os.getpid()))
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # interrupted or failed: the cells in flight are abandoned
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                with contextlib.suppress(OSError, AttributeError):
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def map(self, cells):
        futures = {self._pool.submit(execute, cell): cell for cell in cells}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


class DaskExecutor(Executor):
    """A Dask cluster: the scheduler at ``scheduler``, or a fresh ``LocalCluster`` of
    ``workers`` processes, each on its own share of the cores. An unreachable scheduler
    raises ``ValueError`` after ``timeout`` seconds, before any cell."""

    name = "dask"

    @classmethod
    def of(cls, workers=None, scheduler=None):
        return cls(scheduler, workers)

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 timeout: float = 10.0):
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.timeout = timeout
        self._stack = None
        self.client = None

    def __enter__(self):
        from deeplimits._core.dask import dask_client

        self._stack = contextlib.ExitStack()
        self.client = self._stack.enter_context(dask_client(self.scheduler, self.workers,
                                                            self.timeout))
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # interrupted: the cancelled tasks' warnings are expected
            import logging

            logging.getLogger("distributed").setLevel(logging.CRITICAL)
        self._stack.close()

    def map(self, cells):
        from dask.distributed import as_completed

        futures = {self.client.submit(execute, cell, pure=False): cell for cell in cells}
        finished = 0
        try:
            for future in as_completed(futures):
                cell = futures.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001  (sorted below)
                    # nothing here cancels a future: cancelled means the scheduler is gone
                    if self._lost() or "Cancelled" in type(exc).__name__:
                        raise SchedulerLost(self._address(), finished, finished + 1
                                            + len(futures), exc) from None
                    # the cell's task failed outside the study (its workers kept dying:
                    # KilledWorker): a failed cell, reported and retried on request
                    outcome = Outcome(None, f"{type(exc).__name__}: {exc}", None, 0.0)
                finished += 1
                yield cell, outcome
                if self._lost():
                    raise SchedulerLost(self._address(), finished, finished + len(futures))
        finally:
            if futures and not self._lost():  # interrupted: stop the cells still queued
                with contextlib.suppress(Exception):
                    self.client.cancel(list(futures))

    def _address(self) -> str:
        return self.scheduler or getattr(self.client, "scheduler_address", None) or "?"

    def _lost(self) -> bool:
        return self.client.status != "running"


_EXECUTORS: Registry[type[Executor]] = Registry("executor", lambda cls: cls.name,
                                                case_sensitive=False)


def register_executor(executor: type[Executor], *, overwrite: bool = False
                      ) -> type[Executor]:
    """Make an :class:`Executor` subclass available by its ``name`` (``run_sweep(...,
    executor=name)``, ``deeplimits sweep --executor name``)."""
    return _EXECUTORS.register(executor, overwrite=overwrite)


for _executor in (InProcess, LocalProcesses, DaskExecutor):
    register_executor(_executor)
EXECUTORS = tuple(_EXECUTORS.all())  # in registration order: the default comes first


def get_executor(name: str, workers: int | None = None, scheduler: str | None = None
                 ) -> Executor:
    """A registered executor by name: ``"inprocess"``, ``"local"`` (process pool; with one
    worker it runs in-process) or ``"dask"`` (``scheduler`` or a LocalCluster)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return _EXECUTORS.get(name).of(workers, scheduler)


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C or SIGTERM; its finished cells are kept (``done`` of
    ``total`` cells of the sweep are finished in ``folder``)."""

    def __init__(self, folder, done: int, total: int, signal_name: str = "SIGINT"):
        self.folder, self.done, self.total, self.signal_name = folder, done, total, signal_name
        super().__init__(
            f"interrupted ({signal_name}): {done} of {total} cells are finished in {folder}; "
            f"rerun the same command to compute the other {total - done}")


class SchedulerLost(ConnectionError):
    """The Dask scheduler went away mid-sweep; the cells finished before are kept."""

    def __init__(self, address: str, finished: int, outstanding: int, cause=None):
        self.address = address
        why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(
            f"lost the Dask scheduler at {address}{why} after {finished} cells of this run; "
            f"{outstanding - finished} were not finished. The finished cells are kept: "
            "rerun when the scheduler is back to compute the rest")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[list[str]]:
    """While inside, SIGTERM (``kill PID``) interrupts like Ctrl-C (a ``KeyboardInterrupt``
    in the main thread), so the sweep ends its workers and says how to resume. Yields a
    list that receives the name of each signal that arrived. A ``KeyboardInterrupt`` raised
    inside a finaliser would be swallowed, so the handler only records a signal that lands
    in a ``__del__`` or weakref callback, and the sweep checks the list after each cell; a
    swallowed interrupt from any other callback (gc callbacks) is not printed as an
    "Exception ignored" traceback, since the list already holds its signal."""
    import signal
    import sys
    import threading

    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum, frame):
        received.append(signal.Signals(signum).name)
        # inside a finaliser the interrupt would be swallowed (and printed as ignored): leave
        # it recorded, and the sweep stops after the cell in flight
        f = frame
        while f is not None:
            if f.f_code.co_name == "__del__" or f.f_code.co_filename.endswith("weakref.py"):
                return
            f = f.f_back
        raise KeyboardInterrupt

    unraisable = sys.unraisablehook

    def quiet_interrupt(info):
        if not (received and issubclass(info.exc_type, KeyboardInterrupt)):
            unraisable(info)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = quiet_interrupt
    try:
        yield received
    finally:
        sys.unraisablehook = unraisable
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass(frozen=True)
class SweepReport:
    """What a run did: cells computed now, found finished, and failed (key -> error)."""

    cells: tuple[Cell, ...]
    computed: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str]
    seconds: float
    store: ResultStore

    @property
    def complete(self) -> bool:
        return not self.failed and all(self.store.done(c.key) for c in self.cells)


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike,
    *,
    executor: str | Executor = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    on_cell: Callable[[Cell, Outcome], None] | None = None,
    console=None,
) -> SweepReport:
    """Compute every cell of ``sweep`` that ``out`` does not hold yet.

    Finished cells are skipped; failed ones too unless ``retry_failed``. Each result is
    written atomically the moment it arrives, so an interrupted run (even by SIGKILL) loses
    at most the cells in flight, and rerunning completes exactly the missing ones.

    ``progress`` shows a bar (cells done and failed, elapsed, ETA) on ``console`` (a rich
    console; standard error by default); ``on_cell(cell, outcome)`` is called as each cell
    arrives.

    Ctrl-C and SIGTERM end the workers, record what is finished in the manifest and raise
    :class:`SweepInterrupted` (a ``KeyboardInterrupt``) saying how to resume. The folder is
    locked while the sweep runs: a second sweep on it is refused.

    Raises:
        ValueError: before any work, for a bad sweep, a folder written by another version
            or in use by another sweep, or an executor that cannot start (an unreachable
            scheduler).
        OSError: when a result cannot be written (a full disk, a read-only folder): the
            message names the file; no partial file is left and finished cells are kept.
        SchedulerLost: when the Dask scheduler goes away mid-sweep (finished cells kept).
        SweepInterrupted: on Ctrl-C or SIGTERM.
    """
    cells = sweep.validate()
    store = ResultStore(out)
    store.check()
    if isinstance(executor, str):
        executor = get_executor(executor, workers, scheduler)
    start = time.perf_counter()
    computed = []
    description = {c.key: c.describe() for c in cells}
    with contextlib.ExitStack() as stack:
        received = stack.enter_context(_signals_interrupt())
        stack.enter_context(store.lock())  # before counting what is done: no one else writes
        done = {c.key for c in cells if store.done(c.key)}
        earlier = {c.key: record["error"] for c in cells
                   if c.key not in done and (record := store.failure(c.key)) is not None}
        todo = [c for c in cells if c.key not in done and (retry_failed or c.key not in earlier)]
        failed = {} if retry_failed else earlier  # failed cells left alone are reported again
        try:
            if todo:
                stack.enter_context(executor)
            store.open()
            store.index(description)
            # the manifest is brought up to date however the run ends (entered after the
            # executor, so it runs before the workers are stopped: nothing waits on them)
            stack.callback(_reindex_quietly, store, description)
            if console is None:
                from rich.console import Console

                console = Console(stderr=True)
            bar = stack.enter_context(progress_bar(disable=not progress, transient=True,
                                                   console=console))
            task = bar.add_task(_progress_label(len(computed), failed), total=len(todo))
            for cell, outcome in executor.map(todo) if todo else ():
                if outcome.error is None:
                    ds = outcome.dataset
                    ds.attrs.update(_stamp(cell, outcome.seconds))
                    store.save(cell.key, ds)
                    failed.pop(cell.key, None)
                    computed.append(cell.key)
                else:
                    store.save_failure(cell.key, cell.describe() | {
                        "error": outcome.error, "traceback": outcome.traceback,
                        "seconds": outcome.seconds})
                    failed[cell.key] = outcome.error
                if on_cell is not None:
                    on_cell(cell, outcome)
                bar.update(task, advance=1, description=_progress_label(len(computed), failed))
                store.index(description, every=5.0)
                if received:  # a signal whose KeyboardInterrupt was swallowed
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            finished = sum(store.done(c.key) for c in cells)
            interrupted = SweepInterrupted(store.root, finished, len(cells),
                                           received[0] if received else "SIGINT")
        else:
            interrupted = None
    if interrupted is not None:
        raise interrupted
    skipped = tuple(c.key for c in cells if c.key in done)
    return SweepReport(tuple(cells), tuple(computed), skipped, failed,
                       time.perf_counter() - start, store)


def _reindex_quietly(store: ResultStore, description: dict) -> None:
    """Bring the manifest up to date, unless writing fails (a full disk): the error that
    ended the run is the one to report, and the files remain the truth."""
    with contextlib.suppress(OSError):
        store.index(description)


def _progress_label(done: int, failed: Mapping) -> str:
    return f"cells: {done} done, {len(failed)} failed"


def _coordinate(value):
    return value if isinstance(value, str | int | float | bool) else json.dumps(value)


def collect(out: str | os.PathLike, sweep: Sweep | None = None) -> xr.Dataset:
    """The finished cells of ``out`` as one dataset.

    Each parameter that varies across cells, and ``seed``, becomes a dimension; cells not
    finished (failed or never run) are NaN. With ``sweep``, only its cells are collected;
    otherwise all cells in the manifest, which must then belong to one study.

    Raises:
        ValueError: when there is no finished cell, or cells of several studies.
    """
    store = ResultStore(out)
    store.check()
    if not (store.root / store.MANIFEST).exists():
        raise ValueError(f"{store.root} holds no sweep results (no manifest)")
    if sweep is not None:
        described = {c.key: c.describe() for c in sweep.validate()}
    else:
        described = {k: {n: v[n] for n in ("study", "params", "seed")}
                     for k, v in store.manifest()["cells"].items()}
    names = {d["study"] for d in described.values()}
    if len(names) != 1:
        raise ValueError(f"{store.root} holds cells of studies {sorted(names)}; pass the "
                         "sweep whose cells to collect")
    finished = {k: d for k, d in described.items() if store.done(k)}
    if not finished:
        raise ValueError(f"{store.root} has no finished cell to collect")
    params = [d["params"] for d in described.values()]
    varying = [n for n in params[0] if len({json.dumps(p[n], default=str) for p in params}) > 1]
    parts = []
    for key, d in finished.items():
        ds = store.load(key)
        ds.attrs = {}
        coords = {n: _coordinate(d["params"][n]) for n in varying} | {"seed": d["seed"]}
        parts.append(ds.expand_dims(cell=[key]).assign_coords(
            {n: ("cell", [v]) for n, v in coords.items()}))
    merged = xr.concat(parts, dim="cell", join="outer", combine_attrs="drop")
    if varying:
        merged = merged.set_index(cell=[*varying, "seed"]).unstack("cell")
    else:  # only the seed varies: one plain index, which unstack cannot take
        merged = merged.swap_dims({"cell": "seed"}).drop_vars("cell")
    # every cell of the sweep has its place, NaN until it is finished
    everything = {n: list(dict.fromkeys(_coordinate(d["params"][n]) for d in described.values()))
                  for n in varying} | {"seed": sorted({d["seed"] for d in described.values()})}
    merged = merged.reindex(everything)
    fixed = {n: v for n, v in params[0].items() if n not in varying}
    merged.attrs.update(provenance({"study": next(iter(names)), "fixed": fixed,
                                    "varying": varying}))
    merged.attrs.update(cells_total=len(described), cells_finished=len(finished))
    return merged


def save_collected(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a collected dataset as netCDF (``.nc``) or Zarr (``.zarr``), atomically."""
    from deeplimits.experiments.store import save_dataset

    path = Path(path)
    if path.suffix == ".nc":
        return save_dataset(ds, path)
    if path.suffix == ".zarr":
        import shutil

        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        ds.to_zarr(tmp, mode="w")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        return path
    raise ValueError(f"collected output must end in .nc or .zarr, got {path.name}")

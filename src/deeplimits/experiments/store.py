"""Result datasets on disk: provenance in the attributes, atomic writes.

Every dataset written by ``deeplimits`` carries the versions, seed and configuration that
made it (``provenance``), and is written to a temporary file in the destination folder
that is renamed into place only once complete, so a crash never leaves a half-written file.
Files get the mode any other program's would (``0666`` less the umask), so collaborators
on a shared machine can read them.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import xarray as xr

from deeplimits._core.provenance import PACKAGES, package_version, provenance

__all__ = [
    "provenance", "save_dataset", "load_dataset", "atomic_path", "write_json", "ResultStore",
    "PACKAGES"
]



def umask() -> int:
    """This process's umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only.

    The file ends with mode ``0666`` less the umask, as ``open(path, "w")`` would give it
    (the temporary file is created ``0600``, which would hide it from collaborators).
    SIGINT and SIGTERM are held until the file is in place (:func:`signals_held`): an
    interrupt landing inside a writer (h5netcdf) left its file object half-closed, and its
    finaliser printed a traceback at exit.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    with signals_held():  # a held signal is delivered on leaving, after the file is in place
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~umask())  # after writing: some writers recreate the file
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while inside, then act on them as their handlers would.

    Python runs signal handlers in the main thread, but the kernel delivers a process signal
    to any thread that does not block it (XLA's and the executors' threads), so blocking
    with ``pthread_sigmask`` in the main thread alone does not hold them: under load an
    interrupt still landed inside a netCDF write. Here the main thread's handlers are
    replaced by a recorder while inside; on leaving, each recorded signal goes to the
    handler it would have reached (a Python handler is called, ``SIG_DFL`` is re-raised,
    ``SIG_IGN`` is dropped). Off the main thread handlers cannot be replaced, and none run
    there either, so nothing is needed.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():  # None: a handler not set from Python
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in pending:
            handler = previous[signum]
            if callable(handler):  # called from here, where it now acts (not where it landed)
                handler(signum, sys._getframe())
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def save_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF (h5netcdf engine) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a netCDF dataset (or a Zarr store, ``.zarr``) fully into memory.

    Raises:
        ValueError: when ``path`` is missing or not a dataset.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    try:
        if path.suffix == ".zarr":
            with xr.open_zarr(path) as ds:
                return ds.load()
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable dataset: {exc}") from None


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")
    return path


class ResultStore:
    """A results folder that loses nothing: one file per finished cell, written atomically.

    Layout::

        root/manifest.json        deeplimits version, creation time, every cell seen
        root/data/<key>.nc        one dataset per finished cell (write, then rename)
        root/failed/<key>.json    the error and traceback of a cell that raised

    A cell is finished exactly when its file exists: a crash (even SIGKILL) can leave only
    hidden temporaries behind, which :meth:`open` removes. The manifest is an index rebuilt
    from the files, so losing it loses nothing; :meth:`open` and :meth:`index` bring each
    cell's status in it back in line with the files.

    A writer holds :meth:`lock` (``root/.lock``, an advisory ``flock`` that the system
    releases when the process ends, however it ends), so two sweeps never write one folder.
    """

    MANIFEST = "manifest.json"
    LOCK = ".lock"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._indexed = 0.0
        self._holding = False  # this object holds lock()

    @contextlib.contextmanager
    def lock(self) -> Iterator[ResultStore]:
        """Hold the folder for writing; raises ``ValueError`` at once if another process
        holds it. A folder this creates and leaves empty is removed again on exit."""
        created = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / self.LOCK, "a+")  # noqa: SIM115  (held until exit)
        except OSError as exc:
            raise _write_error(exc, self.root, "cannot create the results folder") from None
        try:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # no fcntl (Windows): no lock
                pass
            except OSError:
                raise self._in_use(handle) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {os.uname().nodename}, since "
                         f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
            handle.flush()
            self._holding = True
            yield self
        finally:
            self._holding = False
            handle.close()
            if created and [p.name for p in self.root.iterdir()] == [self.LOCK]:
                shutil.rmtree(self.root, ignore_errors=True)

    def _in_use(self, handle) -> ValueError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        return ValueError(f"results folder {self.root} is in use by another deeplimits sweep "
                          f"({holder}); wait for it to finish (then rerun: finished cells are "
                          "skipped) or give another folder")

    def _raise_if_locked(self) -> None:
        """Raise the "in use" error if another process holds :meth:`lock` (a shared
        ``flock`` probe, released at once; the lock file is only read)."""
        if self._holding:  # the holder is this sweep (flock conflicts across open files)
            return
        try:
            import fcntl

            with open(self.root / self.LOCK) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError:
                    raise self._in_use(handle) from None
        except (ImportError, FileNotFoundError):
            pass

    def check(self) -> None:
        """Raise ``ValueError`` if ``root`` cannot hold this version's results.

        The folder must be absent, empty, or written by this same version of deeplimits:
        results of another version are never mixed in or overwritten.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"results folder {self.root} exists and is not a directory")
        manifest = self.root / self.MANIFEST
        if manifest.exists():
            try:
                written_by = json.loads(manifest.read_text())["deeplimits_version"]
            except (ValueError, KeyError):
                raise ValueError(f"{manifest} is not a deeplimits manifest; use another "
                                 "results folder") from None
            if written_by != package_version("deeplimits"):
                raise ValueError(
                    f"results folder {self.root} was written by deeplimits {written_by}, this "
                    f"is {package_version('deeplimits')}: use another folder (nothing was changed)")
        elif self.root.exists() and any(p.name in ("data", "failed")
                                        for p in self.root.iterdir()):
            # a sweep that holds the folder creates these just before its manifest
            self._raise_if_locked()
            if manifest.exists():  # that sweep wrote it and ended since the first look
                return self.check()
            raise ValueError(f"results folder {self.root} has results but no manifest: it "
                             "was not written by this version of deeplimits")

    def open(self) -> ResultStore:
        """Check the folder, create it if needed, remove temporaries left by a crash, make
        sure files can be written there (before any work), and bring the manifest's
        statuses in line with the files.

        Raises:
            ValueError: as :meth:`check`.
            OSError: when the folder cannot be written (read-only, full), naming it.
        """
        self.check()
        try:
            for sub in ("data", "failed"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
                for tmp in (self.root / sub).glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
                with atomic_path(self.root / sub / ".probe"):
                    pass
                (self.root / sub / ".probe").unlink()
        except OSError as exc:
            raise _write_error(exc, self.root, "cannot write into the results folder") from None
        if not (self.root / self.MANIFEST).exists():
            self._write(self.root / self.MANIFEST, write_json, {
                "deeplimits_version": package_version("deeplimits"),
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "cells": {}})
        else:
            self.index({})
        return self

    def path(self, key: str) -> Path:
        return self.root / "data" / f"{key}.nc"

    def done(self, key: str) -> bool:
        return self.path(key).exists()

    def failure(self, key: str) -> dict | None:
        path = self.root / "failed" / f"{key}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save(self, key: str, ds: xr.Dataset) -> Path:
        """Write a finished cell (atomically).

        Raises:
            OSError: naming the file when it cannot be written; nothing partial remains.
        """
        path = self._write(self.path(key), save_dataset, ds)
        (self.root / "failed" / f"{key}.json").unlink(missing_ok=True)
        return path

    def save_failure(self, key: str, info: dict) -> None:
        self._write(self.root / "failed" / f"{key}.json", write_json, info)

    def _write(self, path: Path, writer, data) -> Path:
        try:
            return writer(path, data) if writer is write_json else writer(data, path)
        except OSError as exc:
            raise _write_error(exc, path, "cannot write") from None

    def load(self, key: str) -> xr.Dataset:
        return load_dataset(self.path(key))

    def manifest(self) -> dict:
        return json.loads((self.root / self.MANIFEST).read_text())

    def index(self, cells: dict[str, dict], every: float = 0.0) -> None:
        """Record ``cells`` (key -> description) in the manifest, and every cell's status
        (``done``, ``failed`` or ``pending``) as its files say. With ``every``, do nothing
        if the last update is more recent than that many seconds (a running sweep keeps
        the manifest current without rewriting it for every cell)."""
        now = time.monotonic()
        if every and now - self._indexed < every:
            return
        manifest = self.manifest()
        for key, description in cells.items():
            manifest["cells"][key] = dict(description)
        for key, entry in manifest["cells"].items():
            entry["status"] = ("done" if self.done(key) else "failed"
                               if (self.root / "failed" / f"{key}.json").exists() else "pending")
        self._write(self.root / self.MANIFEST, write_json, manifest)
        self._indexed = now


def _write_error(exc: OSError, path: Path, what: str) -> OSError:
    """``exc`` again, of the same class (``PermissionError``, ...), with a message that names
    ``path`` and says what to do."""
    hint = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EROFS: "the file system is read-only"}.get(exc.errno, exc.strerror or str(exc))
    return OSError(exc.errno, f"{what} {path}: {hint}. Finished cells are kept; fix this and "
                   "rerun to compute the missing ones")

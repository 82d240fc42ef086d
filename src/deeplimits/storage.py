"""Result datasets on disk: provenance in the attributes, atomic writes.

Every dataset written by ``deeplimits`` carries the versions, seed and configuration that
made it (``provenance``), and is written to a temporary file in the destination folder
that is renamed into place only once complete, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jax
import xarray as xr

__all__ = ["provenance", "save_dataset", "load_dataset", "atomic_path", "PACKAGES"]

PACKAGES = ("deeplimits", "jax", "jaxlib", "equinox", "diffrax", "numpy", "scipy", "xarray",
            "h5netcdf", "matplotlib")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance(config: dict | None = None, seed: int | None = None) -> dict[str, str]:
    """NetCDF-safe attributes: versions, platform, JAX backend, time, seed and config."""
    attrs = {f"version_{name}": _version(name) for name in PACKAGES}
    attrs.update(
        python=sys.version.split()[0],
        platform=platform.platform(),
        jax_backend=jax.default_backend(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    if seed is not None:
        attrs["seed"] = int(seed)
    if config is not None:
        attrs["config"] = json.dumps(config, sort_keys=True, default=str)
    return attrs


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as netCDF (h5netcdf engine) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a dataset written by :func:`save_dataset` fully into memory."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()

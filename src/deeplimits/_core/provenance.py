"""Provenance: the versions, platform, backend, time, seed and configuration of a result."""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import json
import platform
import sys

import jax

__all__ = ["PACKAGES", "package_version", "provenance"]

PACKAGES = ("deeplimits", "jax", "jaxlib", "equinox", "diffrax", "numpy", "scipy", "xarray",
            "h5netcdf", "matplotlib")


@functools.cache
def package_version(name: str) -> str:
    """The installed version of ``name``, or ``"not installed"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance(config: dict | None = None, seed: int | None = None) -> dict[str, str]:
    """NetCDF-safe attributes: versions, platform, JAX backend, time, seed and config."""
    attrs = {f"version_{name}": package_version(name) for name in PACKAGES}
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

"""Split from ``deeplimits.scaling.train``."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from deeplimits._core.progress import progress_bar
from deeplimits.data.scaling import ScalingData
from deeplimits.experiments.store import atomic_path, load_dataset, save_dataset
from deeplimits.simulation.training import TrainConfig, depth_buckets, load_data, train_cells
from deeplimits.spec.trainable import (
    FCResNet,
)

__all__ = ["train_sweep", "load_sweep", "cell_path", "model_from_cell", "sweep_weights",
           "sweep_branch_scale"]


def cell_path(out_dir: str | Path, depth: int, seed: int) -> Path:
    return Path(out_dir) / "cells" / f"L{int(depth):05d}_s{int(seed):03d}.nc"


def _manifest(out_dir: Path) -> dict:
    path = out_dir / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    with atomic_path(out_dir / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))


def train_sweep(out_dir: str | Path, config: TrainConfig, depths: Sequence[int],
                seeds: Sequence[int], *, data: ScalingData | None = None,
                progress: bool = True, bucket_ratio: float = 2.0) -> dict:
    """Train every (depth, seed) cell not yet in ``out_dir``; returns the manifest.

    Writes ``out_dir/cells/L<depth>_s<seed>.nc`` (atomically, one per cell, failed cells
    included: their weights are the last finite ones) and ``out_dir/manifest.json``
    (``config`` and, per cell, ``status``, ``message``, ``epochs``, ``train_loss``). A folder
    holding a different configuration is refused. Cells are trained in groups of depths
    within a factor ``bucket_ratio`` (:func:`depth_buckets`, one compilation per group); the
    manifest is rewritten after each group, so an interrupted sweep resumes where it stopped.
    """
    depths = sorted({int(L) for L in depths})
    seeds = [int(s) for s in seeds]
    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be integers >= 1, got {depths}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds}")
    out_dir = Path(out_dir)
    manifest = _manifest(out_dir)
    if manifest and manifest.get("config") != config.to_dict():
        raise ValueError(f"{out_dir} holds a sweep with another configuration: "
                         f"{manifest.get('config')}")
    manifest.setdefault("config", config.to_dict())
    manifest.setdefault("cells", {})
    data = load_data(config) if data is None else data
    manifest["data"] = data.name
    todo = {L: [s for s in seeds if not cell_path(out_dir, L, s).exists()] for L in depths}
    todo = {L: s for L, s in todo.items() if s}
    with progress_bar(disable=not progress, transient=True) as bar:
        task = bar.add_task("training depth sweep", total=sum(map(len, todo.values())))
        for group in depth_buckets(list(todo), bucket_ratio):
            for ds in train_cells(config, [(L, s) for L in group for s in todo[L]], data):
                L, seed = int(ds.attrs["depth"]), int(ds.attrs["seed"])
                save_dataset(ds, cell_path(out_dir, L, seed))
                manifest["cells"][f"L{L}_s{seed}"] = {
                    k: ds.attrs[k] for k in ("depth", "seed", "status", "message", "epochs",
                                             "train_loss", "test_loss")}
                bar.advance(task)
            _write_manifest(out_dir, manifest)
    _write_manifest(out_dir, manifest)
    return manifest


def load_sweep(out_dir: str | Path) -> dict[tuple[int, int], xr.Dataset]:
    """``{(depth, seed): dataset}`` of every cell file of a sweep folder."""
    files = sorted((Path(out_dir) / "cells").glob("L*_s*.nc"))
    if not files:
        raise ValueError(f"{out_dir} holds no trained cells (expected cells/L*_s*.nc)")
    out = {}
    for f in files:
        ds = load_dataset(f)
        out[(int(ds.attrs["depth"]), int(ds.attrs["seed"]))] = ds
    return out


def model_from_cell(ds: xr.Dataset, *, initial: bool = False) -> FCResNet:
    """The :class:`FCResNet` stored in a cell dataset (trained, or ``initial`` weights)."""
    cfg = json.loads(ds.attrs["config"])
    sfx = "_init" if initial else ""
    delta = jnp.asarray(ds[f"delta{sfx}"].values) if f"delta{sfx}" in ds else None
    return FCResNet(jnp.asarray(ds[f"A{sfx}"].values), jnp.asarray(ds[f"b{sfx}"].values), delta,
                    activation=cfg["activation"], multiplier=float(ds.attrs["multiplier"]))


def sweep_weights(cells: dict[tuple[int, int], xr.Dataset], *, effective: bool | None = None,
                  initial: bool = False, include_failed: bool = False,
                  statuses: Collection[str] | None = None) -> dict[int, np.ndarray]:
    """``{L: (n_seeds, L, d, d)}`` weight stacks of a sweep for :func:`analyze_weights`.

    ``effective`` (default: ReLU or per-layer delta, as §5 prescribes) multiplies ``A_k`` by
    ``|delta_k|``. Failed cells become NaN stacks (skipped by the analysis) unless
    ``include_failed``; with ``statuses`` (e.g. ``("converged", "plateau")``: cells that
    reached a stopping rule), every cell whose status is not listed becomes NaN too.
    """
    by_depth: dict[int, list] = {}
    for (L, _), ds in sorted(cells.items()):
        cfg = json.loads(ds.attrs["config"])
        eff = (cfg["activation"] == "relu" or cfg["delta"] == "per-layer") \
            if effective is None else effective
        sfx = "_init" if initial else ""
        A = np.asarray(ds[f"A{sfx}"].values, np.float64)
        if eff and f"delta{sfx}" in ds:
            d = np.abs(np.asarray(ds[f"delta{sfx}"].values, np.float64))
            A = A * (d[:, None, None] if d.ndim else d)
        if (ds.attrs["status"] == "failed" and not include_failed) or (
                statuses is not None and ds.attrs["status"] not in statuses):
            A = np.full_like(A, np.nan)
        by_depth.setdefault(L, []).append(A)
    return {L: np.stack(v) for L, v in by_depth.items()}


def sweep_branch_scale(cells: dict[tuple[int, int], xr.Dataset], *, initial: bool = False
                       ) -> dict[int, np.ndarray] | None:
    """``{L: (n_seeds,)}`` the shared ``|delta|`` of each cell (in the order of
    :func:`sweep_weights`), for ``analyze_weights(branch_scale=...)``; ``None`` unless every
    cell has a shared (0-d) delta. Failed cells get 1 (their stacks are NaN and skipped)."""
    sfx = "_init" if initial else ""
    by_depth: dict[int, list] = {}
    for (L, _), ds in sorted(cells.items()):
        if f"delta{sfx}" not in ds or ds[f"delta{sfx}"].ndim != 0:
            return None
        d = abs(float(ds[f"delta{sfx}"].values))
        by_depth.setdefault(L, []).append(d if d > 0 and np.isfinite(d) else 1.0)
    return {L: np.asarray(v) for L, v in by_depth.items()}

"""Training sweeps across depth written through the one results store
(:class:`~deeplimits.experiments.store.ResultStore`, the store of every sweep).

Layout of a sweep folder::

    root/manifest.json        the store's index: deeplimits version, and per cell its
                              description (study "scaling-train", depth, seed, the training
                              configuration, the data set) and, once trained, ``training``
                              (status, message, epochs, train and test loss)
    root/data/L<depth>_s<seed>.nc   one dataset per trained cell (atomic write)

Cells are still trained in groups of depths (one compiled, vmapped epoch function per group,
:func:`~deeplimits.simulation.training.train_cells`); each cell is written the moment its
group finishes, so an interrupted sweep resumes where it stopped. Folders of the layout
before the one store (``cells/L*_s*.nc`` beside a ``manifest.json`` with a ``config``) are
read transparently by :func:`load_sweep`; :func:`train_sweep` refuses to add to them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from deeplimits._core.progress import progress_bar
from deeplimits.data.scaling import ScalingData
from deeplimits.experiments.store import ResultStore, load_dataset
from deeplimits.simulation.training import TrainConfig, depth_buckets, load_data, train_cells
from deeplimits.spec.trainable import (
    FCResNet,
)

__all__ = ["train_sweep", "load_sweep", "cell_path", "cell_key", "check_sweep_folder",
           "is_sweep_folder", "model_from_cell", "sweep_weights", "sweep_branch_scale"]

STUDY = "scaling-train"

_TRAINING = ("status", "message", "epochs", "train_loss", "test_loss")


def cell_key(depth: int, seed: int) -> str:
    """The store key of a (depth, seed) cell, e.g. ``L40_s1``."""
    return f"L{int(depth)}_s{int(seed)}"


def cell_path(out_dir: str | Path, depth: int, seed: int) -> Path:
    """Where the store keeps the cell (``root/data/L<depth>_s<seed>.nc``)."""
    return ResultStore(out_dir).path(cell_key(depth, seed))


def _legacy(out_dir: Path) -> bool:
    """A folder of the layout before the one store: ``cells/`` and a manifest with
    ``config`` but no ``deeplimits_version``."""
    return (out_dir / "cells").is_dir()


def is_sweep_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a training sweep (the store's layout or the old one)."""
    path = Path(path)
    if _legacy(path):
        return True
    manifest = path / ResultStore.MANIFEST
    if not (manifest.exists() and (path / "data").is_dir()):
        return False
    try:
        cells = json.loads(manifest.read_text()).get("cells", {})
    except ValueError:
        return False
    return any(c.get("study") == STUDY for c in cells.values())


def _stored_configs(store: ResultStore) -> list[dict]:
    cells = store.manifest()["cells"] if (store.root / store.MANIFEST).exists() else {}
    return [c["config"] for c in cells.values() if c.get("study") == STUDY]


def check_sweep_folder(out_dir: str | Path, config: TrainConfig) -> None:
    """Raise ``ValueError`` (before any work) unless ``out_dir`` can take cells of
    ``config``: a folder of the old layout, of another deeplimits version, holding other
    results, or a sweep with another configuration is refused."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder")
    if _legacy(out_dir):
        raise ValueError(f"{out_dir} holds a sweep in the layout before the one results store "
                         "(cells/ beside manifest.json): load_sweep and 'deeplimits scaling "
                         "analyze' still read it, but new cells go into a new folder")
    store = ResultStore(out_dir)
    store.check()
    if (out_dir / store.MANIFEST).exists():
        cells = store.manifest()["cells"]
        others = sorted({c.get("study") for c in cells.values()} - {STUDY})
        if others:
            raise ValueError(f"{out_dir} holds results of {others}, not a training sweep")
        for cfg in _stored_configs(store):
            if cfg != config.to_dict():
                raise ValueError(f"{out_dir} holds a sweep with another configuration: {cfg}")


def _description(config: TrainConfig, data: ScalingData, depth: int, seed: int) -> dict:
    return {"study": STUDY, "params": {"depth": int(depth)}, "seed": int(seed),
            "config": config.to_dict(), "data": data.name}


def train_sweep(out_dir: str | Path, config: TrainConfig, depths: Sequence[int],
                seeds: Sequence[int], *, data: ScalingData | None = None,
                progress: bool = True, bucket_ratio: float = 2.0) -> dict:
    """Train every (depth, seed) cell not yet in ``out_dir`` and write each through the
    results store; returns ``{"config", "data", "cells": {key: {depth, seed, status,
    message, epochs, train_loss, test_loss}}}`` for every cell of the folder (``status`` is
    the training outcome: ``converged``, ``plateau``, ``max_epochs`` or ``failed``).

    Failed cells (non-finite loss) are written too: their weights are the last finite ones.
    A folder holding a different configuration, another version's results or the old layout
    is refused before any work (:func:`check_sweep_folder`); the folder is locked while the
    sweep runs. Cells are trained in groups of depths within a factor ``bucket_ratio``
    (:func:`depth_buckets`, one compilation per group, vmapped over seeds).
    """
    depths = sorted({int(L) for L in depths})
    seeds = [int(s) for s in seeds]
    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be integers >= 1, got {depths}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds}")
    out_dir = Path(out_dir)
    check_sweep_folder(out_dir, config)
    data = load_data(config) if data is None else data
    store = ResultStore(out_dir)
    with store.lock():
        store.open()
        known = store.manifest()["cells"]
        # describe the new cells; a cell trained before keeps its recorded outcome
        store.index({key: _description(config, data, L, s) | (
            {"training": known[key]["training"]} if "training" in known.get(key, {}) else {})
            for L in depths for s in seeds for key in [cell_key(L, s)]})
        # a cell written just before a crash may lack its outcome in the index: its file has it
        known = store.manifest()["cells"]
        store.index({k: known[k] | {"training": {a: ds.attrs[a] for a in _TRAINING}}
                     for k in known if store.done(k) and "training" not in known[k]
                     for ds in [store.load(k)]})
        todo = {L: [s for s in seeds if not store.done(cell_key(L, s))] for L in depths}
        todo = {L: s for L, s in todo.items() if s}
        with progress_bar(disable=not progress, transient=True) as bar:
            task = bar.add_task("training depth sweep", total=sum(map(len, todo.values())))
            for group in depth_buckets(list(todo), bucket_ratio):
                trained = {}
                for ds in train_cells(config, [(L, s) for L in group for s in todo[L]], data):
                    L, seed = int(ds.attrs["depth"]), int(ds.attrs["seed"])
                    key = cell_key(L, seed)
                    store.save(key, ds)
                    trained[key] = _description(config, data, L, seed) | {
                        "training": {k: ds.attrs[k] for k in _TRAINING}}
                    bar.advance(task)
                store.index(trained)
        manifest = store.manifest()
    cells = {k: {"depth": c["params"]["depth"], "seed": c["seed"], **c.get("training", {})}
             for k, c in manifest["cells"].items() if c.get("study") == STUDY and "training" in c}
    return {"config": config.to_dict(), "data": data.name, "cells": cells}


def load_sweep(out_dir: str | Path) -> dict[tuple[int, int], xr.Dataset]:
    """``{(depth, seed): dataset}`` of every trained cell of a sweep folder (the store's
    layout, or transparently the old ``cells/`` layout)."""
    out_dir = Path(out_dir)
    if _legacy(out_dir):
        files = sorted((out_dir / "cells").glob("L*_s*.nc"))
    else:
        store = ResultStore(out_dir)
        if not (out_dir / store.MANIFEST).exists():
            raise ValueError(f"{out_dir} holds no trained cells (no manifest.json; train "
                             "into it with train_sweep or 'deeplimits scaling train')")
        store.check()
        files = [store.path(k) for k, c in sorted(store.manifest()["cells"].items())
                 if c.get("study") == STUDY and store.done(k)]
    if not files:
        raise ValueError(f"{out_dir} holds no trained cells")
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

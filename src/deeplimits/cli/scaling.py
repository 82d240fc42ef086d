"""``deeplimits scaling``: train ResNets across depths and analyse how their weights scale
(``trained_scaling.md``).

* ``train``: one file per (depth, seed) cell through the results store (``OUT/data``, the
  store's ``manifest.json``); a rerun skips finished cells; a cell whose loss turns
  non-finite is reported and the others go on.
* ``analyze``: a folder written by ``train``, ``.npy`` weight stacks from any code (one
  stack (L, ...) per file, or (seeds, L, ...) with ``--seeds-first``; files of equal depth
  are pooled as seeds), or checkpoints of networks trained elsewhere (``.npz``,
  ``.safetensors``, PyTorch ``.pt``/``.pth``/``.bin`` state dicts; one network per file) with
  ``--pattern 'layers.{k}.mlp.fc1.weight'``: prints the slopes with intervals and the regime
  verdict (degenerate statistics are reported, never a traceback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from deeplimits.cli._common import check_output, err, fail, renamed_option

app = typer.Typer(no_args_is_help=True, help="Scaling of trained weights with depth.")


def _parse_depths(depths: str | None, min_depth: int, max_depth: int) -> list[int]:
    from deeplimits.scaling import depth_grid

    if depths is None:
        return depth_grid(max_depth, min_depth=min_depth)
    try:
        out = sorted({int(v) for v in depths.split(",") if v.strip()})
    except ValueError as e:
        raise ValueError(f"--depths must be comma-separated integers, got {depths!r}") from e
    if not out or out[0] < 1:
        raise ValueError(f"--depths must be integers >= 1, got {depths!r}")
    return out


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Folder for the cells and manifest.")],
    activation: Annotated[str, typer.Option(help="tanh, relu or linear.")] = "tanh",
    delta: Annotated[str, typer.Option(help="none, shared or per-layer.")] = "shared",
    init: Annotated[str, typer.Option(help="xavier or xavier-depth.")] = "xavier",
    init_scale: Annotated[float, typer.Option(help="Initial std s.")] = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adam, sgd or rmsprop.")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 50,
    max_epochs: Annotated[int, typer.Option(help="Most epochs per cell.")] = 200,
    loss: Annotated[str, typer.Option(help="mse or cross-entropy.")] = "mse",
    tol: Annotated[float, typer.Option(help="Stop below this epoch-mean loss.")] = 1e-3,
    patience: Annotated[int, typer.Option(help="Epochs without 1% improvement.")] = 5,
    depth_scaled: Annotated[bool, typer.Option(help="Depth-muP rule (§10).")] = False,
    data: Annotated[str, typer.Option(help="synthetic, digits or npy.")] = "synthetic",
    x_train: Annotated[Path | None, typer.Option(help="Inputs (.npy) for --data npy.")] = None,
    y_train: Annotated[Path | None, typer.Option(help="Targets (.npy) for --data npy.")] = None,
    depths: Annotated[str | None, typer.Option(help="Comma-separated depths.")] = None,
    min_depth: Annotated[int, typer.Option(help="Grid floor(1.2^k) from here.")] = 3,
    max_depth: Annotated[int, typer.Option(help="Grid below this depth.")] = 1000,
    seeds: Annotated[int, typer.Option(help="Seeds 0..n-1 per depth.")] = 3,
    data_seed: Annotated[int, typer.Option(help="Seed of the data set.")] = 0,
) -> None:
    """Train every (depth, seed) cell not yet in OUT."""
    from deeplimits.scaling import (
        TrainConfig,
        check_sweep_folder,
        load_data,
        load_npy_data,
        train_sweep,
    )

    try:
        grid = _parse_depths(depths, min_depth, max_depth)
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        if data not in ("synthetic", "digits", "npy"):
            raise ValueError(f"--data must be synthetic, digits or npy, got {data!r}")
        if (data == "npy") != (x_train is not None and y_train is not None):
            raise ValueError("--data npy needs --x-train and --y-train (and only it uses them)")
        config = TrainConfig(activation=activation, delta=delta, init=init,
                             init_scale=init_scale, optimizer=optimizer, learning_rate=lr,
                             batch_size=batch_size, max_epochs=max_epochs, loss=loss, tol=tol,
                             patience=patience, depth_scaled=depth_scaled, data=data,
                             data_seed=data_seed)
        dataset = load_npy_data(x_train, y_train) if data == "npy" else load_data(config)
        if dataset.x_train.shape[0] < batch_size:
            raise ValueError(f"--batch-size {batch_size} exceeds the "
                             f"{dataset.x_train.shape[0]} training samples")
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder")
        check_sweep_folder(out, config)
        before = len(list((out / "data").glob("*.nc")))
    except ValueError as e:
        raise fail(str(e)) from None
    err.print(f"training {len(grid)} depths {grid[0]}..{grid[-1]} x {seeds} seeds "
              f"into {out}")
    try:
        manifest = train_sweep(out, config, grid, range(seeds), data=dataset)
    except ValueError as e:  # e.g. the folder is in use by another sweep
        raise fail(str(e)) from None
    manifest_path = out / "manifest.json"
    cells = manifest["cells"]
    failed = {k: v["message"] for k, v in cells.items() if v["status"] == "failed"}
    for k, msg in failed.items():
        err.print(f"[yellow]cell {k} failed:[/] {msg}")
    err.print(f"{len(cells) - before} new cells ({len(cells)} in all: "
              f"{len(cells) - len(failed)} trained, {len(failed)} failed); "
              f"manifest {manifest_path}")


def _load_npy_stacks(paths: list[Path], seeds_first: bool) -> dict[int, np.ndarray]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(p.glob("*.npy"))
        elif p.suffix == ".npy" and p.exists():
            files.append(p)
        else:
            raise ValueError(f"{p} is neither a folder nor an existing .npy file")
    if not files:
        raise ValueError(f"no .npy weight stacks found in {[str(p) for p in paths]}")
    by_depth: dict[int, list[np.ndarray]] = {}
    for f in files:
        w = np.load(f)
        if seeds_first:
            if w.ndim < 3:
                raise ValueError(f"{f.name}: a (seeds, L, ...) stack needs >= 3 axes, got "
                                 f"{w.shape}")
            parts = list(w)
        else:
            if w.ndim < 2:
                raise ValueError(f"{f.name}: a (L, ...) stack needs >= 2 axes, got {w.shape}")
            parts = [w]
        by_depth.setdefault(parts[0].shape[0], []).extend(parts)
    out = {}
    for L, parts in by_depth.items():
        if len({p.shape for p in parts}) != 1:
            raise ValueError(f"stacks of depth {L} have inconsistent shapes "
                             f"{sorted({p.shape for p in parts})}")
        out[L] = np.stack(parts)
    return out


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(
        help="A train folder, .npy stacks/folders, or checkpoints with --pattern.")],
    pattern: Annotated[str | None, typer.Option(
        help="Tensor names in .npz/.safetensors/.pt checkpoints, {k} = layer index, e.g. "
             "'layers.{k}.mlp.fc1.weight'; one network per file.")] = None,
    gamma: Annotated[float | None, typer.Option(help="Increment exponent (default beta-hat).")
                     ] = None,
    effective: Annotated[bool | None, typer.Option(
        help="Use |delta_k| A_k (default: for relu or per-layer delta).")] = None,
    initial: Annotated[bool, typer.Option(help="Analyse the initial weights.")] = False,
    seeds_first: Annotated[bool, typer.Option(help=".npy stacks are (seeds, L, ...).")] = False,
    detrended_min_depth: Annotated[int, typer.Option(help="DetrendedCumSum depths >=.")] = 200,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    resolution: Annotated[float | None, typer.Option(
        help="Band half-width (default log 2 / log(L_max/L_min)).")] = None,
    out: Annotated[Path | None, typer.Option(help="Save the statistics (.nc).")] = None,
    output: Annotated[Path | None, typer.Option(
        hidden=True, help="Deprecated spelling of --out.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Slopes of every statistic with intervals, and the regime verdict."""
    from deeplimits.experiments.store import provenance, save_dataset
    from deeplimits.scaling import (
        analyze_weights,
        check_weight_stacks,
        is_sweep_folder,
        load_checkpoints,
        load_sweep,
        sweep_branch_scale,
        sweep_weights,
    )

    branch_scale = None
    try:
        output = renamed_option(output, out, "--output", "--out")
        if output is not None:
            check_output(output, ".nc")
        if n_boot < 1:
            raise ValueError(f"--n-boot must be >= 1, got {n_boot}")
        if pattern is not None:
            weights = load_checkpoints(paths, pattern)
        elif len(paths) == 1 and is_sweep_folder(paths[0]):
            cells = load_sweep(paths[0])
            weights = sweep_weights(cells, effective=effective, initial=initial)
            if not effective:
                branch_scale = sweep_branch_scale(cells, initial=initial)
            failed = sorted(f"L{L}_s{s}" for (L, s), ds in cells.items()
                            if ds.attrs["status"] == "failed")
            if failed:
                err.print(f"[yellow]failed cells left out:[/] {', '.join(failed)}")
        else:
            weights = _load_npy_stacks(paths, seeds_first)
        weights = check_weight_stacks(weights)
        if branch_scale is not None and any(
                json.loads(ds.attrs["config"])["activation"] == "relu" for ds in cells.values()):
            branch_scale = None  # the effective weights already carry |delta|
        result = analyze_weights(weights, gamma=gamma, detrended_min_depth=detrended_min_depth,
                                 n_boot=n_boot, resolution=resolution,
                                 branch_scale=branch_scale)
    except ValueError as e:
        raise fail(str(e)) from None
    regime = result.regime
    if output is not None:
        ds = result.values.copy()
        ds.attrs.update(provenance({"paths": [str(p) for p in paths], "gamma": gamma,
                                    "pattern": pattern}),
                        regime=regime.regime, regime_reason=regime.reason,
                        regime_limit=regime.limit)
        save_dataset(ds, output)
    if as_json:
        typer.echo(json.dumps({
            "regime": regime.regime, "limit": regime.limit, "beta": regime.beta,
            "alpha_plus_beta": regime.branch_exponent, "hurst": regime.hurst,
            "reason": regime.reason, "degenerate": result.degenerate,
            "deciding": [dict(zip(("test", "slope", "lo", "hi", "band_lo", "band_hi",
                                   "outcome"), row, strict=True)) for row in regime.deciding],
            "bands": {k: {"lo": b.lo, "hi": b.hi, "derivation": b.derivation}
                      for k, b in result.bands.items()},
            "slopes": {k: {"slope": f.slope, "lo": f.lo, "hi": f.hi, "rounded": f.rounded}
                       for k, f in result.slopes.items()}}, indent=1, default=float))
        return
    typer.echo(result.table())
    typer.echo(str(regime))

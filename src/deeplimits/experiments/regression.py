"""Kernel regression on tabular data: wide-ResNet kernel predictors against baselines.

Each model fitted on one data set is a cell of the ``regression`` study
(:func:`fit_model`), so :func:`regression_table` runs through the same sweep machinery as
every other experiment, and ``deeplimits sweep`` can spread a table over a cluster.
"""

from __future__ import annotations

import itertools
import math
import time as _time

import numpy as np
import xarray as xr
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from deeplimits.data.tabular import SCALES, DataSplit
from deeplimits.wide import inference
from deeplimits.wide.depth_flow import DEFAULT_RTOL
from deeplimits.wide.estimators import resnet_for_kernel
from deeplimits.wide.kernels import kernel as _kernel

__all__ = ["KERNEL_MODELS", "BASELINES", "affine_residual", "fit_cell", "fit_model", "model_rows",
           "regression_table", "format_table"]

#: kernel families of the table: settings passed to ``resnet_for_kernel``
KERNEL_MODELS = {
    "A": {"form": "A", "activation": "relu", "input_layer": True},
    "B": {"form": "B", "activation": "tanh", "input_layer": False},
    "C": {"form": "C", "activation": "relu", "input_layer": False},
}


def affine_residual(K, X) -> float:
    """``||K - (alpha G + gamma)||_F / ||K - mean(K)||_F`` for the least-squares
    ``alpha, gamma``, with ``G = X X^T / d``: zero iff ``K`` is affine in ``<x, x'>``."""
    K = np.asarray(K, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    G = X @ X.T / X.shape[1]
    A = np.stack([G.ravel(), np.ones(G.size)], 1)
    coef, *_ = np.linalg.lstsq(A, K.ravel(), rcond=None)
    resid = K.ravel() - A @ coef
    spread = np.linalg.norm(K - K.mean())
    return float(np.linalg.norm(resid) / spread) if spread > 0 else 0.0


def _score(split: DataSplit, pred: np.ndarray) -> float:
    if split.task == "classification":
        return float(np.mean(split.classes[np.argmax(pred, 1)] == split.y_test))
    return float(np.sqrt(np.mean((pred[:, 0] - split.Y_test[:, 0]) ** 2)))


def _kernel_mean(K, T, tr, te, Y, ridge, fully, time):
    """Mean prediction on ``te`` after training on ``tr`` (targets centred on ``tr``)."""
    mu = Y[tr].mean(0)
    model = inference.fit_gradient_flow(K[np.ix_(tr, tr)], Y[tr] - mu,
                                        T[np.ix_(tr, tr)] if fully else None, time=time,
                                        ridge=ridge, relative=True)
    post = model.predict(K[np.ix_(te, tr)], ntk_cross=T[np.ix_(te, tr)] if fully else None)
    return post.mean + mu


def _fit_kernel_family(split, spec, grid_w, grid_b, grid_r, folds, steps, seed, time):
    """Cross-validate one kernel family; returns {"weakly": record, "fully": record}."""
    X_all = np.concatenate([split.X_train, split.X_test])
    n_tr = len(split.X_train)
    Y = split.Y_train
    tr_idx = np.arange(n_tr)
    te_idx = np.arange(n_tr, len(X_all))
    cv = list(KFold(folds, shuffle=True, random_state=seed).split(tr_idx))
    best = {"weakly": (math.inf,), "fully": (math.inf,)}
    t0 = _time.perf_counter()
    for sw, sb in itertools.product(grid_w, grid_b):
        net = resnet_for_kernel(split.n_features, sigma_w=sw, sigma_b=sb, **spec)
        k = _kernel(net, X_all, depth=math.inf, steps=steps, compute_ntk=True)
        for training, r in itertools.product(("weakly", "fully"), grid_r):
            fully = training == "fully"
            errs = []
            try:
                for a, b in cv:
                    pred = _kernel_mean(k.nngp, k.ntk, a, b, Y, r, fully, time)
                    errs.append(np.mean((pred - Y[b]) ** 2))
            except inference.NotPositiveDefiniteError:
                continue  # this ridge is too small for this kernel: not a candidate
            mse = float(np.mean(errs))
            if mse < best[training][0]:
                best[training] = (mse, sw, sb, r, k)
    fit_s = (_time.perf_counter() - t0) / 2
    out = {}
    for training, rec in best.items():
        if math.isinf(rec[0]):
            raise inference.NotPositiveDefiniteError(
                f"{split.name}: no ridge in {grid_r} gives a positive definite kernel")
        mse, sw, sb, r, k = rec
        fully = training == "fully"
        pred = _kernel_mean(k.nngp, k.ntk, tr_idx, te_idx, np.concatenate([Y, split.Y_test]),
                            r, fully, time)
        mat = (k.ntk if fully else k.nngp)[np.ix_(tr_idx, tr_idx)]
        out[training] = {
            "pred": pred, "cv_mse": mse, "sigma_w": sw, "sigma_b": sb, "ridge": r,
            "affine_residual": affine_residual(mat, split.X_train), "fit_seconds": fit_s,
            "hyperparameters": f"sigma_w={sw:g}, sigma_b={sb:g}, ridge={r:g} (relative)",
        }
    return out


def _fit_rbf_gp(split, seed):
    t0 = _time.perf_counter()
    d = split.n_features
    kern = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(math.sqrt(d), (1e-2, 1e3))
            + WhiteKernel(1e-1, (1e-8, 1e1)))
    gp = GaussianProcessRegressor(kern, normalize_y=True, random_state=seed)
    gp.fit(split.X_train, split.Y_train)
    pred = gp.predict(split.X_test).reshape(len(split.X_test), -1)
    ker = gp.kernel_
    return {"pred": pred, "fit_seconds": _time.perf_counter() - t0,
            "ridge": float(ker.k2.noise_level),
            "hyperparameters": f"length_scale={ker.k1.k2.length_scale:.3g}, "
                               f"amplitude={ker.k1.k1.constant_value:.3g}, "
                               f"noise={ker.k2.noise_level:.3g} (normalised y)",
            "affine_residual": affine_residual(ker.k1(split.X_train), split.X_train)}


def _fit_ridge(split):
    t0 = _time.perf_counter()
    model = RidgeCV(alphas=np.logspace(-3, 4, 15)).fit(split.X_train, split.Y_train)
    pred = model.predict(split.X_test).reshape(len(split.X_test), -1)
    return {"pred": pred, "fit_seconds": _time.perf_counter() - t0,
            "ridge": float(model.alpha_), "hyperparameters": f"alpha={model.alpha_:.3g}",
            "affine_residual": 0.0}


BASELINES = ("rbf-gp", "ridge")


def _settings(scale, max_samples, folds, sigma_w_grid, sigma_b_grid, ridge_grid, steps):
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {tuple(SCALES)}, got {scale!r}")
    cfg = dict(SCALES[scale])
    if max_samples != "scale":
        cfg["max_samples"] = max_samples
    for key, val in (("folds", folds), ("sigma_w", sigma_w_grid), ("sigma_b", sigma_b_grid),
                     ("ridge", ridge_grid), ("steps", steps)):
        if val is not None:
            cfg[key] = val
    return cfg


def _family_spec(model: str, activation: str | None) -> dict:
    """The ``resnet_for_kernel`` settings of a kernel family, checked before any fit."""
    if model not in KERNEL_MODELS:
        raise ValueError(f"unknown kernel model {model!r}; choose from {tuple(KERNEL_MODELS)}")
    spec = dict(KERNEL_MODELS[model])
    if activation is not None:
        spec["activation"] = activation
        try:  # the family's network, checked now rather than after the other fits
            resnet_for_kernel(2, **spec)
        except ValueError as exc:
            raise ValueError(f"kernel model {model} (leave it out of the models to skip it) "
                             f"with activation {activation!r}: {exc}") from None
    return spec


def model_rows(model: str) -> list[str]:
    """The table rows of a model: two per kernel family (weakly and fully trained)."""
    return [model] if model in BASELINES else [f"{model}-{t}" for t in ("weakly", "fully")]


def fit_model(split: DataSplit, model: str, *, scale: str = "quick", folds=None,
              sigma_w_grid=None, sigma_b_grid=None, ridge_grid=None, steps=None,
              time: float = math.inf, activation: str | None = None, seed: int = 0
              ) -> xr.Dataset:
    """One model fitted on one split: a kernel family of :data:`KERNEL_MODELS`
    (cross-validated, weakly and fully trained) or a baseline (``"rbf-gp"``, ``"ridge"``).

    What one cell of the ``regression`` study computes, and one column block of
    :func:`regression_table`. Returns a dataset over ``model`` (its rows, see
    :func:`model_rows`) with ``score``, ``cv_mse``, ``sigma_w``, ``sigma_b``, ``ridge``,
    ``affine_residual``, ``fit_seconds``, ``hyperparameters`` and the test predictions
    ``pred`` of shape ``(model, test, output)``.
    """
    cfg = _settings(scale, "scale", folds, sigma_w_grid, sigma_b_grid, ridge_grid, steps)
    if model == "rbf-gp":
        records = {"rbf-gp": _fit_rbf_gp(split, seed)}
    elif model == "ridge":
        records = {"ridge": _fit_ridge(split)}
    else:
        fam = _fit_kernel_family(split, _family_spec(model, activation), cfg["sigma_w"],
                                 cfg["sigma_b"], cfg["ridge"], cfg["folds"], cfg["steps"],
                                 seed, time)
        records = {f"{model}-{t}": rec for t, rec in fam.items()}
    rows = list(records)
    data = {v: ("model", [float(records[r].get(v, np.nan)) for r in rows])
            for v in ("cv_mse", "sigma_w", "sigma_b", "ridge", "affine_residual",
                      "fit_seconds")}
    data["score"] = ("model", [_score(split, records[r]["pred"]) for r in rows])
    data["hyperparameters"] = ("model", [records[r]["hyperparameters"] for r in rows])
    data["pred"] = (("model", "test", "output"), np.stack([records[r]["pred"] for r in rows]))
    n_available = (split.n_available if split.n_available is not None
                   else len(split.X_train) + len(split.X_test))
    return xr.Dataset(data, coords={"model": rows}, attrs={
        "dataset": split.name, "metric": "accuracy" if split.task == "classification"
        else "rmse", "n_train": len(split.X_train), "n_test": len(split.X_test),
        "n_features": split.n_features, "n_available": n_available})


def fit_cell(split: DataSplit, model: str, params: dict, seed: int) -> xr.Dataset:
    """:func:`fit_model` with the options of a ``regression`` cell (``params``; ``time``
    ``None`` is infinite): the one path from a cell's parameters to a fit, for the study
    and for the table's own data splits alike."""
    return fit_model(split, model, scale=params["scale"], folds=params["folds"],
                     sigma_w_grid=params["sigma_w_grid"], sigma_b_grid=params["sigma_b_grid"],
                     ridge_grid=params["ridge_grid"], steps=params["steps"],
                     time=math.inf if params["time"] is None else params["time"],
                     activation=params["activation"], seed=seed)


def _cell_fit(name: str, model: str, options: dict, seed: int) -> xr.Dataset:
    """``fit_model`` of a bundled data set as a cell of the ``regression`` study, run by the
    sweep machinery (so a table can also be a sweep on a cluster)."""
    from deeplimits.experiments.sweeps import Sweep, execute

    cell, = Sweep("regression", config={"dataset": name, "model": model} | options,
                  seeds=(seed,)).cells()
    outcome = execute(cell)
    if outcome.error is not None:
        raise ValueError(f"{name} {model}: {outcome.error}")
    return outcome.dataset


def regression_table(
    datasets=("digits", "breast_cancer", "wine", "diabetes"),
    *,
    scale: str = "quick",
    max_samples: int | None | str = "scale",
    test_size: float = 0.25,
    seed: int = 0,
    folds: int | None = None,
    sigma_w_grid=None,
    sigma_b_grid=None,
    ridge_grid=None,
    steps: int | None = None,
    time: float = math.inf,
    models=("A", "B", "C"),
    activation: str | None = None,
    baselines: bool = True,
    progress=None,
) -> xr.Dataset:
    """Test scores of wide-ResNet kernel predictors and baselines on bundled data sets.

    Args:
        datasets: names from :data:`DATASETS`.
        scale: ``"quick"`` (at most 400 samples per set, 3 folds, small grids) or
            ``"full"`` (every sample,
            5 folds, larger grids); both solve the depth ODE to the library's default
            accuracy (``DEFAULT_RTOL`` = 1e-9, RK4 steps chosen for it).
        max_samples, folds, sigma_w_grid, sigma_b_grid, ridge_grid, steps: override the
            scale's settings (``ridge_grid`` is relative to the mean kernel diagonal).
        test_size, seed: the fixed train/test split (and CV folds).
        time: gradient-flow time of the kernel predictors (``math.inf``: converged).
        models: kernel families from :data:`KERNEL_MODELS`.
        activation: one activation name for every kernel family instead of theirs (form B
            needs one that is C^2 at 0 with phi(0) = 0, checked before any fit).
        baselines: add the RBF-kernel GP and ``RidgeCV``.
        progress: optional callable receiving a message per fitted model.

    Returns:
        An ``xarray.Dataset`` over ``(dataset, model)`` with ``score`` (accuracy for
        classification, RMSE for ``diabetes``; see ``metric``), ``cv_mse``, the chosen
        ``sigma_w``, ``sigma_b``, ``ridge`` (NaN where not applicable; the RBF GP's noise
        level and ``RidgeCV``'s alpha otherwise), ``hyperparameters`` (text),
        ``affine_residual``, ``rel_diff_from_ridge`` (RMS difference of the test predictions
        from ``RidgeCV``'s, relative to the RMS of the latter about the mean) and
        ``fit_seconds``; per data set ``metric``, ``n_train``, ``n_test``, ``n_features`` and
        ``n_available`` (samples before subsampling to ``max_samples``). Classification sets
        are fitted as kernel regression on one-hot labels and classified by the argmax.
    """
    cfg = _settings(scale, max_samples, folds, sigma_w_grid, sigma_b_grid, ridge_grid, steps)
    specs = {m: _family_spec(m, activation) for m in models}
    families = [*models, *(BASELINES if baselines else ())]
    names = [row for m in families for row in model_rows(m)]
    shape = (len(datasets), len(names))
    num = {v: np.full(shape, np.nan) for v in ("score", "cv_mse", "sigma_w", "sigma_b", "ridge",
                                                "affine_residual", "rel_diff_from_ridge",
                                                "fit_seconds")}
    text = np.full(shape, "", dtype=object)
    info = {v: [] for v in ("metric", "n_train", "n_test", "n_features", "n_available")}
    options = {"scale": scale, "max_samples": cfg["max_samples"], "test_size": test_size,
               "folds": cfg["folds"], "sigma_w_grid": list(cfg["sigma_w"]),
               "sigma_b_grid": list(cfg["sigma_b"]), "ridge_grid": list(cfg["ridge"]),
               "steps": cfg["steps"], "time": None if math.isinf(time) else time,
               "activation": activation}
    labels = []
    for i, dataset in enumerate(datasets):
        parts = {}
        for m in families:
            if isinstance(dataset, DataSplit):  # the user's own data: fitted here
                parts[m] = fit_cell(dataset, m, options, seed)
            else:
                parts[m] = _cell_fit(dataset, m, options, seed)
            for row in parts[m].model.values:
                if progress:
                    progress(f"{parts[m].attrs['dataset']} {row}: "
                             f"{float(parts[m].score.sel(model=row)):.4g}")
        first = next(iter(parts.values())).attrs
        labels.append(first["dataset"])
        for v in info:
            info[v].append(first[v])
        ridge_pred = parts["ridge"].pred.sel(model="ridge").values if baselines else None
        for part in parts.values():
            for row in part.model.values:
                j = names.index(row)
                rec = part.sel(model=row)
                for v in ("score", "cv_mse", "sigma_w", "sigma_b", "ridge", "affine_residual",
                          "fit_seconds"):
                    num[v][i, j] = float(rec[v])
                text[i, j] = str(rec.hyperparameters.values)
                if ridge_pred is not None:
                    spread = np.sqrt(np.mean((ridge_pred - ridge_pred.mean(0)) ** 2))
                    num["rel_diff_from_ridge"][i, j] = float(
                        np.sqrt(np.mean((rec.pred.values - ridge_pred) ** 2)) / spread)
    dims = ("dataset", "model")
    data = {v: (dims, a) for v, a in num.items()}
    data["hyperparameters"] = (dims, text.astype(str))
    for v, values in info.items():
        data[v] = ("dataset", np.array(values))
    attrs = {"scale": scale, "seed": seed, "test_size": test_size, "folds": cfg["folds"],
             "steps": (cfg["steps"] if cfg["steps"] is not None
                       else f"chosen from rtol = {DEFAULT_RTOL:g}"),
             "sigma_w_grid": list(cfg["sigma_w"]),
             "sigma_b_grid": list(cfg["sigma_b"]), "ridge_grid": list(cfg["ridge"]),
             "time": str(time), "max_samples": str(cfg["max_samples"]),
             "activations": ", ".join(f"{m}: {specs[m]['activation']}" for m in models),
             "description": "test accuracy (classification) or RMSE (diabetes) of wide-ResNet "
                            "kernel predictors (depth = inf) and baselines"}
    return xr.Dataset(data, coords={"dataset": labels, "model": names}, attrs=attrs)


def format_table(table: xr.Dataset, variable: str = "score") -> str:
    """A plain-text table of one variable (rows: data sets, columns: models)."""
    models = [str(m) for m in table.model.values]
    width = max(10, *(len(m) + 1 for m in models))
    head = f"{'dataset':<16}{'metric':<10}" + "".join(f"{m:>{width}}" for m in models)
    lines = [head]
    for i, ds in enumerate(table.dataset.values):
        metric = str(table.metric.values[i]) if "metric" in table else ""
        vals = table[variable].values[i]
        lines.append(f"{ds!s:<16}{metric:<10}" + "".join(f"{v:>{width}.4g}" for v in vals))
    return "\n".join(lines)

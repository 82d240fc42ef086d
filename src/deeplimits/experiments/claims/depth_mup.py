r"""Claim T5, Depth-muP (``trained_scaling.md`` §10, [text] TP6).

With the branch multiplier ``1/sqrt(L)`` the optimal learning rate of a fixed training
budget is constant across depth under SGD and falls like ``L^{-1/2}`` under Adam (the rule
``eta/sqrt(L)``); in the standard parameterisation (multiplier 1, the same rate at every
depth) the optimum drifts (like ``1/L``: see :mod:`deeplimits.simulation.rate_sweep`).

Measured by learning-rate sweeps (:func:`~deeplimits.simulation.rate_sweep.train_rate_grid`)
of tanh ResNets without delta on the synthetic ODE data and the digits embedding, under SGD
and Adam, at several depths and seeds. Per depth, ``eta*`` is the vertex of a parabola fitted
to the seed-mean log loss around its minimum over a geometric rate grid; the slope of
``log eta*`` (of the rate actually used) against ``log L`` has the interval of
:func:`~deeplimits.analysis.optimal_rate.rate_scaling` (bootstrap over seeds, hull with the
t-interval, 95%).

**Decision** (one code for the model and its twin): for every (data set, optimiser) the
optimum is bracketed by the rate grid at every depth, and the slope's interval lies *inside*
the band ``target +- r`` (target 0 for SGD, -1/2 for Adam), ``r = log 2 / log(L_max/L_min)``:
the exponent change that moves ``eta*`` by a factor 2 across the depth range, the resolution
of the regime bands (:func:`~deeplimits.analysis.weight_scaling.default_resolution`).
**Negative control**: the standard parameterisation of the same sweeps, judged by the same
decision against the same targets.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import xarray as xr

from deeplimits.analysis.optimal_rate import rate_scaling
from deeplimits.analysis.weight_scaling import Band, default_resolution
from deeplimits.experiments.claims._base import (
    Claim,
    Control,
    Detectable,
    Verdict,
    detectable_shift,
    judge,
    pick,
    register,
    with_verdict,
)
from deeplimits.experiments.figures import depth_ticks, figure
from deeplimits.simulation.rate_sweep import train_rate_grid
from deeplimits.simulation.training import TrainConfig

__all__ = ["COMBOS", "TARGET", "T5_CONTROL", "rate_sweeps"]

DATASETS = ("synthetic", "digits")

OPTIMIZERS = ("sgd", "adam")

#: (data set, optimiser) of every sweep.
COMBOS = tuple((d, o) for d in DATASETS for o in OPTIMIZERS)

#: Depth-muP's exponent of the optimal (used) learning rate in L, per optimiser.
TARGET = {"sgd": 0.0, "adam": -0.5}

LEVEL = 0.95

#: Base-rate grids (log2 eta, first and last) per (optimiser, parameterisation), a factor 2
#: per step *(choice, from a pilot sweep)*: each centred on where its optimum lies (the
#: standard parameterisation's falls about like 1/L, so its grid reaches lower; at full
#: scale every grid starts one step lower, for L = 128). Whether every optimum is bracketed
#: is part of the decision, so a grid that misses one fails the claim.
RATE_GRID = {("sgd", "depth-mup"): (-1.0, 6.0), ("sgd", "standard"): (-4.0, 3.0),
             ("adam", "depth-mup"): (-7.0, 0.0), ("adam", "standard"): (-11.0, -4.0)}

T5_CONTROL = Control("standard parameterisation", "the same sweeps with branch multiplier 1 "
                     "and the same learning rate at every depth, judged by the same decision "
                     "against the same targets: its optimum drifts with depth, so it must fail")


def _config(data: str, epochs: int) -> TrainConfig:
    # tanh branches without delta, initial weights of size 1e-4 (trained_scaling.md §2 default)
    return TrainConfig(activation="tanh", delta="none", init="xavier", init_scale=1e-4,
                       max_epochs=epochs, data=data)


def rate_sweeps(scale: str, seed: int) -> tuple[list[xr.Dataset], list[int], list[int], int]:
    """The rate sweeps of both data sets (one :func:`train_rate_grid` each, both optimisers
    and parameterisations), the depths, seeds and epochs."""
    depths = pick(scale, [4, 8, 16, 32, 64], [4, 8, 16, 32, 64, 128])
    seeds = [seed * 100 + i for i in range(pick(scale, 3, 6))]
    epochs = 1  # 20 steps of batch 50: a budget in which the optimum is well defined
    step = 1.0
    extra = pick(scale, 0.0, 1.0)  # the standard optimum at L = 128 sits 2x below L = 64's
    rates = {k: list(2.0 ** np.arange(lo - (extra if k[1] == "standard" else 0.0),
                                      hi + step / 2, step)) for k, (lo, hi) in RATE_GRID.items()}
    n = max(len(v) for v in rates.values())
    rates = {k: list(2.0 ** (np.log2(v[-1]) - step * np.arange(n)[::-1])) for k, v in
             rates.items()}  # equal lengths: extend each grid downwards
    # groups of depths within a factor 4 (4-16, 32-64 or 32-128): less padding, one more
    # compilation each
    sweeps = [train_rate_grid(_config(data, epochs), depths, rates, seeds,
                              optimizers=OPTIMIZERS, bucket_ratio=4.0) for data in DATASETS]
    return sweeps, depths, seeds, epochs


def _fit(ds: xr.Dataset, optimizer: str, parameterisation: str, seed: int, n_boot: int):
    """The :class:`RateScaling` of base rates and the shift to the slope of the rate used
    (Depth-muP's Adam rule divides eta by sqrt(L): -1/2)."""
    cell = ds.sel(optimizer=optimizer, parameterisation=parameterisation)
    fit = rate_scaling(ds.depth.values, cell.rate.values,
                       cell.loss.transpose("depth", "rate_index", "seed").values,
                       level=LEVEL, n_boot=n_boot, seed=seed)
    shift = -0.5 if parameterisation == "depth-mup" and optimizer != "sgd" else 0.0
    return fit, shift


PARAMS = ("depth-mup", "standard")


def _compute(scale: str, seed: int) -> xr.Dataset:
    sweeps, depths, seeds, epochs = rate_sweeps(scale, seed)
    r = default_resolution(depths)
    n_boot = pick(scale, 500, 2000)
    by_data = dict(zip(DATASETS, sweeps, strict=True))
    names = [f"{d}/{o}" for d, o in COMBOS]
    fits = {(c, p): _fit(by_data[d], o, p, seed, n_boot)
            for c, (d, o) in enumerate(COMBOS) for p in PARAMS}
    pick_cells = lambda var: np.stack([by_data[d][var].sel(optimizer=o, parameterisation=list(
        PARAMS)).values for d, o in COMBOS])
    per_fit = lambda attr, shifted=False: np.array([[
        getattr(fits[(c, p)][0], attr) + (fits[(c, p)][1] if shifted else 0.0) for p in PARAMS]
        for c in range(len(COMBOS))])
    per_depth = lambda attr: np.stack([[getattr(fits[(c, p)][0], attr) for p in PARAMS]
                                       for c in range(len(COMBOS))])
    dims = ("combo", "parameterisation")
    ds = xr.Dataset(
        {"loss": (dims + ("depth", "rate_index", "seed"), pick_cells("loss")),
         "diverged": (dims + ("depth", "rate_index", "seed"), pick_cells("diverged")),
         "rate": (dims + ("rate_index",), pick_cells("rate")),
         "log_optimum": (dims + ("depth",), per_depth("log_optimum")),
         "optimum_lo": (dims + ("depth",), per_depth("optimum_lo")),
         "optimum_hi": (dims + ("depth",), per_depth("optimum_hi")),
         "bracketed": (dims + ("depth",), per_depth("bracketed")),
         "slope": (dims, per_fit("slope", True)), "lo": (dims, per_fit("lo", True)),
         "hi": (dims, per_fit("hi", True)),
         "target": (("combo",), [TARGET[o] for _, o in COMBOS])},
        coords={"combo": names, "parameterisation": list(PARAMS), "depth": depths,
                "seed": seeds})
    ds.attrs.update(resolution=r, epochs=epochs, training_config=sweeps[0].attrs["config"],
                    data_sets=", ".join(DATASETS))
    step = float(np.log2(ds.rate.values[0, 0, 1] / ds.rate.values[0, 0, 0]))
    tolerance = (f"for every (data, optimiser): optimum bracketed at every depth and the "
                 f"slope's {100 * LEVEL:g}% interval inside target +- r, target 0 (SGD) or "
                 f"-1/2 (Adam), r = log 2 / log(L_max/L_min) = {r:.3f} ({len(depths)} depths "
                 f"{depths[0]}-{depths[-1]} x {len(seeds)} seeds, {epochs} epoch of "
                 f"batch-50 steps, rates 2^{step:g} apart)")

    def decide(parameterisation: str) -> Verdict:
        p = PARAMS.index(parameterisation)
        parts, ok, worst = [], [], 0.0
        for c, (name, (_, o)) in enumerate(zip(names, COMBOS, strict=True)):
            fit = fits[(c, parameterisation)][0]
            t = TARGET[o]
            band = Band("log lr* slope", t, t - r, t + r, f"target {t:+g} +- r")
            s, lo, hi = (float(ds[v][c, p]) for v in ("slope", "lo", "hi"))
            pos = band.position(SimpleNamespace(lo=lo, hi=hi))
            worst = max(worst, abs(s - t))
            ok.append(pos == "in" and fit.all_bracketed)
            edge = "" if fit.all_bracketed else " (optimum not bracketed at L = " + ", ".join(
                str(int(L)) for L in fit.depths[~fit.bracketed]) + ")"
            parts.append(f"{name}: slope {s:+.3f} [{lo:+.3f}, {hi:+.3f}] vs band "
                         f"[{band.lo:+.3f}, {band.hi:+.3f}]: {pos}{edge}")
        return Verdict(f"slope of log lr* against log L ({parameterisation}); measured: the "
                       "largest |slope - target|", tolerance, worst, all(ok), " | ".join(parts))

    half = max((float(ds.hi[c, 0]) - float(ds.lo[c, 0])) / 2 for c in range(len(COMBOS)))
    det = Detectable(detectable_shift(half / 1.96, margin=r),
                     "departure of the lr* depth exponent from its Depth-muP value",
                     relative=False)
    return with_verdict(ds, judge(decide, "depth-mup", "standard", det))


def _plot(ds: xr.Dataset):
    n = ds.sizes["combo"]
    fig, axes = figure(n, 2, width=3.4, height=3.0)
    depths = ds.depth.values.astype(float)
    colors = {"depth-mup": "C0", "standard": "C3"}
    r = float(ds.attrs["resolution"])
    for c, name in enumerate(ds.combo.values):
        top, bottom = axes[c], axes[n + c]
        adam = name.endswith("adam")
        for j, L in enumerate(depths):
            shade = 0.3 + 0.7 * j / max(len(depths) - 1, 1)
            for p, style in (("depth-mup", "-"), ("standard", ":")):
                curve = np.exp(np.log(ds.loss.sel(parameterisation=p).values[c, j]).mean(-1))
                top.loglog(ds.rate.sel(parameterisation=p).values[c], curve, style,
                           color=colors[p], alpha=shade, lw=1,
                           label=f"{p}, L={L:g}" if j in (0, len(depths) - 1) else None)
        top.set_title(name, fontsize=9)
        top.set_xlabel("base learning rate eta")
        top.set_ylabel("training loss after the budget")
        top.legend(fontsize=5)
        for p in ds.parameterisation.values:
            # the rate actually used: Depth-muP's Adam rule divides eta by sqrt(L)
            f = 1 / np.sqrt(depths) if (p == "depth-mup" and adam) else np.ones_like(depths)
            used, lo, hi = (np.exp(ds[v].sel(parameterisation=p).values[c]) * f
                            for v in ("log_optimum", "optimum_lo", "optimum_hi"))
            s, a, b = (float(ds[v].sel(parameterisation=p)[c]) for v in ("slope", "lo", "hi"))
            bottom.errorbar(depths, used, yerr=[used - lo, hi - used], fmt="o-", ms=3,
                            color=colors[p], capsize=2,
                            label=f"{p}: slope {s:+.2f} [{a:+.2f}, {b:+.2f}]")
            if p == "depth-mup":  # the band target +- r, through Depth-muP's optima
                t, gm = float(ds.target[c]), np.exp(np.mean(np.log(depths)))
                for edge in (t - r, t + r):
                    bottom.plot(depths, np.exp(np.mean(np.log(used))) * (depths / gm) ** edge,
                                "k--", lw=0.6)
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        depth_ticks(bottom, depths.astype(int))
        bottom.set_xlabel("depth L")
        bottom.set_ylabel("optimal learning rate used")
        bottom.set_title(f"band (dashed): slope {float(ds.target[c]):+.1f} +- {r:.2f}",
                         fontsize=8)
        bottom.legend(fontsize=6)
    return fig


register(Claim("T5", "Depth-muP: with branch multiplier 1/sqrt(L) the optimal learning rate "
               "is constant in depth under SGD and falls like L^-1/2 under Adam (the rule "
               "eta/sqrt(L)); the standard parameterisation's optimum drifts",
               "TP6 [text]; trained_scaling.md §10", _compute, _plot, control=T5_CONTROL))

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

import json
import math

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

#: (data set, optimiser) of every sweep.
COMBOS = (("synthetic", "sgd"), ("synthetic", "adam"), ("digits", "sgd"), ("digits", "adam"))

#: Depth-muP's exponent of the optimal (used) learning rate in L, per optimiser.
TARGET = {"sgd": 0.0, "adam": -0.5}

LEVEL = 0.95

#: Base-rate grids (log2 eta), per optimiser *(choice)*: a factor 2 per step, wide enough
#: to bracket the Depth-muP optimum and the standard parameterisation's, which falls about
#: like 1/L from it.
RATE_GRID = {"sgd": (-5.0, 4.0), "adam": (-11.0, -2.0)}

T5_CONTROL = Control("standard parameterisation", "the same sweeps with branch multiplier 1 "
                     "and the same learning rate at every depth, judged by the same decision "
                     "against the same targets: its optimum drifts with depth, so it must fail")


def _config(data: str, optimizer: str, epochs: int) -> TrainConfig:
    # tanh branches without delta, initial weights of size 1e-4 (trained_scaling.md §2 default)
    return TrainConfig(activation="tanh", delta="none", init="xavier", init_scale=1e-4,
                       optimizer=optimizer, max_epochs=epochs, data=data)


def rate_sweeps(scale: str, seed: int) -> xr.Dataset:
    """The loss of every (combo, parameterisation, depth, rate, seed) cell."""
    depths = pick(scale, [4, 8, 16, 32, 64], [4, 8, 16, 32, 64, 128, 256])
    seeds = [seed * 100 + i for i in range(pick(scale, 3, 8))]
    epochs = pick(scale, 3, 6)
    step = pick(scale, 1.0, 0.5)
    out = []
    for data, optimizer in COMBOS:
        lo, hi = RATE_GRID[optimizer]
        lo -= pick(scale, 0.0, math.log2(256 / 64))  # the deeper grid's optima sit lower
        log2_rates = np.arange(lo, hi + step / 2, step)
        ds = train_rate_grid(_config(data, optimizer, epochs), depths, list(2.0**log2_rates),
                             seeds, bucket_ratio=math.inf)
        out.append(ds)
    return out, depths, seeds, epochs


def _fit(ds: xr.Dataset, parameterisation: str, optimizer: str, seed: int, n_boot: int):
    loss = ds.loss.sel(parameterisation=parameterisation).values
    fit = rate_scaling(ds.depth.values, ds.rate.values, loss, level=LEVEL, n_boot=n_boot,
                       seed=seed)
    # slope of the rate actually used: Depth-muP's Adam rule divides eta by sqrt(L)
    shift = -0.5 if parameterisation == "depth-mup" and optimizer != "sgd" else 0.0
    return fit, shift


def _compute(scale: str, seed: int) -> xr.Dataset:
    sweeps, depths, seeds, epochs = rate_sweeps(scale, seed)
    r = default_resolution(depths)
    n_boot = pick(scale, 500, 2000)
    names = [f"{d}/{o}" for d, o in COMBOS]
    params = ["depth-mup", "standard"]
    fits = {(c, p): _fit(ds, p, o, seed, n_boot) for c, (ds, (_, o)) in
            enumerate(zip(sweeps, COMBOS, strict=True)) for p in params}
    n_rates = max(ds.sizes["rate"] for ds in sweeps)

    def pad(a, n):  # rate grids differ in length across optimisers at full scale
        return np.concatenate([a, np.full(a.shape[:-1] + (n - a.shape[-1],), np.nan)], -1)

    loss = np.stack([pad(ds.loss.transpose("parameterisation", "depth", "seed", "rate")
                         .sel(parameterisation=params).values, n_rates) for ds in sweeps])
    rates = np.stack([pad(ds.rate.values, n_rates) for ds in sweeps])
    get = lambda attr: np.array([[getattr(fits[(c, p)][0], attr) + (
        fits[(c, p)][1] if attr in ("slope", "lo", "hi") else 0.0) for p in params]
        for c in range(len(COMBOS))])
    per_depth = lambda attr: np.stack([[getattr(fits[(c, p)][0], attr) for p in params]
                                       for c in range(len(COMBOS))])
    ds = xr.Dataset(
        {"loss": (("combo", "parameterisation", "depth", "seed", "rate_index"), loss),
         "rate": (("combo", "rate_index"), rates),
         "diverged_fraction": (("combo", "parameterisation", "depth"), np.stack([
             ds.diverged.sel(parameterisation=params).mean(("rate", "seed")).values
             for ds in sweeps])),
         "log_optimum": (("combo", "parameterisation", "depth"), per_depth("log_optimum")),
         "optimum_lo": (("combo", "parameterisation", "depth"), per_depth("optimum_lo")),
         "optimum_hi": (("combo", "parameterisation", "depth"), per_depth("optimum_hi")),
         "bracketed": (("combo", "parameterisation", "depth"), per_depth("bracketed")),
         "slope": (("combo", "parameterisation"), get("slope")),
         "lo": (("combo", "parameterisation"), get("lo")),
         "hi": (("combo", "parameterisation"), get("hi")),
         "target": (("combo",), [TARGET[o] for _, o in COMBOS])},
        coords={"combo": names, "parameterisation": params, "depth": depths, "seed": seeds})
    ds.attrs.update(resolution=r, epochs=epochs, training_config=json.dumps(
        {n: json.loads(s.attrs["config"]) for n, s in zip(names, sweeps, strict=True)}))
    tolerance = (f"for every (data, optimiser): optimum bracketed at every depth and the "
                 f"slope's {100 * LEVEL:g}% interval inside target +- r, target 0 (SGD) or "
                 f"-1/2 (Adam), r = log 2 / log(L_max/L_min) = {r:.3f} ({len(depths)} depths "
                 f"{depths[0]}-{depths[-1]} x {len(seeds)} seeds, {epochs} epochs, rates a "
                 "factor 2^" f"{math.log2(rates[0, 1] / rates[0, 0]):g} apart)")

    def decide(parameterisation: str) -> Verdict:
        p = params.index(parameterisation)
        parts, ok, worst = [], [], 0.0
        for c, (name, (_, o)) in enumerate(zip(names, COMBOS, strict=True)):
            fit, shift = fits[(c, parameterisation)]
            t = TARGET[o]
            band = Band("log lr* slope", t, t - r, t + r, f"target {t:+g} +- r")
            s, lo, hi = (float(ds[v][c, p]) for v in ("slope", "lo", "hi"))
            pos = band.position(type("F", (), {"lo": lo, "hi": hi})())
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
    depths = ds.depth.values
    colors = {"depth-mup": "C0", "standard": "C3"}
    r = float(ds.attrs["resolution"])
    for c, name in enumerate(ds.combo.values):
        top, bottom = axes[c], axes[n + c]
        rates = ds.rate.values[c]
        ok = np.isfinite(rates)
        for j, L in enumerate(depths):
            shade = 0.35 + 0.65 * j / max(len(depths) - 1, 1)
            for p, style in (("depth-mup", "-"), ("standard", ":")):
                curve = np.exp(np.log(ds.loss.sel(parameterisation=p).values[c, j]).mean(0))
                top.loglog(rates[ok], curve[ok], style, color=colors[p], alpha=shade, lw=1,
                           label=f"{p}, L={L}" if j in (0, len(depths) - 1) else None)
        top.set_title(name, fontsize=9)
        top.set_xlabel("base learning rate eta")
        top.set_ylabel("training loss after the budget")
        top.legend(fontsize=5)
        t = float(ds.target[c])
        for p in ds.parameterisation.values:
            used = np.exp(ds.log_optimum.sel(parameterisation=p).values[c])
            lo = np.exp(ds.optimum_lo.sel(parameterisation=p).values[c])
            hi = np.exp(ds.optimum_hi.sel(parameterisation=p).values[c])
            if p == "depth-mup" and name.endswith("adam"):  # the rate used: eta / sqrt(L)
                used, lo, hi = (v / np.sqrt(depths) for v in (used, lo, hi))
            s, a, b = (float(ds[v].sel(parameterisation=p)[c]) for v in ("slope", "lo", "hi"))
            bottom.errorbar(depths, used, yerr=[used - lo, hi - used], fmt="o-",
                            color=colors[p], capsize=2,
                            label=f"{p}: slope {s:+.2f} [{a:+.2f}, {b:+.2f}]")
        ref = np.exp(np.mean(np.log(np.exp(ds.log_optimum.sel(parameterisation="depth-mup")
                                           .values[c])))) * (depths / depths[0]) ** 0
        scale_to = ref[0] * (1.0 / np.sqrt(depths[0]) if name.endswith("adam") else 1.0)
        for edge in (t - r, t + r):
            bottom.loglog(depths, scale_to * (depths / depths[0]) ** edge, "k--", lw=0.6)
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        depth_ticks(bottom, depths)
        bottom.set_xlabel("depth L")
        bottom.set_ylabel("optimal learning rate used")
        bottom.set_title(f"band: slope {t:+.1f} +- {r:.2f} (dashed)", fontsize=8)
        bottom.legend(fontsize=6)
    return fig


register(Claim("T5", "Depth-muP: with branch multiplier 1/sqrt(L) the optimal learning rate "
               "is constant in depth under SGD and falls like L^-1/2 under Adam (the rule "
               "eta/sqrt(L)); the standard parameterisation's optimum drifts",
               "TP6 [text]; trained_scaling.md §10", _compute, _plot, control=T5_CONTROL))

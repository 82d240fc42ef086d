"""Claims about trained weights across depth (``trained_scaling.md``).

* T2-estimators: the estimators recover the exponent and regularity of synthetic weight
  sequences whose answers are known (smooth profiles, i.i.d. noise, fractional noise).
* T2-regimes: the regime verdict is right on synthetic sequences of each type.
* T1-*: fully connected ResNets trained across depths: tanh with shared delta (smooth,
  "alternative" ODE regime) and ReLU with per-layer delta (rough, diffusive regime), on the
  synthetic ODE data and on the digits embedding; with the trend / noise decomposition and
  the training loss of the denoised (trend) weights.
* T4-init-regularity: res-1 networks keep the regularity of their initial weights (i.i.d.
  rough, RBF-GP smooth) after training.

Quick scale trains 4 depths (up to 40-64) x 3 seeds for a few epochs, so the exponents are
those of early training; full scale uses the depth grid of §4 up to 1000 with the stopping
rules of §4. Every slope is reported with the interval of
:func:`deeplimits.scaling.fit_slope` (the hull of the OLS t-interval and a bootstrap over
seeds, 95%).
"""

from __future__ import annotations

import json
import math

import numpy as np
import xarray as xr

from deeplimits.analysis.weight_scaling import (
    DERIVED,
    STATISTICS,
    SlopeFit,
    analyze_weights,
    synthetic_weights,
)
from deeplimits.data.scaling import depth_grid, digits_embedding
from deeplimits.experiments.claims._base import Claim, Verdict, pick, register, with_verdict
from deeplimits.experiments.figures import depth_ticks, figure, loglog_fit
from deeplimits.experiments.scaling import sweep_branch_scale, sweep_weights
from deeplimits.simulation.training import (
    TrainConfig,
    cell_losses,
    load_data,
    train_grid,
    train_marion,
)
from deeplimits.spec.trainable import init_marion, trend_noise

LEVEL = 0.95


_SLOPE_VARS = ("slope", "lo", "hi")


def _slope_vars(slopes: dict[str, SlopeFit], prefix: str = "") -> dict:
    names = list(slopes)
    return {f"{prefix}{v}": ((f"{prefix}fitted",), np.array([getattr(slopes[n], v) for n in names]))
            for v in _SLOPE_VARS} | {f"{prefix}fitted": names}


# (kind, beta, hurst) and the slopes each must show (statistic, target, tolerance), §6 table
_T2_CASES = (
    ("smooth", 0.0, 0.5, (("MaxNorm", 0.0, 0.05), ("Increment", -1.0, 0.05),
                          ("RootSSQ", 0.5, 0.05))),
    ("smooth", 0.2, 0.5, (("MaxNorm", -0.2, 0.05), ("Increment", -1.0, 0.05),
                          ("RootSSQ", 0.3, 0.05))),
    ("smooth", 0.5, 0.5, (("MaxNorm", -0.5, 0.05), ("Increment", -1.0, 0.05),
                          ("RootSSQ", 0.0, 0.05))),
    ("iid", 0.5, 0.5, (("Increment", 0.0, 0.15), ("RootSSQ", 0.0, 0.05))),
    ("fgn", 0.5, 0.3, (("DetrendedCumSum", -0.2, 0.1),)),
    ("fgn", 0.2, 0.7, (("DetrendedCumSum", 0.5, 0.1),)),
)


def _t2_compute(scale: str, seed: int) -> xr.Dataset:
    depths = pick(scale, [10, 25, 60, 150, 300, 600, 1200, 2000],
                  [L for L in depth_grid(2001) if L >= 10])
    n_seeds = pick(scale, 6, 20)
    rows = []
    for i, (kind, beta, hurst, checks) in enumerate(_T2_CASES):
        w = synthetic_weights(seed * 100 + i, depths, kind, beta=beta, hurst=hurst,
                              n_seeds=n_seeds)
        a = analyze_weights(w, n_boot=pick(scale, 300, 2000), seed=seed, level=LEVEL)
        for stat, target, tol in checks:
            f = a.slopes[stat]
            rows.append((f"{kind} beta={beta} H={hurst}", stat, target, tol, f.slope, f.lo, f.hi))
    err = np.array([abs(r[4] - r[2]) / r[3] for r in rows])
    worst = int(np.argmax(err))
    passed = bool(np.all(err <= 1.0))
    bad = [f"{r[0]} {r[1]}: {r[4]:+.3f} vs {r[2]:+.2f}" for r, e in zip(rows, err, strict=True)
           if e > 1]
    ds = xr.Dataset(
        {"target": ("check", [r[2] for r in rows]), "tolerance": ("check", [r[3] for r in rows]),
         "slope": ("check", [r[4] for r in rows]), "lo": ("check", [r[5] for r in rows]),
         "hi": ("check", [r[6] for r in rows])},
        coords={"case": ("check", [r[0] for r in rows]),
                "statistic": ("check", [r[1] for r in rows])})
    return with_verdict(ds, Verdict(
        statistic="max over checks of |slope - predicted| / tolerance",
        tolerance=(f"<= 1 for every check ({len(depths)} depths {depths[0]}-{depths[-1]} x "
                   f"{n_seeds} seeds; tolerances of trained_scaling.md: 0.05 for MaxNorm, "
                   "Increment, RootSSQ; 0.15 |Increment| for i.i.d.; 0.1 DetrendedCumSum)"),
        measured=float(err[worst]), passed=passed,
        details="all within tolerance" if passed else "; ".join(bad)))


def _t2_plot(ds: xr.Dataset):
    fig, (ax,) = figure(1, width=7.0, height=3.6)
    x = np.arange(ds.sizes["check"])
    ax.errorbar(x, ds.slope, yerr=[ds.slope - ds.lo, ds.hi - ds.slope], fmt="o",
                label="estimated slope (95% CI)")
    ax.errorbar(x, ds.target, yerr=ds.tolerance, fmt="_", color="k", alpha=0.6,
                label="predicted +- tolerance")
    ax.set_xticks(x, [f"{c}\n{s}" for c, s in zip(ds.case.values, ds.statistic.values,
                                                    strict=True)], fontsize=6, rotation=60)
    ax.set_ylabel("log-log slope in L")
    ax.legend(fontsize=7)
    return fig


register(Claim("T2-estimators", "MaxNorm, Increment, RootSSQ and DetrendedCumSum recover the "
               "known exponents of smooth, i.i.d. and fractional synthetic weight sequences",
               "trained_scaling.md §5-6 [reconstructed, code]; slopes [derived]",
               _t2_compute, _t2_plot))


# (case, kind, beta, hurst, alpha of a shared delta = L^-alpha or None, expected verdict)
REGIME_CASES = (
    ("smooth, delta = L^-0.8", "smooth", 0.2, 0.5, 0.8, "smooth-ode"),
    ("smooth, delta = 1/L", "smooth", 0.0, 0.5, 1.0, "smooth-ode"),
    ("smooth beta=1.5, delta = 1", "smooth", 1.5, 0.5, None, "neither"),
    ("smooth beta=0.2, delta = 1", "smooth", 0.2, 0.5, None, "neither"),
    ("Brownian increments", "iid", 0.5, 0.5, None, "diffusive-sde"),
    ("iid beta=0", "iid", 0.0, 0.5, None, "neither"),
    ("iid beta=1", "iid", 1.0, 0.5, None, "neither"),
    ("trend L^-1 + noise L^-1/2", "trend+noise", 0.5, 0.5, None, "diffusive-sde"),
    ("fGn H=0.15", "fgn", 0.5, 0.15, None, "neither"),
    ("fGn H=0.3", "fgn", 0.5, 0.3, None, "neither"),
    ("fGn H=0.7", "fgn", 0.5, 0.7, None, "neither"),
    ("a few large layers", "spikes", 0.5, 0.5, None, "neither"),
    ("heavy tails (t, 1.5 dof)", "heavy", 2 / 3, 0.5, None, "neither"),
    ("mixed scales L^-1/4, L^-3/4", "mixed", 0.5, 0.5, None, "neither"),
)


def regime_cases(scale: str, seed: int, cases=REGIME_CASES):
    """``[(case, expected, ScalingAnalysis)]`` for synthetic sequences of known regime."""
    depths = pick(scale, [10, 16, 25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600],
                  [L for L in depth_grid(2001) if L >= 10])
    n_seeds = pick(scale, 8, 20)
    out = []
    for i, (case, kind, beta, hurst, alpha, expected) in enumerate(cases):
        w = synthetic_weights(seed * 100 + 50 + i, depths, kind, beta=beta, hurst=hurst,
                              n_seeds=n_seeds)
        scale_ = None if alpha is None else {L: np.full(n_seeds, float(L) ** -alpha)
                                            for L in depths}
        out.append((case, expected, analyze_weights(w, n_boot=pick(scale, 300, 2000), seed=seed,
                                                    branch_scale=scale_)))
    return out, depths, n_seeds


def _regimes_compute(scale: str, seed: int) -> xr.Dataset:
    results, depths, n_seeds = regime_cases(scale, seed)
    got = [a.regime.regime for _, _, a in results]
    expected = [e for _, e, _ in results]
    stat = lambda name, v: [getattr(a.slopes[name], v) if name in a.slopes else np.nan
                            for _, _, a in results]
    correct = sum(g == e for g, e in zip(got, expected, strict=True))
    data = {"verdict": ("case", got), "expected": ("case", expected),
            "reason": ("case", [a.regime.reason for _, _, a in results])}
    for name in DERIVED:
        for v in ("slope", "lo", "hi"):
            data[f"{name}_{v}"] = ("case", stat(name, v))
    ds = xr.Dataset(data, coords={"case": [c for c, _, _ in results]})
    bands = results[0][2].bands
    ds.attrs["bands"] = json.dumps({k: [b.lo, b.hi, b.derivation] for k, b in bands.items()})
    wrong = [f"{c}: {g} (expected {e})" for c, g, e in zip(ds.case.values, got, expected,
                                                           strict=True) if g != e]
    return with_verdict(ds, Verdict(
        statistic="correct regime verdicts",
        tolerance=(f"all {len(expected)} correct ({len(depths)} depths {depths[0]}-"
                   f"{depths[-1]} x {n_seeds} seeds; a property holds when its 95% interval "
                   f"lies inside its band, e.g. Hurst in [{bands['brownian'].lo:.2f}, "
                   f"{bands['brownian'].hi:.2f}])"),
        measured=float(correct), passed=correct == len(expected),
        details="all correct" if not wrong else "; ".join(wrong)))


def _regimes_plot(ds: xr.Dataset):
    fig, axes = figure(len(DERIVED), width=3.2, height=4.2)
    x = np.arange(ds.sizes["case"])
    bands = json.loads(ds.attrs["bands"])
    band_of = {"Peak": ("one-size",), "Roughness": ("smooth", "rough"),
               "Hurst": ("brownian",), "BranchSize": ("branch-1", "branch-1/2")}
    for ax, name in zip(axes, DERIVED, strict=True):
        s = ds[f"{name}_slope"]
        ax.errorbar(x, s, yerr=[s - ds[f"{name}_lo"], ds[f"{name}_hi"] - s], fmt="o", ms=3)
        for key in band_of[name]:
            ax.axhspan(bands[key][0], bands[key][1], color="g", alpha=0.15)
        ax.set_xticks(x, [f"{c} -> {v}" for c, v in zip(ds.case.values, ds.verdict.values,
                                                       strict=True)], fontsize=5, rotation=80)
        ax.set_title(f"{name} slope (bands shaded)", fontsize=8)
    return fig


register(Claim("T2-regimes", "The regime verdict (smooth ODE / diffusive SDE / neither) is "
               "right on synthetic sequences of each type",
               "trained_scaling.md §6 [derived]", _regimes_compute, _regimes_plot))


def _denoised(config, cells, analysis, data, depths, scale):
    """Training loss of the trend (denoised) network over that of the trained one, per
    (depth, seed); the trend of A and of b from :func:`trend_noise` with beta-hat."""
    beta = analysis.regime.beta
    min_depth = pick(scale, depths[1] - 1, 500)
    grid = pick(scale, depths[0], 500)
    seeds = sorted({s for _, s in cells})
    ratio = np.full((len(depths), len(seeds)), np.nan)
    for j, s in enumerate(seeds):
        ok = {L: cells[(L, s)] for L in depths if cells[(L, s)].attrs["status"] != "failed"}
        A = {L: ds.A.values.astype(np.float64) for L, ds in ok.items()}
        b = {L: ds.b.values.astype(np.float64) for L, ds in ok.items()}
        if not any(L > min_depth for L in ok):
            continue
        tA = trend_noise(A, beta, min_depth=min_depth, grid=grid)
        tb = trend_noise(b, beta, min_depth=min_depth, grid=grid)
        delta = {L: ds.delta.values if "delta" in ds else None for L, ds in ok.items()}
        both = [(A[L], b[L], delta[L]) for L in ok] + [(tA.trend[L], tb.trend[L], delta[L])
                                                       for L in ok]
        losses = cell_losses(config, both, data.x_train, data.y_train)
        for i, L in enumerate(ok):
            ratio[depths.index(L), j] = losses[len(ok) + i] / losses[i]
    return ratio


def _trained_sweep(activation: str, delta: str, dataset: str, expected: str):
    def compute(scale: str, seed: int) -> xr.Dataset:
        config = TrainConfig(activation=activation, delta=delta, data=dataset,
                             max_epochs=pick(scale, 6, 200))
        depths = pick(scale, [8, 16, 32, 64] if dataset == "synthetic" else [5, 10, 20, 40],
                      depth_grid(1000))
        seeds = [seed * 100 + i for i in range(pick(scale, 3, 5))]
        data = load_data(config)
        out = train_grid(config, depths, seeds, data, bucket_ratio=pick(scale, math.inf, 2.0))
        cells = {(int(ds.attrs["depth"]), int(ds.attrs["seed"])): ds for ds in out}
        analysis = analyze_weights(sweep_weights(cells), seed=seed,
                                   n_boot=pick(scale, 500, 2000), level=LEVEL,
                                   branch_scale=sweep_branch_scale(cells))
        initial = analyze_weights(sweep_weights(cells, initial=True), seed=seed,
                                  n_boot=pick(scale, 500, 2000), level=LEVEL,
                                  branch_scale=sweep_branch_scale(cells, initial=True))
        ratio = _denoised(config, cells, analysis, data, depths, scale)
        loss = np.array([[cells[(L, s)].attrs["train_loss"] for s in seeds] for L in depths])
        status = [cells[(L, s)].attrs["status"] for L in depths for s in seeds]
        big = cells[(depths[-1], seeds[0])]
        eff = sweep_weights({(depths[-1], seeds[0]): big})[depths[-1]][0]
        data_vars = {
            "value": analysis.values.value,
            "train_loss": (("depth", "seed"), loss),
            "layer_norm": (("layer",), np.linalg.norm(eff.reshape(eff.shape[0], -1), axis=1)),
            **_slope_vars(analysis.slopes),
            **_slope_vars(initial.slopes, "init_"),
        }
        if np.isfinite(ratio).any():
            data_vars["denoised_loss_ratio"] = (("depth", "seed"), ratio)
        if delta == "shared":
            d = np.array([[abs(float(cells[(L, s)].delta)) for s in seeds] for L in depths])
            from deeplimits.analysis.weight_scaling import fit_slope

            alpha = fit_slope(depths, d, statistic="|delta|", seed=seed)
            data_vars["abs_delta"] = (("depth", "seed"), d)
            data_vars["alpha"] = -alpha.slope
            data_vars["alpha_lo"], data_vars["alpha_hi"] = -alpha.hi, -alpha.lo
        ds = xr.Dataset(data_vars, coords={"depth": depths, "seed": seeds,
                                           "statistic": list(STATISTICS),
                                           "layer": np.arange(eff.shape[0])})
        inc = analysis.slopes["Increment"]
        regime = analysis.regime
        ds.attrs.update(regime=regime.regime, regime_reason=regime.reason,
                        initial_regime=initial.regime.regime,
                        training_config=json.dumps(config.to_dict()))
        n_failed = status.count("failed")
        details = (f"{regime}; status counts "
                   f"{ {k: status.count(k) for k in sorted(set(status))} }; "
                   f"initial weights: {initial.regime.regime}")
        if "alpha" in ds:
            details += (f"; alpha-hat {float(ds.alpha):.2f} [{float(ds.alpha_lo):.2f}, "
                        f"{float(ds.alpha_hi):.2f}], alpha + beta = "
                        f"{float(ds.alpha) + regime.beta:.2f}")
        if np.isfinite(ratio).any():
            details += f"; loss(trend)/loss(trained) median {np.nanmedian(ratio):.3g}"
        return with_verdict(ds, Verdict(
            statistic="Increment slope (gamma = beta-hat) of the trained weights",
            tolerance=(f"regime verdict = {expected} ({len(depths)} depths "
                       f"{depths[0]}-{depths[-1]} x {len(seeds)} seeds, "
                       f"{config.max_epochs} epochs max; 95% intervals), no failed cell"),
            measured=inc.slope, passed=regime.regime == expected and n_failed == 0,
            details=details))

    def plot(ds: xr.Dataset):
        fig, (ax1, ax2, ax3) = figure(3)
        depth = ds.depth.values
        fitted = list(ds.fitted.values)
        for stat in ("MaxNorm", "RootSSQ", "Increment"):
            v = np.exp(np.nanmean(np.log(ds.value.sel(statistic=stat).values), axis=1))
            i = fitted.index(stat)
            intercept = np.mean(np.log(v)) - float(ds.slope[i]) * np.mean(np.log(depth))
            loglog_fit(ax1, depth, v, float(ds.slope[i]), intercept, stat)
        ticks = depth[:: max(1, len(depth) // 8)]  # a readable subset on long grids
        depth_ticks(ax1, ticks)
        ax1.set_xlabel("depth L")
        ax1.set_title(f"regime: {ds.attrs['regime']}", fontsize=9)
        ax1.legend(fontsize=7)
        L = len(ds.layer)
        ax2.plot(np.arange(L) / L, ds.layer_norm, lw=0.8)
        ax2.set_xlabel("k / L")
        ax2.set_ylabel(f"|A_k| (analysed weights), L = {L}")
        ax3.loglog(depth, ds.train_loss.mean("seed"), "o-", label="trained")
        if "denoised_loss_ratio" in ds:
            ax3.loglog(depth, (ds.train_loss * ds.denoised_loss_ratio).mean("seed"), "s--",
                       label="trend (denoised) weights")
        depth_ticks(ax3, ticks)
        ax3.set_xlabel("depth L")
        ax3.set_ylabel("training loss")
        ax3.legend(fontsize=7)
        return fig

    return compute, plot


for _id, _act, _delta, _data, _expected, _title in (
    ("T1-tanh-shared", "tanh", "shared", "synthetic", "smooth-ode",
     "tanh with a shared delta on the synthetic ODE data: trained weights are smooth in the "
     "layer index and scale like L^-beta (the linear 'alternative' ODE regime)"),
    ("T1-tanh-shared-digits", "tanh", "shared", "digits", "smooth-ode",
     "tanh with a shared delta on the digits embedding: smooth trained weights (ODE regime)"),
    ("T1-relu-perlayer", "relu", "per-layer", "synthetic", "diffusive-sde",
     "ReLU with per-layer delta on the synthetic ODE data: effective weights are rough and "
     "scale like L^-1/2 (the diffusive SDE regime)"),
    ("T1-relu-perlayer-digits", "relu", "per-layer", "digits", "diffusive-sde",
     "ReLU with per-layer delta on the digits embedding: rough effective weights of size "
     "L^-1/2 (diffusive SDE regime)"),
):
    _c, _p = _trained_sweep(_act, _delta, _data, _expected)
    register(Claim(_id, _title, "CCRX21, CRX22 [abstract]; settings trained_scaling.md §2-6 "
                   "[reconstructed, code]", _c, _p))


def _t4_compute(scale: str, seed: int) -> xr.Dataset:
    depths = pick(scale, [8, 16, 32, 64], [16, 32, 64, 128, 256, 512, 1000])
    n_seeds = pick(scale, 3, 5)
    width = pick(scale, 12, 30)
    epochs = pick(scale, 3, 20)
    data = digits_embedding()
    models, tags = [], []
    for reg in ("iid", "smooth"):
        for L in depths:
            for s in range(n_seeds):
                rng = np.random.default_rng([seed, L, s, reg == "smooth"])
                models.append(init_marion(rng, L, width, data.dim, data.dim, regularity=reg))
                tags.append((reg, L))
    trained, curves = train_marion(models, data, epochs=epochs, seed=seed)
    slopes, rel = {}, {}
    for reg in ("iid", "smooth"):
        for which, ms in (("init", models), ("trained", trained)):
            w = {L: np.stack([np.asarray(m.V, np.float64) for m, t in zip(ms, tags, strict=True)
                              if t == (reg, L)]) for L in depths}
            slopes[(reg, which)] = analyze_weights(w, gamma=0.0, seed=seed,
                                                   n_boot=pick(scale, 500, 2000)
                                                   ).slopes["Increment"]
        moved = [np.linalg.norm(np.asarray(t.V) - np.asarray(m.V)) / np.linalg.norm(np.asarray(m.V))
                 for m, t, g in zip(models, trained, tags, strict=True) if g[0] == reg]
        rel[reg] = float(np.mean(moved))
    smooth, rough = slopes[("smooth", "trained")], slopes[("iid", "trained")]
    passed = smooth.hi < -0.5 < rough.lo
    keys = list(slopes)
    ds = xr.Dataset(
        {"slope": ("case", [slopes[k].slope for k in keys]),
         "lo": ("case", [slopes[k].lo for k in keys]), "hi": ("case", [slopes[k].hi for k in keys]),
         "relative_change": ("regularity", [rel["iid"], rel["smooth"]]),
         "loss_first": ("regularity", [curves[:len(models) // 2, 0].mean(),
                                       curves[len(models) // 2:, 0].mean()]),
         "loss_last": ("regularity", [curves[:len(models) // 2, -1].mean(),
                                      curves[len(models) // 2:, -1].mean()])},
        coords={"case": [f"{r} {w}" for r, w in keys], "regularity": ["iid", "smooth"]})
    return with_verdict(ds, Verdict(
        statistic="Increment slope (gamma = 0) of trained V, smooth initialisation",
        tolerance=(f"smooth: CI upper < -1/2 and i.i.d.: CI lower > -1/2 after training "
                   f"(res-1, width {width}, {len(depths)} depths {depths[0]}-{depths[-1]} x "
                   f"{n_seeds} seeds, {epochs} Adam epochs on digits)"),
        measured=smooth.slope, passed=bool(passed),
        details=(f"smooth trained {smooth}; iid trained {rough}; initial smooth "
                 f"{slopes[('smooth', 'init')].slope:+.3f}, iid "
                 f"{slopes[('iid', 'init')].slope:+.3f}; mean relative change of V: "
                 f"iid {rel['iid']:.3f}, smooth {rel['smooth']:.3f}")))


def _t4_plot(ds: xr.Dataset):
    fig, (ax,) = figure(1, width=5.0)
    x = np.arange(ds.sizes["case"])
    ax.errorbar(x, ds.slope, yerr=[ds.slope - ds.lo, ds.hi - ds.slope], fmt="o")
    ax.axhline(-0.5, color="k", ls="--", lw=0.8)
    ax.set_xticks(x, list(ds.case.values), fontsize=8)
    ax.set_ylabel("Increment slope (gamma = 0)")
    return fig


register(Claim("T4-init-regularity", "res-1 weights keep their initial regularity after "
               "training: smooth (RBF-GP) initialisations stay smooth, i.i.d. ones stay rough",
               "MFBV22 [abstract]; trained_scaling.md §9 [reconstructed]", _t4_compute, _t4_plot))

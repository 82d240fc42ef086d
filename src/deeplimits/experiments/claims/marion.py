r"""Claim T4-critical-line: Marion et al.'s critical branch exponent for rough initial
weights, ``beta_c = max(H, 1/2)`` (``trained_scaling.md`` §9 [reconstructed; heuristic
derived]).

res-1 and res-3 ReLU networks at initialisation, weights fractional Gaussian noise of Hurst
H across layers (H = 1/2: i.i.d.), branch factor ``L^{-beta}``. For each H and each change
(output ``|h_L - h_0|/|h_0|``, gradient ``|p_0 - p_L|/|p_L|``) the critical exponent is
measured as the beta at which the change does not depend on depth: the root of the slope
of ``log change`` against ``log L`` (:func:`~deeplimits.experiments.marion_maps.critical_beta`,
bootstrap over seeds, 95%).

**Decision** (one code for model and twin): every interval lies inside ``prediction +- r``,
``r = log 2 / log(L_max/L_min)``: a root error of r in beta is a slope error of about r
(the first-order term scales like ``L^{H - beta}``), i.e. a factor 2 in the change across the
depth range, the resolution of the regime bands. **Negative control**: the first-order
prediction ``beta_c = H`` alone (the quadratic term that forces ``beta >= 1/2`` ignored),
judged by the same decision on the same measurements.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from deeplimits.analysis.weight_scaling import default_resolution
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
from deeplimits.experiments.figures import figure
from deeplimits.experiments.marion_maps import CHANGES, critical_beta
from deeplimits.simulation.marion_maps import change_maps

__all__ = ["T4_CRITICAL_CONTROL", "measure_maps"]

T4_CRITICAL_CONTROL = Control(
    "beta_c = H", "the same measured critical exponents against the first-order prediction "
    "beta_c = H, which ignores the quadratic term forcing beta >= 1/2: wrong for H < 1/2")


def measure_maps(kind: str, depths, hursts, betas, n_seeds: int, width: int, seed: int
                 ) -> np.ndarray:
    """log10 changes (change, hurst, depth, seed, beta) of fresh networks per (H, L, seed)."""
    out = np.empty((len(CHANGES), len(hursts), len(depths), n_seeds, len(betas)))
    for i, h in enumerate(hursts):
        for j, L in enumerate(depths):
            for s in range(n_seeds):
                rng = np.random.default_rng([seed, kind == "res-3", i, L, s])
                out[:, i, j, s] = change_maps(rng, kind=kind, depth=L, width=width, hurst=h,
                                              betas=betas)
    return out


def _compute(scale: str, seed: int) -> xr.Dataset:
    kinds = ["res-1", "res-3"]
    depths = pick(scale, [30, 100, 300, 1000], [10, 30, 100, 300, 1000, 3000])
    hursts = pick(scale, [0.25, 0.5, 0.75], [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9])
    betas = np.round(np.arange(0.1, 1.2001, pick(scale, 0.05, 0.025)), 4)
    n_seeds = pick(scale, 4, 10)
    width = pick(scale, 20, 40)
    n_boot = pick(scale, 500, 2000)
    r = default_resolution(depths)
    maps = np.stack([measure_maps(k, depths, hursts, betas, n_seeds, width, seed)
                     for k in kinds])  # (kind, change, hurst, depth, seed, beta)
    shape = (len(kinds), len(CHANGES), len(hursts))
    bc, lo, hi = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    slopes = np.full(shape + (len(betas),), np.nan)
    for a in range(len(kinds)):
        for c in range(len(CHANGES)):
            for i in range(len(hursts)):
                f = critical_beta(depths, betas, maps[a, c, i], n_boot=n_boot, seed=seed)
                bc[a, c, i], lo[a, c, i], hi[a, c, i], slopes[a, c, i] = (f.beta_c, f.lo, f.hi,
                                                                          f.slopes)
    predicted = np.maximum(np.asarray(hursts), 0.5)
    dims = ("kind", "change", "hurst")
    ds = xr.Dataset(
        {"log10_change": (("kind", "change", "hurst", "depth", "seed", "beta"), maps),
         "depth_slope": (dims + ("beta",), slopes),
         "beta_c": (dims, bc), "lo": (dims, lo), "hi": (dims, hi),
         "predicted": (("hurst",), predicted)},
        coords={"kind": kinds, "change": list(CHANGES), "hurst": hursts, "depth": depths,
                "seed": np.arange(n_seeds), "beta": betas},
        attrs={"resolution": r, "width": width})
    tolerance = (f"every 95% interval of beta_c inside prediction +- r, r = log 2 / "
                 f"log(L_max/L_min) = {r:.3f} (res-1 and res-3, ReLU, width {width}; "
                 f"{len(depths)} depths {depths[0]}-{depths[-1]} x {n_seeds} seeds; "
                 f"{len(betas)} betas {betas[0]:g}-{betas[-1]:g}; H in {hursts})")

    def decide(pred) -> Verdict:
        bad, worst = [], 0.0
        for a, k in enumerate(kinds):
            for c, name in enumerate(CHANGES):
                for i, h in enumerate(hursts):
                    p = float(pred[i])
                    inside = p - r <= lo[a, c, i] and hi[a, c, i] <= p + r  # NaN: not inside
                    worst = max(worst, abs(bc[a, c, i] - p) if np.isfinite(bc[a, c, i])
                                else np.inf)
                    if not inside:
                        bad.append(f"{k} {name} H={h}: beta_c {bc[a, c, i]:.3f} "
                                   f"[{lo[a, c, i]:.3f}, {hi[a, c, i]:.3f}] vs {p:.2f} +- {r:.2f}")
        text = "; ".join(f"{k} H={h}: out {bc[a, 0, i]:.2f} [{lo[a, 0, i]:.2f}, "
                         f"{hi[a, 0, i]:.2f}], grad {bc[a, 1, i]:.2f} [{lo[a, 1, i]:.2f}, "
                         f"{hi[a, 1, i]:.2f}]" for a, k in enumerate(kinds)
                         for i, h in enumerate(hursts))
        return Verdict("measured critical beta vs the prediction; measured: the largest "
                       "|beta_c - prediction|", tolerance, worst, not bad,
                       text + (" | outside: " + "; ".join(bad) if bad else ""))

    half = np.nanmax(hi - lo) / 2
    det = Detectable(detectable_shift(float(half) / 1.96 if np.isfinite(half) else 0.0,
                                      margin=r), "error in the critical beta", relative=False)
    return with_verdict(ds, judge(decide, predicted, np.asarray(hursts, float), det))


def _plot(ds: xr.Dataset):
    deepest = int(ds.depth.values[-1])
    fig, axes = figure(3, width=4.0, height=3.3)
    at = ds.sel(kind="res-1", depth=deepest)
    b, h = ds.beta.values, ds.hurst.values
    for ax, name in zip(axes[:2], CHANGES, strict=True):
        v = at.log10_change.sel(change=name)
        z = np.clip(v.where(np.isfinite(v), 30.0).mean("seed").transpose("hurst", "beta"),
                    -6, 6)
        mesh = ax.pcolormesh(b, h, z, shading="nearest", cmap="RdBu_r", vmin=-6, vmax=6)
        fig.colorbar(mesh, ax=ax)
        ax.plot(np.maximum(h, 0.5), h, "k--", lw=1, label="max(H, 1/2)")
        ax.set_title(f"res-1 log10 {name.replace('_', ' ')}, L = {deepest}", fontsize=8)
        ax.set_xlabel("beta")
        ax.set_ylabel("H")
        ax.legend(fontsize=6)
    ax = axes[2]
    for a, k in enumerate(ds.kind.values):
        for c, name in enumerate(CHANGES):
            off = 0.01 * (2 * a + c - 1.5)
            y = ds.beta_c.values[a, c]
            ax.errorbar(h + off, y, yerr=[y - ds.lo.values[a, c], ds.hi.values[a, c] - y],
                        fmt="o", ms=3, capsize=2, label=f"{k} {name.split('_')[0]}")
    hh = np.linspace(0, 1, 101)
    r = float(ds.attrs["resolution"])
    ax.fill_between(hh, np.maximum(hh, 0.5) - r, np.maximum(hh, 0.5) + r, color="g",
                    alpha=0.15, label="max(H, 1/2) +- r")
    ax.plot(hh, hh, "k:", lw=0.8, label="control: H")
    ax.set_xlabel("Hurst index H")
    ax.set_ylabel("measured critical beta (depth-slope root)")
    ax.legend(fontsize=6)
    return fig


register(Claim("T4-critical-line", "Rough (fGn, Hurst H) initial weights: the output and "
               "gradient changes of res-1 and res-3 stay O(1) in depth exactly at the branch "
               "exponent beta_c = max(H, 1/2) (Marion et al.'s maps)",
               "MFBV22 [reconstructed; heuristic derived]; trained_scaling.md §9", _compute,
               _plot, control=T4_CRITICAL_CONTROL))

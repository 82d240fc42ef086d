r"""Marion et al.'s maps (``trained_scaling.md`` §9): output and gradient change of res-1 /
res-3 networks over the branch exponent beta and the Hurst index H of their initial
weights, the sweepable study ``marion-map``, the measured critical line and its figure.

* Study ``marion-map`` (one cell: one network per (kind, depth, H, seed), every beta of
  ``betas`` on the same weights): variables ``output_change`` and ``gradient_change``
  (beta), the log10 changes of :func:`~deeplimits.simulation.marion_maps.change_maps`.
  A sweep over ``hurst`` (and ``seed``) collects into the (hurst, seed, beta) map::

      study = "marion-map"
      seeds = [0, 1, 2]
      [grid]
      hurst = [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95]
      [config]
      kind = "res-1"
      depth = 1000

* :func:`critical_beta`: the beta at which a change is depth-independent, i.e. the root in
  beta of the slope of ``log10 change`` against ``log10 L`` (the change grows with L below
  the critical exponent and vanishes above it), by linear interpolation between the grid
  points where the seed-mean slope changes sign, with a percentile bootstrap over seeds
  (resampled independently per depth). That exponent, not a level of the map at one depth,
  is what the heuristic ``beta_c = max(H, 1/2)`` predicts.
* :func:`map_figure`: the heatmaps with the line ``max(H, 1/2)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import xarray as xr

from deeplimits.experiments.figures import figure
from deeplimits.experiments.sweeps import REQUIRED, Cell, Study, register_study

__all__ = ["MARION_MAP", "CriticalBeta", "critical_beta", "map_figure", "CHANGES"]

CHANGES = ("output_change", "gradient_change")

DEFAULT_BETAS = [round(float(b), 4) for b in np.linspace(0.0, 1.3, 27)]


def _check(params: dict) -> None:
    from deeplimits.spec.trainable import MARION_KINDS

    if params["kind"] not in MARION_KINDS:
        raise ValueError(f"kind must be one of {MARION_KINDS}, got {params['kind']!r}")
    for name in ("depth", "width", "n_inputs", "d_in"):
        v = params[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    h = params["hurst"]
    if isinstance(h, bool) or not isinstance(h, int | float) or not 0 < h < 1:
        raise ValueError(f"hurst must be a number in (0, 1), got {h!r}")
    b = params["betas"]
    if not (isinstance(b, list | tuple) and b and all(
            isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
            for v in b)):
        raise ValueError(f"betas must be a non-empty list of finite numbers, got {b!r}")


def _run(cell: Cell) -> xr.Dataset:
    from deeplimits.simulation.marion_maps import change_maps

    p = cell.parameters
    out, grad = change_maps([np.random.default_rng([cell.seed, int(cell.digest[:8], 16)])],
                            [p["depth"]], [float(p["hurst"])], kind=p["kind"], width=p["width"],
                            betas=p["betas"], n_inputs=p["n_inputs"], d_in=p["d_in"],
                            activation=p["activation"])
    return xr.Dataset({"output_change": ("beta", out[0]), "gradient_change": ("beta", grad[0])},
                      coords={"beta": list(p["betas"])},
                      attrs={"units": "log10 of the relative change (+inf: overflow)"})


MARION_MAP = register_study(Study(
    "marion-map", _run,
    {"kind": "res-1", "depth": 1000, "width": 40, "hurst": REQUIRED, "betas": DEFAULT_BETAS,
     "n_inputs": 8, "d_in": 10, "activation": "relu"}, _check,
    "res-1/res-3 at initialisation with fGn weights of Hurst H: log10 output and gradient "
    "change over a grid of branch exponents beta (Marion et al.'s maps)"))


@dataclasses.dataclass(frozen=True)
class CriticalBeta:
    """The measured critical exponent: ``beta_c`` (point), its bootstrap interval
    ``[lo, hi]`` (NaN where no sign change was found), ``slopes`` (n_betas,) the seed-mean
    depth slope of the change at each beta, ``found`` the fraction of bootstrap replicates
    with a sign change."""

    beta_c: float
    lo: float
    hi: float
    slopes: np.ndarray
    found: float


def _roots(betas: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """First downward zero crossing in beta of each row of ``slopes`` (n, n_betas) by linear
    interpolation; NaN where the slope never changes sign from + to -."""
    pos = slopes > 0
    cross = pos[:, :-1] & ~pos[:, 1:] & np.isfinite(slopes[:, 1:])
    has = cross.any(axis=1)
    i = np.argmax(cross, axis=1)
    rows = np.arange(slopes.shape[0])
    s0, s1 = slopes[rows, i], slopes[rows, i + 1]
    b0, b1 = betas[i], betas[i + 1]
    with np.errstate(all="ignore"):
        root = b0 + (b1 - b0) * s0 / (s0 - s1)
    return np.where(has, root, np.nan)


def critical_beta(depths: Sequence[int], betas: Sequence[float], log10_change, *,
                  level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> CriticalBeta:
    """:class:`CriticalBeta` of log10 changes (n_depths, n_seeds, n_betas). Betas whose
    change overflowed at some depth (+inf) count as growing (slope +inf)."""
    L = np.log10(np.asarray(depths, np.float64))
    b = np.asarray(betas, np.float64)
    v = np.asarray(log10_change, np.float64)
    if v.ndim != 3 or v.shape[0] != L.size or v.shape[2] != b.size:
        raise ValueError(f"log10_change must be (n_depths, n_seeds, n_betas) = ({L.size}, ., "
                         f"{b.size}), got {v.shape}")
    if L.size < 2 or np.any(np.diff(b) <= 0):
        raise ValueError("critical_beta needs >= 2 depths and increasing betas")
    xc = (L - L.mean())[:, None]

    def slope(means):  # means (n_depths, n_betas) -> (n_betas,)
        with np.errstate(invalid="ignore"):
            s = (xc * (means - means.mean(axis=0))).sum(axis=0) / (xc**2).sum()
        return np.where(np.isinf(means).any(axis=0), np.inf, s)

    point = slope(v.mean(axis=1))
    rng = np.random.default_rng(seed)
    n_seeds = v.shape[1]
    boot = np.empty((n_boot, b.size))
    for r in range(n_boot):
        picks = rng.integers(0, n_seeds, (L.size, n_seeds))
        boot[r] = slope(np.stack([v[d, picks[d]].mean(axis=0) for d in range(L.size)]))
    roots = _roots(b, boot)
    found = float(np.mean(np.isfinite(roots)))
    q = (0.5 - level / 2, 0.5 + level / 2)
    lo, hi = (np.quantile(roots, q) if found == 1.0 else (np.nan, np.nan))
    return CriticalBeta(float(_roots(b, point[None, :])[0]), float(lo), float(hi), point, found)


def map_figure(ds: xr.Dataset, *, depth: int | None = None):
    """Heatmaps of the seed-mean log10 output and gradient change over (beta, hurst), with
    the critical line ``beta_c = max(H, 1/2)``; ``ds`` has variables :data:`CHANGES` with
    dimensions including ``hurst`` and ``beta`` (and ``seed``, averaged), e.g. a collected
    ``marion-map`` sweep. Overflowed cells are drawn at the colour scale's top."""
    fig, axes = figure(len(CHANGES), width=4.2, height=3.4)
    h = np.asarray(ds.hurst.values, float)
    b = np.asarray(ds.beta.values, float)
    for ax, name in zip(axes, CHANGES, strict=True):
        v = ds[name]
        if "seed" in v.dims:
            v = v.where(np.isfinite(v), 30.0).mean("seed")
        z = np.clip(v.transpose("hurst", "beta").values, -6.0, 6.0)
        mesh = ax.pcolormesh(b, h, z, shading="nearest", cmap="RdBu_r", vmin=-6, vmax=6)
        fig.colorbar(mesh, ax=ax, label=f"log10 {name.replace('_', ' ')}")
        hh = np.linspace(h.min(), h.max(), 100)
        ax.plot(np.maximum(hh, 0.5), hh, "k--", lw=1.2, label="beta_c = max(H, 1/2)")
        ax.set_xlabel("branch exponent beta")
        ax.set_ylabel("Hurst index H")
        ax.set_title(name.replace("_", " ") + (f", L = {depth}" if depth else ""), fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    return fig

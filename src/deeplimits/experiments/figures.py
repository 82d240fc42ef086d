"""House style for figures (headless: the Agg backend, no display needed)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker
import numpy as np  # noqa: E402

__all__ = ["figure", "loglog_fit", "depth_ticks", "histogram", "sweep_figure"]

matplotlib.use("Agg")


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.3):
    """A figure with a grid of axes (always returned as a flat array)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, constrained_layout=True)
    return fig, axes.ravel()


def loglog_fit(ax, x, y, slope: float, intercept: float, label: str, **kwargs):
    """Points and their fitted power law ``exp(intercept) x^slope``."""
    x = np.asarray(x, dtype=float)
    line = ax.loglog(x, y, "o", label=f"{label} (slope {slope:.2f})", **kwargs)[0]
    ax.loglog(x, np.exp(intercept) * x**slope, "-", color=line.get_color(), alpha=0.6)
    depth_ticks(ax, x)
    return line


def depth_ticks(ax, x):
    """Label a logarithmic x axis at the given depths, in plain numbers."""
    ax.set_xticks(np.asarray(x, dtype=float), [f"{v:g}" for v in x])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def histogram(ax, values, label: str, bins=60, clip: float = 0.2, **kwargs):
    """A density-normalised step histogram over the central ``100 - 2 clip`` percent (heavy
    tails would otherwise squeeze the bulk into a few bins)."""
    v = np.asarray(values).ravel()
    lo, hi = np.percentile(v, [clip, 100 - clip])
    ax.hist(v, bins=np.linspace(lo, hi, bins + 1), density=True, histtype="step", label=label,
            **kwargs)


def sweep_figure(ds, max_panels: int = 6, x: str | None = None):
    """One panel per variable of a collected sweep: the variable (mean over seeds, with its
    standard error as a bar) against the grid axis ``x``, one series per value of the others.

    ``x`` defaults to the first numeric grid axis (else the first axis). A numeric axis is
    drawn at its values with the points joined; a categorical one (activation, law, ...) at
    evenly spaced ticks with markers only, each series slightly offset, since a line
    between categories would suggest an order that does not exist. Variables with
    dimensions of their own (beyond the grid axes and ``seed``) are skipped.

    Raises:
        ValueError: when ``x`` is not a grid axis of ``ds``.
    """
    grid = [d for d in ds.dims if d != "seed" and d in ds.coords and all(
        d in v.dims for v in ds.data_vars.values())]
    if x is not None and x not in grid:
        raise ValueError(f"x must be one of the sweep's grid axes {grid}, got {x!r}")
    numeric = [d for d in grid if np.issubdtype(ds[d].dtype, np.number)
               and not np.issubdtype(ds[d].dtype, np.bool_)]
    if x is None and grid:
        x = (numeric or grid)[0]
    names = [n for n, v in ds.data_vars.items() if set(v.dims) <= set(grid) | {"seed"}]
    names = names[:max_panels] or list(ds.data_vars)[:1]
    fig, axes = figure(ncols=min(3, len(names)), nrows=-(-len(names) // 3))
    rest = [d for d in grid if d != x]
    categorical = x is not None and x not in numeric
    for ax, name in zip(axes, names, strict=False):
        var = ds[name]
        mean = var.mean("seed") if "seed" in var.dims else var
        count = var.sizes.get("seed", 1)
        se = (var.std("seed", ddof=1) / np.sqrt(count)) if count > 1 else 0 * mean
        if x is None:
            ax.bar([0], [float(mean)])
        else:
            mean, se = mean.transpose(x, *rest), se.transpose(x, *rest)
            lines = mean.stack(line=rest) if rest else mean.expand_dims(line=[""], axis=-1)
            errors = se.stack(line=rest) if rest else se.expand_dims(line=[""], axis=-1)
            series = lines.sizes["line"]
            at = (np.arange(ds.sizes[x], dtype=float) if categorical
                  else np.asarray(ds[x].values, dtype=float))
            for i in range(series):
                label = ", ".join(f"{k}={v}" for k, v in zip(
                    rest, np.atleast_1d(lines["line"].values[i]), strict=False)) if rest else None
                shift = 0.3 * (i - (series - 1) / 2) / max(series, 1) if categorical else 0.0
                ax.errorbar(at + shift, lines.isel(line=i), yerr=errors.isel(line=i),
                            marker="o", capsize=2, label=label,
                            linestyle="none" if categorical else "-")
            if categorical:
                ax.set_xticks(at, [str(v) for v in ds[x].values])
            ax.set_xlabel(x)
            if rest and series <= 8:
                ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return fig

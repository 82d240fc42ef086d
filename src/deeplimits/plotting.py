"""House style for figures (headless: the Agg backend, no display needed)."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["figure", "loglog_fit", "depth_ticks", "histogram"]


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

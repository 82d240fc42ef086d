"""House style for figures (headless: the Agg backend, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["figure", "loglog_fit", "histogram"]


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
    return line


def histogram(ax, values, label: str, bins=60, **kwargs):
    """A density-normalised step histogram."""
    ax.hist(np.asarray(values).ravel(), bins=bins, density=True, histtype="step", label=label,
            **kwargs)

r"""The optimal learning rate of a loss-versus-rate sweep, and how it scales with depth
(``trained_scaling.md`` §10).

Input: losses ``l[d, r, s]`` after a fixed training budget at depths ``L_d``, learning
rates ``eta_r`` (any positive grid, normally geometric) and seeds ``s``.

* **Optimum at one depth** (:func:`optimal_rate`): the curve ``c(u) = mean_s log l[d, r, s]``
  in ``u = log eta`` is smoothed by a least-squares parabola through the grid minimum and its
  ``window`` neighbours on either side (shifted inside the grid at its ends); ``log eta*`` is
  the parabola's vertex (clipped to the fitted rates; the grid minimum when the fit is not
  convex). An optimum at the end of the grid is **not bracketed**: its position is
  unknown, and :class:`RateScaling` says so.
* **Scaling** (:func:`rate_scaling`): ``log eta*(L) = c + slope log L`` by OLS over the
  depths. Its interval is the hull *(choice*, as in
  :func:`~deeplimits.analysis.weight_scaling.fit_slope`) of a percentile bootstrap over
  seeds (resampled with replacement independently at each depth, since every cell is an
  independent training run; the optimum and the slope recomputed per replicate) and the
  OLS t-interval (lack of fit of a pure power law).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from deeplimits.analysis import stats

__all__ = ["optimal_rate", "RateScaling", "rate_scaling"]


def _check_curve(log_rates: np.ndarray, curve: np.ndarray) -> None:
    if log_rates.ndim != 1 or log_rates.size < 3:
        raise ValueError(f"an optimal rate needs at least 3 rates, got {log_rates.size}")
    if np.any(np.diff(log_rates) <= 0):
        raise ValueError("rates must be strictly increasing")
    if curve.shape[-1] != log_rates.size:
        raise ValueError(f"the loss curve has {curve.shape[-1]} rates, the grid "
                         f"{log_rates.size}")


def _vertices(u: np.ndarray, curves: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised core of :func:`optimal_rate` for curves (n, n_rates)."""
    m = u.size
    width = min(2 * window + 1, m)
    i = np.argmin(curves, axis=1)
    start = np.clip(i - window, 0, m - width)
    idx = start[:, None] + np.arange(width)  # (n, width): the window, shifted into the grid
    x, c = u[idx], np.take_along_axis(curves, idx, axis=1)
    design = np.stack([x**2, x, np.ones_like(x)], axis=-1)  # (n, width, 3)
    gram = np.einsum("nwi,nwj->nij", design, design)
    coef = np.linalg.solve(gram, np.einsum("nwi,nw->ni", design, c)[..., None])[..., 0]
    a, b = coef[:, 0], coef[:, 1]
    convex = a > 0
    vertex = np.where(convex, -b / np.where(convex, 2 * a, 1.0), u[i])
    return np.clip(vertex, x[:, 0], x[:, -1]), (i > 0) & (i < m - 1)


def optimal_rate(rates: Sequence[float], log_loss, *, window: int = 2) -> tuple[float, bool]:
    """``(log eta*, bracketed)`` of one curve of log losses (n_rates,) over increasing
    ``rates``: the vertex of the least-squares parabola through the ``2 window + 1`` rates
    centred on the grid minimum (shifted to lie inside the grid at its ends), clipped to
    those rates; the grid minimum itself when the parabola is not convex. ``bracketed`` is
    False when the grid minimum is the first or last rate."""
    u = np.log(np.asarray(rates, np.float64))
    c = np.asarray(log_loss, np.float64)
    _check_curve(u, c)
    if c.ndim != 1 or not np.all(np.isfinite(c)):
        raise ValueError("log losses must be one finite curve (cap diverged runs before)")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    v, ok = _vertices(u, c[None, :], window)
    return float(v[0]), bool(ok[0])


@dataclasses.dataclass(frozen=True)
class RateScaling:
    """How the optimal learning rate scales with depth.

    Attributes:
        depths: (n_depths,) depths.
        log_optimum: (n_depths,) ``log eta*`` of the seed-mean curves.
        optimum_lo, optimum_hi: (n_depths,) percentile-bootstrap interval of ``log eta*``.
        bracketed: (n_depths,) whether the optimum lies inside the rate grid.
        slope, intercept, stderr: OLS of ``log eta*`` on ``log L``.
        lo, hi: the slope's interval (hull of bootstrap and t-interval); ``boot_lo``,
            ``boot_hi``, ``t_lo``, ``t_hi`` its parts.
        level: the confidence level; ``n_seeds`` seeds per depth; ``n_boot`` replicates.
    """

    depths: np.ndarray
    log_optimum: np.ndarray
    optimum_lo: np.ndarray
    optimum_hi: np.ndarray
    bracketed: np.ndarray
    slope: float
    intercept: float
    stderr: float
    lo: float
    hi: float
    boot_lo: float
    boot_hi: float
    t_lo: float
    t_hi: float
    level: float
    n_seeds: int
    n_boot: int

    @property
    def all_bracketed(self) -> bool:
        return bool(np.all(self.bracketed))

    def __str__(self) -> str:
        edge = "" if self.all_bracketed else (
            "; optimum NOT bracketed at L = "
            + ", ".join(str(int(L)) for L in self.depths[~self.bracketed]))
        return (f"slope {self.slope:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] "
                f"({100 * self.level:g}%, {self.depths.size} depths x {self.n_seeds} seeds)"
                f"{edge}")


def rate_scaling(depths: Sequence[int], rates: Sequence[float], losses, *,
                 window: int = 2, level: float = 0.95, n_boot: int = 1000,
                 seed: int = 0) -> RateScaling:
    """:class:`RateScaling` of losses (n_depths, n_rates, n_seeds) (positive and finite:
    cap diverged runs before, e.g. at the initial loss)."""
    L = np.asarray(depths, np.float64)
    loss = np.asarray(losses, np.float64)
    if loss.ndim != 3 or loss.shape[0] != L.size:
        raise ValueError(f"losses must be (n_depths, n_rates, n_seeds) with {L.size} depths, "
                         f"got {loss.shape}")
    if L.size < 3 or len(set(L.tolist())) != L.size:
        raise ValueError(f"a depth scaling needs at least 3 distinct depths, got {L.tolist()}")
    if not (np.all(np.isfinite(loss)) and np.all(loss > 0)):
        raise ValueError("losses must be finite and > 0 (cap diverged runs before)")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    logl = np.log(loss)
    n_seeds = loss.shape[2]
    point = [optimal_rate(rates, logl[d].mean(axis=1), window=window) for d in range(L.size)]
    opt = np.array([p[0] for p in point])
    bracketed = np.array([p[1] for p in point])
    t = stats.loglog_slope(L, np.exp(opt), level=level)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, L.size))
    for d in range(L.size):
        picks = rng.integers(0, n_seeds, (n_boot, n_seeds))
        curves = logl[d][:, picks].mean(axis=2).T  # (n_boot, n_rates)
        boot[:, d] = _vertices(np.log(np.asarray(rates, np.float64)), curves, window)[0]
    lx = np.log(L) - np.log(L).mean()
    slopes = ((boot - boot.mean(axis=1, keepdims=True)) * lx).sum(axis=1) / (lx**2).sum()
    q = (0.5 - level / 2, 0.5 + level / 2)
    b_lo, b_hi = (float(v) for v in np.quantile(slopes, q))
    o_lo, o_hi = np.quantile(boot, q, axis=0)
    return RateScaling(L, opt, o_lo, o_hi, bracketed, t.slope, t.intercept, t.stderr,
                       float(min(b_lo, t.lo)), float(max(b_hi, t.hi)), b_lo, b_hi, t.lo, t.hi,
                       level, int(n_seeds), int(n_boot))

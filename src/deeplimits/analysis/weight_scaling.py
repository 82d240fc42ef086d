r"""Scaling and regularity statistics of weight sequences across depth (``trained_scaling.md``
§5, §6, §8), their log-log regressions and the regime verdict.

Input at one depth L: a stack ``A`` of shape (L, ...) (``A_0 .. A_{L-1}``). ``|.|`` is the
Frobenius norm over all non-layer axes (or, with ``norm="spectral"``, the largest singular
value: of the matrix for (L, m, n) stacks, of the circular convolution operator via
:func:`conv_singular_values` for (L, c_out, c_in, k_h, k_w) kernels). Everything is float64.

======================  ====================================================================
MaxNorm                 ``max_k |A_k|``; beta-hat = -slope
RootSSQ                 ``(sum_k |A_k|^2)^{1/2}``
MeanSq                  ``(L^{-1} sum_k |A_k|^2)^{1/2}`` (intended definition; the reference
                        code's slip makes it equal RootSSQ)
QV                      ``sum_{k=1}^{L-1} |A_k - A_{k-1}|^2``
H1                      ``(L QV)^{1/2}``
Increment               ``L^gamma max_{k>=1} |A_k - A_{k-1}|``
CumSum                  ``|sum_k A_k|``
DetrendedCumSum         sup-distance of ``W_k = sum_{j<k} A_j`` from its local mean (§5)
======================  ====================================================================

:func:`fit_slope` regresses the log statistic on ``log L`` (OLS on the per-depth mean over
seeds) and reports the t-interval and a bootstrap interval over seeds; the interval used
(``lo``, ``hi``) is their hull *(choice)*: the bootstrap captures seed-to-seed variation,
the t-interval the lack of fit of a pure power law (finite-L log factors).
:func:`classify_regime` turns the slopes into a verdict (smooth ODE / diffusive SDE / neither)
and states the statistics that decided it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from deeplimits.analysis import stats

__all__ = [
    "STATISTICS", "max_norm", "spectral_max", "root_ssq", "mean_sq", "quadratic_variation",
    "h1_norm", "increment", "cumsum_norm", "detrended_cumsum", "conv_singular_values",
    "layer_norms", "sequence_statistics", "SlopeFit", "fit_slope", "Regime", "REGIMES",
    "classify_regime", "ScalingAnalysis", "analyze_weights", "check_weight_stacks",
    "synthetic_weights"
]

STATISTICS = ("MaxNorm", "RootSSQ", "MeanSq", "QV", "H1", "MaxIncrement", "Increment", "CumSum",
              "DetrendedCumSum")


REGIMES = ("smooth-ode", "diffusive-sde", "neither")


def _stack(A) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim < 2 or A.shape[0] < 1:
        raise ValueError(f"a weight stack must have shape (L, ...) with L >= 1, got {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("the weight stack contains NaN or infinity")
    return A


def conv_singular_values(kernel, input_shape: tuple[int, int], top: int | None = 10
                         ) -> np.ndarray:
    """Singular values of the stride-1 circular convolution by ``kernel`` (c_out, c_in, kh, kw)
    on (H, W) inputs [SGL19]: the union over frequencies of the singular values of
    ``K-hat(u, v) = sum_{a,b} K[:, :, a, b] exp(-2 pi i (a u/H + b v/W))``. Returns the ``top``
    largest, descending (all with ``top=None``)."""
    K = np.asarray(kernel, dtype=np.float64)
    H, W = input_shape
    if K.ndim != 4 or K.shape[2] > H or K.shape[3] > W:
        raise ValueError(f"kernel must be (c_out, c_in, kh, kw) with kh <= H, kw <= W; got "
                         f"{K.shape} for inputs {input_shape}")
    khat = np.fft.fft2(K, s=(H, W), axes=(2, 3))  # (c_out, c_in, H, W)
    blocks = np.moveaxis(khat, (2, 3), (0, 1))  # (H, W, c_out, c_in)
    s = np.sort(np.linalg.svd(blocks, compute_uv=False).ravel())[::-1]
    return s if top is None else s[:top]


def layer_norms(A, norm: str = "frobenius", input_shape: tuple[int, int] | None = None
                ) -> np.ndarray:
    """(L,) norms of the layers of a stack (L, ...)."""
    A = np.asarray(A, dtype=np.float64)
    if norm == "frobenius":
        return np.sqrt((A.reshape(A.shape[0], -1) ** 2).sum(axis=1))
    if norm != "spectral":
        raise ValueError(f"norm must be 'frobenius' or 'spectral', got {norm!r}")
    if A.ndim == 3:
        return np.linalg.norm(A, ord=2, axis=(1, 2))
    if A.ndim == 5:
        if input_shape is None:
            raise ValueError("spectral norms of convolution kernels need input_shape=(H, W)")
        return np.array([conv_singular_values(k, input_shape, top=1)[0] for k in A])
    raise ValueError(f"spectral norms need (L, m, n) matrices or (L, c_out, c_in, kh, kw) "
                     f"kernels, got shape {A.shape}")


def max_norm(A, **kw) -> float:
    """``max_k |A_k|``."""
    return float(layer_norms(_stack(A), **kw).max())


def spectral_max(A, input_shape=None) -> float:
    """``max_k |A_k|_2`` (largest singular value; FFT for convolution kernels)."""
    return max_norm(A, norm="spectral", input_shape=input_shape)


def root_ssq(A, **kw) -> float:
    """``(sum_k |A_k|^2)^{1/2}``."""
    return float(np.sqrt((layer_norms(_stack(A), **kw) ** 2).sum()))


def mean_sq(A, **kw) -> float:
    """``(L^{-1} sum_k |A_k|^2)^{1/2}`` (the intended "L2" statistic)."""
    n = layer_norms(_stack(A), **kw)
    return float(np.sqrt((n**2).mean()))


def _increments(A, **kw) -> np.ndarray:
    A = _stack(A)
    if A.shape[0] < 2:
        return np.zeros(1)
    return layer_norms(np.diff(A, axis=0), **kw)


def quadratic_variation(A, **kw) -> float:
    """``sum_{k=1}^{L-1} |A_k - A_{k-1}|^2``."""
    return float((_increments(A, **kw) ** 2).sum())


def h1_norm(A, **kw) -> float:
    """``(L QV)^{1/2}``, the discrete H^1 semi-norm."""
    return float(np.sqrt(np.shape(A)[0] * quadratic_variation(A, **kw)))


def increment(A, gamma: float = 0.0, **kw) -> float:
    """``L^gamma max_{1<=k<=L-1} |A_k - A_{k-1}|``."""
    return float(np.shape(A)[0] ** gamma * _increments(A, **kw).max())


def cumsum_norm(A) -> float:
    """``|sum_k A_k|`` (Frobenius)."""
    return float(np.linalg.norm(_stack(A).sum(axis=0)))


def detrended_cumsum(A) -> float:
    """DetrendedCumSum of §5. ``W_0 = 0``, ``W_{j+1} = W_j + A_j``.

    L < 10: ``max_{1<=k<=L} |W_k - (k/L) W_L|``. Otherwise, with ``w = max(3, floor(L/10))``,
    ``max_{1<=k<=L-1} |W_k - mu_k|`` with ``mu_k`` the mean of ``W_{k-w} .. W_{k+w-1}``
    (``w <= k < L-w``), of ``W_0 .. W_{2k-1}`` (``k < w``), of ``W_{2k-L} .. W_{L-1}``
    (``k >= L-w``).
    """
    A = _stack(A)
    L = A.shape[0]
    flat = A.reshape(L, -1)
    W = np.concatenate([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)])  # (L+1, p)
    if L < 10:
        k = np.arange(1, L + 1)
        return float(np.linalg.norm(W[k] - (k / L)[:, None] * W[L], axis=1).max())
    w = max(3, L // 10)
    k = np.arange(1, L)
    lo = np.where(k < w, 0, np.where(k >= L - w, 2 * k - L, k - w))
    hi = np.where(k < w, 2 * k - 1, np.where(k >= L - w, L - 1, k + w - 1))  # inclusive
    prefix = np.concatenate([np.zeros((1, W.shape[1])), np.cumsum(W, axis=0)])
    mu = (prefix[hi + 1] - prefix[lo]) / (hi - lo + 1)[:, None]
    return float(np.linalg.norm(W[k] - mu, axis=1).max())


def sequence_statistics(A, gamma: float = 0.0, *, norm: str = "frobenius",
                        input_shape: tuple[int, int] | None = None) -> dict[str, float]:
    """Every statistic of :data:`STATISTICS` for one stack (L, ...). ``MaxIncrement`` is the
    Increment with gamma = 0; CumSum and DetrendedCumSum always use the Frobenius norm."""
    A = _stack(A)
    kw = {"norm": norm, "input_shape": input_shape}
    n = layer_norms(A, **kw)
    inc = _increments(A, **kw)
    L = A.shape[0]
    qv = float((inc**2).sum())
    return {
        "MaxNorm": float(n.max()),
        "RootSSQ": float(np.sqrt((n**2).sum())),
        "MeanSq": float(np.sqrt((n**2).mean())),
        "QV": qv,
        "H1": math.sqrt(L * qv),
        "MaxIncrement": float(inc.max()),
        "Increment": float(L**gamma * inc.max()),
        "CumSum": cumsum_norm(A),
        "DetrendedCumSum": detrended_cumsum(A),
    }


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """Slope of ``log statistic`` against ``log L``.

    ``slope``: OLS on the per-depth mean of the log statistic over seeds. ``t_lo, t_hi``: its
    t-interval; ``boot_lo, boot_hi``: percentile bootstrap over seeds (resampled with
    replacement independently at each depth; equal to the t-interval with one seed);
    ``lo, hi``: their hull, the interval every verdict uses.
    """

    statistic: str
    slope: float
    stderr: float
    intercept: float
    lo: float
    hi: float
    t_lo: float
    t_hi: float
    boot_lo: float
    boot_hi: float
    level: float
    n_depths: int
    n_seeds: int

    @property
    def rounded(self) -> float:
        """The slope to one decimal, -0.0 shown as 0.0 (the paper's convention)."""
        return round(self.slope, 1) + 0.0

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def __str__(self) -> str:
        return (f"{self.statistic}: slope {self.slope:+.3f} "
                f"[{self.lo:+.3f}, {self.hi:+.3f}] ({100 * self.level:g}% CI, "
                f"{self.n_depths} depths x {self.n_seeds} seeds)")


def _ols_slope(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Slopes of the rows of ``ly`` (..., n) on ``lx`` (n,)."""
    xc = lx - lx.mean()
    return ((ly - ly.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc**2).sum()


def fit_slope(depths: Sequence[int], values, *, statistic: str = "statistic",
              level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> SlopeFit:
    """Log-log regression of ``values`` (n_depths, n_seeds) (or (n_depths,)) on depth.

    Non-finite or non-positive entries (failed cells) are dropped; a depth with no valid
    seed is dropped. At least 3 depths must remain.
    """
    depths = np.asarray(depths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.shape[0] != depths.size:
        raise ValueError(f"values have {v.shape[0]} depths, the grid has {depths.size}")
    logv = np.where(np.isfinite(v) & (v > 0), np.log(np.where(v > 0, v, 1.0)), np.nan)
    keep = ~np.all(np.isnan(logv), axis=1)
    if keep.sum() < 3:
        raise ValueError(f"a log-log regression needs at least 3 depths with valid values, "
                         f"got {int(keep.sum())} ({statistic})")
    depths, logv = depths[keep], logv[keep]
    lx = np.log(depths)
    mean_log = np.nanmean(logv, axis=1)
    t = stats.loglog_slope(depths, np.exp(mean_log), level=level)
    n_seeds = int(np.sum(~np.isnan(logv), axis=1).max())
    if n_seeds >= 2:
        rng = np.random.default_rng(seed)
        boot = np.empty((n_boot, depths.size))
        for i, row in enumerate(logv):
            ok = row[~np.isnan(row)]
            boot[:, i] = ok[rng.integers(0, ok.size, (n_boot, ok.size))].mean(axis=1)
        slopes = _ols_slope(lx, boot)
        b_lo, b_hi = np.quantile(slopes, [0.5 - level / 2, 0.5 + level / 2])
    else:
        b_lo, b_hi = t.lo, t.hi
    return SlopeFit(statistic, t.slope, t.stderr, t.intercept, float(min(t.lo, b_lo)),
                    float(max(t.hi, b_hi)), t.lo, t.hi, float(b_lo), float(b_hi), level,
                    int(depths.size), n_seeds)


@dataclasses.dataclass(frozen=True)
class Regime:
    """The verdict of :func:`classify_regime`.

    Attributes:
        regime: ``"smooth-ode"``, ``"diffusive-sde"`` or ``"neither"``.
        beta: beta-hat (-slope of MaxNorm).
        deciding: ``(statistic, slope, lo, hi, rule)`` for each statistic used, in order.
        reason: one sentence saying why.
    """

    regime: str
    beta: float
    deciding: tuple[tuple[str, float, float, float, str], ...]
    reason: str

    def __str__(self) -> str:
        rows = "\n".join(f"  {name}: slope {s:+.3f} [{lo:+.3f}, {hi:+.3f}]  ({rule})"
                         for name, s, lo, hi, rule in self.deciding)
        return f"regime: {self.regime} (beta-hat {self.beta:.2f}): {self.reason}\n{rows}"


def _overlaps(lo: float, hi: float, a: float, b: float) -> bool:
    return lo <= b and a <= hi


def classify_regime(slopes: Mapping[str, SlopeFit], *, tolerance: float = 0.15) -> Regime:
    """Smooth ODE / diffusive SDE / neither from the slope intervals (§6).

    Rules, in order (``tol`` = ``tolerance``, which also absorbs the sqrt(log L) factor of a
    maximum of rough weights):

    1. Power-law consistency: both models S and N predict RootSSQ slope = 1/2 - beta. If the
       RootSSQ interval misses ``[1/2 - beta_hi - tol, 1/2 - beta_lo + tol]`` the weights follow
       neither model: **neither**.
    2. Regularity from the Increment slope with gamma = beta-hat (-1 smooth, about 0 rough):
       interval below -1/2: smooth, so **smooth-ode** (classical neural ODE if the beta interval
       contains 0, else the linear "alternative" ODE with alpha + beta = 1); interval
       straddling -1/2: undetermined, **neither**.
    3. Rough: **diffusive-sde** if the RootSSQ interval meets ``[-tol, tol]`` (beta = 1/2,
       non-zero quadratic variation); otherwise **neither** (the sum of squares blows up
       for beta < 1/2, or the noise vanishes for beta > 1/2).
    """
    for name in ("MaxNorm", "Increment", "RootSSQ"):
        if name not in slopes:
            raise ValueError(f"classify_regime needs the {name} slope; got {sorted(slopes)}")
    mx, inc, ssq = slopes["MaxNorm"], slopes["Increment"], slopes["RootSSQ"]
    beta, b_lo, b_hi = -mx.slope, -mx.hi, -mx.lo
    row = lambda f, rule: (f.statistic, f.slope, f.lo, f.hi, rule)
    d_beta = row(mx, f"beta-hat = {beta:.2f} [{b_lo:.2f}, {b_hi:.2f}]")
    a, b = 0.5 - b_hi - tolerance, 0.5 - b_lo + tolerance
    if not _overlaps(ssq.lo, ssq.hi, a, b):
        d = row(ssq, f"outside 1/2 - beta +- {tolerance} = [{a:.2f}, {b:.2f}]")
        return Regime("neither", beta, (d_beta, d),
                      "RootSSQ does not scale like 1/2 - beta: the weights fit neither a smooth "
                      "profile nor rough noise of one size")
    if inc.hi < -0.5:
        smooth = row(inc, "below -1/2: smooth in the layer index")
        kind = ("the classical neural ODE (beta ~ 0)" if b_lo <= 0 <= b_hi else
                "the linear 'alternative' ODE dH = sigma'(0)(A H + b) dt (alpha + beta = 1)")
        return Regime("smooth-ode", beta, (d_beta, smooth, row(ssq, "= 1/2 - beta")),
                      f"smooth weights of size L^(-beta), beta-hat = {beta:.2f}: limit {kind}")
    if inc.lo <= -0.5:
        return Regime("neither", beta, (d_beta, row(inc, "straddles -1/2: undetermined")),
                      "the Increment interval straddles -1/2: regularity cannot be decided "
                      "from these depths")
    rough = row(inc, "above -1/2: rough (increments of the weights' own size)")
    if _overlaps(ssq.lo, ssq.hi, -tolerance, tolerance):
        return Regime("diffusive-sde", beta, (d_beta, rough, row(ssq, f"within +-{tolerance} "
                                                                       "of 0: beta = 1/2")),
                      "rough weights of size L^-1/2 with non-vanishing quadratic variation: "
                      "Ito SDE limit")
    why = ("sum of squares grows (beta < 1/2): no limit" if ssq.lo > tolerance else
           "quadratic variation vanishes (beta > 1/2): the noise disappears in the limit")
    return Regime("neither", beta, (d_beta, rough, row(ssq, f"outside +-{tolerance}")),
                  f"rough weights, but {why}")


def check_weight_stacks(weights: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Validate ``{L: (n_seeds, L, ...)}``: L layers each (axis 1; wrap a single stack as
    ``stack[None]``), one per-layer shape across depths, at least 3 depths with a finite
    stack (non-finite stacks, i.e. failed cells, are skipped by the analysis). Returns float64
    arrays."""
    if len(weights) < 3:
        raise ValueError(f"a scaling regression needs at least 3 depths, got {len(weights)}")
    out, shapes = {}, {}
    for L, w in sorted(weights.items()):
        w = np.asarray(w, dtype=np.float64)
        if w.ndim < 3 or w.shape[1] != L or w.shape[0] < 1:
            raise ValueError(f"the weight stack for depth {L} must have shape (seeds, {L}, ...) "
                             f"with at least one per-layer axis, got {w.shape}")
        out[int(L)] = w
        shapes[int(L)] = w.shape[2:]
    if len(set(shapes.values())) != 1:
        raise ValueError(f"weight stacks have inconsistent per-layer shapes: {shapes}")
    usable = [L for L, w in out.items()
              if any(np.all(np.isfinite(stack)) for stack in w)]
    if len(usable) < 3:
        raise ValueError(f"a scaling regression needs at least 3 depths with a finite weight "
                         f"stack (failed cells are NaN), got {usable}")
    return out


@dataclasses.dataclass(frozen=True)
class ScalingAnalysis:
    """Statistics (``values``: statistic x depth x seed), slopes and the regime."""

    values: xr.Dataset
    slopes: dict[str, SlopeFit]
    regime: Regime

    def table(self) -> str:
        lines = ["| statistic | slope | CI | rounded |", "|---|---|---|---|"]
        for f in self.slopes.values():
            lines.append(f"| {f.statistic} | {f.slope:+.3f} | [{f.lo:+.3f}, {f.hi:+.3f}] | "
                         f"{f.rounded:.1f} |")
        return "\n".join(lines)


def analyze_weights(weights: Mapping[int, np.ndarray], *, gamma: float | None = None,
                    norm: str = "frobenius", input_shape: tuple[int, int] | None = None,
                    detrended_min_depth: int = 200, level: float = 0.95, n_boot: int = 2000,
                    seed: int = 0, tolerance: float = 0.15) -> ScalingAnalysis:
    """Statistics, log-log slopes with intervals and the regime verdict of a depth sweep.

    Args:
        weights: ``{L: (n_seeds, L, ...)}`` weight stacks (effective weights where the spec
            says so); NaN stacks (failed cells) are skipped.
        gamma: Increment exponent; ``None`` uses beta-hat (-slope of MaxNorm).
        detrended_min_depth: DetrendedCumSum is regressed on depths >= this only (200 in the
            spec); left out when fewer than 3 such depths exist.
    """
    stacks = check_weight_stacks(weights)
    depths = sorted(stacks)
    n_seeds = max(w.shape[0] for w in stacks.values())
    table = np.full((len(STATISTICS), len(depths), n_seeds), np.nan)
    for j, L in enumerate(depths):
        for s, A in enumerate(stacks[L]):
            if np.all(np.isfinite(A)):
                st = sequence_statistics(A, 0.0, norm=norm, input_shape=input_shape)
                table[:, j, s] = [st[name] for name in STATISTICS]
    fits = {}
    idx = {name: i for i, name in enumerate(STATISTICS)}
    fit = lambda name, d, v: fit_slope(d, v, statistic=name, level=level, n_boot=n_boot,
                                       seed=seed)
    fits["MaxNorm"] = fit("MaxNorm", depths, table[idx["MaxNorm"]])
    g = -fits["MaxNorm"].slope if gamma is None else float(gamma)
    table[idx["Increment"]] = table[idx["MaxIncrement"]] * np.asarray(depths, float)[:, None] ** g
    for name in STATISTICS[1:]:
        if name == "DetrendedCumSum":
            big = [j for j, L in enumerate(depths) if L >= detrended_min_depth]
            if len(big) >= 3:
                fits[name] = fit(name, [depths[j] for j in big], table[idx[name]][big])
            continue
        fits[name] = fit(name, depths, table[idx[name]])
    values = xr.Dataset(
        {"value": (("statistic", "depth", "seed"), table)},
        coords={"statistic": list(STATISTICS), "depth": depths, "seed": np.arange(n_seeds)},
        attrs={"gamma": g, "norm": norm, "level": level},
    )
    return ScalingAnalysis(values, fits, classify_regime(fits, tolerance=tolerance))


def synthetic_weights(seed: int, depths: Sequence[int], kind: str, *, beta: float = 0.0,
                      hurst: float = 0.5, n_seeds: int = 20, shape: tuple[int, ...] = (3, 3)
                      ) -> dict[int, np.ndarray]:
    """Weight sequences of known exponent and regularity, ``{L: (n_seeds, L, *shape)}``:

    * ``smooth``: ``A_k = L^{-beta} A-bar(k/L)``, ``A-bar(t) = sum_{j=1}^{3} C_j cos(pi j t +
      phi_j)`` with Gaussian C_j and uniform phases drawn per seed, the same profile at every
      depth (Lipschitz, non-constant);
    * ``iid``: ``A_k = L^{-beta} Z_k``, Z_k i.i.d. standard Gaussian (Brownian increments);
    * ``fgn``: ``A_k = L^{-beta} G_k``, G fractional Gaussian noise of Hurst ``hurst``.
    """
    from deeplimits.spec.trainable import fgn

    rng = np.random.default_rng(seed)
    coeffs = rng.standard_normal((n_seeds, 3, *shape))
    phases = rng.uniform(0, 2 * np.pi, (n_seeds, 3))
    out = {}
    for L in depths:
        t = np.arange(L) / L
        stacks = []
        for s in range(n_seeds):
            if kind == "smooth":
                prof = np.cos(np.pi * np.arange(1, 4)[None, :] * t[:, None] + phases[s])
                A = np.tensordot(prof, coeffs[s], axes=1)  # (L, *shape)
            elif kind == "iid":
                A = rng.standard_normal((L, *shape))
            elif kind == "fgn":
                A = fgn(rng, L, hurst, shape)
            else:
                raise ValueError(f"kind must be 'smooth', 'iid' or 'fgn', got {kind!r}")
            stacks.append(L ** (-beta) * A)
        out[int(L)] = np.stack(stacks)
    return out

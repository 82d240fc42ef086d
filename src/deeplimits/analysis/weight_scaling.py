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
PartialSumRMS           ``(L^{-1} sum_{k=1}^{L} |W_k|^2)^{1/2}``, ``W_k = sum_{j<k} A_j``
======================  ====================================================================

:func:`fit_slope` regresses the log statistic on ``log L`` (OLS on the per-depth mean over
seeds) and reports the t-interval and a bootstrap interval over seeds; the interval used
(``lo``, ``hi``) is their hull *(choice)*: the bootstrap captures seed-to-seed variation,
the t-interval the lack of fit of a pure power law (finite-L log factors).
:func:`classify_regime` turns the slopes of the per-cell ratios of :data:`DERIVED` into a
verdict (smooth ODE / diffusive SDE / neither / inconclusive) by containment of each interval
in a band (:func:`regime_bands`), and states the statistics that decided it and the limit the
measured exponents imply (``trained_scaling.md`` §6-7).
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
    "synthetic_weights", "DERIVED", "Band", "regime_bands", "default_resolution",
    "gaussian_max_slope", "partial_sum_rms", "SYNTHETIC_KINDS"
]

STATISTICS = ("MaxNorm", "RootSSQ", "MeanSq", "QV", "H1", "MaxIncrement", "Increment", "CumSum",
              "DetrendedCumSum", "PartialSumRMS")


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


def partial_sum_rms(A) -> float:
    """``(L^{-1} sum_{k=1}^{L} |W_k|^2)^{1/2}``, ``W_k = sum_{j<k} A_j`` (Frobenius): the RMS
    of the partial-sum path. For i.i.d. layers of size s it is ``s ((L+1)/2)^{1/2}`` in mean
    square exactly, for fractional noise of Hurst H it grows like ``s L^H``, for a smooth
    profile like ``s L``."""
    A = _stack(A)
    W = np.cumsum(A.reshape(A.shape[0], -1), axis=0)
    return float(np.sqrt((W**2).sum(axis=1).mean()))


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
        "PartialSumRMS": partial_sum_rms(A),
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
              level: float = 0.95, n_boot: int = 2000, seed: int = 0,
              paired: bool = False) -> SlopeFit:
    """Log-log regression of ``values`` (n_depths, n_seeds) (or (n_depths,)) on depth.

    Non-finite or non-positive entries (failed cells) are dropped; a depth with no valid
    seed is dropped. At least 3 depths must remain.

    The bootstrap resamples seeds independently at each depth (cells trained separately
    per depth), or, with ``paired``, whole seeds across all depths (one random instance
    seen at every depth, e.g. one weight profile or one path): then the seed-to-seed spread
    of the level, shared by all depths, does not enter the slope's interval.
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
        if paired:
            pick = rng.integers(0, logv.shape[1], (n_boot, logv.shape[1]))
            with np.errstate(all="ignore"):
                boot[:] = np.nanmean(logv[:, pick], axis=2).T
        else:
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


# -- the regime verdict -------------------------------------------------------------------------

#: Statistics formed per (depth, seed) cell from those of :data:`STATISTICS` and used by the
#: verdict; each is a ratio, so one bootstrap over seeds covers numerator and denominator.
DERIVED = ("Peak", "Roughness", "Hurst", "BranchSize")

REGIMES = ("smooth-ode", "diffusive-sde", "neither", "inconclusive")


def gaussian_max_slope(depths: Sequence[int]) -> float:
    r"""Log-log OLS slope over ``depths`` of ``E max_{k<L} |Z_k|`` for i.i.d. standard
    Gaussian Z (computed by quadrature): the finite-L slope that the maximum of L rough
    (Gaussian) layers adds to a statistic. Scalar entries are the worst case: the maximum of
    Frobenius norms of p Gaussian entries, normalised by their RMS, grows more slowly."""
    from scipy import special

    x = np.linspace(0.0, 12.0, 24001)
    cdf = special.erf(x / math.sqrt(2.0))  # P(|Z| <= x)
    Ls = np.asarray(sorted({int(L) for L in depths}), np.float64)
    if Ls.size < 2:
        return 0.0
    emax = np.array([np.trapezoid(1.0 - cdf**L, x) for L in Ls])
    return float(_ols_slope(np.log(Ls), np.log(emax)))


@dataclasses.dataclass(frozen=True)
class Band:
    """An interval of slopes a verdict accepts: ``target - resolution - below`` to
    ``target + resolution + above`` (``below``/``above``: derived finite-L biases)."""

    statistic: str
    target: float
    lo: float
    hi: float
    derivation: str

    def position(self, fit: SlopeFit) -> str:
        """``"in"`` (interval contained in the band), ``"out"`` (disjoint from it) or
        ``"undecided"`` (it straddles an edge: too wide, or too close, to decide)."""
        if self.lo <= fit.lo and fit.hi <= self.hi:
            return "in"
        if fit.hi < self.lo or fit.lo > self.hi:
            return "out"
        return "undecided"


def default_resolution(depths: Sequence[int]) -> float:
    """``log 2 / log(L_max / L_min)``: the exponent change that moves a statistic by a factor
    of 2 across the depth range, the smallest difference of exponents these depths resolve.
    (10-2000: 0.13; 3-850: 0.12; 8-64: 0.33.)"""
    lo, hi = min(depths), max(depths)
    if hi <= lo:
        raise ValueError(f"the depth grid must span more than one depth, got {sorted(depths)}")
    return math.log(2.0) / math.log(hi / lo)


def regime_bands(depths: Sequence[int], resolution: float | None = None) -> dict[str, Band]:
    """The bands of :func:`classify_regime` for a depth grid (``resolution`` default
    :func:`default_resolution`; ``b`` = :func:`gaussian_max_slope`, the slope the maximum of
    L Gaussian layers adds, 0 for smooth profiles):

    ==================  =================================  ===================================
    band                slope interval                     meaning
    ==================  =================================  ===================================
    ``one-size``        Peak in [-r, b + r]                max / RMS layer: no layer dominates
    ``smooth``          Roughness <= -1 + r                increments O(1/L) x the layers' size
    ``rough``           Roughness in [-r, b + r]           increments of the layers' own size
    ``branch-1``        BranchSize in [-1 - r, -1 + r]     branch weights ~ L^-1 (alpha+beta=1)
    ``branch-1/2``      BranchSize in [-1/2 - r, -1/2 + r]  ~ L^-1/2: QV of the partial sums O(1)
    ``brownian``        Hurst in [1/2 - r, 1/2 + r]        partial sums with Brownian scaling
    ==================  =================================  ===================================
    """
    depths = sorted({int(L) for L in depths})
    r = default_resolution(depths) if resolution is None else float(resolution)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"resolution must be a finite number > 0, got {resolution!r}")
    b = gaussian_max_slope(depths)
    res = f"resolution r = {r:.3f}" + (" (log 2 / log(L_max/L_min))" if resolution is None
                                      else " (given)")
    ev = f"b = {b:.3f} (slope of E max of L Gaussian |Z| over {depths[0]}-{depths[-1]})"

    def band(stat, target, below=0.0, above=0.0, why=""):
        return Band(stat, target, target - r - below, target + r + above,
                    f"{stat} slope {target:+g} {why}+- r; {res}" + (f"; {ev}" if above else ""))

    return {"one-size": band("Peak", 0.0, above=b, why="(+ b) "),
            # one-sided: increments o(1/L) (slope below -1) are smoother still
            "smooth": dataclasses.replace(band("Roughness", -1.0), lo=-math.inf),
            "rough": band("Roughness", 0.0, above=b, why="(+ b) "),
            "branch-1": band("BranchSize", -1.0),
            "branch-1/2": band("BranchSize", -0.5),
            "brownian": band("Hurst", 0.5)}


@dataclasses.dataclass(frozen=True)
class Regime:
    """The verdict of :func:`classify_regime`.

    Attributes:
        regime: one of :data:`REGIMES`.
        limit: the limit the measured exponents imply, in words.
        beta: beta-hat, -slope of MeanSq (the RMS layer size; MaxNorm's slope carries the
            sqrt(log L) factor of a maximum and is reported, not used).
        branch_exponent: -slope of BranchSize, alpha-hat + beta-hat (the size exponent of
            the residual branch ``|delta| A``; equals beta-hat when no delta is given).
        hurst: the Hurst estimate of the partial sums (slope of Hurst).
        deciding: ``(statistic, slope, lo, hi, band_lo, band_hi, outcome)`` for every band
            test made, in order; ``outcome`` is ``in``, ``out`` or ``undecided``.
        reason: why, with the measured numbers.
    """

    regime: str
    limit: str
    beta: float
    branch_exponent: float
    hurst: float
    deciding: tuple[tuple[str, float, float, float, float, float, str], ...]
    reason: str

    def __str__(self) -> str:
        rows = "\n".join(f"  {name}: slope {s:+.3f} [{lo:+.3f}, {hi:+.3f}] vs band "
                         f"[{a:+.3f}, {b:+.3f}]: {out}"
                         for name, s, lo, hi, a, b, out in self.deciding)
        return (f"regime: {self.regime} (beta-hat {self.beta:.2f}, alpha + beta "
                f"{self.branch_exponent:.2f}, Hurst {self.hurst:.2f}): {self.reason}\n"
                f"  limit: {self.limit}\n{rows}")


def classify_regime(slopes: Mapping[str, SlopeFit], bands: Mapping[str, Band], *,
                    degenerate: Mapping[str, str] | None = None) -> Regime:
    """Smooth ODE / diffusive SDE / neither / inconclusive from slope intervals, accepting a
    property only when the slope's interval lies *inside* its band (:func:`regime_bands`),
    rejecting it only when the interval misses the band; anything else is undecided.

    In order (the first rule that settles the verdict wins):

    1. ``one-size`` (Peak): out -> **neither** (a few layers carry the weights: neither a
       smooth profile nor Brownian noise; heavy tails or isolated large layers).
    2. Regularity (Roughness): in ``smooth`` -> smooth; in ``rough`` -> rough; in both (a
       depth range too short for the bands to separate) or undecided -> **inconclusive**;
       out of both -> **neither**.
    3. Smooth: ``branch-1`` in -> **smooth-ode**, the linear ODE ``dH = sigma'(0)(A H + b)
       dt`` if beta > 0 is resolved, the classical neural ODE if beta = 0 is; above it
       (alpha + beta > 1) -> **neither**, trivial limit ``H = x``; below -> **neither**,
       blow-up.
    4. Rough: ``branch-1/2`` (size L^-1/2, equivalently a quadratic variation of the partial
       sums converging to a non-zero limit) and ``brownian`` (Hurst of the partial sums 1/2)
       both in -> **diffusive-sde**; either out -> **neither**, naming which; else
       **inconclusive**.

    A statistic listed in ``degenerate`` (numerically zero, so no slope) is not used: zero
    increments count as smooth; any other degenerate deciding statistic -> inconclusive.
    """
    degenerate = dict(degenerate or {})
    for name in DERIVED + ("MeanSq",):
        if name not in slopes and name not in degenerate:
            raise ValueError(f"classify_regime needs the {name} slope; got {sorted(slopes)}")
    nan = float("nan")
    get = lambda name: -slopes[name].slope if name in slopes else nan
    beta, branch = get("MeanSq"), get("BranchSize")
    hurst = slopes["Hurst"].slope if "Hurst" in slopes else nan
    rows: list = []

    def test(key: str) -> str:
        band = bands[key]
        f = slopes[band.statistic]
        out = band.position(f)
        rows.append((f"{band.statistic} ({key})", f.slope, f.lo, f.hi, band.lo, band.hi, out))
        return out

    def verdict(regime: str, limit: str, reason: str) -> Regime:
        return Regime(regime, limit, beta, branch, hurst, tuple(rows), reason)

    for name in ("Peak", "BranchSize", "MeanSq"):
        if name in degenerate:
            return verdict("inconclusive", "undetermined",
                           f"{name} is degenerate ({degenerate[name]}): the weights vanish")
    peak = test("one-size")
    if peak == "out":
        return verdict("neither", "none (no smooth or Brownian limit)",
                       f"the largest layer over the RMS layer grows like L^"
                       f"{slopes['Peak'].slope:.2f}: a few layers carry the weights (isolated "
                       "large layers or heavy tails), which neither a smooth profile nor "
                       "Brownian noise allows")
    if "Roughness" in degenerate:
        smooth, rough = "in", "out"
        rows.append(("Roughness", 0.0, 0.0, 0.0, nan, nan,
                     f"degenerate ({degenerate['Roughness']}): increments vanish, smooth"))
    else:
        smooth, rough = test("smooth"), test("rough")
    if peak == "undecided":
        return verdict("inconclusive", "undetermined",
                       "the Peak interval straddles its band: whether one size holds across "
                       "layers is undecided at these depths")
    r = slopes["Roughness"].slope if "Roughness" in slopes else nan
    if smooth == "in" and rough == "in":
        return verdict("inconclusive", "undetermined",
                       "the Roughness interval lies in both the smooth and the rough band: the "
                       "depth range is too short to tell them apart (resolution "
                       f"{bands['smooth'].hi + 1.0:.2f})")
    if smooth == "in":
        f = slopes["BranchSize"]
        pos = test("branch-1")
        ab = f"alpha + beta = {branch:.2f} [{-f.hi:.2f}, {-f.lo:.2f}]"
        if pos == "in":
            mx = slopes["MeanSq"]
            b_lo, b_hi = -mx.hi, -mx.lo
            res = bands["branch-1"].hi - (-1.0)  # the resolution r
            if b_hi <= res:
                kind = ("the classical neural ODE dH/dt = sigma(A-bar_t H_t + b-bar_t) "
                        f"(beta-hat {beta:.2f} [{b_lo:.2f}, {b_hi:.2f}] resolves beta = 0)")
            elif b_lo > res:
                kind = ("the linear ODE dH/dt = sigma'(0)(A-bar_t H_t + b-bar_t), which sees "
                        f"only sigma'(0) (beta-hat {beta:.2f} [{b_lo:.2f}, {b_hi:.2f}] > 0)")
            else:
                kind = (f"an ODE: classical (beta = 0) or linear (beta > 0) is not resolved by "
                        f"beta-hat {beta:.2f} [{b_lo:.2f}, {b_hi:.2f}]")
            return verdict("smooth-ode", kind,
                           f"weights smooth in k/L (Roughness slope {r:+.2f}) with {ab}, "
                           f"consistent with alpha + beta = 1 (band [{-bands['branch-1'].hi:.2f},"
                           f" {-bands['branch-1'].lo:.2f}])")
        if pos == "out" and f.hi < bands["branch-1"].lo:  # -slope above: alpha + beta > 1
            return verdict("neither", "trivial: H_t = x (the residual branches vanish)",
                           f"smooth weights, but {ab} > 1: every branch is o(1/L)")
        if pos == "out":
            return verdict("neither", "none (generic blow-up)",
                           f"smooth weights, but {ab} < 1: the branches sum to a divergent "
                           "drift")
        return verdict("inconclusive", "undetermined",
                       f"smooth weights, but the interval of {ab} straddles its band")
    if rough == "in":
        size, brown = test("branch-1/2"), test("brownian")
        if size == "in" and brown == "in":
            return verdict("diffusive-sde", "an Ito SDE (hypothesis 2; trained_scaling.md §7)",
                           f"rough weights (Roughness slope {r:+.2f}) of size L^-{branch:.2f} "
                           f"whose partial sums have Brownian scaling (Hurst {hurst:.2f}) and a "
                           "non-zero quadratic variation")
        why = []
        f = slopes["BranchSize"]
        if size == "out":
            why.append(f"branch size L^-{branch:.2f}: the quadratic variation of the partial "
                       + ("sums vanishes (the noise disappears; any limit is that of the "
                          "trend, not tested here)" if f.hi < -0.5 else "sums diverges"))
        if brown == "out":
            why.append(f"the partial sums have Hurst {hurst:.2f}, not 1/2: they scale like "
                       f"L^({hurst:.2f} - 1/2) relative to Brownian, "
                       + ("vanishing" if hurst < 0.5 else "diverging"))
        if why:
            return verdict("neither", "none", "rough weights, but " + "; ".join(why))
        return verdict("inconclusive", "undetermined",
                       "rough weights, but the size or Hurst interval straddles its band")
    if smooth == "out" and rough == "out":
        return verdict("neither", "none",
                       f"the Roughness slope {r:+.2f} is neither -1 (smooth) nor about 0 "
                       "(rough): no regularity of either limit")
    return verdict("inconclusive", "undetermined",
                   "the Roughness interval straddles a band: regularity undecided")


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
    """Statistics (``values``: statistic x depth x seed, :data:`STATISTICS` then
    :data:`DERIVED`), slopes, the bands, the regime, and the statistics that degenerated
    (``degenerate``: name -> why; no slope, or a slope from the cells left)."""

    values: xr.Dataset
    slopes: dict[str, SlopeFit]
    regime: Regime
    bands: dict[str, Band] = dataclasses.field(default_factory=dict)
    degenerate: dict[str, str] = dataclasses.field(default_factory=dict)

    def table(self) -> str:
        lines = ["| statistic | slope | CI | rounded |", "|---|---|---|---|"]
        for f in self.slopes.values():
            lines.append(f"| {f.statistic} | {f.slope:+.3f} | [{f.lo:+.3f}, {f.hi:+.3f}] | "
                         f"{f.rounded:.1f} |")
        for name, why in self.degenerate.items():
            lines.append(f"| {name} | degenerate: {why} | | |")
        return "\n".join(lines)


def _check_branch_scale(branch_scale, stacks) -> dict[int, np.ndarray] | None:
    if branch_scale is None:
        return None
    out = {}
    for L, w in stacks.items():
        if L not in branch_scale:
            raise ValueError(f"branch_scale has no entry for depth {L}")
        d = np.abs(np.asarray(branch_scale[L], np.float64)).reshape(-1)
        if d.size != w.shape[0] or not np.all(np.isfinite(d) & (d > 0)):
            raise ValueError(f"branch_scale[{L}] must hold {w.shape[0]} finite |delta| > 0 "
                             f"(one per seed), got {np.asarray(branch_scale[L]).shape}")
        out[L] = d
    return out


def analyze_weights(weights: Mapping[int, np.ndarray], *, gamma: float | None = None,
                    norm: str = "frobenius", input_shape: tuple[int, int] | None = None,
                    detrended_min_depth: int = 200, level: float = 0.95, n_boot: int = 2000,
                    seed: int = 0, resolution: float | None = None,
                    branch_scale: Mapping[int, np.ndarray] | None = None) -> ScalingAnalysis:
    """Statistics, log-log slopes with intervals and the regime verdict of a depth sweep.

    Args:
        weights: ``{L: (n_seeds, L, ...)}`` weight stacks (effective weights where the spec
            says so); NaN stacks (failed cells) are skipped.
        gamma: Increment exponent; ``None`` uses beta-hat (-slope of MaxNorm).
        detrended_min_depth: DetrendedCumSum is regressed on depths >= this only (200 in the
            spec); left out when fewer than 3 such depths exist.
        resolution: half-width of the verdict's bands (:func:`regime_bands`); ``None``:
            ``log 2 / log(L_max / L_min)``.
        branch_scale: ``{L: (n_seeds,)}`` the shared ``|delta|`` of each cell: the branch is
            ``|delta| A`` and BranchSize's slope is -(alpha + beta). ``None``: the weights are
            the whole branch (alpha = 0; effective weights).

    The derived statistics, per cell: Peak = MaxNorm / MeanSq, Roughness = MaxIncrement /
    MeanSq (the Increment with gamma = beta), Hurst = PartialSumRMS / MeanSq (slope H: the
    RMS partial sum of L terms of RMS size s is s L^H), BranchSize = |delta| MeanSq. A value
    below 1e-9 x sum_k |A_k| (zero up to rounding, e.g. CumSum of a zero-mean profile) is
    degenerate: left out, and the statistic is listed in ``degenerate``.
    """
    stacks = check_weight_stacks(weights)
    scales = _check_branch_scale(branch_scale, stacks)
    depths = sorted(stacks)
    n_seeds = max(w.shape[0] for w in stacks.values())
    names = STATISTICS + DERIVED
    idx = {name: i for i, name in enumerate(names)}
    table = np.full((len(names), len(depths), n_seeds), np.nan)
    zero = np.zeros((len(names), len(depths), n_seeds), bool)
    for j, L in enumerate(depths):
        for s, A in enumerate(stacks[L]):
            if not np.all(np.isfinite(A)):
                continue
            st = sequence_statistics(A, 0.0, norm=norm, input_shape=input_shape)
            scale = float(layer_norms(A, norm="frobenius").sum())
            rms = st["MeanSq"]
            st["Peak"] = st["MaxNorm"] / rms if rms > 0 else 0.0
            st["Roughness"] = st["MaxIncrement"] / rms if rms > 0 else 0.0
            st["Hurst"] = st["PartialSumRMS"] / rms if rms > 0 else 0.0
            st["BranchSize"] = rms * (1.0 if scales is None else scales[L][s])
            for name in names:
                v = st[name]
                if rms <= 0 or v <= 1e-9 * scale:
                    zero[idx[name], j, s] = True
                    v = 0.0
                table[idx[name], j, s] = v
    fits: dict[str, SlopeFit] = {}
    degenerate: dict[str, str] = {}
    fit = lambda name, d, v: fit_slope(d, v, statistic=name, level=level, n_boot=n_boot,
                                       seed=seed)

    def fit_or_flag(name, d, v, z):
        if z.any():
            degenerate[name] = (f"zero up to rounding in {int(z.sum())} of "
                                f"{int(np.isfinite(v).sum())} cells")
        try:
            fits[name] = fit(name, d, v)
        except ValueError:
            degenerate[name] = degenerate.get(name, "fewer than 3 depths with a value") + \
                ": no slope"

    fit_or_flag("MaxNorm", depths, table[idx["MaxNorm"]], zero[idx["MaxNorm"]])
    g = (-fits["MaxNorm"].slope if "MaxNorm" in fits else 0.0) if gamma is None else float(gamma)
    table[idx["Increment"]] = table[idx["MaxIncrement"]] * np.asarray(depths, float)[:, None] ** g
    for name in names:
        if name == "MaxNorm":
            continue
        if name == "DetrendedCumSum":
            big = [j for j, L in enumerate(depths) if L >= detrended_min_depth]
            if len(big) >= 3:
                fit_or_flag(name, [depths[j] for j in big], table[idx[name]][big],
                            zero[idx[name]][big])
            continue
        fit_or_flag(name, depths, table[idx[name]], zero[idx[name]])
    values = xr.Dataset(
        {"value": (("statistic", "depth", "seed"), table)},
        coords={"statistic": list(names), "depth": depths, "seed": np.arange(n_seeds)},
        attrs={"gamma": g, "norm": norm, "level": level},
    )
    bands = regime_bands(depths, resolution)
    return ScalingAnalysis(values, fits, classify_regime(fits, bands, degenerate=degenerate),
                           bands, degenerate)


SYNTHETIC_KINDS = ("smooth", "iid", "fgn", "trend+noise", "spikes", "heavy", "mixed")


def synthetic_weights(seed: int, depths: Sequence[int], kind: str, *, beta: float = 0.0,
                      hurst: float = 0.5, n_seeds: int = 20, shape: tuple[int, ...] = (3, 3)
                      ) -> dict[int, np.ndarray]:
    """Weight sequences of known exponent and regularity, ``{L: (n_seeds, L, *shape)}``:

    * ``smooth``: ``A_k = L^{-beta} A-bar(k/L)``, ``A-bar(t) = sum_{j=1}^{3} C_j cos(pi j t +
      phi_j)`` with Gaussian C_j and uniform phases drawn per seed, the same profile at every
      depth (Lipschitz, non-constant);
    * ``iid``: ``A_k = L^{-beta} Z_k``, Z_k i.i.d. standard Gaussian (Brownian increments);
    * ``fgn``: ``A_k = L^{-beta} G_k``, G fractional Gaussian noise of Hurst ``hurst``;
    * ``trend+noise``: ``A_k = L^{-1} A-bar(k/L) + L^{-beta} Z_k`` (a drift plus noise: the
      partial sums tend to ``int A-bar + W`` at beta = 1/2);
    * ``spikes``: three layers (at k/L = 0.1, 0.5, 0.9) of size O(1) over an i.i.d.
      ``L^{-beta}`` background (the convolutional "neither" picture: MaxNorm, RootSSQ and
      Increment slopes all about 0 at beta = 1/2);
    * ``heavy``: ``A_k = L^{-beta} T_k``, T_k i.i.d. Student-t with 1.5 degrees of freedom
      (infinite variance; at beta = 2/3 the partial sums tend to a 1.5-stable Levy process,
      with jumps);
    * ``mixed``: i.i.d. Gaussian layers alternating between sizes ``L^{-beta + 1/4}`` and
      ``L^{-beta - 1/4}`` (geometric mean ``L^{-beta}``; the larger half sets the size).
    """
    from deeplimits.spec.trainable import fgn

    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind must be one of {SYNTHETIC_KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    coeffs = rng.standard_normal((n_seeds, 3, *shape))
    phases = rng.uniform(0, 2 * np.pi, (n_seeds, 3))
    out = {}
    for L in depths:
        t = np.arange(L) / L
        stacks = []
        for s in range(n_seeds):
            prof = np.cos(np.pi * np.arange(1, 4)[None, :] * t[:, None] + phases[s])
            trend = np.tensordot(prof, coeffs[s], axes=1)  # (L, *shape)
            if kind == "smooth":
                A = L ** (-beta) * trend
            elif kind == "iid":
                A = L ** (-beta) * rng.standard_normal((L, *shape))
            elif kind == "fgn":
                A = L ** (-beta) * fgn(rng, L, hurst, shape)
            elif kind == "trend+noise":
                A = trend / L + L ** (-beta) * rng.standard_normal((L, *shape))
            elif kind == "spikes":
                A = L ** (-beta) * rng.standard_normal((L, *shape))
                for u in (0.1, 0.5, 0.9):
                    A[int(u * L)] = rng.standard_normal(shape)
            elif kind == "heavy":
                A = L ** (-beta) * rng.standard_t(1.5, (L, *shape))
            else:  # mixed
                size = np.where(np.arange(L) % 2 == 0, L ** (-beta + 0.25), L ** (-beta - 0.25))
                A = size.reshape((L,) + (1,) * len(shape)) * rng.standard_normal((L, *shape))
            stacks.append(A)
        out[int(L)] = np.stack(stacks)
    return out

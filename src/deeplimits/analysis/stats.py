"""Statistics for comparing sampled laws with each other and with closed forms.

Every function takes NumPy-compatible arrays, works in float64, and returns small frozen
dataclasses that carry the sample size, so that verdicts can state their power.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import stats as _st

__all__ = [
    "TestResult", "Estimate", "Slope", "ks_1samp", "ks_2samp", "wasserstein1", "mean_ci",
    "moments", "binomial_test", "bonferroni", "loglog_slope", "ks_detectable_shift"
]

@dataclasses.dataclass(frozen=True)
class TestResult:
    """A hypothesis test: its statistic, p-value and sample size(s)."""

    name: str
    statistic: float
    pvalue: float
    n: int
    m: int | None = None

    def rejected(self, alpha: float) -> bool:
        return self.pvalue < alpha


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and a two-sided confidence interval."""

    value: float
    stderr: float
    lo: float
    hi: float
    level: float
    n: int

    def contains(self, target: float) -> bool:
        return self.lo <= target <= self.hi


@dataclasses.dataclass(frozen=True)
class Slope:
    """An ordinary least-squares slope of ``log y`` on ``log x``."""

    slope: float
    stderr: float
    intercept: float
    lo: float
    hi: float
    level: float
    n: int


def _flat(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("statistics need at least one observation")
    if not np.all(np.isfinite(a)):
        raise ValueError("statistics need finite observations (found NaN or infinity)")
    return a


def ks_2samp(x, y) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test of equal laws."""
    a, b = _flat(x), _flat(y)
    r = _st.ks_2samp(a, b)
    return TestResult("ks_2samp", float(r.statistic), float(r.pvalue), a.size, b.size)


def ks_1samp(x, cdf: Callable | _st.rv_continuous) -> TestResult:
    """One-sample Kolmogorov-Smirnov test against a closed-form CDF (callable or scipy law)."""
    a = _flat(x)
    f = cdf.cdf if hasattr(cdf, "cdf") else cdf
    r = _st.ks_1samp(a, lambda t: np.asarray(f(t), dtype=np.float64))
    return TestResult("ks_1samp", float(r.statistic), float(r.pvalue), a.size)


def ks_detectable_shift(n: int, m: int | None = None, alpha: float = 0.01) -> float:
    """The KS critical distance: the smallest sup-distance between CDFs that the test
    rejects at level ``alpha`` (asymptotic), a statement of its power."""
    eff = n if m is None else n * m / (n + m)
    return float(np.sqrt(-0.5 * np.log(alpha / 2) / eff))


def wasserstein1(x, y) -> float:
    """Wasserstein-1 distance between two empirical laws on the line."""
    return float(_st.wasserstein_distance(_flat(x), _flat(y)))


def mean_ci(x, level: float = 0.99) -> Estimate:
    """Sample mean with its standard error and a normal-approximation interval."""
    a = _flat(x)
    se = float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("inf")
    z = _st.norm.ppf(0.5 + level / 2)
    m = float(a.mean())
    return Estimate(m, se, m - z * se, m + z * se, level, a.size)


def moments(x, level: float = 0.99) -> dict[str, Estimate]:
    """Mean, variance and excess kurtosis with delta-method standard errors."""
    a = _flat(x)
    n = a.size
    z = _st.norm.ppf(0.5 + level / 2)
    c = a - a.mean()
    m2, m4 = np.mean(c**2), np.mean(c**4)
    m6, m8 = np.mean(c**6), np.mean(c**8)
    var_se = np.sqrt(max(m4 - m2**2, 0.0) / n)
    kurt = m4 / m2**2 - 3
    # delta method for m4 / m2^2 with the joint variance of (m2, m4)
    g = np.array([-2 * m4 / m2**3, 1 / m2**2])
    cov = np.array([[m4 - m2**2, m6 - m2 * m4], [m6 - m2 * m4, m8 - m4**2]]) / n
    kurt_se = float(np.sqrt(max(g @ cov @ g, 0.0)))
    out = {"mean": mean_ci(a, level)}
    for name, value, se in (("variance", m2, var_se), ("excess_kurtosis", kurt, kurt_se)):
        out[name] = Estimate(float(value), float(se), value - z * se, value + z * se, level, n)
    return out


def bonferroni(pvalues) -> float:
    """Bonferroni-adjusted smallest p-value of a family of tests (capped at 1): the family
    is rejected at level alpha when this is below alpha."""
    p = _flat(pvalues)
    return float(min(1.0, p.min() * p.size))


def binomial_test(successes: int, trials: int, p: float) -> TestResult:
    """Exact two-sided binomial test of a success probability."""
    r = _st.binomtest(int(successes), int(trials), p)
    return TestResult("binomial", successes / trials, float(r.pvalue), int(trials))


def loglog_slope(x, y, level: float = 0.95) -> Slope:
    """OLS slope of ``log y`` against ``log x`` with a t-interval (at least 3 points)."""
    fx, fy = _flat(x), _flat(y)
    if np.any(fx <= 0) or np.any(fy <= 0):
        raise ValueError("a log-log slope needs positive x and y")
    lx, ly = np.log(fx), np.log(fy)
    if lx.size != ly.size or lx.size < 3:
        raise ValueError("a slope needs at least 3 (x, y) pairs of equal length")
    r = _st.linregress(lx, ly)
    t = _st.t.ppf(0.5 + level / 2, lx.size - 2)
    return Slope(float(r.slope), float(r.stderr), float(r.intercept),
                 float(r.slope - t * r.stderr), float(r.slope + t * r.stderr), level, lx.size)

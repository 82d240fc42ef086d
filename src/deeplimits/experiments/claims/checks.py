"""Decisions with stated power, shared by the claim modules.

* :func:`law_gap` and :func:`equivalence`: two one-sided tests (TOST) that two samples have
  the same law up to a stated margin in the standardised mean, the log-variance and
  (optionally) the excess kurtosis. The check passes when every upper confidence bound
  ``|estimate| + z_{1-alpha/k} se`` lies below its margin (Bonferroni over the ``k``
  components), so a pass is evidence of closeness, not a failure to reject.
* :func:`rate_margins`: the margins of such a test where a convergence rate predicts the
  gap (the predicted gap plus the standard errors that give 99% power at it).
* :func:`ks_equivalence`: a distribution-free equivalence test (KS distance plus the DKW
  bounds below a margin), for laws too heavy-tailed for moment TOSTs; with a scipy
  distribution as ``y`` it is the one-sample version (one DKW bound).
* :func:`ks_family`: several KS equivalences that must all hold (intersection-union: each
  at level ``alpha``, so the family's conclusion has level ``alpha`` with no multiplicity
  correction), the decision of the claims that check one law in several settings.
* :func:`ks_power`: the smallest sup-distance between CDFs that a KS test at level
  ``alpha`` rejects with probability ``power`` (critical distance plus the
  Dvoretzky-Kiefer-Wolfowitz bound on the empirical CDFs' own error).
* :func:`width_extrapolation`: the ``n -> infinity`` limit of a Monte Carlo mean whose bias
  is ``O(1/n)`` (weighted fit ``mean(n) = a + b / n``, intercept ``a`` with its standard
  error), for comparing finite networks with a wide limit beyond their finite-width bias.
* :func:`perturbed_spread`: a reference sample whose fluctuations about its mean are
  scaled by ``factor``: the law of a twin whose diffusion coefficient is off by that
  factor (exact for a Gaussian law), used as a negative control that shares the samples.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as st

from deeplimits.experiments.claims._base import Detectable, detectable_shift

__all__ = ["LawGap", "law_gap", "equivalence", "rate_margins", "variance_detectable", "ks_power",
           "ks_detectable", "dkw_epsilon", "ks_equivalence", "ks_family", "perturbed_spread",
           "weighted_rate", "Extrapolation", "width_extrapolation"]

ALPHA = 0.01


@dataclasses.dataclass(frozen=True)
class LawGap:
    """Estimated differences between the laws of ``x`` and ``y`` with standard errors:
    ``(mean_x - mean_y) / sd_y``, ``log(var_x / var_y)`` and the excess-kurtosis gap."""

    mean: float
    mean_se: float
    log_var: float
    log_var_se: float
    kurtosis: float
    kurtosis_se: float


def _moments(a: np.ndarray):
    c = a - a.mean()
    m2, m4 = np.mean(c**2), np.mean(c**4)
    m6, m8 = np.mean(c**6), np.mean(c**8)
    n = a.size
    # delta method: Var(log m2) = (m4 / m2^2 - 1) / n; excess kurtosis m4 / m2^2 - 3
    lv_var = (m4 / m2**2 - 1) / n
    g = np.array([-2 * m4 / m2**3, 1 / m2**2])
    cov = np.array([[m4 - m2**2, m6 - m2 * m4], [m6 - m2 * m4, m8 - m4**2]]) / n
    return a.mean(), m2, lv_var, m4 / m2**2 - 3, max(float(g @ cov @ g), 0.0)


def law_gap(x, y) -> LawGap:
    """The :class:`LawGap` of two independent samples (delta-method standard errors)."""
    a, b = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if a.size < 10 or b.size < 10 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("law_gap needs at least 10 finite observations in each sample")
    ma, va, lva, ka, kva = _moments(a)
    mb, vb, lvb, kb, kvb = _moments(b)
    sd = math.sqrt(vb)
    return LawGap(float((ma - mb) / sd), float(math.sqrt(va / a.size + vb / b.size) / sd),
                  float(math.log(va / vb)), float(math.sqrt(lva + lvb)),
                  float(ka - kb), float(math.sqrt(kva + kvb)))


def equivalence(gap: LawGap, *, mean: float, log_var: float, kurtosis: float | None = None,
                alpha: float = ALPHA) -> tuple[bool, float, str]:
    """TOST of ``gap`` against the margins: ``(passed, worst bound / margin, text)``.

    ``worst bound / margin`` is the largest ratio of an upper confidence bound to its
    margin (below 1: equivalent).
    """
    parts = [("mean/sd", gap.mean, gap.mean_se, mean),
             ("log var", gap.log_var, gap.log_var_se, log_var)]
    if kurtosis is not None:
        parts.append(("kurtosis", gap.kurtosis, gap.kurtosis_se, kurtosis))
    z = st.norm.isf(alpha / len(parts))
    ratios = [(abs(e) + z * s) / m for _, e, s, m in parts]
    text = ", ".join(f"{name} {e:+.4f} (SE {s:.4f}, bound {abs(e) + z * s:.4f} vs margin {m})"
                     for name, e, s, m in parts)
    return bool(max(ratios) < 1), float(max(ratios)), text


def rate_margins(first: LawGap, last: LawGap, factor: float, *, tests: int = 2,
                 alpha: float = ALPHA, beta: float = 0.01) -> dict[str, float]:
    """Margins of :func:`equivalence` for a gap that a convergence rate predicts.

    ``first`` is a gap measured where the discretisation effect is large, and ``factor``
    the ratio, by the theory's rate, of the effect at the compared setting to that one
    (e.g. ``L_0 / L`` for weak order 1). Each component's margin is the predicted gap
    ``|first| * factor`` plus ``(z_{1-alpha/tests} + z_{1-beta/(2 tests)})`` standard errors
    of ``last``: with ``tests`` components in all (the Bonferroni of the equivalence tests),
    a gap no larger than predicted passes with probability ``>= 1 - beta``, and a gap larger
    than the margin fails with probability ``>= 1 - alpha`` (the detectable effect).
    """
    if not (factor >= 0 and math.isfinite(factor)):
        raise ValueError(f"factor must be finite and >= 0, got {factor}")
    z = float(st.norm.isf(alpha / tests) + st.norm.isf(beta / (2 * tests)))
    return {"mean": float(abs(first.mean) * factor + z * last.mean_se),
            "log_var": float(abs(first.log_var) * factor + z * last.log_var_se)}


def variance_detectable(gap: LawGap, margin: float, components: int = 2,
                        alpha: float = ALPHA) -> Detectable:
    """The relative variance error the log-variance part of :func:`equivalence` rejects
    at 99% power."""
    d = detectable_shift(gap.log_var_se, margin=margin, alpha=alpha / components)
    return Detectable(math.expm1(d), "error in the variance")


def ks_power(n: int, m: int | None = None, *, alpha: float = ALPHA,
             power: float = 0.99) -> float:
    """Sup-distance between CDFs that a KS test at level ``alpha`` rejects with
    probability at least ``power``: the critical distance plus the DKW bounds on the
    empirical CDFs' own error (``sqrt(log(2k/beta) / (2 n))`` per sample, ``k`` samples)."""
    if n < 1 or (m is not None and m < 1):
        raise ValueError("sample sizes must be >= 1")
    eff = n if m is None else n * m / (n + m)
    crit = math.sqrt(-0.5 * math.log(alpha / 2) / eff)
    beta = 1 - power
    if m is None:
        return crit + math.sqrt(math.log(2 / beta) / (2 * n))
    return crit + sum(math.sqrt(math.log(4 / beta) / (2 * k)) for k in (n, m))


def ks_detectable(n: int, m: int | None = None, tests: int = 1) -> Detectable:
    """:class:`Detectable` of a (Bonferroni over ``tests``) KS check."""
    return Detectable(ks_power(n, m, alpha=ALPHA / tests), "sup-distance between CDFs",
                      relative=False)


def dkw_epsilon(n: int, alpha: float) -> float:
    """``sqrt(log(2/alpha) / (2n))``: with probability ``>= 1 - alpha`` the empirical CDF of
    ``n`` samples is within this of the true CDF everywhere (Dvoretzky-Kiefer-Wolfowitz,
    Massart's constant)."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def ks_equivalence(x, y, margin: float, alpha: float = ALPHA) -> tuple[bool, float, str]:
    """Distribution-free equivalence test of two laws: the sup-distance between their CDFs
    is below ``margin`` when its upper confidence bound is.

    * two samples ``x``, ``y``: bound ``D_hat + eps_n + eps_m`` (DKW at ``alpha / 2`` per
      sample);
    * ``y`` a distribution with a ``cdf`` (scipy frozen law): one sample, bound
      ``D_hat + eps_n`` (DKW at ``alpha``).

    The bound holds with probability ``>= 1 - alpha``, so the test rejects a true distance
    ``>= margin`` with probability ``>= 1 - alpha`` (the detectable effect is the margin).
    Returns ``(passed, bound / margin, text)``.
    """
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    a = np.asarray(x, np.float64).ravel()
    if hasattr(y, "cdf"):
        d = float(st.ks_1samp(a, y.cdf).statistic)
        bound = d + dkw_epsilon(a.size, alpha)
        sizes = f"{a.size} samples vs the law"
    else:
        b = np.asarray(y, np.float64).ravel()
        d = float(st.ks_2samp(a, b).statistic)
        bound = d + dkw_epsilon(a.size, alpha / 2) + dkw_epsilon(b.size, alpha / 2)
        sizes = f"{a.size} vs {b.size} samples"
    text = (f"KS distance {d:.4f}, DKW upper bound {bound:.4f} vs margin {margin} "
            f"({sizes})")
    return bool(bound < margin), bound / margin, text


def ks_family(cases, margin: float, alpha: float = ALPHA) -> tuple[bool, float, list[float]]:
    """:func:`ks_equivalence` of every ``(x, y)`` in ``cases``; passes when all pass.

    An intersection-union test: the family's conclusion "every distance is below the
    margin" is wrong with probability ``<= alpha`` when each test has level ``alpha``, so no
    multiplicity correction is needed (Berger 1982). Returns ``(passed, worst bound /
    margin, bound / margin per case)``.
    """
    ratios = [ks_equivalence(x, y, margin, alpha)[1] for x, y in cases]
    return bool(max(ratios) < 1), float(max(ratios)), ratios


def weighted_rate(sizes, errors, line: bool = False):
    """Weighted least-squares slope of ``log mean(e)`` on ``log n`` and its standard error,
    for a rate of convergence in a size ``n`` (width, depth, channels); ``errors`` has one row
    of independent per-sample errors per size (NaN-padded), ``Var(log mean) = SE^2/mean^2``
    (delta method). With ``line`` also the intercept: ``(slope, se, intercept)``."""
    widths = sizes
    x = np.log(np.asarray(widths, dtype=float))
    m = np.nanmean(errors, 1)
    cnt = np.sum(np.isfinite(errors), 1)
    var = np.nanvar(errors, 1, ddof=1) / cnt / m**2
    y, w = np.log(m), 1 / var
    xb = np.sum(w * x) / w.sum()
    yb = np.sum(w * y) / w.sum()
    slope = np.sum(w * (x - xb) * (y - yb)) / np.sum(w * (x - xb) ** 2)
    se = 1 / math.sqrt(np.sum(w * (x - xb) ** 2))
    if line:
        return float(slope), float(se), float(yb - slope * xb)
    return float(slope), float(se)


def perturbed_spread(y, factor: float) -> np.ndarray:
    """``mean(y) + factor (y - mean(y))``: the reference law with its fluctuations scaled by
    ``factor`` (a diffusion coefficient off by ``factor`` for a Gaussian law)."""
    a = np.asarray(y, np.float64)
    return a.mean() + factor * (a - a.mean())


@dataclasses.dataclass(frozen=True)
class Extrapolation:
    """``mean(n) = intercept + coefficient / n`` fitted by weighted least squares; every field
    has the shape of one mean (entrywise fits), the standard errors come from the means'
    standard errors (known variances: no residual rescaling)."""

    intercept: np.ndarray
    intercept_se: np.ndarray
    coefficient: np.ndarray
    coefficient_se: np.ndarray


def width_extrapolation(sizes, means, stderrs) -> Extrapolation:
    """Extrapolate Monte Carlo means with an ``O(1/n)`` bias to ``n = infinity``.

    A finite network's kernel has expectation ``K + b / n + O(n^-2)`` at width (or channel
    count) ``n``; with independent means ``m_i`` (``(sizes, ...)``) of standard errors
    ``s_i`` the weighted least-squares fit of ``m_i = a + b / n_i`` (weights ``1 / s_i^2``)
    gives ``a`` with ``Var(a) = [(X^T W X)^{-1}]_{00}``, ``X = [1, 1/n_i]``. Two sizes make
    the fit exact (Richardson: ``a = (n_2 m_2 - n_1 m_1) / (n_2 - n_1)``); more sizes also
    average. Entrywise over the trailing axes of ``means``.
    """
    n = np.asarray(sizes, dtype=float)
    m = np.asarray(means, dtype=float)
    s = np.asarray(stderrs, dtype=float)
    if n.ndim != 1 or n.size < 2 or m.shape[0] != n.size or s.shape != m.shape:
        raise ValueError("width_extrapolation needs >= 2 sizes and one mean and standard "
                         "error per size")
    if np.unique(n).size != n.size or np.any(n <= 0):
        raise ValueError("sizes must be distinct and > 0")
    u = (1 / n).reshape((-1,) + (1,) * (m.ndim - 1))
    w = 1 / s**2
    # normal equations of [1, u] entrywise: [[S0, S1], [S1, S2]] (a, b) = (T0, T1)
    S0, S1, S2 = w.sum(0), (w * u).sum(0), (w * u * u).sum(0)
    T0, T1 = (w * m).sum(0), (w * u * m).sum(0)
    det = S0 * S2 - S1**2
    return Extrapolation(intercept=(S2 * T0 - S1 * T1) / det, intercept_se=np.sqrt(S2 / det),
                         coefficient=(S0 * T1 - S1 * T0) / det,
                         coefficient_se=np.sqrt(S0 / det))

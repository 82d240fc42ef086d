"""Statistics helpers: KS tests, slopes, confidence intervals, moments, binomial test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from deeplimits import stats


def test_ks_1samp_null_not_rejected_and_shift_rejected():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    null = stats.ks_1samp(x, st.norm.cdf)  # a callable CDF
    assert null.n == 5000 and not null.rejected(0.001)
    assert stats.ks_1samp(x, st.norm()).pvalue == pytest.approx(null.pvalue)  # a scipy law
    # shift 0.15: sup |F - G| = Phi(0.075) - Phi(-0.075) = 0.060, while the 1% critical
    # distance at n = 5000 is ks_detectable_shift = 0.023: must be rejected.
    shifted = stats.ks_1samp(x, st.norm(loc=0.15))
    assert stats.ks_detectable_shift(5000) < 0.03
    assert shifted.rejected(1e-6)
    assert shifted.statistic == pytest.approx(0.060, abs=0.023)


def test_ks_pvalues_are_uniform_under_the_null():
    # 400 replicates of n = 100 under H0; their p-values must themselves pass a KS test
    # against U(0, 1) (level 1e-3), and the 5% rejection rate must pass a binomial test.
    rng = np.random.default_rng(1)
    p1 = np.array([stats.ks_1samp(rng.standard_normal(100), st.norm.cdf).pvalue
                   for _ in range(400)])
    p2 = np.array([stats.ks_2samp(rng.standard_normal(100), rng.standard_normal(80)).pvalue
                   for _ in range(400)])
    assert not stats.ks_1samp(p1, st.uniform.cdf).rejected(1e-3)
    assert not stats.binomial_test(int(np.sum(p1 < 0.05)), 400, 0.05).rejected(1e-3)
    # the two-sample exact p-values are discrete; check the rejection rate only
    assert not stats.binomial_test(int(np.sum(p2 < 0.05)), 400, 0.05).rejected(1e-3)


def test_ks_2samp_detects_different_laws():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(10_000), rng.standard_normal(8000)
    same = stats.ks_2samp(a, b)
    assert (same.n, same.m) == (10_000, 8000) and not same.rejected(0.001)
    # same mean and variance, different law: U(-sqrt 3, sqrt 3) has sup |F - Phi| = 0.056,
    # more than twice the 1% critical distance 0.024 at these sizes
    c = rng.uniform(-math.sqrt(3), math.sqrt(3), 8000)
    assert stats.ks_detectable_shift(10_000, 8000, alpha=0.01) < 0.025
    assert stats.ks_2samp(a, c).rejected(1e-4)


def test_ks_detectable_shift_matches_kolmogorov_distribution():
    # the one-term asymptotic sqrt(-log(alpha/2)/2) against the exact Kolmogorov quantile
    for alpha in (0.01, 0.05):
        exact = st.kstwobign.isf(alpha)
        assert stats.ks_detectable_shift(10_000, alpha=alpha) * 100 == pytest.approx(exact,
                                                                                       rel=1e-3)
    assert stats.ks_detectable_shift(100, 100) == pytest.approx(
        stats.ks_detectable_shift(50), rel=1e-12)  # effective size nm/(n+m) = 50


def test_wasserstein1_of_shifted_samples():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20_000)
    assert stats.wasserstein1(x, x + 0.5) == pytest.approx(0.5, rel=1e-12)
    # two independent N(0,1) samples: W1 = O(n^{-1/2})
    assert stats.wasserstein1(x, rng.standard_normal(20_000)) < 0.05


def test_loglog_slope_recovers_exact_power_law():
    x = np.array([10, 20, 40, 80, 160, 320.0])
    fit = stats.loglog_slope(x, 3.0 * x**-1.5)
    assert fit.slope == pytest.approx(-1.5, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(3.0), abs=1e-12)
    assert fit.stderr < 1e-12 and fit.n == 6
    assert fit.hi - fit.lo < 1e-10 and fit.level == 0.95


def test_loglog_slope_interval_coverage():
    # y = x^-1 exp(0.1 eps): Gaussian errors in log space, so the 90% t-interval is exact;
    # 400 replicates, coverage count ~ Binomial(400, 0.9) (sd 6), checked by a binomial test.
    rng = np.random.default_rng(4)
    x = np.geomspace(1, 100, 8)
    covered = 0
    for _ in range(400):
        fit = stats.loglog_slope(x, x**-1.0 * np.exp(0.1 * rng.standard_normal(8)), level=0.9)
        covered += fit.lo <= -1.0 <= fit.hi
    assert not stats.binomial_test(covered, 400, 0.9).rejected(1e-3)


def test_mean_ci_coverage_and_width():
    # n = 200 normal draws, level 0.9: the z-interval with the sample sd covers with
    # probability ~0.899; 1000 replicates, binomial test at 1e-3.
    rng = np.random.default_rng(5)
    data = rng.normal(2.0, 3.0, size=(1000, 200))
    cis = [stats.mean_ci(row, level=0.9) for row in data]
    covered = sum(ci.contains(2.0) for ci in cis)
    assert not stats.binomial_test(covered, 1000, 0.9).rejected(1e-3)
    ci = cis[0]
    assert ci.n == 200 and ci.level == 0.9
    assert ci.stderr == pytest.approx(data[0].std(ddof=1) / math.sqrt(200), rel=1e-12)
    assert ci.hi - ci.lo == pytest.approx(2 * st.norm.ppf(0.95) * ci.stderr, rel=1e-12)


def test_moments_kurtosis_gaussian_and_laplace():
    # n = 1e5: se(excess kurtosis) = sqrt(24/n) = 0.015 for a Gaussian and ~0.2 for a
    # Laplace (it involves E x^8); the 99% intervals must contain 0 and 3 respectively and
    # exclude the other value.
    rng = np.random.default_rng(6)
    g = stats.moments(rng.normal(1.0, 2.0, 100_000))
    lap = stats.moments(rng.laplace(0.0, 1.0, 100_000))
    assert g["excess_kurtosis"].contains(0.0) and not g["excess_kurtosis"].contains(3.0)
    assert g["excess_kurtosis"].stderr == pytest.approx(math.sqrt(24 / 100_000), rel=0.1)
    assert g["variance"].contains(4.0) and g["mean"].contains(1.0)
    assert g["variance"].stderr == pytest.approx(4.0 * math.sqrt(2 / 100_000), rel=0.05)
    assert lap["excess_kurtosis"].contains(3.0) and not lap["excess_kurtosis"].contains(0.0)
    assert lap["variance"].contains(2.0)


def test_moments_kurtosis_stderr_matches_replicates():
    # the delta-method se of the excess kurtosis against its spread over 300 replicates of
    # n = 2000 (the sd of an sd estimate from 300 draws is ~4%; tolerance 15%)
    rng = np.random.default_rng(7)
    data = rng.standard_normal((300, 2000))
    est = np.array([stats.moments(row)["excess_kurtosis"].value for row in data])
    se = np.mean([stats.moments(row)["excess_kurtosis"].stderr for row in data[:20]])
    assert est.std(ddof=1) == pytest.approx(se, rel=0.15)


def test_binomial_test():
    r = stats.binomial_test(50, 100, 0.5)
    assert r.pvalue == pytest.approx(1.0) and r.statistic == 0.5 and r.n == 100
    assert not r.rejected(0.05)
    far = stats.binomial_test(80, 100, 0.5)
    assert far.rejected(1e-6) and far.statistic == 0.8
    # exact two-sided p-value for 0 successes in 10 at p = 0.5: 2 * 0.5^10
    assert stats.binomial_test(0, 10, 0.5).pvalue == pytest.approx(2 * 0.5**10)


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.ks_1samp([0.1, np.nan, 0.3], st.norm.cdf),
        lambda: stats.ks_2samp([0.1, 0.2], [np.inf, 0.0]),
        lambda: stats.mean_ci([1.0, np.nan]),
        lambda: stats.moments([np.nan] * 5),
        lambda: stats.wasserstein1([], [1.0]),
        lambda: stats.loglog_slope([1.0, 2.0, np.nan], [1.0, 2.0, 3.0]),
        lambda: stats.loglog_slope([1.0, 2.0], [1.0, 2.0]),  # too few points
        lambda: stats.loglog_slope([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]),  # unequal
    ],
)
def test_bad_observations_raise(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_loglog_slope_rejects_non_positive_values():
    with pytest.raises(ValueError):
        stats.loglog_slope([1.0, 2.0, 0.0, 4.0], [1.0, 2.0, 3.0, 4.0])

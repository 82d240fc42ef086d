"""Closed-form laws (forward.md §6) against simulation and against each other."""

import math

import jax
import numpy as np
import pytest
from scipy import integrate
from scipy import stats as st

import deeplimits as dl
from deeplimits import closed_forms, stats


def test_log_norm_law_parameters():
    """Width-scaled, sigma_w = 1: N((1/2 - 1/n) t, t / n)."""
    for n in (1, 2, 5):
        law = closed_forms.log_norm_law(dl.ResNet(width=n, depth=5, activation="identity"), 2.0)
        assert law.mean() == pytest.approx((0.5 - 1 / n) * 2.0)
        assert law.var() == pytest.approx(2.0 / n)


def test_geometric_brownian_motion_case():
    """n = 1, phi = id, M = mu: log(X_T / x) ~ N((mu - s_w^2 / 2) T, s_w^2 T) (forward.md
    §6.1); KS on 20k exact samples at L = 1000."""
    net = dl.ResNet(width=1, depth=1000, activation="identity", sigma_w=0.8, M=np.array([[0.3]]))
    law = closed_forms.log_norm_law(net)
    assert law.mean() == pytest.approx(0.3 - 0.32)
    X = np.asarray(dl.sample(net, np.array([1.5]), jax.random.key(1), samples=20_000))
    assert stats.ks_1samp(np.log(X[:, 0, 0] / 1.5), law).pvalue > 0.01


def test_form_b_with_p2_zero_uses_p1():
    """Form B with erf: c = p1 s_w with p1 = 2 / sqrt(pi)."""
    net = dl.ResNet(width=4, depth=5, form="B", activation="erf")
    assert closed_forms.norm_volatility(net) == pytest.approx(2 / math.sqrt(math.pi) * 0.5)


@pytest.mark.parametrize("kwargs", [
    dict(activation="tanh"), dict(activation="identity", sigma_b=0.1),
    dict(activation="relu"), dict(form="B", activation="swish"),
])
def test_log_norm_law_refuses_other_settings(kwargs):
    with pytest.raises(ValueError):
        closed_forms.log_norm_law(dl.ResNet(width=3, depth=5, **kwargs))


def test_gaussian_lognormal_mixture_moments_and_normalisation():
    law = closed_forms.GaussianLogNormal(scale=1.3, mu=0.2, s=0.5)

    def moment(k):
        return integrate.quad(lambda y: y**k * float(law.pdf(y)), -np.inf, np.inf,
                              limit=400, epsabs=1e-12)[0]

    assert moment(0) == pytest.approx(1.0, abs=1e-8)
    assert moment(2) == pytest.approx(law.var(), rel=1e-6)
    assert moment(4) / law.var() ** 2 - 3 == pytest.approx(law.excess_kurtosis(), rel=1e-4)
    # and the CDF agrees with Monte Carlo draws of S Z exp(G) (KS on 50k draws)
    rng = np.random.default_rng(0)
    draws = 1.3 * rng.standard_normal(50_000) * np.exp(0.2 + 0.5 * rng.standard_normal(50_000))
    assert stats.ks_1samp(draws, law.cdf).pvalue > 0.01
    assert law.cdf(0.0) == pytest.approx(0.5)
    # a degenerate log-normal (s -> 0) is the Gaussian
    g = closed_forms.GaussianLogNormal(scale=1.0, mu=0.0, s=1e-9)
    np.testing.assert_allclose(g.cdf([-1.0, 0.3]), st.norm.cdf([-1.0, 0.3]), atol=1e-9)


def test_discrete_law_tends_to_the_limit():
    """The exact discrete log-norm law at L = 1000 matches the limit (KS on 20k draws: it
    detects CDF gaps of ~0.012, the O(1/L) bias is ~1e-3) and at L = 2 it does not (its
    mean is visibly lower for n = 2)."""
    key = jax.random.key(2)
    big = dl.ResNet(width=2, depth=1000, activation="identity")
    assert stats.ks_1samp(closed_forms.discrete_log_norm(big, key, 20_000),
                          closed_forms.log_norm_law(big)).pvalue > 0.01
    small = big.replace(depth=2)
    assert stats.ks_1samp(closed_forms.discrete_log_norm(small, key, 20_000),
                          closed_forms.log_norm_law(small)).pvalue < 1e-6

"""Activations: derivatives at 0, autodiff derivatives, and Gaussian dual expectations.

References: forward.md §4.3 (the (p1, p2) table) and kernels.md §3 (dual activations).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

import deeplimits as dl
from deeplimits.spec.activations import Activation, activation_names, get_activation

CLOSED = ("relu", "abs", "identity", "erf")


def _psd_matrices(seed: int, count: int):
    """Random 2 x 2 PSD matrices G G^T with standard normal G (fixed seed)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        g = rng.standard_normal((2, 2))
        k = g @ g.T
        out.append((k[0, 0], k[1, 1], k[0, 1]))
    return out


def _quad(f, nodes):
    """Activation._quadrature compiled once (eager dispatch of each op is slower)."""
    return jax.jit(lambda k11, k22, k12: Activation._quadrature(f, k11, k22, k12, nodes))


def _grid_of_covariances(seed: int, vmax: float, count: int = 24):
    rng = np.random.default_rng(seed)
    k11 = rng.uniform(0.1, vmax, count)
    k22 = rng.uniform(0.1, vmax, count)
    rho = np.concatenate([rng.uniform(-1, 1, count - 4), [-1.0, 1.0, 0.0, 0.999]])
    return k11, k22, rho * np.sqrt(k11 * k22)


# --------------------------------------------------------------------------------------
# phi(0), p1 = phi'(0), p2 = phi''(0): the table of forward.md §4.3
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "p1", "p2"),
    [
        ("tanh", 1.0, 0.0),
        ("erf", 2 / math.sqrt(math.pi), 0.0),
        ("swish", 0.5, 0.5),
        ("gelu", 0.5, math.sqrt(2 / math.pi)),
        ("softplus_shifted", 0.5, 0.25),
        ("sin", 1.0, 0.0),
        ("identity", 1.0, 0.0),
    ],
)
def test_p1_p2_phi0_table(name, p1, p2):
    act = get_activation(name)
    assert isinstance(act.p1, float) and isinstance(act.p2, float)
    assert act.phi0 == pytest.approx(0.0, abs=1e-15)
    assert act.p1 == pytest.approx(p1, rel=1e-12, abs=1e-15)
    assert act.p2 == pytest.approx(p2, rel=1e-12, abs=1e-15)


def test_user_callable_gets_autodiff_derivatives_at_zero():
    # arctan: (1, 0) per the table; exp: phi(0) = p1 = p2 = 1
    at = get_activation(jnp.arctan)
    assert (at.phi0, at.p1, at.p2) == pytest.approx((0.0, 1.0, 0.0), abs=1e-14)
    ex = get_activation(jnp.exp)
    assert (ex.phi0, ex.p1, ex.p2) == pytest.approx((1.0, 1.0, 1.0), rel=1e-14)


# --------------------------------------------------------------------------------------
# derivatives against central finite differences
# --------------------------------------------------------------------------------------
# Points avoid 0, where relu / abs / leaky_relu have their kink.
_X = np.linspace(-2.95, 3.05, 13)


@pytest.mark.parametrize("name", ["relu", "abs", "identity", "tanh", "erf", "gelu", "swish",
                                  "softplus_shifted", "sin", "leaky_relu"])
def test_derivatives_match_central_differences(name):
    act = get_activation(name)
    # float64, h = 1e-6: truncation h^2 |phi'''| / 6 ~ 1e-13, rounding ~ eps |phi| / h ~ 1e-9
    h = 1e-6
    x = jnp.asarray(np.stack([_X - h, _X, _X + h]))
    f, d1, d2 = (np.asarray(a) for a in
                 jax.jit(lambda z: (act(z), act.deriv(z), act.second_deriv(z)))(x))
    np.testing.assert_allclose(d1[1], (f[2] - f[0]) / (2 * h), rtol=0, atol=1e-8)
    np.testing.assert_allclose(d2[1], (d1[2] - d1[0]) / (2 * h), rtol=0, atol=1e-8)


def test_derivatives_of_user_callable_are_exact():
    act = get_activation(jnp.cos)
    x = jnp.asarray(_X)
    np.testing.assert_allclose(np.asarray(act.deriv(x)), -np.sin(_X), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np.asarray(act.second_deriv(x)), -np.cos(_X), rtol=1e-14,
                               atol=1e-15)


# --------------------------------------------------------------------------------------
# closed-form duals against quadrature
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["identity", "erf"])
def test_smooth_closed_forms_match_quadrature(name):
    # The 64-node product Gauss-Hermite rule converges geometrically for these entire
    # functions while the variances are O(1): measured errors are <1e-12 for k <= 1,
    # 2e-8 (V) and 6e-7 (V') at k = 2 and rho -> 1, 3e-5 / 1e-3 at k = 4 (erf(sqrt(k) z)
    # steepens). So the 1e-8 comparison is made for variances in [0.1, 1.2].
    act = get_activation(name)
    m = _grid_of_covariances(0, 1.2)
    for closed, f in ((act.dual, act.fn), (act.dual_deriv, act.deriv)):
        c = np.asarray(closed(*m))
        q = np.asarray(_quad(f, 64)(*m))
        np.testing.assert_allclose(q, c, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("name", ["relu", "abs"])
def test_kinked_closed_forms_match_quadrature(name):
    # For a kink, Gauss-Hermite converges only algebraically: measured max errors over
    # k in [0.1, 4] are |dV| ~ c1 sqrt(k11 k22) / N (c1 = 0.13 relu, 0.53 abs) and
    # |dV'| ~ c2 / sqrt(N) (the V' integrand is a step; c2 = 0.22 relu, 0.87 abs).
    # Relative error of V is meaningless where V -> 0 (relu at rho = -1), so V is compared
    # in units of sqrt(k11 k22). Tolerances: 1/N for V, 1.2/sqrt(N) for V' at N = 64, and the
    # error must shrink at the predicted rate when N doubles (x 1/2 for V, x 0.71 for V').
    act = get_activation(name)
    m = _grid_of_covariances(1, 4.0)
    scale = np.sqrt(m[0] * m[1])
    c, cd = np.asarray(act.dual(*m)), np.asarray(act.dual_deriv(*m))

    def errors(nodes):
        q = np.asarray(_quad(act.fn, nodes)(*m))
        qd = np.asarray(_quad(act.deriv, nodes)(*m))
        return np.max(np.abs(q - c) / scale), np.max(np.abs(qd - cd))

    e64, ed64 = errors(64)
    e128, ed128 = errors(128)
    assert e64 < 1 / 64
    assert ed64 < 1.2 / 8
    assert e128 < 0.6 * e64  # ~1/N: ratio 1/2
    assert ed128 < 0.8 * ed64  # ~1/sqrt(N): ratio 0.71


@pytest.mark.parametrize("name", CLOSED)
def test_closed_forms_match_monte_carlo(name):
    # 1e6 draws per matrix; |closed - MC| <= 5 standard errors of the MC mean
    # (a two-sided 5-sigma event has probability 6e-7; the seed is fixed).
    act = get_activation(name)
    f = {"relu": lambda u: np.maximum(u, 0), "abs": np.abs, "identity": lambda u: u,
         "erf": special.erf}[name]
    df = {"relu": lambda u: (u > 0).astype(float), "abs": np.sign,
          "identity": np.ones_like,
          "erf": lambda u: 2 / np.sqrt(np.pi) * np.exp(-(u**2))}[name]
    rng = np.random.default_rng(12345)
    n = 10**6
    for k11, k22, k12 in _psd_matrices(7, 3):
        z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
        rho = k12 / math.sqrt(k11 * k22)
        u = math.sqrt(k11) * z1
        v = math.sqrt(k22) * (rho * z1 + math.sqrt(1 - rho**2) * z2)
        for closed, g in ((act.dual, f), (act.dual_deriv, df)):
            prod = g(u) * g(v)
            se = prod.std() / math.sqrt(n)
            value = float(closed(k11, k22, k12))
            if se == 0:  # identity': the product is 1 exactly
                assert value == pytest.approx(prod.mean(), rel=1e-14)
            else:
                assert abs(value - prod.mean()) < 5 * se, (closed.__name__, k11, k22, k12)


@pytest.mark.parametrize("k", [1e-3, 0.5, 1.0, 7.0])
def test_relu_diagonal(k):
    act = get_activation("relu")
    assert float(act.dual(k, k, k)) == pytest.approx(k / 2, rel=1e-14)
    assert float(act.dual_deriv(k, k, k)) == pytest.approx(0.5, rel=1e-14)
    assert float(act.second_moment(k)) == pytest.approx(k / 2, rel=1e-14)


def test_quadrature_duals_of_user_callable_and_sin_are_exact():
    # E cos u cos u' = (e^{-(k11+k22-2k12)/2} + e^{-(k11+k22+2k12)/2}) / 2, and with a minus
    # sign for E sin u sin u'. Entire, slowly varying integrands: 64 nodes give ~1e-15.
    m = _grid_of_covariances(2, 2.0)
    k11, k22, k12 = m
    a = np.exp(-(k11 + k22 - 2 * k12) / 2)
    b = np.exp(-(k11 + k22 + 2 * k12) / 2)
    cos = get_activation(jnp.cos)
    assert cos.closed_dual is None and cos.name == "cos"
    sin = get_activation("sin")
    np.testing.assert_allclose(np.asarray(cos.dual(*m)), (a + b) / 2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(cos.dual_deriv(*m)), (a - b) / 2, rtol=1e-10,
                               atol=1e-14)
    np.testing.assert_allclose(np.asarray(sin.dual(*m)), (a - b) / 2, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.asarray(sin.dual_deriv(*m)), (a + b) / 2, rtol=1e-12)


def test_quadrature_agrees_with_adaptive_integration_for_tanh():
    # independent reference: scipy dblquad on the Gaussian density (tolerance 1e-10)
    act = get_activation("tanh")
    k11, k22, k12 = 0.8, 0.5, -0.3
    cov = np.array([[k11, k12], [k12, k22]])
    inv, det = np.linalg.inv(cov), np.linalg.det(cov)

    def integrand(y, x):
        z = np.array([x, y])
        return np.tanh(x) * np.tanh(y) * np.exp(-0.5 * z @ inv @ z) / (2 * np.pi * np.sqrt(det))

    ref, _ = integrate.dblquad(integrand, -12, 12, -12, 12, epsabs=1e-12, epsrel=1e-10)
    assert float(act.dual(k11, k22, k12)) == pytest.approx(ref, rel=1e-8)


def test_degenerate_variance_gives_phi0_times_mean():
    # k11 = 0: u = 0, so V = phi(0) E phi(u'). exp: phi(0) = 1, E exp(u') = exp(k22 / 2).
    ex = get_activation(jnp.exp)
    for k in (0.3, 1.0, 2.5):
        assert float(ex.dual(0.0, k, 0.0)) == pytest.approx(math.exp(k / 2), rel=1e-12)
        assert float(ex.dual(k, 0.0, 0.0)) == pytest.approx(math.exp(k / 2), rel=1e-12)
    sp = get_activation(lambda x: jnp.log1p(jnp.exp(x)))  # softplus, phi(0) = log 2
    for k in (0.3, 2.0):
        expected = math.log(2) * float(sp.mean(k))
        assert float(sp.dual(0.0, k, 0.0)) == pytest.approx(expected, rel=1e-12)
    # phi(0) = 0 closed forms give exactly 0
    for name in ("relu", "abs", "erf", "identity"):
        assert float(get_activation(name).dual(0.0, 1.7, 0.0)) == 0.0


def test_mean_and_second_moment():
    v = np.array([0.2, 1.0, 3.0])
    ex = get_activation(jnp.exp)
    np.testing.assert_allclose(np.asarray(ex.mean(v)), np.exp(v / 2), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ex.second_moment(v)), np.exp(2 * v), rtol=1e-10)
    cos = get_activation(jnp.cos)
    np.testing.assert_allclose(np.asarray(cos.mean(v)), np.exp(-v / 2), rtol=1e-12)
    ident = get_activation("identity")
    np.testing.assert_allclose(np.asarray(ident.mean(v)), 0.0, atol=1e-15)
    np.testing.assert_allclose(np.asarray(ident.second_moment(v)), v, rtol=1e-14)
    erf = get_activation("erf")
    np.testing.assert_allclose(np.asarray(erf.second_moment(v)),
                               2 / np.pi * np.arcsin(2 * v / (1 + 2 * v)), rtol=1e-14)
    tanh = get_activation("tanh")
    for vi in v[:2]:
        def integrand(z, vi=vi):
            return np.tanh(np.sqrt(vi) * z) ** 2 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)

        ref, _ = integrate.quad(integrand, -14, 14, epsabs=1e-13)
        assert float(tanh.second_moment(vi)) == pytest.approx(ref, rel=1e-8)
        assert float(tanh.second_moment(vi)) == float(tanh.dual(vi, vi, vi))
        assert float(tanh.mean(vi)) == pytest.approx(0.0, abs=1e-15)  # odd function


def test_mean_of_relu_is_accurate():
    relu = get_activation("relu")
    for v in (0.5, 1.0, 4.0):
        assert float(relu.mean(v)) == pytest.approx(math.sqrt(v / (2 * math.pi)), rel=1e-6)


def test_leaky_relu_duals_and_mean_are_exact():
    """Leaky ReLU is a relu(x) - b relu(-x): its dual, derivative dual and mean come from
    the ReLU closed forms, so they match adaptive 2-D/1-D integration to 1e-8."""
    leaky = get_activation("leaky_relu")
    k11, k22, k12 = 1.3, 0.7, -0.4
    cov = np.array([[k11, k12], [k12, k22]])
    L = np.linalg.cholesky(cov)

    def expect(f):
        g = lambda z2, z1: f(L[0, 0] * z1, L[1, 0] * z1 + L[1, 1] * z2) * (
            np.exp(-(z1**2 + z2**2) / 2) / (2 * np.pi))
        return integrate.dblquad(g, -12, 12, -12, 12, epsabs=1e-11)[0]

    f = lambda u: np.where(u > 0, u, 0.1 * u)
    df = lambda u: np.where(u > 0, 1.0, 0.1)
    assert float(leaky.dual(k11, k22, k12)) == pytest.approx(expect(lambda u, v: f(u) * f(v)),
                                                             rel=1e-7)
    # phi' is a step function: E[phi'(u) phi'(u')] is a sum of orthant probabilities,
    # computed by scipy's bivariate normal CDF (quadrature of a discontinuous integrand
    # would only reach ~1e-5)
    del df
    pp = stats.multivariate_normal(mean=[0, 0], cov=cov).cdf([0, 0])  # P(u<0, u'<0)
    pm = stats.multivariate_normal(mean=[0, 0], cov=cov * [[1, -1], [-1, 1]]).cdf([0, 0])
    expected = pp * 1.0 + pp * 0.01 + 2 * pm * 0.1
    assert float(leaky.dual_deriv(k11, k22, k12)) == pytest.approx(expected, rel=1e-7)
    assert float(leaky.mean(2.0)) == pytest.approx(0.9 * math.sqrt(2.0 / (2 * math.pi)),
                                                   rel=1e-12)


# --------------------------------------------------------------------------------------
# properties of every dual (hypothesis)
# --------------------------------------------------------------------------------------
_DUALS = {}


def _duals(name):
    """(V, V') of ``name`` on a batch of covariances, compiled once per activation."""
    if name not in _DUALS:
        act = get_activation(name)
        _DUALS[name] = jax.jit(lambda a, b, c: (act.dual(a, b, c), act.dual_deriv(a, b, c)))
    return _DUALS[name]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(["relu", "abs", "erf", "gelu", "sin"]),
    k11=st.floats(0.05, 2.0),
    k22=st.floats(0.05, 2.0),
    rho=st.floats(-1.0, 1.0),
)
def test_dual_symmetry_and_cauchy_schwarz(name, k11, k22, rho):
    k12 = rho * math.sqrt(k11 * k22)
    # rows: (k11, k22, k12), swapped (k22, k11, k12), diagonals (k11, k11, k11), (k22, ...)
    batch = (np.array([k11, k22, k11, k22]), np.array([k22, k11, k11, k22]),
             np.array([k12, k12, k11, k22]))
    # quadrature is not symmetric by construction; its error is < 1e-11 here (variances <= 2)
    tol = 1e-12 if name in CLOSED else 1e-9
    V, Vd = (np.asarray(a) for a in _duals(name)(*batch))
    for v in (V, Vd):
        scale = math.sqrt(v[2] * v[3])
        assert abs(v[0] - v[1]) <= tol * max(scale, 1.0)
        assert v[0] ** 2 <= v[2] * v[3] * (1 + 1e-9) + 1e-15  # Cauchy-Schwarz
    if name == "relu":
        assert V[0] >= 0.0 and 0.0 <= Vd[0] <= 0.5
    if name == "abs":
        assert V[0] >= 0.0 and -1.0 <= Vd[0] <= 1.0


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------
def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError, match="unknown activation") as err:
        get_activation("softsign_typo")
    for name in ("relu", "tanh", "swish", "softplus_shifted", "identity"):
        assert name in str(err.value)


def test_aliases_case_and_types():
    assert get_activation("linear") is get_activation("identity")
    assert get_activation("ID") is get_activation("identity")
    assert get_activation("ReLU") is get_activation("relu")
    assert get_activation("shifted_softplus") is get_activation("softplus_shifted")
    act = get_activation("tanh")
    assert get_activation(act) is act
    assert "linear" in activation_names() and "relu" in activation_names()
    with pytest.raises(TypeError):
        get_activation(3)
    with pytest.raises(ValueError, match="already registered"):
        dl.register_activation(Activation("relu", jnp.tanh))
    assert get_activation("relu").closed_dual is not None  # unchanged

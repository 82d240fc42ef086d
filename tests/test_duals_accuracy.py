"""Accuracy of the Mehler-series duals V_phi and V_phi' (kernels.md §3) for activations
without closed forms, against references that do not use Hermite expansions:

* a 2-D trapezoid rule in (z1, z2) with u = s1 z1, u' = s2 (rho z1 + sqrt(1 - rho^2) z2)
  (step 0.045 on [-12.6, 12.6]^2; for integrands analytic in a strip it converges
  geometrically, and it is itself checked against scipy's dblquad to 1e-12 below);
* closed forms: erf (a smooth activation run through the general method), sin and cos.

Target: absolute error <= 1e-11 for variances in [0.01, 10] and correlations in [-1, 1]
including the endpoints and the degenerate k11 = 0 (measured: <= 2e-13).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf as jerf
from scipy import integrate, special

from deeplimits.spec.activations import Activation, get_activation

ATOL = 1e-11


def user_fn(x):
    """A user callable with phi(0) = 1 != 0 and branch points at +-i (arctan)."""
    return jnp.arctan(x) + jnp.cos(x)


# NumPy versions of phi and phi' for the references
_NP = {
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2),
    "gelu": (lambda x: x * special.ndtr(x),
             lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "swish": (lambda x: x * special.expit(x),
              lambda x: special.expit(x) * (1 + x * (1 - special.expit(x)))),
    "sin": (np.sin, np.cos),
    "softplus_shifted": (lambda x: np.logaddexp(0, x) - math.log(2), special.expit),
    "user": (lambda x: np.arctan(x) + np.cos(x), lambda x: 1 / (1 + x * x) - np.sin(x)),
}


def _activation(name):
    return get_activation(user_fn if name == "user" else name)


def reference(f, k11, k22, k12, h=0.045, half_width=12.6):
    """E[f(u) f(u')] by a 2-D trapezoid rule (NumPy float64)."""
    z = h * np.arange(-round(half_width / h), round(half_width / h) + 1)
    w = h * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    s1, s2 = math.sqrt(k11), math.sqrt(k22)
    rho = 0.0 if s1 * s2 == 0 else float(np.clip(k12 / (s1 * s2), -1, 1))
    inner = f(s2 * (rho * z[:, None] + math.sqrt(1 - rho * rho) * z[None, :])) @ w
    return float((w * f(s1 * z)) @ inner)


def _covariances(seed, count=14, vmax=10.0):
    """Log-uniform variances in [0.01, vmax], random and extreme correlations, zeros."""
    rng = np.random.default_rng(seed)
    k11 = np.exp(rng.uniform(math.log(0.01), math.log(vmax), count))
    k22 = np.exp(rng.uniform(math.log(0.01), math.log(vmax), count))
    rho = rng.uniform(-1, 1, count)
    extra = [  # (k11, k22, rho)
        (vmax, vmax, 1.0), (vmax, vmax, -1.0), (vmax, 0.7 * vmax, 1.0), (vmax, 3.0, -1.0),
        (vmax, 0.9 * vmax, 0.9999), (0.01, 0.01, 1.0), (2.0, 5.0, 0.0),
        (0.0, vmax, 0.0), (vmax, 0.0, 0.0), (0.0, 1.3, 0.0), (0.0, 0.0, 0.0),
    ]
    k11 = np.concatenate([k11, [e[0] for e in extra]])
    k22 = np.concatenate([k22, [e[1] for e in extra]])
    rho = np.concatenate([rho, [e[2] for e in extra]])
    return k11, k22, rho * np.sqrt(k11 * k22)


def test_reference_agrees_with_dblquad():
    # the hard case of the old 64 x 64 Gauss-Hermite rule (errors 1.2e-6 / 1.2e-5 there)
    k11, k22, k12 = 3.0, 2.5, 1.9
    s1, s2 = math.sqrt(k11), math.sqrt(k22)
    rho = k12 / (s1 * s2)
    c = math.sqrt(1 - rho * rho)
    tanh = get_activation("tanh")
    for f, ours in zip(_NP["tanh"], (tanh.dual, tanh.dual_deriv), strict=True):
        g = lambda y, x, f=f: (f(s1 * x) * f(s2 * (rho * x + c * y))
                               * math.exp(-(x * x + y * y) / 2) / (2 * math.pi))
        quad, _ = integrate.dblquad(g, -13, 13, -13, 13, epsabs=1e-13, epsrel=1e-13)
        assert reference(f, k11, k22, k12) == pytest.approx(quad, abs=1e-12)
        assert float(ours(k11, k22, k12)) == pytest.approx(quad, abs=1e-12)
        # the legacy product Gauss-Hermite rule (nodes=64) is far less accurate here
        assert abs(float(ours(k11, k22, k12, nodes=64)) - quad) > 1e-7


@pytest.mark.parametrize("name", list(_NP))
def test_duals_match_reference(name):
    act = _activation(name)
    k11, k22, k12 = _covariances(sum(map(ord, name)))
    both = jax.jit(lambda a, b, c: (act.dual(a, b, c), act.dual_deriv(a, b, c)))
    V, Vd = (np.asarray(x) for x in both(k11, k22, k12))
    f, df = _NP[name]
    for ours, g in ((V, f), (Vd, df)):
        ref = np.array([reference(g, *m) for m in zip(k11, k22, k12, strict=True)])
        err = np.abs(ours - ref)
        assert err.max() < ATOL, (name, err.max(), k11[err.argmax()], k22[err.argmax()],
                                  k12[err.argmax()])


def test_tanh_beyond_the_target_range():
    # variance 16 at rho = +-1 (the slowest case of the series) is still at 1e-11
    tanh = get_activation("tanh")
    for k11, k22, k12 in ((16.0, 16.0, 16.0), (16.0, 12.0, -math.sqrt(16 * 12)),
                          (16.0, 9.0, 11.5)):
        for ours, g in zip((tanh.dual, tanh.dual_deriv), _NP["tanh"], strict=True):
            assert float(ours(k11, k22, k12)) == pytest.approx(
                reference(g, k11, k22, k12), abs=ATOL)


def test_general_method_reproduces_the_erf_closed_form():
    # erf is smooth with known duals: run it through the general method (no closed form)
    closed = get_activation("erf")
    general = Activation("erf_general", jerf)
    rng = np.random.default_rng(3)
    n = 300
    k11 = np.concatenate([np.exp(rng.uniform(math.log(0.01), math.log(10), n)),
                          [10, 10, 10, 0, 0, 0.01, 7.0]])
    k22 = np.concatenate([np.exp(rng.uniform(math.log(0.01), math.log(10), n)),
                          [10, 10, 8, 10, 0, 0.01, 7.0]])
    rho = np.concatenate([rng.uniform(-1, 1, n), [1, -1, 1, 0, 0, -1, 0.99999]])
    k12 = rho * np.sqrt(k11 * k22)
    for ours, exact in ((general.dual, closed.dual), (general.dual_deriv, closed.dual_deriv)):
        np.testing.assert_allclose(np.asarray(jax.jit(ours)(k11, k22, k12)),
                                   np.asarray(exact(k11, k22, k12)), rtol=0, atol=1e-12)


def test_sin_and_cos_closed_forms_up_to_variance_10():
    # E sin u sin u' = (e^{-(k11+k22-2k12)/2} - e^{-(k11+k22+2k12)/2}) / 2, + for cos
    # (their V' are each other's V)
    k11, k22, k12 = _covariances(5, count=40)
    a = np.exp(-(k11 + k22 - 2 * k12) / 2)
    b = np.exp(-(k11 + k22 + 2 * k12) / 2)
    sin, cos = get_activation("sin"), get_activation(jnp.cos)
    for ours, exact in ((sin.dual, (a - b) / 2), (cos.dual, (a + b) / 2)):
        np.testing.assert_allclose(np.asarray(ours(k11, k22, k12)), exact, rtol=0, atol=1e-13)


def gauss_expect(g, var, power=1):
    """E g(sqrt(var) Z)^power by adaptive 1-D quadrature."""
    s = math.sqrt(var)
    val, _ = integrate.quad(lambda z: g(s * z) ** power * math.exp(-z * z / 2), -14, 14,
                            epsabs=1e-14, limit=200)
    return val / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("name", ["tanh", "user"])
def test_degenerate_variance(name):
    # k11 = 0: u = 0, so V = phi(0) E phi(u') and V' = phi'(0) E phi'(u')
    act = _activation(name)
    for k in (0.05, 1.0, 10.0):
        for ours, g, at0 in ((act.dual, _NP[name][0], act.phi0),
                             (act.dual_deriv, _NP[name][1], act.p1)):
            expected = at0 * gauss_expect(g, k)
            assert float(ours(0.0, k, 0.0)) == pytest.approx(expected, abs=1e-12)
            assert float(ours(k, 0.0, 0.0)) == pytest.approx(expected, abs=1e-12)


def test_mean_and_second_moment_match_quad():
    for name in ("tanh", "gelu", "softplus_shifted", "user"):
        act = _activation(name)
        f = _NP[name][0]
        v = np.array([0.01, 0.7, 4.0, 10.0])
        m, m2 = np.asarray(act.mean(v)), np.asarray(act.second_moment(v))
        for i, vi in enumerate(v):
            assert m[i] == pytest.approx(gauss_expect(f, vi), abs=1e-12), (name, vi)
            assert m2[i] == pytest.approx(gauss_expect(f, vi, 2), abs=1e-12), (name, vi)


def test_broadcasting_jit_vmap_and_the_diagonal_shortcut():
    tanh = get_activation("tanh")
    rng = np.random.default_rng(9)
    d = rng.uniform(0.1, 5, 6)
    g = rng.uniform(-1, 1, (6, 6))
    k = g @ g.T  # symmetric with diagonal rho = 1
    k = k / np.sqrt(np.outer(np.diag(k), np.diag(k))) * np.sqrt(np.outer(d, d))
    tile = np.asarray(jax.jit(lambda a, b, c: tanh.dual_deriv(a[:, None], b[None, :], c))(
        d, d.copy(), k))
    assert tile.shape == (6, 6)
    np.testing.assert_array_equal(tile, tile.T)  # symmetric by construction
    pairs = jax.vmap(tanh.dual_deriv)(np.repeat(d, 6), np.tile(d, 6), k.ravel())
    # (vmap turns the truncation test into a select: all terms are summed there)
    np.testing.assert_allclose(tile.ravel(), np.asarray(pairs), rtol=0, atol=1e-12)
    # the same array three times is the diagonal [[v, v], [v, v]] (1-D second moment);
    # the tile's diagonal took the series at rho = 1
    v = jnp.asarray(d)
    np.testing.assert_allclose(np.asarray(tanh.dual_deriv(v, v, v)), np.diag(tile), rtol=0,
                               atol=1e-13)


def test_price_theorem_by_reverse_mode_autodiff():
    # dV/dk12 = V' (Price's theorem): checks differentiability and consistency of the two
    tanh = get_activation("tanh")
    grad = jax.jit(jax.grad(lambda c: tanh.dual(2.0, 3.5, c)))
    for k12 in (-2.5, 0.0, 1.2, 2.6):
        assert float(grad(k12)) == pytest.approx(float(tanh.dual_deriv(2.0, 3.5, k12)),
                                                 abs=1e-11)


def test_non_finite_variances_propagate():
    # kernels.py detects blown-up dynamics by non-finite outputs: NaN/inf must not be hidden
    tanh = get_activation("tanh")
    for k11 in (math.nan, math.inf):
        assert math.isnan(float(tanh.dual(k11, 1.0, 0.5)))
        assert math.isnan(float(tanh.dual_deriv(k11, 1.0, 0.5)))


def test_erf_duals_have_no_cancellation_at_huge_variances():
    """Issue 17: ``(1 + 2 k11)(1 + 2 k22) - 4 k12^2`` cancelled to 0 or below at variances
    ~1e16 (inputs of norm 1e8), so V_phi' was inf/NaN. Against 50-digit arithmetic of the
    product form, at ordinary and huge variances, on and off the diagonal; and the joint
    ``duals`` equal the separate closed forms."""
    mpmath = pytest.importorskip("mpmath")
    erf = get_activation("erf")
    mpmath.mp.dps = 50

    def exact(k11, k22, k12):
        a, b, c = (mpmath.mpf(float(v)) for v in (k11, k22, k12))
        disc = (1 + 2 * a) * (1 + 2 * b) - 4 * c * c
        return (float(2 / mpmath.pi * mpmath.asin(2 * c / mpmath.sqrt((1 + 2 * a) * (1 + 2 * b)))),
                float(4 / mpmath.pi / mpmath.sqrt(disc)))

    for v1, v2 in ((0.7, 1.9), (1e8, 3e8), (1e16, 2.5e16), (1e16, 1e16)):
        for rho in (1.0, 0.6, -0.999, 0.0):
            k12 = rho * math.sqrt(v1 * v2)
            if rho == 1.0:
                if v1 != v2:
                    continue
                k12 = v1  # a diagonal pair, exactly
            V, dV = exact(v1, v2, k12)
            got_v, got_dv = (float(f(v1, v2, k12)) for f in (erf.dual, erf.dual_deriv))
            assert np.isfinite(got_dv)
            assert got_v == pytest.approx(V, rel=1e-13, abs=1e-15)
            # the input k12 itself carries a rounding error of 1 ulp, which moves V' by
            # (1 / 2) eps (4 k12^2 / disc) relative: the conditioning, not the formula
            cond = 0.0 if rho == 1.0 else 1 / (1 - rho * rho)  # 4 k12^2 / disc, at most
            assert got_dv == pytest.approx(dV, rel=max(1e-13, 4e-16 * cond))
            both = erf.duals(v1, v2, k12)
            assert (float(both[0]), float(both[1])) == (got_v, got_dv)

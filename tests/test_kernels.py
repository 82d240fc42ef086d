"""Wide-limit kernels against closed forms, their own recursions and each other
(kernels.md, "What a test must check")."""

import math
import re

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import deeplimits as dl
from deeplimits.wide import kernels as K

RNG = np.random.default_rng(0)
X = RNG.standard_normal((7, 5))


def relu_a(**kw):
    return dl.ResNet(width=5, depth=100, form="A", activation="relu",
                     input_layer=dl.InputLayer(5), **kw)


def test_relu_diagonal_recursion_and_ntk_closed_form():
    """Form A ReLU, sigma_b = 0: K_L = K0 (1 + a/L)^L and the state-readout NTK (input layer
    frozen) is K0 (1 + a/L)^(L-1) (1 + a + a/L), a = sigma_w^2 / 2; at L = infinity
    K0 e^a and K0 e^a (1 + a)."""
    net = relu_a(sigma_w=1.3)
    K0, a = np.sum(X * X, 1) / 5, 1.3**2 / 2
    for L in (1, 7, 300):
        k = dl.kernel(net, X, depth=L, train_input_layer=False, homogeneous=False)
        np.testing.assert_allclose(np.diag(k.nngp), K0 * (1 + a / L) ** L, rtol=1e-12)
        np.testing.assert_allclose(np.diag(k.ntk), K0 * (1 + a / L) ** (L - 1) * (1 + a + a / L),
                                   rtol=1e-12)
    k = dl.kernel(net, X, depth=math.inf, train_input_layer=False, rtol=1e-11)
    np.testing.assert_allclose(np.diag(k.nngp), K0 * np.exp(a), rtol=1e-11)
    # the angle-reduction table's stated NTK accuracy (kernels.py): 1e-9
    np.testing.assert_allclose(np.diag(k.ntk), K0 * np.exp(a) * (1 + a), rtol=1e-9)


@pytest.mark.parametrize("form", ["A", "C"])
def test_finite_depth_converges_at_rate_one_over_L(form):
    """Error ratios over L = 10, 100, 1000 are about 10 (Euler is first order)."""
    net = dl.ResNet(width=5, depth=10, form=form, activation="tanh", sigma_b=0.3,
                    input_layer=dl.InputLayer(5, sigma_a=0.2))
    inf = dl.kernel(net, X, depth=math.inf)
    errs = [np.abs(dl.kernel(net, X, depth=L).ntk - inf.ntk).max() for L in (10, 100, 1000)]
    for e1, e2 in zip(errs, errs[1:], strict=False):
        assert 8 < e1 / e2 < 12


def test_form_b_closed_form_and_slow_convergence():
    """phi''(0) = 0 (tanh): K_f = e^{aT}(c0 + beta) - beta and
    Theta = (1 + aT) e^{aT}(c0 + beta) - beta, a = p1^2 sigma_w^2, beta = sigma_b^2/sigma_w^2,
    to 1e-8; the finite-depth map converges with error ratios approaching 10."""
    net = dl.ResNet(width=5, depth=10, form="B", activation="tanh", sigma_w=1.2, sigma_b=0.4,
                    input_layer=dl.InputLayer(5))
    c0, a, beta = X @ X.T / 5, 1.44, 0.16 / 1.44
    k = dl.kernel(net, X, depth=math.inf, train_input_layer=False)
    np.testing.assert_allclose(k.nngp, np.exp(a) * (c0 + beta) - beta, atol=1e-8)
    np.testing.assert_allclose(k.ntk, (1 + a) * np.exp(a) * (c0 + beta) - beta, atol=1e-8)
    errs = [np.abs(dl.kernel(net, X, depth=L).nngp - dl.kernel(net, X, depth=math.inf).nngp)
            .max() for L in (100, 1000, 10_000)]
    assert errs[0] > errs[1] > errs[2]
    assert 8 < errs[1] / errs[2] < 12


def _second_difference_in_c0(net):
    """Second difference of K_f and Theta along c0 = <x, x'>/d at fixed norms."""
    e1, e2 = np.eye(5)[0], np.eye(5)[1]
    cs = np.array([-0.4, 0.0, 0.4])
    x2 = np.stack([c * e1 + math.sqrt(1 - c * c) * e2 for c in cs]) * math.sqrt(5)
    x1 = (e1 * math.sqrt(5))[None]
    k = dl.kernel(net, x1, x2, depth=math.inf)
    return (np.abs(np.diff(k.nngp[0], 2)).item(), np.abs(np.diff(k.ntk[0], 2)).item())


def test_form_b_is_affine_in_the_inner_product_and_forms_a_c_are_not():
    """Limited expressivity (K2): form B with tanh has zero second difference in c0;
    forms A and C with ReLU clearly do not."""
    b = dl.ResNet(width=5, depth=10, form="B", activation="tanh", sigma_b=0.3,
                  input_layer=dl.InputLayer(5))
    assert max(_second_difference_in_c0(b)) < 1e-10
    for form in ("A", "C"):
        net = dl.ResNet(width=5, depth=10, form=form, activation="relu",
                        input_layer=dl.InputLayer(5))
        assert min(_second_difference_in_c0(net)) > 1e-3


def test_relu_correlation_ode_agrees_with_the_full_system():
    """sigma_b = 0: rho' = sigma_w^2 (sqrt(1 - rho^2) - rho arccos rho) / (2 pi) agrees with
    the 2 x 2 system, and rho_T is increasing in T and below 1."""
    net = relu_a(sigma_w=1.5)
    x = np.stack([np.eye(5)[0], 0.3 * np.eye(5)[0] + math.sqrt(0.91) * np.eye(5)[1]]) * 2.0
    f = lambda t, r: [1.5**2 * (math.sqrt(1 - r[0] ** 2) - r[0] * math.acos(r[0])) / (2 * math.pi)]
    rhos = []
    for T in (0.5, 1.0, 2.0):
        k = dl.kernel(net.replace(horizon=T), x, depth=math.inf, compute_ntk=False,
                      homogeneous=False).nngp
        rho = k[0, 1] / math.sqrt(k[0, 0] * k[1, 1])
        ode = integrate.solve_ivp(f, (0, T), [0.3], rtol=1e-12, atol=1e-14).y[0, -1]
        assert rho == pytest.approx(ode, abs=1e-9)
        rhos.append(rho)
    assert 0.3 < rhos[0] < rhos[1] < rhos[2] < 1


@pytest.mark.parametrize("form,readout", [("A", False), ("A", True), ("C", False)])
def test_forward_h_equals_backward_p(form, readout):
    """Theta from the forward accumulator H equals sigma_v^2 [R(K_T) + R'(K_T)
    int_0^T P_t G(K_t) dt] with -P' = r(K) P, P_T = 1, integrated independently here."""
    net = dl.ResNet(width=5, depth=10, form=form, activation="tanh", sigma_b=0.4,
                    input_layer=dl.InputLayer(5),
                    readout=dl.Readout(sigma_v=1.1, post_activation=readout))
    x = X[:2]
    theta = dl.kernel(net, x, depth=math.inf, train_input_layer=False).ntk[0, 1]
    block = net.block
    k0 = np.asarray(K._initial_gram(net, x, x))

    def rates(y):
        d1, d2, k = (jnp.asarray(v) for v in y)
        F, G, r = block.kernel_rates(net, d1, d2, k)
        F1 = block.kernel_rates(net, d1, d1, d1)[0]
        F2 = block.kernel_rates(net, d2, d2, d2)[0]
        return np.array([F1, F2, F]), float(G), float(r)

    fwd = integrate.solve_ivp(lambda t, y: rates(y)[0], (0, 1), [k0[0, 0], k0[1, 1], k0[0, 1]],
                              dense_output=True, rtol=1e-12, atol=1e-14)

    def back(t, y):  # y = (P, integral of P G) backwards from T
        _, G, r = rates(fwd.sol(t))
        return [-r * y[0], -y[0] * G]

    bw = integrate.solve_ivp(back, (1, 0), [1.0, 0.0], rtol=1e-12, atol=1e-14)
    KT = fwd.y[:, -1]
    act = net.activation
    R = float(act.dual(*KT)) if readout else KT[2]
    dR = float(act.dual_deriv(*KT)) if readout else 1.0
    expected = 1.1**2 * (R + dR * bw.y[1, -1])
    assert theta == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("act", ["relu", "abs", "leaky_relu", "identity"])
def test_homogeneous_reduction_matches_the_general_path(act):
    for form in ("A", "C"):
        net = dl.ResNet(width=5, depth=40, form=form, activation=act,
                        input_layer=dl.InputLayer(5, sigma_a=0.5))
        for depth in (math.inf, 40):
            a = dl.kernel(net, X, depth=depth, homogeneous=False)
            b = dl.kernel(net, X, depth=depth, homogeneous=True)
            np.testing.assert_allclose(b.nngp, a.nngp, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(b.ntk, a.ntk, rtol=1e-8, atol=1e-11)


def test_tiles_do_not_change_the_result_and_kernels_are_psd():
    net = dl.ResNet(width=5, depth=10, form="C", activation="erf", sigma_b=0.2)
    x = RNG.standard_normal((40, 5))
    one = dl.kernel(net, x, depth=math.inf)
    tiled = dl.kernel(net, x, depth=math.inf, max_memory=192 * 16**2)
    np.testing.assert_allclose(tiled.nngp, one.nngp, rtol=1e-13)
    np.testing.assert_allclose(tiled.ntk, one.ntk, rtol=1e-13)
    for m in (one.nngp, one.ntk):
        np.testing.assert_allclose(m, m.T, rtol=1e-12)
        assert np.linalg.eigvalsh(m).min() > -1e-10 * np.trace(m)
    cross = dl.nngp(net, x[:10], x[10:], depth=math.inf, steps=one.steps)
    np.testing.assert_allclose(cross, one.nngp[:10, 10:], rtol=1e-13)
    # with its own step count (chosen from its own pairs) it agrees to the tolerance
    own = dl.kernel(net, x[:10], x[10:], depth=math.inf, compute_ntk=False)
    assert np.abs(own.nngp - one.nngp[:10, 10:]).max() <= 2e-9 * np.abs(one.nngp).max()


@pytest.mark.parametrize("bad,message", [
    (dict(x1=np.full((2, 5), np.nan)), "NaN"),
    (dict(x1=np.ones((2, 4))), "features"),
    (dict(x1=np.ones((2, 5)), x2=np.ones((2, 3))), "features"),
    (dict(x1=np.ones(5)), "shape"),
    (dict(x1=np.ones((2, 5)), depth=0), "depth"),
])
def test_bad_inputs(bad, message):
    with pytest.raises(ValueError, match=message):
        dl.kernel(relu_a(), **bad)


@pytest.mark.parametrize("kwargs,message", [
    (dict(form="A", activation="relu"), "input layer"),
    (dict(activation="relu", input_layer=dl.InputLayer(5), width_scaled=False), "width_scaled"),
    (dict(activation="relu", input_layer=dl.InputLayer(5), scaling="iid"), "shrinking"),
    (dict(activation="relu", input_layer=dl.InputLayer(5), mu_b=0.1), "mu_b"),
])
def test_unsupported_networks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dl.kernel(dl.ResNet(width=5, depth=10, **kwargs), np.ones((2, 5)))


@pytest.mark.parametrize("kw,message", [
    (dict(depth="inf"), "depth must be a positive integer or math.inf, got 'inf'"),
    (dict(depth=True), "depth must be a positive integer or math.inf"),
    (dict(depth=math.inf, steps="10"), "steps must be a positive integer or None, got '10'"),
    (dict(max_memory="1e6"), "max_memory must be a positive integer (bytes)"),
    (dict(rtol="1e-9"), "rtol must be a number in (0, 1)"),
])
def test_kernel_options_of_the_wrong_type_are_named(kw, message):
    """Strings where numbers belong name the parameter (issue 19 item 9); they raised
    'must be real number, not str' or were accepted."""
    net = relu_a()
    with pytest.raises(ValueError, match=re.escape(message)):
        dl.kernel(net, X, **kw)

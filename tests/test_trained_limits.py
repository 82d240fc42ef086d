"""The limit equations of trained networks (``trained_scaling.md`` §7): implementation
tests of the network paths, the limit-weight extraction and the diffrax solvers. The
convergence verdicts (T3-ode, T3-sde) run in test_claims.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from deeplimits.analysis.weight_scaling import synthetic_weights
from deeplimits.simulation.trained_limits import (
    OdeLimit,
    brownian_weights,
    network_paths,
    ode_limit,
    sde_limit,
    solve_limit_ode,
    solve_limit_sde,
    sup_errors,
)
from deeplimits.spec.activations import get_activation


def test_backpropagated_gradients_follow_the_backward_recursion():
    # p_k = p_{k+1} + delta_k A_k^T (sigma'(u_k) * p_{k+1}), u_k = A_k h_k + b_k (§7)
    rng = np.random.default_rng(0)
    L, d = 5, 3
    A, b = rng.standard_normal((1, L, d, d)) * 0.4, rng.standard_normal((1, L, d)) * 0.3
    delta = np.array([[0.5, 0.2, 0.0, 0.7, 0.3]])  # a zero factor: an exact no-op layer
    x, y = rng.standard_normal((1, 2, d)), rng.standard_normal((1, 2, d))
    h, p = network_paths(A, b, delta, x, y, activation="swish")
    sig = lambda u: 1 / (1 + np.exp(-u))
    swish, dswish = (lambda u: u * sig(u)), (lambda u: sig(u) * (1 + u * (1 - sig(u))))
    hk = x[0]
    for k in range(L):
        hk = hk + delta[0, k] * swish(hk @ A[0, k].T + b[0, k])
        np.testing.assert_allclose(h[0, k + 1], hk, rtol=1e-12)
    np.testing.assert_allclose(h[0, 3], h[0, 2], rtol=0)
    pk = h[0, L] - y[0]
    np.testing.assert_allclose(p[0, L], pk, rtol=1e-12)
    for k in reversed(range(L)):
        u = h[0, k] @ A[0, k].T + b[0, k]
        pk = pk + delta[0, k] * (dswish(u) * pk) @ A[0, k]
        np.testing.assert_allclose(p[0, k], pk, rtol=1e-10, atol=1e-12)


def test_ode_limit_recovers_the_profile_and_solves_the_linear_ode():
    depths, beta, d = [64, 128, 256, 512], 0.25, 2
    A = synthetic_weights(3, depths, "smooth", beta=beta, n_seeds=1, shape=(d, d))
    b = synthetic_weights(4, depths, "smooth", beta=beta, n_seeds=1, shape=(d,))
    lim = ode_limit({L: (A[L][0], b[L][0], L ** (beta - 1)) for L in depths}, beta,
                    linear=True, grid=128)
    # interval means of A-bar: the profile at the midpoints, up to the half-layer shift of
    # left-point sums (at most max|A-bar'| / (2 L) at the smallest averaged depth) and
    # O(1/G^2)
    mid = synthetic_weights(3, [256], "smooth", beta=0.0, n_seeds=1, shape=(d, d))[256][0][1::2]
    fine = synthetic_weights(3, [4096], "smooth", beta=0.0, n_seeds=1, shape=(d, d))[4096][0]
    slope = np.abs(np.diff(fine, axis=0)).max() * 4096
    assert np.max(np.abs(lim.A - mid)) < slope / (2 * 64) + 1e-3
    assert lim.delta == pytest.approx(1.0) and lim.averaged_depths == tuple(depths)
    # a constant A-bar and b-bar = 0: H_t = expm(sigma'(0) t A) x and P_t = expm(sigma'(0)
    # (1 - t) A^T) P_1 exactly (tanh: sigma'(0) = 1)
    M = np.array([[0.3, -0.8], [0.5, 0.1]])
    const = OdeLimit(np.repeat(M[None], 16, 0), np.zeros((16, d)), 1.0, 0.5, True, (1,))
    x, y = np.array([[[1.0, -0.5]]]), np.array([[[0.2, 0.1]]])
    ts = np.linspace(0, 1, 5)
    H, P = solve_limit_ode([const], x, y, ts, activation="tanh")
    for i, t in enumerate(ts):
        np.testing.assert_allclose(H[0, i, 0], expm(t * M) @ x[0, 0], rtol=1e-9)
        np.testing.assert_allclose(P[0, i, 0], expm((1 - t) * M.T) @ (H[0, -1, 0] - y[0, 0]),
                                   rtol=1e-9)
    # the classical ODE differs (tanh is not linear at O(1) arguments)
    Hc, _ = solve_limit_ode([const], 3 * x, y, ts, activation="tanh", linear=[False])
    Hl, _ = solve_limit_ode([const], 3 * x, y, ts, activation="tanh")
    assert np.max(np.abs(Hc - Hl)) > 0.1


def test_sde_limit_is_the_ito_sum_on_its_path_with_the_covariation_drift():
    rng = np.random.default_rng(1)
    N, d = 64, 2
    A, b = brownian_weights(rng, N, d, scale=1.0, bias_scale=0.5)
    lim = sde_limit(A, b, grid=4)
    np.testing.assert_allclose(lim.path_A[1:] - lim.path_A[:-1], A, atol=1e-14)
    x, y = rng.standard_normal((1, 3, d)), rng.standard_normal((1, 3, d))
    H, P = solve_limit_sde([lim], x, y, activation="swish")
    act = get_activation("swish")
    p1, p2 = act.p1, act.p2
    assert (p1, p2) == pytest.approx((0.5, 0.5))
    # Euler on the path: H_{n+1} = H_n + p1 (A_n H_n + b_n) + 1/2 p2 [H;1]^T c_g [H;1] / N
    h = x[0]
    for n in range(N):
        hb = np.concatenate([h, np.ones((3, 1))], 1)
        c = lim.covariation[n * 4 // N]
        h = h + p1 * (h @ A[n].T + b[n]) + 0.5 * p2 * np.einsum("kp,ipq,kq->ki", hb, c, hb) / N
        np.testing.assert_allclose(H[0, n + 1], h, rtol=1e-10)
    # the backward equation in reversed time: right-point sums
    hs = np.concatenate([H[0], np.ones((N + 1, 3, 1))], 2)
    pk = H[0, -1] - y[0]
    for n in reversed(range(N)):
        c = lim.covariation[n * 4 // N]  # the interval of the step [t_n, t_{n+1}]
        dC = np.einsum("ki,ipq,kq->kp", pk, c, hs[n + 1])[:, :d] / N
        pk = pk + p1 * pk @ A[n] + p2 * dC
        np.testing.assert_allclose(P[0, n], pk, rtol=1e-9, atol=1e-12)
    H0, _ = solve_limit_sde([lim], x, y, activation="swish", drift=False)
    assert np.max(np.abs(H0 - H)) > 1e-3
    # tanh has sigma''(0) = 0: its drift vanishes and that control would coincide
    assert get_activation("tanh").p2 == 0.0


def test_realised_covariation_estimates_the_brownian_rate():
    rng = np.random.default_rng(2)
    N, d, s, sb = 4096, 3, 1.5, 0.5
    lim = sde_limit(*brownian_weights(rng, N, d, scale=s, bias_scale=sb), grid=4)
    diag = np.einsum("gijj->gij", lim.covariation[..., :d, :d])
    # each entry of a rate is a mean of N/4 scaled chi-square(1): relative SE sqrt(2 / (N/4))
    rel_se = np.sqrt(2 / (N / 4))
    assert np.abs(diag / (s**2 / d) - 1).max() < 5 * rel_se
    assert np.abs(lim.covariation[..., d, d] / sb**2 - 1).max() < 5 * rel_se
    off = lim.covariation[..., 0, 1] / (s**2 / d)
    assert np.abs(off).max() < 5 * np.sqrt(1 / (N / 4))


def test_sup_errors_and_bad_input():
    net = np.zeros((1, 3, 1, 2))
    lim = np.zeros((1, 5, 1, 2))
    lim[0, 2, 0] = [3.0, 4.0]  # t = 1/2, a grid point of the depth-2 network
    lim[0, 1, 0] = [9.0, 9.0]  # t = 1/4: not on the network's grid
    assert sup_errors(net, lim).shape == (1, 1) and sup_errors(net, lim)[0, 0] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="multiple of the depth"):
        sup_errors(np.zeros((1, 4, 1, 2)), lim)
    with pytest.raises(ValueError, match="shape"):
        network_paths(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2)), np.zeros((1, 2)),
                      np.zeros((1, 1, 2)), np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match="beta must lie"):
        ode_limit({4: (np.zeros((4, 2, 2)), np.zeros((4, 2)), 1.0)}, 1.2, linear=True)
    with pytest.raises(ValueError, match="multiple of grid"):
        sde_limit(np.zeros((6, 2, 2)), np.zeros((6, 2)), grid=4)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        brownian_weights(np.random.default_rng(0), 4, 0)
    with pytest.raises(ValueError, match="solver"):
        solve_limit_sde([sde_limit(np.zeros((4, 2, 2)), np.zeros((4, 2)), grid=2)],
                        np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), solver="milstein")


def test_rebuilt_networks_use_the_solvers_interpolation_of_the_limit_weights():
    # T3-trained's control rebuilds networks from a limit: its weights at (k + 1/2)/L must be
    # the coefficients the ODE solver sees (linear between interval midpoints, constant on
    # the outer half intervals), or the control would converge to a different equation
    import jax.numpy as jnp

    from deeplimits.simulation.trained_limits import _midpoint_path, midpoint_values

    values = np.random.default_rng(0).standard_normal((6, 2, 3))
    t = np.array([0.0, 0.03, 0.25, 0.5, 0.61, 0.97, 1.0])
    path = _midpoint_path(jnp.asarray(values))
    expected = np.stack([np.asarray(path.evaluate(ti)) for ti in t])
    np.testing.assert_allclose(midpoint_values(values, t), expected, rtol=1e-12, atol=1e-12)
    assert np.allclose(midpoint_values(values, t[:1]), values[:1])  # flat near t = 0

"""Pathwise and in-law properties of the limiting SDEs (forward.md §4-5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deeplimits as dl
from deeplimits import closed_forms, stats

X3 = np.array([[1.0, -0.5, 0.3], [0.2, 0.8, -0.4]])


@pytest.mark.parametrize("form,activation", [("A", "tanh"), ("A", "relu")])
def test_euler_maruyama_identity(form, activation):
    """With Gaussian parameters, form A is Euler-Maruyama of its matrix-BM SDE fed the same
    increments: identical paths up to float64 rounding, for two inputs at once."""
    net = dl.ResNet(width=3, depth=32, form=form, activation=activation, sigma_b=0.4,
                    mu_b=0.3, M=0.2 * jnp.eye(3))
    key = jax.random.key(3)
    a = dl.network_on_path(net, X3, key, samples=4, trajectory=True)
    b = dl.solve_sde(net, X3, key, steps=32, samples=4, trajectory=True)
    assert a.shape == b.shape == (4, 33, 2, 3)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_grouped_increments_give_the_coarse_path():
    """Summing fine Brownian increments reproduces the coarse grid of the same path."""
    net = dl.ResNet(width=2, depth=8, activation="tanh", sigma_b=0.5)
    key = jax.random.key(4)
    fine = dl.brownian_increments(net, key, steps=64, samples=3)
    direct = dl.network_on_path(net, X3[:, :2], key, samples=3)
    grouped = dl.network_on_path(net, X3[:, :2], key, increments=fine)
    np.testing.assert_allclose(direct, grouped, atol=1e-12)
    with pytest.raises(ValueError, match="must divide"):
        dl.network_on_path(net.replace(depth=7), X3[:, :2], key, increments=fine)


def test_one_layer_increment_covariance_matches_gram():
    """The exact sampler's one-layer increments have cross-input covariance dt * G with
    G = sigma_b^2 + s_w^2 <phi(x), phi(x')> and are uncorrelated across coordinates.
    200k draws: the standard error of each covariance entry is below 0.3% of dt * G."""
    net = dl.ResNet(width=4, depth=10, activation="tanh", sigma_b=0.7)
    x = np.array([[1.0, -0.5, 0.3, 2.0], [0.9, -0.2, 0.5, 1.5], [-1.0, 0.4, 0.0, 0.3]])
    X = np.asarray(dl.sample(net.replace(depth=1), x, jax.random.key(0), samples=200_000,
                             dtype=jnp.float64))
    inc = X - x  # (samples, 3, 4)
    phi = np.tanh(x)
    G = (0.7**2 + net.s_w**2 * phi @ phi.T) * 1.0  # depth 1: dt = 1
    emp = np.einsum("sai,sci->ac", inc, inc) / (inc.shape[0] * 4)
    se = np.sqrt((G**2 + np.outer(np.diag(G), np.diag(G))) / (inc.shape[0] * 4))
    assert np.all(np.abs(emp - G) < 5 * se)
    cross = np.mean(inc[:, 0, 0] * inc[:, 0, 1])  # two coordinates of one input
    assert abs(cross) < 5 * G[0, 0] / np.sqrt(inc.shape[0])


def test_moment_odes_match_monte_carlo():
    """Form A with phi = id: Monte Carlo m and S agree with the moment ODEs within 4
    standard errors (100k paths, depth 400: the O(1/L) Euler bias is far below 1 SE)."""
    M = jnp.array([[0.3, -0.2], [0.1, -0.4]])
    net = dl.ResNet(width=2, depth=400, activation="identity", sigma_b=0.5, mu_b=0.2, M=M)
    x0 = np.array([1.0, -0.5])
    m, S = closed_forms.moment_ode(net, x0, [0.0, 1.0])
    X = np.asarray(dl.sample(net, x0, jax.random.key(5), samples=100_000,
                             dtype=jnp.float64))[:, 0]
    se_m = X.std(0, ddof=1) / np.sqrt(X.shape[0])
    assert np.all(np.abs(X.mean(0) - m[-1]) < 4 * se_m)
    outer = X[:, :, None] * X[:, None, :]
    se_S = outer.std(0, ddof=1) / np.sqrt(X.shape[0])
    assert np.all(np.abs(outer.mean(0) - S[-1]) < 4 * se_S)


def test_moment_ode_closed_form_identity_case():
    """Without drift or bias, d tr S = n s_w^2 tr S: E|X_t|^2 = |x0|^2 exp(n s_w^2 t)."""
    net = dl.ResNet(width=3, depth=10, activation="identity", width_scaled=False, sigma_w=0.7)
    x0 = np.array([1.0, 2.0, -1.0])
    _, S = closed_forms.moment_ode(net, x0, [0.0, 0.5, 1.0])
    expected = 6.0 * np.exp(3 * 0.49 * np.array([0.0, 0.5, 1.0]))
    # rtol 1e-10 per step; saved values come from dense-output interpolation (~1e-8)
    np.testing.assert_allclose(np.trace(S, axis1=1, axis2=2), expected, rtol=1e-7)


def test_form_b_tanh_and_identity_share_the_limit():
    """phi''(0) = 0 and phi'(0) = 1: the form B SDE coefficients of tanh and of the identity
    coincide (forward.md §4.3 corollary)."""
    x = jnp.asarray(X3)
    a = dl.ResNet(width=3, depth=10, form="B", activation="tanh", sigma_b=0.3).sde()
    b = dl.ResNet(width=3, depth=10, form="B", activation="identity", sigma_b=0.3).sde()
    np.testing.assert_allclose(a.drift(x), b.drift(x), atol=1e-12)
    np.testing.assert_allclose(a.gram(x), b.gram(x), atol=1e-12)


def test_form_b_drift_has_the_second_order_term():
    """Form B drift = p1 (mu_b + M x) + p2/2 (sigma_b^2 + s_w^2 |x|^2) in every coordinate."""
    net = dl.ResNet(width=3, depth=10, form="B", activation="swish", sigma_b=0.3, mu_b=0.1)
    x = jnp.asarray(X3)
    rate = 0.09 + net.s_w**2 * np.sum(X3**2, axis=1, keepdims=True)
    np.testing.assert_allclose(net.sde().drift(x), 0.5 * 0.1 + 0.25 * rate + 0 * X3, atol=1e-7)


def test_form_c_gram_is_the_dual_activation():
    """Form C: G = sigma_u^2 V_phi(A), A = sigma_b^2 + sigma_w^2 <x, x'> / n; for ReLU the
    diagonal is sigma_u^2 A / 2."""
    net = dl.ResNet(width=3, depth=10, form="C", activation="relu", sigma_b=0.5, sigma_u=1.5)
    G = np.asarray(net.sde().gram(jnp.asarray(X3)))
    A = 0.25 + X3 @ X3.T / 3
    np.testing.assert_allclose(np.diag(G), 2.25 * np.diag(A) / 2, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(G) > 0)


def test_strong_convergence_rate_form_a():
    """On a shared Brownian path, E|x_L - X_T| falls like L^(-1/2) (Euler-Maruyama's strong
    order for multiplicative noise): fitted slope in [-0.75, -0.3] over L = 4..64."""
    net = dl.ResNet(width=2, depth=1, activation="tanh", sigma_b=0.5, width_scaled=False)
    x = np.array([0.7, -0.4])
    key = jax.random.key(11)
    ref = np.asarray(dl.solve_sde(net, x, key, steps=1024, samples=64))
    dB = dl.brownian_increments(net, key, steps=64, samples=64)
    depths = [4, 8, 16, 32, 64]
    err = [np.linalg.norm(np.asarray(dl.network_on_path(net.replace(depth=L), x, key,
                                                        increments=dB)) - ref, axis=-1).mean()
           for L in depths]
    fit = stats.loglog_slope(depths, err)
    assert -0.75 < fit.slope < -0.3


def test_sde_sampler_steps_and_trajectory_shape():
    net = dl.ResNet(width=3, depth=10, activation="tanh")
    Y = dl.sample_sde(net, X3, jax.random.key(0), samples=5, steps=7, trajectory=True)
    assert Y.shape == (5, 8, 2, 3)
    np.testing.assert_allclose(Y[:, 0], np.broadcast_to(X3, (5, 2, 3)), atol=1e-6)

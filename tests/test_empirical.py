"""Empirical kernels of finite networks (kernels.md, "Monte Carlo agreement"): the NTK of one
network against brute force, its meaning as the kernel of gradient descent in the standard
variables, and the claims K1-nngp and K1-ntk at quick scale."""

import jax
import numpy as np
import pytest

import deeplimits as dl
import deeplimits.experiments.claims.kernels  # noqa: F401  (registers K1-nngp and K1-ntk)
from deeplimits.wide import empirical as em

X = np.random.default_rng(0).standard_normal((4, 3))


def tiny(form, activation, post_activation=False, **kw):
    return dl.ResNet(width=5, depth=3, form=form, activation=activation, sigma_w=1.3,
                     sigma_b=0.4, sigma_u=1.2, input_layer=dl.InputLayer(3, sigma_A=1.1,
                                                                          sigma_a=0.5),
                     readout=dl.Readout(sigma_v=0.9, sigma_v0=0.7,
                                        post_activation=post_activation), **kw)


def brute_force_ntk(net, params, x, train_input_layer):
    """Full Jacobian of f(x) in every standard variable, contracted leaf by leaf."""
    J = jax.jacrev(lambda p: em.network_output(net, p, x))(params)
    theta = np.zeros((x.shape[0], x.shape[0]))
    for name in ("E", "eps", "E2", "A", "a", "v", "v0"):
        j = getattr(J, name)
        if j is None or (name in ("A", "a") and not train_input_layer):
            continue
        j = np.asarray(j).reshape(x.shape[0], -1)
        theta += j @ j.T
    return theta


@pytest.mark.parametrize("form,activation,post,train_input", [
    ("A", "relu", False, True), ("B", "tanh", False, False), ("C", "tanh", True, True),
])
def test_ntk_equals_full_jacobian(form, activation, post, train_input):
    """The per-layer rank-structured accumulation (layers regenerated from their keys, and
    from materialised parameters) equals the brute-force Jacobian inner product."""
    net = tiny(form, activation, post)
    key = jax.random.key(7)
    params = em.standard_params(net, key)
    expected = brute_force_ntk(net, params, X, train_input)
    from_key = em.empirical_ntk(net, X, key, train_input_layer=train_input)
    from_params = em.empirical_ntk(net, X, params=params, train_input_layer=train_input)
    np.testing.assert_allclose(from_key, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    np.testing.assert_allclose(from_params, expected, rtol=0,
                               atol=1e-10 * np.abs(expected).max())
    parts = em.empirical_ntk_parts(net, X, key, train_input_layer=train_input)
    assert ("input.A" in parts) == train_input and ("blocks.E2" in parts) == (form == "C")
    assert np.all(np.linalg.eigvalsh(from_key) > -1e-12)


def test_ntk_is_the_kernel_of_gradient_descent_in_the_standard_variables():
    """A step of size eta along grad_theta f(x_j) in the standard variables moves f(x_i) by
    eta Theta(x_i, x_j) + O(eta^2) (central differences: O(eta^2) error), and the blocks
    rebuilt from the standard variables are those that ResNet.init draws."""
    net = tiny("A", "tanh")
    key = jax.random.key(3)
    params = em.standard_params(net, key)
    for form in "ABC":  # every form's standard variables use the keys of ResNet.init
        other = tiny(form, "tanh")
        blocks = em.scaled_params(other, em.standard_params(other, key)).blocks
        init = other.init(key).blocks  # float32 draws
        for name in ("W", "b", "U"):
            if getattr(init, name, None) is not None:
                np.testing.assert_allclose(getattr(blocks, name), getattr(init, name),
                                           rtol=1e-6, atol=1e-7, err_msg=f"{form}.{name}")
    theta = em.empirical_ntk(net, X, key)
    f = jax.jit(lambda p: em.network_output(net, p, X))
    jac = jax.jacrev(f)(params)
    eta = 1e-4
    for j in range(X.shape[0]):
        def step(sign, j=j):
            return jax.tree.map(lambda p, g: p + sign * eta * g[j], params, jac)

        moved = (np.asarray(f(step(1))) - np.asarray(f(step(-1)))) / (2 * eta)
        np.testing.assert_allclose(moved, theta[:, j], rtol=1e-6, atol=1e-8)


def test_nngp_estimators_share_their_expectation():
    """The readout estimator f f^T and the state estimator (its conditional mean given the
    final states) estimate the same NNGP: same networks, agreement within 4 standard errors
    of their difference; the state estimator has the smaller spread."""
    net = dl.ResNet(width=16, depth=8, form="A", activation="relu", sigma_b=0.3,
                    input_layer=dl.InputLayer(3), readout=dl.Readout(sigma_v0=0.3))
    key = jax.random.key(11)
    state = em.empirical_nngp(net, X, key, 1000, estimator="state")
    readout = em.empirical_nngp(net, X, key, 1000, estimator="readout")
    diff = readout.draws - state.draws
    z = diff.mean(0) / (diff.std(0, ddof=1) / np.sqrt(diff.shape[0]))
    assert np.abs(z).max() < 4
    assert np.all(state.stderr < readout.stderr)


def test_ntk_samples_are_the_networks_of_the_split_keys():
    """The vectorised Monte Carlo NTK draws network s from ``split(key, samples)[s]``:
    equal to one-network calls, and its mean and SE are those of the draws."""
    net = tiny("B", "swish")
    key = jax.random.key(5)
    est = em.empirical_ntk_samples(net, X, key, 3, train_input_layer=False)
    one = [em.empirical_ntk(net, X, k, train_input_layer=False)
           for k in jax.random.split(key, 3)]
    np.testing.assert_allclose(est.draws, np.stack(one), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(est.mean, est.draws.mean(0))
    np.testing.assert_allclose(est.stderr, est.draws.std(0, ddof=1) / np.sqrt(3))

"""Inference with wide-ResNet kernels (kernels.md §8 and "What a test must check: Inference"):
the gradient-flow and GP formulas, their numerics and errors, and the scikit-learn front ends.
"""

from __future__ import annotations

import math
import pickle
import warnings
from unittest import SkipTest

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg as sla
from sklearn.base import clone
from sklearn.exceptions import SkipTestWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import WhiteKernel
from sklearn.model_selection import GridSearchCV, cross_val_score

import deeplimits as dl
from deeplimits import inference as inf
from deeplimits.wide.estimators import ResNetKernel, ResNetKernelRegressor, resnet_for_kernel

RNG = np.random.default_rng(0)
D = 4
X_TRAIN = RNG.standard_normal((12, D))
X_TEST = RNG.standard_normal((5, D))
Y = np.stack([np.sin(X_TRAIN[:, 0]), X_TRAIN[:, 1] ** 2 - 1], 1)


@pytest.fixture(scope="module")
def kern():
    """NNGP and NTK of form A ReLU (input layer, sigma_b > 0) on train + test points."""
    net = resnet_for_kernel(D, sigma_w=1.2, sigma_b=0.3)
    X = np.concatenate([X_TRAIN, X_TEST])
    k = dl.kernel(net, X, depth=math.inf, steps=32)
    n = len(X_TRAIN)
    blocks = lambda M: (M[:n, :n], M[n:, :n], M[n:, n:])  # noqa: E731
    K, Ks, Kss = blocks(k.nngp)
    T, Ts, _ = blocks(k.ntk)
    return K, Ks, Kss, T, Ts


def _min_eig_ok(C):
    lam = np.linalg.eigvalsh(C)
    return lam[0] >= -1e-10 * max(np.abs(lam).sum(), 1e-300)


# -- formulas ---------------------------------------------------------------------------------


def test_gp_posterior_is_the_textbook_formula(kern):
    K, Ks, Kss, *_ = kern
    s2 = 0.05
    post = inf.gp_posterior(K, Ks, Y, Kss, noise=s2)
    A = K + s2 * np.eye(len(K))
    np.testing.assert_allclose(post.mean, Ks @ np.linalg.solve(A, Y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post.cov, Kss - Ks @ np.linalg.solve(A, Ks.T), atol=1e-10)
    np.testing.assert_allclose(post.var, np.diag(post.cov))


def test_finite_time_formulas_match_matrix_exponentials(kern):
    """Weakly: K_*X K^-1 (I - e^{-eta K t}) Y; fully: Theta_*X Theta^-1 E_t Y and the
    covariance of §8, against scipy's expm."""
    K, Ks, Kss, T, Ts = kern
    t, eta, lam = 0.7, 1.3, 0.01
    Kr = K + lam * np.eye(len(K))
    E = np.eye(len(K)) - sla.expm(-eta * t * Kr)
    w = inf.weakly_trained(K, Ks, Y, time=t, learning_rate=eta, ridge=lam)
    np.testing.assert_allclose(w.mean, Ks @ np.linalg.solve(Kr, E @ Y), rtol=1e-8, atol=1e-10)
    Tr = T + lam * np.eye(len(T))
    Et = np.eye(len(T)) - sla.expm(-eta * t * Tr)
    B = Ts @ np.linalg.solve(Tr, Et)
    cov = Kss + B @ (K + lam * np.eye(len(K))) @ B.T - B @ Ks.T - Ks @ B.T
    f = inf.fully_trained(K, Ks, T, Ts, Y, Kss, time=t, learning_rate=eta, ridge=lam)
    np.testing.assert_allclose(f.mean, B @ Y, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(f.cov, cov, atol=1e-9)


@pytest.mark.parametrize("ntk", [False, True])
def test_finite_time_tends_to_infinite_time(kern, ntk):
    K, Ks, Kss, T, Ts = kern
    args = (K, Ks, T, Ts, Y, Kss) if ntk else (K, Ks, Y, Kss)
    fn = inf.fully_trained if ntk else inf.weakly_trained
    limit = fn(*args, ridge=1e-3)
    errs = []
    for t in (1.0, 1e2, 1e4, 1e6):
        post = fn(*args, ridge=1e-3, time=t)
        errs.append(max(np.abs(post.mean - limit.mean).max(), np.abs(post.cov - limit.cov).max()))
    assert errs[0] > errs[1] > 0
    assert errs[2] < errs[1] or errs[2] < 1e-12  # decreasing down to rounding
    assert errs[3] < 1e-8 * np.abs(limit.mean).max()
    # t = 0: nothing learnt, the prior
    zero = fn(*args, ridge=1e-3, time=0.0)
    np.testing.assert_allclose(zero.mean, 0.0, atol=1e-14)
    np.testing.assert_allclose(zero.cov, Kss, atol=1e-12)


def test_gain_has_the_eta_t_limit_at_zero_eigenvalues():
    """Theta^-1 (I - e^{-eta Theta t}) for a singular Theta is eta * int_0^t e^{-eta Theta s} ds
    (eigenvalue 0 -> eta t): compare with quadrature."""
    Q = np.linalg.qr(RNG.standard_normal((4, 4)))[0]
    Theta = (Q * np.array([0.0, 0.0, 0.5, 3.0])) @ Q.T
    t, eta = 2.0, 0.7
    ref = scipy.integrate.quad_vec(lambda s: eta * sla.expm(-eta * Theta * s), 0, t,
                                   epsabs=1e-13)[0]
    g = inf._gain(0.5 * (Theta + Theta.T), t, eta, "Theta", 0.0)
    np.testing.assert_allclose(g, ref, atol=1e-11)
    # and the predictor runs on such a kernel without any ridge at finite t
    y = RNG.standard_normal(4)
    post = inf.weakly_trained(Theta, Theta[:2], y, Theta[:2, :2], time=t, learning_rate=eta)
    assert np.all(np.isfinite(post.mean)) and np.all(np.isfinite(post.cov))


@pytest.mark.parametrize("time", [math.inf, 2.5])
def test_fully_trained_with_theta_equal_k_is_weakly_trained(kern, time):
    K, Ks, Kss, *_ = kern
    for ridge, rel in ((0.0, False), (0.03, False), (1e-2, True)):
        f = inf.fully_trained(K, Ks, K, Ks, Y, Kss, time=time, ridge=ridge, relative=rel)
        w = inf.weakly_trained(K, Ks, Y, Kss, time=time, ridge=ridge, relative=rel)
        np.testing.assert_allclose(f.mean, w.mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(f.cov, w.cov, atol=1e-8)
    g = inf.gp_posterior(K, Ks, Y, Kss, noise=0.03)
    f = inf.fully_trained(K, Ks, K, Ks, Y, Kss, ridge=0.03)
    np.testing.assert_allclose(f.mean, g.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(f.cov, g.cov, atol=1e-8)


def test_zero_noise_predictions_interpolate(kern):
    K, _, _, T, _ = kern
    w = inf.gp_posterior(K, K, Y, K)
    np.testing.assert_allclose(w.mean, Y, atol=1e-8)
    np.testing.assert_allclose(w.var, 0.0, atol=1e-8 * np.diag(K).max())
    f = inf.fully_trained(K, K, T, T, Y, K)
    np.testing.assert_allclose(f.mean, Y, atol=1e-8)
    np.testing.assert_allclose(f.var, 0.0, atol=1e-7 * np.diag(K).max())


@pytest.mark.parametrize("time", [math.inf, 0.5, 50.0])
def test_covariances_are_psd(kern, time):
    K, Ks, Kss, T, Ts = kern
    for noise in (0.0, 0.1):
        w = inf.weakly_trained(K, Ks, Y, Kss, time=time, ridge=noise)
        f = inf.fully_trained(K, Ks, T, Ts, Y, Kss, time=time, ridge=noise)
        for post in (w, f):
            assert _min_eig_ok(post.cov)
            np.testing.assert_allclose(post.cov, post.cov.T)
            assert np.all(post.var >= 0)


def test_multi_output_is_columnwise_and_relative_ridge(kern):
    K, Ks, Kss, T, Ts = kern
    both = inf.fully_trained(K, Ks, T, Ts, Y, Kss, ridge=1e-2, relative=True, time=3.0)
    for j in range(Y.shape[1]):
        one = inf.fully_trained(K, Ks, T, Ts, Y[:, j], Kss, ridge=1e-2, relative=True, time=3.0)
        assert one.mean.shape == (len(Ks),)
        np.testing.assert_allclose(both.mean[:, j], one.mean, rtol=1e-12)
        np.testing.assert_allclose(both.cov, one.cov)
    absolute = inf.fully_trained(K, Ks, T, Ts, Y, Kss, ridge=1e-2 * np.diag(T).mean(),
                                 noise=1e-2 * np.diag(K).mean(), time=3.0)
    np.testing.assert_allclose(both.mean, absolute.mean, rtol=1e-12)
    np.testing.assert_allclose(both.cov, absolute.cov, atol=1e-14)
    # diagonal-only test kernel gives the variances without the covariance
    diag = inf.fully_trained(K, Ks, T, Ts, Y, np.diag(Kss), ridge=1e-2, relative=True, time=3.0)
    assert diag.cov is None
    np.testing.assert_allclose(diag.var, both.var, atol=1e-13)


# -- errors -----------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(kern):
    K, Ks, Kss, T, Ts = kern
    bad = K.copy()
    bad[0, 1] = bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        inf.gp_posterior(bad, Ks, Y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        inf.gp_posterior(K, Ks, np.where(Y > 0, np.inf, Y))
    with pytest.raises(ValueError, match="columns"):
        inf.gp_posterior(K, Ks[:, :-1], Y)
    with pytest.raises(ValueError, match="rows"):
        inf.gp_posterior(K, Ks, Y[:-1])
    with pytest.raises(ValueError, match="symmetric"):
        inf.gp_posterior(K + np.triu(np.ones_like(K), 1), Ks, Y)
    with pytest.raises(ValueError, match="ridge"):
        inf.gp_posterior(K, Ks, Y, noise=-1e-3)
    with pytest.raises(ValueError, match="time"):
        inf.weakly_trained(K, Ks, Y, time=-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        inf.weakly_trained(K, Ks, Y, time=1.0, learning_rate=0.0)
    with pytest.raises(ValueError, match="ntk_cross"):
        inf.fit_gradient_flow(K, Y, T).predict(Ks)


def test_not_positive_definite_names_the_jitter():
    v = RNG.standard_normal((6, 2))
    singular = v @ v.T  # rank 2
    with pytest.raises(inf.NotPositiveDefiniteError, match="jitter 0"):
        inf.gp_posterior(singular - 1e-3 * np.eye(6), singular, np.ones(6))
    with pytest.raises(inf.NotPositiveDefiniteError, match="jitter 1e-06"):
        inf.gp_posterior(singular - 1e-3 * np.eye(6), singular, np.ones(6), noise=1e-6)
    assert issubclass(inf.NotPositiveDefiniteError, ValueError)
    # finite time: an indefinite matrix is refused too
    with pytest.raises(inf.NotPositiveDefiniteError, match="eigenvalue"):
        inf.weakly_trained(singular - 1e-3 * np.eye(6), singular, np.ones(6), time=1.0)
    # a positive jitter makes it work
    post = inf.gp_posterior(singular, singular, np.ones(6), singular, noise=1e-8)
    assert np.all(np.isfinite(post.mean)) and np.all(post.var >= 0)


def test_inconsistent_test_kernel_raises_instead_of_nan(kern):
    """A test kernel too small for the cross kernel would give negative variances (NaN
    standard deviations): it raises."""
    K, Ks, Kss, *_ = kern
    with pytest.raises(inf.NotPositiveDefiniteError, match="negative predictive variance"):
        inf.gp_posterior(K, Ks, Y, 0.01 * Kss)


# -- the scikit-learn estimator -------------------------------------------------------------------


def test_regressor_matches_the_formulas(kern):
    K, Ks, Kss, T, Ts = kern
    common = dict(sigma_w=1.2, sigma_b=0.3, steps=32, ridge=1e-3, ridge_mode="absolute")
    w = ResNetKernelRegressor(**common).fit(X_TRAIN, Y)
    mean, cov = w.predict(X_TEST, return_cov=True)
    ref = inf.gp_posterior(K, Ks, Y, Kss, noise=1e-3)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=1e-12)
    assert cov.shape == (5, 5, 2)
    np.testing.assert_allclose(cov[..., 0], ref.cov, atol=1e-12)
    _, std = w.predict(X_TEST, return_std=True)
    assert std.shape == (5, 2)
    np.testing.assert_allclose(std[:, 0], np.sqrt(ref.var), rtol=1e-9, atol=1e-12)
    f = ResNetKernelRegressor(training="fully", time=4.0, **common).fit(X_TRAIN, Y[:, 0])
    mean, std = f.predict(X_TEST, return_std=True)
    ref = inf.fully_trained(K, Ks, T, Ts, Y[:, 0], Kss, ridge=1e-3, time=4.0)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(std, ref.std, rtol=1e-8, atol=1e-12)
    assert f.alpha_.shape == (12,) and f.ntk_train_.shape == (12, 12)


def test_regressor_finite_depth_and_normalize_y():
    y = 100 + 5 * Y[:, 0]
    m = ResNetKernelRegressor(form="C", depth=7, input_layer=False, normalize_y=True,
                              ridge=0.0).fit(X_TRAIN, y)
    np.testing.assert_allclose(m.predict(X_TRAIN), y, rtol=1e-8)
    mean, std = m.predict(X_TEST, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.predict(X_TEST), mean)


def test_sklearn_api_clone_params_grid_search():
    m = ResNetKernelRegressor(form="C", sigma_w=0.7, input_layer=False)
    params = m.get_params()
    assert params["sigma_w"] == 0.7 and params["depth"] == math.inf
    assert params["training"] == "weakly" and params["ridge"] == 1e-6
    c = clone(m)
    assert c.get_params() == params and c is not m
    c.set_params(sigma_b=0.2, training="fully")
    assert c.sigma_b == 0.2 and m.sigma_b == 0.0
    Xs, ys = X_TRAIN[:12], np.sin(X_TRAIN[:12, 0])
    m.fit(Xs, ys)
    assert m.get_params() == params  # fit changes no hyperparameter
    grid = GridSearchCV(ResNetKernelRegressor(),
                        {"sigma_w": [0.5, 1.5], "training": ["weakly", "fully"]},
                        cv=3).fit(Xs, ys)
    assert set(grid.best_params_) == {"sigma_w", "training"}
    assert np.isfinite(grid.best_score_)
    scores = cross_val_score(ResNetKernelRegressor(form="B", activation="tanh",
                                                   input_layer=False), Xs, ys, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


# the scikit-learn checks most about this estimator's contract; the full suite (about 50
# checks, ~20 s of JIT compilation for its many array shapes) runs with `pytest -m slow`
_CHECKS = {"check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init",
           "check_parameters_default_constructible", "check_get_params_invariance",
           "check_set_params", "check_estimators_unfitted", "check_mixin_order",
           "check_estimators_nan_inf", "check_n_features_in_after_fitting",
           "check_estimators_overwrite_params", "check_fit_idempotent",
           "check_regressor_multioutput", "check_estimators_pickle", "check_fit2d_1sample"}


def _run_checks(names=None):
    from sklearn.utils.estimator_checks import estimator_checks_generator

    ran = set()
    for est, check in estimator_checks_generator(ResNetKernelRegressor(), legacy=True):
        name = getattr(check, "func", check).__name__
        if names is None or name in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SkipTestWarning)
                try:
                    check(est)
                except SkipTest:
                    pass
            ran.add(name)
    return ran


def test_sklearn_estimator_checks_subset():
    assert _run_checks(_CHECKS) == _CHECKS


@pytest.mark.slow
def test_sklearn_check_estimator_full(request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full check_estimator runs with `pytest -m slow`")
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(ResNetKernelRegressor(), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])) for r in results
              if r["status"] == "failed"]
    assert not failed


def test_regressor_bad_inputs():
    ok = ResNetKernelRegressor().fit(X_TRAIN, Y[:, 0])
    bad = X_TRAIN.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ResNetKernelRegressor().fit(bad, Y[:, 0])
    with pytest.raises(ValueError, match="infinity|NaN"):
        ok.predict(np.where(X_TEST > 1, np.inf, X_TEST))
    with pytest.raises(ValueError, match="features"):
        ok.predict(X_TEST[:, :3])
    with pytest.raises(ValueError, match="input layer"):
        ResNetKernelRegressor(form="A", input_layer=False).fit(X_TRAIN, Y[:, 0])
    with pytest.raises(ValueError, match="sigma_w"):
        ResNetKernelRegressor(sigma_w=-1.0).fit(X_TRAIN, Y[:, 0])
    with pytest.raises(ValueError, match="ridge"):
        ResNetKernelRegressor(ridge=-1e-3).fit(X_TRAIN, Y[:, 0])
    with pytest.raises(ValueError, match="training"):
        ResNetKernelRegressor(training="strongly").fit(X_TRAIN, Y[:, 0])
    with pytest.raises(ValueError, match="depth"):
        ResNetKernelRegressor(depth=2.5).fit(X_TRAIN, Y[:, 0])
    with pytest.raises(ValueError, match="time"):
        ResNetKernelRegressor(time=-1).fit(X_TRAIN, Y[:, 0])
    # duplicated inputs, no ridge: the kernel is singular and the error names the jitter
    Xd = np.concatenate([X_TRAIN, X_TRAIN[:2]])
    with pytest.raises(inf.NotPositiveDefiniteError, match="jitter"):
        ResNetKernelRegressor(ridge=0.0).fit(Xd, np.arange(14.0))


# -- the Gaussian-process kernel ------------------------------------------------------------------


def test_resnet_kernel_values_gradient_and_theta():
    k = ResNetKernel(sigma_w=1.3, sigma_b=0.4, steps=16)
    K, G = k(X_TRAIN, eval_gradient=True)
    net = resnet_for_kernel(D, sigma_w=1.3, sigma_b=0.4)
    np.testing.assert_allclose(K, dl.nngp(net, X_TRAIN, depth=math.inf, steps=16), rtol=1e-13)
    np.testing.assert_allclose(k.diag(X_TRAIN), np.diag(K), rtol=1e-12)
    np.testing.assert_allclose(k(X_TRAIN, X_TEST),
                               dl.nngp(net, X_TRAIN, X_TEST, depth=math.inf, steps=16))
    # theta is [log sigma_b, log sigma_w] (alphabetical, as scikit-learn orders them)
    np.testing.assert_allclose(k.theta, np.log([0.4, 1.3]))
    assert G.shape == (12, 12, 2)
    # an independent O(h^4) Richardson difference agrees to the O(fd_step^2) error
    def central(name, h):
        up = clone(k).set_params(**{name: getattr(k, name) * math.exp(h)})(X_TRAIN)
        dn = clone(k).set_params(**{name: getattr(k, name) * math.exp(-h)})(X_TRAIN)
        return (up - dn) / (2 * h)

    for i, name in enumerate(("sigma_b", "sigma_w")):
        ref = (4 * central(name, 1e-3) - central(name, 2e-3)) / 3
        np.testing.assert_allclose(G[..., i], ref, atol=1e-7 * np.abs(K).max())
    assert not k.is_stationary()
    k2 = k.clone_with_theta(np.log([0.2, 0.9]))
    assert math.isclose(k2.sigma_b, 0.2) and math.isclose(k2.sigma_w, 0.9)


def test_resnet_kernel_sigma_b_zero():
    free = ResNetKernel(sigma_b=0.0)
    assert np.all(np.isfinite(free.theta))
    assert math.isclose(free.theta[0], math.log(1e-4))  # the lower bound
    fixed = ResNetKernel(sigma_b=0.0, sigma_b_bounds="fixed", steps=16)
    assert fixed.theta.shape == (1,)
    K, G = fixed(X_TRAIN, eval_gradient=True)
    assert G.shape == (12, 12, 1)
    near = ResNetKernel(sigma_b=1e-4, sigma_b_bounds="fixed", steps=16)(X_TRAIN)
    np.testing.assert_allclose(near, K, rtol=1e-6)
    with pytest.raises(ValueError, match="sigma_b"):
        ResNetKernel(sigma_b=-0.1).theta  # noqa: B018
    with pytest.raises(ValueError, match="NaN"):
        fixed(np.where(X_TRAIN > 1, np.nan, X_TRAIN))
    with pytest.raises(ValueError, match="features"):
        fixed(X_TRAIN, X_TEST[:, :2])


def test_gp_regressor_recovers_sigma_w_from_prior_samples():
    """Data drawn from the model's own GP prior (sigma_w = 1.6, sigma_b = 0.4, noise 1e-2,
    40 independent outputs on 40 inputs): marginal-likelihood fitting from (1, 0.1) recovers
    sigma_w within 10 % and sigma_b within 50 %."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3))
    truth = ResNetKernel(sigma_w=1.6, sigma_b=0.4, steps=16)
    C = truth(X) + 1e-2 * np.eye(40)
    Yp = np.linalg.cholesky(C) @ rng.standard_normal((40, 40))
    gp = GaussianProcessRegressor(ResNetKernel(sigma_w=1.0, sigma_b=0.1, steps=16)
                                  + WhiteKernel(1e-1, (1e-5, 1.0)), optimizer="fmin_l_bfgs_b")
    gp.fit(X, Yp)
    fitted = gp.kernel_.k1
    assert abs(fitted.sigma_w / 1.6 - 1) < 0.1
    assert abs(fitted.sigma_b / 0.4 - 1) < 0.5
    assert abs(gp.kernel_.k2.noise_level / 1e-2 - 1) < 0.3


@pytest.mark.parametrize("y", [np.array(["1.0", "2.0", "3.0"]), np.array(["a", "b", "c"]),
                               np.array([1.0, "x", 2.0], dtype=object),
                               np.array([1 + 1j, 2, 3])])
def test_regressor_refuses_non_numeric_targets_before_kernel_work(y, monkeypatch):
    """Issue 17: string targets must be refused naming ``y``, before any kernel."""
    from deeplimits.wide import estimators

    def no_kernel(*args, **kwargs):
        raise AssertionError("kernel work started")

    monkeypatch.setattr(estimators, "_kernel", no_kernel)
    with pytest.raises(TypeError, match="y must hold real numbers"):
        ResNetKernelRegressor().fit(np.eye(3), y)

"""Limited expressivity on data (kernels.md §4.3 and "What a test must check"): on a real data
set the form B tanh kernel is alpha <x,x'> + gamma, its GP posterior mean is Bayesian linear
regression to numerical precision, form C ReLU does not reduce this way; and the table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge

import deeplimits as dl
from deeplimits import inference as inf
from deeplimits.data.tabular import load_split
from deeplimits.experiments.regression import affine_residual, format_table, regression_table
from deeplimits.wide.estimators import ResNetKernelRegressor, resnet_for_kernel


@pytest.fixture(scope="module")
def diabetes():
    return load_split("diabetes", seed=0)


SW, SB = 0.8, 0.6


@pytest.fixture(scope="module")
def form_b(diabetes):
    """Form B tanh kernels (no input layer, depth inf) on train + test points."""
    s = diabetes
    net = resnet_for_kernel(s.n_features, form="B", activation="tanh", sigma_w=SW, sigma_b=SB,
                            input_layer=False)
    return dl.kernel(net, np.concatenate([s.X_train, s.X_test]), depth=math.inf, steps=128)


def test_load_split_is_standardised_and_reproducible():
    s = load_split("wine", seed=3)
    assert s.task == "classification" and s.Y_train.shape == (len(s.X_train), 3)
    np.testing.assert_allclose(s.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(s.X_train.std(0), 1, rtol=1e-12)
    np.testing.assert_array_equal(load_split("wine", seed=3).X_test, s.X_test)
    d = load_split("digits", max_samples=200, seed=0)  # has constant pixels
    assert len(d.X_train) + len(d.X_test) == 200 and np.all(np.isfinite(d.X_train))
    with pytest.raises(ValueError, match="unknown data set"):
        load_split("mnist")


def _blr_mean(X, y, Xs, alpha, gamma, noise):
    """Posterior mean of y = w.x + b + eps, w ~ N(0, alpha I), b ~ N(0, gamma),
    eps ~ N(0, noise), in weight space."""
    A = np.column_stack([X, np.ones(len(X))])
    As = np.column_stack([Xs, np.ones(len(Xs))])
    prior = np.r_[np.full(X.shape[1], alpha), gamma]
    w = np.linalg.solve(A.T @ A + noise * np.diag(1 / prior), A.T @ y)
    return As @ w


@pytest.mark.parametrize("training", ["weakly", "fully"])
def test_form_b_is_bayesian_linear_regression(diabetes, form_b, training):
    """Form B tanh (no input layer, depth inf): K_f = e^a (c0 + beta) - beta with
    c0 = <x,x'>/d, a = sigma_w^2 (tanh'(0) = 1), beta = sigma_b^2/sigma_w^2, so
    alpha = e^a/d and gamma = beta (e^a - 1); the NTK is (1 + a) times the slope and
    (1 + a) e^a beta - beta the intercept. GP / NTK predictions equal Bayesian linear
    regression with these prior variances (checked in weight space and with sklearn's Ridge
    on rescaled features) to numerical precision."""
    s = diabetes
    X, Xs, y = s.X_train, s.X_test, s.Y_train[:, 0] - s.Y_train.mean()
    d, sw, sb = X.shape[1], SW, SB
    a, beta = sw**2, sb**2 / sw**2
    k_all = form_b
    n = len(X)
    if training == "weakly":
        alpha, gamma = math.exp(a) / d, beta * (math.exp(a) - 1)
        K = k_all.nngp
    else:
        alpha, gamma = (1 + a) * math.exp(a) / d, (1 + a) * math.exp(a) * beta - beta
        K = k_all.ntk
    G = np.concatenate([X, Xs])
    np.testing.assert_allclose(K, alpha * G @ G.T + gamma, rtol=1e-10, atol=1e-10)
    assert affine_residual(K[:n, :n], X) < 1e-12
    noise = 0.3
    post = inf.gp_posterior(K[:n, :n], K[n:, :n], y, noise=noise)
    blr = _blr_mean(X, y, Xs, alpha, gamma, noise)
    np.testing.assert_allclose(post.mean, blr, rtol=1e-9, atol=1e-9 * np.abs(blr).max())
    scaled = lambda Z: np.column_stack([math.sqrt(alpha) * Z,  # noqa: E731
                                        np.full(len(Z), math.sqrt(gamma))])
    ridge = Ridge(alpha=noise, fit_intercept=False, solver="cholesky").fit(scaled(X), y)
    np.testing.assert_allclose(post.mean, ridge.predict(scaled(Xs)), rtol=1e-8,
                               atol=1e-9 * np.abs(blr).max())
    # the estimator gives the same predictions (fully trained with Theta: min-norm ridge)
    est = ResNetKernelRegressor(form="B", activation="tanh", input_layer=False, sigma_w=sw,
                                sigma_b=sb, training=training, ridge=noise,
                                ridge_mode="absolute", steps=128).fit(X, y)
    np.testing.assert_allclose(est.predict(Xs), blr, rtol=1e-9, atol=1e-9 * np.abs(blr).max())


def test_form_c_relu_is_not_linear_regression(diabetes):
    s = diabetes
    X, Xs, y = s.X_train, s.X_test, s.Y_train[:, 0] - s.Y_train.mean()
    n, d = X.shape
    net = resnet_for_kernel(d, form="C", activation="relu", sigma_w=1.5, sigma_b=0.0,
                            input_layer=False)  # sigma_b = 0: the fast homogeneous path
    K = dl.nngp(net, np.concatenate([X, Xs]), depth=math.inf)
    assert affine_residual(K[:n, :n], X) > 0.05
    # the best affine surrogate alpha <x,x'>/d + gamma gives clearly different predictions
    G = X @ X.T / d
    (alpha, gamma), *_ = np.linalg.lstsq(np.stack([G.ravel(), np.ones(G.size)], 1),
                                         K[:n, :n].ravel(), rcond=None)
    post = inf.gp_posterior(K[:n, :n], K[n:, :n], y, noise=0.3)
    blr = _blr_mean(X, y, Xs, alpha / d, max(gamma, 1e-12), 0.3)
    assert np.linalg.norm(post.mean - blr) > 0.05 * np.linalg.norm(blr)


def test_regression_table_small():
    """One data set, one grid point per kernel: the structure, the scores, the theory column
    (form B affine, A and C not) and agreement with the estimator at the chosen settings."""
    tab = regression_table(("wine",), sigma_w_grid=(1.0,), sigma_b_grid=(0.5,),
                           ridge_grid=(1e-2, 1.0), folds=2, steps=16)
    models = ["A-weakly", "A-fully", "B-weakly", "B-fully", "C-weakly", "C-fully", "rbf-gp",
              "ridge"]
    assert list(tab.model.values) == models and list(tab.dataset.values) == ["wine"]
    score = tab.score.sel(dataset="wine")
    assert tab.metric.values[0] == "accuracy"
    assert np.all((score >= 0.8) & (score <= 1))
    res = tab.affine_residual.sel(dataset="wine")
    assert res.sel(model="B-weakly") < 1e-10 and res.sel(model="B-fully") < 1e-10
    for m in ("A-weakly", "A-fully", "C-weakly", "C-fully"):
        assert res.sel(model=m) > 1e-2
    assert tab.sigma_w.sel(dataset="wine", model="A-weakly") == 1.0
    assert np.isnan(tab.sigma_w.sel(dataset="wine", model="ridge"))
    assert "alpha=" in str(tab.hyperparameters.sel(dataset="wine", model="ridge").values)
    assert "B-fully" in format_table(tab)
    # the estimator with the chosen hyperparameters reproduces the table's score
    s = load_split("wine", seed=0)
    r = float(tab.ridge.sel(dataset="wine", model="C-fully"))
    est = ResNetKernelRegressor(form="C", input_layer=False, sigma_w=1.0, sigma_b=0.5,
                                training="fully", ridge=r, normalize_y=True, steps=16)
    pred = est.fit(s.X_train, s.Y_train).predict(s.X_test)
    acc = np.mean(s.classes[pred.argmax(1)] == s.y_test)
    assert acc == pytest.approx(float(score.sel(model="C-fully")))


def test_regression_table_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        regression_table(("wine",), scale="huge")
    with pytest.raises(ValueError, match="kernel model"):
        regression_table(("wine",), models=("D",))


def test_split_arrays_takes_class_names_and_records_the_subsample():
    from deeplimits.data.tabular import split_arrays

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 2))
    y = np.where(X[:, 0] > 0, "yes", "no")
    s = split_arrays("names", X, y, max_samples=20)
    assert s.task == "classification" and list(s.classes) == ["no", "yes"]
    assert s.n_available == 40 and len(s.X_train) + len(s.X_test) == 20
    assert s.Y_train.shape == (15, 2) and np.all(s.Y_train.sum(1) == 1)  # one-hot
    with pytest.raises(ValueError, match="regression needs numeric targets"):
        split_arrays("names", X, y, task="regression")
    with pytest.raises(ValueError, match="at least 2 samples each"):
        split_arrays("one", X, np.r_[["a"], ["b"] * 39])
    with pytest.raises(ValueError, match="max_samples must be an integer >= 4"):
        split_arrays("names", X, y, max_samples=2.5)
    assert load_split("wine").n_available == 178

"""GridSearchCV with a shared KernelCache computes each kernel setting once (issue 19
item 15), and gives the same scores as without it."""

import math

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from deeplimits.wide import estimators
from deeplimits.wide.estimators import KernelCache, ResNetKernelRegressor

RNG = np.random.default_rng(0)
X = RNG.standard_normal((30, 3))
Y = np.sin(X[:, 0]) + 0.1 * RNG.standard_normal(30)


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = estimators._kernel

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(estimators, "_kernel", counting)
    return calls


def _search(cache):
    base = ResNetKernelRegressor(activation="erf", sigma_b=0.5, depth=math.inf, steps=8,
                                 ridge=1e-2, cache=cache)
    return GridSearchCV(base, {"sigma_w": [0.5, 2.0], "ridge": [1e-2, 1e-1]},
                        cv=2).fit(X, Y)


def test_grid_search_computes_each_setting_once(counted):
    plain = _search(None)
    uncached = len(counted)
    counted.clear()
    cache = KernelCache(X)
    cached = _search(cache)
    # 2 kernel settings (ridge is not one): one full kernel each; without the cache every
    # fold's fit and score computes its own (4 settings x 2 folds x 2, plus the refit)
    assert len(counted) == cache.evaluations == 2
    assert uncached >= 4 * 2 * 2
    np.testing.assert_allclose(cached.cv_results_["mean_test_score"],
                               plain.cv_results_["mean_test_score"], rtol=1e-8, atol=1e-10)
    assert cached.best_params_ == plain.best_params_


def test_cache_slices_equal_direct_kernels_and_grows_for_new_rows():
    cache = KernelCache()
    reg = ResNetKernelRegressor(activation="erf", sigma_b=0.5, steps=8, cache=cache,
                                training="fully").fit(X[:20], Y[:20])
    direct = ResNetKernelRegressor(activation="erf", sigma_b=0.5, steps=8,
                                   training="fully").fit(X[:20], Y[:20])
    np.testing.assert_allclose(reg.kernel_train_, direct.kernel_train_, rtol=1e-12)
    np.testing.assert_allclose(reg.ntk_train_, direct.ntk_train_, rtol=1e-12)
    mean, std = reg.predict(X[20:], return_std=True)  # new rows: one more evaluation
    m2, s2 = direct.predict(X[20:], return_std=True)
    np.testing.assert_allclose(mean, m2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(std, s2, rtol=1e-6, atol=1e-10)
    assert cache.evaluations == 2


def test_bad_cache():
    with pytest.raises(TypeError, match="KernelCache"):
        ResNetKernelRegressor(cache={}).fit(X, Y)
    with pytest.raises(ValueError, match="max_settings"):
        KernelCache(max_settings=0)

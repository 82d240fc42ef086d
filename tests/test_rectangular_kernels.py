"""Regression (issue 19, item 1): kernels of two input sets of different sizes, and square
kernels split into tiles, for every registered activation and a user callable.

A Python ``False`` once reached ``lax.cond`` in the Mehler-series dual whose branches had
the two sides' shapes, so every activation without a closed-form dual crashed as soon as
``x1`` and ``x2`` differed in size. Each rectangular kernel here must equal the matching
block of the square kernel of all inputs (the same arithmetic, so to rounding)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import WhiteKernel

import deeplimits as dl
from deeplimits.spec.activations import activation_names, get_activation

RNG = np.random.default_rng(19)
X1 = RNG.standard_normal((20, 3))  # 20 + 7 > 16 rows: max_memory=1 forces 16-row tiles
X2 = RNG.standard_normal((7, 3)) * 1.5
ALL = np.concatenate([X1, X2])

ACTIVATIONS = sorted({get_activation(n).name for n in activation_names()}) + ["callable"]


def _activation(name):
    return (lambda x: jnp.tanh(x) + 0.1 * x) if name == "callable" else name


def _net(name, form):
    return dl.ResNet(form=form, activation=_activation(name), width=1, depth=5, sigma_b=0.5,
                     input_layer=dl.InputLayer(dim=3))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_duals_broadcast_over_sides_of_different_sizes(name):
    """The crash site: duals of (B1, 1) variances against (1, B2) ones, B1 != B2, equal the
    duals of the same pairs computed one by one."""
    act = get_activation(_activation(name))
    k11 = 0.5 + RNG.random((5, 1))
    k22 = 0.5 + RNG.random((1, 3))
    k12 = 0.3 * np.sqrt(k11 * k22) * RNG.uniform(-1, 1, (5, 3))
    for dual in (act.dual, act.dual_deriv):
        rect = np.asarray(dual(k11, k22, k12))
        pairs = np.asarray(dual(np.broadcast_to(k11, (5, 3)).ravel(),
                                np.broadcast_to(k22, (5, 3)).ravel(), k12.ravel()))
        assert rect.shape == (5, 3)
        np.testing.assert_allclose(rect.ravel(), pairs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["callable"]
                         + [pytest.param(n, marks=pytest.mark.slow)
                            for n in ACTIVATIONS if n != "callable"])
def test_tiled_kernels_with_rectangular_tiles_equal_the_square_kernel(name):
    """27 inputs in tiles of 16 rows: the off-diagonal tiles are 16 x 11. (About 30 s for
    each activation without a closed-form dual, mostly compilation, so the others run with
    ``-m slow``; the dual test above covers every activation at the crash site.)"""
    net = _net(name, "A")
    full = dl.kernel(net, ALL, depth=math.inf, steps=4)
    tiled = dl.kernel(net, ALL, depth=math.inf, steps=4, max_memory=1)
    np.testing.assert_allclose(tiled.nngp, full.nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tiled.ntk, full.ntk, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,depth", [("tanh", math.inf), ("callable", 5), ("relu", math.inf)])
def test_rectangular_kernels_equal_the_block_of_the_square_kernel(name, depth):
    net = _net(name, "A")
    kw = {"depth": depth, "steps": 4} if depth == math.inf else {"depth": depth}
    full = dl.kernel(net, ALL, **kw)
    rect = dl.kernel(net, X1, X2, **kw)
    assert rect.nngp.shape == rect.ntk.shape == (20, 7)
    np.testing.assert_allclose(rect.nngp, full.nngp[:20, 20:], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rect.ntk, full.ntk[:20, 20:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "callable"])
def test_smooth_form_b_rectangular(name):
    net = _net(name, "B")
    full = dl.kernel(net, ALL, depth=math.inf, steps=4)
    rect = dl.kernel(net, X1, X2, depth=math.inf, steps=4)
    np.testing.assert_allclose(rect.ntk, full.ntk[:20, 20:], rtol=1e-10, atol=1e-12)


def test_estimator_and_gp_kernel_predict_on_other_sizes():
    y = np.sin(X1[:, 0])
    reg = dl.ResNetKernelRegressor(activation="tanh", sigma_b=0.5, steps=4).fit(X1, y)
    mean, std = reg.predict(X2, return_std=True)
    assert mean.shape == std.shape == (7,) and np.all(np.isfinite(mean))
    gp = GaussianProcessRegressor(
        kernel=dl.ResNetKernel(activation="swish", sigma_b=0.5, steps=4) + WhiteKernel(),
        optimizer=None).fit(X1, y)
    assert np.all(np.isfinite(gp.predict(X2)))


def test_kernel_command_with_a_second_input_file(tmp_path):
    from typer.testing import CliRunner

    from deeplimits.cli import app
    from deeplimits.experiments.store import load_dataset

    np.save(tmp_path / "x1.npy", X1)
    np.save(tmp_path / "x2.npy", X2)
    r = CliRunner().invoke(app, ["kernel", "--x", str(tmp_path / "x1.npy"), "--x2",
                                 str(tmp_path / "x2.npy"), "--activation", "tanh",
                                 "--sigma-b", "0.5", "--depth", "5",
                                 "--out", str(tmp_path / "k.nc")])
    assert r.exit_code == 0, r.output
    ref = dl.kernel(dl.ResNet(width=3, depth=5, activation="tanh", sigma_b=0.5,
                              input_layer=dl.InputLayer(3)), X1, X2)
    np.testing.assert_allclose(load_dataset(tmp_path / "k.nc").ntk.values, ref.ntk, rtol=1e-12)

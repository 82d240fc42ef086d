"""Depth-muP learning-rate sweeps (``trained_scaling.md`` §10): the optimal-rate estimator
on curves of known optimum, the parameterisation rules, the sweep trainer and bad input.
The claim T5 itself runs in test_claims.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeplimits.analysis.optimal_rate import optimal_rate, rate_scaling
from deeplimits.data.scaling import synthetic_ode_data
from deeplimits.simulation.rate_sweep import branch_multiplier, rate_used, train_rate_grid
from deeplimits.simulation.training import TrainConfig

RATES = list(2.0 ** np.arange(-6, 4))


def test_optimal_rate_is_the_vertex_of_a_parabola_and_flags_the_grid_ends():
    u = np.log(RATES)
    for u0 in (-2.3, 0.1, 1.7):
        got, bracketed = optimal_rate(RATES, 0.7 * (u - u0) ** 2 + 1.0)
        assert got == pytest.approx(u0, abs=1e-9) and bracketed
    got, bracketed = optimal_rate(RATES, (u - 10.0) ** 2)  # the minimum is past the grid
    assert not bracketed and got == pytest.approx(u[-1])
    # a cliff (the loss of a diverged run capped) does not move the vertex past the grid point
    curve = np.where(u > 0.5, 5.0, (u - 0.0) ** 2)
    assert u[0] <= optimal_rate(RATES, curve)[0] <= u[-1]


def test_rate_scaling_recovers_a_known_exponent_with_an_interval_that_covers_it():
    rng = np.random.default_rng(3)
    depths = [4, 8, 16, 32, 64]
    u = np.log(RATES)
    for slope in (0.0, -0.5, -1.0):
        centre = 0.5 + slope * np.log(np.array(depths) / 4.0)
        logl = (u[None, :, None] - centre[:, None, None]) ** 2
        logl = logl + 0.05 * rng.standard_normal((len(depths), len(RATES), 6))
        fit = rate_scaling(depths, RATES, np.exp(logl), n_boot=300)
        assert fit.lo <= slope <= fit.hi and fit.hi - fit.lo < 0.2
        assert fit.all_bracketed
    # a slope of -1 is far outside the interval of a flat optimum: the estimator has power
    flat = np.exp((u[None, :, None] - 0.5) ** 2 + 0.05 * rng.standard_normal((5, 10, 6)))
    fit = rate_scaling(depths, RATES, flat, n_boot=300)
    assert fit.hi < 0.2 and fit.lo > -0.2


def test_optimal_rate_and_rate_scaling_refuse_bad_input():
    with pytest.raises(ValueError, match="at least 3 rates"):
        optimal_rate([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="increasing"):
        optimal_rate([1.0, 3.0, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        optimal_rate([1.0, 2.0, 3.0], [0.0, np.inf, 1.0])
    with pytest.raises(ValueError, match="window"):
        optimal_rate([1.0, 2.0, 3.0], [1.0, 0.0, 1.0], window=0)
    with pytest.raises(ValueError, match="finite and > 0"):
        rate_scaling([1, 2, 3], [1.0, 2.0, 3.0], np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match="3 distinct depths"):
        rate_scaling([1, 2], [1.0, 2.0, 3.0], np.ones((2, 3, 2)))


def test_parameterisation_rules():
    assert branch_multiplier("standard", 64) == 1.0
    assert branch_multiplier("depth-mup", 64) == pytest.approx(1 / 8)
    assert rate_used("depth-mup", "sgd", 0.3, 64) == 0.3
    assert rate_used("depth-mup", "adam", 0.3, 64) == pytest.approx(0.3 / 8)
    assert rate_used("standard", "adam", 0.3, 64) == 0.3
    with pytest.raises(ValueError, match="parameterisation must be one of"):
        branch_multiplier("mup", 4)


def _small():
    return synthetic_ode_data(0, n_train=100, n_test=10)


def test_train_rate_grid_at_depth_one_the_parameterisations_coincide():
    # at L = 1 the multiplier 1/sqrt(L) and the rate rule are the identity: same cells
    cfg = TrainConfig(activation="tanh", delta="none", max_epochs=2, batch_size=25)
    ds = train_rate_grid(cfg, [1, 3], [1e-3, 1e-2, 1e4], [0, 1], data=_small())
    one = ds.loss.sel(depth=1)
    np.testing.assert_allclose(one.sel(parameterisation="standard"),
                               one.sel(parameterisation="depth-mup"), rtol=1e-6)
    three = ds.loss.sel(depth=3)
    assert not np.allclose(three.sel(parameterisation="standard"),
                           three.sel(parameterisation="depth-mup"))
    # SGD and Adam cells are trained apart although they share one compiled function
    assert not np.allclose(three.sel(optimizer="sgd"), three.sel(optimizer="adam"))
    # a reasonable rate trains; an absurd one is capped at the initial loss, marked diverged
    ok = ds.sel(optimizer="adam").isel(rate_index=1)
    assert np.all(ok.loss < ok.initial_loss) and not ok.diverged.any()
    wild = ds.isel(rate_index=2)
    assert np.all(wild.diverged)
    np.testing.assert_array_equal(wild.loss, wild.initial_loss)
    assert ds.rate_used.sel(optimizer="adam", parameterisation="depth-mup", depth=3,
                            rate_index=1) == pytest.approx(1e-2 / math.sqrt(3))
    assert ds.rate_used.sel(optimizer="sgd", parameterisation="depth-mup", depth=3,
                            rate_index=1) == pytest.approx(1e-2)


def test_train_rate_grid_takes_one_grid_per_optimizer_and_parameterisation():
    cfg = TrainConfig(delta="none", max_epochs=1, batch_size=25)
    grids = {("sgd", "standard"): [0.1, 0.2], ("sgd", "depth-mup"): [1.0, 2.0]}
    ds = train_rate_grid(cfg, [2], grids, [0], optimizers=["sgd"], data=_small())
    np.testing.assert_allclose(ds.rate.sel(optimizer="sgd", parameterisation="depth-mup"),
                               [1.0, 2.0])
    with pytest.raises(ValueError, match="no grid"):
        train_rate_grid(cfg, [2], grids, [0], data=_small())  # adam grids missing
    with pytest.raises(ValueError, match="one length"):
        train_rate_grid(cfg, [2], grids | {("sgd", "standard"): [0.1]}, [0],
                        optimizers=["sgd"], data=_small())


@pytest.mark.parametrize("kwargs, match", [
    (dict(config=TrainConfig(delta="shared")), "no trainable delta"),
    (dict(config=TrainConfig(delta="none", depth_scaled=True)), "depth_scaled=False"),
    (dict(rates=[0.0, 1.0]), "rates must be"),
    (dict(rates=[1.0, 0.5]), "increasing"),
    (dict(optimizers=["rmsprop"]), "optimizer must be one of"),
    (dict(depths=[2, 2]), "distinct"),
    (dict(parameterisations=["sp"]), "parameterisation must be one of"),
])
def test_train_rate_grid_refuses_bad_grids_before_work(kwargs, match):
    args = dict(config=TrainConfig(delta="none"), depths=[2, 4], rates=[1e-3, 1e-2],
                seeds=[0]) | kwargs
    with pytest.raises(ValueError, match=match):
        train_rate_grid(args.pop("config"), args.pop("depths"), args.pop("rates"),
                        args.pop("seeds"), data=_small(), **args)

"""Marion et al.'s maps (``trained_scaling.md`` §9): the critical-exponent estimator on
synthetic maps of known root, the change maps of small networks, the ``marion-map`` study
and bad input. The claim T4-critical-line runs in test_claims.py."""

from __future__ import annotations

import numpy as np
import pytest

from deeplimits.experiments.claims.marion import predicted_critical
from deeplimits.experiments.marion_maps import critical_beta
from deeplimits.experiments.sweeps import Sweep, collect, get_study, run_sweep
from deeplimits.simulation.marion_maps import change_maps

BETAS = np.round(np.arange(0.0, 1.21, 0.1), 4)
DEPTHS = [30, 100, 300, 1000]


def _synthetic(beta_c, n_seeds=5, noise=0.05, seed=0):
    """log10 change = (beta_c - beta) log10 L + noise: depth-independent exactly at beta_c."""
    rng = np.random.default_rng(seed)
    lx = np.log10(DEPTHS)[:, None, None]
    return (beta_c - BETAS)[None, None, :] * lx + noise * rng.standard_normal(
        (len(DEPTHS), n_seeds, BETAS.size))


@pytest.mark.parametrize("beta_c", [0.23, 0.5, 0.81])
def test_critical_beta_recovers_a_known_root_and_its_interval_covers_it(beta_c):
    f = critical_beta(DEPTHS, BETAS, _synthetic(beta_c), n_boot=400)
    assert f.beta_c == pytest.approx(beta_c, abs=0.03)
    assert f.lo <= beta_c <= f.hi and f.hi - f.lo < 0.1 and f.found == 1.0
    # overflowed cells (+inf: the change exploded) count as growing, not as missing
    v = _synthetic(beta_c)
    v[-1, :, 0] = np.inf
    assert critical_beta(DEPTHS, BETAS, v, n_boot=100).beta_c == pytest.approx(beta_c, abs=0.03)


def test_critical_beta_without_a_sign_change_has_no_interval():
    f = critical_beta(DEPTHS, BETAS, _synthetic(2.0), n_boot=50)  # grows at every beta
    assert np.isnan(f.beta_c) and np.isnan(f.lo) and f.found == 0.0
    with pytest.raises(ValueError, match="n_depths, n_seeds, n_betas"):
        critical_beta(DEPTHS, BETAS, np.zeros((2, 3, BETAS.size)))


def test_changes_vanish_above_and_grow_below_the_critical_exponent():
    # i.i.d. (H = 1/2) res-1: the change at beta = 1.2 falls with depth, at beta = 0.1 grows
    keys = [np.random.default_rng(s) for s in range(4)]
    out, grad = change_maps(keys, [20, 20, 200, 200], [0.5] * 4, kind="res-1", width=6,
                            betas=[0.1, 1.2], n_inputs=3)
    assert out.shape == grad.shape == (4, 2)
    assert out[2:, 1].mean() < out[:2, 1].mean() - 0.3  # ~ L^(1/2 - 1.2): -0.7 decades
    assert out[2:, 0].mean() > out[:2, 0].mean()
    assert np.all(out[:, 1] < out[:, 0])
    with pytest.raises(ValueError, match="equal"):
        change_maps(keys, [20], [0.5], kind="res-1", width=6, betas=[0.5])
    with pytest.raises(ValueError, match="kind"):
        change_maps(keys[:1], [20], [0.5], kind="res-2", width=6, betas=[0.5])


def test_predictions_differ_from_the_heuristic_only_where_derived():
    assert predicted_critical("res-3", "output_change", 0.3) == 0.5
    assert predicted_critical("res-1", "output_change", 0.3) == 0.3
    assert predicted_critical("res-3", "gradient_change", 0.9) == pytest.approx(0.8)
    assert predicted_critical("res-3", "gradient_change", 0.6) == 0.5


def test_marion_map_study_runs_a_small_sweep(tmp_path):
    assert get_study("marion-map").parameters["depth"] == 1000
    sweep = Sweep("marion-map", grid={"hurst": [0.3, 0.7]}, seeds=[0],
                  config={"depth": 16, "width": 4, "betas": [0.2, 1.0], "n_inputs": 2})
    run_sweep(sweep, tmp_path / "maps", executor="inprocess", progress=False)
    ds = collect(tmp_path / "maps", sweep)
    assert ds.output_change.sizes == {"hurst": 2, "seed": 1, "beta": 2}
    assert np.all(ds.output_change.sel(beta=1.0) < ds.output_change.sel(beta=0.2))
    with pytest.raises(ValueError, match="hurst must be"):
        Sweep("marion-map", grid={"hurst": [1.5]}).validate()

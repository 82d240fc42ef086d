"""Fixed width, infinite depth (finite_width.md): closed forms, the path engine, the CLI.

The statistical claims (W1-W5) run at quick scale in tests/test_claims.py; these tests check
the pieces they rest on, cheaply.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from deeplimits import closed_forms, stats
from deeplimits import finite_width as fw
from deeplimits.cli import app
from deeplimits.experiments.store import load_dataset
from deeplimits.simulation.samplers import sample
from deeplimits.spec.networks import ResNet, hayou_resnet
from deeplimits.wide.kernels import kernel

# -- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("phi, kind, slope, shift", [
    ("identity", "affine", 1.0, 0.0),
    ("abs", "abs", 1.0, 0.0),
    (lambda x: 2 * x + 1, "affine", 2.0, -0.5),
    (lambda x: 1.5 * jnp.abs(x - 0.5), "abs", 1.5, 0.5),
    (lambda x: -0.7 * jnp.abs(x + 0.3), "abs", -0.7, -0.3),
])
def test_gbm_activation_recognises_the_family(phi, kind, slope, shift):
    g = closed_forms.gbm_activation(phi)
    assert g.kind == kind
    assert g.slope == pytest.approx(slope, rel=1e-12)
    assert g.shift == pytest.approx(shift, abs=1e-12)


@pytest.mark.parametrize("phi", ["relu", "tanh", "leaky_relu",
                                 lambda x: jnp.abs(jnp.abs(x) - 1), lambda x: 0 * x + 1])
def test_gbm_activation_rejects_others(phi):
    with pytest.raises(ValueError, match="a x \\+ b|a \\|x - c\\|"):
        closed_forms.gbm_activation(phi)


def test_gbm_laws():
    law = closed_forms.gbm_log_norm_law(closed_forms.GBMActivation("affine", 2.0, -0.5), 4, 3.0)
    assert law.mean() == pytest.approx(4 * (0.5 - 0.25) * 3)
    assert law.var() == pytest.approx(4 * 3 / 4)
    # sigma_w rescales time by sigma_w^2 (finite_width.md §1)
    assert closed_forms.gbm_log_norm_law("abs", 3, 1.0, sigma_w=2.0).var() == pytest.approx(
        closed_forms.gbm_log_norm_law("abs", 3, 4.0).var())
    # the identity case is F6's law, and the neuron law its Gaussian x log-normal
    net = ResNet(width=5, depth=8, form="A", activation="abs")
    assert closed_forms.gbm_log_norm_law("abs", 5, 1.0).mean() == pytest.approx(
        closed_forms.log_norm_law(net).mean())
    assert closed_forms.gbm_neuron_law("abs", 5, 1.0, 1.0) == closed_forms.neuron_law(net, 1.0)
    norm = closed_forms.gbm_norm_law("identity", [3.0, 4.0], 1.0)
    assert norm.median() == pytest.approx(5 * math.exp(0.5 - 0.5))
    with pytest.raises(ValueError, match="shift 0"):
        closed_forms.gbm_neuron_law(lambda x: x + 1, 3, 1.0, 1.0)
    with pytest.raises(ValueError, match="width"):
        closed_forms.gbm_log_norm_law("abs", 0, 1.0)
    with pytest.raises(ValueError, match="t must be"):
        closed_forms.relu_residual_law(3, -1.0)
    with pytest.raises(ValueError, match="point mass"):
        closed_forms.gbm_norm_law("abs", [0.0, 0.0], 1.0)


def test_relu_initial_drift_table():
    """The table of finite_width.md §7, exactly, and its sign change between 3 and 4."""
    table = {1: (1, -Fraction(1, 2)), 2: (Fraction(4, 3), -Fraction(1, 6)),
             3: (Fraction(12, 7), -Fraction(1, 21)), 4: (Fraction(32, 15), Fraction(1, 60)),
             5: (Fraction(80, 31), Fraction(9, 155)), 6: (Fraction(64, 21), Fraction(11, 126)),
             8: (Fraction(1024, 255), Fraction(257, 2040))}
    for n, (active, drift) in table.items():
        assert closed_forms.relu_live_active_mean(n) == pytest.approx(float(active), rel=1e-14)
        assert closed_forms.relu_initial_log_drift(n) == pytest.approx(float(drift), rel=1e-12)


def test_relu_live_active_mean_monte_carlo():
    """E[N_0 | N_0 >= 1] for Y_0 ~ N(0, I_n): 10^5 draws, within 4 standard errors."""
    rng = np.random.default_rng(0)
    for n in (2, 3, 5):
        N = (rng.standard_normal((100_000, n)) > 0).sum(1)
        N = N[N > 0]
        se = N.std(ddof=1) / math.sqrt(N.size)
        assert abs(N.mean() - closed_forms.relu_live_active_mean(n)) < 4 * se


# -- the path engine ------------------------------------------------------------------------------


def test_simulate_paths_agrees_with_the_dense_network():
    """Two inputs (Gram step), width 3, depth 8: KS on a neuron of each input and on
    <Y(x), Y(x')>/n, 4000 paths of each (KS detects a CDF gap of ~0.036), Bonferroni over 3
    tests at 0.01."""
    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    net = hayou_resnet(3, 8, "relu", input_dim=2)
    ds = fw.simulate_paths(net, x, jax.random.key(1), samples=4000, keep_state=True)
    ours = ds.state.isel(time=-1).values
    dense = np.asarray(sample(net, x, jax.random.key(2), samples=4000, sampler="dense"))
    stats_ = [lambda X: X[:, 0, 0], lambda X: X[:, 1, 2], lambda X: (X[:, 0] * X[:, 1]).sum(-1)]
    pvals = [stats.ks_2samp(f(ours), f(dense)).pvalue for f in stats_]
    assert stats.bonferroni(pvals) >= 0.01
    gram = ds.gram.isel(time=-1).values
    assert np.allclose(gram[:, 0, 1], (ours[:, 0] * ours[:, 1]).sum(-1) / 3, rtol=1e-5)


def test_simulate_paths_dense_option_is_the_same_law():
    """The dense network (weight matrices drawn) against the exact sampler: KS on a neuron
    and on log|phi(Y_L)|, 4000 paths each, Bonferroni over 2 tests at 0.01; the dense
    network's increments are not a scaled Gaussian vector, so this is a real check."""
    net = hayou_resnet(3, 8, "tanh", input_dim=1)
    exact = fw.simulate_paths(net, [1.0], jax.random.key(4), samples=4000, keep_state=True)
    dense = fw.simulate_paths(net, [1.0], jax.random.key(5), samples=4000, keep_state=True,
                              sampler="dense")
    assert dense.attrs["sampler"] == "dense"
    pick = [lambda d: d.state.isel(time=-1, input=0, neuron=0).values,
            lambda d: d.log_phi_norm.isel(time=-1, input=0).values]
    assert stats.bonferroni([stats.ks_2samp(f(exact), f(dense)).pvalue for f in pick]) >= 0.01
    with pytest.raises(ValueError, match="sampler"):
        fw.simulate_paths(net, [1.0], jax.random.key(0), samples=4, sampler="sde")


def test_dead_starts_and_absorption_hold_by_construction():
    """Implementation checks taken out of W4's verdict: a dead start has probability 2^-n
    (the symmetry of Y_0 = W_in x; within 4 binomial SE on 8192 paths) and stays frozen
    exactly (phi = 0 gives a zero increment)."""
    ds = fw.dead_orthant_study([2, 3], [4], samples=8192, seed=0)
    p = 2.0 ** -ds.width.values
    z = (ds.dead_start.values[:, 0] / 8192 - p) / np.sqrt(p * (1 - p) / 8192)
    assert np.all(np.abs(z) < 4)
    assert float(ds.frozen_displacement.max()) == 0.0


def test_simulate_paths_records_and_reproduces():
    net = hayou_resnet(2, 8, "relu", input_dim=1, horizon=2.0)
    a = fw.simulate_paths(net, [1.0], jax.random.key(3), samples=50, times=[0.5, 2.0],
                          keep_state=True, ito=True)
    b = fw.simulate_paths(net, [1.0], jax.random.key(3), samples=50, times=[0.5, 2.0],
                          keep_state=True, ito=True)
    xr.testing.assert_identical(a, b)
    assert list(a.time.values) == [0.0, 0.5, 2.0]
    assert a.state.shape == (50, 3, 1, 2)
    # occupation is int N ds: at most n t; dead starts stay frozen and never occupy
    occ = a.occupation.isel(input=0).values
    assert np.all(occ[:, -1] <= 2 * 2.0 + 1e-6) and np.all(np.diff(occ, axis=1) >= 0)
    dead = ~np.isfinite(a.log_phi_norm.isel(input=0, time=0).values)
    X = a.state.isel(input=0).values
    assert np.all(X[dead, -1] == X[dead, 0]) and np.all(occ[dead, -1] == 0)
    # for ReLU the compensator is (s_w^2/2)(int N ds - 2t) on live paths
    live = ~dead & np.isfinite(a.log_phi_norm.isel(input=0, time=-1).values)
    comp = a.compensator.isel(input=0, time=-1).values[live]
    assert np.allclose(comp, (occ[live, -1] - 2 * 2.0) / 4, atol=1e-4)


def test_antithetic_pairs_share_the_start_and_negate_the_noise():
    # identity activation, one layer: Y_1 - Y_0 = sqrt(dt) s_w |Y_0| Z, so the pair's
    # increments are exact negatives
    net = hayou_resnet(3, 1, "identity", input_dim=1)
    ds = fw.simulate_paths(net, [1.0], jax.random.key(2), samples=64, keep_state=True,
                           antithetic=True, dtype=jnp.float64)
    X = ds.state.isel(input=0).values.reshape(32, 2, 2, 3)      # (pair, path, time, neuron)
    np.testing.assert_array_equal(X[:, 0, 0], X[:, 1, 0])
    np.testing.assert_allclose(X[:, 0, 1] - X[:, 0, 0], -(X[:, 1, 1] - X[:, 1, 0]),
                               rtol=1e-12, atol=1e-12)
    assert len(np.unique(X[:, 0, 0, 0])) == 32                  # pairs are independent
    with pytest.raises(ValueError, match="even"):
        fw.simulate_paths(net, [1.0], jax.random.key(2), samples=9, antithetic=True)


def test_coarsen_couples_the_half_step_network_to_the_same_brownian_path():
    fine_net = hayou_resnet(4, 64, "relu", input_dim=1)
    coarse_net = hayou_resnet(4, 32, "relu", input_dim=1)
    kw = dict(samples=256, keep_state=True, dtype=jnp.float64)
    fine = fw.simulate_paths(fine_net, [1.0], jax.random.key(7), **kw)
    coupled = fw.simulate_paths(coarse_net, [1.0], jax.random.key(7), coarsen=2, **kw)
    other = fw.simulate_paths(coarse_net, [1.0], jax.random.key(8), coarsen=2, **kw)
    y = [d.state.isel(input=0, time=-1).values for d in (fine, coupled, other)]
    np.testing.assert_array_equal(fine.state.isel(input=0, time=0).values,
                                  coupled.state.isel(input=0, time=0).values)
    # same Brownian increments: the paths differ by O(dt^(1/2)), far less than two laws
    assert np.std(y[0] - y[1]) < 0.2 * np.std(y[0] - y[2])


@pytest.mark.parametrize("kwargs, message", [
    (dict(times=[0.3]), "multiple of dt"),
    (dict(times=[1.0, 0.5]), "increasing"),
    (dict(samples=1), "samples"),
    (dict(pad_width=2), "pad_width"),
])
def test_simulate_paths_bad_input(kwargs, message):
    net = hayou_resnet(4, 8, "relu", input_dim=1)
    kwargs = {"samples": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        fw.simulate_paths(net, [1.0], jax.random.key(0), **kwargs)


def test_simulate_paths_needs_hayou_network():
    with pytest.raises(ValueError, match="biases"):
        fw.simulate_paths(ResNet(width=3, depth=4, sigma_b=0.5), np.ones(3),
                          jax.random.key(0), samples=4)
    with pytest.raises(ValueError, match="form A"):
        fw.simulate_paths(ResNet(width=3, depth=4, form="C"), np.ones(3), jax.random.key(0),
                          samples=4)


def test_width_first_covariance_is_the_kernel_recursion():
    x = np.array([[1.0, 0.0], [0.6, 0.8]]) * math.sqrt(2)
    base = hayou_resnet(1, 1, "relu", input_dim=2)
    ours = fw.width_first_covariance("relu", x @ x.T / 2, 8)
    np.testing.assert_allclose(ours, kernel(base, x, depth=8, compute_ntk=False).nngp,
                               rtol=1e-10)
    # ReLU diagonal: q_L = q_0 (1 + 1/(2L))^L -> e^{1/2}
    assert ours[0, 0] == pytest.approx((1 + 1 / 16) ** 8, rel=1e-12)


def test_sign_change_width():
    ds = xr.Dataset({"direct_lo": (("width", "horizon"), [[-3.0], [-2.0], [1.0], [2.0]]),
                     "direct_hi": (("width", "horizon"), [[-1.0], [-0.5], [3.0], [4.0]])},
                    coords={"width": [1, 2, 3, 4], "horizon": [1.0]})
    assert fw.sign_change_width(ds, 1.0) == 3
    ds["direct_hi"][1, 0] = 0.5  # width 2 straddles 0: no clean separation
    assert fw.sign_change_width(ds, 1.0) is None
    ds["direct_hi"][1, 0] = -0.5
    # a step-bias bound widens every interval: width 3 no longer clears 0, so width 4 is
    # no clean threshold either
    ds["direct_bound"] = (("width", "horizon"), [[0.1], [0.1], [1.5], [0.1]])
    assert fw.sign_change_width(ds, 1.0) is None
    ds["direct_bound"][2, 0] = 0.4
    assert fw.sign_change_width(ds, 1.0) == 3


def test_study_bad_input():
    with pytest.raises(ValueError, match="widths"):
        fw.regime_study([0, 1], [1.0], samples=10)
    with pytest.raises(ValueError, match="horizons"):
        fw.regime_study([1, 2], [-1.0], samples=10)
    with pytest.raises(ValueError, match="pairs"):
        fw.regime_study([1, 2], [1.0], samples=11)
    with pytest.raises(ValueError, match="even number of layers"):
        fw.regime_study([1, 2], [1.0], steps_per_unit=3, samples=10)
    with pytest.raises(ValueError, match="not of the form"):
        fw.gbm_law_study(["relu"], [2], samples=10)
    with pytest.raises(ValueError, match="rho"):
        fw.covariance_grid([2], [2], rho=1.0, samples=10)


# -- CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["regime", "--widths", "0-3"],
    ["regime", "--horizons", "1,-2"],
    ["regime", "--level", "1.5"],
    ["regime", "--samples", "1"],
    ["law", "--activation", "tanh"],
    ["law", "--t", "0"],
    ["dead", "--depths", "a,b"],
    ["limits", "--rho", "1"],
    ["limits", "--activation", "nope"],
    ["nongaussian", "--activations", "identity"],
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, args):
    out = tmp_path / "r.nc"
    result = CliRunner().invoke(app, ["finite-width", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert not any(tmp_path.iterdir())


def test_cli_rejects_bad_output_suffix(tmp_path):
    result = CliRunner().invoke(app, ["finite-width", "dead", "--out", str(tmp_path / "r.txt")])
    assert result.exit_code == 2
    assert not any(tmp_path.iterdir())


def test_cli_dead_writes_dataset_and_figure(tmp_path):
    out = tmp_path / "dead.nc"
    result = CliRunner().invoke(app, ["finite-width", "dead", "--widths", "2", "--depths",
                                      "1,4", "--samples", "400", "--seed", "3", "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    assert (tmp_path / "dead.png").stat().st_size > 0
    assert ds.attrs["seed"] == 3 and "version_jax" in ds.attrs and "config" in ds.attrs
    assert float(ds.frozen_displacement.max()) == 0.0
    assert "n=2: dead start" in result.output

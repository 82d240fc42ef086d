"""Trained-weight scaling (``trained_scaling.md``): estimators, generators, models, training
sweep, CLI and bad input. Claims T1/T2/T4 run separately in test_claims.py."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimits.cli import app
from deeplimits.experiments.store import save_dataset
from deeplimits.scaling import (
    FCResNet,
    ScalingData,
    TrainConfig,
    analyze_weights,
    cell_path,
    check_weight_stacks,
    conv_singular_values,
    depth_grid,
    detrended_cumsum,
    digits_embedding,
    effective_weights,
    fgn,
    fgn_autocovariance,
    fit_slope,
    increment,
    init_fc_resnet,
    load_sweep,
    mean_sq,
    mnist_embedding,
    quadratic_variation,
    root_ssq,
    spectral_max,
    sweep_branch_scale,
    sweep_weights,
    synthetic_ode_data,
    synthetic_weights,
    train_cells,
    train_depth,
    train_sweep,
    trend_noise,
)

runner = CliRunner()


# -- estimator arithmetic ---------------------------------------------------------------------


def test_estimators_on_linear_sequence():
    E = np.array([[1.0, -2.0], [0.5, 3.0]])
    L, gamma = 17, 0.3
    A = np.arange(L)[:, None, None] * E
    norm_e = np.linalg.norm(E)
    assert quadratic_variation(A) == pytest.approx((L - 1) * norm_e**2, rel=1e-12)
    assert increment(A, gamma) == pytest.approx(L**gamma * norm_e, rel=1e-12)
    # MeanSq is the intended (L^-1 sum)^1/2, not RootSSQ
    assert mean_sq(A) == pytest.approx(root_ssq(A) / math.sqrt(L), rel=1e-12)
    assert mean_sq(A) != pytest.approx(root_ssq(A))
    assert spectral_max(A) == pytest.approx((L - 1) * np.linalg.norm(E, 2), rel=1e-12)


def test_detrended_cumsum_bridge_and_windows():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 3, 2))  # L < 10: bridge formula
    W = np.concatenate([np.zeros((1, 6)), np.cumsum(A.reshape(7, -1), axis=0)])
    bridge = max(np.linalg.norm(W[k] - k / 7 * W[7]) for k in range(1, 8))
    assert detrended_cumsum(A) == pytest.approx(bridge, rel=1e-12)

    L = 50
    A = rng.standard_normal((L, 2, 2))
    W = np.concatenate([np.zeros((1, 4)), np.cumsum(A.reshape(L, -1), axis=0)])
    w = max(3, L // 10)
    brute = []
    for k in range(1, L):
        if k < w:
            mu = W[0:2 * k].mean(axis=0)
        elif k >= L - w:
            mu = W[2 * k - L:L].mean(axis=0)
        else:
            mu = W[k - w:k + w].mean(axis=0)
        brute.append(np.linalg.norm(W[k] - mu))
    assert detrended_cumsum(A) == pytest.approx(max(brute), rel=1e-12)


def test_fft_singular_values_match_circular_convolution_matrix():
    rng = np.random.default_rng(1)
    c_out, c_in, k, H, W = 2, 3, 3, 5, 4
    K = rng.standard_normal((c_out, c_in, k, k))
    # explicit operator: y[o, i, j] = sum_{c,a,b} K[o, c, a, b] x[c, (i+a) % H, (j+b) % W]
    M = np.zeros((c_out * H * W, c_in * H * W))
    for o in range(c_out):
        for i in range(H):
            for j in range(W):
                for c in range(c_in):
                    for a in range(k):
                        for b in range(k):
                            M[(o * H + i) * W + j, (c * H + (i + a) % H) * W + (j + b) % W] += \
                                K[o, c, a, b]
    exact = np.sort(np.linalg.svd(M, compute_uv=False))[::-1]
    fft = conv_singular_values(K, (H, W), top=None)
    np.testing.assert_allclose(fft, exact[:fft.size], atol=1e-10)
    stack = np.stack([K, 2 * K])  # spectral norms of a stack of kernels (CIFAR estimators)
    assert spectral_max(stack, input_shape=(H, W)) == pytest.approx(2 * exact[0], rel=1e-10)


# -- generators ---------------------------------------------------------------------------------


def test_fgn_covariance_matches_closed_form():
    n, N = 6, 40_000
    for hurst in (0.3, 0.8):
        g = fgn(np.random.default_rng(2), n, hurst, (N,))  # (n, N)
        emp = g @ g.T / N
        gamma = fgn_autocovariance(n, hurst)
        exact = gamma[np.abs(np.subtract.outer(np.arange(n), np.arange(n)))]
        # SE of a sample covariance of unit-variance Gaussians <= sqrt(2/N) = 0.0071; 5 SE
        np.testing.assert_allclose(emp, exact, atol=5 * math.sqrt(2 / N))


def test_slope_recovery_within_intervals():
    """Spec grid 10-2000 (8 depths), 10 seeds: known slopes lie in the 95% intervals and
    within the spec's tolerances."""
    depths = [10, 25, 60, 150, 300, 600, 1200, 2000]
    for beta in (0.0, 0.5):
        s = analyze_weights(synthetic_weights(3, depths, "smooth", beta=beta, n_seeds=10),
                            n_boot=400).slopes
        for stat, target in (("MaxNorm", -beta), ("Increment", -1.0), ("RootSSQ", 0.5 - beta)):
            assert s[stat].contains(target), (beta, s[stat])
            assert abs(s[stat].slope - target) < 0.05
    s = analyze_weights(synthetic_weights(4, depths, "iid", beta=0.5, n_seeds=10),
                        n_boot=400).slopes
    assert s["Increment"].contains(0.0) and s["RootSSQ"].contains(0.0)
    s = analyze_weights(synthetic_weights(5, depths, "fgn", beta=0.2, hurst=0.7, n_seeds=10),
                        n_boot=400).slopes
    assert abs(s["DetrendedCumSum"].slope - 0.5) < 0.1


def test_trend_noise_recovers_smooth_profile():
    depths = [600, 700, 800, 900]
    w = {L: v[0] for L, v in synthetic_weights(6, depths, "smooth", beta=0.3, n_seeds=1).items()}
    tn = trend_noise(w, 0.3)
    for L in depths:  # trend error O(1/grid) relative to the profile
        rel = np.abs(tn.trend[L] - w[L]).max() / np.abs(w[L]).max()
        assert rel < 0.05
        assert np.abs(tn.noise[L]).max() < 0.05 * np.abs(w[L]).max() * L**0.3


# -- data ---------------------------------------------------------------------------------------


def test_data_sets():
    assert depth_grid()[:7] == [3, 4, 5, 6, 7, 8, 10] and len(depth_grid()) == 31
    d1, d2 = digits_embedding(0), digits_embedding(0)
    np.testing.assert_array_equal(d1.x_train, d2.x_train)
    assert d1.x_train.shape == (1024, 25) and d1.x_test.shape == (256, 25)
    np.testing.assert_allclose(np.linalg.norm(d1.x_train, axis=1), 1, rtol=1e-6)
    assert np.all(d1.y_train[:, 10:] == 0) and np.all(d1.y_train.sum(axis=1) == 1)
    rng = np.random.default_rng(0)  # the original MNIST embedding: 28 -> 12 -> 5, d = 25
    m = mnist_embedding(rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10,
                        rng.integers(0, 256, (5, 28, 28)), np.arange(5))
    assert m.x_train.shape == (30, 25) and m.y_test.shape == (5, 25)
    s = synthetic_ode_data(0)
    np.testing.assert_allclose(np.linalg.norm(s.x_train, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(s.y_test, axis=1), 1, rtol=1e-6)


# -- models -------------------------------------------------------------------------------------


def test_model_semantics_and_scan_equals_loop():
    rng = np.random.default_rng(0)
    m = init_fc_resnet(rng, 12, 5, activation="tanh", delta="shared", scale=1.0)
    x = jnp.asarray(rng.standard_normal((7, 5)), jnp.float32)
    np.testing.assert_allclose(m(x), m.apply_loop(x), rtol=1e-6, atol=1e-7)
    flipped = FCResNet(m.A, m.b, -m.delta, activation="tanh")  # shared delta enters as |delta|
    np.testing.assert_array_equal(m(x), flipped(x))
    L = 400  # per-layer delta has std 1/L: sample std of 400 draws, SE = 1/(L sqrt(800))
    p = init_fc_resnet(rng, L, 3, delta="per-layer")
    assert abs(float(jnp.std(p.delta)) * L - 1) < 5 / math.sqrt(2 * L)
    A_eff, _ = effective_weights(p)
    np.testing.assert_allclose(A_eff, jnp.abs(p.delta)[:, None, None] * p.A)


def test_depth_scaled_rule():
    cfg = TrainConfig(depth_scaled=True)  # §10: branch a/sqrt(L); Adam eta/sqrt(L), SGD eta
    assert cfg.multiplier(16) == 0.25 and cfg.learning_rate_at(16) == pytest.approx(2.5e-4)
    sgd = TrainConfig(depth_scaled=True, optimizer="sgd")
    assert sgd.learning_rate_at(16) == 1e-3 and TrainConfig().multiplier(16) == 1.0


# -- training -----------------------------------------------------------------------------------
# One model class (linear, no delta, width 2) for every training test, so that they share
# compiled code: the compile key is (activation, delta, optimizer, loss, batch, n) and shapes.

_SYN = synthetic_ode_data(0)
_TINY = ScalingData("tiny", _SYN.x_train[:100, :2], _SYN.y_train[:100, :2],
                    _SYN.x_test[:20, :2], _SYN.y_test[:20, :2])


def _config(**kw) -> TrainConfig:
    return TrainConfig(activation="linear", delta="none", batch_size=20, **kw)


def test_vmap_over_seeds_and_padding_equal_separate_runs():
    cfg = _config(max_epochs=3, init_scale=0.1)
    together = train_cells(cfg, [(6, 0), (6, 1), (3, 1)], _TINY)
    alone = train_depth(cfg, 6, [1], _TINY)[0]
    np.testing.assert_allclose(together[1].A, alone.A, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(together[1].loss, alone.loss, rtol=1e-5)
    short = train_cells(cfg, [(3, 1)], _TINY)[0]  # trained alone: no padding layers
    np.testing.assert_allclose(together[2].A, short.A, rtol=1e-5, atol=1e-7)
    assert not np.allclose(together[0].A, together[1].A)
    assert together[0].loss[-1] < together[0].loss[0]  # training lowers the loss


def test_sweep_skips_finished_cells_and_survives_nonfinite_loss(tmp_path):
    # large linear weights: depth 40 overflows float32, depth 3 does not
    cfg = _config(init_scale=30.0, max_epochs=2)
    manifest = train_sweep(tmp_path, cfg, [3, 40], [1], data=_TINY, progress=False)
    assert manifest["cells"]["L40_s1"]["status"] == "failed"
    assert "non-finite" in manifest["cells"]["L40_s1"]["message"]
    assert manifest["cells"]["L3_s1"]["status"] != "failed"
    assert cell_path(tmp_path, 3, 1).exists() and cell_path(tmp_path, 40, 1).exists()
    stamp = cell_path(tmp_path, 3, 1).stat().st_mtime_ns
    manifest = train_sweep(tmp_path, cfg, [3, 6, 40], [1], data=_TINY, progress=False)
    assert cell_path(tmp_path, 3, 1).stat().st_mtime_ns == stamp  # skipped, not retrained
    assert set(manifest["cells"]) == {"L3_s1", "L6_s1", "L40_s1"}
    w = sweep_weights(load_sweep(tmp_path))
    assert np.all(np.isnan(w[40])) and np.all(np.isfinite(w[3]))
    # only cells stopped by a stopping rule: 2 epochs end as 'max_epochs', so none is kept
    status = manifest["cells"]["L3_s1"]["status"]
    kept = sweep_weights(load_sweep(tmp_path), statuses=("converged", "plateau"))
    assert np.all(np.isnan(kept[3])) == (status not in ("converged", "plateau"))
    assert sweep_branch_scale(load_sweep(tmp_path)) is None  # delta 'none': no shared delta
    # the one results store: its manifest records the training outcome of each cell
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["deeplimits_version"] and on_disk["cells"]["L40_s1"]["status"] == "done"
    assert on_disk["cells"]["L40_s1"]["training"]["status"] == "failed"
    assert cell_path(tmp_path, 3, 1) == tmp_path / "data" / "L3_s1.nc"
    # two usable depths only (40 failed): the analysis refuses before any work
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path)])
    assert r.exit_code == 2 and "at least 3 depths with a finite" in r.output
    with pytest.raises(ValueError, match="another configuration"):
        train_sweep(tmp_path, _config(max_epochs=3), [3], [1], data=_TINY)
    r = runner.invoke(app, ["scaling", "train", "--out", str(tmp_path), "--depths", "3",
                            "--max-epochs", "3", "--seeds", "1"])
    assert r.exit_code == 2 and "another configuration" in r.output


def test_sweep_folder_of_the_old_layout_is_read_but_not_extended(tmp_path):
    # before the one results store: cells/L*_s*.nc beside a manifest.json with a config
    cfg = _config(max_epochs=1)
    for ds in train_cells(cfg, [(3, 0), (4, 0), (6, 0)], _TINY):
        save_dataset(ds, tmp_path / "cells" / f"L{ds.attrs['depth']:05d}_s000.nc")
    (tmp_path / "manifest.json").write_text(json.dumps({"config": cfg.to_dict(), "cells": {}}))
    assert sorted(load_sweep(tmp_path)) == [(3, 0), (4, 0), (6, 0)]
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path), "--n-boot", "10", "--json"])
    assert r.exit_code == 0, r.output
    with pytest.raises(ValueError, match="layout before the one results store"):
        train_sweep(tmp_path, cfg, [3], [0], data=_TINY)
    with pytest.raises(ValueError, match="no trained cells"):
        load_sweep(tmp_path / "empty")


# -- bad input ------------------------------------------------------------------------------------


def test_bad_input():
    with pytest.raises(ValueError, match="at least 3 depths"):
        fit_slope([10, 20], [1.0, 2.0])
    with pytest.raises(ValueError, match="inconsistent per-layer shapes"):
        check_weight_stacks({4: np.ones((1, 4, 2)), 8: np.ones((1, 8, 3)), 16: np.ones((1, 16, 2))})
    with pytest.raises(ValueError, match="must have shape"):
        check_weight_stacks({4: np.ones((4, 2)), 8: np.ones((8, 2)), 16: np.ones((16, 2))})
    with pytest.raises(ValueError, match="at least 3 depths"):
        check_weight_stacks({4: np.ones((1, 4, 2, 2)), 8: np.ones((1, 8, 2, 2))})
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="hurst"):
        fgn(np.random.default_rng(0), 4, 1.2)


def test_cli_analyze_npy_stacks_and_bad_input(tmp_path):
    # 6 depths x 4 seeds: 4 depths x 2 seeds leave the Hurst interval too wide (inconclusive)
    w = synthetic_weights(7, [10, 20, 40, 80, 160, 320], "iid", beta=0.5, n_seeds=4)
    for L, v in w.items():
        for s, stack in enumerate(v):
            np.save(tmp_path / f"w{L}_{s}.npy", stack)
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path), "--n-boot", "100", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["regime"] == "diffusive-sde" and "Increment" in out["slopes"]

    few = tmp_path / "few"
    few.mkdir()
    for L in (10, 20):
        np.save(few / f"w{L}.npy", w[L][0])
    r = runner.invoke(app, ["scaling", "analyze", str(few)])
    assert r.exit_code == 2 and "at least 3 depths" in r.output
    np.save(few / "w40.npy", np.ones((40, 3, 2)))
    r = runner.invoke(app, ["scaling", "analyze", str(few)])
    assert r.exit_code == 2 and "inconsistent" in r.output
    r = runner.invoke(app, ["scaling", "train", "--out", str(tmp_path / "t"), "--depths", "4",
                            "--optimizer", "nope"])
    assert r.exit_code == 2 and not (tmp_path / "t").exists()

"""The trained-weight regime classifier (issue 15 item 1; issue 19 items 5, 6): every
synthetic sequence of known structure gets its label, acceptance is by containment of an
interval in a band (never by overlap), degenerate statistics are reported, and the wording
follows the measured exponents."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimits.cli import app
from deeplimits.experiments.claims.scaling import REGIME_CASES, regime_cases
from deeplimits.scaling import (
    Band,
    SlopeFit,
    analyze_weights,
    classify_regime,
    default_resolution,
    gaussian_max_slope,
    partial_sum_rms,
    regime_bands,
    synthetic_weights,
)

runner = CliRunner()


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("case", [c[0] for c in REGIME_CASES])
def test_each_known_sequence_gets_its_label(case, seed):
    """Brownian increments, smooth trends with alpha + beta = 1, 1.5 or 0.2, trend + noise,
    fGn H in {0.15, 0.3, 0.7} at beta = 1/2, a few large layers, heavy tails, mixed scales:
    each labelled as the theory says (quick grid 10-1600, 8 seeds), at two seeds."""
    [(name, expected, a)], _, _ = regime_cases("quick", seed, [c for c in REGIME_CASES
                                                              if c[0] == case])
    assert a.regime.regime == expected, str(a.regime)
    assert a.regime.deciding and all(len(row) == 7 for row in a.regime.deciding)


def test_fgn_is_ruled_out_by_the_hurst_band_with_the_right_direction():
    [(_, _, lo), (_, _, hi)], _, _ = regime_cases(
        "quick", 1, [c for c in REGIME_CASES if c[0] in ("fGn H=0.3", "fGn H=0.7")])
    assert "Hurst 0.3" in lo.regime.reason and "vanishing" in lo.regime.reason
    assert "diverging" in hi.regime.reason
    # the size tests alone cannot tell them from Brownian increments: beta = 1/2 both
    for a in (lo, hi):
        assert dict((r[0], r[-1]) for r in a.regime.deciding)["BranchSize (branch-1/2)"] == "in"


def _fit(name, slope, lo, hi):
    return SlopeFit(name, slope, 0.0, 0.0, lo, hi, lo, hi, lo, hi, 0.95, 10, 5)


def _diffusive_slopes(hurst_interval):
    return {"MeanSq": _fit("MeanSq", -0.5, -0.52, -0.48),
            "Peak": _fit("Peak", 0.05, 0.0, 0.1),
            "Roughness": _fit("Roughness", 0.05, 0.0, 0.1),
            "BranchSize": _fit("BranchSize", -0.5, -0.52, -0.48),
            "Hurst": _fit("Hurst", 0.5, *hurst_interval)}


def test_acceptance_is_by_containment_not_overlap():
    bands = regime_bands([10, 100, 1000], resolution=0.1)
    b = bands["brownian"]
    assert (b.lo, b.hi) == pytest.approx((0.4, 0.6))
    assert b.position(_fit("Hurst", 0.5, 0.45, 0.55)) == "in"
    assert b.position(_fit("Hurst", 0.5, 0.3, 0.7)) == "undecided"  # overlaps, too wide
    assert b.position(_fit("Hurst", 0.3, 0.25, 0.35)) == "out"
    assert classify_regime(_diffusive_slopes((0.45, 0.55)), bands).regime == "diffusive-sde"
    wide = classify_regime(_diffusive_slopes((0.3, 0.7)), bands)
    assert wide.regime == "inconclusive", str(wide)  # an overlap-based rule passed this
    assert classify_regime(_diffusive_slopes((0.25, 0.35)), bands).regime == "neither"


def test_band_widths_are_derived_and_stated():
    assert default_resolution([10, 2000]) == pytest.approx(math.log(2) / math.log(200))
    # the quadrature of E max of L |N(0,1)| against Monte Carlo, within 5 SE of the slope
    rng, n = np.random.default_rng(0), 4000
    m = [np.abs(rng.standard_normal((n, L))).max(axis=1) for L in (10, 1000)]
    mc = math.log(m[1].mean() / m[0].mean()) / math.log(100)
    se = math.hypot(*(x.std() / x.mean() for x in m)) / math.sqrt(n) / math.log(100)
    assert abs(gaussian_max_slope([10, 1000]) - mc) < 5 * se
    bands = regime_bands([10, 100, 1000])
    assert all("resolution r" in band.derivation for band in bands.values())
    assert isinstance(bands["rough"], Band) and bands["rough"].hi > bands["smooth"].hi
    with pytest.raises(ValueError, match="resolution"):
        regime_bands([10, 100], resolution=-1)


def test_short_depth_range_is_inconclusive_not_a_guess():
    w = synthetic_weights(2, [10, 12, 15], "iid", beta=0.5, n_seeds=4)
    assert analyze_weights(w, n_boot=100).regime.regime == "inconclusive"


def test_partial_sum_rms_scaling():
    rng = np.random.default_rng(0)  # E|W_k|^2 = k for i.i.d. unit layers: mean (L+1)/2
    L, N = 50, 4000
    ms = np.mean([partial_sum_rms(rng.standard_normal((L, 1))) ** 2 for _ in range(N)])
    # SE of the mean: sd of (1/L sum W_k^2) is below (L+1)/2 * sqrt(2) (Gaussian 4th moment)
    assert abs(ms - (L + 1) / 2) < 5 * (L + 1) / 2 * math.sqrt(2 / N)


def _zero_mean_smooth(depths, beta=0.5, n_seeds=3):
    E = np.array([[1.0, -2.0], [0.5, 3.0]])
    return {L: np.stack([L ** -beta * np.sin(2 * np.pi * (np.arange(L) + 0.5) / L)[:, None, None]
                         * (E + s) for s in range(n_seeds)]) for L in depths}


def test_degenerate_cumsum_is_reported_and_the_verdict_uses_the_others(tmp_path):
    """Issue 19 item 5: a zero-mean smooth profile makes CumSum zero up to rounding."""
    depths = [10, 20, 40, 80, 160, 320]
    w = _zero_mean_smooth(depths, beta=0.5)
    scale = {L: np.full(3, float(L) ** -0.5) for L in depths}  # alpha = 1/2: alpha + beta = 1
    a = analyze_weights(w, n_boot=200, branch_scale=scale)
    assert "CumSum" in a.degenerate and "CumSum" not in a.slopes
    assert a.regime.regime == "smooth-ode", str(a.regime)
    assert "degenerate" in a.table()
    for L, v in w.items():
        for s, stack in enumerate(v):
            np.save(tmp_path / f"w{L}_{s}.npy", stack)
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path), "--n-boot", "100", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert "CumSum" in out["degenerate"] and out["regime"] == "neither"  # delta = 1: 1/2 < 1
    assert "blow-up" in out["limit"]
    r = runner.invoke(app, ["scaling", "analyze", str(tmp_path), "--n-boot", "100"])
    assert r.exit_code == 0 and "degenerate" in r.output


def test_constant_weights_have_zero_increments_and_count_as_smooth():
    depths = [10, 20, 40, 80]
    w = {L: np.ones((2, L, 2, 2)) / L for L in depths}
    a = analyze_weights(w, n_boot=100)
    assert "MaxIncrement" in a.degenerate and "Roughness" in a.degenerate
    assert a.regime.regime == "smooth-ode", str(a.regime)  # size 1/L, delta = 1


@pytest.mark.parametrize("beta", [0.49, 0.99, 1.49])
def test_wording_follows_the_measured_exponents(beta):
    """Issue 19 item 6: smooth weights with delta = 1 at beta 0.49 / 0.99 / 1.49 give a
    blow-up / the linear ODE with alpha + beta = 1 / a trivial limit, and say so."""
    depths = [10, 16, 25, 40, 63, 100, 160, 250]
    a = analyze_weights(synthetic_weights(4, depths, "smooth", beta=beta, n_seeds=6), n_boot=200)
    r = a.regime
    assert f"alpha + beta = {beta:.2f}" in r.reason or f"{beta - 0.01:.2f}" in r.reason
    if beta < 0.5:
        assert r.regime == "neither" and "blow-up" in r.limit and "< 1" in r.reason
    elif beta < 1:
        assert r.regime == "smooth-ode" and "linear ODE" in r.limit
    else:
        assert r.regime == "neither" and "trivial" in r.limit and "> 1" in r.reason
    assert ("consistent with alpha + beta = 1" in r.reason) == (r.regime == "smooth-ode")


def test_all_zero_weights_are_inconclusive_not_a_traceback():
    a = analyze_weights({L: np.zeros((2, L, 2, 2)) for L in (10, 20, 40)}, n_boot=50)
    assert a.regime.regime == "inconclusive" and "vanish" in a.regime.reason
    assert {"MeanSq", "Peak", "Hurst"} <= set(a.degenerate)

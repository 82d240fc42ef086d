"""Every registered claim passes at quick scale with its fixed seed, and its negative
control fails.

Each claim's own verdict states its statistic, tolerance and sample size (see the claim
modules); this test fails whenever a property that the report certifies breaks, and
whenever a check loses its power (its deliberately wrong twin stops failing, see
``deeplimits.experiments.claims._base``).
"""

import math

import numpy as np
import pytest
import xarray as xr

from deeplimits.experiments.claims import (
    Claim,
    Control,
    Detectable,
    Verdict,
    detectable_shift,
    judge,
    registry,
)
from deeplimits.experiments.report import figure_png
from deeplimits.experiments.store import provenance

CLAIMS = sorted(registry())


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_claim_passes_and_its_control_fails_at_quick_scale(claim_id):
    claim = registry()[claim_id]
    assert claim.control is not None, f"{claim_id} declares no negative control"
    result = claim.run("quick", seed=0)
    assert result.verdict.passed, f"{claim_id}: {result.verdict}"
    assert result.verdict.control is not None, f"{claim_id}: control not judged"
    assert not result.verdict.control.passed, f"{claim_id}: control passed: {result.verdict}"
    assert result.verdict.detectable and np.isfinite(result.verdict.detectable_effect)
    assert np.isfinite(result.verdict.measured)
    # the control's verdict survives the dataset (the report reads it from there)
    assert Verdict.from_attrs(result.dataset.attrs) == result.verdict
    # the figure is drawn from the dataset alone
    assert figure_png(claim.plot(result.dataset))[:8] == b"\x89PNG\r\n\x1a\n"
    # the results store adds provenance: it must not replace an attribute of the claim's
    stamp, attrs = provenance(config={}, seed=0), result.dataset.attrs
    assert [k for k in attrs.keys() & stamp.keys() if attrs[k] != stamp[k]] == []


def test_claims_cover_the_issues():
    ids = set(registry())
    for required in ("F1", "F2-tanh", "F2-relu", "F4", "F5-swish", "F6-norm", "F6-neuron",
                     "F7", "F8", "K1-nngp", "K1-ntk", "K2", "K3", "K4-data"):
        assert required in ids


# -- the mechanism itself (cheap) --------------------------------------------------------

def _decide(z: float) -> Verdict:
    return Verdict("z", "|z| < 2.576", z, abs(z) < 2.576)


def test_judge_runs_one_decision_on_model_and_twin():
    det = Detectable(detectable_shift(0.01), "relative error in the variance")
    v = judge(_decide, 0.3, 7.0, det)
    assert v.passed and v.control is not None and not v.control.passed and v.conclusive
    assert v.detectable == "detects a 4.9% relative error in the variance at 99% power"
    ds = xr.Dataset()
    from deeplimits.experiments.claims._base import with_verdict
    assert Verdict.from_attrs(with_verdict(ds, v).attrs) == v
    # a twin that passes is not a rejected control
    assert not judge(_decide, 0.3, 0.1, det).conclusive
    with pytest.raises(TypeError, match="Detectable"):
        judge(_decide, 0.3, 7.0, "3%")


def test_detectable_shift_is_the_power_calculation():
    # difference test at alpha 0.01, power 0.99: (2.576 + 2.326) se
    assert math.isclose(detectable_shift(1.0), 4.9021, rel_tol=1e-4)
    # equivalence test, margin m: m + (z_power - z_{1-alpha}) se = m at alpha = 1 - power
    assert math.isclose(detectable_shift(1.0, margin=0.5), 0.5, abs_tol=1e-12)
    # the power is real: simulate the difference test at the stated effect
    rng = np.random.default_rng(1)
    est = detectable_shift(1.0) + rng.standard_normal(200_000)
    assert abs(np.mean(np.abs(est) >= 2.5758) - 0.99) < 5 * math.sqrt(0.99 * 0.01 / 2e5)
    for bad in (dict(se=-1.0), dict(se=1.0, alpha=0.0), dict(se=1.0, margin=-0.1)):
        with pytest.raises(ValueError):
            detectable_shift(**bad)


def test_a_declared_control_must_be_judged():
    claim = Claim("X", "t", "s", lambda scale, seed: xr.Dataset(attrs=dict(
        statistic="z", tolerance="t", measured=0.0, passed=1)), lambda ds: None,
        control=Control("twin", "a wrong twin"))
    with pytest.raises(ValueError, match="did not judge"):
        claim.run("quick", 0)
    with pytest.raises(ValueError, match="non-empty"):
        Control("", "x")

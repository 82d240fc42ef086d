"""Every registered claim passes at quick scale with its fixed seed, and its negative
control fails.

Each claim's own verdict states its statistic, tolerance and sample size (see the claim
modules); this test fails whenever a property that the report certifies breaks, and
whenever a check loses its power (its deliberately wrong twin stops failing, see
``deeplimits.experiments.claims._base``).
"""

import math
import re
from pathlib import Path

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


def test_ks_equivalence_one_and_two_samples_and_the_family():
    from scipy import stats as st

    from deeplimits.experiments.claims.checks import ks_equivalence, ks_family

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(4000), rng.standard_normal(4000)
    # one sample against the true law: bound = D + DKW(4000, 0.01) ~ 0.04 < 0.08
    assert ks_equivalence(x, st.norm(), 0.08)[0]
    # a law at sup-distance 0.12 (mean shifted by 0.3) is rejected, one and two samples
    assert not ks_equivalence(x, st.norm(0.3), 0.08)[0]
    assert not ks_equivalence(x, y + 0.3, 0.08)[0]
    assert ks_equivalence(x, y, 0.1)[0]
    passed, worst, ratios = ks_family([(x, st.norm()), (x, y + 0.3)], 0.08)
    assert not passed and worst == max(ratios) > 1 > min(ratios)
    with pytest.raises(ValueError, match="margin"):
        ks_equivalence(x, y, 0.0)


def test_rate_margins_pass_a_predicted_gap_at_99_percent_and_reject_a_larger_one():
    from deeplimits.experiments.claims.checks import LawGap, equivalence, rate_margins

    # the gap predicted from `first` is 0.4 * 0.1 = 0.04 (mean) and 0.02 (log var)
    first = LawGap(0.4, 0.01, -0.2, 0.01, 0.0, 0.0)
    rng = np.random.default_rng(5)
    est = rng.standard_normal((20_000, 2)) * [0.01, 0.02] + [0.04, -0.02]
    margins = rate_margins(first, LawGap(0.0, 0.01, 0.0, 0.02, 0.0, 0.0), 0.1)
    passed = [equivalence(LawGap(m, 0.01, v, 0.02, 0.0, 0.0), **margins)[0] for m, v in est]
    assert np.mean(passed) >= 0.99 - 4 * math.sqrt(0.99 * 0.01 / est.shape[0])
    # a mean gap larger than its margin fails (the detectable effect is the margin)
    assert not equivalence(LawGap(margins["mean"], 0.01, 0.0, 0.02, 0.0, 0.0), **margins)[0]
    with pytest.raises(ValueError, match="factor"):
        rate_margins(first, first, -1.0)


def test_weighted_rate_recovers_a_power_law_with_its_standard_error():
    from deeplimits.experiments.claims.checks import weighted_rate

    rng = np.random.default_rng(4)
    sizes = np.array([64, 256, 1024])
    errors = sizes[:, None] ** -0.5 * rng.lognormal(0, 0.5, (3, 400))
    slope, se, intercept = weighted_rate(sizes, errors, line=True)
    assert abs(slope + 0.5) < 4 * se and se < 0.05
    assert np.isfinite(intercept)


def test_a_declared_control_must_be_judged():
    claim = Claim("X1", "t", "s", lambda scale, seed: xr.Dataset(attrs=dict(
        statistic="z", tolerance="t", measured=0.0, passed=1)), lambda ds: None,
        control=Control("twin", "a wrong twin"))
    with pytest.raises(ValueError, match="did not judge"):
        claim.run("quick", 0)
    with pytest.raises(ValueError, match="non-empty"):
        Control("", "x")


# -- coverage: every claim of the specification has a report row, every claim a test ------

THEORY = Path(__file__).resolve().parents[1] / "docs" / "theory" / "index.md"


def spec_claim_ids() -> list[str]:
    """The ids of the claims table of the theory index (F1-F8, B1-B2, V1, K1-K5, ...)."""
    ids = re.findall(r"^\| *([A-Z]\d+) *\|", THEORY.read_text(encoding="utf-8"), re.M)
    assert len(ids) >= 25, "the claims table of docs/theory/index.md was not found"
    return ids


# Specification claims with no implementation, so no row (none today). The test fails if any
# claim loses its row.
NOT_IMPLEMENTED: list[str] = []


def test_every_spec_claim_has_a_report_row():
    rows = {covered for claim in registry().values() for covered in claim.covers}
    missing = [cid for cid in spec_claim_ids() if cid not in rows]
    assert missing == NOT_IMPLEMENTED, f"specification claims without a report row: {missing}"


def test_every_registered_claim_has_a_test():
    # the parametrised test above runs each registered claim and its control
    assert CLAIMS == sorted(registry()) and len(CLAIMS) == len(set(CLAIMS))


# -- the report (cheap: synthetic results) -------------------------------------------------

def _fake_result(cid, source, passed, control_passed):
    claim = Claim(cid, f"title {cid}", source, lambda s, k: None, lambda ds: None,
                  control=Control("twin", "a wrong twin"))
    v = judge(lambda ok: Verdict("z", "|z| < 1", 0.5, ok), passed, control_passed,
              Detectable(0.031, "error in the variance"))
    from deeplimits.experiments.claims._base import with_verdict
    ds = with_verdict(xr.Dataset(), v)
    ds.attrs["control"] = "twin"
    from deeplimits.experiments.claims import ClaimResult
    return ClaimResult(claim, ds, Verdict.from_attrs(ds.attrs), 1.0)


def test_report_groups_by_paper_with_summary_controls_and_theory_links(tmp_path):
    import matplotlib.pyplot as plt

    from deeplimits.experiments.report import paper_summary, render_report, theory_anchor

    assert theory_anchor("PF20 [abstract]; forward.md §4.2, §5") == "forward.md#s4-2"
    assert theory_anchor("finite_width.md §5 Case II") == "finite_width.md#s5"
    assert theory_anchor("no page") is None
    results = [_fake_result("F2-x", "forward.md §4 [derived]", True, False),
               _fake_result("F9-x", "forward.md §6.2", False, False),
               _fake_result("W3-x", "finite_width.md §7", False, True)]
    fig = plt.figure()
    figures = {r.claim.id: figure_png(fig) for r in results}
    path = render_report(results, figures, tmp_path / "r.html", scale="quick", seed=0,
                         seconds=1.0, theory_base="../docs/theory/")
    page = path.read_text()
    assert page.count("<tr class='group-start'>") == 2  # Peluchetti-Favaro and Hayou
    assert "href='../docs/theory/forward.md#s4'" in page
    assert "detects a 3.1% error in the variance at 99% power" in page
    assert "twin: rejected" in page and "twin: accepted" in page
    # the summaries are computed from the verdicts
    pf = paper_summary(results[:2], {})
    assert pf.startswith("1 of 2 claims confirmed (F2-x)") and "refuted (F9-x)" in pf
    assert "inconclusive (W3-x)" in paper_summary(results[2:], {})
    assert page.index("Summary by paper") < page.index("<table id=\"verdicts\">")


def test_width_extrapolation_recovers_the_limit_with_its_standard_error():
    """Means a + b/n with Gaussian errors of known SE: the intercept's z-scores over many
    replicates are standard normal, and two sizes give Richardson's formula."""
    from deeplimits.experiments.claims.checks import width_extrapolation

    rng = np.random.default_rng(0)
    sizes = np.array([16.0, 64.0, 256.0])
    se = np.array([0.02, 0.01, 0.015])[:, None] * np.ones((1, 4000))
    means = 1.5 + 3.0 / sizes[:, None] + se * rng.standard_normal(se.shape)
    fit = width_extrapolation(sizes, means, se)
    z = (fit.intercept - 1.5) / fit.intercept_se
    assert abs(z.mean()) < 4 / math.sqrt(z.size) and abs(z.std() - 1) < 0.05
    assert np.all(np.abs((fit.coefficient - 3.0) / fit.coefficient_se) < 5)
    two = width_extrapolation(sizes[:2], means[:2, :3], se[:2, :3])
    np.testing.assert_allclose(two.intercept, (64 * means[1, :3] - 16 * means[0, :3]) / 48)
    np.testing.assert_allclose(two.intercept_se,
                               np.hypot(64 * 0.01, 16 * 0.02) / 48 * np.ones(3))

"""Every registered claim passes at quick scale with its fixed seed.

Each claim's own verdict states its statistic, tolerance and sample size (see the claim
modules); this test fails whenever a property that the report certifies breaks.
"""

import numpy as np
import pytest

from deeplimits.experiments.claims import registry
from deeplimits.experiments.report import figure_png
from deeplimits.experiments.store import provenance

CLAIMS = sorted(registry())


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_claim_passes_at_quick_scale(claim_id):
    claim = registry()[claim_id]
    result = claim.run("quick", seed=0)
    assert result.verdict.passed, f"{claim_id}: {result.verdict}"
    assert np.isfinite(result.verdict.measured)
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

"""Finite width, infinite depth (``finite_width.md``): the area's front door.

Re-exports the path sampler of Hayou's network (:mod:`deeplimits.simulation.finite_width`)
and the studies built on it (:mod:`deeplimits.experiments.finite_width`).
"""

from deeplimits.experiments.finite_width import (
    covariance_grid,
    dead_orthant_study,
    gbm_law_study,
    nongaussian_study,
    regime_study,
    relu_identity_study,
    sign_change_width,
    width_first_covariance,
)
from deeplimits.simulation.finite_width import simulate_paths

__all__ = ["covariance_grid", "dead_orthant_study", "gbm_law_study", "nongaussian_study",
           "regime_study", "relu_identity_study", "sign_change_width", "simulate_paths",
           "width_first_covariance"]

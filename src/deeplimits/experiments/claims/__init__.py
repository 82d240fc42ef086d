"""The claims that ``deeplimits reproduce`` checks, each with a verdict and a figure."""

from deeplimits.experiments.claims import (  # noqa: F401  (registers the claims)
    backward,
    conv,
    depth_mup,
    finite_width,
    forward,
    kernel_ode,
    kernels,
    marion,
    scaling,
    trained_limits,
)
from deeplimits.experiments.claims._base import (
    SCALES,
    Claim,
    ClaimResult,
    Control,
    Detectable,
    Verdict,
    detectable_shift,
    judge,
    pick,
    register,
    registry,
)

__all__ = [
    "SCALES", "Claim", "ClaimResult", "Control", "Detectable", "Verdict", "detectable_shift",
    "judge", "pick", "register", "registry",
]



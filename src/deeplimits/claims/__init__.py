"""The claims that ``deeplimits reproduce`` checks, each with a verdict and a figure."""

# importing a module registers its claims, in this order in the report
from . import (  # noqa: F401
    backward,
    conv,
    finite_width,
    forward,
    kernel_ode,
    kernels,
    scaling,
)
from ._base import SCALES, Claim, ClaimResult, Verdict, pick, register, registry

__all__ = ["SCALES", "Claim", "ClaimResult", "Verdict", "pick", "register", "registry"]

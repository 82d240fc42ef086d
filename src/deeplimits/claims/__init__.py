"""The claims that ``deeplimits reproduce`` checks, each with a verdict and a figure."""

from . import forward  # noqa: F401  (registers the forward-propagation claims)
from ._base import SCALES, Claim, ClaimResult, Verdict, pick, register, registry

__all__ = ["SCALES", "Claim", "ClaimResult", "Verdict", "pick", "register", "registry"]

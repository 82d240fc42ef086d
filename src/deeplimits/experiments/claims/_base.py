"""What a claim is: a computation that returns a dataset carrying its own verdict, and a
plot that redraws its figure from that dataset alone."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import matplotlib.figure
import xarray as xr

from deeplimits._core.registry import Registry

__all__ = [
    "Claim", "ClaimResult", "Verdict", "SCALES", "pick", "with_verdict", "register", "registry"
]

SCALES = ("quick", "full")


def pick(scale: str, quick, full):
    """The setting for ``scale``: ``quick`` (minutes on a laptop, CI) or ``full``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return quick if scale == "quick" else full


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One row of the verdict table."""

    statistic: str
    tolerance: str
    measured: float
    passed: bool
    details: str = ""

    @classmethod
    def from_attrs(cls, attrs: dict) -> Verdict:
        return cls(attrs["statistic"], attrs["tolerance"], float(attrs["measured"]),
                   bool(attrs["passed"]), attrs.get("details", ""))


def with_verdict(ds: xr.Dataset, verdict: Verdict) -> xr.Dataset:
    """Store the verdict in the dataset's attributes (netCDF-safe types)."""
    ds.attrs.update(statistic=verdict.statistic, tolerance=verdict.tolerance,
                    measured=float(verdict.measured), passed=int(bool(verdict.passed)),
                    details=verdict.details)
    return ds


@dataclasses.dataclass(frozen=True)
class Claim:
    """A falsifiable statement of the theory, checked numerically.

    Attributes:
        id: short identifier (the theory README's claim id, with a suffix when one id is
            checked in several settings).
        title: the statement in words.
        source: paper and provenance tag, and the spec section.
        compute: ``(scale, seed) -> Dataset`` with the data and the verdict attributes.
        plot: ``Dataset -> Figure``, using nothing but the dataset.
    """

    id: str
    title: str
    source: str
    compute: Callable[[str, int], xr.Dataset]
    plot: Callable[[xr.Dataset], matplotlib.figure.Figure]

    def run(self, scale: str = "quick", seed: int = 0) -> ClaimResult:
        pick(scale, None, None)
        start = time.perf_counter()
        ds = self.compute(scale, seed)
        seconds = time.perf_counter() - start
        ds.attrs.update(claim=self.id, title=self.title, source=self.source, scale=scale,
                        seed=int(seed), seconds=float(seconds))
        return ClaimResult(self, ds, Verdict.from_attrs(ds.attrs), seconds)


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    dataset: xr.Dataset
    verdict: Verdict
    seconds: float


_CLAIMS: Registry[Claim] = Registry("claim", lambda claim: claim.id)


def register(claim: Claim) -> Claim:
    """Add a claim to the report (its id must be new)."""
    return _CLAIMS.register(claim)


def registry() -> dict[str, Claim]:
    """Every registered claim, by id, in registration order."""
    return _CLAIMS.all()

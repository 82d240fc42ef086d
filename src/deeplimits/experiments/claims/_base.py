"""What a claim is: a computation that returns a dataset carrying its own verdict, and a
plot that redraws its figure from that dataset alone.

Every verdict has power (issue 14)
----------------------------------
A green row must mean "checked", so every claim carries two things beside its verdict:

* **a negative control**: a deliberately wrong twin of the model (a diffusion coefficient
  off by a few percent, a missing drift term, independent noise per input, the wrong
  activation's law, the i.i.d. parameter law, ...), declared on the claim as a
  :class:`Control` and checked by the *same* decision code as the model. The claim is
  conclusive only when the model passes and the twin fails.
* **a detectable effect**: the smallest error the check catches at a stated power,
  computed from the standard errors of this run (:class:`Detectable`,
  :func:`detectable_shift`), never asserted.

How a claim module uses it (the one mechanism; nothing else is needed)::

    CONTROL = Control("variance +5%", "the same samples against the SDE law with its "
                      "diffusion coefficient multiplied by 1.05")

    def decide(data) -> Verdict:          # ONE function judges model and twin alike
        ...
        return Verdict(statistic=..., tolerance=..., measured=..., passed=...)

    def compute(scale, seed):
        samples = ...                     # reuse the model's samples where possible:
        model = (samples, reference)      # the twin may be the same samples against a
        twin = (samples, perturbed)       # perturbed reference law
        det = Detectable(detectable_shift(se, margin=m), "relative error in the variance")
        return with_verdict(ds, judge(decide, model, twin, det))

    register(Claim("F2-tanh", title, source, compute, plot, control=CONTROL))

:func:`judge` runs ``decide`` on both and attaches the twin's verdict (``verdict.control``)
and the detectable effect; :func:`with_verdict` stores them in the dataset attributes
(``control_measured``, ``control_passed``, ``control_details``, ``detectable``,
``detectable_effect``), so the report shows them without recomputing anything.
:meth:`Claim.run` refuses a claim that declares a control whose computation did not judge
it. ``tests/test_claims.py`` requires, for every registered claim, a declared control, the
claim passing and its control failing.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import matplotlib.figure
import xarray as xr
from scipy import stats as _st

from deeplimits._core.registry import Registry

__all__ = [
    "Claim", "ClaimResult", "Control", "Detectable", "Verdict", "SCALES", "detectable_shift",
    "judge", "pick", "with_verdict", "register", "registry",
]

SCALES = ("quick", "full")

POWER = 0.99
"""The power at which detectable effects are stated."""


def pick(scale: str, quick, full):
    """The setting for ``scale``: ``quick`` (minutes on a laptop, CI) or ``full``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return quick if scale == "quick" else full


def detectable_shift(se: float, *, alpha: float = 0.01, power: float = POWER,
                     margin: float | None = None) -> float:
    """The smallest true effect a check with standard error ``se`` rejects with probability
    ``power``.

    * Difference check (``margin=None``): pass when ``|estimate| < z_{1-alpha/2} se``; an
      effect ``d`` is rejected with probability ``power`` once
      ``d >= (z_{1-alpha/2} + z_power) se``.
    * Equivalence check (``margin=m``): pass when the one-sided upper confidence bound
      ``|estimate| + z_{1-alpha} se`` is below ``m``; an effect is rejected with probability
      ``power`` once ``d >= m + (z_power - z_{1-alpha}) se``.

    Raises:
        ValueError: for ``se < 0`` (or not finite), ``alpha`` or ``power`` outside (0, 1),
            or a negative margin.
    """
    if not (math.isfinite(se) and se >= 0):
        raise ValueError(f"se must be finite and >= 0, got {se}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha}, {power}")
    z_power = _st.norm.ppf(power)
    if margin is None:
        return float((_st.norm.ppf(1 - alpha / 2) + z_power) * se)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return float(margin + (z_power - _st.norm.ppf(1 - alpha)) * se)


@dataclasses.dataclass(frozen=True)
class Control:
    """A claim's negative control: the named wrong twin of the model under test.

    Attributes:
        name: short name shown in the report (e.g. ``"diffusion x1.05"``).
        description: what the twin changes, in words, and why the check must reject it.
    """

    name: str
    description: str

    def __post_init__(self):
        if not self.name or not self.description:
            raise ValueError("a Control needs a non-empty name and description")


@dataclasses.dataclass(frozen=True)
class Detectable:
    """The smallest error a verdict catches: ``effect`` (of ``quantity``) at ``power``.

    ``relative=True`` formats the effect as a percentage. Compute ``effect`` from the run's
    standard errors (:func:`detectable_shift`); the sentence is what the report shows.
    """

    effect: float
    quantity: str
    power: float = POWER
    relative: bool = True

    def __str__(self) -> str:
        size = f"{100 * self.effect:.3g}%" if self.relative else f"{self.effect:.3g}"
        return f"detects a {size} {self.quantity} at {100 * self.power:.0f}% power"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One row of the verdict table.

    ``control`` is the verdict of the same decision on the claim's negative control (it
    must have ``passed=False``); ``detectable`` the sentence of :class:`Detectable` and
    ``detectable_effect`` its number.
    """

    statistic: str
    tolerance: str
    measured: float
    passed: bool
    details: str = ""
    control: Verdict | None = None
    detectable: str = ""
    detectable_effect: float = math.nan

    @property
    def control_rejected(self) -> bool:
        """Whether a negative control was judged and failed, as it must."""
        return self.control is not None and not self.control.passed

    @property
    def conclusive(self) -> bool:
        """The claim passes and its control fails."""
        return bool(self.passed) and self.control_rejected

    @classmethod
    def from_attrs(cls, attrs: dict) -> Verdict:
        control = None
        if "control_passed" in attrs:
            control = cls(attrs["statistic"], attrs["tolerance"],
                          float(attrs["control_measured"]), bool(attrs["control_passed"]),
                          attrs.get("control_details", ""))
        return cls(attrs["statistic"], attrs["tolerance"], float(attrs["measured"]),
                   bool(attrs["passed"]), attrs.get("details", ""), control,
                   attrs.get("detectable", ""),
                   float(attrs.get("detectable_effect", math.nan)))


def judge(decide: Callable[[Any], Verdict], model: Any, control: Any,
          detectable: Detectable) -> Verdict:
    """The verdict of ``decide(model)`` with ``decide(control)`` as its control verdict and
    ``detectable`` attached: one decision code for the model and its wrong twin."""
    if not isinstance(detectable, Detectable):
        raise TypeError(f"detectable must be a Detectable, got {type(detectable).__name__}")
    verdict, twin = decide(model), decide(control)
    if not (isinstance(verdict, Verdict) and isinstance(twin, Verdict)):
        raise TypeError("decide must return a Verdict")
    return dataclasses.replace(verdict, control=twin, detectable=str(detectable),
                               detectable_effect=float(detectable.effect))


def with_verdict(ds: xr.Dataset, verdict: Verdict) -> xr.Dataset:
    """Store the verdict (and its control verdict and detectable effect, when judged) in
    the dataset's attributes (netCDF-safe types)."""
    ds.attrs.update(statistic=verdict.statistic, tolerance=verdict.tolerance,
                    measured=float(verdict.measured), passed=int(bool(verdict.passed)),
                    details=verdict.details)
    if verdict.control is not None:
        ds.attrs.update(control_measured=float(verdict.control.measured),
                        control_passed=int(bool(verdict.control.passed)),
                        control_details=verdict.control.details,
                        detectable=verdict.detectable,
                        detectable_effect=float(verdict.detectable_effect))
    return ds


@dataclasses.dataclass(frozen=True)
class Claim:
    """A falsifiable statement of the theory, checked numerically.

    Attributes:
        id: short identifier (the theory README's claim id, with a suffix when one id is
            checked in several settings).
        title: the statement in words.
        source: paper and provenance tag, and the spec section.
        compute: ``(scale, seed) -> Dataset`` with the data and the verdict attributes
            (with the control's verdict, via :func:`judge`, when ``control`` is declared).
        plot: ``Dataset -> Figure``, using nothing but the dataset.
        control: the negative control (see the module docstring); every registered claim
            must declare one (``tests/test_claims.py``).
        covers: the claim ids of the specification's claims table that this row checks
            (default: the id's prefix before the first ``-``, e.g. ``F2`` for ``F2-tanh``);
            the coverage test requires every specification id to be covered.
    """

    id: str
    title: str
    source: str
    compute: Callable[[str, int], xr.Dataset]
    plot: Callable[[xr.Dataset], matplotlib.figure.Figure]
    control: Control | None = None
    covers: tuple[str, ...] = ()

    def __post_init__(self):
        covers = tuple(self.covers) or (self.id.split("-")[0],)
        bad = [c for c in covers if not (c[:1].isalpha() and c[1:].isdigit())]
        if bad:
            raise ValueError(f"claim {self.id}: covers must be specification ids such as "
                             f"'F2' or 'K5', got {bad}")
        object.__setattr__(self, "covers", covers)

    def run(self, scale: str = "quick", seed: int = 0) -> ClaimResult:
        pick(scale, None, None)
        start = time.perf_counter()
        ds = self.compute(scale, seed)
        seconds = time.perf_counter() - start
        if self.control is not None and "control_passed" not in ds.attrs:
            raise ValueError(f"claim {self.id} declares the control {self.control.name!r} "
                             "but its computation did not judge it (use judge())")
        ds.attrs.update(claim=self.id, title=self.title, source=self.source, scale=scale,
                        seed=int(seed), seconds=float(seconds))
        if self.control is not None:
            ds.attrs.update(control=self.control.name,
                            control_description=self.control.description)
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

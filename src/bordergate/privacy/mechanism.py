"""Every number an export releases, noised by OpenDP (docs/exports.md).

An export's true aggregate (per group of the ``group_by`` field: records and
distinct subjects) never leaves this module.  What leaves is an
:class:`NoisyRelease` made of OpenDP draws only:

* the groups kept, and their subject counts: OpenDP's
  ``make_laplace_threshold`` (the stable histogram: discrete Laplace noise on
  each group's subject count, a group kept only if its *noisy* count reaches
  the threshold, never by a comparison with the true count);
* the record count of each kept group: ``make_laplace`` on integers (discrete
  Laplace, also called two-sided geometric);
* the number of groups, of which the number suppressed is the part not
  released (post-processing of a noisy count).

Integer counts get the discrete Laplace (geometric) mechanism because it
releases integers exactly as OpenDP's proofs describe them, with no floating
point rounding to attack (the Mironov attack on the continuous Laplace).

Unit of privacy: one record added to or removed from the collection; each of
the three measurements then changes by at most 1 (one group's subject count,
one group's record count, the number of groups).  The export's epsilon is split
in three equal parts and OpenDP's privacy maps (not a formula here) give the
epsilon and delta actually spent; a plan whose maps exceed its epsilon is
refused.  A subject with r records is protected at r times that (group
privacy).

Randomness is OpenDP's (its Rust core draws from the operating system's
secure generator); this module draws none itself.  OpenDP feature enabled:
``contrib`` only, because ``make_laplace`` and ``make_laplace_threshold`` are
contributed (proof-documented, not yet vetted) constructors; ``floating-point``
and ``honest-but-curious`` are not enabled, as no float mechanism and no
user-defined function are used.

This module must never return, log or raise with a true count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from bordergate.errors import ConfigError

__all__ = [
    "MECHANISM",
    "MICRO",
    "OPENDP_FEATURES",
    "ExportMechanism",
    "ExportPlan",
    "NoisyGroup",
    "NoisyRelease",
    "OpenDPMechanism",
    "TrueGroup",
    "scale_micro",
]

MICRO = 1_000_000  # epsilon is carried as an integer number of millionths (entries hold no floats)
MECHANISM = "opendp:discrete_laplace+laplace_threshold"
OPENDP_FEATURES = ("contrib",)
_PARTS = 3  # subject counts with threshold, record counts, number of groups
_MAX_COUNT = 2**31 - 1  # OpenDP's integer domain here is i32


def scale_micro(epsilon_micro: int) -> int:
    """The discrete Laplace scale, in millionths, of every count of an export of
    ``epsilon_micro`` (the ``dp.scale_micro`` its entry records; the auditor checks it)."""
    return round(_PARTS * MICRO / epsilon_micro * MICRO)


@dataclass(frozen=True, slots=True)
class TrueGroup:
    """One group of the true aggregate (never released as such)."""

    value: object | None
    records: int
    subjects: int


@dataclass(frozen=True, slots=True)
class NoisyGroup:
    """One released group: its value and noisy counts."""

    value: object | None
    records: int
    subjects: int


@dataclass(frozen=True, slots=True)
class NoisyRelease:
    """What an export may release: noisy groups and the noisy number suppressed."""

    groups: tuple[NoisyGroup, ...]
    suppressed: int


@dataclass(frozen=True)
class ExportPlan:
    """The measurements of one export, fixed before any data is touched.

    Attributes:
        epsilon_micro: the export's epsilon budget, in millionths.
        delta_exponent: delta is ``10 ** -delta_exponent``.
        k: the minimum subjects of a group (the policy bundle's ``k_min`` or more).
        threshold: the noisy subject count a group needs to be kept (>= k, raised
            until the threshold mechanism's delta fits).
        scale: the discrete Laplace scale of every count.
        spent_micro: the epsilon OpenDP's privacy maps give for the three
            measurements together, rounded up to millionths.
    """

    epsilon_micro: int
    delta_exponent: int
    k: int
    threshold: int
    scale: float
    spent_micro: int

    def to_json(self) -> dict[str, Any]:
        """The members an ``export`` entry records under ``dp``."""
        return {"mechanism": MECHANISM, "epsilon_micro": self.epsilon_micro,
                "delta_exponent": self.delta_exponent, "threshold": self.threshold,
                "scale_micro": scale_micro(self.epsilon_micro)}


class ExportMechanism(Protocol):
    """How an export is noised (OpenDP in production; tests may wrap it)."""

    def plan(self, epsilon_micro: int, delta_exponent: int, k: int) -> ExportPlan:
        """The measurements for one export.

        Raises:
            ConfigError: the settings give no valid plan (``privacy_config``).
        """
        ...

    def release(self, plan: ExportPlan, groups: Sequence[TrueGroup]) -> NoisyRelease:
        """Noisy groups and number suppressed under ``plan``."""
        ...


def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features(*OPENDP_FEATURES)
    return dp


@lru_cache(maxsize=64)
def _measurements(scale: float, threshold: int) -> tuple[Any, Any, Any]:
    dp = _opendp()
    integers = dp.atom_domain(T=int)
    histogram = dp.m.make_laplace_threshold(
        dp.map_domain(dp.atom_domain(T=str), integers),
        dp.l01inf_distance(dp.absolute_distance(T=int)), scale=scale, threshold=threshold)
    records = dp.m.make_laplace(dp.vector_domain(integers), dp.l1_distance(T=int), scale=scale)
    count = dp.m.make_laplace(integers, dp.absolute_distance(T=int), scale=scale)
    return histogram, records, count


def _privacy_loss(scale: float, threshold: int) -> tuple[float, float]:
    """(epsilon, delta) of the three measurements under one added or removed record."""
    histogram, records, count = _measurements(scale, threshold)
    eps_h, delta = histogram.map((1, 1, 1))
    return float(eps_h) + float(records.map(1)) + float(count.map(1)), float(delta)


@lru_cache(maxsize=256)
def _plan(epsilon_micro: int, delta_exponent: int, k: int) -> ExportPlan:
    if not 1 <= epsilon_micro <= 100 * MICRO or not 1 <= delta_exponent <= 30 or k < 1:
        raise ConfigError("export epsilon must be in (0, 100], delta 1e-1 to 1e-30, k >= 1",
                          code="privacy_config")
    scale = _PARTS * MICRO / epsilon_micro
    delta = 10.0 ** -delta_exponent
    low, high = k, k
    while _privacy_loss(scale, high)[1] > delta:  # smallest threshold whose delta fits
        low, high = high, high * 2
        if high > _MAX_COUNT:
            raise ConfigError("no threshold reaches the configured delta",
                              code="privacy_config")
    while low < high:
        middle = (low + high) // 2
        if _privacy_loss(scale, middle)[1] > delta:
            low = middle + 1
        else:
            high = middle
    epsilon, _ = _privacy_loss(scale, high)
    spent = int(-(-epsilon * MICRO // 1))
    if spent > epsilon_micro + 1:  # rounding of the scale, never more
        raise ConfigError(f"OpenDP's maps give epsilon {epsilon}, over the configured "
                          f"{epsilon_micro / MICRO}", code="privacy_config")
    return ExportPlan(epsilon_micro, delta_exponent, k, high, scale, min(spent, epsilon_micro))


def _count(value: int) -> int:
    return min(max(int(value), 0), _MAX_COUNT)


class OpenDPMechanism:
    """:class:`ExportMechanism` over OpenDP's measurements (see the module docstring)."""

    def plan(self, epsilon_micro: int, delta_exponent: int, k: int) -> ExportPlan:
        return _plan(epsilon_micro, delta_exponent, k)

    def release(self, plan: ExportPlan, groups: Sequence[TrueGroup]) -> NoisyRelease:
        histogram, records, count = _measurements(plan.scale, plan.threshold)
        # Keys are positions in the true list: labels only, mapped back to values below.
        kept: dict[str, int] = histogram({str(i): _count(g.subjects)
                                          for i, g in enumerate(groups)})
        order = sorted(kept, key=int)
        noisy_records = records([_count(groups[int(i)].records) for i in order]) if order else []
        released = tuple(NoisyGroup(groups[int(i)].value, _count(r), _count(kept[i]))
                         for i, r in zip(order, noisy_records, strict=True))
        noisy_groups = _count(count(_count(len(groups))))
        return NoisyRelease(released, max(noisy_groups - len(released), 0))

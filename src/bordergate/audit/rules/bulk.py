"""Bulk volumes recomputed from the log (28 CFR 202.205; :mod:`bordergate.dsp.bulk`).

For every ``access`` entry that released fields to a covered person (the roster
version the entry names says so; without one, a principal located in a country
of concern), the auditor adds the entry's subject pseudonym to one set per
counterparty (the principal, its organisation) and counter (DSP category,
combination, government-related data), keeping each subject's last time, and
drops subjects not seen within the rolling window.  Its figures are exact (the
gateway's may be higher by its margin, never lower), and independent: they come
from the entries and the auditor's own statement of the schema's categories and
of the thresholds, not from the gateway's ``bulk-threshold`` entries.

* ``bulk_threshold_crossed``: a counter held more subjects (devices) than its
  threshold, reported at the entry that took it over (again if it fell back
  under the near-miss level and rose again);
* ``bulk_threshold_near``: a counter reached ``near_miss_percent`` (80 %) of its
  threshold (each time it rises to that level);
* ``bulk_threshold_refused``: the gateway's own ``bulk-threshold`` entry (a read
  it refused, or let cross under an approval): reported as the gateway says it,
  a denied attempt, never used for the figures.

:func:`bulk_counters` gives the figures per counterparty and counter (for the
report and the dashboard).  Both inspectors call :func:`access_plan` once per
entry shape and :func:`count_access` per entry.  This module must never read a
log or a clock; findings name counterparties and counters, never a subject.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bordergate.dsp.bulk import BulkSettings, FieldCategories, counterparties, is_covered
from bordergate.dsp.countries import DEFAULT_COUNTRIES_OF_CONCERN

if TYPE_CHECKING:
    from bordergate.audit.inspection_state import InspectionState
    from bordergate.audit.rules.context import RuleContext
    from bordergate.entries import Entry

__all__ = ["BulkCount", "BulkCounterState", "BulkRules", "access_plan", "bulk_counters",
           "bulk_threshold_entry", "count_access"]

_SEP = "\x1f"


@dataclass(frozen=True)
class BulkRules:
    """What the auditor itself states: the schema's categories, the thresholds, the
    countries of concern (from its own configuration, never from the gateway)."""

    categories: FieldCategories
    settings: BulkSettings = field(default_factory=BulkSettings)
    countries: tuple[str, ...] = DEFAULT_COUNTRIES_OF_CONCERN


@dataclass(frozen=True)
class _Counter:
    key: str          # counterparty + _SEP + counter
    threshold: int
    weight: int       # units per subject (devices for precise geolocation)


class BulkCounterState:
    """One counter's subjects (pseudonym -> last time, oldest first) and its episode."""

    __slots__ = ("crossings", "level", "near_misses", "peak", "peak_index", "subjects")

    def __init__(self) -> None:
        self.subjects: OrderedDict[str, float] = OrderedDict()
        self.level = 0        # 0 under the near-miss level, 1 near, 2 over the threshold
        self.peak = 0         # the most units it held
        self.peak_index: int | None = None
        self.crossings = 0
        self.near_misses = 0

    def add(self, subject: str, t: float, window_s: int) -> int:
        """Drop the subjects last seen ``window_s`` or more before ``t``, add
        ``subject`` as seen at ``t``; the subjects it holds now."""
        seen = self.subjects
        floor = t - window_s
        while seen:
            first = next(iter(seen.items()))
            if first[1] > floor:
                break
            seen.popitem(last=False)
        if subject in seen:
            seen.move_to_end(subject)
            seen[subject] = max(t, seen[subject])
        else:
            seen[subject] = t
        return len(seen)

    def to_json(self) -> dict[str, Any]:
        return {"s": dict(self.subjects), "l": self.level, "p": self.peak,
                "pi": self.peak_index, "c": self.crossings, "n": self.near_misses}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BulkCounterState:
        """Rebuild from :meth:`to_json` (raises KeyError, TypeError, ValueError)."""
        out = cls()
        out.subjects = OrderedDict((str(k), float(v)) for k, v in dict(data["s"]).items())
        out.level, out.peak = int(data["l"]), int(data["p"])
        out.peak_index = None if data["pi"] is None else int(data["pi"])
        out.crossings, out.near_misses = int(data["c"]), int(data["n"])
        return out


def access_plan(ctx: RuleContext, entry: Entry, released: Iterable[str]
                ) -> tuple[_Counter, ...] | None:
    """The counters an ``access`` entry adds its subject to (None: none, or the
    auditor states no categories).  A function of the entry's shape."""
    rules = ctx.bulk
    if rules is None or entry.body.get("outcome") not in ("allow", "partial"):
        return None
    body = entry.body
    principal = body.get("principal")
    collection = body.get("collection")
    if not isinstance(principal, dict) or not isinstance(collection, str):
        return None
    roster_covered = None
    digest = body.get("roster")
    if isinstance(digest, str):
        roster = ctx.roster_named(digest)
        listed = roster.principal(str(principal.get("id"))) if roster is not None else None
        roster_covered = bool(listed is not None and listed.covered_person)
    if not is_covered(principal, roster_covered, rules.countries):
        return None
    counters = rules.categories.counters(collection, released)
    if not counters:
        return None
    s = rules.settings
    return tuple(_Counter(party + _SEP + c, s.threshold(c), s.subject_weight(c))
                 for party in counterparties(principal) for c in counters)


def count_access(ctx: RuleContext, index: int, t: float,
                 plan: tuple[_Counter, ...], subject: object) -> None:
    """Add the entry's subject to each counter of its plan; report what it crosses."""
    if not isinstance(subject, str):
        return
    rules = ctx.bulk
    assert rules is not None
    s = rules.settings
    sets = ctx.state.bulk
    for c in plan:
        state = sets.get(c.key)
        if state is None:
            state = sets[c.key] = BulkCounterState()
        units = state.add(subject, t, s.window_s) * c.weight
        if units > state.peak:
            state.peak, state.peak_index = units, index
        _judge(ctx, index, t, c, state, units=units, near_percent=s.near_miss_percent)


def _judge(ctx: RuleContext, index: int, t: float, c: _Counter, state: BulkCounterState, *,
           units: int, near_percent: int) -> None:
    near = c.threshold > 0 and units * 100 >= c.threshold * near_percent
    level = 2 if units > c.threshold else 1 if near else 0
    if level > state.level:
        party, counter = c.key.split(_SEP, 1)
        detail = {"counterparty": party, "counter": counter, "count": units,
                  "threshold": c.threshold}
        if level == 2:
            state.crossings += 1
            ctx.flag("bulk_threshold_crossed", index, t,
                     f"access entry {index} took {counter} of {party} to {units}, over the "
                     f"bulk threshold of {c.threshold} (28 CFR 202.205) in the rolling "
                     "window", detail)
        elif state.level == 0:
            state.near_misses += 1
            ctx.flag("bulk_threshold_near", index, t,
                     f"access entry {index} took {counter} of {party} to {units}, "
                     f"{near_percent}% or more of the bulk threshold of {c.threshold}",
                     detail)
    state.level = level


def bulk_threshold_entry(ctx: RuleContext, index: int, entry: Entry) -> None:
    """The gateway's ``bulk-threshold`` entry: what it refused (or let cross under an
    approval), reported with the counters it names (numbers and codes only)."""
    body = entry.body
    counters = body.get("counters")
    named = [c for c in counters if isinstance(c, dict)] if isinstance(counters, list) else []
    outcome = body.get("outcome")
    what = "refused" if outcome == "refused" else "let through under an approval"
    detail = {"outcome": outcome if outcome in ("refused", "approved") else None,
              "counters": [{k: c.get(k) for k in ("count", "threshold")
                            if isinstance(c.get(k), int)} |
                           {k: str(c.get(k))[:80] for k in ("counterparty", "counter", "action")}
                           for c in named[:20]]}
    ctx.flag("bulk_threshold_refused", index, entry.time,
             f"bulk-threshold entry {index}: the gateway {what} a read that would take "
             f"{len(named)} bulk counter(s) over the threshold", detail)


@dataclass(frozen=True)
class BulkCount:
    """One counterparty's figure for one counter, as the audit recomputed it.

    Attributes:
        counterparty: ``principal:<id>`` or ``org:<name>``.
        counter: a DSP category, ``combined:<a>+<b>`` or ``government_related``.
        current: units (subjects, devices for precise geolocation) in the window
            ending at the last entry the audit saw.
        peak: the most units it held in any window.
        peak_index: the entry that reached the peak.
        threshold: the threshold it is judged against.
        crossings: how many times it went over the threshold.
        near_misses: how many times it reached the near-miss level from under it.
    """

    counterparty: str
    counter: str
    current: int
    peak: int
    peak_index: int | None
    threshold: int
    crossings: int
    near_misses: int

    def to_json(self) -> dict[str, Any]:
        return {"counterparty": self.counterparty, "counter": self.counter,
                "current": self.current, "peak": self.peak, "peak_index": self.peak_index,
                "threshold": self.threshold, "crossings": self.crossings,
                "near_misses": self.near_misses}


def bulk_counters(state: InspectionState, settings: BulkSettings | None = None,
                  at: float | None = None) -> list[BulkCount]:
    """Every counter the audit keeps, sorted by counterparty and counter.

    Args:
        state: an inspector's state (``ReferenceInspector.finish()``, or loaded).
        settings: the thresholds to show (default: the text's).
        at: the time the current figures end at (default: the last entry's).
    """
    s = settings or BulkSettings()
    end = at if at is not None else state.max_time
    out = []
    for key, counter_state in sorted(state.bulk.items()):
        party, counter = key.split(_SEP, 1)
        floor = None if end is None else end - s.window_s
        live = sum(1 for v in counter_state.subjects.values() if floor is None or v > floor)
        out.append(BulkCount(party, counter, live * s.subject_weight(counter), counter_state.peak,
                             counter_state.peak_index, s.threshold(counter),
                             counter_state.crossings, counter_state.near_misses))
    return out

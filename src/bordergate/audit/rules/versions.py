"""Which checks apply to an entry of which format version, and what older entries miss.

Entry format 2 (issue 12, :data:`bordergate.entries.ENTRY_VERSION`) lets parties
other than the gateway attest the facts of an entry.  Entries of version 1
(written by every release before it) cannot get the checks those facts make
possible; the audit still checks everything else in them, and the report states,
with counts, which checks they could not get.  :data:`VERSIONED_CHECKS` is the one
table of those checks: its name, the first version that carries what it needs,
the entry types it applies to, what an older entry misses (for the report), and
the rule that checks it (``hook``: a function of :mod:`bordergate.audit.rules`
called for every entry of that type and version; ``None`` until the rule lands,
see below).

A version never goes back: an entry of a lower version than one before it in the
same log is ``entry_version_downgrade`` (a writer that dropped what the newer
format attests, or an operator who rewrote entries to escape a check), and is
checked as the highest version seen so far (its hooks then find what it lacks).

Adding a check is one row.  The rows:

* ``roster``: the principal roster version a decision or approval entry names,
  and the principal's attributes in it (:func:`.rosters.decision_roster`);
* ``approver signatures``: approval grants, denials and revocations signed by
  the approver's own key (checked inside the approvals rule,
  :func:`.statements.statement_problem`, which asks the entry's version);
* ``appender``: the append credential the sequencer recorded for the entry
  (:func:`.appenders.appender_attribution`);
* ``receipts``: the receipt key a ``gateway-start`` registers
  (:func:`.releases.start_receipt_key`).

The table is read once per entry type and version (cached), so it costs the
accelerated inspector nothing per entry of a known shape (the version is part of
an entry's shape).  This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from bordergate.audit.rules import appenders, releases, rosters
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import APPROVAL_CHANGE_TYPES, ENTRY_TYPES, Entry

__all__ = ["VERSIONED_CHECKS", "RuleHook", "VersionedCheck", "apply_versioned_checks",
           "check_table", "checks_for", "entry_version", "missing_for", "settle_version",
           "unchecked_keys", "version_limitations"]

RuleHook = Callable[[RuleContext, int, float, Entry], None]
"""A versioned rule: ``hook(ctx, index, t, entry)`` reports through ``ctx.flag``.

``t`` is the entry's time.  On the accelerated path ``entry`` may be the first
entry of the shape (byte-identical but for its record and subject pseudonyms and
its time): a hook reads neither those members nor ``entry.time``, or it must be
run on every entry by the reference rules (as approvals are)."""

_ALL_TYPES = frozenset(ENTRY_TYPES)


@dataclass(frozen=True)
class VersionedCheck:
    """One check that applies from an entry version on.

    Attributes:
        name: the check's name in the report (``roster``).
        since: the first entry version that carries what it needs.
        types: the entry types it applies to.
        missing: what an older entry misses, for the report ("no roster check").
        hook: the rule (None until it lands: the entry is then counted as neither
            checked nor missing it).
    """

    name: str
    since: int
    types: frozenset[str]
    missing: str
    hook: RuleHook | None = None
    inline: bool = False  # checked inside another rule, which asks the entry's version


VERSIONED_CHECKS: tuple[VersionedCheck, ...] = (
    VersionedCheck("roster", 2, rosters.RECORDING_TYPES,
                   "no roster check (the principal's attributes are the gateway's claim)",
                   hook=rosters.decision_roster),
    VersionedCheck("approver signatures", 2, frozenset(APPROVAL_CHANGE_TYPES),
                   "grants unsigned (the approver is the gateway's claim)",
                   inline=True),  # audit.rules.statements, from the approvals rule
    VersionedCheck("appender", 2, _ALL_TYPES,
                   "no appender credential (who appended it is unknown)",
                   hook=appenders.appender_attribution),
    VersionedCheck("receipts", 2, frozenset({"gateway-start"}),
                   "no receipt key (the gateway's receipts cannot be checked)",
                   hook=releases.start_receipt_key),
)


@cache
def checks_for(entry_type: str, version: int) -> tuple[RuleHook, ...]:
    """The hooks of the checks that apply to an entry of this type and version."""
    return tuple(c.hook for c in VERSIONED_CHECKS
                 if entry_type in c.types and version >= c.since and c.hook is not None)


@cache
def missing_for(entry_type: str, version: int) -> tuple[str, ...]:
    """The names of the checks an entry of this type and version cannot get."""
    return tuple(c.name for c in VERSIONED_CHECKS
                 if entry_type in c.types and version < c.since)


def entry_version(ctx: RuleContext, index: int, t: float, entry: Entry) -> int:
    """Count the entry's version, flag a downgrade, and return the version to check it
    by (its own, or the highest seen before it when it is lower)."""
    version = entry.version
    ctx.state.tally.versions[str(version)] += 1
    return settle_version(ctx, index, t, entry, version)


def settle_version(ctx: RuleContext, index: int, t: float, entry: Entry,
                   version: int) -> int:
    """:func:`entry_version` but for the count (an inspector that counts versions by
    entry shape calls this)."""
    st = ctx.state
    highest = st.max_version
    if version >= highest:
        st.max_version = version
        return version
    ctx.flag("entry_version_downgrade", index, t,
             f"{entry.type} entry {index} is of entry version {version} after entries of "
             f"version {highest}; it is checked as version {highest}",
             {"version": version, "after": highest})
    return highest


def apply_versioned_checks(ctx: RuleContext, index: int, t: float, entry: Entry,
                           version: int) -> None:
    """Run the versioned checks that apply to the entry; count those it cannot get."""
    for hook in checks_for(entry.type, version):
        hook(ctx, index, t, entry)
    unchecked = ctx.state.tally.unchecked
    for key in unchecked_keys(entry.type, version):
        unchecked[key] += 1


@cache
def unchecked_keys(entry_type: str, version: int) -> tuple[str, ...]:
    """The tally keys (``version>check``) an entry of this type and version counts."""
    return tuple(f"{version}>{name}" for name in missing_for(entry_type, version))


def version_limitations(unchecked: dict[str, int]) -> list[dict[str, object]]:
    """The report's rows: per entry version, the checks its entries could not get and
    how many entries of the types each check applies to (from the tally's
    ``unchecked`` counts, keyed ``version>check``), in the table's order."""
    order = {c.name: i for i, c in enumerate(VERSIONED_CHECKS)}
    rows: list[tuple[int, int, dict[str, object]]] = []
    for key, count in unchecked.items():
        version, _, name = key.partition(">")
        if name not in order or not version.isdigit():
            continue
        check = VERSIONED_CHECKS[order[name]]
        rows.append((int(version), order[name], {
            "version": int(version), "check": name, "since": check.since, "entries": count,
            "missing": check.missing}))
    return [row for _, _, row in sorted(rows, key=lambda r: r[:2])]


def check_table() -> list[dict[str, object]]:
    """The version table for the report: each check, the version it applies from, and
    whether this auditor runs it (``in_force``: its rule is plugged in)."""
    return [{"check": c.name, "since": c.since, "types": sorted(c.types),
             "in_force": c.hook is not None or c.inline, "missing": c.missing}
            for c in VERSIONED_CHECKS]

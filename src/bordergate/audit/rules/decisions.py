"""Rules about recorded decisions (promise 4): replayed, and describing the entry's request.

A decision entry's checks split in two:

* what follows from the entry but for its record, subject and time
  (:func:`decision_checks`: the replay verdict, the recorded input against the
  entry, the data-flow rules of :mod:`.dataflows`, the counts), returned as a
  :class:`DecisionChecks` whose explanations say ``entry #`` where the index goes
  (:data:`ENTRY_INDEX`);
* what depends on the entry's time and on the log before it
  (:func:`apply_decision_checks`: the decision time, the release, the approval).

The reference inspector does both for every entry; the accelerated one does the
first once per entry shape.  This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bordergate.audit.decision_lists import DecisionList
from bordergate.audit.quoting import clean, short
from bordergate.audit.rules import approvals, bulk, dataflows, privacy, releases
from bordergate.audit.rules.context import ENTRY_INDEX, RuleContext
from bordergate.entries import DECISION_ACTIONS, Entry

__all__ = [
    "DECISION_TYPES",
    "ENTRY_INDEX",
    "DecisionChecks",
    "apply_decision_checks",
    "approval_decision",
    "bundle_needs_v1_rules",
    "decided_away_from_entry_time",
    "decision_checks",
    "decision_input_inconsistent",
    "decision_unreplayable",
    "recorded_input_problem",
]

DECISION_TYPES = DECISION_ACTIONS


@dataclass
class DecisionChecks:
    """What a decision entry's checks found, but for its index and time.

    Attributes:
        counts: ``(counter, key, n)`` to add to the tally.
        flags: ``(kind, explanation, detail)`` findings (explanations hold
            :data:`ENTRY_INDEX`).
        slot: the entry's column in the per-minute chart (None: not counted).
        trusted: replay agreed, so the time, release and approval rules apply (the
            data-flow rules apply whatever the replay outcome).
        replay_issue: why the list could not be replayed (a code).
        approval: ``(approval id, fields released under it, its recorded
            approval_version or None)`` when one was presented.
        principal: the entry's principal (JSON).
        budget: what an allowed export says it spent (:mod:`.privacy`).
    """

    counts: list[tuple[Any, str, int]] = field(default_factory=list)
    flags: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    slot: int | None = None
    trusted: bool = False
    replay_issue: str | None = None
    approval: tuple[str, list[str], object] | None = None
    principal: dict[str, Any] = field(default_factory=dict)
    release: tuple[str, str] | None = None  # (release, bundle) when the entry names one
    budget: privacy.BudgetClaim | None = None
    bulk: tuple[Any, ...] | None = None  # the bulk counters of an access (:mod:`.bulk`)


def decision_checks(ctx: RuleContext, entry: Entry, group: DecisionList) -> DecisionChecks:
    """The checks of a decision entry that follow from all of it but index, record,
    subject and time (see the module docstring)."""
    body = entry.body
    tally = ctx.state.tally
    checks = DecisionChecks()
    release = body.get("release")
    if isinstance(release, str):
        checks.release = (release, str(body.get("bundle")))
    outcome = body.get("outcome")
    principal = body.get("principal")
    if not isinstance(principal, dict):
        principal = {}
    checks.principal = principal
    location = str(principal.get("location"))[:16]
    org_kind = str(principal.get("org_kind"))[:16]
    n = len(group.records)
    checks.counts += [(tally.outcomes, f"{entry.type}/{outcome}"[:60], 1),
                      (tally.principals, f"{org_kind}/{location}", 1),
                      (tally.bundles, str(body.get("bundle"))[:80], n),
                      (tally.replay, "decisions", n)]
    what = f"{entry.type} entry {ENTRY_INDEX}"
    if group.problem is not None:
        checks.flags.append(("decision_input_inconsistent", f"{what}: {group.problem}", {}))
        checks.slot = 2
        return checks
    if group.unreplayable is not None:
        checks.counts.append((tally.replay, "unreplayed", n))
        checks.replay_issue = group.unreplayable
    elif group.mismatch is not None:
        checks.counts.append((tally.replay, "mismatches", 1))
        checks.flags.append(("decision_mismatch", f"{what}: {group.mismatch}", {}))
    else:
        checks.trusted = True
        problem = recorded_input_problem(ctx, entry, group, principal)
        if problem is not None:
            checks.flags.append(("decision_input_inconsistent",
                                 f"{what}: the recorded decision input {problem}", {}))
    bundle_needs_v1_rules(ctx, checks, entry, group)
    # The data-flow rules judge what the entry itself says was released, to whom,
    # whatever the replay outcome: a decision that does not replay never hides a flow.
    if entry.type == "access":
        dataflows.access_checks(ctx, checks, entry, group, location=location,
                                org_kind=org_kind)
        released = entry.body.get("released")
        checks.bulk = bulk.access_plan(ctx, entry, [
            n for n in released if isinstance(n, str)] if isinstance(released, list) else [])
    elif entry.type == "export":
        dataflows.export_checks(ctx, checks, entry, group, location)
    else:
        if outcome == "allow" and not group.all_allowed:
            checks.flags.append(("released_without_permit",
                                 f"{what} says 'allow' but its recorded decisions did not "
                                 "allow everything", {}))
        checks.slot = 0 if outcome == "allow" else 2
    for cls, reason in group.denials:
        checks.counts += [(tally.denials, reason, 1),
                          (tally.withheld, f"{location}>{ctx.home}>{cls}>{group.purpose}", 1)]
    return checks


def bundle_needs_v1_rules(ctx: RuleContext, checks: DecisionChecks, entry: Entry,
                          group: DecisionList) -> None:
    """decision_unreplayable: a version 2 entry naming a bundle released before
    exports.toml (which only version 1 entries are replayed with: a version 2
    gateway cannot load it)."""
    if entry.version >= 2 and ctx.bundles(group.digest).legacy:
        checks.flags.append((
            "decision_unreplayable",
            f"{entry.type} entry {ENTRY_INDEX} is of entry version {entry.version} but names "
            "a policy bundle without exports.toml, which a version 2 gateway cannot load",
            {"code": "bundle_needs_v1_rules"}))


def recorded_input_problem(ctx: RuleContext,  # noqa: PLR0911 (one rule each)
                           entry: Entry, group: DecisionList,
                           principal: Mapping[str, Any]) -> str | None:
    """How the recorded decision input fails to describe the entry's request, if it does."""
    body = entry.body
    if group.action != DECISION_TYPES[entry.type]:
        return f"is a {group.action!r} decision"
    if group.principal != principal:
        return "names another principal than the entry"
    if group.purpose != body.get("purpose"):
        return "names another purpose than the entry"
    if group.gateway != ctx.home or body.get("gateway", ctx.home) != ctx.home:
        return f"was not decided by the gateway of {ctx.home}"
    if entry.type != "erase" and group.collection != body.get("collection"):
        return "names another collection than the entry"
    if entry.type == "export" and group.k != body.get("k"):
        return "names another k than the entry"
    if entry.type == "access" and group.approval_id is not None and \
            group.approval_id != body.get("approval"):
        return "presents another approval than the entry"
    return None


def apply_decision_checks(ctx: RuleContext, index: int, entry: Entry, *,
                          group: DecisionList, checks: DecisionChecks) -> None:
    """Report a decision entry's :class:`DecisionChecks`, then the rules that depend on
    its time and on the log before it."""
    tally = ctx.state.tally
    t = entry.time
    for counter, key, n in checks.counts:
        counter[key] += n
    if checks.replay_issue is not None:
        decision_unreplayable(ctx, index, t, entry.type, group=group,
                              code=checks.replay_issue)
    for kind, text, detail in checks.flags:
        ctx.flag(kind, index, t, text.replace(ENTRY_INDEX, str(index)), detail)
    if checks.slot is not None:
        tally.minute(t, checks.slot)
    if checks.budget is not None:  # what the entry says it spent, replayed or not
        privacy.budget_spent(ctx, index, t, checks.budget)
    if checks.bulk is not None:  # what the entry released, replayed or not
        bulk.count_access(ctx, index, t, checks.bulk, entry.body.get("subject"))
    if not checks.trusted:
        return
    if abs(group.now - t) > ctx.tolerance + 1:
        decided_away_from_entry_time(ctx, index, t, entry.type, group)
    releases.decision_release_mismatch(ctx, index, t, entry)
    if checks.approval is not None:
        approval_id, used, version = checks.approval
        approvals.approval_use(ctx, index, t, group, principal=checks.principal,
                               approval_id=approval_id, used=used, version=version,
                               subject=entry.body.get("subject"),
                               record=entry.body.get("record"))


def decided_away_from_entry_time(ctx: RuleContext, index: int, t: float, entry_type: str,
                                 group: DecisionList) -> None:
    """decision_input_inconsistent: decided further from the entry's time than allowed."""
    ctx.flag("decision_input_inconsistent", index, t,
             f"{entry_type} entry {index}: the recorded decision input was decided "
             f"{abs(group.now - t):.0f} s away from the entry's time")


def decision_input_inconsistent(ctx: RuleContext, index: int, t: float, entry_type: str,
                                problem: str) -> None:
    """A decision list that does not describe one request (approval changes)."""
    ctx.flag("decision_input_inconsistent", index, t, f"{entry_type} entry {index}: {problem}")


def approval_decision(ctx: RuleContext, index: int, entry: Entry,
                      group: DecisionList | None) -> None:
    """The recorded ``approve`` decision of an approval change: it must describe one
    request and replay as recorded (an entry without one is not checked here)."""
    if group is None:
        return
    t = entry.time
    if group.problem is not None:
        decision_input_inconsistent(ctx, index, t, entry.type, group.problem)
    elif group.unreplayable is not None:
        decision_unreplayable(ctx, index, t, entry.type, group=group, code=group.unreplayable)
    elif group.mismatch is not None:
        ctx.state.tally.replay["mismatches"] += 1
        ctx.flag("decision_mismatch", index, t, f"{entry.type} entry {index}: {group.mismatch}")
    else:
        ctx.state.tally.replay["decisions"] += len(group.records)


def decision_unreplayable(ctx: RuleContext, index: int, t: float, entry_type: str, *,
                          group: DecisionList, code: str) -> None:
    """A decision list that cannot be replayed: its bundle is missing or does not match
    its digest, or it names what the bundle lacks.  Every such entry is its own finding
    (each is a decision nobody can check)."""
    if code in ("bundle_unavailable", "bundle_digest_mismatch"):
        lookup = ctx.bundles(group.digest)
        ctx.flag(code, index, t, f"{entry_type} entry {index} names policy bundle "
                 f"{short(group.digest)}: {clean(lookup.reason)}",
                 {"bundle": short(group.digest)})
    else:
        ctx.flag("decision_unreplayable", index, t,
                 f"{entry_type} entry {index}: its recorded decision input cannot be "
                 f"replayed ({code})", {"code": code})

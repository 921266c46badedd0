"""Rules about data flows (promises 1, 2): borders, the parent organisation, exports.

No restricted field released across a border, to the parent organisation or in
an export; no protected field released abroad without an approval; exports over
at least the k_min of the policy bundle the entry names (never an auditor setting),
with their noise and budget recorded (:mod:`.privacy`); denied attempts by covered
persons (the parent organisation abroad) reported as denied attempts.  Each rule adds to a
:class:`~.decisions.DecisionChecks` (they follow from an entry's shape).

This module must never read a log or a clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bordergate.audit.decision_lists import DecisionList
from bordergate.audit.quoting import code, integer, name
from bordergate.audit.rules import privacy
from bordergate.audit.rules.context import ENTRY_INDEX as _INDEX
from bordergate.audit.rules.context import RuleContext
from bordergate.entries import Entry

if TYPE_CHECKING:
    from bordergate.audit.rules.decisions import DecisionChecks

__all__ = ["access_checks", "export_checks"]



def access_checks(ctx: RuleContext, checks: DecisionChecks, entry: Entry,
                  group: DecisionList, *, location: str, org_kind: str) -> None:
    """The data-flow rules of an ``access`` entry, whatever its replay outcome: the
    classes are those its decisions record for the fields it says it released."""
    body = entry.body
    tally = ctx.state.tally
    released = body.get("released")
    if not isinstance(released, list):
        released = []
    names = [r for r in released if isinstance(r, str)]
    outcome = body.get("outcome")
    abroad = location != ctx.home
    classes = {group.classes.get(n) for n in names}
    checks.slot = 0 if outcome == "allow" else 1 if names else 2
    for n in names:
        cls = group.classes.get(n)
        if cls is not None:
            checks.counts.append((tally.flows, f"{location}>{ctx.home}>{cls}>{group.purpose}",
                                  1))
    released_without_permit(checks, group, names, released, outcome)
    if "restricted" in classes and abroad:
        restricted_released_abroad(ctx, checks, location)
    elif "restricted" in classes and org_kind == "parent":
        restricted_released_to_parent(checks)
    approval_id = body.get("approval")
    if isinstance(approval_id, str):
        checks.approval = (approval_id, [n for n in names if n in group.needs_approval],
                           body.get("approval_version"))
    if "protected" in classes and abroad:
        if group.unreplayable is None:
            covered = group.needs_approval
        else:  # not replayed: which permits needed the approval is unknown
            covered = frozenset(names) if isinstance(approval_id, str) else frozenset()
        protected_released_abroad_without_approval(ctx, checks, group, names, location,
                                                   covered=covered)
    if org_kind == "parent" and abroad:
        covered_person_denied(ctx, checks, group, location)


def released_without_permit(checks: DecisionChecks, group: DecisionList, names: list[str],
                            released: list[object], outcome: object) -> None:
    """An access entry that released a field its recorded decisions denied."""
    extra = [n for n in names if n not in group.allowed]
    if extra or len(names) != len(released) or (outcome == "allow" and
                                                 not group.all_allowed):
        checks.flags.append((
            "released_without_permit",
            f"access entry {_INDEX} released {len(extra)} field(s) its recorded decisions "
            "denied", {"fields": [name(n) for n in extra[:20]]}))


def restricted_released_abroad(ctx: RuleContext, checks: DecisionChecks, location: str) -> None:
    """Restricted data released to a principal located outside its home (promise 1)."""
    checks.flags.append(("restricted_released_abroad",
                         f"access entry {_INDEX} released restricted data of {ctx.home} to a "
                         f"principal located in {code(location)}", {}))


def restricted_released_to_parent(checks: DecisionChecks) -> None:
    """Restricted data released to the parent organisation (promise 2)."""
    checks.flags.append(("restricted_released_to_parent",
                         f"access entry {_INDEX} released restricted data to the parent "
                         "organisation", {}))


def protected_released_abroad_without_approval(ctx: RuleContext, checks: DecisionChecks,
                                               group: DecisionList, names: list[str],
                                               location: str, *, covered: frozenset[str]
                                               ) -> None:
    """Protected fields released abroad whose permit did not need an approval
    (``covered``: the fields whose permit needed the approval presented)."""
    unapproved = [n for n in names if group.classes.get(n) == "protected"
                  and n not in covered]
    if unapproved:
        checks.flags.append((
            "protected_released_abroad_without_approval",
            f"access entry {_INDEX} released {len(unapproved)} protected field(s) of "
            f"{ctx.home} to a principal located in {code(location)} without an approval",
            {"fields": [name(n) for n in unapproved[:20]]}))


def covered_person_denied(ctx: RuleContext, checks: DecisionChecks, group: DecisionList,
                          location: str) -> None:
    """A parent-organisation principal abroad denied protected or restricted data (as
    its decisions record it)."""
    denied = sorted({r.field_class for r in group.records if not r.allowed
                     and r.field_class in ("protected", "restricted")})
    if denied:
        checks.flags.append((
            "covered_person_denied",
            f"access entry {_INDEX}: a parent-organisation principal located in "
            f"{code(location)} asked for {' and '.join(denied)} data of {ctx.home} and was "
            "denied", {"classes": denied}))


def export_checks(ctx: RuleContext, checks: DecisionChecks, entry: Entry, group: DecisionList,
                  location: str) -> None:
    """The data-flow rules of an ``export`` entry, whatever its replay outcome."""
    body = entry.body
    tally = ctx.state.tally
    allowed = body.get("outcome") == "allow"
    checks.counts.append((tally.exports, "allowed" if allowed else "denied", 1))
    checks.slot = 0 if allowed else 2
    if not allowed:
        return
    if not group.all_allowed:
        checks.flags.append(("released_without_permit",
                             f"export entry {_INDEX} was released though its decision denied "
                             "it", {}))
    k = body.get("k")
    if isinstance(k, int) and not isinstance(k, bool) and \
            (tally.min_export_k is None or k < tally.min_export_k):
        tally.min_export_k = k
    for cls in {group.classes.get(n) for n in group.allowed}:
        checks.counts.append((tally.flows,
                              f"{location}>{ctx.home}>{cls} (aggregate)>{group.purpose}", 1))
    engine = ctx.bundles(group.digest).engine
    if engine is not None:
        k_min, whose = engine.bundle.k_min, "its policy bundle's"
    else:  # the bundle cannot be read: the minimum its decision recorded
        k_min, whose = group.records[0].input.context.k_min, \
            "the recorded (its policy bundle is unavailable)"
    if not isinstance(k, int) or isinstance(k, bool) or k < k_min:
        checks.flags.append(("export_below_k",
                             f"export entry {_INDEX} released an aggregate over k={integer(k)} "
                             f"subjects; {whose} minimum is {k_min}",
                             {"k": integer(k), "k_min": k_min}))
    claim = privacy.budget_claim(entry, checks.principal)
    if claim is None:
        privacy.export_not_private(checks.flags)
    checks.budget = claim
    if "restricted" in group.classes.values():
        checks.flags.append(("restricted_exported",
                             f"export entry {_INDEX} released an aggregate of a restricted "
                             "field", {}))

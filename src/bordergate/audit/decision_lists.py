"""Recorded decision lists: parsed once, replayed with their policy bundle (promise 4).

A decision entry carries the gateway's decisions as a list (its ``decisions``
member; an approval change carries one ``decision``).  :func:`parse_decision_list`
turns such a list into a :class:`DecisionList`, or says why it does not describe
one request; :func:`replay` decides every decision again with the bundle the
entry names and records, on the list, whether replay agrees, which denials it
saw and which allowed fields needed the approval presented.

Pure apart from the injected bundle lookup: this module must never read a log
or a clock, and never put an entry's string values into a reason it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.personal_data import scan_entry
from bordergate.audit.quoting import describe
from bordergate.errors import VerificationError
from bordergate.policy.engine import Decision, PolicyEngine
from bordergate.policy.entities import DecisionInput, Field, RequestContext

__all__ = ["DecisionList", "DecisionRecord", "list_scan", "parse_decision_list", "replay",
           "replay_with"]


@dataclass
class DecisionRecord:
    """One recorded decision of a list."""

    field: str | None
    field_class: str | None
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: bool
    input: DecisionInput


@dataclass
class DecisionList:
    """A distinct recorded decision list (with its bundle), parsed once and replayed once."""

    digest: str
    records: list[DecisionRecord]
    problem: str | None = None          # why the list does not describe one request
    unreplayable: str | None = None     # a code, when it cannot be replayed
    mismatch: str | None = None         # what differs, when replay disagrees
    replayed: bool = False
    principal: dict[str, Any] = field(default_factory=dict)
    purpose: str = ""
    now: int = 0
    gateway: str = ""
    collection: str | None = None
    k: int | None = None
    action: str = ""
    approval_id: str | None = None
    allowed: frozenset[str] = frozenset()
    all_allowed: bool = False
    classes: dict[str, str] = field(default_factory=dict)
    needs_approval: frozenset[str] = frozenset()  # allowed fields whose permit needed it
    denials: list[tuple[str, str]] = field(default_factory=list)  # (class, reason)
    raw: bytes = b""                    # the list's canonical bytes
    pii: list[tuple[str, str]] | None = None  # its personal-data scan, once
    value: list[Any] | None = None      # the parsed list (for the personal-data scan)


def parse_decision_list(digest: str, value: list[Any]) -> DecisionList:  # noqa: PLR0911 (one per defect)
    """The decision list ``value`` of an entry naming bundle ``digest``.

    Never raises: a list that does not describe one request comes back with its
    ``problem`` set (and is not replayed).
    """
    records: list[DecisionRecord] = []
    group = DecisionList(digest, records, value=value)
    if not value:
        group.problem = "records no decision"
        return group
    for i, item in enumerate(value):
        try:
            if not isinstance(item, dict):
                raise TypeError("not an object")
            decision_input = DecisionInput.from_json(item.get("input"))
            allowed, ids = item.get("allowed"), item.get("policy_ids")
            if not isinstance(allowed, bool) or not isinstance(ids, list) or \
                    not all(isinstance(x, str) for x in ids):
                raise TypeError("allowed or policy_ids")
        except (TypeError, VerificationError) as exc:
            group.problem = f"decision {i} is malformed ({describe(exc)})"
            return group
        resource = decision_input.resource
        name = item.get("field")
        cls = item.get("class")
        if isinstance(resource, Field) and (name != resource.name or
                                            cls != resource.field_class):
            group.problem = f"decision {i} names another field or class than its input"
            return group
        records.append(DecisionRecord(name if isinstance(name, str) else None,
                               cls if isinstance(cls, str) else None, allowed,
                               tuple(sorted(ids)), bool(item.get("errors")), decision_input))
    first = records[0].input
    context = first.context
    group.principal = first.principal.to_json()
    group.purpose, group.now, group.gateway = context.purpose, context.now, context.gateway
    group.k, group.action = context.k, first.action
    group.approval_id = context.approval.id if context.approval is not None else None
    if isinstance(first.resource, Field):
        group.collection = first.resource.collection
    for r in records[1:]:
        if r.input.principal != first.principal or r.input.context != context or \
                r.input.action != first.action:
            group.problem = "holds decisions of different requests"
            return group
        if isinstance(r.input.resource, Field) and r.input.resource.collection != \
                group.collection:
            group.problem = "holds decisions about different collections"
            return group
    homes = {getattr(r.input.resource, "home", None) for r in records}
    if len(homes) != 1:
        group.problem = "holds decisions about data of different homes"
        return group
    group.allowed = frozenset(r.field for r in records if r.allowed and r.field is not None)
    group.all_allowed = all(r.allowed for r in records)
    group.classes = {r.field: r.field_class for r in records
                     if r.field is not None and r.field_class is not None}
    return group


def list_scan(group: DecisionList) -> list[tuple[str, str]]:
    """The personal-data scan of a decision list (promise 7), once per list.

    Paths are those of a scan of the whole entry (``$.decisions[...]``).
    """
    if group.pii is None:
        group.pii = scan_entry(group.raw, {"decisions": group.value})
    return group.pii


def replay(groups: list[DecisionList], bundles: Callable[[str], BundleLookup]) -> None:
    """Replay the lists not replayed yet, one batch per bundle; set each list's verdict."""
    by_digest: dict[str, list[DecisionList]] = {}
    for g in groups:
        if not g.replayed and g.problem is None:
            by_digest.setdefault(g.digest, []).append(g)
    for digest, todo in by_digest.items():
        lookup = bundles(digest)
        for g in todo:
            g.replayed = True
        if lookup.engine is None:
            for g in todo:
                g.unreplayable = lookup.code or "bundle_unavailable"
            continue
        replay_with(lookup.engine, todo)


def replay_with(engine: PolicyEngine, groups: list[DecisionList]) -> None:
    """Replay every decision of ``groups`` in one batch; set each group's verdict."""
    purposes = engine.bundle.purposes
    ok: list[DecisionList] = []
    for g in groups:
        if any(r.input.context.purpose not in purposes for r in g.records):
            g.unreplayable = "unknown_purpose"
        else:
            ok.append(g)
    inputs = [r.input for g in ok for r in g.records]
    # The approval's part in each allowed decision that presented one: decided again
    # without it (exact: same bundle, same input, approval removed).
    bare: list[DecisionInput] = []
    for g in ok:
        for r in g.records:
            if r.allowed and r.input.context.approval is not None:
                bare.append(without_approval(r.input))
    decided = engine.decide_many(inputs + bare) if inputs else []
    results = iter(decided[:len(inputs)])
    bare_results = iter(decided[len(inputs):])
    for g in ok:
        needs: set[str] = set()
        for i, r in enumerate(g.records):
            d = next(results)
            if g.mismatch is None and (d.allowed != r.allowed or d.policy_ids != r.policy_ids):
                g.mismatch = (f"decision {i} was recorded as "
                              f"{'allow' if r.allowed else 'deny'} {list(r.policy_ids)} but "
                              f"replays as {'allow' if d.allowed else 'deny'} "
                              f"{list(d.policy_ids)}")
            if not r.allowed:
                g.denials.append((r.field_class or "subject", denial_reason(r, d)))
            if r.allowed and r.input.context.approval is not None and \
                    not next(bare_results).allowed and r.field is not None:
                needs.add(r.field)
        g.needs_approval = frozenset(needs)


def without_approval(item: DecisionInput) -> DecisionInput:
    c = item.context
    return DecisionInput(item.principal, item.action, item.resource,
                         RequestContext(c.purpose, c.now, c.gateway, c.k_min, c.k, None))


def denial_reason(record: DecisionRecord, decision: Decision) -> str:
    """Why a field was denied, as the gateway explains it (gateway.decisions.withheld_reason)."""
    if decision.errors or record.errors:
        return "policy_error"
    if record.policy_ids:
        return " + ".join(record.policy_ids)
    if record.field_class == "protected":
        return "no_approval" if record.input.context.approval is None else "approval_not_valid"
    return "not_permitted"

"""Decision inputs, withheld-field reasons and the bodies of the gateway's log entries.

The gateway asks the policy one question per field of a request; this module
builds those ``DecisionInput``s, explains each denial to the caller (the
``withheld`` list of a read) and builds the bodies of the log entries that record
the decisions (docs/design.md, promises 4 and 7; docs/log-entries.md), which the
entry encoders of ``bordergate.entries`` turn into bytes:

* every decision carries its complete ``DecisionInput`` JSON (principal, action,
  resource attributes, context), so an auditor can replay it with the bundle
  named by its digest;
* subject and record ids appear only as keyed pseudonyms; values never appear
  (the inputs hold collection, field name, class and home, never an id or a
  value: :func:`decision_records` relies on that).

Pure: values in, bytes out.  This module must never read clocks, keys or
stores, and never put a raw subject id, record id or field value in an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bordergate.entries import canonical_json, encode_entry
from bordergate.gateway.fifo_cache import BoundedFifoCache
from bordergate.keys.events import KeyEvent
from bordergate.policy.engine import Decision
from bordergate.policy.entities import (
    Action,
    Approval,
    DecisionInput,
    Field,
    FieldClass,
    Principal,
    RequestContext,
)
from bordergate.residency.schema import FieldSpec

__all__ = [
    "DecisionCache",
    "access_outcome",
    "decision_records",
    "field_inputs",
    "key_event_entry",
    "withheld_reason",
]


def field_inputs(principal: Principal, action: Action, collection: str,
                 specs: Sequence[FieldSpec], *, home: str,
                 context: RequestContext) -> list[DecisionInput]:
    """One decision input per field (the engine evaluates each class once)."""
    return [
        DecisionInput(principal, action,
                      Field(collection, spec.name, _field_class(spec), home), context)
        for spec in specs
    ]


def _field_class(spec: FieldSpec) -> FieldClass:
    value = spec.field_class.value
    assert value in ("public", "protected", "restricted")
    return value  # type: ignore[return-value]


def withheld_reason(field_class: str, decision: Decision,
                    approval: Approval | None) -> dict[str, Any]:
    """Why a denied field was withheld, for the caller.

    ``policy_denied`` names the forbids that decided it; otherwise no policy
    permitted it: ``no_approval`` for a protected field read without an
    approval, ``approval_not_valid`` when the approval presented does not
    cover it (or is not valid now), ``policy_error`` when evaluation failed,
    and ``not_permitted`` for everything else.
    """
    if decision.errors:
        reason = "policy_error"
    elif decision.policy_ids:
        reason = "policy_denied"
    elif field_class == "protected" and approval is None:
        reason = "no_approval"
    elif field_class == "protected" and approval is not None and approval.in_scope is False:
        reason = "approval_out_of_scope"
    elif field_class == "protected":
        reason = "approval_not_valid"
    else:
        reason = "not_permitted"
    return {"reason": reason, "policy_ids": list(decision.policy_ids)}


def decision_records(inputs: Sequence[DecisionInput], decisions: Sequence[Decision],
                     ) -> list[dict[str, Any]]:
    """The ``decisions`` array of an entry: per field its class, outcome and full input."""
    out: list[dict[str, Any]] = []
    for item, decision in zip(inputs, decisions, strict=True):
        resource = item.resource
        record: dict[str, Any] = {
            "allowed": decision.allowed,
            "policy_ids": list(decision.policy_ids),
            "input": item.to_json(),
        }
        if isinstance(resource, Field):
            record["field"] = resource.name
            record["class"] = resource.field_class
        if decision.errors:
            record["errors"] = list(decision.errors)
        out.append(record)
    return out


def access_outcome(decisions: Sequence[Decision]) -> str:
    """``allow`` (every field), ``partial`` or ``deny`` (none)."""
    allowed = sum(1 for d in decisions if d.allowed)
    if allowed == len(decisions) and allowed:
        return "allow"
    return "partial" if allowed else "deny"


def key_event_entry(event: KeyEvent, pseudonym: Any, time: float,
                    extra: Mapping[str, Any] | None = None) -> bytes:
    """A ``key-event`` entry: the event with its subject pseudonymised."""
    body = dict(event.to_entry(pseudonym))
    body["kind"] = body.pop("event")
    if extra:
        body.update(extra)
    return encode_entry("key-event", time, body)


class DecisionCache:
    """Decisions (and their recorded JSON) by their complete inputs, bounded FIFO.

    A decision is a pure function of its ``DecisionInput`` and the bundle, so
    equal input lists get equal decisions; caching them is exact.  Inputs carry
    ``context.now`` in seconds, so entries turn over at least every second.
    """

    def __init__(self, decide: Callable[[list[DecisionInput]], list[Decision]],
                 max_entries: int = 4096) -> None:
        self._decide = decide
        self._cache: BoundedFifoCache[tuple[DecisionInput, ...],
                                      tuple[list[Decision], bytes]] = BoundedFifoCache(max_entries)

    def decide(self, inputs: list[DecisionInput]) -> tuple[list[Decision], bytes]:
        """Decisions for ``inputs`` and the canonical JSON of their ``decisions`` array
        (for :func:`~bordergate.entries.encode_entry_with` and entry templates)."""
        key = tuple(inputs)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        decisions = self._decide(inputs)
        found = (decisions, canonical_json(decision_records(inputs, decisions)))
        self._cache.put(key, found)
        return found

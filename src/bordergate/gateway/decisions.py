"""Decision inputs, withheld-field reasons and the bodies of the gateway's log entries.

The gateway asks the policy one question per field of a request; this module
builds those ``DecisionInput``s, explains each denial to the caller (the
``withheld`` list of a read) and builds the canonical log entries that record
the decisions (DESIGN.md promises 4 and 7, docs/log-entries.md):

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

import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bordergate.entries import (
    ENTRY_TYPES,
    ENTRY_VERSION,
    canonical_json,
    encode_entry,
    format_time,
    time_parts,
)
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
from bordergate.tlog.tiles import ENTRY_MAX as MAX_ENTRY

__all__ = [
    "DecisionCache",
    "EntryTemplate",
    "EntryTime",
    "access_outcome",
    "decision_records",
    "encode_with_decisions",
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
    """Decisions (and their recorded JSON) by their complete inputs, bounded LRU.

    A decision is a pure function of its ``DecisionInput`` and the bundle, so
    equal input lists get equal decisions; caching them is exact.  Inputs carry
    ``context.now`` in seconds, so entries turn over at least every second.
    """

    def __init__(self, decide: Callable[[list[DecisionInput]], list[Decision]],
                 max_entries: int = 4096) -> None:
        self._decide = decide
        self._cache: OrderedDict[tuple[DecisionInput, ...],
                                 tuple[list[Decision], bytes]] = OrderedDict()
        self._max = max_entries

    def decide(self, inputs: list[DecisionInput]) -> tuple[list[Decision], bytes]:
        """Decisions for ``inputs`` and the canonical JSON of their ``decisions`` array."""
        key = tuple(inputs)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        decisions = self._decide(inputs)
        found = (decisions, canonical_json(decision_records(inputs, decisions)))
        self._cache[key] = found
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return found


_SPLICE = "\x00decisions\x00"
_SPLICE_JSON = json.dumps(_SPLICE).encode()


def encode_with_decisions(entry_type: str, time: float, body: Mapping[str, Any],
                          decisions_json: bytes) -> bytes:
    """``encode_entry(type, time, {**body, "decisions": <decisions>})`` with the
    decisions array given as its canonical JSON (computed once per distinct input).

    The result is byte-for-byte what :func:`~bordergate.entries.encode_entry`
    gives: the body is canonicalised with a placeholder in the ``decisions``
    slot (key order does not depend on values), which is then replaced.

    Raises:
        ValueError: as ``encode_entry``.
    """
    data = encode_entry(entry_type, time, {**body, "decisions": _SPLICE})
    head, sep, tail = data.partition(_SPLICE_JSON)
    if not sep or _SPLICE_JSON in tail:  # a body value holds the placeholder's text
        return encode_entry(entry_type, time, {**body, "decisions": json.loads(decisions_json)})
    return head + decisions_json + tail



class EntryTemplate:
    """The canonical bytes of entries of one shape, with slots for what varies.

    Built once from a body whose slot members are left out; :meth:`fill`
    then joins the fixed fragments with each slot's canonical JSON and the
    entry time.  Because canonical JSON orders members by key only, the
    result is byte-for-byte ``encode_entry(type, time, {**body, **slots})``
    (property-tested), at the cost of one join instead of a full encoding.

    Raises:
        ValueError: as ``encode_entry`` (unknown type, missing or reserved keys).
    """

    def __init__(self, entry_type: str, body: Mapping[str, Any], slots: Sequence[str]) -> None:
        required = ENTRY_TYPES.get(entry_type)
        if required is None:
            raise ValueError(f"unknown entry type {entry_type!r}")
        missing = required - body.keys() - set(slots)
        if missing:
            raise ValueError(f"{entry_type} entry lacks {sorted(missing)}")
        names = [*slots, "time"]
        if {"v", "type", "time"} & (body.keys() | set(slots)) or set(slots) & body.keys():
            raise ValueError("v, type and time are set by the template; slots are not in body")
        nonce = secrets.token_hex(16)  # unguessable: no body text can hold a marker
        markers = {name: f"\x00{nonce}:{i}\x00" for i, name in enumerate(names)}
        data = canonical_json({**body, **markers, "v": ENTRY_VERSION, "type": entry_type})
        order: list[tuple[int, str]] = []
        for name, marker in markers.items():
            encoded = json.dumps(marker).encode()
            at = data.find(encoded)
            if at < 0 or data.find(encoded, at + 1) >= 0:  # pragma: no cover (2**-128)
                raise ValueError(f"slot {name!r} not found exactly once")
            order.append((at, name))
        order.sort()
        self.slots = tuple(name for _, name in order)
        self._fragments: list[bytes] = []
        rest = data
        for _, name in order:
            head, _, rest = rest.partition(json.dumps(markers[name]).encode())
            self._fragments.append(head)
        self._fragments.append(rest)
        self._take = tuple(names.index(name) for name in self.slots)

    def fill(self, values: Sequence[bytes], time: bytes) -> bytes:
        """The entry with ``values`` (canonical JSON, in the order of the
        constructor's ``slots``) and ``time`` (from :class:`EntryTime`) filled in.

        Raises:
            ValueError: the entry exceeds the log's limit.
        """
        given = (*values, time)
        fragments = self._fragments
        parts = [fragments[0]]
        for i, take in enumerate(self._take, 1):
            parts.append(given[take])
            parts.append(fragments[i])
        data = b"".join(parts)
        if len(data) > MAX_ENTRY:
            raise ValueError(f"entry of {len(data)} bytes exceeds the log's limit")
        return data


class EntryTime:
    """``format_time`` as the canonical JSON string of an entry's ``time``,
    with the text up to the second cached (the milliseconds are computed)."""

    def __init__(self) -> None:
        self._cached = (-1, b"")  # (second, JSON text up to it): one attribute, one swap

    def __call__(self, epoch_seconds: float) -> bytes:
        """The JSON text (with quotes) of ``format_time(epoch_seconds)``."""
        seconds, micro = time_parts(epoch_seconds)
        second, prefix = self._cached
        if seconds != second:
            prefix = b'"' + format_time(float(seconds))[:-4].encode()
            self._cached = (seconds, prefix)
        return prefix + b'%03dZ"' % (micro // 1000)

"""What a finding is about, for people: principal, purpose, fields, counterparty, bulk.

:func:`finding_context` reads a finding's entry (the one its inclusion proof
carries) and returns the members the report adds to the finding: ``entry``
(decoded JSON, never base64), ``principal`` (id, organisation, kind, location),
``purpose``, ``fields`` (name, class, allowed) and ``counterparty`` (the
organisation whose principal acted).  An entry the proof withholds (suspected
personal data) gives none of them.

Bulk counters (issue 14, item 3) are computed by another part of the audit:
:func:`counterparty_bulk` is the one place the report asks for them.  It reads
``report["bulk_counters"]`` (``{"org:<org>": {...}, "principal:<id>": {...}}``,
the counters per counterparty and category) when that section exists and says
"not computed" otherwise; :func:`attach_bulk_counters` puts the answer on each
finding.  The counting lives elsewhere; this module must never count.

Pure: values in, values out; never I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["BULK_SECTION", "MAX_ENTRY_DEPTH", "attach_bulk_counters", "counterparty_bulk",
           "decode_entry", "finding_context"]

MAX_ENTRY_DEPTH = 32
"""The deepest nesting of arrays and objects an entry is shown (and stored) decoded
with; a deeper one is kept as base64 (``{"not_json": ...}``), like bytes that are
not JSON.  Entries are shallow by design; a deep one (``[[[[...``) would make every
recursive writer of the report (``json.dumps``, the page) fail."""

BULK_SECTION = "bulk_counters"
"""The report section :func:`counterparty_bulk` reads (filled by the bulk counting)."""

_PRINCIPAL_MEMBERS = ("principal", "requester", "approver", "by", "actor")


def finding_context(proof: dict[str, Any] | None) -> dict[str, Any]:
    """The people-facing members of a finding whose proof is ``proof`` (see above)."""
    entry = _decoded(proof)
    if not isinstance(entry, dict):
        return {"entry": None, "principal": None, "purpose": None, "fields": [],
                "counterparty": None}
    principal = next((entry[m] for m in _PRINCIPAL_MEMBERS
                      if isinstance(entry.get(m), dict)), None)
    who = None if principal is None else {
        k: principal.get(k) for k in ("id", "org", "org_kind", "location")}
    fields = []
    for record in entry.get("decisions") or []:
        if isinstance(record, dict) and isinstance(record.get("field"), str):
            fields.append({"field": record["field"], "class": record.get("class"),
                           "allowed": bool(record.get("allowed"))})
    purpose = entry.get("purpose")
    return {"entry": entry, "principal": who,
            "purpose": purpose if isinstance(purpose, str) else None, "fields": fields,
            "counterparty": who.get("org") if who is not None else None}


def counterparty_bulk(report: dict[str, Any], principal: str | None,
                      org: str | None) -> dict[str, Any]:
    """The bulk counters of the counterparty (principal and organisation) of a finding.

    Returns:
        ``{"status": "not computed", ...}`` when the report has no
        ``bulk_counters`` section, else ``{"status": "computed", "principal": ...,
        "org": ...}`` with what the section holds for each (None if nothing).
    """
    section = report.get(BULK_SECTION)
    if not isinstance(section, dict):
        return {"status": "not computed",
                "reason": "this audit computed no bulk counters (issue 14, item 3)"}
    return {"status": "computed",
            "principal": section.get(f"principal:{principal}") if principal else None,
            "org": section.get(f"org:{org}") if org else None}


def attach_bulk_counters(report: dict[str, Any]) -> None:
    """Put :func:`counterparty_bulk` on each finding that names a counterparty."""
    for finding in report.get("findings", []):
        who = finding.get("principal") or {}
        finding["bulk"] = None if not who else counterparty_bulk(report, who.get("id"),
                                                                  who.get("org"))


def _decoded(proof: dict[str, Any] | None) -> Any:
    if proof is None or not isinstance(proof.get("entry"), str):
        return None
    try:
        raw = base64.b64decode(proof["entry"], validate=True)
    except (ValueError, binascii.Error):
        return None
    return decode_entry(raw)


def decode_entry(raw: bytes) -> Any:
    """An entry's JSON value, or ``{"not_json": <base64>}`` for bytes that are not UTF-8
    JSON or that nest deeper than :data:`MAX_ENTRY_DEPTH` (the one decoding of an entry
    the report, its evidence package and ``verify-report`` share: never an exception)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {"not_json": base64.b64encode(raw).decode()}
    return value if _depth_within(value, MAX_ENTRY_DEPTH) else \
        {"not_json": base64.b64encode(raw).decode()}


def _depth_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects at most ``limit`` deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else ()
        if children and depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return True

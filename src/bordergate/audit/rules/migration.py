"""Rules about a legacy migration's evidence (issue 15, docs/migration.md).

A ``migration`` entry (one per batch, source table and home) must agree with
itself: its counts, its retry flag and attempt number, its decisions (every
field written allowed, or nothing was written) and the form of its digests;
its decisions are replayed with the bundle it names, like a ``write``'s
(``decision_mismatch``, ``decision_unreplayable``,
``decision_input_inconsistent``).
A ``legacy-deletion`` entry must be accounted for: every table it names was
migrated by an earlier ``migration`` entry of the same batch in this log,
with the same number of rows and the same digest of legacy keys, and its
``rows`` is the sum of its tables' (``legacy_deletion_unmatched``).  What
was deleted can then never exceed what the log shows migrated.

A ``migration`` entry of the older shape (``batch`` only) carries nothing to
check.  Pure: no I/O, and no entry string in a finding.
"""

from __future__ import annotations

import re
from typing import Any

from bordergate.audit.decision_lists import parse_decision_list, replay
from bordergate.audit.rules.context import RuleContext
from bordergate.audit.rules.decisions import approval_decision
from bordergate.entries import Entry

__all__ = ["legacy_deletion", "migration"]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ROOT = re.compile(r"[0-9a-f]{64}")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _migration_problems(body: Any) -> list[str]:
    problems: list[str] = []
    records, subjects, attempt = body.get("records"), body.get("subjects"), body.get("attempt")
    if not (_count(records) and _count(subjects) and subjects <= records):
        problems.append("records/subjects are not counts with subjects <= records")
    if not (_count(attempt) and attempt >= 1) or body.get("retry") is not (
            _count(attempt) and attempt > 1):
        problems.append("retry does not say whether attempt > 1")
    if body.get("counts") != {body.get("collection"): records}:
        problems.append("counts do not equal records for the entry's collection")
    if not (isinstance(body.get("legacy_keys"), str) and _DIGEST.fullmatch(body["legacy_keys"])
            and isinstance(body.get("records_root"), str)
            and _ROOT.fullmatch(body["records_root"])):
        problems.append("legacy_keys or records_root is not a SHA-256 digest")
    decisions = body.get("decisions")
    if not isinstance(decisions, list) or not all(isinstance(d, dict) for d in decisions):
        problems.append("decisions is not a list of decisions")
        return problems
    allowed = all(d.get("allowed") is True for d in decisions) and bool(decisions)
    if (body.get("outcome") == "allow") is not allowed:
        problems.append("outcome does not follow from the decisions")
    if sorted(str(d.get("field")) for d in decisions) != sorted(map(str, body.get("fields") or [])):
        problems.append("one decision per field written is missing")
    return problems


def _replayed(ctx: RuleContext, index: int, entry: Entry, problems: list[str]) -> None:
    """Replay the entry's write decisions with the bundle it names (promise 4), as an
    approval change's recorded decision is replayed; its input must be this write's."""
    body = entry.body
    decisions, digest = body.get("decisions"), body.get("bundle")
    if not isinstance(decisions, list) or not decisions or not isinstance(digest, str):
        return
    group = parse_decision_list(digest, decisions)
    if group.problem is None and (
            group.action != "write" or group.collection != body.get("collection")
            or group.gateway != body.get("gateway") or group.purpose != body.get("purpose")
            or group.principal != body.get("principal")):
        problems.append("the recorded decision input is not this migration's write")
    replay([group], ctx.bundles)
    approval_decision(ctx, index, entry, group)  # the one report of a replayed list


def migration(ctx: RuleContext, index: int, entry: Entry) -> None:
    """Check one ``migration`` entry and remember what it migrated."""
    body = entry.body
    if "table" not in body:
        return
    problems = _migration_problems(body)
    _replayed(ctx, index, entry, problems)
    if problems:
        ctx.flag("migration_inconsistent", index, entry.time,
                 f"migration entry {index}: " + "; ".join(problems),
                 {"problems": len(problems)})
        return
    if body.get("outcome") == "allow":
        key = f"{body.get('batch')}/{body.get('table')}"
        ctx.state.migrated[key] = [body["records"], body["legacy_keys"]]


def legacy_deletion(ctx: RuleContext, index: int, entry: Entry) -> None:
    """Flag a ``legacy-deletion`` entry that no earlier ``migration`` entry accounts for."""
    body = entry.body
    tables = body.get("tables")
    problems: list[str] = []
    if not isinstance(tables, dict) or not tables:
        problems.append("tables is not a non-empty object")
        tables = {}
    total = 0
    for name, facts in sorted(tables.items()):
        rows = facts.get("rows") if isinstance(facts, dict) else None
        digest = facts.get("legacy_keys") if isinstance(facts, dict) else None
        total += rows if isinstance(rows, int) and _count(rows) else 0
        if ctx.state.migrated.get(f"{body.get('batch')}/{name}") != [rows, digest]:
            problems.append("a table's rows or key digest match no earlier migration entry "
                            "of its batch")
    if body.get("rows") != total:
        problems.append("rows is not the sum of its tables' rows")
    if problems:
        ctx.flag("legacy_deletion_unmatched", index, entry.time,
                 f"legacy-deletion entry {index}: " + "; ".join(sorted(set(problems))),
                 {"problems": len(problems)})

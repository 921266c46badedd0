"""The report's "separation" section: what the logs show of a legacy migration (issue 15).

From each audited log: ``migration`` and ``legacy-deletion`` entries, batches
and records migrated (the last attempt of each batch and table, as the
inspection kept them), and the migration findings.  The store-side
recomputation (per-home counts and Merkle roots against the stores, the
source recounted) needs the custodians' stores and secrets, so the auditor
cannot run it: ``bordergate migrate verify --out FILE`` does, and the
auditor's ``separation = "FILE"`` puts its results here as given, marked as
the custodians' statement, not the auditor's finding.

Pure apart from reading that one JSON file; it must never hold a rule.
"""

from __future__ import annotations

import json
from typing import Any

from bordergate.audit.run import AuditRun

__all__ = ["separation_section"]

_KINDS = ("migration_inconsistent", "legacy_deletion_unmatched")


def separation_section(run: AuditRun) -> dict[str, Any]:
    """The section's document (empty ``homes`` when no log holds a migration)."""
    homes: dict[str, Any] = {}
    for r in run.logs:
        if r.inspector is None:
            continue
        state = r.inspector.state
        entries = state.tally.entries
        if not (entries["migration"] or entries["legacy-deletion"]):
            continue
        homes[r.audit.jurisdiction] = {
            "migration_entries": entries["migration"],
            "legacy_deletion_entries": entries["legacy-deletion"],
            "batches": len({key.split("/", 1)[0] for key in state.migrated}),
            "records_migrated": sum(int(v[0]) for v in state.migrated.values()),
            "findings": sum(1 for f in r.findings if f.kind in _KINDS),
        }
    section: dict[str, Any] = {"homes": homes, "verify": None}
    path = run.config.separation
    if path is not None:
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
            section["verify"] = {"source": str(path), "stated_by": "custodians",
                                 "ok": bool(results.get("ok")),
                                 "failures": [str(f) for f in results.get("failures", [])],
                                 "unverifiable": [str(u) for u in
                                                  results.get("unverifiable", [])]}
        except (OSError, ValueError, AttributeError) as exc:
            section["verify"] = {"source": str(path), "error": type(exc).__name__}
    return section

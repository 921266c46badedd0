"""The scope, period and methodology of an audit report (issue 14, items 5 and 7).

:func:`audit_scope` states what a report covers, so that an assessor can sign
it: per log, the checkpoint audited (SHA-256 of the note, size, root, witness
cosignatures), the entries covered and which of them this run replayed; the
period (the entry times covered, and how it is defined when the audit resumed
from saved state); the rules applied (one module of ``audit/rules`` each, and the
checks by entry version); and the methodology: what was replayed, what was
sampled (nothing), what was taken on trust, and why.

The period of a resumed audit: the auditor's state holds the inspection of
every entry before the size of the checkpoint it last saved (``previous``);
this run proved that checkpoint consistent with the audited one and replayed
only the entries from there.  Counts and findings are cumulative, so the report
covers entries ``[0, size)``, first entry time to last; entries before the
previous size were replayed by earlier runs of the same auditor, with the same
rules, against checkpoints this one extends.  The previous checkpoint goes into
the evidence package, so the boundary can be checked.

Pure: values in, values out.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from typing import Any

from bordergate.audit import rules as rules_package
from bordergate.audit.run import MAX_PROOFS, AuditRun, LogRun

__all__ = ["audit_scope", "rules_applied"]


def audit_scope(run: AuditRun, report: dict[str, Any]) -> dict[str, Any]:
    """The ``scope`` section of ``report`` (built from ``run``; see the module docstring)."""
    logs = [_log_scope(r, log) for r, log in zip(run.logs, report["logs"], strict=True)]
    firsts = [log["first_entry"] for log in report["logs"] if log["first_entry"]]
    lasts = [log["last_entry"] for log in report["logs"] if log["last_entry"]]
    resumed = any(log["previous_size"] for log in logs)
    return {
        "logs": logs,
        "period": {
            "from": min(firsts, default=None), "to": max(lasts, default=None),
            "resumed": resumed,
            "definition": (
                "every entry of each audited log from index 0 to the audited checkpoint's "
                "size; the times are those of the first and last entries"
                + ("; entries before each log's previous size were replayed by earlier runs "
                   "of this auditor (state resumed; the previous checkpoint is in the "
                   "evidence package and was proven consistent with the audited one)"
                   if resumed else "; this run replayed all of them")),
        },
        "rules": rules_applied(),
        "methodology": _methodology(run, report, resumed),
    }


def _log_scope(r: LogRun, log: dict[str, Any]) -> dict[str, Any]:
    note = r.checkpoint
    size = log["size"] if log["verified"] else None
    previous = log["previous_size"] or 0
    return {
        "jurisdiction": log["jurisdiction"], "origin": log["origin"],
        "location": log["location"], "verified": log["verified"],
        "checkpoint": None if note is None else {
            "sha256": hashlib.sha256(note.encode()).hexdigest(), "size": log["size"],
            "root": log["root"],
            "cosignatures": [{"witness": c["witness"], "time": c["time"], "fresh": c["fresh"]}
                             for c in (log["witnesses"].get("cosigned_by") or [])],
            "witness_status": log["witnesses"]["status"]},
        "previous_size": log["previous_size"],
        "previous_checkpoint_sha256": None if r.previous_checkpoint is None
        else hashlib.sha256(r.previous_checkpoint.encode()).hexdigest(),
        "entries_covered": [0, size] if size is not None else None,
        "entries_replayed_this_run": [previous, previous + log["new_entries"]],
        "time_range": [log["first_entry"], log["last_entry"]],
    }


def rules_applied() -> list[dict[str, str]]:
    """Each rule module of ``bordergate.audit.rules`` and the first line of its docstring."""
    out = []
    for info in sorted(pkgutil.iter_modules(rules_package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "context":
            continue
        module = importlib.import_module(f"{rules_package.__name__}.{info.name}")
        out.append({"rule": info.name,
                    "checks": (module.__doc__ or "").strip().split("\n", 1)[0]})
    return out


def _methodology(run: AuditRun, report: dict[str, Any], resumed: bool) -> list[dict[str, str]]:
    s = report["summary"]
    capped = [r.audit.jurisdiction for r in run.logs if len(r.proofs) >= MAX_PROOFS]
    return [
        {"what": "every entry replayed",
         "how": f"{s['entries']} entries inspected in index order by every rule; "
                f"{s['decisions_replayed']} decisions replayed with the policy bundle each "
                f"names (its digest recomputed), {s['replay_mismatches']} mismatches, "
                f"{s['decisions_not_replayed']} not replayable (findings say why)."
                + (" Resumed from saved state: this run replayed the new entries; the "
                   "earlier ones were replayed by earlier runs (see period)." if resumed
                   else "")},
        {"what": "log integrity",
         "how": "each checkpoint verified with the log key; every tile rebuilt from the "
                "entries; consistency with the previous audited checkpoint proven (when "
                "resuming); the witness quorum and freshness judged with the auditor's own "
                "witness keys."},
        {"what": "sampled",
         "how": "nothing: no entry, decision or proof was sampled."},
        {"what": "inclusion proofs",
         "how": f"one per finding's entry, against the audited checkpoint (at most "
                f"{MAX_PROOFS} per log" + (f"; reached for {', '.join(capped)}: the rest "
                                           "with `bordergate log prove`" if capped else "")
                + "), verified before the report was written and again by "
                  "`bordergate audit verify-report`."},
        {"what": "taken on trust: the auditor's keys",
         "how": "the log, witness, reviewer, approver and roster authority keys of the "
                "auditor's configuration are its roots of trust; they are stated in "
                "report.json so a reader can compare them with their own."},
        {"what": "taken on trust: what the gateway saw",
         "how": "a decision's input (principal, purpose, fields asked) is the gateway's "
                "statement; it is replayed and checked against the entry, the roster "
                "version and approvers' signatures where the entry carries them, but "
                "whether the request happened as recorded rests on the gateway (and on "
                "receipts where a client kept them)."},
        {"what": "taken on trust: entry times",
         "how": f"entry times are the gateway's clock, checked only for order within "
                f"{run.config.time_tolerance} s; the witnesses' cosignature times bound "
                "when a checkpoint existed."},
        {"what": "not covered",
         "how": "data stores and deployments are not inspected: only what the logs, "
                "bundles and rosters show (the control table says what the organisation "
                "must show instead)."},
    ]

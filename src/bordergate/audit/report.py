"""The audit report: one JSON document built from a run, and where it is written.

:func:`build_report` turns an :class:`~bordergate.audit.run.AuditRun` into the
``report.json`` document (``bordergate/audit-report/v1``): a summary; per log
the checkpoint audited (with its signed note, so every proof can be checked
against it by anyone); flows by source and destination jurisdiction (the
data's home, where a flow starts, and the principal's location, where it
ends), class and purpose; decisions over
time; denials by reason; approvals (who asked, who granted, how long, how
often used); releases and review latency; entries by format version and the
checks older entries could not get, with counts; the findings, each with its
inclusion proof, its entry decoded and who, for what purpose and which fields
(:mod:`bordergate.audit.finding_context`); the control table
(:mod:`bordergate.audit.controls`); and the scope, period and methodology
(:mod:`bordergate.audit.scope`).  :func:`write_report` writes ``report.json``,
the self-contained ``report.html`` (:mod:`bordergate.audit.report_html`), the
evidence package (:mod:`bordergate.audit.evidence_package`) and, given the
auditor's key, the signature ``report.sig`` (:mod:`bordergate.audit.signed_report`),
each file atomically.

Building is pure; only :func:`write_report` touches files.  This module must
never copy an entry's string values into the report beyond the entries
themselves as the log holds them (which carry no field value or raw id,
promise 7; an entry suspected of holding one is withheld, only its leaf hash
kept), and the HTML renderer escapes everything.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bordergate.audit.controls import control_table
from bordergate.audit.evidence_package import EVIDENCE_DIR, EvidencePackage
from bordergate.audit.finding_context import attach_bulk_counters, finding_context
from bordergate.audit.findings import CATEGORIES, SEVERITIES
from bordergate.audit.rules.versions import check_table, version_limitations
from bordergate.audit.run import AuditRun, LogRun
from bordergate.audit.scope import audit_scope
from bordergate.audit.separation import separation_section
from bordergate.durable import replace_file
from bordergate.entries import format_time
from bordergate.releases.deployment_slice import COUNTRIES_OF_CONCERN, DeploymentSlice
from bordergate.releases.ledger import APPROVED, REJECTED
from bordergate.tlog.note import NoteSigner

__all__ = ["REPORT_FORMAT", "build_report", "write_report"]

REPORT_FORMAT = "bordergate/audit-report/v1"
_MAX_BUCKETS = 120


_FIRST_RFC3339, _LAST_RFC3339 = -62_135_596_800, 253_402_300_799  # years 1 to 9999


def _iso(t: float | None) -> str | None:
    """RFC 3339 of ``t``; the number itself (as text) where no RFC 3339 time names it
    (outside the years 1 to 9999: a time an entry states is untrusted, and one
    time must never keep the report from being built)."""
    if t is None:
        return None
    if _FIRST_RFC3339 <= t <= _LAST_RFC3339:
        try:
            return format_time(t)
        except (OverflowError, OSError, ValueError):
            pass
    return str(t)


def build_report(run: AuditRun) -> dict[str, Any]:
    """The report document of ``run`` (see the module docstring)."""
    logs = [_log(r) for r in run.logs]
    tallies = [r.inspector.tally for r in run.logs if r.inspector is not None]
    findings = _findings(run.logs)
    replay: Counter[str] = Counter()
    for t in tallies:
        replay.update(t.replay)
    denials: Counter[str] = Counter()
    for t in tallies:
        denials.update(t.denials)
    flows = _flow_rows(run.logs, "flows")
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "title": run.config.title,
        "auditor": run.config.name,
        "generated": format_time(run.time),
        "summary": _summary(run, logs, findings, replay, sum(denials.values())),
        "logs": logs,
        "flows": flows,
        "withheld": _flow_rows(run.logs, "withheld"),
        "timeline": _timeline(tallies),
        "denials": [{"reason": k, "count": v} for k, v in denials.most_common()],
        "principals": _merged(r.inspector.tally.principals for r in run.logs
                              if r.inspector is not None),
        "key_events": _merged(r.inspector.tally.key_events for r in run.logs
                              if r.inspector is not None),
        "exports": {"allowed": sum(t.exports["allowed"] for t in tallies),
                    "denied": sum(t.exports["denied"] for t in tallies),
                    "min_k_released": min((t.min_export_k for t in tallies
                                           if t.min_export_k is not None), default=None)},
        "approvals": _approvals(run.logs),
        "approval_refusals": [{"attempt": k, "count": v} for k, v in _merged(
            r.inspector.tally.refused for r in run.logs if r.inspector is not None).items()],
        "releases": _releases(run.logs),
        "review_throughput": {r.audit.jurisdiction: r.ledger.throughput(run.time).to_json()
                              for r in run.logs if r.ledger is not None},
        "gateway_starts": _starts(run.logs),
        "entry_versions": _versions(tallies),
        "findings": findings,
        "separation": separation_section(run),
    }
    report["controls"] = control_table(report)
    report["scope"] = audit_scope(run, report)
    attach_bulk_counters(report)  # the hook the bulk counting fills (finding_context)
    return report


def write_report(report: dict[str, Any], out_dir: Path, *,
                 evidence: EvidencePackage | None = None,
                 signer: NoteSigner | None = None) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (each atomically),
    with the evidence package's files (replacing any earlier package) and, given the
    auditor's key, ``report.sig`` (:mod:`bordergate.audit.signed_report`).

    Returns:
        The two paths.

    Raises:
        OSError: the directory cannot be written.
    """
    from bordergate.audit.report_html import render_report_html
    from bordergate.audit.signed_report import SIGNATURE_FILE, sign_report

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_evidence(out_dir, evidence.files if evidence is not None else {})
    paths = (out_dir / "report.json", out_dir / "report.html")
    document = json.dumps(report, indent=1, sort_keys=True) + "\n"
    # the page is a function of report.json alone, so that a reader can render it
    # again and compare (audit verify-report: report_html_mismatch)
    texts = (document, render_report_html(json.loads(document)))
    data = {path.name: text.encode("utf-8") for path, text in zip(paths, texts, strict=True)}
    for path in paths:
        replace_file(path, data[path.name])
    if signer is not None:
        replace_file(out_dir / SIGNATURE_FILE, sign_report(data, signer))
    else:
        (out_dir / SIGNATURE_FILE).unlink(missing_ok=True)  # never a stale signature
    return paths


def _write_evidence(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write the package under ``evidence/``; files of an earlier package there go."""
    root = out_dir / EVIDENCE_DIR
    if root.is_dir():
        for old in sorted(root.rglob("*"), reverse=True):
            rel = old.relative_to(out_dir).as_posix()
            if old.is_file() and rel not in files:
                old.unlink()
            elif old.is_dir() and not any(old.iterdir()):
                old.rmdir()
    for rel, content in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, content)


def _summary(run: AuditRun, logs: list[dict[str, Any]], findings: list[dict[str, Any]],
             replay: Counter[str], denied: int) -> dict[str, Any]:
    by_sev = Counter(f["severity"] for f in findings)
    by_cat = Counter(f["category"] for f in findings)
    failed = [log["jurisdiction"] for log in logs if not log["verified"]]
    unwitnessed = [log["jurisdiction"] for log in logs
                   if log["verified"] and log["witnesses"]["status"] != "witnessed"]
    verdict = ("log verification failed" if failed else
               "violations found" if by_cat["violation"] else
               "current state not established: checkpoint without a fresh witness quorum"
               if unwitnessed else
               "findings to review" if findings else "clean: no findings")
    return {
        "verdict": verdict,
        "logs": len(logs), "logs_verified": len(logs) - len(failed), "logs_failed": failed,
        "logs_unwitnessed": unwitnessed,
        "entries": sum(log["entries_inspected"] for log in logs),
        "new_entries": sum(log["new_entries"] for log in logs),
        "decisions_replayed": replay["decisions"], "replay_mismatches": replay["mismatches"],
        "decisions_not_replayed": replay["unreplayed"],
        "denied_field_decisions": denied,
        "findings": len(findings),
        "by_severity": {s: by_sev[s] for s in SEVERITIES},
        "by_category": {c: by_cat[c] for c in CATEGORIES},
        "by_kind": dict(sorted(Counter(f["kind"] for f in findings).items())),
    }


def _log(r: LogRun) -> dict[str, Any]:
    check = r.check
    verified = r.error is None and check is not None and check.ok
    tally = r.inspector.tally if r.inspector is not None else None
    return {
        "jurisdiction": r.audit.jurisdiction,
        "origin": check.origin if check is not None else None,
        "location": r.audit.location,
        "vkey": r.audit.vkey,
        "witness_keys": list(r.audit.witnesses),
        "verified": verified,
        "inspected_unverified": r.unverified,
        "error": r.error,
        "code": check.code if check is not None else None,
        "reason": check.reason if check is not None else None,
        "failed_index": check.index if check is not None else None,
        "previous_size": check.old_size if check is not None else None,
        "size": check.size if check is not None else None,
        "root": check.root.hex() if check is not None and check.root is not None else None,
        "checkpoint": r.checkpoint,
        "cosignatures": list(check.cosignatures) if check is not None else [],
        "quorum": r.audit.quorum,
        "witnesses": r.witnesses.to_json() if r.witnesses is not None else _not_judged(r),
        "warnings": list(check.warnings) if check is not None else [],
        "new_entries": r.new_entries,
        "entries_inspected": r.inspector.state.size if r.inspector is not None else 0,
        "entry_types": dict(tally.entries) if tally is not None else {},
        "first_entry": _iso(tally.first_time) if tally is not None else None,
        "last_entry": _iso(tally.last_time) if tally is not None else None,
        "pii_scan_hits": tally.pii_hits if tally is not None else 0,
    }


def _not_judged(r: LogRun) -> dict[str, Any]:
    """The witness section of a log whose checkpoint was never judged (it did not verify)."""
    return {"status": "not checked", "required": r.audit.quorum, "trusted": [],
            "cosigned_by": [], "explanation": "the log did not verify; its witnesses were "
            "not checked"}


def _findings(logs: list[LogRun]) -> list[dict[str, Any]]:
    out = []
    for r in logs:
        repeats = r.inspector.state.flagged if r.inspector is not None else {}
        for f in r.findings:
            doc = f.to_json()
            key = doc["detail"].pop("repeat_key", None)
            if key is not None:
                doc["repeats"] = repeats.get(key, 0)
            doc["time"] = _iso(f.time)
            doc["proof"] = r.proofs.get(f.index) if f.index is not None else None
            doc.update(finding_context(doc["proof"]))
            out.append(doc)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda d: (order.get(d["severity"], 9), d["jurisdiction"],
                            d["index"] if d["index"] is not None else -1))
    return out


def _flow_rows(logs: list[LogRun], which: str) -> list[dict[str, Any]]:
    merged: Counter[str] = Counter()
    for r in logs:
        if r.inspector is not None:
            merged.update(getattr(r.inspector.tally, which))
    rows = []
    for key, count in merged.most_common():
        parts = key.split(">")  # the tally's order: principal location > data home > ...
        if len(parts) == 4:  # data flows from its home (source) to the principal
            rows.append({"source": parts[1], "destination": parts[0], "class": parts[2],
                         "purpose": parts[3], "count": count})
    return rows


def _merged(counters: Iterable[Counter[str]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(total.most_common())


def _timeline(tallies: list[Any]) -> dict[str, Any]:
    minutes: dict[int, list[int]] = {}
    for t in tallies:
        for key, row in t.minutes.items():
            cell = minutes.setdefault(int(key), [0, 0, 0])
            for i in range(3):
                cell[i] += row[i]
    if not minutes:
        return {"bucket_seconds": 60, "series": []}
    first, last = min(minutes), max(minutes)
    width = max(1, math.ceil((last - first + 1) / _MAX_BUCKETS))
    buckets: dict[int, list[int]] = {}
    for minute, row in minutes.items():
        b = first + (minute - first) // width * width
        cell = buckets.setdefault(b, [0, 0, 0])
        for i in range(3):
            cell[i] += row[i]
    series = [{"start": format_time(b * 60), "allowed": buckets.get(b, [0, 0, 0])[0],
               "partial": buckets.get(b, [0, 0, 0])[1], "denied": buckets.get(b, [0, 0, 0])[2]}
              for b in range(first, last + 1, width)]
    return {"bucket_seconds": width * 60, "series": series}


def _approvals(logs: list[LogRun]) -> list[dict[str, Any]]:
    out = []
    for r in logs:
        if r.inspector is None:
            continue
        for a in r.inspector.state.approvals.values():
            granted_time = a.granted[1] if a.granted else None
            out.append({
                "jurisdiction": r.audit.jurisdiction, "id": a.id, "index": a.index,
                "requester": {k: a.requester.get(k) for k in ("id", "org", "org_kind",
                                                               "location")},
                "purpose": a.purpose, "reason": a.reason,
                "scope": {"collections": a.collections, "classes": a.classes,
                          "subjects": len(a.subjects), "records": len(a.records),
                          "ticket": a.ticket},
                "max_subjects": a.max_subjects, "subjects_read": len(a.read_subjects),
                "refused": a.refused,
                "requested_at": _iso(a.requested_at), "expires": _iso(a.expires),
                "duration_s": a.expires - a.requested_at,
                "state": a.state,
                "approvers": sorted(a.valid_approvers()),
                "grants": [{"approver": g[0], "index": g[1], "time": _iso(g[2]),
                            "counted": g[3]} for g in a.grants],
                "granted_at": _iso(granted_time),
                "time_to_grant_s": None if granted_time is None
                else round(granted_time - a.requested_at),
                "closed": None if a.closed is None else {"index": a.closed[0],
                                                          "time": _iso(a.closed[1]),
                                                          "by": a.closed[2]},
                "uses": a.uses, "released_fields": a.released,
            })
    out.sort(key=lambda d: (d["jurisdiction"], d["index"]))
    return out


def _releases(logs: list[LogRun]) -> list[dict[str, Any]]:
    out = []
    for r in logs:
        if r.ledger is None:
            continue
        for rec in r.ledger.releases.values():
            decided = rec.decided
            out.append({
                "jurisdiction": r.audit.jurisdiction, "id": rec.id, "index": rec.index,
                "proposed": _iso(rec.time), "state": rec.state,
                "version": rec.manifest.version, "revision": rec.manifest.revision,
                "package_digest": rec.manifest.package_digest,
                "policy_digest": rec.manifest.policy_digest,
                "approvals": sorted(rec.approvals), "rejections": sorted(rec.rejections),
                "required": rec.required,
                "decided": _iso(decided[1]) if decided else None,
                "decided_index": decided[0] if decided else None,
                "review_latency_s": round(decided[1] - rec.time) if decided else None,
                "approved": rec.state == APPROVED, "rejected": rec.state == REJECTED,
                "countries_of_concern": _countries(rec.manifest.deployment),
            })
    out.sort(key=lambda d: (d["jurisdiction"], d["index"]))
    return out


def _countries(deployment: DeploymentSlice | None) -> list[str] | None:
    """The reviewed countries of concern a release's deployment slice names, if any."""
    if deployment is None:
        return None
    found = deployment.settings.get(COUNTRIES_OF_CONCERN)
    return [str(c) for c in found] if isinstance(found, list) else None


def _starts(logs: list[LogRun]) -> list[dict[str, Any]]:
    out = []
    for r in logs:
        if r.ledger is None:
            continue
        for s in r.ledger.starts:
            out.append({"jurisdiction": r.audit.jurisdiction, "index": s.index,
                        "time": _iso(s.time), "gateway": s.gateway, "release": s.release,
                        "reviewed": s.reviewed})
    return out


def _versions(tallies: list[Any]) -> dict[str, Any]:
    """Entries by format version, and per older version the checks its entries could not
    get (:mod:`bordergate.audit.rules.versions`), as rows and one sentence each."""
    by_version: Counter[str] = Counter()
    unchecked: Counter[str] = Counter()
    for t in tallies:
        by_version.update(t.versions)
        unchecked.update(t.unchecked)
    rows = version_limitations(dict(unchecked))
    statements = []
    for version in sorted({int(r["version"]) for r in rows}):  # type: ignore[call-overload]
        missing = [str(r["missing"]).split(" (")[0] for r in rows if r["version"] == version]
        statements.append(f"{by_version[str(version)]} v{version} entries: "
                          f"{', '.join(missing)}")
    table = check_table()
    idle = [str(c["check"]) for c in table if not c["in_force"]]
    if idle:
        statements.append(f"not run by this auditor on any entry (no rule plugged in): "
                          f"{', '.join(idle)}")
    return {"entries": dict(sorted(by_version.items())), "not_checked": rows,
            "checks": table, "statements": statements}

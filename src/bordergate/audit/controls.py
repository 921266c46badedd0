"""The control table: regulatory requirements mapped to the evidence in the log.

Each row names a requirement area of the US DOJ Data Security Program
(28 CFR part 202) and of CISA's security requirements for restricted
transactions, says which evidence in the audited logs supports it (with the
numbers of this audit), which finding kinds would show it failing, and states
the gaps plainly: what a log of gateway decisions cannot show.  The mapping
is bordergate's reading of those texts; the references point to where to
read them, and a compliance officer should check them against the current
versions.

Status of a row: ``failing`` (findings of a violating kind), ``attention``
(findings to review, no violation), ``evidenced`` (evidence present, no
findings), ``partial`` (some evidence, material parts not provable from the
log), ``no evidence``.

Pure: a report document in, rows out.  This module must never do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bordergate.audit.witness_check import witness_summary

__all__ = ["CONTROLS", "Control", "control_table"]


@dataclass(frozen=True)
class Control:
    """A requirement area: references, the finding kinds that break it, its gaps."""

    id: str
    name: str
    references: tuple[str, ...]
    kinds: tuple[str, ...]
    gaps: tuple[str, ...]
    always_partial: bool = False


CONTROLS: tuple[Control, ...] = (
    Control(
        "covered-persons", "Denial of access to covered persons",
        ("28 CFR 202.401 (restricted transactions must meet the CISA security requirements)",
         "CISA restricted-transaction security requirements, data level: identity and access "
         "management configured to deny covered persons access to covered data"),
        ("restricted_released_abroad", "restricted_released_to_parent",
         "protected_released_abroad_without_approval", "covered_person_denied"),
        ("Only access through the gateways is in the logs; database consoles, backups, "
         "support tools or copies made outside bordergate are not visible to this audit.",
         "Whether a principal really belongs to the organisation and works in the location "
         "its token claims rests on the custodian's token issuer, which the log does not "
         "record.")),
    Control(
        "minimization", "Data minimization and masking",
        ("CISA restricted-transaction security requirements, data level: data minimization "
         "and data masking",
         "28 CFR 202.401"),
        ("export_below_k", "restricted_exported", "released_without_permit",
         "personal_data_in_entry", "export_not_private", "privacy_budget_overspent"),
        ("Which data the operator collects in the first place is outside the log.",
         "Masking inside a released value (e.g. partial numbers) is not recorded; the log "
         "shows which fields were released, not their content.")),
    Control(
        "encryption", "Encryption and key management",
        ("CISA restricted-transaction security requirements, data level: encryption and "
         "key management",),
        (),
        ("The log records the key events the gateways report (data keys created, rotated, "
         "destroyed at erasure); that stored values are encrypted under those keys, and that "
         "hardware keys cannot be exported, is not provable from the log (it needs the "
         "residency tests and key-backend attestations).",
         "Encryption in transit (TLS between principals and gateways) is not logged."),
        always_partial=True),
    Control(
        "logging", "Logging",
        ("CISA restricted-transaction security requirements, system level: collect and "
         "retain logs of access to covered data",
         "28 CFR 202.1101 (records of restricted transactions)"),
        ("log_verification_failed", "entry_malformed", "entry_time_regression",
         "decision_mismatch", "decision_unreplayable", "decision_input_inconsistent",
         "bundle_unavailable", "bundle_digest_mismatch"),
        ("The log proves what was logged and that it was not changed; that every access was "
         "logged rests on the gateways being the only path to the stores (promise 2), which "
         "the log cannot show.",
         "Retention for the required period is the custodian's storage policy; this audit "
         "only shows the entries still published.")),
    Control(
        "iam", "Identity and access management",
        ("CISA restricted-transaction security requirements, system level: logical access "
         "controls, least privilege, prompt revocation",
         "CISA data level: deny covered persons access (via IAM)"),
        ("approval_unknown", "approval_single_approver", "approval_not_granted",
         "approval_self_granted", "approval_by_non_approver", "approval_expired",
         "approval_revoked", "approval_scope_exceeded", "approval_invalid_transition",
         "approval_state_stale", "approval_beyond_limits",
         "approval_subject_cap_exceeded", "approval_unsigned", "approval_signature_invalid"),
        ("Multi-factor authentication and the revocation of credentials happen at the token "
         "issuer and are not in the log.",
         "Tokens and their issuance are not logged; the log records the principal each "
         "gateway accepted.")),
    Control(
        "audit", "Audit (independent, of code, policy and decisions)",
        ("28 CFR 202.1002 (audits of restricted transactions)",
         "bordergate promise 6: reviewed code and policy only"),
        ("unreviewed_start", "start_unapproved_release", "start_digest_mismatch",
         "decision_release_mismatch", "decision_without_start", "release_malformed",
         "release_id_mismatch",
         "release_duplicate", "review_unknown_release", "review_duplicate", "review_invalid"),
        ("The audit covers what the logs hold; vendor agreements, asset inventories, "
         "vulnerability remediation and risk assessments are outside them.",
         "A release review proves that named reviewers signed a digest, not how carefully "
         "they read it.")),
)

_VIOLATING = ("critical", "high")


def control_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The control rows of a report document (see the module docstring)."""
    findings = report.get("findings", [])
    rows = []
    for control in CONTROLS:
        hits = [f for f in findings if f["kind"] in control.kinds]
        evidence = _EVIDENCE[control.id](report)
        if any(f["severity"] in _VIOLATING for f in hits):
            status = "failing"
        elif hits:
            status = "attention"
        elif not evidence:
            status = "no evidence"
        elif control.always_partial:
            status = "partial"
        else:
            status = "evidenced"
        rows.append({
            "id": control.id, "control": control.name, "references": list(control.references),
            "status": status, "evidence": evidence, "gaps": list(control.gaps),
            "findings": len(hits),
            "finding_kinds": sorted({f["kind"] for f in hits}),
            "checked_by": list(control.kinds),
        })
    return rows


def _abroad(rows: list[Mapping[str, Any]], cls: str | None = None) -> int:
    return sum(r["count"] for r in rows if r["source"] != r["destination"]
               and (cls is None or r["class"] == cls))


def _covered(report: Mapping[str, Any]) -> list[str]:
    flows, withheld = report.get("flows", []), report.get("withheld", [])
    if not flows and not withheld:
        return []
    kinds = report["summary"]["by_kind"]
    return [
        f"{_abroad(withheld)} field decision(s) for principals outside the data's home were "
        "denied; every one of them replayed to the same decision.",
        f"{_abroad(flows, 'restricted')} restricted field(s) released across a border; "
        f"{_abroad(flows, 'protected')} protected field(s) released abroad "
        f"({kinds.get('protected_released_abroad_without_approval', 0)} without a valid "
        "approval).",
        f"{kinds.get('covered_person_denied', 0)} request(s) by the parent organisation from "
        "abroad for protected or restricted data, all denied.",
    ]


def _minimization(report: Mapping[str, Any]) -> list[str]:
    s = report["summary"]
    if not s["entries"]:
        return []
    ex = report["exports"]
    return [
        f"{s['decisions_replayed']} per-field decisions: each request got only the fields "
        f"policy allowed ({s['denied_field_decisions']} field decisions withheld).",
        f"{ex['allowed']} aggregate export(s) released, smallest k "
        f"{ex['min_k_released'] if ex['min_k_released'] is not None else '-'}; "
        f"{ex['denied']} denied.",
        f"No field values or raw ids in {s['entries']} entries scanned: "
        f"{sum(log['pii_scan_hits'] for log in report['logs'])} suspicious entries.",
    ]


def _encryption(report: Mapping[str, Any]) -> list[str]:
    events = report.get("key_events", {})
    if not events:
        return []
    parts = ", ".join(f"{n} {k}" for k, n in sorted(events.items()))
    return [f"Key events in the logs: {parts}."]


def _logging(report: Mapping[str, Any]) -> list[str]:
    out = []
    for log in report["logs"]:
        if log["verified"]:
            out.append(
                f"{log['jurisdiction']}: log verified at size {log['size']} (root "
                f"{str(log['root'])[:16]}...); witnesses: {witness_summary(log)}.")
        else:
            out.append(f"{log['jurisdiction']}: the log did NOT verify.")
    s = report["summary"]
    out.append(f"{s['decisions_replayed']} recorded decisions replayed with their policy "
               f"bundles: {s['replay_mismatches']} mismatch(es), "
               f"{s['decisions_not_replayed']} not replayable.")
    return out


def _iam(report: Mapping[str, Any]) -> list[str]:
    approvals = report.get("approvals", [])
    principals = report.get("principals", {})
    if not approvals and not principals:
        return []
    two = sum(1 for a in approvals if len(a["approvers"]) >= 2)
    kinds = ", ".join(f"{n} by {k}" for k, n in list(principals.items())[:8])
    return [f"Decision entries by principal kind/location: {kinds or 'none'}.",
            f"{len(approvals)} approval(s) requested; {two} granted by two distinct "
            "custodian approvers (never the requester)."]


def _audit(report: Mapping[str, Any]) -> list[str]:
    releases = report.get("releases", [])
    starts = report.get("gateway_starts", [])
    if not releases and not starts:
        return []
    approved = sum(1 for r in releases if r["approved"])
    unreviewed = sum(1 for s in starts if not s["reviewed"])
    return [f"{len(releases)} release(s) proposed, {approved} approved by the configured "
            f"reviewers; {len(starts)} gateway start(s), {unreviewed} unreviewed.",
            f"This audit re-verified {report['summary']['entries']} entries from the logs "
            "alone."]


_EVIDENCE = {"covered-persons": _covered, "minimization": _minimization,
             "encryption": _encryption, "logging": _logging, "iam": _iam, "audit": _audit}

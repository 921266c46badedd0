"""The control table: each regulatory requirement, the evidence for it, and who attests it.

One row per requirement of 28 CFR part 202 subparts J (due diligence and
audits), K (records and reports) and the definitions they rest on that
bordergate can speak to, and per requirement of CISA's "Security Requirements
for Restricted Transactions" (January 2025) at the organizational, system and
data level.  Each row has:

* ``citation``: the exact section and paragraph, and ``quote``: the verbatim
  phrase of the committed excerpt (tests/data/regulations/) the row relies on.
  A CISA requirement whose full text is not committed yet has ``quote`` set to
  the document's level statement and ``text_committed`` false: its wording in
  ``requirement`` is ours (docs/compliance.md).
* ``evidence``: what in the audited logs or the deployment shows it, each item
  with ``attested_by``: the parties whose signatures stand behind it
  (:data:`ATTESTERS`).
* ``status``: one of :data:`STATUSES`:

  - ``outside the product``: nothing bordergate records can show it;
    ``organisation_must_show`` says what the organisation must show instead;
  - ``not evidenced``: no evidence in this audit, or findings that contradict it;
  - ``partially evidenced``: evidence present but either material parts are
    not provable from the logs (``gaps``) or every item rests on the gateway's
    own entries alone;
  - ``evidenced``: evidence present, no contradicting finding, and at least one
    item attested by a party other than the gateway.

  Nothing is ``evidenced`` by a gateway self-report alone: the gateway is the
  party being audited (promise 4; docs/compliance.md).

Pure: a report document in, rows out.  This module must never do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bordergate.audit.witness_check import witness_summary

__all__ = ["ATTESTERS", "CONTROLS", "STATUSES", "Control", "Evidence", "control_table",
           "row_status"]

#: who can stand behind a piece of evidence (docs/compliance.md, "Who attests")
ATTESTERS = ("gateway", "roster authority", "approver", "reviewer", "witness", "log operator",
             "key service", "auditor")
#: the statuses of a row, from best to worst, then the one the product cannot judge
STATUSES = ("evidenced", "partially evidenced", "not evidenced", "outside the product")

_VIOLATING = ("critical", "high")
CISA = "CISA Security Requirements for Restricted Transactions (Jan. 2025)"
_CISA_LEVELS = "comply with organizational-, system-, and data-level requirements"


@dataclass(frozen=True)
class Evidence:
    """One statement of evidence and the parties whose signatures stand behind it."""

    text: str
    attested_by: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "attested_by": list(self.attested_by)}


Report = Mapping[str, Any]


@dataclass(frozen=True)
class Control:
    """A requirement row (module docstring).  ``evidence`` is None when the product
    cannot speak to it at all (status ``outside the product``)."""

    id: str
    citation: str
    requirement: str
    quote: str
    evidence: Callable[[Report], list[Evidence]] | None
    organisation_must_show: str
    kinds: tuple[str, ...] = ()
    gaps: tuple[str, ...] = ()
    text_committed: bool = True
    level: str = field(default="")

    @property
    def source(self) -> str:
        """The excerpt file under tests/data/regulations/ the quote is checked against."""
        if self.citation.startswith("CISA"):
            return "cisa-security-requirements.txt"
        section = self.citation.split()[2].split("(")[0]
        return f"28cfr{section}.txt"


def row_status(control: Control, evidence: list[Evidence], violating: bool) -> str:
    """The status of one row (module docstring)."""
    if control.evidence is None:
        return "outside the product"
    if violating or not evidence:
        return "not evidenced"
    independent = any(set(e.attested_by) - {"gateway"} for e in evidence)
    if control.gaps or not independent:
        return "partially evidenced"
    return "evidenced"


def control_table(report: Report) -> list[dict[str, Any]]:
    """The control rows of a report document (see the module docstring)."""
    findings = report.get("findings", [])
    rows = []
    for control in CONTROLS:
        hits = [f for f in findings if f["kind"] in control.kinds]
        evidence = control.evidence(report) if control.evidence is not None else []
        violating = any(f["severity"] in _VIOLATING for f in hits)
        rows.append({
            "id": control.id, "citation": control.citation, "level": control.level,
            "requirement": control.requirement, "quote": control.quote,
            "text_committed": control.text_committed,
            "status": row_status(control, evidence, violating),
            "evidence": [e.to_json() for e in evidence],
            "attested_by": sorted({a for e in evidence for a in e.attested_by}),
            "gaps": list(control.gaps),
            "organisation_must_show": control.organisation_must_show,
            "findings": len(hits), "finding_kinds": sorted({f["kind"] for f in hits}),
            "checked_by": list(control.kinds),
        })
    return rows


# ---- evidence drawn from the report --------------------------------------------------

def _entry_count(report: Report, kind: str) -> int:
    return sum(int(n) for log in report.get("logs", [])
               for name, n in (log.get("entry_types") or {}).items() if kind in name)


def _log_integrity(report: Report) -> list[Evidence]:
    out = []
    for log in report.get("logs", []):
        if not log.get("verified"):
            out.append(Evidence(f"{log['jurisdiction']}: the log did NOT verify.", ()))
            continue
        cosigned = bool((log.get("witnesses") or {}).get("cosigned_by"))
        out.append(Evidence(
            f"{log['jurisdiction']}: log verified at size {log['size']} (root "
            f"{str(log['root'])[:16]}...); witnesses: {witness_summary(log)}.",
            ("log operator", "witness") if cosigned else ("log operator",)))
    return [e for e in out if e.attested_by]


def _replay(report: Report) -> list[Evidence]:
    s = report.get("summary", {})
    if not s.get("decisions_replayed"):
        return []
    return [Evidence(
        f"{s['decisions_replayed']} recorded decisions replayed by the auditor with their "
        f"policy bundles: {s.get('replay_mismatches', 0)} mismatch(es), "
        f"{s.get('decisions_not_replayed', 0)} not replayable (the inputs replayed are the "
        "gateway's own record of the request).", ("gateway",))]


def _abroad(rows: list[Mapping[str, Any]], cls: str | None = None) -> int:
    return sum(r["count"] for r in rows if r["source"] != r["destination"]
               and (cls is None or r["class"] == cls))


def _flows(report: Report) -> list[Evidence]:
    flows, withheld = report.get("flows", []), report.get("withheld", [])
    if not flows and not withheld:
        return []
    return [Evidence(
        f"{sum(r['count'] for r in flows)} field release(s) by class, source and destination "
        f"({_abroad(flows, 'restricted')} restricted and {_abroad(flows, 'protected')} "
        f"protected released abroad); {sum(r['count'] for r in withheld)} withheld.",
        ("gateway",))]


def _parties(report: Report) -> list[Evidence]:
    out = []
    principals = report.get("principals", {})
    if principals:
        kinds = ", ".join(f"{n} by {k}" for k, n in list(principals.items())[:8])
        out.append(Evidence(f"Decision entries by principal kind/location: {kinds}.",
                            ("gateway",)))
    rosters = _entry_count(report, "roster")
    if rosters:
        out.append(Evidence(
            f"{rosters} signed roster version entr(y/ies): each principal's organisation, "
            "location and covered-person status with its basis (28 CFR 202.211), signed by "
            "the identity authority; decisions name the roster they used.",
            ("roster authority",)))
    return out


def _countries(report: Report) -> list[Evidence]:
    named = {tuple(r["countries_of_concern"]) for r in report.get("releases", [])
             if r.get("approved") and r.get("countries_of_concern") is not None}
    if not named:
        return []
    lists = "; ".join(", ".join(c) for c in sorted(named))
    return [Evidence(f"Countries of concern in the approved releases' deployment slices: "
                     f"{lists} (a reviewed setting, 28 CFR 202.601).", ("reviewer",))]


def _covered_denied(report: Report) -> list[Evidence]:
    withheld = report.get("withheld", [])
    kinds = report.get("summary", {}).get("by_kind", {})
    out = []
    if withheld or report.get("flows"):
        out.append(Evidence(
            f"{_abroad(withheld)} field decision(s) for principals outside the data's home "
            f"denied; {kinds.get('covered_person_denied', 0)} request(s) by the parent "
            "organisation from abroad denied.", ("gateway",)))
    return out + [e for e in _parties(report) if "roster authority" in e.attested_by]


def _minimisation(report: Report) -> list[Evidence]:
    s = report.get("summary", {})
    if not s.get("entries"):
        return []
    ex = report.get("exports", {})
    k = ex.get("min_k_released")
    return [
        Evidence(f"{s.get('decisions_replayed', 0)} per-field decisions: each request got only "
                 f"the fields policy allowed ({s.get('denied_field_decisions', 0)} withheld).",
                 ("gateway",)),
        Evidence(f"{ex.get('allowed', 0)} aggregate export(s) released, smallest k "
                 f"{k if k is not None else '-'}; {ex.get('denied', 0)} denied.", ("gateway",)),
        Evidence(f"No field values or raw ids found by the auditor in {s['entries']} entries "
                 f"({sum(log.get('pii_scan_hits', 0) for log in report.get('logs', []))} "
                 "suspicious).", ("auditor",)),
    ]


def _keys(report: Report) -> list[Evidence]:
    events = report.get("key_events", {})
    if not events:
        return []
    parts = ", ".join(f"{n} {k}" for k, n in sorted(events.items()))
    return [Evidence(f"Key events the gateways logged: {parts}.", ("gateway",))]


def _approvals(report: Report) -> list[Evidence]:
    approvals = report.get("approvals", [])
    if not approvals:
        return []
    two = sum(1 for a in approvals if len(a["approvers"]) >= 2)
    return [Evidence(f"{len(approvals)} approval(s) requested; {two} granted by two distinct "
                     "custodian approvers' signatures (never the requester).", ("approver",))]


def _releases(report: Report) -> list[Evidence]:
    releases, starts = report.get("releases", []), report.get("gateway_starts", [])
    if not releases and not starts:
        return []
    approved = sum(1 for r in releases if r["approved"])
    unreviewed = sum(1 for s in starts if not s["reviewed"])
    out = [Evidence(f"{len(releases)} release(s) proposed (code, policy bundle and deployment "
                    f"slice, with the schema and countries of concern), {approved} approved "
                    "by the configured reviewers' signatures.", ("reviewer",))]
    out.append(Evidence(f"{len(starts)} gateway start(s), {unreviewed} of an unreviewed "
                        "release.", ("gateway",)))
    return out


def _audit_method(report: Report) -> list[Evidence]:
    s = report.get("summary", {})
    return _log_integrity(report) + ([Evidence(
        f"This audit re-verified and replayed all {s['entries']} entries from the logs alone.",
        ("auditor",))] if s.get("entries") else [])


def _not_computed_yet(report: Report) -> list[Evidence]:
    return []


def _concat(*parts: Callable[[Report], list[Evidence]]) -> Callable[[Report], list[Evidence]]:
    return lambda report: [e for part in parts for e in part(report)]


_REPLAY_KINDS = ("log_verification_failed", "entry_malformed", "entry_time_regression",
                 "decision_mismatch", "decision_unreplayable", "decision_input_inconsistent",
                 "bundle_unavailable", "bundle_digest_mismatch", "checkpoint_unwitnessed",
                 "checkpoint_stale", "entry_version_downgrade", "appender_missing",
                 "appender_unknown", "appender_not_allowed", "receipt_key_missing",
                 "migration_inconsistent", "legacy_deletion_unmatched")
_COVERED_KINDS = ("restricted_released_abroad", "restricted_released_to_parent",
                  "protected_released_abroad_without_approval", "covered_person_denied",
                  "roster_invalid", "roster_principal_mismatch", "roster_principal_unlisted",
                  "roster_unknown", "roster_superseded", "roster_missing", "token_revoked_use")
_APPROVAL_KINDS = ("approval_unknown", "approval_single_approver", "approval_not_granted",
                   "approval_self_granted", "approval_by_non_approver", "approval_expired",
                   "approval_revoked", "approval_scope_exceeded", "approval_invalid_transition",
                   "approval_state_stale", "approval_beyond_limits",
                   "approval_subject_cap_exceeded", "approval_unsigned",
                   "approval_signature_invalid")
_RELEASE_KINDS = ("unreviewed_start", "start_unapproved_release", "start_digest_mismatch",
                  "decision_release_mismatch", "release_malformed", "release_id_mismatch",
                  "release_duplicate", "review_unknown_release", "review_duplicate",
                  "review_invalid", "decision_without_start")
_MINIMISE_KINDS = ("export_below_k", "restricted_exported", "released_without_permit",
                   "personal_data_in_entry", "export_not_private", "privacy_budget_overspent")
_ONLY_GATEWAYS = ("Only access through the gateways is in the logs; database consoles, "
                  "backups and copies made outside bordergate are not visible to this audit "
                  "(promise 2 rests on the gateways being the only path to the stores).")


def _dsp(cid: str, citation: str, requirement: str, quote: str,  # noqa: PLR0917 (a table row)
         evidence: Callable[[Report], list[Evidence]] | None, must_show: str, *,
         kinds: tuple[str, ...] = (), gaps: tuple[str, ...] = ()) -> Control:
    return Control(cid, citation, requirement, quote, evidence, must_show, kinds, gaps,
                   level="28 CFR 202")


def _cisa(cid: str, level: str, requirement: str,
          evidence: Callable[[Report], list[Evidence]] | None, must_show: str, *,
          kinds: tuple[str, ...] = (), gaps: tuple[str, ...] = (),
          quote: str = _CISA_LEVELS, committed: bool = False) -> Control:
    return Control(cid, f"{CISA}, {level}-level requirements", requirement, quote, evidence,
                   must_show, kinds, gaps, text_committed=committed, level=f"CISA {level}")


CONTROLS: tuple[Control, ...] = (
    _dsp("dsp-categories", "28 CFR 202.249(a)",
         "Know which data is sensitive personal data, by category.",
         "The term sensitive personal data means covered personal identifiers",
         _releases,
         "That the schema's categories match what the fields really hold (a reviewed "
         "classification, docs/compliance.md).",
         gaps=("The schema's DSP categories are the custodian's classification; the review "
               "of the release that names the schema digest is the only check on them.",)),
    _dsp("dsp-covered-persons", "28 CFR 202.211(a)",
         "Know which counterparties are covered persons, and on what basis.",
         "primarily a resident in the territorial jurisdiction of a country of concern",
         _concat(_parties, _countries),
         "The facts behind each covered-person determination (ownership, employment, "
         "residence) the identity authority relied on.",
         gaps=("The roster states status and basis; the facts behind them (ownership of "
               "entities, residence, employment) are the identity authority's and are not in "
               "the log.",)),
    _dsp("dsp-bulk", "28 CFR 202.205",
         "Know, per counterparty and category, when access reaches bulk over any 12 months.",
         "at any point in the preceding 12 months",
         _not_computed_yet,
         "Volumes per counterparty and category until bordergate counts them.",
         gaps=("Bulk counters per counterparty and DSP category are not built yet (issue 14, "
               "item 3): this row stays not evidenced until they are.",)),
    _dsp("dsp-1001-types-volumes", "28 CFR 202.1001(b)(1)(i)",
         "Verify and log, auditably, the types and volumes of data in each restricted "
         "transaction.",
         "The types and volumes of government-related data or bulk U.S. sensitive personal "
         "data involved in the transaction",
         _concat(_flows, _log_integrity),
         "Volumes of data moved outside bordergate (files, backups, vendor copies).",
         kinds=_COVERED_KINDS,
         gaps=("Volumes are counted per field class and jurisdiction; per-counterparty bulk "
               "counts by DSP category (28 CFR 202.205) are not computed yet.",
               _ONLY_GATEWAYS)),
    _dsp("dsp-1001-parties", "28 CFR 202.1001(b)(1)(ii)",
         "Verify and log the identity of the transaction parties.",
         "The identity of the transaction parties, including any ownership of entities or "
         "citizenship or primary residence of individuals",
         _parties,
         "Ownership of the counterparty entities and the evidence behind the roster.",
         gaps=("Ownership of entities is not recorded; the roster records organisation, "
               "location and covered-person status.",)),
    _dsp("dsp-1001-end-use", "28 CFR 202.1001(b)(1)(iii)",
         "Verify and log the end-use of the data and the method of transfer.",
         "The end-use of the data and the method of data transfer",
         _concat(_minimisation, _approvals),
         "The end-use of data once released (what the recipient does with it).",
         gaps=("The purpose is the one the principal declared and policy accepted; what "
               "happens to released data is outside the log.",)),
    _dsp("dsp-1001-vendors", "28 CFR 202.1001(b)(2)",
         "Risk-based procedures for verifying the identity of vendors.",
         "risk-based procedures for verifying the identity of vendors", None,
         "The vendor verification procedure and its records."),
    _dsp("dsp-1001-policies", "28 CFR 202.1001(b)(3)",
         "A written, annually certified data compliance program policy (and, (b)(4), the "
         "security requirements policy).",
         "A written policy that describes the data compliance program", None,
         "The written policies and their annual certification by a responsible officer."),
    _dsp("dsp-1002-audit", "28 CFR 202.1002(e)(1)",
         "The annual audit examines the restricted transactions.",
         "Examine the U.S. person's restricted transactions",
         _audit_method,
         "The rest of the audit's scope: the compliance program, the records of 202.1101 and "
         "the security requirements (202.1002(e)(2)-(4)).",
         kinds=_REPLAY_KINDS,
         gaps=("This report is not yet signed by the auditor, and its scope and period are "
               "not yet stated in it (issue 14, item 5).",)),
    _dsp("dsp-1002-method", "28 CFR 202.1002(e)(5)",
         "The audit uses a reliable methodology.",
         "Use a reliable methodology to conduct the audit",
         _audit_method,
         "The auditor's written methodology for everything outside the logs.",
         kinds=_REPLAY_KINDS),
    _dsp("dsp-1002-independence", "28 CFR 202.1002(b)(2)",
         "The auditor is independent (and not a covered person, (b)(3)).",
         "Must be independent", None,
         "The auditor's engagement terms and independence; the auditor's key proves who "
         "signed, not independence."),
    _dsp("dsp-1101-records", "28 CFR 202.1101(a)",
         "A full and accurate record of each transaction, kept 10 years.",
         "keep a full and accurate record of each such transaction engaged in",
         _concat(_log_integrity, _replay),
         "The retention of the logs for at least 10 years and of records outside them.",
         kinds=_REPLAY_KINDS,
         gaps=("The log proves what was logged and that it was not changed; that every "
               "access was logged rests on promise 2.",
               "Retention for 10 years is the custodian's storage policy; this audit only sees "
               "the entries still published.")),
    _dsp("dsp-1101-due-diligence", "28 CFR 202.1101(b)(4)",
         "Keep documentation of the due diligence on data flows.",
         "Documentation of the due diligence conducted to verify the data flow",
         _concat(_flows, _parties),
         "The due diligence documentation itself (the log is an input to it).",
         gaps=("The log documents flows and parties; the due diligence narrative is the "
               "organisation's.",)),
    _dsp("dsp-1101-agreements", "28 CFR 202.1101(b)(7)",
         "Keep copies of the agreements associated with each transaction.",
         "Copies of any agreements associated with the transaction", None,
         "Copies of vendor, employment and investment agreements."),
    _dsp("dsp-1103-annual", "28 CFR 202.1103(a)",
         "Annual report for cloud-computing restricted transactions with 25% covered-person "
         "ownership.",
         "engaged in a restricted transaction involving cloud-computing services", None,
         "Whether the report is due, and the filed report (volumes per category will come "
         "from the bulk counters, issue 14 item 3)."),
    _dsp("dsp-1104-rejected", "28 CFR 202.1104(a)",
         "Report rejected offers of prohibited data brokerage within 14 days.",
         "affirmatively rejected (including automatically rejected using software, technology, "
         "or automated tools)", None,
         "Offers of data brokerage and the reports filed; gateway denials are refused "
         "accesses, not rejected brokerage offers (docs/compliance.md)."),
    _cisa("cisa-org-assets", "organizational",
          "Maintain an inventory of the assets of covered systems.", None,
          "The asset inventory (the deployment slices list the gateways, not the hosts)."),
    _cisa("cisa-org-accountable", "organizational",
          "Designate an individual accountable for cybersecurity and for governance, risk "
          "and compliance.", None, "The designation."),
    _cisa("cisa-org-vulnerabilities", "organizational",
          "Remediate known exploited vulnerabilities within the set time.", None,
          "Vulnerability scans and remediation records."),
    _cisa("cisa-org-change", "organizational",
          "Approve software before it is deployed on covered systems.", _releases,
          "Approval of software other than bordergate's releases (OS, databases).",
          kinds=_RELEASE_KINDS,
          gaps=("A review proves that named reviewers signed a digest, not how carefully "
                "they read it.",)),
    _cisa("cisa-org-risk", "organizational", "Assess risk to covered data.", None,
          "The risk assessment."),
    _cisa("cisa-org-incident", "organizational",
          "Maintain and exercise an incident response plan.", None,
          "The plan and its exercises."),
    _cisa("cisa-sys-mfa", "system", "Enforce multi-factor authentication.", None,
          "MFA at the token issuer (tokens and their issuance are not logged)."),
    _cisa("cisa-sys-deny-default", "system",
          "Deny by default; allow only approved connections and access.", _replay,
          "Network-level deny-by-default (firewall rules) for every covered system.",
          kinds=_REPLAY_KINDS,
          gaps=("Policy is deny-by-default and replayed; network connections are not "
                "logged.",)),
    _cisa("cisa-sys-logging", "system",
          "Collect and retain logs of access to covered systems and data.", _log_integrity,
          "Logs of access outside bordergate and their retention.", kinds=_REPLAY_KINDS,
          gaps=(_ONLY_GATEWAYS,)),
    _cisa("cisa-sys-iam", "system",
          "Logical access controls: least privilege, prompt revocation.",
          _concat(_approvals, _parties),
          "Revocation of credentials at the issuer and access outside the gateways.",
          kinds=_APPROVAL_KINDS,
          gaps=("Credential revocation happens at the token issuer and is not logged.",)),
    _cisa("cisa-data-minimisation", "data",
          "Data minimisation and masking.", _minimisation,
          "What is collected in the first place.", kinds=_MINIMISE_KINDS,
          gaps=("Masking inside a released value is not recorded; the log shows which fields "
                "were released, not their content.",)),
    _cisa("cisa-data-encryption", "data", "Encryption and key management.", _keys,
          "Encryption in transit, and that stored values are encrypted under the logged keys "
          "(residency tests, key-backend attestations).",
          gaps=("Key events are the gateways' reports; the key service does not yet "
                "countersign them in the log.",)),
    _cisa("cisa-data-pet", "data",
          "Privacy-enhancing technologies (aggregation, differential privacy).", _minimisation,
          "Other processing of covered data outside bordergate.", kinds=_MINIMISE_KINDS,
          gaps=("Exports are k-anonymous and differentially private by policy; budgets spent "
                "are not yet shown per principal in the report.",)),
    _cisa("cisa-data-deny-covered", "data",
          "Deny covered persons and countries of concern access to covered data.",
          _covered_denied,
          "Access paths outside the gateways (consoles, backups, support tools).",
          kinds=_COVERED_KINDS,
          quote="to prevent covered persons and countries of concern from accessing covered "
                "data",
          committed=True,
          gaps=(_ONLY_GATEWAYS,)),
)

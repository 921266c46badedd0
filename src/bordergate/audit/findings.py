"""What an audit finds: the stable finding kinds, their severity, and one finding.

Every finding names its **kind** (a stable snake_case code, listed in
:data:`FINDING_KINDS` with its severity, category and title), the jurisdiction
and log origin, the entry index that proves it, and an explanation for people.
The run attaches an inclusion proof of that entry against the checkpoint it
audited, so a finding can be shown to anyone who holds just that checkpoint.

Categories say what a finding means:

* ``violation``: a rule or promise was broken (data released that should not
  have been, a decision that does not replay, an invalid approval used);
* ``denied_attempt``: the controls worked, but someone the controls exist for
  (a covered person: the parent organisation abroad) tried; nothing released;
* ``integrity``: the log or an entry is not what it must be (malformed, out of
  order, holding personal data, a bundle that cannot be checked);
* ``process``: code or policy release and review discipline (unreviewed starts).

Pure values; this module must never do I/O, and an explanation must never
quote an entry's string values (they are untrusted and could hold personal data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CATEGORIES", "FINDING_KINDS", "SEVERITIES", "Finding", "FindingKind", "kind_of"]

SEVERITIES = ("critical", "high", "medium", "low", "info")
CATEGORIES = ("violation", "denied_attempt", "integrity", "process")


@dataclass(frozen=True)
class FindingKind:
    """A kind of finding: its code, severity, category and a one-line title."""

    code: str
    severity: str
    category: str
    title: str


def _kinds(*rows: tuple[str, str, str, str]) -> Mapping[str, FindingKind]:
    return {code: FindingKind(code, sev, cat, title) for code, sev, cat, title in rows}


FINDING_KINDS: Mapping[str, FindingKind] = _kinds(
    # the log itself
    ("log_verification_failed", "critical", "integrity",
     "The log failed verification (tampering, rollback, split view or damage)"),
    ("checkpoint_unwitnessed", "high", "integrity",
     "The audited checkpoint lacks the auditor's quorum of cosignatures by witnesses it "
     "trusts, so it may be a truncated or rewritten history"),
    ("checkpoint_stale", "high", "integrity",
     "The audited checkpoint's witness cosignatures are older than the freshness window, "
     "so it may not be the log's current state"),
    # entries
    ("entry_malformed", "high", "integrity", "An entry is not a well-formed log entry"),
    ("entry_time_regression", "medium", "integrity",
     "An entry is older than an earlier entry by more than the tolerance"),
    ("entry_version_downgrade", "high", "integrity",
     "An entry is of an older format version than an entry before it in the same log"),
    ("personal_data_in_entry", "high", "integrity",
     "An entry appears to carry a field value or a raw subject id (promise 7)"),
    # decision replay (promise 4)
    ("decision_mismatch", "critical", "violation",
     "A recorded decision differs from the decision its policy bundle gives"),
    ("decision_unreplayable", "high", "integrity",
     "A recorded decision input cannot be replayed (malformed or unknown purpose)"),
    ("decision_input_inconsistent", "critical", "violation",
     "A recorded decision input does not describe the request of its entry"),
    ("decision_without_start", "high", "integrity",
     "A gateway logged decisions with no earlier gateway-start entry naming it and its "
     "release (a start taken out of the log, or a gateway that skipped its self-check)"),
    ("receipt_key_missing", "high", "integrity",
     "A gateway-start entry of format 2 registers no valid receipt key, so receipts that "
     "gateway signs cannot be tied to it (issue 12, item 5)"),
    ("decision_release_mismatch", "high", "violation",
     "A decision names a release that is not approved or uses another policy bundle"),
    ("bundle_unavailable", "high", "integrity",
     "The policy bundle an entry names is not published, so its decisions cannot be replayed"),
    ("bundle_digest_mismatch", "critical", "integrity",
     "A published policy bundle does not have the digest it is published under"),
    ("released_without_permit", "critical", "violation",
     "An entry released (or carried out) more than its recorded decisions allowed"),
    # data-flow rules (promises 1, 2)
    ("restricted_released_abroad", "critical", "violation",
     "A restricted field was released to a principal outside its home jurisdiction"),
    ("restricted_released_to_parent", "critical", "violation",
     "A restricted field was released to the parent organisation"),
    ("restricted_exported", "critical", "violation",
     "A restricted field was released in an export"),
    ("protected_released_abroad_without_approval", "critical", "violation",
     "A protected field was released to a principal abroad without an approval"),
    ("export_below_k", "critical", "violation",
     "An export was released over fewer subjects than the minimum k"),
    ("export_not_private", "critical", "violation",
     "An export was released without a record of its differential-privacy noise and budget"),
    ("privacy_budget_overspent", "critical", "violation",
     "More privacy budget (epsilon) was spent in a period than the limit recorded for it"),
    ("bulk_threshold_crossed", "high", "violation",
     "A covered person (or its organisation) was released data of more U.S. persons "
     "(devices) of a DSP category in a rolling 12 months than the bulk threshold of "
     "28 CFR 202.205"),
    ("bulk_threshold_near", "low", "process",
     "A covered person's (or its organisation's) bulk counter reached 80% of its "
     "threshold (28 CFR 202.205) in a rolling 12 months"),
    ("bulk_threshold_refused", "low", "denied_attempt",
     "The gateway refused a covered person's read that would cross a bulk threshold "
     "(28 CFR 202.205), or let it cross under an approval, as its bulk-threshold entry says"),
    ("covered_person_denied", "low", "denied_attempt",
     "A parent-organisation principal abroad asked for protected or restricted data "
     "and was denied (nothing released)"),
    # who appended (issue 12 item 2)
    ("appender_missing", "high", "integrity",
     "An entry names no append credential although the auditor expects every entry to "
     "come through the log operator's sequencer with one"),
    ("appender_unknown", "high", "integrity",
     "An entry was appended with a credential the auditor does not know"),
    ("appender_not_allowed", "high", "integrity",
     "An entry was appended with a credential whose role may not write its type "
     "(a gateway writing a release review, the release tool a decision)"),
    # approvals
    ("approval_unknown", "critical", "violation",
     "An approval that was never requested in this log was granted or used"),
    ("approval_single_approver", "critical", "violation",
     "An approval counted as granted with fewer than two distinct custodian approvers"),
    ("approval_not_granted", "critical", "violation",
     "An approval was used before it was granted"),
    ("approval_self_granted", "critical", "violation",
     "The requester of an approval granted it"),
    ("approval_by_non_approver", "critical", "violation",
     "An approval was granted by a principal who is not a custodian approver"),
    ("approval_unsigned", "critical", "integrity",
     "An approval was granted, denied or revoked without the approver's own signed "
     "statement (a grant without one never counts)"),
    ("approval_signature_invalid", "critical", "integrity",
     "An approval change's statement is not signed by the approver's roster key for this "
     "log, approval, request and verdict (a grant with it never counts)"),
    ("approval_expired", "critical", "violation", "An approval was used after it expired"),
    ("approval_revoked", "critical", "violation",
     "An approval was used after it was revoked or denied"),
    ("approval_scope_exceeded", "critical", "violation",
     "An approval was used beyond its scope (requester, purpose, collection, class, "
     "subjects or records)"),
    ("approval_state_stale", "high", "integrity",
     "An access entry was decided under an older state of its approval than the log's "
     "last change of it (a read not sequenced atomically with a grant or revocation)"),
    ("approval_beyond_limits", "high", "violation",
     "An approval was requested for longer, or for more subjects, than its policy bundle "
     "allows"),
    ("approval_subject_cap_exceeded", "critical", "violation",
     "Protected fields of more distinct subjects were released under an approval than its "
     "cap allows"),
    ("approval_invalid_transition", "medium", "integrity",
     "An approval changed state in a way the approval rules forbid"),
    # legacy migration (issue 15)
    ("migration_inconsistent", "high", "integrity",
     "A migration entry's counts, retry flag, decisions or digests disagree with each other"),
    ("legacy_deletion_unmatched", "high", "integrity",
     "Legacy source rows were deleted that no earlier migration entry of the batch accounts "
     "for"),
    # the key service (issue 13): key-access entries against the decisions that justified them
    ("key_promise_broken", "critical", "integrity",
     "The log operator promised an entry at an index, a key was released on that promise, "
     "and the log holds another entry there"),
    ("key_access_unjustified", "critical", "violation",
     "A data key was released for an entry that is not an allowed decision of that "
     "operation about that subject"),
    ("key_access_malformed", "high", "integrity",
     "A key-access entry does not name a justifying index before it and a leaf hash"),
    ("export_intent_mismatch", "high", "integrity",
     "An export entry names an export-intent that is not an earlier allowed intent of "
     "the same principal, collection and grouping field, or one another export named"),
    # bearer tokens
    ("token_revoked_use", "critical", "violation",
     "A read was decided for a bearer token after its token-revoke entry"),
    # the identity authority's roster (bordergate.roster)
    ("roster_invalid", "high", "integrity",
     "A roster entry does not verify against the roster authority the auditor trusts "
     "(signature, published document, serial), so decisions under it cannot be checked"),
    ("roster_principal_mismatch", "critical", "violation",
     "A decision records principal attributes other than the roster version it names "
     "vouches for (a relabelled principal)"),
    ("roster_principal_unlisted", "critical", "violation",
     "A decision records a principal that the roster version it names does not list"),
    ("roster_unknown", "critical", "integrity",
     "A decision names a roster version that no earlier roster entry of the log logged"),
    ("roster_superseded", "high", "integrity",
     "A decision names a roster version other than the one in force at its index"),
    ("roster_missing", "high", "integrity",
     "A decision logged after a roster entry names no roster version"),
    # releases (promise 6): codes of bordergate.releases.ledger
    ("unreviewed_start", "high", "process",
     "A gateway started without an approved release (--unreviewed)"),
    ("start_unapproved_release", "critical", "process",
     "A gateway started claiming a release that was not approved"),
    ("start_digest_mismatch", "critical", "process",
     "A gateway ran code or policy other than its release names"),
    ("release_malformed", "medium", "process", "A release entry is malformed"),
    ("release_id_mismatch", "medium", "process", "A release entry's id is not its manifest's"),
    ("release_duplicate", "low", "process", "A release was proposed twice"),
    ("review_unknown_release", "medium", "process", "A review names no earlier release"),
    ("review_duplicate", "low", "process", "A reviewer reviewed the same release twice"),
    ("review_invalid", "high", "process",
     "A release review does not count (unknown reviewer or bad signature)"),
)


def kind_of(code: str) -> FindingKind:
    """The kind for ``code``; unknown review-check codes map to ``review_invalid``."""
    found = FINDING_KINDS.get(code)
    return found if found is not None else FINDING_KINDS["review_invalid"]


@dataclass(frozen=True)
class Finding:
    """One finding, proven by the entry at ``index`` of the log of ``jurisdiction``.

    Attributes:
        kind: a code of :data:`FINDING_KINDS`.
        jurisdiction: the audited log's jurisdiction code.
        origin: the audited log's origin line.
        index: the entry that proves it (None for a log that failed before any entry).
        explanation: for people; never quotes entry string values.
        time: the entry's time (epoch seconds), when known.
        detail: small machine-readable facts (codes, counts, field names of the schema).
        unverified: found in an entry of a log that failed verification (what that
            log says, not evidence: no proof attaches to it).
    """

    kind: str
    jurisdiction: str
    origin: str
    index: int | None
    explanation: str
    time: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    unverified: bool = False

    @property
    def severity(self) -> str:
        return kind_of(self.kind).severity

    @property
    def category(self) -> str:
        return kind_of(self.kind).category

    def to_json(self) -> dict[str, Any]:
        """The JSON form (without proof; the run adds it)."""
        k = kind_of(self.kind)
        return {"kind": self.kind, "title": k.title, "severity": k.severity,
                "category": k.category, "jurisdiction": self.jurisdiction,
                "origin": self.origin, "index": self.index, "time": self.time,
                "explanation": self.explanation, "detail": dict(self.detail),
                "unverified": self.unverified}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild from :meth:`to_json` (the auditor's own saved state).

        Raises:
            KeyError, TypeError: the state file is damaged (the caller wraps it).
        """
        return cls(str(data["kind"]), str(data["jurisdiction"]), str(data["origin"]),
                   None if data["index"] is None else int(data["index"]),
                   str(data["explanation"]),
                   None if data.get("time") is None else float(data["time"]),
                   dict(data.get("detail") or {}), bool(data.get("unverified", False)))

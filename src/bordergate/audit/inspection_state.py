"""What an inspection carries from one audit run to the next (the auditor's saved state).

Plain data with its JSON form; this module must never check an entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bordergate.audit.findings import Finding
from bordergate.audit.rules.bulk import BulkCounterState
from bordergate.audit.tally import ApprovalTrack, Tally

__all__ = ["InspectionState"]


@dataclass
class InspectionState:
    """What an inspector carries from one run to the next (JSON in the auditor's state).

    Attributes:
        size: entries inspected so far (the next index expected).
        max_time: the latest entry time seen.
        tally: the counts.
        approvals: the approvals by id.
        findings: every finding so far.
        release_entries: ``(index, entry text)`` of release-related entries (the
            ledger is rebuilt from them each run).
        flagged: dedupe keys of findings reported once per cause, with repeat counts.
        budgets: epsilon (millionths) the log shows spent, by scope, name, period
            and period length (``audit.rules.privacy``).
        revoked_tokens: the index of the ``token-revoke`` entry of each revoked ``jti``.
        roster_entries: ``(index, entry text)`` of each ``roster`` entry, by the
            digest it names (``audit.rules.rosters``).
        roster_in_force: the digest of the last ``roster`` entry, or None.
        roster_serial: the highest verified roster serial, or None.
        migrated: ``[records, legacy_keys]`` of the last allowed ``migration`` entry of
            each ``batch/table`` (``audit.rules.migration``).
        max_version: the highest entry version seen (``audit.rules.versions``).
        key_claims: ``[index, justified, leaf, operation, subject]`` of each
            ``key-access`` entry not yet matched to its justification
            (``audit.rules.keyaccess``).
        bulk: the subjects of each bulk counter, by counterparty and counter
            (``audit.rules.bulk``).
        intent_claims: ``[index, intent, principal id, collection, group_by]`` of
            each ``export`` entry naming an ``export-intent``, not yet matched to it
            (``audit.rules.keyaccess``).
    """

    size: int = 0
    max_time: float | None = None
    tally: Tally = field(default_factory=Tally)
    approvals: dict[str, ApprovalTrack] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    release_entries: list[tuple[int, str]] = field(default_factory=list)
    flagged: dict[str, int] = field(default_factory=dict)
    budgets: dict[str, int] = field(default_factory=dict)
    revoked_tokens: dict[str, int] = field(default_factory=dict)
    roster_entries: dict[str, tuple[int, str]] = field(default_factory=dict)
    roster_in_force: str | None = None
    roster_serial: int | None = None
    migrated: dict[str, list[Any]] = field(default_factory=dict)
    max_version: int = 0
    key_claims: list[list[Any]] = field(default_factory=list)
    bulk: dict[str, BulkCounterState] = field(default_factory=dict)
    intent_claims: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "max_time": self.max_time, "tally": self.tally.to_json(),
                "approvals": {k: v.to_json() for k, v in self.approvals.items()},
                "findings": [f.to_json() for f in self.findings],
                "release_entries": [[i, t] for i, t in self.release_entries],
                "flagged": self.flagged, "budgets": self.budgets,
                "revoked_tokens": self.revoked_tokens,
                "roster_entries": {k: [i, t] for k, (i, t) in self.roster_entries.items()},
                "roster_in_force": self.roster_in_force, "roster_serial": self.roster_serial,
                "migrated": self.migrated, "max_version": self.max_version,
                "key_claims": self.key_claims, "intent_claims": self.intent_claims,
                "bulk": {k: v.to_json() for k, v in self.bulk.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InspectionState:
        """Rebuild from :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: a damaged state (the caller wraps it).
        """
        return cls(
            size=int(data["size"]),
            max_time=None if data["max_time"] is None else float(data["max_time"]),
            tally=Tally.from_json(data["tally"]),
            approvals={str(k): ApprovalTrack.from_json(v)
                       for k, v in dict(data["approvals"]).items()},
            findings=[Finding.from_json(f) for f in data["findings"]],
            release_entries=[(int(i), str(t)) for i, t in data["release_entries"]],
            flagged={str(k): int(v) for k, v in dict(data["flagged"]).items()},
            budgets={str(k): int(v) for k, v in dict(data.get("budgets", {})).items()},
            revoked_tokens={str(k): int(v)
                            for k, v in dict(data.get("revoked_tokens", {})).items()},
            roster_entries={str(k): (int(i), str(t))
                            for k, (i, t) in dict(data.get("roster_entries", {})).items()},
            roster_in_force=None if data.get("roster_in_force") is None
            else str(data["roster_in_force"]),
            roster_serial=None if data.get("roster_serial") is None
            else int(data["roster_serial"]),
            migrated={str(k): list(v) for k, v in dict(data.get("migrated", {})).items()},
            max_version=int(data.get("max_version", 0)),
            key_claims=[list(c) for c in data.get("key_claims", [])],
            intent_claims=[list(c) for c in data.get("intent_claims", [])],
            bulk={str(k): BulkCounterState.from_json(v)
                  for k, v in dict(data.get("bulk", {})).items()})

"""What every rule reads and reports to: the log's settings, the state, the findings.

A :class:`RuleContext` is the part of an inspector the rules see.  It holds no
parsing and no rule: the rules (the sibling modules) call :meth:`RuleContext.flag`.

This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bordergate.approval_statement import ApproverKeys, MappingApproverKeys
from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.findings import Finding
from bordergate.audit.inspection_state import InspectionState
from bordergate.audit.rosterstore import RosterLookup
from bordergate.audit.rules.bulk import BulkRules
from bordergate.entries import parse_entry
from bordergate.errors import VerificationError
from bordergate.releases.ledger import ReleaseLedger
from bordergate.releases.review import ReviewPolicy
from bordergate.roster import Roster, RosterSignature

__all__ = ["ENTRY_INDEX", "RuleContext"]

ENTRY_INDEX = "\x00index\x00"  # in an explanation computed before the index is known


class RuleContext:
    """One log's inspection settings and state, and how findings are reported."""

    def __init__(self, *, jurisdiction: str, origin: str,
                 bundles: Callable[[str], BundleLookup], reviewers: ReviewPolicy,
                 approvers: Iterable[str] = (), approver_keys: ApproverKeys | None = None,
                 tolerance: float = 5.0, state: InspectionState | None = None,
                 rosters: Callable[[RosterSignature], RosterLookup] | None = None,
                 appenders: Mapping[str, str] | None = None,
                 bulk: BulkRules | None = None) -> None:
        """Start (or continue from ``state``) the inspection of one log.

        Args:
            jurisdiction: the log's jurisdiction code (the home of its data).
            origin: the log's origin line.
            bundles: looks a policy bundle up by digest.
            reviewers: the release reviewers and approvals required.
            approvers: principal ids allowed to grant approvals (empty: any
                custodian principal with the ``approver`` role at home).
            approver_keys: each approver's Ed25519 keys for entries that name no
                roster version (a log without a roster); none: no such entry's
                approver signature verifies (fail closed).  An entry that names
                a version is checked against that version's keys.
            tolerance: seconds of clock disorder allowed between entries.
            state: the state saved by the last run, if any.
            rosters: looks a signed roster version up (None: no roster
                authority configured; every roster entry is then unverifiable).
            appenders: append credential id -> role the auditor expects
                (:mod:`~bordergate.audit.rules.appenders`; empty: not judged).
            bulk: the schema's DSP categories and the bulk thresholds the auditor
                states (:mod:`~bordergate.audit.rules.bulk`; None: not counted).
        """
        self.home = jurisdiction
        self.origin = origin
        self.bundles = bundles
        self.approvers = frozenset(approvers)
        self.approver_keys: ApproverKeys = approver_keys or MappingApproverKeys({})
        self.appenders = dict(appenders or {})
        self.bulk = bulk
        self.tolerance = tolerance
        self.state = state or InspectionState()
        self.ledger = ReleaseLedger(reviewers, log=origin)
        for index, text in self.state.release_entries:
            self.ledger.add(index, parse_entry(text.encode("utf-8")))
        self.ledger_seen = len(self.ledger.findings)
        self.rosters = rosters
        self._roster_verdicts: dict[tuple[Any, ...], tuple[str, tuple[str, ...]] | None] = {}
        # (gateway, release) of every gateway-start so far (audit.rules.releases)
        self.started: set[tuple[str, str | None]] = {
            (s.gateway, s.release) for s in self.ledger.starts}

    def roster_lookup(self, signature: RosterSignature) -> RosterLookup:
        """The verified roster version ``signature`` signs, or why there is none."""
        if self.rosters is None:
            return RosterLookup(signature.roster[:80], None, "roster_authority_not_configured",
                                "the auditor names no roster authority for this log")
        return self.rosters(signature)

    def roster_named(self, digest: str) -> Roster | None:
        """The verified roster version ``digest`` that a ``roster`` entry of this log
        logged (before the entry being checked), or None: not logged, or it did not
        verify (its entry has ``roster_invalid``).  For rules that need a principal's
        roster attributes or approver keys (``Roster.approver_keys``)."""
        logged = self.state.roster_entries.get(digest)
        if logged is None:
            return None
        try:
            signature = RosterSignature.from_entry_body(
                parse_entry(logged[1].encode("utf-8")).body)
        except VerificationError:
            return None
        if signature.roster != digest:  # a failed-closed key names no version
            return None
        return self.roster_lookup(signature).roster

    def roster_verdict(self, digest: str, recorded: Mapping[str, Any]
                       ) -> tuple[str, tuple[str, ...]] | None:
        """Whether ``recorded`` principal attributes are the roster version's
        ``digest`` (logged earlier) vouches for: None when they are, or when that
        version did not verify; else the finding kind and the differing attribute
        names (cached: entries of one shape ask the same)."""
        from bordergate.audit.rules.rosters import principal_problem

        roles = recorded.get("roles")
        key = (digest, *(recorded.get(a) if isinstance(recorded.get(a), str) else None
                         for a in ("id", "org", "org_kind", "location")),
               tuple(roles) if isinstance(roles, list) and
               all(isinstance(r, str) for r in roles) else repr(roles)[:200], len(recorded))
        if key in self._roster_verdicts:
            return self._roster_verdicts[key]
        verdict = None
        roster = self.roster_named(digest)
        if roster is not None:
            listed = roster.principal(recorded.get("id"))  # not a string: not listed
            verdict = principal_problem(None if listed is None else listed.attributes(),
                                        recorded)
        if len(self._roster_verdicts) > 65_536:
            self._roster_verdicts.clear()
        self._roster_verdicts[key] = verdict
        return verdict

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far (earlier runs included), in the order found."""
        return self.state.findings

    def flag(self, kind: str, index: int | None, time: float | None, explanation: str,
             detail: Mapping[str, Any] | None = None) -> None:
        """Report one finding."""
        self.state.findings.append(Finding(kind, self.home, self.origin, index, explanation,
                                           time, dict(detail or {})))

    def repeat(self, key: str) -> bool:
        """Whether a finding of this cause was flagged already (then count one more)."""
        seen = self.state.flagged.get(key)
        if seen is None:
            return False
        self.state.flagged[key] = seen + 1
        return True

    def flag_once(self, kind: str, key: str, index: int, time: float, *, explanation: str,
                  detail: Mapping[str, Any] | None = None) -> None:
        """Flag the first entry of one cause (callers ask :meth:`repeat` first)."""
        self.state.flagged[key] = 0
        self.flag(kind, index, time, explanation, {**(detail or {}), "repeat_key": key})

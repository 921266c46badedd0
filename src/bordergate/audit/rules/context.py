"""What every rule reads and reports to: the log's settings, the state, the findings.

A :class:`RuleContext` is the part of an inspector the rules see.  It holds no
parsing and no rule: the rules (the sibling modules) call :meth:`RuleContext.flag`.

This module must never read a log or a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.findings import Finding
from bordergate.audit.inspection_state import InspectionState
from bordergate.entries import parse_entry
from bordergate.releases.ledger import ReleaseLedger
from bordergate.releases.review import ReviewPolicy

__all__ = ["ENTRY_INDEX", "RuleContext"]

ENTRY_INDEX = "\x00index\x00"  # in an explanation computed before the index is known


class RuleContext:
    """One log's inspection settings and state, and how findings are reported."""

    def __init__(self, *, jurisdiction: str, origin: str,
                 bundles: Callable[[str], BundleLookup], reviewers: ReviewPolicy,
                 approvers: Iterable[str] = (), tolerance: float = 5.0,
                 state: InspectionState | None = None) -> None:
        """Start (or continue from ``state``) the inspection of one log.

        Args:
            jurisdiction: the log's jurisdiction code (the home of its data).
            origin: the log's origin line.
            bundles: looks a policy bundle up by digest.
            reviewers: the release reviewers and approvals required.
            approvers: principal ids allowed to grant approvals (empty: any
                custodian principal with the ``approver`` role at home).
            tolerance: seconds of clock disorder allowed between entries.
            state: the state saved by the last run, if any.
        """
        self.home = jurisdiction
        self.origin = origin
        self.bundles = bundles
        self.approvers = frozenset(approvers)
        self.tolerance = tolerance
        self.state = state or InspectionState()
        self.ledger = ReleaseLedger(reviewers, log=origin)
        for index, text in self.state.release_entries:
            self.ledger.add(index, parse_entry(text.encode("utf-8")))
        self.ledger_seen = len(self.ledger.findings)
        # (gateway, release) of every gateway-start so far (audit.rules.releases)
        self.started: set[tuple[str, str | None]] = {
            (s.gateway, s.release) for s in self.ledger.starts}

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

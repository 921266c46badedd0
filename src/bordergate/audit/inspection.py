"""Entry-by-entry inspection of a verified log: the plain reference inspector.

A :class:`ReferenceInspector` is fed the entries of one jurisdiction's log in
index order, after the log-level check (:mod:`bordergate.audit.logcheck`)
verified them, and finds what docs/design.md ("The auditor") asks for.  Read
:meth:`ReferenceInspector.check` top to bottom: each entry is parsed with the one
entry parser (:func:`bordergate.entries.parse_entry`), its decision list (if any)
is parsed and replayed with the bundle it names
(:mod:`bordergate.audit.decision_lists`), and each rule of
:mod:`bordergate.audit.rules` is applied:

* :mod:`~bordergate.audit.rules.wellformed`: well-formed, time-ordered within the
  tolerance, no field values or raw ids (promise 7);
* :mod:`~bordergate.audit.rules.decisions`: replay and the recorded input (promise 4);
* :mod:`~bordergate.audit.rules.dataflows`: borders, parent, exports (promises 1, 2);
* :mod:`~bordergate.audit.rules.approvals`: approval life cycle and uses;
* :mod:`~bordergate.audit.rules.releases`: reviewed releases (promise 6);
* :mod:`~bordergate.audit.rules.tokens`: no read for a revoked bearer token;
* :mod:`~bordergate.audit.rules.rosters`: principals as the identity authority's
  roster version vouches for them;
* :mod:`~bordergate.audit.rules.appenders`: each entry names an append
  credential the auditor expects, allowed its type;
* :mod:`~bordergate.audit.rules.migration`: a migration's entries agree with each other;
* :mod:`~bordergate.audit.rules.versions`: which checks apply to the entry's format
  version (roster, approver signatures, appender, receipt key), and a version that
  goes back.

:func:`open_inspector` picks this inspector (``audit run --reference``) or the
accelerated one of :mod:`bordergate.audit._accelerated` (the default), which
gives the same findings, tally and state faster: it caches what follows from an
entry's shape and hands every other entry to :meth:`ReferenceInspector.check`.

Pure apart from the injected bundle lookup: this module must never read a log
or a clock, and never put an entry's string values into a finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.decision_lists import DecisionList, parse_decision_list, replay
from bordergate.audit.inspection_state import InspectionState
from bordergate.audit.personal_data import scan_entry
from bordergate.audit.rules import (
    approvals,
    bulk,
    decisions,
    keyaccess,
    migration,
    releases,
    rosters,
    tokens,
    versions,
    wellformed,
)
from bordergate.audit.rules.context import RuleContext
from bordergate.audit.tally import Tally
from bordergate.entries import Entry, canonical_json, parse_entry
from bordergate.errors import Unavailable, VerificationError
from bordergate.releases.review import ReviewPolicy

__all__ = ["DECISION_TYPES", "InspectionState", "ReferenceInspector", "guarded", "open_inspector"]

DECISION_TYPES = decisions.DECISION_TYPES
# Types checked by one rule each, with no decision list.
_ENTRY_RULES: dict[str, Callable[[RuleContext, int, Entry], None]] = {
    "token-revoke": tokens.token_revoke, "migration": migration.migration,
    "legacy-deletion": migration.legacy_deletion, "roster": rosters.roster_entry,
    "key-access": keyaccess.key_access, "bulk-threshold": bulk.bulk_threshold_entry}


class ReferenceInspector(RuleContext):
    """Inspects one log's entries in index order, one at a time (see the module docstring)."""

    @property
    def tally(self) -> Tally:
        return self.state.tally

    def feed(self, index: int, data: bytes) -> None:
        """Inspect the entry at ``index`` (indexes must follow each other).

        Raises:
            ValueError: ``index`` is not the next one (programmer misuse).
        """
        self.feed_all(index, (data,))

    def feed_all(self, first: int, entries: Iterable[bytes]) -> None:
        """Feed consecutive entries starting at ``first`` (:meth:`feed` each).

        Raises:
            ValueError: ``first`` is not the next index (programmer misuse).
        """
        if first != self.state.size:
            raise ValueError(f"entry {first} fed, expected {self.state.size}")
        for index, data in enumerate(entries, first):
            self.state.size = index + 1
            self.inspect(index, data)

    def finish(self) -> InspectionState:
        """Return the state to save (every entry fed has been checked)."""
        return self.state

    def inspect(self, index: int, data: bytes) -> None:
        """Parse one entry, replay its decisions, and check it."""
        try:
            entry = parse_entry(data)
            group = self.decision_list(entry)
        except VerificationError as exc:
            wellformed.entry_malformed(self, index, exc)
            return
        if group is not None:
            replay([group], self.bundles)
        self.check(index, entry, group, scan_entry(data, entry.body))

    def decision_list(self, entry: Entry) -> DecisionList | None:
        """The parsed decision list of a decision entry or an approval change, if any.

        Raises:
            VerificationError: a decision entry whose ``decisions`` is not a list.
        """
        if entry.type in DECISION_TYPES:
            value = wellformed.decision_list_of(entry)
        elif entry.type in approvals.APPROVAL_CHANGES and \
                isinstance(entry.body.get("decision"), dict):
            value = [entry.body["decision"]]
        else:
            return None
        digest = entry.body.get("bundle")
        group = parse_decision_list(digest if isinstance(digest, str) else "", value)
        group.raw = canonical_json(value)
        return group

    def check(self, index: int, entry: Entry, group: DecisionList | None,
              pii: list[tuple[str, str]]) -> None:
        """Every rule, for one parsed entry (its decision list replayed, ``pii`` its
        personal-data scan); a rule that fails on it makes it ``entry_malformed``
        (:func:`guarded`)."""
        guarded(self, index, entry.time, entry.type, self.check_rules, index, entry, group, pii)

    def check_rules(self, index: int, entry: Entry, group: DecisionList | None,
                    pii: list[tuple[str, str]]) -> None:
        """:meth:`check` without the guard."""
        version = self.entry_order(index, entry, pii)
        t = entry.time
        tally = self.state.tally
        kind = entry.type
        if kind in DECISION_TYPES:
            assert group is not None
            tokens.revoked_token_use(self, index, t, entry)
            releases.decision_without_start(self, index, t, entry)
            self.decision_entry(index, entry, group)
            if "intent" in entry.body:  # an export whose keys a key service released
                keyaccess.export_intent(self, index, entry)
        elif kind == "approval-request":
            approvals.approval_request(self, index, entry)
        elif kind in approvals.APPROVAL_CHANGES:
            decisions.approval_decision(self, index, entry, group)
            approvals.approval_change(self, index, entry)
        elif kind == approvals.APPROVAL_REFUSED:
            approvals.approval_refused(self, index, entry)
        elif kind in releases.RELEASE_TYPES:
            # a parsed entry is canonical: its canonical JSON is its bytes
            releases.release_entry(self, index, canonical_json(entry.body).decode("utf-8"),
                                   entry)
        elif kind == "key-event":
            tally.key_events[str(entry.body.get("kind"))[:40]] += 1
        elif kind in _ENTRY_RULES:
            _ENTRY_RULES[kind](self, index, entry)
        # the checks that depend on the entry's version: roster, appender, receipt key
        versions.apply_versioned_checks(self, index, t, entry, version)

    def entry_order(self, index: int, entry: Entry, pii: list[tuple[str, str]]) -> int:
        """The rules every entry meets: counted, in time order, of a version that does
        not go back, no personal data.  Returns the version to check the entry by."""
        st = self.state
        tally = st.tally
        t = entry.time
        tally.entries[entry.type] += 1
        if tally.first_time is None or t < tally.first_time:
            tally.first_time = t
        if tally.last_time is None or t > tally.last_time:
            tally.last_time = t
        if st.max_time is not None and t < st.max_time - self.tolerance:
            wellformed.entry_time_regression(self, index, t, st.max_time)
        if st.max_time is None or t > st.max_time:
            st.max_time = t
        version = versions.entry_version(self, index, t, entry)
        if pii:
            wellformed.personal_data_in_entry(self, index, t, pii)
        return version

    def decision_entry(self, index: int, entry: Entry, group: DecisionList) -> None:
        """The rules of an ``access``, ``write``, ``export`` or ``erase`` entry."""
        checks = decisions.decision_checks(self, entry, group)
        decisions.apply_decision_checks(self, index, entry, group=group, checks=checks)


def guarded(ctx: RuleContext, index: int, t: float, kind: str,
            rules: Callable[..., None], *args: Any) -> None:
    """Run ``rules(*args)`` for the entry at ``index`` (``t``, ``kind``: its time and
    type); an unexpected exception (a rule meeting an entry shape nobody foresaw: a
    list where an id belongs) is the entry's
    ``entry_malformed`` finding, code ``entry_not_checkable``, and the audit goes on.
    Fail safe: the finding is high, so the verdict is never clean by it.  What the
    auditor cannot reach (a bundle store, a file) still ends the run (retry later).
    """
    try:
        rules(*args)
    except (OSError, Unavailable, MemoryError):
        raise
    except Exception as exc:  # one entry must never end the audit
        wellformed.entry_not_checkable(ctx, index, t, kind, exc)


def open_inspector(*, reference: bool = False, jurisdiction: str, origin: str,
                   bundles: Callable[[str], BundleLookup], reviewers: ReviewPolicy,
                   **settings: Any) -> ReferenceInspector:
    """An inspector for one log: the reference one, or (default) the accelerated one.

    ``settings`` are :class:`~bordergate.audit.rules.context.RuleContext`'s
    (``approvers``, ``tolerance``, ``state``, ``appenders``).  Both find the same.
    """
    if reference:
        return ReferenceInspector(jurisdiction=jurisdiction, origin=origin, bundles=bundles,
                                  reviewers=reviewers, **settings)
    from bordergate.audit._accelerated import AcceleratedInspector

    return AcceleratedInspector(jurisdiction=jurisdiction, origin=origin, bundles=bundles,
                                reviewers=reviewers, **settings)

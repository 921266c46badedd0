"""The auditor's roster rule (audit/rules/rosters.py), one finding kind at a time.

Issue 12 item 3: every decision's recorded principal is checked against the roster
version it names, verified with the auditor's own authority key; each way of breaking
that gives its own finding naming the entry.  Both inspection paths are run.
"""

from __future__ import annotations

import pytest

from bordergate.audit.inspection import open_inspector
from bordergate.entries import encode_entry
from bordergate.policy.entities import Principal
from bordergate.releases.review import ReviewPolicy
from tests.audit.loggen import OUTSIDER, LogGenerator
from tests.audit.scenario import LOCAL, PARENT, T0, EntryFactory

GENERATOR = LogGenerator()
FACTORY = EntryFactory()
(V1, SIG1), (V2, SIG2), _ = GENERATOR.rosters


def findings(entries: list[bytes], *, reference: bool) -> list[tuple[str, int | None]]:
    inspector = open_inspector(reference=reference, jurisdiction="us", origin="us.test/log",
                               bundles=FACTORY.lookup, reviewers=ReviewPolicy((), 1),
                               rosters=GENERATOR.roster_lookup)
    inspector.feed_all(0, entries)
    return [(f.kind, f.index) for f in inspector.finish().findings
            if f.kind.startswith("roster_")]


def read(who: Principal, t: float, **extra: object) -> bytes:
    return FACTORY.access(who, ["handle"], t=t, extra=dict(extra))


@pytest.mark.parametrize("reference", [True, False], ids=["reference", "accelerated"])
def test_each_roster_finding_names_its_entry(reference: bool) -> None:
    """A relabelled principal, an unlisted one, an unlogged version, a superseded one, a
    missing one and a roster entry that does not verify each give their finding at the
    entry that shows it; honest reads under the version in force give none."""
    relabelled = Principal(PARENT.id, "ttus", "local", "us", PARENT.roles)
    bad = dict(SIG2.entry_body(), signature=SIG1.entry_body()["signature"])
    entries = [
        encode_entry("roster", T0, SIG1.entry_body()),           # 0
        read(LOCAL, T0 + 1, roster=V1.digest),                    # 1 honest
        read(PARENT, T0 + 1, roster=V1.digest),                   # 2 honest (covered person)
        read(relabelled, T0 + 2, roster=V1.digest),               # 3 relabelled
        read(OUTSIDER, T0 + 2, roster=V1.digest),                 # 4 not listed
        read(LOCAL, T0 + 3, roster="sha256:" + "9" * 64),         # 5 never logged
        encode_entry("roster", T0 + 4, SIG2.entry_body()),        # 6 version 2 in force
        read(LOCAL, T0 + 5, roster=V1.digest),                    # 7 superseded
        read(LOCAL, T0 + 5),                                      # 8 names none
        read(LOCAL, T0 + 6, roster=V2.digest),                    # 9 honest
        encode_entry("roster", T0 + 7, bad),                      # 10 bad signature
    ]
    assert findings(entries, reference=reference) == [
        ("roster_principal_mismatch", 3), ("roster_principal_unlisted", 4),
        ("roster_unknown", 5), ("roster_superseded", 7), ("roster_missing", 8),
        ("roster_invalid", 10)]


def test_a_log_without_roster_entries_is_not_judged() -> None:
    """Logs written before issue 12 (or by a deployment without a roster) give no
    roster finding."""
    assert findings([read(LOCAL, T0), read(PARENT, T0 + 1)], reference=True) == []

"""Entries written to crash or mislead the auditor (security review of the audit rules).

Each test is a review finding: an entry a hostile gateway or log operator can write
must give a finding naming it, never abort the audit or leave it unnamed, and never
make the verdict cleaner (promise 4, decisions replayable: the auditor must be able to
replay and judge every entry; docs/threat-model.md X1, the auditor reports "clean" on
a bad log).  Rule-level tests run both inspectors (they must agree); the end-to-end
ones run ``bordergate audit run`` on a witnessed log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.audit.inspection import open_inspector
from bordergate.audit.rosterstore import RosterLookup, RosterStore
from bordergate.cli import app
from bordergate.entries import canonical_json, encode_entry
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.policy.entities import Principal
from bordergate.releases.publication import publish_bundle
from bordergate.releases.review import ReviewPolicy
from bordergate.roster import Roster, RosterAuthority, RosterSignature, roster_path, sign_roster
from bordergate.roster.publication import publish_roster
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree
from tests.approvers import AUTHORITY, roster_of
from tests.audit.auditlogs import FixedCosigners, roster_auditor_config
from tests.audit.scenario import (
    APPROVER1,
    APPROVER2,
    LOCAL,
    PARENT,
    T0,
    EntryFactory,
    approval_view,
    apr,
)
from tests.tlog.witnessed import log_signer, witness_signer

INSPECTORS = pytest.mark.parametrize("reference", [True, False], ids=["reference", "accelerated"])


class PublishedRosters:
    """The bundle store's roster documents (a ``LogSource``), checked with the TEST-ONLY
    authority key, as the auditor's roster store does."""

    def __init__(self, *rosters: Roster) -> None:
        self.published = {roster_path(r.digest): r.document for r in rosters}
        self.store = RosterStore(self, RosterAuthority.from_key_strings(
            "us", [AUTHORITY.verifier().key_string]))

    def fetch(self, path: str, limit: int) -> bytes | None:
        return self.published.get(path)

    def lookup(self, signature: RosterSignature) -> RosterLookup:
        return self.store.lookup(signature)


def inspect(entries: Sequence[bytes], *, reference: bool, factory: EntryFactory,
            rosters: PublishedRosters | None = None) -> list[tuple[str, int | None]]:
    """Every finding (kind, index) of ``entries`` by one inspector."""
    inspector = open_inspector(reference=reference, jurisdiction="us",
                               origin=factory.origin, bundles=factory.lookup,
                               reviewers=ReviewPolicy((), 1),
                               rosters=rosters.lookup if rosters is not None else None)
    inspector.feed_all(0, entries)
    return [(f.kind, f.index) for f in inspector.finish().findings]


def with_member(entry: bytes, **members: Any) -> bytes:
    return canonical_json({**json.loads(entry), **members})


def witnessed_log(directory: Path, entries: Sequence[bytes], rosters: Sequence[Roster] = ()
                  ) -> None:
    """A log signed with the TEST-ONLY log key and cosigned by one witness."""
    storage = FileStorage(directory)
    create_log(storage, log_signer())
    try:
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))
        for roster in rosters:
            publish_roster(storage, roster)
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=FixedCosigners([witness_signer(0)])) as seq:
            seq.append_many(list(entries))
            seq.publish(timeout=30)
    finally:
        storage.close()


def auditor_config(tmp: Path, log_dir: Path) -> Path:
    return roster_auditor_config(tmp / "auditor.toml", log_dir,
                                 AUTHORITY.verifier().key_string)


def run_cli(config: Path, tmp: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "run", "--config", str(config), "--state",
                                      str(tmp / "state"), "--report", str(tmp / "report")])
    return result.exit_code, result.output


# -- review finding 1 (HIGH): a time beyond year 9999 ---------------------------------------
@INSPECTORS
@pytest.mark.parametrize("member", ["expires", "requested_at"])
def test_request_time_beyond_year_9999_is_malformed(reference: bool, member: str) -> None:
    """Promise 4 (the auditor judges every entry): an approval-request whose `expires`
    or `requested_at` is a whole number no RFC 3339 time names (2**62) is
    `entry_malformed` at its index, in both inspectors; a request at year 9999 is not."""
    f = EntryFactory()
    huge = with_member(f.approval_request(apr(1), PARENT, t=T0), **{member: 2**62})
    last = with_member(f.approval_request(apr(2), PARENT, t=T0 + 1), expires=253_402_300_799)
    found = inspect([huge, last], reference=reference, factory=f)
    assert ("entry_malformed", 0) in found
    assert not [k for k, i in found if i == 1 and k == "entry_malformed"]


def test_report_times_are_total() -> None:
    """Promise 4 (every run ends in a report): a time the report cannot write in RFC 3339
    (from an auditor state saved before requests were bounded) is written as the
    number itself instead of ending the run."""
    from bordergate.audit.report import _iso

    assert _iso(2**62) == str(2**62)
    assert _iso(-(2**62)) == str(-(2**62))
    assert _iso(0) == "1970-01-01T00:00:00.000Z"
    assert _iso(None) is None


def test_huge_expires_gives_a_report_and_a_finding_on_every_run(tmp_path: Path) -> None:
    """Promise 4 (availability of the audit): `audit run` over a witnessed log holding an
    approval-request with `expires` 2**62 writes its report with `entry_malformed` at
    that entry (exit 1), and so does the next run from the saved state; never an I/O
    error (exit 3)."""
    now = time.time()
    f = EntryFactory(origin=log_signer().name)
    huge = with_member(f.approval_request(apr(7), PARENT, t=now), expires=2**62)
    witnessed_log(tmp_path / "log", [huge])
    config = auditor_config(tmp_path / "audit", tmp_path / "log")
    for _ in range(2):
        code, output = run_cli(config, tmp_path / "audit")
        assert code == 1, output
        report = json.loads((tmp_path / "audit" / "report" / "report.json").read_text())
        assert ("entry_malformed", 0) in {(x["kind"], x["index"]) for x in report["findings"]}


def test_a_report_that_cannot_be_built_is_not_an_io_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promise 4: whatever goes wrong building the report from what the logs say (here
    an OSError, as `time.gmtime` raised for a huge time) is `report_not_built`, exit 1,
    never `io_error` (exit 3, "retry later", which would never succeed)."""
    now = time.time()
    f = EntryFactory(origin=log_signer().name)
    witnessed_log(tmp_path / "log", [f.approval_request(apr(8), PARENT, t=now)])
    config = auditor_config(tmp_path / "audit", tmp_path / "log")

    def broken(run: object) -> dict[str, Any]:
        raise OSError(75, "Value too large for defined data type")

    monkeypatch.setattr("bordergate.audit.report.build_report", broken)
    code, output = run_cli(config, tmp_path / "audit")
    assert code == 1, output
    assert "report_not_built" in output and "io_error" not in output


# -- review finding 2 (MEDIUM): a principal id that is not a string ---------------------------
@INSPECTORS
@pytest.mark.parametrize("bad_id", [["carol"], {"id": "carol"}], ids=["list", "object"])
def test_principal_id_that_is_not_a_string_is_unlisted(reference: bool, bad_id: object) -> None:
    """Promise 4 (every recorded principal is judged against the roster): a grant or a
    read naming a logged roster version whose recorded principal id is a list or an
    object is `roster_principal_unlisted` at its index; the audit does not crash and
    the entries after it are still checked."""
    roster = roster_of("us", [APPROVER1, APPROVER2, LOCAL, PARENT])
    f = EntryFactory()
    a = apr(555)
    grant = json.loads(f.approval_change("approval-grant", a, APPROVER1, t=T0 + 2))
    grant["approver"]["id"] = bad_id
    read = json.loads(f.access(LOCAL, ["handle"], t=T0 + 3))
    read["principal"]["id"] = bad_id
    entries = [encode_entry("roster", T0, sign_roster(roster, AUTHORITY).entry_body()),
               f.requested(with_member(f.approval_request(a, PARENT, t=T0 + 1),
                                       roster=roster.digest)),
               canonical_json({**grant, "roster": roster.digest}),
               canonical_json({**read, "roster": roster.digest}),
               f.access(PARENT, ["handle"], t=T0 + 4, extra={"roster": "sha256:" + "9" * 64})]
    found = inspect(entries, reference=reference, factory=f, rosters=PublishedRosters(roster))
    assert ("roster_principal_unlisted", 2) in found
    assert ("roster_principal_unlisted", 3) in found
    assert ("roster_unknown", 4) in found  # checked after them


@INSPECTORS
def test_a_rule_failing_on_an_entry_is_that_entrys_finding(
        reference: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promise 4 (fail safe): a rule that raises on an entry (a shape nobody foresaw)
    makes that entry `entry_malformed` (code `entry_not_checkable`, high: the verdict is
    never clean by it) and the audit goes on with the next entry, in both inspectors
    (the accelerated one on entries of a known shape too)."""
    from bordergate.audit.rules import tokens

    def boom(*args: object) -> None:
        raise KeyError("unforeseen")

    monkeypatch.setattr(tokens, "revoked_token_use", boom)
    f = EntryFactory()
    reads = [f.access(LOCAL, ["handle"], t=T0 + i) for i in range(3)]
    inspector = open_inspector(reference=reference, jurisdiction="us", origin=f.origin,
                               bundles=f.lookup, reviewers=ReviewPolicy((), 1))
    inspector.feed_all(0, reads)
    malformed = [(x.index, x.detail.get("code"), x.time) for x in inspector.finish().findings
                 if x.kind == "entry_malformed"]
    assert malformed == [(i, "entry_not_checkable", T0 + i) for i in range(3)]


# -- review finding 4 (MEDIUM): a grant under a superseded or rolled-back roster version -------
V1 = roster_of("us", [APPROVER1, APPROVER2, PARENT, LOCAL], serial=1)
V2 = roster_of("us", [APPROVER1, PARENT, LOCAL], serial=2)  # dave is no approver any more


def _approval_story(f: EntryFactory, a: str, t: float, grant_rosters: tuple[str, str],
                    read_roster: str) -> list[bytes]:
    """A request, grants by carol and dave naming the given versions, a read under it."""
    return [
        f.requested(with_member(f.approval_request(a, PARENT, t=t), roster=read_roster)),
        with_member(f.approval_change("approval-grant", a, APPROVER1, t=t + 1),
                    roster=grant_rosters[0]),
        with_member(f.approval_change("approval-grant", a, APPROVER2, t=t + 2, state="granted"),
                    roster=grant_rosters[1]),
        f.access(PARENT, ["email"], t=t + 3, purpose="customer_support",
                 approval=approval_view(a, PARENT, expires=t + 3600),
                 extra={"roster": read_roster})]


@INSPECTORS
def test_a_grant_naming_a_superseded_roster_version_does_not_count(reference: bool) -> None:
    """Promise 4 (approvals judged as the identity authority vouches at the time): once
    version 2 removed dave, a grant by dave signed with his removed key and naming
    version 1 is `approval_signature_invalid` at the grant's own index, even when an
    earlier entry already took version 1's `roster_superseded`; it does not count, so
    the read under the approval is not granted by two approvers."""
    f = EntryFactory()
    a = apr(888)
    entries = [encode_entry("roster", T0, sign_roster(V1, AUTHORITY).entry_body()),
               encode_entry("roster", T0 + 0.5, sign_roster(V2, AUTHORITY).entry_body()),
               f.access(LOCAL, ["handle"], t=T0 + 0.7, extra={"roster": V1.digest}),
               *_approval_story(f, a, T0 + 1, (V2.digest, V1.digest), V2.digest)]
    found = inspect(entries, reference=reference, factory=f, rosters=PublishedRosters(V1, V2))
    assert ("approval_signature_invalid", 5) in found
    assert ("approval_single_approver", 6) in found


@INSPECTORS
def test_a_rolled_back_roster_version_never_comes_into_force(reference: bool) -> None:
    """Promise 4: version 1 logged again after version 2 (its serial does not increase)
    is `roster_invalid` and never in force: grants naming it do not count (each is
    `approval_signature_invalid` at its index), entries naming it are
    `roster_superseded`, and the read under the approval is not granted."""
    f = EntryFactory()
    a = apr(999)
    s1 = sign_roster(V1, AUTHORITY).entry_body()
    entries = [encode_entry("roster", T0, s1),
               encode_entry("roster", T0 + 0.2, sign_roster(V2, AUTHORITY).entry_body()),
               encode_entry("roster", T0 + 0.4, s1),
               *_approval_story(f, a, T0 + 1, (V1.digest, V1.digest), V1.digest)]
    found = inspect(entries, reference=reference, factory=f, rosters=PublishedRosters(V1, V2))
    assert ("roster_invalid", 2) in found
    assert {("approval_signature_invalid", 4), ("approval_signature_invalid", 5),
            ("roster_superseded", 3), ("approval_not_granted", 6)} <= set(found)


# -- review finding 3 (MEDIUM): an entry that leaves its roster member out -------------------
@INSPECTORS
def test_an_entry_naming_no_roster_is_judged_by_the_version_in_force(reference: bool) -> None:
    """Promise 4 (the principal is the roster's, G12): once a roster is logged, a read
    that names no roster version is still checked against the version in force at its
    index, so a relabelled principal (the parent's engineer recorded as local staff)
    is `roster_principal_mismatch` at its own index even when an earlier, innocuous
    entry already took the log's `roster_missing`; every such entry is counted in
    that finding's repeats."""
    roster = roster_of("us", [LOCAL, PARENT])
    relabelled = Principal(PARENT.id, LOCAL.org, LOCAL.org_kind, LOCAL.location, LOCAL.roles)
    f = EntryFactory()
    entries = [encode_entry("roster", T0, sign_roster(roster, AUTHORITY).entry_body()),
               f.access(LOCAL, ["handle"], t=T0 + 1),
               f.access(relabelled, ["email", "handle"], t=T0 + 2),
               f.access(relabelled, ["email", "handle"], t=T0 + 3)]  # a known shape
    inspector = open_inspector(reference=reference, jurisdiction="us", origin=f.origin,
                               bundles=f.lookup, reviewers=ReviewPolicy((), 1),
                               rosters=PublishedRosters(roster).lookup)
    inspector.feed_all(0, entries)
    state = inspector.finish()
    found = [(x.kind, x.index) for x in state.findings if x.kind.startswith("roster_")]
    assert found == [("roster_missing", 1), ("roster_principal_mismatch", 2),
                     ("roster_principal_mismatch", 3)]
    assert state.flagged["roster:missing"] == 2


# -- review finding 5 (MEDIUM): one approver key under two principal ids ----------------------
def test_a_roster_listing_one_key_for_two_principals_is_malformed() -> None:
    """Promise 4 (two distinct approvers, A1): a roster version listing one approver key
    under two principal ids is `roster_malformed` (built or parsed), so it never
    verifies and never comes into force: one key-holder cannot be two approvers."""
    from bordergate.errors import VerificationError
    from bordergate.roster import RosterPrincipal, parse_roster
    from tests.approvers import ISSUED, public_key

    def listed(who: Principal, key: bytes) -> RosterPrincipal:
        return RosterPrincipal(who.id, who.org, who.org_kind, who.location,
                               frozenset(who.roles), approver_keys=(key,))

    shared = public_key("carol")
    with pytest.raises(ValueError, match="one approver key"):
        Roster.build(jurisdiction="us", serial=1, issued=ISSUED,
                     principals=[listed(APPROVER1, shared), listed(APPROVER2, shared)])
    honest = Roster.build(jurisdiction="us", serial=1, issued=ISSUED, principals=[
        listed(APPROVER1, shared), listed(APPROVER2, public_key("dave"))])
    document = json.loads(honest.document)
    document["principals"]["dave"]["approver_keys"] = \
        document["principals"]["carol"]["approver_keys"]
    with pytest.raises(VerificationError) as caught:
        parse_roster(canonical_json(document))
    assert caught.value.code == "roster_malformed"


@INSPECTORS
def test_one_key_signing_as_two_approvers_counts_once(reference: bool) -> None:
    """Promise 4 (two distinct approvers, A1): where the approver keys come from the
    auditor's configuration and one key is listed for carol and dave, grants "by"
    carol and dave both signed with that key count as one approver: the second is
    `approval_invalid_transition` at its index and the read under it is not granted
    by two."""
    from bordergate.approval_statement import MappingApproverKeys
    from tests.approvers import public_key

    f = EntryFactory()
    a = apr(777)
    entries = [f.approval_request(a, PARENT, t=T0),
               f.approval_change("approval-grant", a, APPROVER1, t=T0 + 1, sign="carol"),
               f.approval_change("approval-grant", a, APPROVER2, t=T0 + 2, sign="carol",
                                 state="granted"),
               f.access(PARENT, ["email"], t=T0 + 3, purpose="customer_support",
                        approval=approval_view(a, PARENT, expires=T0 + 3600))]
    keys = MappingApproverKeys({"carol": (public_key("carol"),),
                                "dave": (public_key("carol"),)})
    inspector = open_inspector(reference=reference, jurisdiction="us", origin=f.origin,
                               bundles=f.lookup, reviewers=ReviewPolicy((), 1),
                               approver_keys=keys)
    inspector.feed_all(0, entries)
    found = [(x.kind, x.index) for x in inspector.finish().findings]
    assert ("approval_invalid_transition", 2) in found
    assert ("approval_single_approver", 3) in found

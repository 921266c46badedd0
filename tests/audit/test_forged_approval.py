"""Issue 12 item 4, acceptance: a complete forged approval in a log rebuilt and
re-signed with the log key is found by ``bordergate audit run`` on a first visit.

The malicious log operator (who holds the log key, as the gateway once did) takes
a log the real gateway wrote, inserts a whole approval story into it (a request
by the parent company's principal, grants "by" the two configured approvers,
and a read of protected data under it, every entry consistent with the policy),
rebuilds the Merkle tree and signs a fresh checkpoint with the log key.  The log
itself verifies, and the auditor has no saved state to compare it with.  What
the operator cannot make is the approvers' own signatures: grants that carry no
statement, or one made with a key the roster does not list for that approver,
never count, each is a finding naming its entry, and the read is not granted.
The control case shows the check is what catches it: with the approvers' real
keys (which the operator does not hold) the same story is clean.  It is run
twice: on a log the real gateway wrote (the auditor lists the approvers' keys),
and on a witnessed log with a signed roster (the keys of the roster version
each entry names).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.report import build_report
from bordergate.audit.run import run_audit
from bordergate.cli import app
from bordergate.entries import canonical_json, parse_time
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.publication import publish_bundle
from bordergate.roster import Roster, sign_roster
from bordergate.roster.publication import publish_roster, roster_entry
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree
from tests.approvers import AUTHORITY, roster_of
from tests.audit.auditlogs import FixedCosigners, roster_auditor_config
from tests.audit.scenario import (
    APPROVER1,
    APPROVER2,
    PARENT,
    EntryFactory,
    GatewayScenario,
    approval_view,
    apr,
)
from tests.tlog.witnessed import log_signer, witness_signer


def _entries(log_dir: Path, scenario: GatewayScenario) -> list[bytes]:
    client = LogClient(DirectorySource(log_dir), scenario.signer.verifier())
    size = client.checkpoint().checkpoint.size
    return [client.entry(i, size) for i in range(size)]


def _rebuild(scenario: GatewayScenario, entries: list[bytes]) -> None:
    """The operator's rebuild: a new tree of ``entries``, signed with the log key."""
    target = scenario.log_dir.with_name("rebuilt-us-log")
    storage = FileStorage(target)
    try:
        create_log(storage, scenario.signer)
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))  # as the custodian did
        with Sequencer(storage, scenario.signer) as seq:
            seq.append_many(entries)
            seq.publish(timeout=30)
    finally:
        storage.close()
    scenario.log_dir = target  # the auditor is pointed at what the operator serves


def _forged_story(scenario: GatewayScenario, t: float, sign: str | None
                  ) -> list[bytes]:
    """Request, two grants "by" carol and dave signed as ``sign`` says, a read."""
    f = EntryFactory(origin=scenario.signer.name)
    a = apr(4242)
    story = [f.approval_request(a, PARENT, t=t)]
    story.append(f.approval_change("approval-grant", a, APPROVER1, t=t + 0.1, sign=sign))
    story.append(f.approval_change("approval-grant", a, APPROVER2, t=t + 0.2, sign=sign,
                                   state="granted"))
    story.append(f.access(PARENT, ["email"], t=t + 0.3, purpose="customer_support",
                          approval=approval_view(a, PARENT, expires=t + 3600),
                          release=scenario.release))
    return story


def _audit(scenario: GatewayScenario, tmp_path: Path) -> dict[str, Any]:
    config = scenario.auditor_config(tmp_path / "auditor.toml")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["audit", "run", "--config", str(config),
                                      "--state", str(tmp_path / "state"),
                                      "--report", str(out)])
    assert result.exit_code in (0, 1), result.output
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


@pytest.mark.parametrize(("sign", "kind"), [
    (None, "approval_unsigned"),
    ("mallory", "approval_signature_invalid"),   # the operator's own key
    ("carol", "approval_signature_invalid"),     # dave's grant "signed" with carol's key
], ids=["unsigned", "operator's key", "swapped approver key"])
def test_forged_approval_in_a_rebuilt_resigned_log_is_found(
        tmp_path: Path, sign: str | None, kind: str) -> None:
    """Issue 12 item 4 (acceptance): a forged approval whose grants are unsigned or
    signed by the wrong key, inserted into a log rebuilt and re-signed with the log
    key, is found by `audit run` on a first visit: each bad grant is a finding
    naming its entry, and the read under it is not granted."""
    sc = GatewayScenario(tmp_path / "forged")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    entries = _entries(sc.log_dir, sc)
    at = len(entries) - 2  # inside the history, not at its end
    t = json.loads(entries[at - 1])["time"]
    story = _forged_story(sc, parse_time(t) + 0.001, sign)
    _rebuild(sc, [*entries[:at], *story, *entries[at:]])
    report = _audit(sc, tmp_path)
    assert report["summary"]["logs_verified"] == 1  # the rebuilt log itself verifies
    found = {(f["kind"], f["index"]) for f in report["findings"]}
    bad = {(kind, at + 1), (kind, at + 2)} if sign != "carol" else {(kind, at + 2)}
    assert bad <= found
    assert any(k in ("approval_not_granted", "approval_single_approver") and i == at + 3
               for k, i in found)


def test_the_same_story_signed_by_the_approvers_is_clean(tmp_path: Path) -> None:
    """Issue 12 item 4, control: the same inserted story with grants signed by the
    approvers' own keys (which the operator does not hold) gives no finding, so it
    is the signature check that catches the forgery."""
    sc = GatewayScenario(tmp_path / "signed")
    sc.start()
    asyncio.run(sc.clean_traffic())
    sc.stop()
    entries = _entries(sc.log_dir, sc)
    at = len(entries) - 2
    story = _forged_story(sc, parse_time(json.loads(entries[at - 1])["time"]) + 0.001, "own")
    _rebuild(sc, [*entries[:at], *story, *entries[at:]])
    report = _audit(sc, tmp_path)
    kinds = [f["kind"] for f in report["findings"]]
    # the rebuilt log was re-signed without its witnesses (issue 12 item 1 says so);
    # nothing else is found
    assert kinds == ["checkpoint_unwitnessed"]


def _with_roster(entry: bytes, digest: str) -> bytes:
    return canonical_json({**json.loads(entry), "roster": digest})


def _roster_log(directory: Path, roster: Roster, sign: str | None, now: float) -> list[int]:
    """A witnessed log signed with the log key: the roster entry, then a complete
    forged approval naming that roster (request, grants "by" carol and dave signed
    as ``sign`` says, a read under it).  Returns the grants' indexes."""
    f = EntryFactory(origin=log_signer().name)
    a = apr(4343)
    request = f.requested(_with_roster(f.approval_request(a, PARENT, t=now + 1), roster.digest))
    grants = [_with_roster(f.approval_change("approval-grant", a, who, t=now + 2 + i,
                                             sign=sign, state=state), roster.digest)
              for i, (who, state) in enumerate(((APPROVER1, "pending"),
                                                (APPROVER2, "granted")))]
    read = f.access(PARENT, ["email"], t=now + 5, purpose="customer_support",
                    approval=approval_view(a, PARENT, expires=now + 3600),
                    extra={"roster": roster.digest})
    storage = FileStorage(directory)
    create_log(storage, log_signer())
    try:
        publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))
        publish_roster(storage, roster)
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=FixedCosigners([witness_signer(0)])) as seq:
            seq.append_many([roster_entry(sign_roster(roster, AUTHORITY), now), request,
                             *grants, read])
            seq.publish(timeout=30)
    finally:
        storage.close()
    return [2, 3]


def _roster_audit(tmp: Path, log_dir: Path) -> dict[str, Any]:
    config = roster_auditor_config(tmp / "auditor.toml", log_dir,
                                   AUTHORITY.verifier().key_string)
    return build_report(run_audit(load_auditor_config(config), tmp / "state"))


@pytest.mark.parametrize(("sign", "kind"), [
    (None, "approval_unsigned"), ("mallory", "approval_signature_invalid"),
    ("own", None)], ids=["unsigned", "operator's key", "approvers' own keys"])
def test_forged_approval_in_a_witnessed_log_with_a_roster(tmp_path: Path, sign: str | None,
                                                          kind: str | None) -> None:
    """Issue 12 items 3 and 4: in a rebuilt log, re-signed with the log key and
    cosigned by a witness, whose roster lists carol and dave with their own keys,
    forged grants are found against the keys of the roster version each names; with
    the approvers' real keys (control) the same story raises no approval finding."""
    now = time.time()
    roster = roster_of("us", [APPROVER1, APPROVER2, PARENT])
    log_dir = tmp_path / "log"
    grants = _roster_log(log_dir, roster, sign, now)
    report = _roster_audit(tmp_path / "audit", log_dir)
    assert report["summary"]["logs_verified"] == 1
    found = {(f["kind"], f["index"]) for f in report["findings"]}
    if kind is None:
        assert not {k for k, _ in found if k.startswith(("approval_", "roster_"))}, found
    else:
        assert {(kind, i) for i in grants} | {("approval_not_granted", 4)} <= found

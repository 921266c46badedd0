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
keys (which the operator does not hold) the same story is clean.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.entries import parse_time
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.publication import publish_bundle
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tree_digest import read_tree
from tests.audit.scenario import (
    APPROVER1,
    APPROVER2,
    PARENT,
    EntryFactory,
    GatewayScenario,
    approval_view,
    apr,
)


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
    assert report["findings"] == []

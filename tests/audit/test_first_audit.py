"""A first audit (no saved state) accepts only a checkpoint freshly cosigned by the
auditor's quorum of witnesses it trusts (promise 5; issue 12 item 1).

The attacks are a malicious log operator's: it holds the log key, so it rebuilds the
log from edited entries with the real sequencer and signs the result.  The honest
log (written by the real gateway, cosigned as it grew by the two witnesses the
auditor trusts) holds a violation: an approval granted by one approver.  Before
this check, an auditor without saved state called each rebuilt log "clean".
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.report import build_report
from bordergate.audit.run import run_audit
from bordergate.audit.witness_check import check_witnesses, witness_summary
from bordergate.entries import encode_entry
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import note_signatures
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage import CHECKPOINT_PATH
from bordergate.tlog.storage.fs import FileStorage
from tests.audit.auditlogs import scenario_witnesses, witness_current
from tests.audit.scenario import GatewayScenario
from tests.tlog.witnessed import BORDERGATE, TEST_ONLY_WITNESS_SEEDS, witness_signer

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[GatewayScenario, int]:
    """A witnessed us log: a reviewed start, clean traffic, then a one-approver grant
    (the violation, at the returned index)."""
    sc = GatewayScenario(tmp_path_factory.mktemp("first-audit"))
    sc.start()
    sc.run(sc.clean_traffic())
    approval = sc.run(sc.request_for_single_grant())
    sc.stop()
    return sc, sc.forged_single_grant(approval)


def entries_of(sc: GatewayScenario, log: Path) -> list[bytes]:
    storage = FileStorage(log)
    try:
        client = LogClient(StorageSource(storage), sc.signer.verifier())
        size = client.checkpoint().checkpoint.size
        return [client.entry(i, size) for i in range(size)]
    finally:
        storage.close()


def rebuild(sc: GatewayScenario, entries: list[bytes], where: Path) -> Path:
    """What a malicious operator does: a new log of ``entries`` signed with the log key."""
    storage = FileStorage(where)
    try:
        create_log(storage, sc.signer)
        with Sequencer(storage, sc.signer) as seq:
            seq.append_many(entries)
            seq.publish(timeout=30)
    finally:
        storage.close()
    return where


def auditor(sc: GatewayScenario, log: Path, path: Path) -> Path:
    """The scenario's auditor configuration, pointed at ``log``."""
    config = sc.auditor_config(path)
    config.write_text(config.read_text().replace(str(sc.log_dir), str(log)))
    return config


def audit(sc: GatewayScenario, log: Path, tmp: Path, *, now: float | None = None
          ) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    config = load_auditor_config(auditor(sc, log, tmp / "auditor.toml"))
    return build_report(run_audit(config, tmp / "state", now=now))


def kinds(report: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in report["findings"]}


def test_truncated_before_the_violation_fails_a_first_audit(
        honest: tuple[GatewayScenario, int], tmp_path: Path) -> None:
    """Promise 5: the log truncated just before the violation and re-signed with the log
    key verifies as a log, but `bordergate audit run` (a real process) reports it
    unwitnessed (high), never clean, and exits 1; the violation it hides is not there."""
    sc, violation = honest
    forged = rebuild(sc, entries_of(sc, sc.log_dir)[:violation], tmp_path / "truncated")
    config = auditor(sc, forged, tmp_path / "auditor.toml")
    proc = subprocess.run([BORDERGATE, "audit", "run", "--config", str(config), "--state",
                           str(tmp_path / "state"), "--report", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "QUORUM NOT MET: no trusted witness cosigned it" in proc.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["logs"][0]["verified"]  # the log itself checks out: only witnesses tell
    assert kinds(report) == {"checkpoint_unwitnessed"}
    assert report["summary"]["verdict"].startswith("current state not established")
    finding = report["findings"][0]
    assert finding["severity"] == "high" and finding["detail"]["cosigned_by"] == []
    assert report["logs"][0]["witnesses"]["status"] == "unwitnessed"
    assert "cosigned by" not in witness_summary(report["logs"][0])
    assert "no trusted witness cosigned" in (tmp_path / "report" / "report.html").read_text()
    exit_zero = subprocess.run([BORDERGATE, "audit", "run", "--config", str(config), "--state",
                                str(tmp_path / "state"), "--report", str(tmp_path / "report"),
                                "--exit-zero"], capture_output=True, timeout=300, check=False)
    assert exit_zero.returncode == 1  # not a finding to wave through: no verified state
    assert not (tmp_path / "state" / "logs").exists() or \
        not any((tmp_path / "state" / "logs").iterdir())  # never a baseline


def test_rewritten_history_with_copied_cosignatures_fails_a_first_audit(
        honest: tuple[GatewayScenario, int], tmp_path: Path) -> None:
    """Promise 5: the violation rewritten into an innocent entry (a gateway restart) and
    the log re-signed: the first audit reports the checkpoint unwitnessed; with the
    honest checkpoint's cosignature lines pasted under the new one (they do not verify
    over another root) the log fails verification outright."""
    sc, violation = honest
    entries = entries_of(sc, sc.log_dir)
    start = next(json.loads(e) for e in entries if json.loads(e)["type"] == "gateway-start")
    restart = encode_entry("gateway-start", time.time(),
                           {k: v for k, v in start.items() if k not in ("v", "type", "time")})
    forged = rebuild(sc, [*entries[:violation], restart], tmp_path / "rewritten")
    report = audit(sc, forged, tmp_path / "plain")
    assert kinds(report) == {"checkpoint_unwitnessed"}
    assert report["logs"][0]["witnesses"]["cosigned_by"] == []
    _, honest_lines = note_signatures(FileStorage(sc.log_dir).read(CHECKPOINT_PATH) or b"")
    storage = FileStorage(forged)
    note = storage.read(CHECKPOINT_PATH) or b""
    pasted = note + "".join(s.to_line() for s in honest_lines
                            if s.name.startswith("witness.test")).encode()
    storage.publish_checkpoint(pasted)
    storage.close()
    report = audit(sc, forged, tmp_path / "pasted")
    assert kinds(report) == {"log_verification_failed"}
    assert report["logs"][0]["code"] == "invalid_signature"


def test_old_witnessed_checkpoint_fails_a_first_audit(
        honest: tuple[GatewayScenario, int], tmp_path: Path) -> None:
    """Promise 5: a checkpoint the trusted witnesses honestly cosigned two hours ago, just
    before the violation, is shown as the log's state: the first audit reports it
    stale (high), naming each witness and the time it cosigned."""
    sc, violation = honest
    old = rebuild(sc, entries_of(sc, sc.log_dir)[:violation], tmp_path / "old")
    two_hours_ago = int(time.time()) - 7200
    witness_current(old, [CosignatureSigner(f"witness.test/w{n}", TEST_ONLY_WITNESS_SEEDS[n],
                                            lambda: two_hours_ago) for n in (0, 1)])
    report = audit(sc, old, tmp_path)
    assert kinds(report) == {"checkpoint_stale"}
    seen = report["logs"][0]["witnesses"]["cosigned_by"]
    assert [(c["witness"], c["timestamp"], c["fresh"]) for c in seen] == [
        ("witness.test/w0", two_hours_ago, False), ("witness.test/w1", two_hours_ago, False)]
    assert report["summary"]["verdict"].startswith("current state not established")
    # the same checkpoint was fine when it was fresh: the window is what catches it
    assert kinds(audit(sc, old, tmp_path / "then", now=two_hours_ago + 60)) == set()


def test_witnessed_fresh_log_passes_and_names_its_witnesses(
        honest: tuple[GatewayScenario, int], tmp_path: Path) -> None:
    """Promise 5: the honest log, freshly cosigned by both trusted witnesses, passes the
    witness check; the report names each witness, key id and cosigning time; the
    violation is found; the state is saved, so a second run is incremental."""
    sc, violation = honest
    report = audit(sc, sc.log_dir, tmp_path)
    assert [(f["kind"], f["index"]) for f in report["findings"]] == [
        ("approval_single_approver", violation)]
    w = report["logs"][0]["witnesses"]
    assert w["status"] == "witnessed" and w["required"] == 2
    assert [(c["witness"], c["key_id"]) for c in w["cosigned_by"]] == [
        (s.name, f"{s.key_id:08x}") for s in scenario_witnesses()]
    assert all(c["fresh"] for c in w["cosigned_by"])
    assert witness_summary(report["logs"][0]).startswith("quorum met: cosigned by 2:")
    again = audit(sc, sc.log_dir, tmp_path)
    assert again["summary"]["new_entries"] == 0


def test_auditor_trusting_no_witness_never_calls_a_log_clean(
        honest: tuple[GatewayScenario, int], tmp_path: Path) -> None:
    """Promise 5: an auditor configured with quorum 0 cannot establish a log's history:
    even the honest, witnessed log gets checkpoint_unwitnessed (high), never a warning."""
    sc, _ = honest
    config = auditor(sc, sc.log_dir, tmp_path / "auditor.toml")
    config.write_text(config.read_text().replace("quorum = 2", "quorum = 0"))
    report = build_report(run_audit(load_auditor_config(config), tmp_path / "state"))
    assert "checkpoint_unwitnessed" in kinds(report)
    assert report["logs"][0]["warnings"] == []


def test_witness_check_counts_each_trusted_witness_once(tmp_path: Path) -> None:
    """Promise 5: an untrusted witness, a repeated cosignature and a timestamp far in the
    future do not make up a quorum."""
    from tests.audit.auditlogs import grow
    from tests.tlog.witnessed import log_signer, make_log
    log = tmp_path / "log"
    make_log(log)
    now = int(time.time())
    future = CosignatureSigner("witness.test/w1", TEST_ONLY_WITNESS_SEEDS[1], lambda: now + 3600)
    note = grow(log, 3, cosigners=[witness_signer(0), future, witness_signer(2)])
    trusted = [witness_signer(n).verifier() for n in (0, 1)]
    signed = open_checkpoint(note, log_signer().verifier(), cosigners=trusted)
    check = check_witnesses(signed, trusted=trusted, quorum=2, now=now)
    assert check.finding == "checkpoint_stale"
    assert [c.witness for c in check.cosigned] == ["witness.test/w0", "witness.test/w1"]
    assert check_witnesses(signed, trusted=trusted, quorum=1, now=now).finding is None
    only_untrusted = check_witnesses(signed, trusted=trusted[:0], quorum=1, now=now)
    assert only_untrusted.finding == "checkpoint_unwitnessed"


def test_copy_of_an_honest_log_dir_is_still_witnessed(
        honest: tuple[GatewayScenario, int], tmp_path: Path) -> None:
    """Promise 5: the check judges the checkpoint, not where it is read from: a copy of the
    honest log directory is witnessed like the original (no false finding)."""
    sc, _ = honest
    copy = tmp_path / "copy"
    shutil.copytree(sc.log_dir, copy)
    assert "checkpoint_unwitnessed" not in kinds(audit(sc, copy, tmp_path))

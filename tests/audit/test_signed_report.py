"""The signed audit report and its evidence package (issue 14, items 5 and 7).

A real gateway writes a witnessed log (clean traffic, a covered person denied, an
approval forged as granted by one approver); ``bordergate audit run --sign-key``
audits it with a TEST-ONLY auditor key; ``bordergate audit verify-report`` then
checks the directory offline.  Who could lie: the auditor (its signature says who,
and every finding's proof is re-checked against checkpoints the log signed and
witnesses cosigned) or whoever holds the files afterwards (one changed byte fails
a digest the auditor signed, and the failure names the file).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.audit.report_commands import read_report_dir
from bordergate.audit.signed_report import SIGNATURE_FILE, verify_report
from bordergate.cli import app
from bordergate.tlog.note import Signer
from tests.approvers import AUTHORITY, roster_of
from tests.audit.auditlogs import roster_auditor_config
from tests.audit.scenario import APPROVER1, APPROVER2, PARENT, GatewayScenario
from tests.audit.test_forged_approval import _roster_log

# TEST-ONLY auditor key (fixed seed): never a real auditor's key.
AUDITOR = Signer.from_seed("test-auditor", hashlib.sha256(b"bordergate TEST-ONLY auditor key")
                           .digest())
OTHER = Signer.from_seed("test-auditor", hashlib.sha256(b"bordergate TEST-ONLY other key")
                         .digest())
runner = CliRunner()


def audit(sc: GatewayScenario, root: Path, report: Path) -> Any:
    key = root / "auditor.key"
    if not key.exists():
        key.write_text(AUDITOR.key_string + "\n")
    return runner.invoke(app, ["audit", "run", "--config",
                               str(sc.auditor_config(root / "auditor.toml")),
                               "--state", str(root / "state"), "--report", str(report),
                               "--sign-key", str(key)])


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[GatewayScenario, Path]:
    """A demo-like log audited by `audit run --sign-key`; the scenario and report dir."""
    root = tmp_path_factory.mktemp("signed")
    sc = GatewayScenario(root)
    sc.start()
    sc.run(sc.clean_traffic())
    sc.run(sc.covered_person_attempt())
    approval = sc.run(sc.request_for_single_grant())
    sc.stop()
    sc.forged_single_grant(approval)
    result = audit(sc, root, root / "report")
    assert result.exit_code == 1, result.output  # findings: exit 1, report written
    assert "signed:" in result.output
    return sc, root / "report"


def verify_cli(directory: Path, *keys: str) -> Any:
    args = ["audit", "verify-report", str(directory)]
    for k in keys or (AUDITOR.verifier().key_string,):
        args += ["--auditor-key", k]
    return runner.invoke(app, args)


def test_signed_report_verifies(signed: tuple[GatewayScenario, Path]) -> None:
    """report.sig is a signed note by the auditor's key over report.json and report.html;
    verify-report exits 0 having checked the checkpoint, both findings' entries and
    inclusion proofs, and the policy bundle they were replayed with."""
    _, report = signed
    result = verify_report(read_report_dir(report), [AUDITOR.verifier()])
    assert result.ok, result.problems
    assert result.signed_by == ["test-auditor"]
    assert result.checked["checkpoints"] == 1
    assert result.checked["entries"] == result.checked["inclusion proofs"] == 2
    assert result.checked["bundles"] == 1
    out = verify_cli(report)
    assert out.exit_code == 0, out.output
    assert out.output.startswith("VERIFIED: signed by test-auditor")


def test_another_key_or_no_signature_fails(signed: tuple[GatewayScenario, Path],
                                           tmp_path: Path) -> None:
    """A report checked with a key the auditor does not hold fails (exit 1); an unsigned
    directory fails; a malformed key is a usage error (2); a missing directory is
    unavailable (3)."""
    _, report = signed
    out = verify_cli(report, OTHER.verifier().key_string)
    assert out.exit_code == 1 and "report.sig: [report_signature_invalid]" in out.output
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    (copy / SIGNATURE_FILE).unlink()
    out = verify_cli(copy)
    assert out.exit_code == 1 and "[report_unsigned]" in out.output
    assert verify_cli(report, "not-a-key").exit_code == 2
    assert verify_cli(tmp_path / "absent").exit_code == 3


def test_one_changed_byte_in_any_file_fails_naming_it(signed: tuple[GatewayScenario, Path],
                                                      tmp_path: Path) -> None:
    """Flipping one byte of report.json, report.html, report.sig or ANY evidence file
    (each in turn) fails verification, and a problem names that file; on disk, through
    the command, for report.json and an evidence entry (exit 1)."""
    _, report = signed
    files = read_report_dir(report)
    evidence = [p for p in files if p.startswith("evidence/")]
    assert len(evidence) >= 5  # entries (json + raw), checkpoint, bundle
    for path in files:
        data = bytearray(files[path])
        data[len(data) // 2] ^= 0x01
        result = verify_report({**files, path: bytes(data)}, [AUDITOR.verifier()])
        assert not result.ok, path
        assert path in {p.file for p in result.problems}, (path, result.problems)
    for path in ("report.json", next(p for p in evidence if p.endswith(".entry"))):
        copy = tmp_path / path.replace("/", "_")
        shutil.copytree(report, copy)
        data = bytearray((copy / path).read_bytes())
        data[-2] ^= 0x20
        (copy / path).write_bytes(bytes(data))
        out = verify_cli(copy)
        assert out.exit_code == 1, out.output
        assert path in out.output


def test_an_added_or_removed_evidence_file_fails(signed: tuple[GatewayScenario, Path]) -> None:
    """A file slipped into evidence/ that the signed manifest does not list, or a listed
    file removed, fails verification naming it."""
    _, report = signed
    files = read_report_dir(report)
    extra = verify_report({**files, "evidence/entries/us/9.json": b"{}"},
                          [AUDITOR.verifier()])
    assert ("evidence/entries/us/9.json", "evidence_unlisted") in {
        (p.file, p.code) for p in extra.problems}
    gone = next(p for p in files if p.startswith("evidence/bundles/"))
    fewer = verify_report({k: v for k, v in files.items() if k != gone}, [AUDITOR.verifier()])
    assert (gone, "evidence_missing") in {(p.file, p.code) for p in fewer.problems}


def test_evidence_package_verifies_offline_without_sockets(
        signed: tuple[GatewayScenario, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The package verifies with the gateways stopped, the log and bundle store moved
    away, and every socket refused: verify-report reads only the report directory."""
    sc, report = signed
    copy = tmp_path / "elsewhere"
    shutil.copytree(report, copy)
    moved = sc.log_dir.with_name("log-moved-away")
    sc.log_dir.rename(moved)
    opened: list[object] = []

    class NoSocket(socket.socket):
        def __init__(self, *args: object, **kwargs: object) -> None:
            opened.append(args)
            raise OSError("network use during offline verification")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: opened.append(a) or NoSocket())
    try:
        out = verify_cli(copy)
    finally:
        monkeypatch.undo()
        moved.rename(sc.log_dir)
    assert out.exit_code == 0, out.output
    assert opened == []


def test_entries_are_decoded_and_name_principal_purpose_and_fields(
        signed: tuple[GatewayScenario, Path]) -> None:
    """Each finding names its principal, purpose and fields, carries its entry decoded
    (JSON, not base64), points at its evidence record, and has the place the bulk
    counters go (said not computed when this audit has none)."""
    _, report = signed
    doc = json.loads((report / "report.json").read_text())
    denied = next(f for f in doc["findings"] if f["kind"] == "covered_person_denied")
    assert denied["principal"]["id"] == "bob" and denied["principal"]["org"] == "bytedance"
    assert denied["purpose"] == "customer_support"
    assert {x["field"] for x in denied["fields"]} == {"email", "government_id"}
    assert denied["entry"]["type"] == "access"
    assert denied["bulk"]["status"] == "not computed"
    record = json.loads((report / denied["evidence"]).read_text())
    assert record["entry"] == denied["entry"]
    assert (report / record["raw"]).read_bytes() == json.dumps(
        record["entry"], separators=(",", ":"), sort_keys=True).encode()


def test_scope_names_checkpoint_period_rules_and_methodology(
        signed: tuple[GatewayScenario, Path]) -> None:
    """The report states its scope: each log's checkpoint (SHA-256 of the note, size,
    root, cosignatures), the entries covered and replayed, the time range, the rules
    applied, and a methodology saying nothing was sampled and what was taken on trust."""
    _, report = signed
    doc = json.loads((report / "report.json").read_text())
    scope = doc["scope"]
    log = scope["logs"][0]
    note = (report / doc["logs"][0]["checkpoint_file"]).read_bytes()
    assert log["checkpoint"]["sha256"] == hashlib.sha256(note).hexdigest()
    assert log["checkpoint"]["size"] == doc["logs"][0]["size"] == log["entries_covered"][1]
    assert len(log["checkpoint"]["cosignatures"]) == 2
    assert log["entries_replayed_this_run"] == [0, log["checkpoint"]["size"]]
    assert scope["period"]["from"] <= scope["period"]["to"]
    assert not scope["period"]["resumed"]
    assert {"decisions", "approvals", "rosters", "dataflows"} <= {r["rule"]
                                                                  for r in scope["rules"]}
    said = {m["what"]: m["how"] for m in scope["methodology"]}
    assert said["sampled"].startswith("nothing")
    assert any(k.startswith("taken on trust") for k in said)


def test_resumed_audit_defines_its_period(tmp_path: Path) -> None:
    """An audit resumed from saved state says which entries this run replayed and which
    earlier runs did, stores the checkpoint it resumed from once by digest with the
    consistency proof that the audited one extends it (checked offline), and still
    verifies; its findings keep proofs against the new checkpoint."""
    sc = GatewayScenario(tmp_path)
    sc.start()
    sc.run(sc.clean_traffic())
    sc.run(sc.covered_person_attempt())
    sc.stop()
    assert audit(sc, tmp_path, tmp_path / "r1").exit_code == 1
    first = json.loads((tmp_path / "r1" / "report.json").read_text())
    sc.start()
    sc.run(sc.covered_person_attempt())
    sc.stop()
    assert audit(sc, tmp_path, tmp_path / "r2").exit_code == 1
    doc = json.loads((tmp_path / "r2" / "report.json").read_text())
    log = doc["scope"]["logs"][0]
    old = first["logs"][0]["size"]
    assert doc["scope"]["period"]["resumed"]
    assert log["previous_size"] == old
    assert log["entries_replayed_this_run"] == [old, log["checkpoint"]["size"]]
    assert log["entries_covered"] == [0, log["checkpoint"]["size"]]
    previous = doc["logs"][0]["previous_checkpoint_file"]
    assert previous == first["logs"][0]["checkpoint_file"]
    assert len([f for f in doc["findings"] if f["kind"] == "covered_person_denied"]) == 2
    assert verify_cli(tmp_path / "r2").exit_code == 0
    result = verify_report(read_report_dir(tmp_path / "r2"), [AUDITOR.verifier()])
    assert result.checked["checkpoints"] == 2 and result.checked["consistency proofs"] == 1


def test_each_bundle_checkpoint_and_roster_is_stored_once(tmp_path: Path) -> None:
    """Item 7: findings on several entries that name the same roster version and policy
    bundle store each object once, by digest (the stats count references against
    objects stored); the package verifies, roster digest included."""
    log_dir = tmp_path / "log"
    _roster_log(log_dir, roster_of("us", [APPROVER1, APPROVER2, PARENT]), None, time.time())
    config = roster_auditor_config(tmp_path / "auditor.toml", log_dir,
                                   AUTHORITY.verifier().key_string)
    key = tmp_path / "auditor.key"
    key.write_text(AUDITOR.key_string + "\n")
    report = tmp_path / "report"
    out = runner.invoke(app, ["audit", "run", "--config", str(config), "--state",
                              str(tmp_path / "state"), "--report", str(report),
                              "--sign-key", str(key)])
    assert out.exit_code == 1, out.output
    doc = json.loads((report / "report.json").read_text())
    stats = doc["evidence"]["stats"]
    assert stats["entries"]["stored"] >= 3
    for kind in ("bundles", "rosters", "checkpoints"):
        assert stats[kind]["stored"] == 1, (kind, stats)
        assert stats[kind]["references"] > 1, (kind, stats)
    assert len(list((report / "evidence" / "rosters").iterdir())) == 1
    result = verify_report(read_report_dir(report), [AUDITOR.verifier()])
    assert result.ok, result.problems
    assert result.checked["rosters"] == 1


def test_keygen_writes_an_owner_only_key(tmp_path: Path) -> None:
    """`audit keygen` writes an Ed25519 signed-note key readable only by its owner,
    prints the verifier key, and refuses to overwrite it."""
    key = tmp_path / "auditor.key"
    out = runner.invoke(app, ["audit", "keygen", "--key-file", str(key), "--name", "auditor-x"])
    assert out.exit_code == 0, out.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    vkey = out.output.strip().splitlines()[-1]
    assert vkey == Signer.from_key_string(key.read_text().strip()).verifier().key_string
    again = runner.invoke(app, ["audit", "keygen", "--key-file", str(key), "--name", "y"])
    assert again.exit_code == 2 and "key_file_exists" in again.output


@pytest.mark.parametrize("doc", [
    b'{"format": "bordergate/audit-report/v1", "findings": [{"evidence": 5}]}',
    b'{"format": "bordergate/audit-report/v1", "logs": [{"checkpoint_file": 1}],'
    b' "evidence": {"files": {"evidence/x": "sha256:00"}}}',
    b'{"format": "bordergate/audit-report/v1", "evidence": []}',
    b'[1, 2]',
    b'{"format": "another/v9"}',
], ids=["finding evidence not a path", "checkpoint path not a string", "evidence a list",
        "not an object", "another format"])
def test_a_signed_but_malformed_report_fails_with_a_code(doc: bytes) -> None:
    """A report.json the auditor signed but whose structure is not a report's fails with a
    stable code (report_malformed or a manifest problem), never an exception or a pass."""
    from bordergate.audit.signed_report import sign_report

    files = {"report.json": doc, "report.html": b"<html></html>"}
    files[SIGNATURE_FILE] = sign_report(files, AUDITOR)
    result = verify_report(files, [AUDITOR.verifier()])
    assert not result.ok
    assert {p.code for p in result.problems} <= {"report_malformed", "evidence_missing"}

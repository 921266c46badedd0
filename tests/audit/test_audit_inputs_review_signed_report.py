"""``audit verify-report`` checks what a reader acts on, even against the auditor.

The auditor is not trusted either (docs/threat-model.md): the evidence package is
there so that anyone can re-check a signed report's claims offline.  Found by a
review of what the auditor hands to others: four claims of a report signed with
the auditor's own key passed ``verify_report`` though nothing in the package backs
them, so a lying (or buggy) auditor could hand a reader a "VERIFIED" report that

* shows, for a finding whose raw entry is withheld, a decoded entry of its own
  making (the record's ``entry`` was never compared with anything);
* proves a finding about one log with an entry record of another log (the record's
  jurisdiction and checkpoint were not compared with the finding's);
* calls a log verified, with a size and root, while holding no checkpoint at all
  (a log without ``checkpoint_file`` was skipped);
* resumed from a checkpoint of the same size as the audited one but another root
  -- a split view the log showed it -- with no proof needed (equal sizes were
  skipped).

Each case is a real signed report of a real witnessed log, edited as the auditor
would and signed again with the (TEST-ONLY) auditor key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.evidence_package import checkpoint_file, file_digest, gather_evidence
from bordergate.audit.report import build_report, write_report
from bordergate.audit.report_commands import read_report_dir
from bordergate.audit.report_html import render_report_html
from bordergate.audit.run import run_audit
from bordergate.audit.signed_report import SIGNATURE_FILE, sign_report, verify_report
from bordergate.cli import app
from bordergate.tlog.checkpoint import Checkpoint, sign_checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import Signer, note_signatures
from bordergate.tlog.storage import CHECKPOINT_PATH
from tests.audit.auditlogs import (
    FixedCosigners,
    grow,
    scenario_witnesses,
    us_auditor_config,
    witness_current,
)
from tests.tlog.witnessed import log_signer, make_log

# TEST-ONLY auditor key (fixed seed): never a real auditor's key.
AUDITOR = Signer.from_seed("test-auditor", hashlib.sha256(
    b"bordergate TEST-ONLY audit-inputs review auditor key").digest())
Files = dict[str, bytes]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The files of a signed report of a witnessed 5-entry log (five findings, each
    with its entry record, raw entry and inclusion proof)."""
    return signed_report_files(tmp_path_factory.mktemp("signed-report"))


def signed_report_files(root: Path) -> Files:
    """Audit a witnessed 5-entry log made under ``root``; the signed report's files."""
    log = root / "log"
    make_log(log)
    grow(log, 5)
    witness_current(log)
    config = us_auditor_config(root / "auditor.toml", log)
    run = run_audit(load_auditor_config(config), root / "state")
    doc = build_report(run)
    write_report(doc, root / "report", evidence=gather_evidence(run, doc), signer=AUDITOR)
    files = read_report_dir(root / "report")
    assert verify_report(files, [AUDITOR.verifier()]).ok
    return files


def fork_note(tmp_path: Path, size: int) -> bytes:
    """A checkpoint note the same log key signed for another tree of ``size``."""
    other = tmp_path / "fork"
    make_log(other)
    grow(other, size, tag=b"f")
    note = (other / CHECKPOINT_PATH).read_bytes()
    shutil.rmtree(other)
    return note


def resigned(files: Files, edit: Callable[[dict[str, Any], Files], None]) -> Files:
    """``files`` after the auditor edits its report (and package) and signs it again."""
    out = dict(files)
    doc = json.loads(out["report.json"])
    edit(doc, out)
    doc["evidence"]["files"] = {p: file_digest(d) for p, d in sorted(out.items())
                                if p.startswith("evidence/")}
    out["report.json"] = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    # and its page, rendered again from the edited document, as write_report does
    out["report.html"] = render_report_html(json.loads(out["report.json"])).encode()
    out[SIGNATURE_FILE] = sign_report(out, AUDITOR)
    return out


def codes(files: Files) -> set[str]:
    return {p.code for p in verify_report(files, [AUDITOR.verifier()]).problems}


def _record(files: Files, path: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(files[path])
    return found


def test_a_withheld_entry_states_no_decoded_form(signed: Files) -> None:
    """Evidence package (step 4 of verify-report): a record that holds no raw entry
    (as for a withheld one) but states a decoded entry of the auditor's making fails
    ``entry_decoding_mismatch``; only the raw bytes' own JSON is an entry's decoded
    form."""
    def edit(doc: dict[str, Any], out: Files) -> None:
        path = doc["findings"][0]["evidence"]
        record = _record(out, path)
        del out[record["raw"]]
        record.update(raw=None, withheld="suspected personal data", entry={
            "type": "access", "principal": "someone-else", "outcome": "allow"})
        out[path] = json.dumps(record).encode()
    assert "entry_decoding_mismatch" in codes(resigned(signed, edit))


def test_a_finding_is_proven_only_by_an_entry_of_its_own_log(signed: Files) -> None:
    """Evidence package (step 4): a finding about another log (``eu``) whose evidence
    is the ``us`` log's record of the same index fails ``evidence_malformed``: a
    record proves an entry of the log and checkpoint it names, not of the finding's."""
    def edit(doc: dict[str, Any], out: Files) -> None:
        eu = copy.deepcopy(doc["logs"][0])
        eu.update(jurisdiction="eu", origin="log.test/eu", verified=False,
                  checkpoint_file=None, previous_checkpoint_file=None)
        doc["logs"].append(eu)
        finding = doc["findings"][0]
        doc["findings"].append({**finding, "jurisdiction": "eu", "origin": "log.test/eu",
                                "kind": "restricted_released_abroad"})
        doc["findings"].remove(finding)
    assert "evidence_malformed" in codes(resigned(signed, edit))


def test_a_log_called_verified_holds_its_checkpoint(signed: Files) -> None:
    """Signed report (step 3): a log the report calls verified, of a size and root,
    with no checkpoint in the package fails ``checkpoint_missing``; before, nothing
    was checked of it and the report verified."""
    def edit(doc: dict[str, Any], out: Files) -> None:
        log = doc["logs"][0]
        log.update(checkpoint_file=None, size=1_000_000, root="ab" * 32)
        for finding in doc["findings"]:
            finding["evidence"] = None
        for path in [p for p in out if p.startswith("evidence/")]:
            del out[path]
    assert "checkpoint_missing" in codes(resigned(signed, edit))


def test_a_resumed_audit_of_a_fork_of_the_same_size_fails(signed: Files,
                                                          tmp_path: Path) -> None:
    """Signed report (step 3): an audit that resumed from a checkpoint of the audited
    size but another root -- a split view, both signed by the log key -- fails
    ``consistency_proof_invalid``; before, equal sizes needed no proof."""
    note = fork_note(tmp_path, 5)

    def edit(doc: dict[str, Any], out: Files) -> None:
        path = checkpoint_file(note.decode())
        out[path] = note
        doc["logs"][0].update(previous_checkpoint_file=path, previous_size=5,
                              consistency_proof=[])
    assert "consistency_proof_invalid" in codes(resigned(signed, edit))


def test_an_honest_resigned_report_still_verifies(signed: Files) -> None:
    """The helper that signs again changes nothing by itself: the same report, signed
    again, verifies (so each failure above is the edit's)."""
    assert codes(resigned(signed, lambda doc, out: None)) == set()


def test_witness_claims_count_only_under_the_witness_keys_the_reader_pins(
        signed: Files, tmp_path: Path) -> None:
    """Signed report (step 3; promise 5, witnessed): the auditor replaces the audited
    checkpoint's cosignatures by ones of keys it made, under the real witnesses' names,
    and states those keys.  Before, a reader could pin the log key but not the
    witnesses', so "witnessed by w0 and w1" verified under keys the report names
    itself; with ``witness_keys`` (``--witness-key``) pinned to the real witnesses it
    fails ``witness_key_not_pinned``, and the honest report still verifies."""
    now = int(time.time())
    real = [w.verifier().key_string for w in scenario_witnesses()]
    fakes = [CosignatureSigner(w.name, hashlib.sha256(b"TEST-ONLY forged " + w.name.encode())
                               .digest(), lambda: now) for w in scenario_witnesses()]

    def edit(doc: dict[str, Any], out: Files) -> None:
        log = doc["logs"][0]
        text, _ = note_signatures(out[log["checkpoint_file"]])
        checkpoint = Checkpoint.parse(text)
        out[log["checkpoint_file"]] = FixedCosigners(fakes).cosign(
            sign_checkpoint(checkpoint, log_signer()), checkpoint, lambda _: [])
        log["witness_keys"] = [f.verifier().key_string for f in fakes]
        log["witnesses"]["cosigned_by"] = [
            {**c, "key_id": f"{f.key_id:08x}", "timestamp": now}
            for c, f in zip(log["witnesses"]["cosigned_by"], fakes, strict=True)]
    forged = resigned(signed, edit)
    pinned_log = [log_signer().verifier().key_string]
    assert verify_report(forged, [AUDITOR.verifier()], log_keys=pinned_log).ok  # unpinned
    found = verify_report(forged, [AUDITOR.verifier()], log_keys=pinned_log,
                          witness_keys=real)
    assert "witness_key_not_pinned" in {p.code for p in found.problems}
    assert verify_report(signed, [AUDITOR.verifier()], log_keys=pinned_log,
                         witness_keys=real).ok
    for rel, data in forged.items():  # and through `bordergate audit verify-report`
        (tmp_path / "forged" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "forged" / rel).write_bytes(data)
    result = CliRunner().invoke(app, [
        "audit", "verify-report", str(tmp_path / "forged"), "--auditor-key",
        AUDITOR.verifier().key_string, *(a for w in real for a in ("--witness-key", w))])
    assert result.exit_code == 1 and "witness_key_not_pinned" in result.output, result.output


def test_a_checkpoint_finding_is_proven_only_by_its_own_logs_checkpoint(
        signed: Files) -> None:
    """Evidence package (step 4): a finding about another log's checkpoint (``eu``
    unwitnessed) whose evidence is the ``us`` log's checkpoint fails
    ``evidence_malformed``; a checkpoint proves something only about its own log."""
    def edit(doc: dict[str, Any], out: Files) -> None:
        us = doc["logs"][0]
        eu = copy.deepcopy(us)
        eu.update(jurisdiction="eu", origin="log.test/eu", verified=False,
                  checkpoint_file=None, previous_checkpoint_file=None)
        doc["logs"].append(eu)
        doc["findings"].append({**doc["findings"][0], "jurisdiction": "eu",
                                "origin": "log.test/eu", "index": None,
                                "kind": "checkpoint_unwitnessed",
                                "evidence": us["checkpoint_file"]})
    assert "evidence_malformed" in codes(resigned(signed, edit))


def test_a_page_that_says_other_than_its_signed_document_fails(signed: Files) -> None:
    """The auditor (HTML review): a signed report whose report.html leaves a finding
    out (or says "clean") while report.json keeps it verified before, since the
    signature covers both files as they are; the page must be the rendering of the
    document (``report_html_mismatch``), and the honest page still verifies."""
    assert codes(signed) == set()
    out = dict(signed)
    page = out["report.html"].decode()
    first = json.loads(out["report.json"])["findings"][0]["kind"]
    assert first in page
    out["report.html"] = page.replace(first, "nothing").encode()
    out[SIGNATURE_FILE] = sign_report(out, AUDITOR)
    assert codes(out) == {"report_html_mismatch"}

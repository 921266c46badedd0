"""One log's bundle store that fails stops that log's audit only, never the others'.

Found by a review of what the auditor reads from outside the log: an auditor's file
lists several logs (one per jurisdiction), each with its own bundle store.  A
bundle store that answered 500 (or, since fetches are bounded in time, one too slow:
``log_fetch_too_slow``) raised ``Unavailable`` out of the inspection of its log and
out of ``run_audit``: ``audit run`` ended with an I/O error and wrote no report at all,
for any log.  So the operator of one jurisdiction's store could stop the audit of
every other jurisdiction.  The failure is now that log's ``error`` (``log_unavailable``,
nothing saved for it); the other logs are audited and reported.  The hostile store is
its own process on 127.0.0.1; test-only keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.evidence_package import gather_evidence
from bordergate.audit.report import build_report, write_report
from bordergate.audit.run import run_audit
from bordergate.policy.bundle import default_bundle
from bordergate.releases.publication import bundle_path
from bordergate.tlog.sequencer import Sequencer, SequencerConfig
from bordergate.tlog.storage.fs import FileStorage
from tests.audit.audit_inputs_review_server import hostile_server
from tests.audit.auditlogs import FixedCosigners
from tests.audit.scenario import LOCAL, EntryFactory
from tests.audit.test_hostile_entries import witnessed_log
from tests.tlog.witnessed import log_signer, make_log, witness_signer

EU = log_signer("log.test/eu")


def eu_log(directory: Path) -> Path:
    """A second jurisdiction's log (its own key), one entry, cosigned by witness 0."""
    make_log(directory, EU)
    storage = FileStorage(directory)
    try:
        with Sequencer(storage, EU, config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=FixedCosigners([witness_signer(0)])) as seq:
            seq.append_many([b"not an entry"])
            seq.publish(timeout=30)
    finally:
        storage.close()
    return directory


def test_a_failing_bundle_store_stops_only_its_own_log(tmp_path: Path) -> None:
    """Promise 5 (every log is audited on its own evidence): the us log's bundle store
    answers 500 for the bundle its access entry names; the us log is not audited
    (``log_unavailable`` in its error, no state saved for it), and the eu log in the
    same run is verified, inspected, and its state saved."""
    us = tmp_path / "us"
    witnessed_log(us, [EntryFactory().access(LOCAL, ["handle"])])
    eu = eu_log(tmp_path / "eu")
    with hostile_server(us, "status500", bundle_path(default_bundle().digest)) as url:
        config = tmp_path / "auditor.toml"
        w0 = witness_signer(0).verifier().key_string
        config.write_text(f"""[auditor]
name = "TEST auditor"

[logs.us]
location = "{us}"
bundle_store = "{url}"
vkey = "{log_signer().verifier().key_string}"
witnesses = ["{w0}"]
quorum = 1

[logs.eu]
location = "{eu}"
vkey = "{EU.verifier().key_string}"
witnesses = ["{w0}"]
quorum = 1
""")
        run = run_audit(load_auditor_config(config), tmp_path / "state")
    by = {r.audit.jurisdiction: r for r in run.logs}
    assert by["us"].error is not None and "log_unavailable" in by["us"].error
    assert by["eu"].error is None and by["eu"].check is not None and by["eu"].check.ok
    assert [f.kind for f in by["eu"].findings] == ["entry_malformed"]
    saved = sorted(p.name for p in (tmp_path / "state" / "logs").glob("*.json"))
    assert saved == ["log.test%2Feu.json"], saved
    assert not run.ok
    report = build_report(run)  # and the report of both is written
    write_report(report, tmp_path / "report", evidence=gather_evidence(run, report))
    logs = {log["jurisdiction"]: log for log in
            json.loads((tmp_path / "report" / "report.json").read_text())["logs"]}
    assert logs["eu"]["verified"] and not logs["us"]["verified"]
    assert "log_unavailable" in logs["us"]["error"]

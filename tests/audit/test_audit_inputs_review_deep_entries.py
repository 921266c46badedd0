"""A deeply nested entry is reported like any other malformed entry, never a crash.

Found by a review of what the auditor hands to others: the report, its page and its
evidence package decode each finding's entry as JSON and write it out again, with
recursive code.  An entry that is only ``[`` 5,000 times (or an array nested 990
deep, which ``json.loads`` still reads but ``json.dumps`` cannot write) -- any
append credential or the log operator can log one -- made ``audit run`` fail
``report_not_built`` (``RecursionError``).  Its ``entry_malformed`` finding stays in
the auditor's saved inspection state, whose findings every later report shows, so
every later run failed the same way, and an audit from scratch too: from that
entry on, no report of that log could be written at all.

Now an entry nesting deeper than ``MAX_ENTRY_DEPTH`` is shown and stored as its
base64 bytes, like any entry that is not JSON, in the report, the package and
``verify-report`` alike.  Real witnessed logs, test-only keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.tlog.note import Signer
from tests.audit.auditlogs import append_witnessed, us_auditor_config
from tests.tlog.witnessed import make_log

# TEST-ONLY auditor key (fixed seed): never a real auditor's key.
AUDITOR = Signer.from_seed("test-auditor", hashlib.sha256(
    b"bordergate TEST-ONLY deep entries auditor key").digest())
runner = CliRunner()


def witnessed(log: Path, entries: list[bytes]) -> Path:
    """A log holding ``entries``, its checkpoint cosigned now by the test witnesses."""
    make_log(log)
    append_witnessed(log, entries)
    return log


def auditor(root: Path, log: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "auditor.key").write_text(AUDITOR.key_string + "\n")
    return us_auditor_config(root / "auditor.toml", log)


def audit_run(config: Path, root: Path, report: str = "report") -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "run", "--config", str(config), "--state",
                                 str(root / "state"), "--report", str(root / report),
                                 "--sign-key", str(root / "auditor.key")])
    return result.exit_code, result.output


def findings(report: Path) -> list[tuple[str, Any]]:
    doc = json.loads((report / "report.json").read_text())
    return sorted((f["kind"], f["index"]) for f in doc["findings"])


@pytest.mark.parametrize("depth", [990, 5000])
def test_a_deeply_nested_entry_is_reported_and_its_package_verifies(
        tmp_path: Path, depth: int) -> None:
    """Evidence package and report (promise 7: every finding reaches the reader): a log
    whose entry nests arrays ``depth`` deep, beside one nesting objects as deep, gives a
    written, signed report with both entries' ``entry_malformed`` findings (exit 1: a
    finding, not ``report_not_built``), the entries shown as base64, and the package
    verifies offline."""
    log = witnessed(tmp_path / "log", [b"[" * depth + b"]" * depth,
                                      b'{"a":' * depth + b"1" + b"}" * depth])
    root = tmp_path / "audit"
    code, output = audit_run(auditor(root, log), root)
    assert code == 1 and "report_not_built" not in output, output
    assert findings(root / "report") == [("entry_malformed", 0), ("entry_malformed", 1)]
    doc = json.loads((root / "report" / "report.json").read_text())
    assert all(set(f["entry"] or {"not_json": 1}) == {"not_json"} for f in doc["findings"])
    verified = runner.invoke(app, ["audit", "verify-report", str(root / "report"),
                                   "--auditor-key", AUDITOR.verifier().key_string])
    assert verified.exit_code == 0, verified.output
    code, output = audit_run(auditor(root, log), root, "again")  # from the saved state
    assert code == 1 and "report_not_built" not in output, output
    assert findings(root / "again") == findings(root / "report")


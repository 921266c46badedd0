"""A log server that answers slowly, endlessly or elsewhere never holds the auditor.

Found by a review of what the auditor reads from outside the log: ``HttpSource``
bounded each read of an answer (30 s) but not the fetch, so a log operator (or
whoever serves the bundle store) that answered a checkpoint, a tile or a bundle
one byte every 0.2 s -- in its body, or in its headers -- held ``audit run`` for
days (a 1 MiB checkpoint at 5 bytes/s: about 58 hours) and no report was ever
written.  Each fetch now ends within a deadline (``FETCH_DEADLINE_S``) as
``log_fetch_too_slow``, and the log is reported as not audited with that code.

The hostile server is its own process (``tests/audit/audit_inputs_review_server.py``)
on 127.0.0.1; the deadline is shortened for the test.  Test-only keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.run import AuditRun, run_audit
from bordergate.tlog import client
from tests.audit.audit_inputs_review_server import hostile_server
from tests.audit.auditlogs import grow, us_auditor_config, witness_current
from tests.tlog.witnessed import make_log

DEADLINE = 2.0
WAIT = 45.0
"""How long the test waits for the audit: far beyond the deadline, far below a day."""


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small witnessed log (5 entries) in a directory."""
    log = tmp_path_factory.mktemp("served") / "log"
    make_log(log)
    grow(log, 5)
    witness_current(log)
    return log


def audit_within(config: Path, state: Path, seconds: float) -> AuditRun | None:
    """The audit's run if it ended within ``seconds`` (None: still running)."""
    done: list[AuditRun] = []
    worker = threading.Thread(target=lambda: done.append(
        run_audit(load_auditor_config(config), state)), daemon=True)
    worker.start()
    worker.join(seconds)
    return done[0] if done else None


@pytest.mark.parametrize(("mode", "path"), [
    ("drip", "checkpoint"),
    ("drip", "tile/entries/000.p/5"),
    ("drip-headers", "checkpoint"),
])
def test_a_slow_log_server_ends_the_fetch_with_a_code(
        log_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
        path: str) -> None:
    """Promise 5 (the audit always ends with an answer): a log server answering a
    checkpoint or an entry bundle one byte every 0.2 s, in its body or in its headers,
    ends that log's audit within the fetch deadline as ``log_fetch_too_slow``; nothing
    is saved and the audit does not pass."""
    monkeypatch.setattr(client, "FETCH_DEADLINE_S", DEADLINE, raising=False)
    with hostile_server(log_dir, mode, path) as url:
        config = us_auditor_config(tmp_path / "auditor.toml", url)
        run = audit_within(config, tmp_path / "state", WAIT)
    assert run is not None, f"the audit still waits on a {mode} server after {WAIT} s"
    (log,) = run.logs
    assert log.error is not None and "log_fetch_too_slow" in log.error, log.error
    assert not run.ok
    assert not list((tmp_path / "state" / "logs").glob("*.json"))


@pytest.mark.parametrize("mode", ["endless", "redirect-file", "redirect-host"])
def test_an_endless_or_redirecting_answer_is_refused(
        log_dir: Path, tmp_path: Path, mode: str) -> None:
    """Promise 5: an endless checkpoint is cut at its size cap (``object_too_large``),
    and a redirect (to ``file://`` or to another host serving the same log) is never
    followed (``log_unavailable``): the auditor reads the log where it was told to."""
    with hostile_server(log_dir, mode, "checkpoint") as url:
        config = us_auditor_config(tmp_path / "auditor.toml", url)
        run = audit_within(config, tmp_path / "state", WAIT)
    assert run is not None
    (log,) = run.logs
    if mode == "endless":  # a verification failure: log_verification_failed names it
        assert [(f.kind, (f.detail or {}).get("code")) for f in log.log_findings] == \
            [("log_verification_failed", "object_too_large")]
    else:
        assert log.error is not None and "log_unavailable" in log.error, log.error
    assert not run.ok


_AUDIT_UNDER_LIMIT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from pathlib import Path
from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.run import run_audit
run = run_audit(load_auditor_config(Path(sys.argv[1])), Path(sys.argv[2]))
(log,) = run.logs
print(json.dumps({"ok": run.ok, "error": log.error,
                  "findings": [[f.kind, (f.detail or {}).get("code")] for f in log.log_findings]}))
"""


def test_a_compressed_answer_is_never_decoded_into_memory(log_dir: Path, tmp_path: Path
                                                          ) -> None:
    """Promise 5 (the audit always ends with an answer, bounded in memory): a log server
    answering the checkpoint with 52 KiB labelled ``Content-Encoding: gzip, gzip`` that
    decode to 4 GiB of zeros.  The size cap counted decoded bytes after each decoded
    chunk, so one chunk of 64 KiB became gigabytes first (``MemoryError`` with a trace
    under this test's 2 GiB limit; the OOM killer without one).  The auditor asks for
    ``identity`` and refuses an encoded answer (``object_encoding_refused``: the log
    fails verification), in its own process under the limit."""
    with hostile_server(log_dir, "gzip-bomb", "checkpoint") as url:
        config = us_auditor_config(tmp_path / "auditor.toml", url)
        proc = subprocess.run(
            [sys.executable, "-c", _AUDIT_UNDER_LIMIT, str(config), str(tmp_path / "state")],
            capture_output=True, timeout=120, check=False, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = json.loads(proc.stdout)
    assert not out["ok"]
    assert out["findings"] == [["log_verification_failed", "object_encoding_refused"]], out

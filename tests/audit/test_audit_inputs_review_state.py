"""The auditor reads back every state it writes, however large the log's entries.

Found by a review of the auditor's saved state: the log check's state keeps the
log's last partial entry bundle (up to 255 entries of up to 65,535 bytes), but
``decode_state`` refused any state file over 1 MiB.  Twenty entries of 60 KB after
the last full bundle -- which any append credential can log, and which large
ordinary decisions reach too -- made the first ``audit run`` save a 1.6 MB state and
every later run fail ``audit_state_invalid`` ("the file is too large", exit 2): the
log could no longer be audited incrementally, only from scratch after removing the
state (which needs a fresh witness quorum again).  The cap now covers the largest
state written.  Real witnessed log, test-only keys.
"""

from __future__ import annotations

from pathlib import Path

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.run import run_audit
from tests.audit.auditlogs import append_witnessed, us_auditor_config
from tests.tlog.witnessed import make_log

BIG = 60_000


def test_a_state_holding_large_entries_is_read_back(tmp_path: Path) -> None:
    """Promise 5 (each run continues from the checkpoint it verified): after a run
    over a log whose partial bundle holds twenty 60 KB entries (a state file over
    1 MiB), the next run reads its state back and continues from it (no new entries),
    and a run after twenty more large entries reads only those."""
    log = tmp_path / "log"
    make_log(log)

    def append(first: int) -> None:
        append_witnessed(log, [b'{"pad":"%d' % i + b"x" * BIG + b'"}'
                               for i in range(first, first + 20)])

    append(0)
    config = us_auditor_config(tmp_path / "auditor.toml", log)
    state = tmp_path / "state"
    first = run_audit(load_auditor_config(config), state)
    assert first.logs[0].error is None and first.logs[0].new_entries == 20
    assert max(p.stat().st_size for p in (state / "logs").glob("*.json")) > 1 << 20
    second = run_audit(load_auditor_config(config), state)
    assert second.logs[0].error is None and second.logs[0].new_entries == 0
    append(20)
    third = run_audit(load_auditor_config(config), state)
    assert third.logs[0].error is None and third.logs[0].new_entries == 20
    assert third.logs[0].check is not None and third.logs[0].check.ok

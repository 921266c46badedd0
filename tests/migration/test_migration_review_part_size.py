"""Review of the migration against a legacy source with a subject owning millions of rows.

A batch part read all the rows of its subjects at once (with their values) and
held them until its store write, so one account owning 1.5 million watch-history
rows (a bot, or a hostile source) made ``migrate run`` die with a MemoryError
trace under a 1 GB memory limit (or be killed by the kernel without one).
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.config import Deployment
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.run import MAX_PART_ROWS
from bordergate.migration.source import open_source

_ROWS = 1_500_000


@pytest.mark.slow
def test_a_subject_owning_millions_of_rows_is_a_stable_refusal_not_a_crash(
        tmp_path: Path, deployment: Deployment) -> None:
    """Bad input from the source is a stable error code: with account 1 owning 1.5
    million watch-history rows, the real ``migrate run`` under a 1 GB address-space
    limit refuses with ``migration_part_too_large`` (exit 2, no trace) before reading
    more than :data:`MAX_PART_ROWS` rows of the part, and none of that subject's rows
    is deleted."""
    assert MAX_PART_ROWS < _ROWS
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=10, seed=44, dirty=0)
    source.close()
    with sqlite3.connect(db) as raw:
        raw.executemany("INSERT INTO watch_history VALUES (?, 1, 'lgcy-vid-0123456789', "
                        "'2024-01-01T00:00:00Z', 5, 'lgcy-dev-0123456789ab', 'na')",
                        ((100_000 + i,) for i in range(_ROWS)))
    raw.close()
    command = shlex.join([sys.executable, "-m", "bordergate", "migrate", "run", "--source",
                          url, "--config", str(deployment.path), "--no-progress",
                          "--no-parallel", "--json"])
    ran = subprocess.run(["bash", "-c", f"ulimit -v 1000000; exec {command}"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert "Traceback" not in ran.stderr, ran.stderr[-2000:]
    assert ran.returncode == 2, ran.stdout + ran.stderr[-2000:]
    assert json.loads(ran.stdout)["error"] == "migration_part_too_large"
    source = open_source(url)
    try:
        assert source.query("SELECT COUNT(*) FROM watch_history WHERE account_id = 1") == \
            [(_ROWS + 5,)]
        assert source.query("SELECT COUNT(*) FROM accounts WHERE id = 1") == [(1,)]
    finally:
        source.close()

"""Review of what ``migrate run`` prints when the legacy source holds bad bytes.

sqlite3 reports a TEXT value that is not UTF-8 as ``Could not decode to UTF-8
column 'bio' with text '...'``, quoting the value; the run wrapped that message
into its ``source_unavailable`` error (exit 3: "retry"), so a protected value of
the source was printed on standard output and error (in the JSON too), and the
operator was told to retry what can never succeed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.config import Deployment
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source


@pytest.mark.parametrize("mode", ["--no-parallel", "--parallel"])
def test_a_value_that_is_not_utf8_is_named_by_column_never_printed(
        tmp_path: Path, deployment: Deployment, mode: str) -> None:
    """Bad input is a stable error code, and no value of the source reaches the output:
    a profile whose bio is not UTF-8 makes the real ``migrate run`` (one process, and
    with a worker per home) fail with ``source_text_not_utf8`` (exit 2) naming the
    column, and neither standard output nor standard error holds the value."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=10, seed=46, dirty=0)
    source.close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE profiles SET bio = CAST(X'6C6763792D7365637265742D626F6479FF' "
                    "AS TEXT) WHERE id = 3")  # 'lgcy-secret-body' and a byte 0xff
    raw.close()
    ran = subprocess.run([sys.executable, "-m", "bordergate", "migrate", "run", "--source", url,
                          "--config", str(deployment.path), "--no-progress", "--json", mode],
                         capture_output=True, text=True, timeout=600, check=False)
    assert "secret-body" not in ran.stdout + ran.stderr
    assert ran.returncode == 2, ran.stdout + ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["error"] == "source_text_not_utf8" and "'bio'" in answer["message"]

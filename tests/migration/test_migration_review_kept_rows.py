"""Review of ``migrate verify`` against a legacy operator who keeps migrated rows.

``verify`` recounts the rows whose home the rule decides; rows whose home it
cannot decide are dirty, listed and allowed.  So the operator of the source
could keep (or restore from its own copy, after the deletion was logged) a
migrated person's rows with the country blanked, and ``verify`` listed them as
dirty rows left in place and said OK, while the ``legacy-deletion`` entries say
they were deleted.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from bordergate.config import Deployment
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source

_TABLES = {"accounts": "id", "profiles": "account_id", "watch_history": "account_id",
           "payments": "account_id", "messages": "sender_id"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_migrated_rows_restored_with_their_home_blanked_fail_verify(
        tmp_path: Path, deployment: Deployment) -> None:
    """The source keeps no migrated row: after a complete migration, the operator of the
    source puts one migrated account and its rows back from a copy taken before the
    run, with ``country`` blanked so that the home rule calls them dirty; the real
    ``migrate verify`` fails, saying the source holds rows and a subject that a home's
    store holds as migrated."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=30, seed=43, dirty=1)
    source.close()
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)  # the operator's own backup (no -wal: checkpointed on close)
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    clean = _cli("verify", "--source", url, "--config", str(deployment.path), "--json")
    assert clean.returncode == 0, clean.stdout
    with sqlite3.connect(db) as raw:
        raw.execute("ATTACH DATABASE ? AS copy", (str(copy),))
        for table, owner in _TABLES.items():
            raw.execute(f"INSERT INTO {table} SELECT * FROM copy.{table} "
                        f"WHERE {owner} = 7")
        raw.execute("UPDATE accounts SET country = NULL WHERE id = 7")
    raw.close()
    with sqlite3.connect(db) as raw:
        raw.execute("VACUUM")
    raw.close()
    checked = _cli("verify", "--source", url, "--config", str(deployment.path), "--json")
    result = json.loads(checked.stdout)
    assert checked.returncode == 1 and not result["ok"], result
    assert any(f.startswith("the source still holds 1 rows of accounts that ")
               for f in result["failures"]), result["failures"]
    assert any(f.startswith("the source still holds 5 rows of watch_history that ")
               for f in result["failures"]), result["failures"]
    assert any("subjects whose legacy id" in f for f in result["failures"]), result["failures"]

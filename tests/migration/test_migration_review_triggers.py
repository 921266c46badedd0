"""Review of the migration against a legacy source that runs code on deletion.

A legacy database often keeps what its applications delete (an audit or
"soft delete" trigger copying each deleted row into another table).  The
migration deleted each part's rows with plain DELETE statements and ``verify``
recounted only the mapped tables, so with such a trigger every migrated row was
copied, in clear, into a table of the same file while the ``legacy-deletion``
entries said deleted and ``migrate verify`` said OK.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.config import Deployment
from bordergate.errors import ConfigError
from bordergate.migration import run as run_module
from bordergate.migration.legacy import MARKER, generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.migration.conftest import HOMES, migrate

_KEEP = ("CREATE TABLE kept (id INTEGER, account_id INTEGER, video_ref TEXT); "
         "CREATE TRIGGER keep_deleted AFTER DELETE ON watch_history BEGIN "
         "INSERT INTO kept VALUES (OLD.id, OLD.account_id, OLD.video_ref); END;")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_a_trigger_that_keeps_deleted_rows_refuses_the_run(
        tmp_path: Path, deployment: Deployment) -> None:
    """Deleted means gone from the source: with a trigger on a mapped table that copies
    each deleted row into another table, the real ``migrate run`` refuses
    (``migration_source_triggers``, naming it) before logging or deleting anything,
    and ``migrate plan`` lists it.  Before the fix every watch-history row was copied
    into ``kept`` by the deletion, and verify said OK."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=47, dirty=0)
    source.close()
    with sqlite3.connect(db) as raw:
        raw.executescript(_KEEP)
    raw.close()
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress",
               "--json")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    refused = json.loads(ran.stdout)
    assert refused["error"] == "migration_source_triggers"
    assert "watch_history: keep_deleted" in refused["message"]
    for code in HOMES:
        assert not list(log_entries(deployment, code))
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT COUNT(*) FROM kept").fetchone() == (0,)
        assert raw.execute("SELECT COUNT(*) FROM watch_history").fetchone() == (100,)
    raw.close()
    planned = _cli("plan", "--source", url, "--config", str(deployment.path), "--json")
    assert json.loads(planned.stdout)["triggers"] == ["watch_history: keep_deleted"]


def test_a_trigger_added_during_the_run_stops_the_next_deletion(
        tmp_path: Path, deployment: Deployment) -> None:
    """A trigger created after the run started (between two parts) is found before the
    next part's deletion, which refuses; verify then fails naming the trigger, and
    lists the table it fills among the tables nothing here checks."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=47, dirty=0)
    source.close()
    original = run_module._Migration.delete_part
    calls: list[int] = []

    def then_a_trigger(self: run_module._Migration, row: run_module.JournalRow) -> None:
        calls.append(row.batch)
        if len(calls) == 2:
            with sqlite3.connect(db) as raw:
                raw.executescript(_KEEP)
            raw.close()
        original(self, row)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module._Migration, "delete_part", then_a_trigger)
        source = open_source(url)
        try:
            with pytest.raises(ConfigError) as refused:
                migrate(source, deployment, batch_subjects=10)
        finally:
            source.close()
    assert refused.value.code == "migration_source_triggers"
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT COUNT(*) FROM kept").fetchone() == (0,)
    raw.close()
    checked = _cli("verify", "--source", url, "--config", str(deployment.path), "--json")
    result = json.loads(checked.stdout)
    assert checked.returncode == 1
    assert any("keep_deleted" in f for f in result["failures"]), result["failures"]
    assert any("(kept)" in u for u in result["unverifiable"]), result["unverifiable"]
    assert MARKER.decode() not in checked.stdout

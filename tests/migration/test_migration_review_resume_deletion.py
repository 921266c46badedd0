"""Review of the migration's resumption: a part resumed after ``stored`` deletes only
what it stored.

The legacy business keeps running while it is being separated: rows are added to
the source between a run that was killed right after a part's store write
(journal state ``stored``) and the run that resumes it.  The resumed deletion read
the part's rows from the source again, so it deleted a row that was never
migrated, logged a ``legacy-deletion`` counting it, and ``migrate verify`` said OK
(docs/migration.md: nothing is deleted from the source before its home's copy is
durable and logged).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.config import Deployment
from bordergate.migration import run as run_module
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.migration.conftest import home_contents, migrate


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_a_resumed_deletion_never_deletes_a_row_added_after_the_store_write(
        tmp_path: Path, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is deleted from the source that its home did not store: when the real
    ``migrate run`` resumes a part stopped at ``stored`` and finds a row the legacy
    business added since for one of its subjects, it imports the part again (a retry)
    before deleting, so the row ends in its home; the ``legacy-deletion`` entry counts
    exactly the rows the last ``migration`` attempt logged, and ``migrate verify``
    passes.  Before the fix the row was deleted unmigrated and verify said OK."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    config = str(deployment.path)
    source = open_source(url)
    generate_legacy(source, users=40, seed=31, dirty=0)

    def killed(self: object, row: object) -> None:
        raise KeyboardInterrupt("killed after the store write")  # a kill at `stored`

    monkeypatch.setattr(run_module._Migration, "delete_part", killed)
    with pytest.raises(KeyboardInterrupt):
        migrate(source, deployment, batch_subjects=20)
    monkeypatch.undo()
    ((batch, home, lo, hi),) = [(b, h, r.lo, r.hi) for (b, h), r in source.journal().items()
                                if r.state == "stored"]
    # the legacy business, still running, records one more view by a subject of the part
    owner = next(k for k, c in source.query(
        "SELECT id, country FROM accounts WHERE id BETWEEN ? AND ? ORDER BY id", (lo, hi))
        if {"US": "us", "CA": "us", "DE": "eu", "FR": "eu", "IE": "eu", "ES": "eu",
            "CN": "cn"}[c] == home)
    with source.transaction() as cur:
        cur.execute("INSERT INTO watch_history VALUES (900001, ?, 'lgcy-vid-late', "
                    "'2024-01-01T00:00:00Z', 5, NULL, 'na')", (owner,))
    source.close()

    done = _cli("run", "--source", url, "--config", config, "--no-progress", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["retried"] == 1  # the part grew: imported again
    source = open_source(url)
    try:
        assert source.query("SELECT COUNT(*) FROM watch_history WHERE account_id = ?",
                            (owner,)) == [(0,)]
    finally:
        source.close()
    # the late row was migrated before it was deleted: it is in its home, sealed
    assert any('"lgcy-vid-late"' in values
               for (_, collection, values) in home_contents(deployment, home)
               if collection == "watch_history")
    entries = [e for _, e in log_entries(deployment, home)]
    migrated = {e.body["table"]: e.body for e in entries
                if e.type == "migration" and e.body["batch"] == batch
                and e.body["attempt"] == 2}
    (deletion,) = [e.body for e in entries
                   if e.type == "legacy-deletion" and e.body["batch"] == batch]
    assert set(deletion["tables"]) == set(migrated)
    for table, facts in deletion["tables"].items():
        assert [facts["rows"], facts["legacy_keys"]] == [
            migrated[table]["records"], migrated[table]["legacy_keys"]], table
    checked = _cli("verify", "--source", url, "--config", config, "--json")
    result = json.loads(checked.stdout)
    assert checked.returncode == 0 and result["ok"], result["failures"]


def test_verify_fails_a_deletion_of_rows_the_migration_never_logged(
        tmp_path: Path, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """``migrate verify`` checks that each ``legacy-deletion`` entry deleted exactly the
    rows (count and digest of legacy keys) the last ``migration`` entry of its batch
    and table logged: a migration tool (bug or compromise) that deletes a row it never
    migrated (here a dirty subject's, whose home is undecided) fails verify naming the
    batch and table, although the source no longer holds the row."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    made = generate_legacy(source, users=30, seed=32, dirty=1)
    dirty_key = int(made.dirty_accounts[0].rsplit("-", 1)[1])
    ((victim,),) = source.query("SELECT id FROM watch_history WHERE account_id = ? "
                                "ORDER BY id LIMIT 1", (dirty_key,))
    original = run_module._Migration.delete_part

    def also_deletes(self: run_module._Migration, row: run_module.JournalRow) -> None:
        if row.batch == 0 and row.home == "eu":
            self._stored_keys[(row.batch, row.home)]["watch_history"].append(victim)
        original(self, row)

    monkeypatch.setattr(run_module._Migration, "delete_part", also_deletes)
    migrate(source, deployment, batch_subjects=100)
    assert source.query("SELECT id FROM watch_history WHERE id = ?", (victim,)) == []
    source.close()
    checked = _cli("verify", "--source", url, "--config", str(deployment.path), "--json")
    result = json.loads(checked.stdout)
    assert checked.returncode == 1 and not result["ok"]
    assert any(f.startswith("batch 0 (watch_history -> eu): the legacy-deletion entry")
               for f in result["failures"]), result["failures"]

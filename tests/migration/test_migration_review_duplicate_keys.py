"""Review of the migration against a legacy source whose keys do not name one row each.

The mapping names each table's key (``key = "id"  # the row's primary key``), but
nothing checked that the source holds it unique: a source whose table has no
primary-key constraint (or SQLite's untyped columns, where 7 and '7' are two
values whose record id is the same) can hold two rows under one key.  A part
deletes its rows by key, so the part of one home deleted the row of a subject of
another home before that home's part migrated it, and ``migrate verify`` said OK;
two subjects sharing a legacy id were merged into one home subject.
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
from bordergate.migration.homes import open_home
from bordergate.migration.legacy import HOME_COUNTRIES, generate_legacy
from bordergate.migration.run import homes_needed, run_migration
from bordergate.migration.source import LegacySource, open_source
from bordergate.migration.verify import log_entries
from bordergate.residency.schema import load_schema
from tests.migration.conftest import HOMES, demo_mapping, plan_for


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def _without_primary_key(path: Path, table: str) -> None:
    """The legacy operator's table without its key constraint (as many old schemas are)."""
    db = sqlite3.connect(path)  # foreign keys off: the table is rebuilt in place
    try:
        with db:
            db.execute(f"CREATE TABLE bare AS SELECT * FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE bare RENAME TO {table}")
    finally:
        db.close()


def _subject_of_another_home(source: LegacySource, owner: int) -> int:
    homes = {k: HOME_COUNTRIES[c] for k, c in source.query("SELECT id, country FROM accounts")}
    return next(k for k, h in sorted(homes.items()) if h != homes[owner])


def test_a_key_two_rows_share_refuses_the_run_and_deletes_nothing(
        tmp_path: Path, deployment: Deployment) -> None:
    """A row is deleted only after its own home stored it: when two watch-history rows
    of subjects of different homes share a key, the real ``migrate run`` refuses with
    ``migration_keys_not_unique`` (naming the row) before logging or deleting anything,
    and both rows stay in the source.  Before the fix the first home's part deleted
    both, the other subject's row was never migrated, and verify said OK."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=3, dirty=0)
    _without_primary_key(tmp_path / "legacy.db", "watch_history")
    ((owner,),) = source.query("SELECT account_id FROM watch_history WHERE id = 7")
    other = _subject_of_another_home(source, owner)
    with source.transaction() as cur:
        cur.execute("INSERT INTO watch_history VALUES (7, ?, 'lgcy-vid-shared-key', "
                    "'2024-01-01T00:00:00Z', 5, NULL, 'na')", (other,))
    source.close()
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress",
               "--no-parallel", "--json")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["error"] == "migration_keys_not_unique"
    assert "watch_history/7" in json.loads(ran.stdout)["message"]
    source = open_source(url)
    try:
        assert sorted(source.query("SELECT account_id FROM watch_history WHERE id = 7")) == \
            sorted([(owner,), (other,)])
        assert source.query("SELECT COUNT(*) FROM accounts") == [(20,)]
    finally:
        source.close()
    for code in HOMES:
        assert not list(log_entries(deployment, code))
    planned = _cli("plan", "--source", url, "--config", str(deployment.path), "--json")
    assert {"row": "watch_history/7", "reason": "key of 2 rows"} in \
        json.loads(planned.stdout)["keys_not_unique"]


def test_a_key_shared_after_the_plan_makes_the_deletion_roll_back(
        tmp_path: Path, deployment: Deployment) -> None:
    """The same when the second row appears after the plan (the legacy business still
    running): the deletion of the part whose key now names two rows deletes more rows
    than it stored, so it rolls back and refuses (``migration_keys_not_unique``); the
    other home's row stays in the source and the part stays ``stored``."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=3, dirty=0)
    _without_primary_key(tmp_path / "legacy.db", "watch_history")
    plan = plan_for(source, deployment)
    ((owner,),) = source.query("SELECT account_id FROM watch_history WHERE id = 7")
    other = _subject_of_another_home(source, owner)
    with source.transaction() as cur:
        cur.execute("INSERT INTO watch_history VALUES (7, ?, 'lgcy-vid-shared-key', "
                    "'2024-01-01T00:00:00Z', 5, NULL, 'na')", (other,))
    homes = {code: open_home(deployment, code) for code in homes_needed(source, plan)}
    try:
        with pytest.raises(ConfigError) as refused:
            run_migration(source, demo_mapping(deployment), plan, homes,
                          schema=load_schema(deployment.schema_path))
    finally:
        for home in homes.values():
            home.close()
    assert refused.value.code == "migration_keys_not_unique"
    assert sorted(source.query("SELECT account_id FROM watch_history WHERE id = 7")) == \
        sorted([(owner,), (other,)])
    assert "stored" in {row.state for row in source.journal().values()}
    source.close()


def test_two_subjects_with_one_legacy_id_are_not_merged(
        tmp_path: Path, deployment: Deployment) -> None:
    """A legacy id names one person: two accounts of one home holding the same legacy id
    (in different batches) would become one home subject, each account's data then
    answered to the other on a subject access.  ``migrate run`` refuses
    (``migration_keys_not_unique``) without printing the legacy id, and nothing moves."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=3, dirty=0)
    homes = {k: HOME_COUNTRIES[c] for k, c in source.query("SELECT id, country FROM accounts")}
    source.close()
    with sqlite3.connect(tmp_path / "legacy.db") as raw:  # legacy_id without UNIQUE
        (ddl,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'accounts'").fetchone()
        raw.execute(ddl.replace("accounts", "bare", 1).replace(
            "legacy_id TEXT NOT NULL UNIQUE", "legacy_id TEXT NOT NULL"))
        raw.execute("INSERT INTO bare SELECT * FROM accounts")
        raw.execute("DROP TABLE accounts")
        raw.execute("ALTER TABLE bare RENAME TO accounts")
    raw.close()
    source = open_source(url)
    first = min(homes)
    twin = max(k for k, h in homes.items() if h == homes[first])
    ((legacy,),) = source.query("SELECT legacy_id FROM accounts WHERE id = ?", (first,))
    with source.transaction() as cur:
        cur.execute("UPDATE accounts SET legacy_id = ? WHERE id = ?", (legacy, twin))
    source.close()
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress",
               "--no-parallel", "--batch-subjects", "5", "--json")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["error"] == "migration_keys_not_unique"
    assert legacy not in ran.stdout + ran.stderr
    source = open_source(url)
    try:
        assert source.query("SELECT COUNT(*) FROM accounts") == [(20,)]
    finally:
        source.close()

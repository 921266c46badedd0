"""Review of the migration's routing by subject key: keys that are not integers.

Batches are ranges of integer subject keys, and the run read every subject key and
owner column through ``int()``.  A legacy source whose key column holds other
numbers (SQLite's NUMERIC or untyped columns, PostgreSQL's ``numeric``) made an
account keyed 1.5 the owner of subject 1's rows: a Canadian person's records
went to the EU home, under the other account's legacy id, and were deleted from
the source; and a row owned by 1.5 became subject 1's.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from bordergate.config import Deployment
from bordergate.migration.legacy import HOME_COUNTRIES, generate_legacy
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries
from tests.migration.conftest import HOMES, home_contents


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bordergate", "migrate", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def _numeric_account_keys(path: Path) -> None:
    """The accounts table with a NUMERIC key (it can hold 1 and 1.5 both)."""
    db = sqlite3.connect(path)
    try:
        with db:
            (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'accounts'"
                                ).fetchone()
            db.execute(ddl.replace("accounts", "bare", 1).replace(
                "id INTEGER PRIMARY KEY", "id NUMERIC PRIMARY KEY"))
            db.execute("INSERT INTO bare SELECT * FROM accounts")
            db.execute("DROP TABLE accounts")
            db.execute("ALTER TABLE bare RENAME TO accounts")
    finally:
        db.close()


def test_a_subject_keyed_one_and_a_half_does_not_take_subject_one_abroad(
        tmp_path: Path, deployment: Deployment) -> None:
    """Each person's rows go to their own home under their own legacy id: an account
    keyed 1.5 with country DE, next to account 1 (a North American), makes the real
    ``migrate run`` refuse (``migration_keys_not_unique``, naming accounts/1.5) before
    anything moves; before the fix account 1's rows went to the EU home as the other
    account's and were deleted from the source."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=3, dirty=0)
    ((country,),) = source.query("SELECT country FROM accounts WHERE id = 1")
    assert HOME_COUNTRIES[country] != "eu"
    source.close()
    _numeric_account_keys(db)
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO accounts VALUES (1.5, 'lgcy-user-other', 'other', "
                    "'other@lgcy-mail.example', NULL, NULL, 'DE', NULL, NULL, "
                    "'2020-01-01T00:00:00Z', 'x')")
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress",
               "--no-parallel", "--json")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    refused = json.loads(ran.stdout)
    assert refused["error"] == "migration_keys_not_unique"
    assert "accounts/1.5" in refused["message"]
    assert not any(legacy == "lgcy-user-0000001" for legacy, _, _ in
                   home_contents(deployment, "eu"))
    source = open_source(url)
    try:
        assert source.query("SELECT COUNT(*) FROM payments WHERE account_id = 1") == [(1,)]
    finally:
        source.close()
    for code in HOMES:
        assert not list(log_entries(deployment, code))


def test_a_row_owned_by_one_and_a_half_stays_in_the_source_as_dirty(
        tmp_path: Path, deployment: Deployment) -> None:
    """A row is migrated only as the record of the subject its owner column names: a
    payment whose owner is 1.5 (no such account) is listed as a dirty row and stays in
    the source; it is not migrated as account 1's record."""
    db = tmp_path / "legacy.db"
    url = f"sqlite:{db}"
    source = open_source(url)
    generate_legacy(source, users=20, seed=3, dirty=0)
    ((home,),) = source.query("SELECT country FROM accounts WHERE id = 1")
    source.close()
    with sqlite3.connect(db) as raw:  # foreign keys off: the operator's own console
        raw.execute("INSERT INTO payments VALUES (9001, 1.5, 4242, 'USD', "
                    "'2024-01-01T00:00:00Z', '4242', 'lgcy-tax-not-account-one')")
    planned = _cli("plan", "--source", url, "--config", str(deployment.path), "--json")
    plan = json.loads(planned.stdout)
    assert {"row": "payments/9001", "reason": "owner_not_a_subject"} in plan["dirty"]["rows"]
    assert plan["dirty"]["per_table"] == {"payments": 1}
    ran = _cli("run", "--source", url, "--config", str(deployment.path), "--no-progress",
               "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    source = open_source(url)
    try:
        assert source.query("SELECT id FROM payments") == [(9001,)]
    finally:
        source.close()
    assert not any("lgcy-tax-not-account-one" in values for _, _, values in
                   home_contents(deployment, HOME_COUNTRIES[home]))

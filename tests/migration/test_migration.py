"""Issue 15 acceptance: a legacy global database moved into its homes, with evidence.

Every test names the promise or behaviour it checks (docs/migration.md).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from bordergate.config import Deployment
from bordergate.errors import ConfigError
from bordergate.migration.homes import open_home
from bordergate.migration.legacy import MARKER, generate_legacy
from bordergate.migration.mapping import demo_mapping_path, parse_mapping
from bordergate.migration.plan import make_plan
from bordergate.migration.run import homes_needed, run_migration
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries, verify_migration
from bordergate.residency.schema import load_schema
from tests.migration.conftest import (
    HOMES,
    demo_mapping,
    home_contents,
    migrate,
    plan_for,
    store_and_log_files,
)

_LEGACY_ID = re.compile(rb"lgcy-user-(\d{7})")


def _verify(source_url: str, deployment: Deployment) -> dict[str, object]:
    source = open_source(source_url)
    homes = {code: open_home(deployment, code, write=False) for code in HOMES}
    try:
        return verify_migration(source, demo_mapping(deployment), deployment, homes).to_json()
    finally:
        for home in homes.values():
            home.close()
        source.close()


def _source_legacy_ids(path: Path) -> set[int]:
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return {int(m) for m in _LEGACY_ID.findall(data)}


@pytest.mark.slow
def test_hundred_thousand_records_across_three_homes(tmp_path: Path,
                                                     deployment: Deployment) -> None:
    """Promises 1 and 8, issue 15: 100,000 records migrate completely into 3 homes; every
    protected value ends only in its home store, sealed (raw scan of every store, log and
    key file); the source file holds none of the migrated rows after the vacuum (raw
    scan), the dirty rows stay; verify passes."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    made = generate_legacy(source, users=10_000, seed=15)
    plan = plan_for(source, deployment)
    assert plan.records == 100_000
    assert set(plan.homes) == set(HOMES)
    report = migrate(source, deployment)
    assert report.records == 100_000
    counts = {code: sum(home_contents(deployment, code).values()) for code in HOMES}
    assert counts == {code: plan.homes[code].records for code in HOMES}
    for path in store_and_log_files(deployment):
        assert MARKER not in path.read_bytes(), f"a legacy value in clear in {path}"
    dirty = {int(i.rsplit("-", 1)[1]) for i in made.dirty_accounts}
    assert _source_legacy_ids(tmp_path / "legacy.db") == dirty
    assert source.query("SELECT COUNT(*) FROM accounts")[0][0] == len(dirty)
    source.close()
    result = _verify(url, deployment)
    assert result["ok"], result["failures"]


def test_dirty_rows_are_reported_and_left_in_place(tmp_path: Path,
                                                   deployment: Deployment) -> None:
    """Issue 15: rows with no determinable home (no country, an unknown one, no owner)
    are listed by legacy id or row, never guessed, and stay in the source untouched."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    made = generate_legacy(source, users=60, seed=3, dirty=3)
    before = {t: source.query(f"SELECT * FROM {t} ORDER BY id")
              for t in ("accounts", "watch_history")}
    plan = plan_for(source, deployment)
    assert sorted(i for i, _ in plan.dirty_subjects) == sorted(made.dirty_accounts)
    assert [r for r, _ in plan.dirty_rows] == [
        f"watch_history/{k}" for k in range(60 * 5 + 6 * 5 + 1, 60 * 5 + 6 * 5 + 4)]
    migrate(source, deployment)
    again = migrate(source, deployment)  # run again after the end: nothing left, no home
    assert (again.records, again.batches_done_before) == (0, again.batches)
    dirty_keys = {int(i.rsplit("-", 1)[1]) for i in made.dirty_accounts}
    assert source.query("SELECT * FROM accounts ORDER BY id") == [
        r for r in before["accounts"] if r[0] in dirty_keys]
    left = source.query("SELECT * FROM watch_history ORDER BY id")
    assert left == [r for r in before["watch_history"] if r[1] is None or r[1] in dirty_keys]
    source.close()
    result = _verify(url, deployment)
    assert result["ok"], result["failures"]
    assert result["dirty_in_source"]["rows_left_in_place"] == 3 * 2 * 10 + 3


def test_unmapped_column_refuses_the_run(tmp_path: Path, deployment: Deployment) -> None:
    """Issue 15: a source column no schema field maps and the mapping does not drop makes
    `run` refuse (migration_unmapped_columns) before anything is logged or deleted."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=20, seed=4)
    schema = load_schema(deployment.schema_path)
    text = demo_mapping_path().read_text()
    without_drop = re.sub(r"^drop = .*$", "", text, flags=re.MULTILINE)
    mapping = parse_mapping(without_drop.encode(), schema)
    plan = make_plan(source, mapping, schema)
    assert [f"{c.table}.{c.column}" for c in plan.unmapped] == ["accounts.ad_segment"]
    homes = {code: open_home(deployment, code) for code in plan.homes}
    try:
        with pytest.raises(ConfigError) as refused:
            run_migration(source, mapping, plan, homes, schema=schema)
    finally:
        for home in homes.values():
            home.close()
    assert refused.value.code == "migration_unmapped_columns"
    assert source.journal() == {}
    assert source.query("SELECT COUNT(*) FROM accounts")[0][0] == 20 + 4
    for code in HOMES:
        assert not list(log_entries(deployment, code))


def test_tampered_home_store_fails_verify_naming_the_batch(tmp_path: Path,
                                                          deployment: Deployment) -> None:
    """Issue 15: a record deleted from a home store after the migration makes
    `migrate verify` fail, naming the batch whose logged Merkle root no longer matches."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=120, seed=5)
    migrate(source, deployment, batch_subjects=40)
    source.close()
    assert _verify(url, deployment)["ok"]
    store = deployment.jurisdiction("eu").store.removeprefix("sqlite:")
    path = deployment.jurisdiction("eu").log.key_file.parent.parent.parent / store
    with sqlite3.connect(path) as db:
        (record,) = db.execute("SELECT record_id FROM records WHERE collection = 'payments' "
                               "AND record_id LIKE 'm2-%' LIMIT 1").fetchone()
        db.execute("DELETE FROM records WHERE record_id = ?", (record,))
    result = _verify(url, deployment)
    assert not result["ok"]
    assert any(f.startswith("batch 2 (payments -> eu): 1 migrated records missing")
               for f in result["failures"]), result["failures"]


def test_every_entry_is_evidence_without_personal_data(tmp_path: Path,
                                                       deployment: Deployment) -> None:
    """Promises 3 and 7: each home's log has, per batch and table, a `migration` entry with
    allowed write decisions and digests only, and a `legacy-deletion` entry after it; no
    raw legacy id or value appears in any entry."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=50, seed=6)
    migrate(source, deployment, batch_subjects=25)
    source.close()
    for code in HOMES:
        entries = list(log_entries(deployment, code))
        migrated = {e.body["batch"] for _, e in entries if e.type == "migration"}
        deleted = [e.body["batch"] for _, e in entries if e.type == "legacy-deletion"]
        assert sorted(deleted) == sorted(migrated) == [0, 1]  # batch 2: only dirty subjects
        for at, (_, deletion) in enumerate(entries):
            if deletion.type == "legacy-deletion":
                logged = [i for i, (_, e) in enumerate(entries)
                          if e.type == "migration" and e.body["batch"] == deletion["batch"]]
                assert logged and max(logged) < at  # deleted only after logged
                assert deletion["rows"] == sum(entries[i][1]["records"] for i in logged)
        for _, entry in entries:
            assert b"lgcy" not in json.dumps(entry.body).encode()
            if entry.type == "migration":
                assert entry.body["outcome"] == "allow"
                assert entry.body["retry"] is False
                assert {d["field"] for d in entry.body["decisions"]} == set(
                    entry.body["fields"])


def test_each_custodian_runs_its_own_part(tmp_path: Path, deployment: Deployment) -> None:
    """Issue 15: the plan is split per home: a run for one home opens only that home's
    store, keys and log, migrates and deletes only its subjects' rows, and logs only in
    its log; the other custodians' runs finish the separation, and verify passes."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=90, seed=10)
    schema = load_schema(deployment.schema_path)
    mapping = demo_mapping(deployment)
    plan = plan_for(source, deployment, batch_subjects=30)
    assert homes_needed(source, plan, "us") == {"us"}
    for step, code in enumerate(("us", "eu", "cn")):
        home = open_home(deployment, code)
        try:
            run_migration(source, mapping, plan_for(source, deployment, 30), {code: home},
                          schema=schema, only=code)
        finally:
            home.close()
        left = plan_for(source, deployment, 30)
        assert set(left.homes) == set(("us", "eu", "cn")[step + 1:])
        for other in ("us", "eu", "cn")[step + 1:]:
            assert not list(log_entries(deployment, other))
    source.close()
    result = _verify(url, deployment)
    assert result["ok"], result["failures"]


def test_a_manifest_in_the_earlier_row_layout_is_still_read_and_replaced(
        tmp_path: Path) -> None:
    """Issue 15, resumable across an upgrade: a journal whose manifest an earlier
    version wrote one row per record is still read by ``verify``; a part stored again
    replaces its earlier rows (no record counted twice), and the new layout (one row
    per part and table) reads back the same pairs."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=5, seed=1)
    source.start_journal([(1, "us", 0, 10), (2, "eu", 10, 20)])
    with source.transaction() as cur:
        cur.execute("CREATE TABLE bordergate_migration_manifest (batch INTEGER NOT NULL, "
                    "home TEXT NOT NULL, source_table TEXT NOT NULL, record TEXT NOT NULL, "
                    "subject TEXT NOT NULL)")
        cur.executemany("INSERT INTO bordergate_migration_manifest VALUES (?, ?, ?, ?, ?)",
                        [(1, "us", "accounts", "record:a1", "subject:s1"),
                         (2, "eu", "accounts", "record:b1", "subject:s2")])
    assert sorted(source.manifest()) == [(1, "us", "accounts", "record:a1", "subject:s1"),
                                         (2, "eu", "accounts", "record:b1", "subject:s2")]
    with source.transaction() as cur:
        source.set_manifest(cur, 1, "us", [("us", "accounts", "record:a1", "subject:s1"),
                                           ("us", "payments", "record:a2", "subject:s1")])
    assert sorted(source.manifest()) == [(1, "us", "accounts", "record:a1", "subject:s1"),
                                         (1, "us", "payments", "record:a2", "subject:s1"),
                                         (2, "eu", "accounts", "record:b1", "subject:s2")]
    with pytest.raises(ValueError), source.transaction() as cur:
        source.set_manifest(cur, 2, "eu", [("eu", "accounts", "record:x y", "subject:s2")])
    source.close()

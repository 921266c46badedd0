"""Issue 15: a PostgreSQL legacy source, against a real server (tests/postgres_server.py)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from bordergate.config import Deployment
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source
from tests.migration.conftest import HOMES, home_contents, migrate, plan_for
from tests.migration.test_migration import _verify
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

_LEGACY_ID = re.compile(rb"lgcy-user-(\d{7})")


def _relation_bytes(server: PostgresServer, url: str) -> bytes:
    """The bytes of every file of the source database's tables and indexes."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        paths = [r[0] for r in conn.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', "
            "'t') AND pg_relation_filepath(c.oid) IS NOT NULL")]
    data = b""
    for relative in paths:
        for segment in (server.data / relative).parent.glob(Path(relative).name + "*"):
            data += segment.read_bytes()
    return data


def test_postgres_source_migrates_completely_and_vacuums(
        postgres_server: PostgresServer, postgres_url: str, deployment: Deployment) -> None:
    """Promises 1 and 8, issue 15: a PostgreSQL source migrates into 3 homes like a SQLite
    one; afterwards it holds only the dirty rows, its table files (after VACUUM FULL and a
    checkpoint) hold none of the migrated rows, and verify passes while listing what it
    cannot verify (WAL, replicas, backups)."""
    source = open_source(postgres_url)
    made = generate_legacy(source, users=300, seed=9)
    plan = plan_for(source, deployment)
    migrate(source, deployment, batch_subjects=100)
    dirty = {int(i.rsplit("-", 1)[1]) for i in made.dirty_accounts}
    assert {r[0] for r in source.query("SELECT id FROM accounts")} == dirty
    source.close()
    for code in HOMES:
        assert sum(home_contents(deployment, code).values()) == plan.homes[code].records
    found = {int(m) for m in _LEGACY_ID.findall(_relation_bytes(postgres_server,
                                                                postgres_url))}
    assert found == dirty
    result = _verify(postgres_url, deployment)
    assert result["ok"], result["failures"]
    assert any("WAL" in what for what in result["unverifiable"])  # type: ignore[union-attr]

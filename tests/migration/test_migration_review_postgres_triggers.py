"""Review: triggers, rules and cascading foreign keys of a PostgreSQL legacy source
(tests/postgres_server.py), as tests/migration/test_migration_review_triggers.py and
test_migration_review_cascades.py show them for SQLite."""

from __future__ import annotations

import pytest

from bordergate.config import Deployment
from bordergate.errors import ConfigError
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.source import open_source
from tests.migration.conftest import plan_for

pytestmark = pytest.mark.postgres


def test_postgres_triggers_rules_and_cascades_on_mapped_tables_refuse_the_run(
        postgres_url: str, deployment: Deployment) -> None:
    """Deleted means gone, and only migrated rows are deleted: on a PostgreSQL source, a
    trigger copying deleted watch-history rows, a rule turning deletions of payments into
    nothing, and a foreign key from an unmapped table cascading from ``accounts`` are each
    listed by the plan, and the plan is not runnable (``migration_source_triggers``)."""
    source = open_source(postgres_url)
    try:
        generate_legacy(source, users=20, seed=49)
        with source.transaction() as cur:
            cur.execute("CREATE TABLE kept (id INTEGER, video_ref TEXT)")
            cur.execute("CREATE FUNCTION keep_row() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        "BEGIN INSERT INTO kept VALUES (OLD.id, OLD.video_ref); RETURN OLD; "
                        "END $$")
            cur.execute("CREATE TRIGGER keep_deleted AFTER DELETE ON watch_history "
                        "FOR EACH ROW EXECUTE FUNCTION keep_row()")
            cur.execute("CREATE RULE never_delete AS ON DELETE TO payments DO INSTEAD NOTHING")
            cur.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, account_id INTEGER "
                        "REFERENCES accounts(id) ON DELETE CASCADE, note TEXT)")
        plan = plan_for(source, deployment)
        assert "watch_history: keep_deleted" in plan.triggers
        assert "payments: never_delete" in plan.triggers
        assert "notes: foreign key to accounts ON DELETE CASCADE" in plan.triggers
        with pytest.raises(ConfigError) as refused:
            plan.require_runnable()
        assert refused.value.code == "migration_source_triggers"
    finally:
        source.close()

"""An erasure beside a write on PostgreSQL must delete the write's rows too (promise 8).

Found by the residency review.  The PostgreSQL store runs at READ COMMITTED:
an erasure's ``DELETE`` statements do not see rows a concurrent write has
inserted but not yet committed, and a row the write locked is re-checked, not
re-found.  So an erasure that ran while a write of the same subject was between
its inserts and its commit deleted the old field rows and the record row, and
left the write's new field rows (the subject's sealed values) in the live
database, owned by no record, after answering that the subject's rows were
gone.  Every change of one subject now takes that subject's advisory lock
first, so the erasure runs wholly before or wholly after the write.

The interleaving is forced with a trigger that holds the write's transaction
open after it inserted the ``email`` row (the time a loaded database takes).
Keys are TEST-ONLY (tests/residency/conftest.py).
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from bordergate.residency.schema import Schema
from bordergate.residency.stores.postgres import PostgresRecordStore
from tests.postgres_server import PostgresServer
from tests.residency.conftest import make_vault

USER = {"handle": "pg", "email": "before@example.test", "created_at": "2024-01-01T00:00:00Z",
        "government_id": "GOV-PG-1"}
SLOW = """
CREATE FUNCTION slow_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.record_id = 'slow' AND NEW.field = 'email' THEN PERFORM pg_sleep(1.5); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER slow_email AFTER INSERT ON record_fields FOR EACH ROW
  EXECUTE FUNCTION slow_email();
"""


@pytest.mark.postgres
def test_an_erasure_beside_a_write_leaves_no_row_of_the_subject(
        postgres_server: PostgresServer, demo_schema: Schema) -> None:
    """Promise 8 on PostgreSQL: an erasure that starts while a write of the same
    subject is in its transaction leaves no record and no field row of the subject."""
    url = postgres_server.database(prefix="us")
    store = PostgresRecordStore(url, jurisdiction="us", pool_size=4)
    try:
        vault = make_vault(demo_schema, store)
        subject = vault.mint_subject()
        vault.put("users", "slow", subject, USER)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SLOW)  # type: ignore[arg-type]
        failures: list[BaseException] = []

        def write() -> None:
            try:
                vault.put("users", "slow", subject, {**USER, "email": "during@example.test"})
            except BaseException as exc:
                failures.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)  # the write is inside its transaction, after the email row
        report = vault.erase(subject)
        writer.join(30)
        assert not failures, failures
        assert report.data_key_destroyed
        with psycopg.connect(url, autocommit=True) as conn:
            records = conn.execute("SELECT count(*) FROM records").fetchone()
            fields = conn.execute("SELECT field FROM record_fields").fetchall()
        assert records == (0,)
        assert fields == [], f"field rows of the erased subject left: {fields}"
        assert store.subject_records(subject) == []
    finally:
        store.close()

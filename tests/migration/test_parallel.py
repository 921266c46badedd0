"""`migrate run` with one worker process per home (bordergate.migration.parallel):
a worker's failure reaches the caller with its class and code, fails closed, and a
new run finishes the job."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bordergate.config import Deployment
from bordergate.errors import InvalidInput
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.parallel import run_parallel
from bordergate.migration.source import open_source
from bordergate.residency.schema import load_schema
from tests.migration.conftest import (
    HOMES,
    demo_mapping,
    home_contents,
    one_process_run,
    plan_for,
)


def _states(url: str) -> dict[tuple[int, str], str]:
    source = open_source(url)
    try:
        return {key: row.state for key, row in source.journal().items()}
    finally:
        source.close()


def test_a_failing_home_worker_fails_the_run_closed_and_a_new_run_finishes(
        tmp_path: Path, deployment: Deployment) -> None:
    """Issue 15, faults fail closed: an EU account whose handle is too long for the
    schema makes the EU worker fail with ``value_too_large``; the run raises that
    error (class and code), the other homes' workers finish their parts, no EU part
    from the failing batch on is deleted from the source, and nothing is compacted
    away.  Once the value is repaired a new run finishes: each home then holds
    exactly what a one-process run of the same data gives."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=120, seed=4)
    source.close()
    db = sqlite3.connect(tmp_path / "legacy.db")
    bad = db.execute("SELECT id, handle FROM accounts WHERE country = 'DE' "
                     "ORDER BY id LIMIT 1").fetchone()
    db.execute("UPDATE accounts SET handle = ? WHERE id = ?", ("x" * 5000, bad[0]))
    db.commit()
    db.close()

    source = open_source(url)
    plan = plan_for(source, deployment, batch_subjects=20)
    source.close()
    schema = load_schema(deployment.schema_path)
    with pytest.raises(InvalidInput) as raised:
        run_parallel(url, deployment, demo_mapping(deployment), plan, schema=schema)
    assert raised.value.code == "value_too_large"
    states = _states(url)
    assert all(state == "done" for (_, home), state in states.items() if home != "eu")
    failed = min(batch for (batch, home), state in states.items()
                 if home == "eu" and state != "done")
    db = sqlite3.connect(tmp_path / "legacy.db")
    assert db.execute("SELECT count(*) FROM accounts WHERE id = ?", (bad[0],)).fetchone() == (1,)
    db.execute("UPDATE accounts SET handle = ? WHERE id = ?", (bad[1], bad[0]))
    db.commit()
    db.close()
    assert states[(failed, "eu")] == "started"  # counted, never stored

    source = open_source(url)
    plan = plan_for(source, deployment, batch_subjects=20)
    source.close()
    run_parallel(url, deployment, demo_mapping(deployment), plan, schema=schema)
    assert set(_states(url).values()) == {"done"}

    clean_deployment = one_process_run(tmp_path / "clean", users=120, seed=4,
                                       batch_subjects=20)
    for code in HOMES:
        assert home_contents(deployment, code) == home_contents(clean_deployment, code)

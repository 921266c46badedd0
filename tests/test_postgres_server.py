"""The suite's own PostgreSQL server starts for real and hands out databases."""

from __future__ import annotations

import psycopg
import pytest


@pytest.mark.postgres
def test_real_server_answers(postgres_url: str) -> None:
    """Behaviour: the PostgreSQL backends are tested against a real server."""
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("select version()").fetchone()
    assert row is not None and "PostgreSQL" in row[0]

"""One shared connection to a jurisdiction's PostgreSQL database, for the small
tables that live beside its records (approvals, privacy budgets, bulk counters):
the PostgreSQL twin of :mod:`bordergate.sqlite_connections`.

The connection is autocommit and used by one thread at a time (an in-process
lock); the caller's DDL runs when it is opened, under :data:`DDL_LOCK` (several
workers start together); every ``psycopg`` error becomes
:class:`~bordergate.errors.Unavailable` (``store_unavailable``) naming the table's
owner, so a caller fails closed.  This module must never choose a database or a
schema: callers pass both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bordergate.errors import Unavailable

__all__ = ["DDL_LOCK", "SharedConnection"]

#: The advisory lock every first-time DDL of a jurisdiction's database holds:
#: workers starting together would otherwise race on ``CREATE TABLE IF NOT
#: EXISTS`` (PostgreSQL then fails one with ``UniqueViolation`` on its catalog).
DDL_LOCK = 7193502


class SharedConnection:
    """An autocommit connection to ``url`` for ``what`` ("approvals store", ...)."""

    def __init__(self, url: str, *, ddl: Sequence[str], what: str) -> None:
        """Connect and run ``ddl`` (``CREATE ... IF NOT EXISTS`` statements).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        import psycopg

        self._what = what
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(url, autocommit=True)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
                for statement in ddl:
                    self._conn.execute(statement)
        except psycopg.Error as exc:
            raise Unavailable(f"{what} unreachable: {type(exc).__name__}",
                              code="store_unavailable") from exc

    @contextmanager
    def using(self, *, transaction: bool = False) -> Iterator[Any]:
        """The connection, this thread's alone while the block runs; with
        ``transaction``, inside one transaction (committed when the block ends,
        rolled back when it raises).

        Raises:
            Unavailable: ``store_unavailable`` for any database error.
        """
        import psycopg

        try:
            with self._lock:
                if transaction:
                    with self._conn.transaction():
                        yield self._conn
                else:
                    yield self._conn
        except psycopg.Error as exc:
            raise Unavailable(f"{self._what} failed: {type(exc).__name__}",
                              code="store_unavailable") from exc

    def close(self) -> None:
        self._conn.close()

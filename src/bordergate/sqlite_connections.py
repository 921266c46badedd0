"""Per-thread connections to one SQLite file, for the small tables that live beside
a jurisdiction's records (approval subjects, privacy budgets).

Each thread gets its own autocommit connection (transactions are explicit), and any
``sqlite3`` error becomes :class:`~bordergate.errors.Unavailable`
(``store_unavailable``), so a caller fails closed.  This module must never choose a
file or a schema: callers pass both.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bordergate.errors import Unavailable

__all__ = ["ThreadConnections"]

T = TypeVar("T")


class ThreadConnections:
    """One SQLite connection per thread to ``path``; ``what`` names the table's owner
    in errors ("approval subject ledger", "privacy budget store")."""

    def __init__(self, path: str | Path, *, what: str, timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._what = what
        self._timeout_s = timeout_s
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=self._timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
            self._local.conn = conn
        return conn

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)``.

        Raises:
            Unavailable: ``store_unavailable`` on any SQLite error.
        """
        try:
            return work(self.connection())
        except sqlite3.Error as exc:
            raise Unavailable(f"{self._what} failed: {type(exc).__name__}",
                              code="store_unavailable") from exc

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

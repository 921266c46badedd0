"""SQLite backend of the witness state: the latest cosigned checkpoint per log, durably.

Every write is committed with ``synchronous=FULL`` (WAL journal) before
:meth:`SqliteWitnessState.compare_and_set` returns, so a witness answers only
after its new state survives a crash or power loss (promise 5: the witness
never cosigns two inconsistent checkpoints, even across restarts).  The
compare-and-set runs inside one ``BEGIN IMMEDIATE`` transaction, which makes
the check of the old state and the write atomic even between processes.

This module must never decide what to cosign; it only stores.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from bordergate.errors import Unavailable
from bordergate.tlog.witness import LogState, StateChange

__all__ = ["SqliteWitnessState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS witness_log (
    origin TEXT PRIMARY KEY,
    size   INTEGER NOT NULL,
    root   BLOB    NOT NULL,
    note   BLOB    NOT NULL
)
"""


class SqliteWitnessState:
    """The witness's per-log state in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the state database at ``path``.

        Raises:
            Unavailable: the database cannot be opened.
        """
        try:
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open witness state {path}: {exc}") from exc
        self._lock = threading.Lock()

    def get(self, origin: str) -> LogState | None:
        """The latest cosigned checkpoint of ``origin``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, root, note FROM witness_log WHERE origin = ?", (origin,)
            ).fetchone()
        if row is None:
            return None
        return LogState(int(row[0]), bytes(row[1]), bytes(row[2]))

    def compare_and_set(self, changes: Sequence[StateChange]) -> bool:
        """Apply all changes in one transaction if each expected state holds; durable.

        Raises:
            Unavailable: the write or the commit failed (nothing was changed).
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    applied = self._apply(changes)
                    self._db.execute("COMMIT" if applied else "ROLLBACK")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise Unavailable(f"witness state write failed: {exc}") from exc
        return applied

    def _apply(self, changes: Sequence[StateChange]) -> bool:
        for change in changes:
            row = self._db.execute(
                "SELECT size, root, note FROM witness_log WHERE origin = ?", (change.origin,)
            ).fetchone()
            current = None if row is None else LogState(int(row[0]), bytes(row[1]), bytes(row[2]))
            if current != change.expected:
                return False
            new = change.new
            self._db.execute(
                "INSERT INTO witness_log (origin, size, root, note) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(origin) DO UPDATE SET"
                " size = excluded.size, root = excluded.root, note = excluded.note",
                (change.origin, new.size, new.root, new.note),
            )
        return True

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

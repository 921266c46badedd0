"""PostgreSQL log storage: tiles, bundles, checkpoint and WAL batches as rows.

Several logs may share one database; every row is keyed by the log's name.
The single-writer role is a session-level advisory lock held on a dedicated
connection for as long as the writer lives.  The other connection is shared by
the sequencer's threads (writer, publisher, readers): one lock serialises its
use, so that no statement of one thread runs inside another's transaction and
the buffer ``sync`` writes is swapped whole.  ``put`` buffers; ``sync`` writes
the buffer in one committed transaction; the checkpoint is an upsert.  Any
database failure surfaces as :class:`~bordergate.errors.Unavailable` (fail
closed), never a raw driver error.

This module must never interpret entries or sign anything.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from bordergate.errors import Conflict, Unavailable
from bordergate.tlog.storage.layout import CHECKPOINT_PATH, check_object_path
from bordergate.tlog.storage.wal import WalBatch
from bordergate.tlog.tiles import TileRef, decode_bundle, parse_path

__all__ = ["PostgresStorage"]

#: Held while the tables are created: several processes may open a new log at once,
#: and PostgreSQL fails a racing ``CREATE TABLE IF NOT EXISTS`` with ``UniqueViolation``.
_DDL_LOCK = 7193503

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tlog_object (
    log text NOT NULL, path text NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (log, path));
CREATE TABLE IF NOT EXISTS tlog_wal (
    log text NOT NULL, first bigint NOT NULL, count integer NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (log, first));
CREATE TABLE IF NOT EXISTS tlog_content (
    log text NOT NULL, path text NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (log, path));
"""

#: Write-ahead records read per query at recovery.
_REPLAY_PAGE = 256


class PostgresStorage:
    """A log kept in PostgreSQL tables (see the module docstring)."""

    def __init__(self, url: str, *, log: str = "default") -> None:
        self.url = url
        self.log = log
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._pending: dict[str, bytes] = {}
        self._pending_wal: list[tuple[int, int, bytes]] = []
        self._mutex = threading.RLock()  # guards _conn and the buffers (module docstring)
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"bordergate.tlog:{log}".encode()).digest()[:8], "big", signed=True)

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                with self._conn.transaction():  # processes opening a new log together
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                    self._conn.execute(_SCHEMA)
            except psycopg.Error as e:
                self._conn = None
                raise Unavailable(f"log database unreachable: {e}", code="log_unavailable") from e
        return self._conn

    def acquire_writer(self) -> None:
        """Take the log's advisory lock; a second writer gets :class:`Conflict`."""
        if self._lock_conn is not None:
            return
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
        except psycopg.Error as e:
            raise Unavailable(f"log database unreachable: {e}", code="log_unavailable") from e
        if not row or not row[0]:
            conn.close()
            raise Conflict(f"log {self.log!r} already has a writer (advisory lock held)",
                           code="log_writer_busy")
        self._lock_conn = conn

    def release_writer(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.close()  # ends the session and its advisory lock
            self._lock_conn = None

    def _check_writer(self) -> None:
        # a lost lock connection means another writer may now exist: stop writing
        if self._lock_conn is None or self._lock_conn.closed:
            raise Unavailable("log writer lock lost", code="log_unwritable")

    def wal_append(self, first: int, count: int, encoded: bytes) -> None:
        """Buffer a small batch; it is written by :meth:`sync`."""
        with self._mutex:
            self._pending_wal.append((first, count, encoded))

    def wal_replay(self, start: int) -> Iterator[WalBatch]:
        """The records, read ``_REPLAY_PAGE`` at a time in ``first`` order (a log whose
        checkpoints stalled may hold many): memory stays bounded by a page."""
        after = -1
        while True:
            try:
                with self._mutex:
                    rows = self._db().execute(
                        "SELECT first, count, data FROM tlog_wal WHERE log = %s "
                        "AND first + count > %s AND first > %s ORDER BY first LIMIT %s",
                        (self.log, start, after, _REPLAY_PAGE)).fetchall()
            except psycopg.Error as e:
                raise Unavailable(f"log database unreachable: {e}",
                                  code="log_unavailable") from e
            for first, count, data in rows:
                yield int(first), decode_bundle(bytes(data), int(count))
            if len(rows) < _REPLAY_PAGE:
                return
            after = int(rows[-1][0])

    def wal_trim(self, below: int) -> None:
        with self._mutex:
            try:
                self._db().execute("DELETE FROM tlog_wal WHERE log = %s AND first + count <= %s",
                                   (self.log, below))
            except psycopg.Error as e:
                raise Unavailable(f"log write-ahead trim failed: {e}", code="log_unwritable") from e

    def put(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Buffer tiles; they are written by :meth:`sync`."""
        with self._mutex:
            for path, data in items:
                self._pending[path] = data

    def sync(self) -> None:
        """Write every buffered tile and write-ahead record in one committed transaction.

        Raises:
            Unavailable: the database refused it.
        """
        with self._mutex:
            pending, self._pending = self._pending, {}
            wal, self._pending_wal = self._pending_wal, []
            self._commit(pending, wal)

    def sync_wal(self) -> None:
        """Write every buffered write-ahead record in one committed transaction
        (buffered tiles wait for the next :meth:`sync`).

        Raises:
            Unavailable: the database refused it.
        """
        with self._mutex:
            wal, self._pending_wal = self._pending_wal, []
            self._commit({}, wal)

    def _commit(self, pending: dict[str, bytes], wal: list[tuple[int, int, bytes]]) -> None:
        """One transaction of ``pending`` tiles and ``wal`` records (under ``_mutex``)."""
        if not pending and not wal:
            return
        self._check_writer()
        rows = [(self.log, p, d) for p, d in pending.items()]
        try:
            conn = self._db()
            with conn.transaction(), conn.cursor() as cur:
                if rows:
                    cur.executemany(
                        "INSERT INTO tlog_object (log, path, data) VALUES (%s, %s, %s) "
                        "ON CONFLICT (log, path) DO UPDATE SET data = EXCLUDED.data", rows)
                if wal:
                    cur.executemany(
                        "INSERT INTO tlog_wal (log, first, count, data) VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT (log, first) DO UPDATE SET count = EXCLUDED.count, "
                        "data = EXCLUDED.data", [(self.log, f, c, d) for f, c, d in wal])
        except psycopg.Error as e:
            raise Unavailable(f"log tile write failed: {e}", code="log_unwritable") from e

    def publish_checkpoint(self, note: bytes) -> None:
        with self._mutex:  # committed by this sync, not swept into another thread's
            self._check_writer()
            self.put([(CHECKPOINT_PATH, note)])
            self.sync()

    def read(self, path: str) -> bytes | None:
        """Read ``checkpoint`` or a tile path; None if absent.

        Raises:
            VerificationError: ``path`` is neither.
            Unavailable: the database is unreachable.
        """
        with self._mutex:
            if path != CHECKPOINT_PATH:
                parse_path(path)
            try:
                row = self._db().execute(
                    "SELECT data FROM tlog_object WHERE log = %s AND path = %s",
                    (self.log, path)).fetchone()
            except psycopg.Error as e:
                raise Unavailable(f"log database unreachable: {e}", code="log_unavailable") from e
            return bytes(row[0]) if row else None

    def write_object(self, path: str, data: bytes) -> None:
        """Store a content-addressed object (``bundles/sha256-<hex>.tar``) in its own table.

        Raises:
            VerificationError: any other path.
            Unavailable: the database refused it.
        """
        with self._mutex:
            check_object_path(path)
            try:
                self._db().execute(
                    "INSERT INTO tlog_content (log, path, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT (log, path) DO UPDATE SET data = EXCLUDED.data",
                    (self.log, path, data))
            except psycopg.Error as e:
                raise Unavailable(f"object write failed: {e}", code="log_unwritable") from e

    def read_object(self, path: str) -> bytes | None:
        """Read a content-addressed object; None if absent.

        Raises:
            VerificationError: any path but ``bundles/sha256-<hex>.tar``.
            Unavailable: the database is unreachable.
        """
        with self._mutex:
            check_object_path(path)
            try:
                row = self._db().execute(
                    "SELECT data FROM tlog_content WHERE log = %s AND path = %s",
                    (self.log, path)).fetchone()
            except psycopg.Error as e:
                raise Unavailable(f"log database unreachable: {e}", code="log_unavailable") from e
            return bytes(row[0]) if row else None

    def partial_widths(self, ref: TileRef) -> list[int]:
        with self._mutex:
            prefix = TileRef(ref.level, ref.index).path + ".p/"
            try:
                rows = self._db().execute(
                    "SELECT substr(path, %s) FROM tlog_object WHERE log = %s AND path LIKE %s",
                    (len(prefix) + 1, self.log, prefix + "%")).fetchall()
            except psycopg.Error as e:
                raise Unavailable(f"log database unreachable: {e}", code="log_unavailable") from e
            return sorted(int(r[0]) for r in rows if str(r[0]).isdigit())

    def close(self) -> None:
        with self._mutex:
            self.release_writer()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

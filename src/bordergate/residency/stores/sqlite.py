"""The SQLite record store: the embedded default, one database file per jurisdiction.

Tables (``meta`` records the jurisdiction the file belongs to; opening it
for another jurisdiction is refused)::

    records(collection, record_id, subject_id)            one row per record
    record_fields(collection, record_id, field, value)    stored bytes per field
    data_keys(subject_id, key_id, kek_version, wrapped)   wrapped data keys

Pragmas: WAL journal, ``synchronous=FULL`` (an acknowledged write survives
power loss), ``secure_delete=ON`` (deleted content is zeroed in the file, so
an erased subject leaves no bytes in free pages), ``temp_store=MEMORY`` (no
temporary files), ``busy_timeout`` 5 s.  After an erasure the WAL is
checkpointed and truncated so old page images do not linger there either.
None of this reaches a copy of the file taken before the erasure (a backup):
the wrapped data key in it opens until its KEK version is destroyed.
The file is created with mode 0600 (SQLite gives its ``-wal``/``-shm`` files
the same mode).

One connection per thread.  Every ``sqlite3`` failure surfaces as
:class:`Unavailable` (code ``store_unavailable``).  This module must never
see a protected value in clear (the vault seals them first) nor log values.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from bordergate.errors import BordergateError, ConfigError, Conflict, NotFound, Unavailable
from bordergate.keys.keyring import WrappedDataKey
from bordergate.residency.stores import (
    FieldValue,
    GroupCount,
    RawRecord,
    RecordRef,
    StoreErasure,
)
from bordergate.subjects import SubjectId, parse_jurisdiction, require_home

__all__ = ["SqliteRecordStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    collection TEXT NOT NULL, record_id TEXT NOT NULL, subject_id TEXT NOT NULL,
    PRIMARY KEY (collection, record_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_subject ON records (subject_id);
CREATE TABLE IF NOT EXISTS record_fields (
    collection TEXT NOT NULL, record_id TEXT NOT NULL, field TEXT NOT NULL,
    value BLOB NOT NULL, PRIMARY KEY (collection, record_id, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_keys (
    subject_id TEXT PRIMARY KEY, key_id BLOB NOT NULL, kek_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS data_keys_by_version ON data_keys (kek_version);
"""
_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",
    "PRAGMA synchronous = FULL",
    "PRAGMA secure_delete = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA trusted_schema = OFF",
)


#: Record ids named in one ``owners`` query (well under SQLite's parameter limit).
_IDS_PER_QUERY = 900
#: From this many records a ``put_batch`` is a bulk import (sorted, larger cache).
_BULK_RECORDS = 1000
#: The page cache of a connection that made a bulk import, in KiB (SQLite's
#: default is 2 MiB); the cache grows to it only as pages are used.
_BULK_CACHE_KIB = 65536

_GET_SQL: dict[int, str] = {}


def _record_key(record: tuple[str, str, SubjectId, Mapping[str, bytes]]) -> tuple[str, str]:
    return record[0], record[1]


def _get_sql(count: int) -> str:
    # Only "?" placeholders are interpolated: the field names travel as parameters.
    marks = ",".join("?" * count) if count else "NULL"
    sql = ("SELECT r.subject_id, f.field, f.value FROM records r LEFT JOIN record_fields f"  # noqa: S608
           " ON f.collection = r.collection AND f.record_id = r.record_id"
           f" AND f.field IN ({marks}) WHERE r.collection = ? AND r.record_id = ?")
    if count <= 64:
        _GET_SQL[count] = sql
    return sql


class SqliteRecordStore:
    """Records and wrapped data keys of one jurisdiction in one SQLite file."""

    kind = "sqlite"
    inline_point_reads = True  # one indexed lookup in a local file: microseconds

    def __init__(self, path: str | Path, *, jurisdiction: str) -> None:
        """Open (creating if needed, mode 0600) the jurisdiction's database file.

        Raises:
            ConfigError: ``store_jurisdiction_mismatch`` if the file belongs to
                another jurisdiction.
            Unavailable: ``store_unavailable`` if it cannot be opened.
        """
        self._jurisdiction = parse_jurisdiction(jurisdiction)
        self._path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise Unavailable(f"cannot open store {self._path}: {exc.strerror}",
                              code="store_unavailable") from exc
        with self._guard():
            conn = self._conn()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('jurisdiction', ?)",
                         (self._jurisdiction,))
            (owner,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'jurisdiction'").fetchone()
        if owner != self._jurisdiction:
            self.close()
            raise ConfigError(f"store {self._path} belongs to {owner!r}, "
                              f"not {self._jurisdiction!r}", code="store_jurisdiction_mismatch")

    def __repr__(self) -> str:
        return f"SqliteRecordStore(path={str(self._path)!r}, jurisdiction={self._jurisdiction!r})"

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction this store is bound to."""
        return self._jurisdiction

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=5.0, isolation_level=None,
                                   cached_statements=256, check_same_thread=False)
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except BordergateError:
            raise
        except sqlite3.Error as exc:
            raise Unavailable(f"store {self._path.name} failed: {type(exc).__name__}",
                              code="store_unavailable") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._guard():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def put_record(self, collection: str, record_id: str, subject: SubjectId,
                   fields: Mapping[str, bytes]) -> None:
        """Create or replace a record (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._write() as conn:
            row = conn.execute(
                "SELECT subject_id FROM records WHERE collection = ? AND record_id = ?",
                (collection, record_id)).fetchone()
            if row is not None and row[0] != str(subject):
                raise Conflict("the record belongs to another subject",
                               code="record_owner_mismatch")
            if row is None:
                conn.execute("INSERT INTO records VALUES (?, ?, ?)",
                             (collection, record_id, str(subject)))
            else:
                conn.execute("DELETE FROM record_fields WHERE collection = ? AND record_id = ?",
                             (collection, record_id))
            conn.executemany("INSERT INTO record_fields VALUES (?, ?, ?, ?)",
                             [(collection, record_id, f, v) for f, v in fields.items()])

    def put_batch(self, keys: Sequence[WrappedDataKey],
                  records: Sequence[tuple[str, str, SubjectId, Mapping[str, bytes]]]) -> None:
        """Keys and records in one transaction (see :class:`RecordStore`)."""
        for key in keys:
            require_home(key.subject, self._jurisdiction)
        for record in records:
            require_home(record[2], self._jurisdiction)
        if len(records) >= _BULK_RECORDS:
            # A bulk import: rows in key order and a page cache that holds the
            # transaction's pages (about a third less CPU per row than random-order
            # inserts spilling a 2 MiB cache into the WAL; bench_migration).
            records = sorted(records, key=_record_key)
            with self._guard():
                self._conn().execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
        with self._write() as conn:
            try:
                conn.executemany("INSERT INTO data_keys VALUES (?, ?, ?, ?)",
                                 [(str(k.subject), k.key_id, k.kek_version, k.wrapped)
                                  for k in keys])
            except sqlite3.IntegrityError:
                raise Conflict("a subject already has a data key",
                               code="data_key_exists") from None
            # All new (a first import): one savepoint, no lookup per record.  A record
            # that exists fails its insert; then the savepoint is undone and every
            # record's owner is checked as below.
            conn.execute("SAVEPOINT fresh_records")
            try:
                conn.executemany("INSERT INTO records VALUES (?, ?, ?)",
                                 [(c, r, str(s)) for c, r, s, _ in records])
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO fresh_records")
                conn.execute("RELEASE fresh_records")
                self._put_checked(conn, records)
            else:
                conn.execute("RELEASE fresh_records")
                conn.executemany("INSERT INTO record_fields VALUES (?, ?, ?, ?)",
                                 [(c, r, f, v) for c, r, _, fields in records
                                  for f, v in fields.items()])

    @staticmethod
    def _put_checked(conn: sqlite3.Connection,
                     records: Sequence[tuple[str, str, SubjectId, Mapping[str, bytes]]]) -> None:
        """Records some of which may exist: each one's owner checked, then written."""
        fresh: list[tuple[str, str, str]] = []
        replaced: list[tuple[str, str]] = []
        owner_sql = "SELECT subject_id FROM records WHERE collection = ? AND record_id = ?"
        for collection, record_id, subject, _ in records:
            row = conn.execute(owner_sql, (collection, record_id)).fetchone()
            if row is None:
                fresh.append((collection, record_id, str(subject)))
            elif row[0] != str(subject):
                raise Conflict("a record belongs to another subject",
                               code="record_owner_mismatch")
            else:
                replaced.append((collection, record_id))
        conn.executemany("INSERT INTO records VALUES (?, ?, ?)", fresh)
        conn.executemany("DELETE FROM record_fields WHERE collection = ? AND record_id = ?",
                         replaced)
        conn.executemany("INSERT INTO record_fields VALUES (?, ?, ?, ?)",
                         [(c, r, f, v) for c, r, _, fields in records
                          for f, v in fields.items()])

    def get_record(self, collection: str, record_id: str, fields: Sequence[str]) -> RawRecord:
        """Owner and selected stored fields (see :class:`RecordStore`)."""
        # The hot read path: no context manager, statement text cached per field count.
        sql = _GET_SQL.get(len(fields)) or _get_sql(len(fields))
        try:
            rows = self._conn().execute(sql, (*fields, collection, record_id)).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"store {self._path.name} failed: {type(exc).__name__}",
                              code="store_unavailable") from exc
        if not rows:
            raise NotFound("no such record", code="record_not_found")
        values = {name: value for _, name, value in rows if name is not None}
        return RawRecord(SubjectId.parse(rows[0][0]), values)

    def owner(self, collection: str, record_id: str) -> SubjectId:
        """The owning subject (see :class:`RecordStore`)."""
        with self._guard():
            row = self._conn().execute(
                "SELECT subject_id FROM records WHERE collection = ? AND record_id = ?",
                (collection, record_id)).fetchone()
        if row is None:
            raise NotFound("no such record", code="record_not_found")
        return SubjectId.parse(row[0])

    def owners(self, collection: str, record_ids: Sequence[str]) -> dict[str, SubjectId]:
        """Owners of the records that exist (see :class:`RecordStore`)."""
        found: dict[str, SubjectId] = {}
        with self._guard():
            conn = self._conn()
            for i in range(0, len(record_ids), _IDS_PER_QUERY):
                chunk = list(record_ids[i:i + _IDS_PER_QUERY])
                marks = ",".join("?" * len(chunk))
                for record_id, subject in conn.execute(
                        "SELECT record_id, subject_id FROM records WHERE collection = ? "  # noqa: S608
                        f"AND record_id IN ({marks})", (collection, *chunk)):
                    found[record_id] = SubjectId.parse(subject)
        return found

    def delete_record(self, collection: str, record_id: str) -> None:
        """Delete one record (see :class:`RecordStore`)."""
        with self._write() as conn:
            gone = conn.execute("DELETE FROM records WHERE collection = ? AND record_id = ?",
                                (collection, record_id)).rowcount
            if not gone:
                raise NotFound("no such record", code="record_not_found")
            conn.execute("DELETE FROM record_fields WHERE collection = ? AND record_id = ?",
                         (collection, record_id))

    def subject_records(self, subject: SubjectId) -> list[RecordRef]:
        """A subject's records (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._guard():
            rows = self._conn().execute(
                "SELECT collection, record_id FROM records WHERE subject_id = ?"
                " ORDER BY collection, record_id", (str(subject),)).fetchall()
        return [RecordRef(c, r) for c, r in rows]

    def erase_subject(self, subject: SubjectId) -> StoreErasure:
        """Destroy the data key (overwrite, delete) and the rows; truncate the WAL."""
        require_home(subject, self._jurisdiction)
        sid = str(subject)
        with self._write() as conn:
            key = self._read_key(conn, subject)
            conn.execute("UPDATE data_keys SET wrapped = zeroblob(length(wrapped)),"
                         " key_id = zeroblob(length(key_id)) WHERE subject_id = ?", (sid,))
            conn.execute("DELETE FROM data_keys WHERE subject_id = ?", (sid,))
            conn.execute(
                "DELETE FROM record_fields WHERE (collection, record_id) IN"
                " (SELECT collection, record_id FROM records WHERE subject_id = ?)", (sid,))
            count = conn.execute("DELETE FROM records WHERE subject_id = ?", (sid,)).rowcount
        with self._guard():
            # Best effort (a reader may hold the WAL): this file's hygiene only; copies
            # of the file taken before stay openable until the KEK version is destroyed.
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return StoreErasure(records=count, data_key=key)

    def group_count(self, collection: str, field: str | None) -> list[GroupCount]:
        """Records and distinct subjects per stored value (see :class:`RecordStore`)."""
        with self._guard():
            if field is None:
                rows = self._conn().execute(
                    "SELECT NULL, count(*), count(DISTINCT subject_id) FROM records"
                    " WHERE collection = ?", (collection,)).fetchall()
            else:
                rows = self._conn().execute(
                    "SELECT f.value, count(*), count(DISTINCT r.subject_id) FROM records r"
                    " LEFT JOIN record_fields f ON f.collection = r.collection"
                    " AND f.record_id = r.record_id AND f.field = ?"
                    " WHERE r.collection = ? GROUP BY f.value", (field, collection)).fetchall()
        return [GroupCount(None if v is None else bytes(v), n, s) for v, n, s in rows if n]

    def field_values(self, collection: str, field: str) -> list[FieldValue]:
        """Every record's stored value of ``field`` (see :class:`RecordStore`)."""
        with self._guard():
            rows = self._conn().execute(
                "SELECT r.subject_id, r.record_id, f.value FROM records r"
                " LEFT JOIN record_fields f ON f.collection = r.collection"
                " AND f.record_id = r.record_id AND f.field = ? WHERE r.collection = ?",
                (field, collection)).fetchall()
        return [FieldValue(SubjectId.parse(s), r, None if v is None else bytes(v))
                for s, r, v in rows]

    def _read_key(self, conn: sqlite3.Connection, subject: SubjectId) -> WrappedDataKey | None:
        row = conn.execute("SELECT key_id, kek_version, wrapped FROM data_keys"
                           " WHERE subject_id = ?", (str(subject),)).fetchone()
        if row is None:
            return None
        return WrappedDataKey(subject, bytes(row[0]), int(row[1]), bytes(row[2]))

    def get_data_key(self, subject: SubjectId) -> WrappedDataKey | None:
        """The subject's wrapped data key, or ``None``."""
        with self._guard():
            return self._read_key(self._conn(), subject)

    def add_data_key(self, key: WrappedDataKey) -> WrappedDataKey:
        """Store ``key`` unless one exists; return the stored one."""
        require_home(key.subject, self._jurisdiction)
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO data_keys VALUES (?, ?, ?, ?)",
                         (str(key.subject), key.key_id, key.kek_version, key.wrapped))
            stored = self._read_key(conn, key.subject)
        assert stored is not None
        return stored

    def rewrap_data_key(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Compare-and-swap one wrapped key."""
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE data_keys SET kek_version = ?, wrapped = ? WHERE subject_id = ?"
                " AND key_id = ? AND kek_version = ? AND wrapped = ?",
                (new.kek_version, new.wrapped, str(old.subject), old.key_id,
                 old.kek_version, old.wrapped)).rowcount
        return bool(changed)

    def data_keys_not_under(self, kek_version: int, after: str,
                            limit: int) -> list[WrappedDataKey]:
        """Keys to re-wrap, ordered by subject id."""
        with self._guard():
            rows = self._conn().execute(
                "SELECT subject_id, key_id, kek_version, wrapped FROM data_keys"
                " WHERE kek_version != ? AND subject_id > ? ORDER BY subject_id LIMIT ?",
                (kek_version, after, limit)).fetchall()
        return [WrappedDataKey(SubjectId.parse(s), bytes(k), int(v), bytes(w))
                for s, k, v, w in rows]

    def data_key_counts(self) -> dict[int, int]:
        """Data keys per KEK version."""
        with self._guard():
            rows = self._conn().execute(
                "SELECT kek_version, count(*) FROM data_keys GROUP BY kek_version").fetchall()
        return {int(v): int(n) for v, n in rows}

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

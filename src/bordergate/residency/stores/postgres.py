"""The PostgreSQL record store: one database per jurisdiction, pooled connections.

Same tables as the SQLite store (``meta``, ``records``, ``record_fields``,
``data_keys``; values ``bytea``), created on first open; the ``meta`` row
binds the database to one jurisdiction and opening it for another is refused.
Connections come from a :class:`psycopg_pool.ConnectionPool`; each operation
is one transaction.  Every driver or pool failure surfaces as
:class:`Unavailable` (code ``store_unavailable``).

Erasure overwrites, then deletes the subject's wrapped data key and deletes
its rows in one transaction, holding the subject's advisory lock, which every
write of a record or data key of that subject takes too: an erasure running
beside a write would otherwise miss the write's uncommitted rows and leave
them (``erasures`` remembers a logged erasure's index, see the package).
PostgreSQL keeps old row versions until VACUUM and in its WAL, so copies of
the wrapped key may stay on disk for a while: they stay openable only until
the KEK version that wrapped them is rotated away and destroyed (so do
backups; the vault answers ``until_kek_destroyed``). The field ciphertexts
themselves can never be opened once the data key is gone from every live row.

This module must never see a protected value in clear nor log values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from bordergate.errors import BordergateError, ConfigError, Conflict, NotFound, Unavailable
from bordergate.keys.keyring import WrappedDataKey
from bordergate.postgres_tables import DDL_LOCK
from bordergate.residency.stores import (
    FieldValue,
    GroupCount,
    RawRecord,
    RecordRef,
    StoreErasure,
    erasure_digest,
    record_changed,
    removes_undecided,
    subject_erased,
)
from bordergate.subjects import SubjectId, parse_jurisdiction, require_home

__all__ = ["PostgresRecordStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (collection text NOT NULL, record_id text NOT NULL,"
    " subject_id text NOT NULL, PRIMARY KEY (collection, record_id))",
    "CREATE INDEX IF NOT EXISTS records_by_subject ON records (subject_id)",
    "CREATE TABLE IF NOT EXISTS record_fields (collection text NOT NULL,"
    " record_id text NOT NULL, field text NOT NULL, value bytea NOT NULL,"
    " PRIMARY KEY (collection, record_id, field))",
    "CREATE TABLE IF NOT EXISTS data_keys (subject_id text PRIMARY KEY, key_id bytea NOT NULL,"
    " kek_version integer NOT NULL, wrapped bytea NOT NULL)",
    "CREATE INDEX IF NOT EXISTS data_keys_by_version ON data_keys (kek_version)",
    "CREATE TABLE IF NOT EXISTS erasures (subject_digest text PRIMARY KEY,"
    " logged_at bigint NOT NULL)",
)
#: The advisory lock class of one subject's changes (the second key is a hash of
#: the subject id): a record's write, a data key's creation and the subject's
#: erasure take it, so that an erasure never runs beside a write of its subject
#: (under READ COMMITTED it would miss the write's uncommitted rows).
_SUBJECT_LOCK = 7193503


class PostgresRecordStore:
    """Records and wrapped data keys of one jurisdiction in one PostgreSQL database."""

    kind = "postgres"
    inline_point_reads = False  # a network round trip, and the pool may wait

    def __init__(self, url: str, *, jurisdiction: str, pool_size: int = 8,
                 timeout: float = 5.0) -> None:
        """Open a pool on the jurisdiction's database and create the tables.

        Raises:
            ConfigError: ``store_jurisdiction_mismatch``.
            Unavailable: ``store_unavailable`` if the database cannot be reached.
        """
        self._jurisdiction = parse_jurisdiction(jurisdiction)
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), timeout=timeout, open=False,
            kwargs={"connect_timeout": max(1, int(timeout))}, name=f"store-{jurisdiction}")
        try:
            self._pool.open(wait=True, timeout=timeout)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._pool.close()
            raise Unavailable(f"store database of {jurisdiction} unreachable: "
                              f"{type(exc).__name__}", code="store_unavailable") from exc
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))  # first-time DDL
            for ddl in _SCHEMA:
                cur.execute(ddl)
            cur.execute("INSERT INTO meta VALUES ('jurisdiction', %s) ON CONFLICT DO NOTHING",
                        (self._jurisdiction,))
            cur.execute("SELECT value FROM meta WHERE key = 'jurisdiction'")
            owner = _one(cur)[0]
        if owner != self._jurisdiction:
            self.close()
            raise ConfigError(f"store database belongs to {owner!r}, not "
                              f"{self._jurisdiction!r}", code="store_jurisdiction_mismatch")

    def __repr__(self) -> str:
        return f"PostgresRecordStore(jurisdiction={self._jurisdiction!r})"

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction this store is bound to."""
        return self._jurisdiction

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except BordergateError:
            raise
        except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            raise Unavailable(f"store of {self._jurisdiction} failed: {type(exc).__name__}",
                              code="store_unavailable") from exc

    @staticmethod
    def _lock_subject(cur: psycopg.Cursor[Any], subject: SubjectId,
                      logged_at: int | None) -> None:
        """In a transaction: take the subject's lock, then refuse a change logged
        before its erasure."""
        cur.execute("SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))",
                    (_SUBJECT_LOCK, str(subject)))
        if logged_at is None:
            return
        cur.execute("SELECT logged_at FROM erasures WHERE subject_digest = %s",
                    (erasure_digest(subject),))
        row = cur.fetchone()
        if row is not None and int(row[0]) > logged_at:
            raise subject_erased()

    def put_record(self, collection: str, record_id: str, subject: SubjectId,
                   fields: Mapping[str, bytes], *, logged_at: int | None = None,
                   decided: Set[str] | None = None) -> None:
        """Create or replace a record (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._tx() as cur:
            self._lock_subject(cur, subject, logged_at)
            cur.execute("INSERT INTO records VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (collection, record_id, str(subject)))
            cur.execute("SELECT subject_id FROM records WHERE collection = %s AND record_id = %s"
                        " FOR UPDATE", (collection, record_id))
            if _one(cur)[0] != str(subject):
                raise Conflict("the record belongs to another subject",
                               code="record_owner_mismatch")
            if decided is not None:
                cur.execute("SELECT field FROM record_fields WHERE collection = %s"
                            " AND record_id = %s", (collection, record_id))
                if removes_undecided({row[0] for row in cur.fetchall()}, decided):
                    raise record_changed()
            cur.execute("DELETE FROM record_fields WHERE collection = %s AND record_id = %s",
                        (collection, record_id))
            cur.executemany("INSERT INTO record_fields VALUES (%s, %s, %s, %s)",
                            [(collection, record_id, f, v) for f, v in fields.items()])

    def put_batch(self, keys: Sequence[WrappedDataKey],
                  records: Sequence[tuple[str, str, SubjectId, Mapping[str, bytes]]]) -> None:
        """Keys and records in one transaction (see :class:`RecordStore`)."""
        for key in keys:
            require_home(key.subject, self._jurisdiction)
        for record in records:
            require_home(record[2], self._jurisdiction)
        with self._tx() as cur:
            try:
                cur.executemany("INSERT INTO data_keys VALUES (%s, %s, %s, %s)",
                                [(str(k.subject), k.key_id, k.kek_version, k.wrapped)
                                 for k in keys])
            except psycopg.errors.UniqueViolation:
                raise Conflict("a subject already has a data key",
                               code="data_key_exists") from None
            rows = [(c, r, str(s)) for c, r, s, _ in records]
            cur.executemany("INSERT INTO records VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            rows)
            for row in rows:
                cur.execute("SELECT 1 FROM records WHERE collection = %s AND record_id = %s"
                            " AND subject_id != %s", row)
                if cur.fetchone() is not None:
                    raise Conflict("a record belongs to another subject",
                                   code="record_owner_mismatch")
            cur.executemany("DELETE FROM record_fields WHERE collection = %s AND record_id = %s",
                            [(c, r) for c, r, _, _ in records])
            cur.executemany("INSERT INTO record_fields VALUES (%s, %s, %s, %s)",
                            [(c, r, f, v) for c, r, _, fields in records
                             for f, v in fields.items()])

    def get_record(self, collection: str, record_id: str, fields: Sequence[str]) -> RawRecord:
        """Owner and selected stored fields (see :class:`RecordStore`)."""
        with self._tx() as cur:
            cur.execute(
                "SELECT r.subject_id, f.field, f.value FROM records r LEFT JOIN record_fields f"
                " ON f.collection = r.collection AND f.record_id = r.record_id"
                " AND f.field = ANY(%s) WHERE r.collection = %s AND r.record_id = %s",
                (list(fields), collection, record_id))
            rows = cur.fetchall()
        if not rows:
            raise NotFound("no such record", code="record_not_found")
        values = {name: bytes(value) for _, name, value in rows if name is not None}
        return RawRecord(SubjectId.parse(rows[0][0]), values)

    def owner(self, collection: str, record_id: str) -> SubjectId:
        """The owning subject (see :class:`RecordStore`)."""
        with self._tx() as cur:
            cur.execute("SELECT subject_id FROM records WHERE collection = %s AND record_id = %s",
                        (collection, record_id))
            row = cur.fetchone()
        if row is None:
            raise NotFound("no such record", code="record_not_found")
        return SubjectId.parse(row[0])

    def owners(self, collection: str, record_ids: Sequence[str]) -> dict[str, SubjectId]:
        """Owners of the records that exist (see :class:`RecordStore`)."""
        with self._tx() as cur:
            cur.execute("SELECT record_id, subject_id FROM records WHERE collection = %s "
                        "AND record_id = ANY(%s)", (collection, list(record_ids)))
            rows = cur.fetchall()
        return {record_id: SubjectId.parse(subject) for record_id, subject in rows}

    def delete_record(self, collection: str, record_id: str) -> None:
        """Delete one record (see :class:`RecordStore`)."""
        with self._tx() as cur:
            cur.execute("DELETE FROM records WHERE collection = %s AND record_id = %s",
                        (collection, record_id))
            if not cur.rowcount:
                raise NotFound("no such record", code="record_not_found")
            cur.execute("DELETE FROM record_fields WHERE collection = %s AND record_id = %s",
                        (collection, record_id))

    def subject_records(self, subject: SubjectId) -> list[RecordRef]:
        """A subject's records (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._tx() as cur:
            cur.execute("SELECT collection, record_id FROM records WHERE subject_id = %s"
                        " ORDER BY collection, record_id", (str(subject),))
            rows = cur.fetchall()
        return [RecordRef(c, r) for c, r in rows]

    def erase_subject(self, subject: SubjectId, *,
                      logged_at: int | None = None) -> StoreErasure:
        """Destroy the data key (overwrite, delete) and the rows, in one transaction."""
        require_home(subject, self._jurisdiction)
        sid = str(subject)
        with self._tx() as cur:
            self._lock_subject(cur, subject, None)
            if logged_at is not None:
                cur.execute("INSERT INTO erasures VALUES (%s, %s) ON CONFLICT (subject_digest)"
                            " DO UPDATE SET logged_at = greatest(erasures.logged_at,"
                            " excluded.logged_at)", (erasure_digest(subject), logged_at))
            key = self._read_key(cur, subject, lock=True)
            cur.execute("UPDATE data_keys SET wrapped = decode(repeat('00', length(wrapped)),"
                        " 'hex'), key_id = decode(repeat('00', length(key_id)), 'hex')"
                        " WHERE subject_id = %s", (sid,))
            cur.execute("DELETE FROM data_keys WHERE subject_id = %s", (sid,))
            cur.execute("DELETE FROM record_fields f USING records r WHERE"
                        " f.collection = r.collection AND f.record_id = r.record_id"
                        " AND r.subject_id = %s", (sid,))
            cur.execute("DELETE FROM records WHERE subject_id = %s", (sid,))
            count = cur.rowcount
        return StoreErasure(records=count, data_key=key)

    def group_count(self, collection: str, field: str | None) -> list[GroupCount]:
        """Records and distinct subjects per stored value (see :class:`RecordStore`)."""
        with self._tx() as cur:
            if field is None:
                cur.execute("SELECT NULL::bytea, count(*), count(DISTINCT subject_id)"
                            " FROM records WHERE collection = %s", (collection,))
            else:
                cur.execute(
                    "SELECT f.value, count(*), count(DISTINCT r.subject_id) FROM records r"
                    " LEFT JOIN record_fields f ON f.collection = r.collection"
                    " AND f.record_id = r.record_id AND f.field = %s"
                    " WHERE r.collection = %s GROUP BY f.value", (field, collection))
            rows = cur.fetchall()
        return [GroupCount(None if v is None else bytes(v), int(n), int(s))
                for v, n, s in rows if n]

    def field_values(self, collection: str, field: str) -> list[FieldValue]:
        """Every record's stored value of ``field`` (see :class:`RecordStore`)."""
        with self._tx() as cur:
            cur.execute(
                "SELECT r.subject_id, r.record_id, f.value FROM records r"
                " LEFT JOIN record_fields f ON f.collection = r.collection"
                " AND f.record_id = r.record_id AND f.field = %s WHERE r.collection = %s",
                (field, collection))
            rows = cur.fetchall()
        return [FieldValue(SubjectId.parse(s), r, None if v is None else bytes(v))
                for s, r, v in rows]

    @staticmethod
    def _read_key(cur: psycopg.Cursor[Any], subject: SubjectId,
                  lock: bool = False) -> WrappedDataKey | None:
        if lock:
            cur.execute("SELECT key_id, kek_version, wrapped FROM data_keys"
                        " WHERE subject_id = %s FOR UPDATE", (str(subject),))
        else:
            cur.execute("SELECT key_id, kek_version, wrapped FROM data_keys"
                        " WHERE subject_id = %s", (str(subject),))
        row = cur.fetchone()
        if row is None:
            return None
        return WrappedDataKey(subject, bytes(row[0]), int(row[1]), bytes(row[2]))

    def get_data_key(self, subject: SubjectId) -> WrappedDataKey | None:
        """The subject's wrapped data key, or ``None``."""
        with self._tx() as cur:
            return self._read_key(cur, subject)

    def add_data_key(self, key: WrappedDataKey, *,
                     logged_at: int | None = None) -> WrappedDataKey:
        """Store ``key`` unless one exists; return the stored one."""
        require_home(key.subject, self._jurisdiction)
        with self._tx() as cur:
            self._lock_subject(cur, key.subject, logged_at)
            cur.execute("INSERT INTO data_keys VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (str(key.subject), key.key_id, key.kek_version, key.wrapped))
            stored = self._read_key(cur, key.subject)
        assert stored is not None
        return stored

    def rewrap_data_key(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Compare-and-swap one wrapped key."""
        with self._tx() as cur:
            cur.execute("UPDATE data_keys SET kek_version = %s, wrapped = %s WHERE"
                        " subject_id = %s AND key_id = %s AND kek_version = %s AND wrapped = %s",
                        (new.kek_version, new.wrapped, str(old.subject), old.key_id,
                         old.kek_version, old.wrapped))
            return bool(cur.rowcount)

    def data_keys_not_under(self, kek_version: int, after: str,
                            limit: int) -> list[WrappedDataKey]:
        """Keys to re-wrap, ordered by subject id."""
        with self._tx() as cur:
            cur.execute("SELECT subject_id, key_id, kek_version, wrapped FROM data_keys"
                        " WHERE kek_version <> %s AND subject_id COLLATE \"C\" > %s"
                        " ORDER BY subject_id COLLATE \"C\" LIMIT %s",
                        (kek_version, after, limit))
            rows = cur.fetchall()
        return [WrappedDataKey(SubjectId.parse(s), bytes(k), int(v), bytes(w))
                for s, k, v, w in rows]

    def data_key_counts(self) -> dict[int, int]:
        """Data keys per KEK version."""
        with self._tx() as cur:
            cur.execute("SELECT kek_version, count(*) FROM data_keys GROUP BY kek_version")
            rows = cur.fetchall()
        return {int(v): int(n) for v, n in rows}

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()


def _one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:
        raise Unavailable("store returned no row", code="store_unavailable")
    return tuple(row)

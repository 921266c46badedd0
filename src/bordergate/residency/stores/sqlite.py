"""The SQLite record store: the embedded default, one database file per jurisdiction.

Tables (``meta`` records the jurisdiction the file belongs to; opening it
for another jurisdiction is refused)::

    records(collection, record_id, subject_id, fields)    one row per record
    data_keys(subject_id, key_id, kek_version, wrapped)   wrapped data keys
    erasures(subject_digest, logged_at)                   erased subjects (SHA-256 of
                                                          the id) and their erasure's
                                                          log index

A record's ``fields`` is its stored bytes per field in one value
(:func:`pack_fields`: a head with the field count and every length, the names,
the values): one B-tree row per record instead of one per field, which halved the
store's CPU per record of a bulk import (bench_migration) and makes a point
read one primary-key lookup.  A file of the earlier layout (a
``record_fields`` table with one row per field) is converted in place, in one
transaction, when it is first opened (``meta`` ``format`` = ``2`` after).

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
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import contextmanager, suppress
from itertools import accumulate, pairwise
from pathlib import Path

from bordergate.errors import BordergateError, ConfigError, Conflict, NotFound, Unavailable
from bordergate.keys.keyring import WrappedDataKey
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

__all__ = ["SqliteRecordStore", "field_of", "pack_fields", "unpack_fields"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    collection TEXT NOT NULL, record_id TEXT NOT NULL, subject_id TEXT NOT NULL,
    fields BLOB NOT NULL, PRIMARY KEY (collection, record_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_subject ON records (subject_id);
CREATE TABLE IF NOT EXISTS data_keys (
    subject_id TEXT PRIMARY KEY, key_id BLOB NOT NULL, kek_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS data_keys_by_version ON data_keys (kek_version);
CREATE TABLE IF NOT EXISTS erasures (
    subject_digest TEXT PRIMARY KEY, logged_at INTEGER NOT NULL) WITHOUT ROWID;
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

#: The first byte of a record's packed fields.
_FIELDS_FORMAT = 0x02
#: Field names as packed, decoded (a schema has a few dozen field sets; bounded,
#: since a damaged file could name any number of others).
_NAME_SETS: dict[bytes, tuple[str, ...]] = {}
_NAME_SETS_MAX = 4096
#: The fixed head of a packed record, per field count (counts up to 256 cached).
_HEADS: dict[int, struct.Struct] = {}


def _head(count: int) -> struct.Struct:
    head = _HEADS.get(count)
    if head is None:
        # format byte, field count, names' length, then each value's length
        head = struct.Struct(f">BHI{count}I")
        if count <= 256:
            _HEADS[count] = head
    return head


def pack_fields(fields: Mapping[str, bytes]) -> bytes:
    """A record's stored bytes per field as one value: a head (format byte, field
    count, the names' length, each value's length), the names (UTF-8, joined by NUL),
    then the values.  Reading it back is a few C calls whatever the field count.

    Raises:
        ValueError: more than 65535 fields, or a name empty or holding NUL (schema
            field names are identifiers: neither happens).
    """
    count = len(fields)
    if count > 0xFFFF:
        raise ValueError("more than 65535 fields in one record")
    if any(not name or "\x00" in name for name in fields):
        raise ValueError("a field name is empty or holds NUL")
    names = "\x00".join(fields).encode("utf-8")
    values = list(fields.values())
    return b"".join((_head(count).pack(_FIELDS_FORMAT, count, len(names), *map(len, values)),
                     names, *values))


#: What reading bytes that are not a packed record of this format raises.
_DAMAGE = (IndexError, ValueError, struct.error)  # UnicodeDecodeError is a ValueError


def _damaged() -> Unavailable:
    return Unavailable("a stored record is truncated, damaged or of an unknown format",
                       code="store_unavailable")


def _read_head(packed: bytes) -> tuple[tuple[int, ...], int]:
    """A packed record's head (format, count, names' length, value lengths) and where
    its names start; each reader checks the lengths against the record's as it walks
    them (the point read's accumulated ends give the total for free).

    Raises:
        one of ``_DAMAGE``: not a packed record of this format.
    """
    if packed[0] != _FIELDS_FORMAT:
        raise ValueError("unknown format")
    head = _head((packed[1] << 8) | packed[2])
    return head.unpack_from(packed), head.size


def unpack_fields(packed: bytes) -> dict[str, bytes]:
    """The fields :func:`pack_fields` packed.

    Raises:
        Unavailable: ``store_unavailable`` for bytes it did not write (the file was
            damaged or edited).
    """
    try:
        parts, start = _read_head(packed)
        ends = list(accumulate(parts[3:], initial=start + parts[2]))
        names = _unpack_names(packed[start:ends[0]], parts[1])
        out = dict(zip(names, [packed[a:b] for a, b in pairwise(ends)], strict=True))
        if ends[-1] != len(packed) or len(out) != parts[1]:
            raise ValueError("damaged")
    except _DAMAGE:
        raise _damaged() from None
    return out


#: (packed names, name) -> the name's position among them (-1: absent); bounded.
_POSITIONS: dict[tuple[bytes, str], int] = {}


def field_of(packed: bytes | None, name: str) -> bytes | None:
    """One field's stored bytes from a packed record (``None`` if absent), without
    unpacking the others: the SQL function ``bordergate_field(fields, name)`` that
    aggregates and exports group and scan by (called once per record).

    Raises:
        Unavailable: ``store_unavailable``, as :func:`unpack_fields`.
    """
    if packed is None:
        return None
    try:
        parts, start = _read_head(packed)
        names_end = start + parts[2]
        if names_end + sum(parts[3:]) != len(packed):
            raise ValueError("damaged")
        key = (packed[start:names_end], name)
        at = _POSITIONS.get(key)
        if at is None:
            names = _unpack_names(key[0], parts[1])
            at = names.index(name) if name in names else -1
            if len(_POSITIONS) < _NAME_SETS_MAX:
                _POSITIONS[key] = at
        if at < 0:
            return None
        begin = names_end + sum(parts[3:3 + at])
        return packed[begin:begin + parts[3 + at]]
    except _DAMAGE:
        raise _damaged() from None


def _unpack_names(raw: bytes, count: int) -> tuple[str, ...]:
    """The field names of a packed record (``raw``: its names part), cached per set.

    Raises:
        ValueError: not ``count`` names, or not UTF-8.
    """
    names = _NAME_SETS.get(raw)
    if names is None:
        names = tuple(raw.decode("utf-8").split("\x00")) if raw else ()
        if len(_NAME_SETS) < _NAME_SETS_MAX:
            _NAME_SETS[bytes(raw)] = names
    if len(names) != count:
        raise ValueError("damaged")
    return names


def _record_key(record: tuple[str, str, SubjectId, Mapping[str, bytes]]) -> tuple[str, str]:
    return record[0], record[1]


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
            self._upgrade(conn)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('jurisdiction', ?)",
                         (self._jurisdiction,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', '2')")
            (owner,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'jurisdiction'").fetchone()
        if owner != self._jurisdiction:
            self.close()
            raise ConfigError(f"store {self._path} belongs to {owner!r}, "
                              f"not {self._jurisdiction!r}", code="store_jurisdiction_mismatch")

    @staticmethod
    def _upgrade(conn: sqlite3.Connection) -> None:
        """Convert a file of the earlier layout (one ``record_fields`` row per field)
        to one row per record, in one transaction (a crash leaves the old layout).

        Several processes may open the file at once (gateway workers starting
        together): the layout is looked at again under the write lock, so only the
        first converts and the others find it done."""
        def earlier_layout() -> bool:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = 'record_fields'").fetchone() is not None

        if not earlier_layout():
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not earlier_layout():  # another opener converted it meanwhile
                conn.execute("COMMIT")
                return
            columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
            if "fields" not in columns:
                conn.execute("ALTER TABLE records ADD COLUMN fields BLOB NOT NULL "
                             f"DEFAULT x'{pack_fields({}).hex()}'")
            packed: dict[tuple[str, str], dict[str, bytes]] = {}
            for collection, record_id, field, value in conn.execute(
                    "SELECT collection, record_id, field, value FROM record_fields"):
                packed.setdefault((collection, record_id), {})[field] = bytes(value)
            conn.executemany(
                "UPDATE records SET fields = ? WHERE collection = ? AND record_id = ?",
                [(pack_fields(f), c, r) for (c, r), f in packed.items()])
            conn.execute("DROP TABLE record_fields")
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('format', '2')")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
            conn.create_function("bordergate_field", 2, field_of, deterministic=True)
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

    @staticmethod
    def _check_not_erased(conn: sqlite3.Connection, subject: SubjectId,
                          logged_at: int | None) -> None:
        """In a write transaction: refuse a change logged before the subject's erasure."""
        if logged_at is None:
            return
        row = conn.execute("SELECT logged_at FROM erasures WHERE subject_digest = ?",
                           (erasure_digest(subject),)).fetchone()
        if row is not None and int(row[0]) > logged_at:
            raise subject_erased()

    def put_record(self, collection: str, record_id: str, subject: SubjectId,
                   fields: Mapping[str, bytes], *, logged_at: int | None = None,
                   decided: Set[str] | None = None) -> None:
        """Create or replace a record (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._write() as conn:
            self._check_not_erased(conn, subject, logged_at)
            row = conn.execute(
                "SELECT subject_id, fields FROM records WHERE collection = ? AND record_id = ?",
                (collection, record_id)).fetchone()
            if row is not None and row[0] != str(subject):
                raise Conflict("the record belongs to another subject",
                               code="record_owner_mismatch")
            if row is not None and decided is not None and \
                    removes_undecided(unpack_fields(row[1]).keys(), decided):
                raise record_changed()
            if row is None:
                conn.execute("INSERT INTO records VALUES (?, ?, ?, ?)",
                             (collection, record_id, str(subject), pack_fields(fields)))
            else:
                conn.execute("UPDATE records SET fields = ? WHERE collection = ? AND "
                             "record_id = ?", (pack_fields(fields), collection, record_id))

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
            rows = [(c, r, str(s), pack_fields(f)) for c, r, s, f in records]
            conn.execute("SAVEPOINT fresh_records")
            try:
                conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO fresh_records")
                conn.execute("RELEASE fresh_records")
                self._put_checked(conn, rows)
            else:
                conn.execute("RELEASE fresh_records")

    @staticmethod
    def _put_checked(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, str, bytes]]
                     ) -> None:
        """Records some of which may exist: each one's owner checked, then written."""
        owner_sql = "SELECT subject_id FROM records WHERE collection = ? AND record_id = ?"
        for collection, record_id, subject, _ in rows:
            row = conn.execute(owner_sql, (collection, record_id)).fetchone()
            if row is not None and row[0] != subject:
                raise Conflict("a record belongs to another subject",
                               code="record_owner_mismatch")
        conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)", rows)

    def get_record(self, collection: str, record_id: str, fields: Sequence[str]) -> RawRecord:
        """Owner and selected stored fields (see :class:`RecordStore`)."""
        # The hot read path: no context manager, one primary-key lookup.
        try:
            row = self._conn().execute(
                "SELECT subject_id, fields FROM records WHERE collection = ? AND record_id = ?",
                (collection, record_id)).fetchone()
        except sqlite3.Error as exc:
            raise Unavailable(f"store {self._path.name} failed: {type(exc).__name__}",
                              code="store_unavailable") from exc
        if row is None:
            raise NotFound("no such record", code="record_not_found")
        stored = unpack_fields(row[1])
        values = {name: stored[name] for name in fields if name in stored}
        return RawRecord(SubjectId.parse(row[0]), values)

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

    def subject_records(self, subject: SubjectId) -> list[RecordRef]:
        """A subject's records (see :class:`RecordStore`)."""
        require_home(subject, self._jurisdiction)
        with self._guard():
            rows = self._conn().execute(
                "SELECT collection, record_id FROM records WHERE subject_id = ?"
                " ORDER BY collection, record_id", (str(subject),)).fetchall()
        return [RecordRef(c, r) for c, r in rows]

    def erase_subject(self, subject: SubjectId, *,
                      logged_at: int | None = None) -> StoreErasure:
        """Destroy the data key (overwrite, delete) and the rows; truncate the WAL."""
        require_home(subject, self._jurisdiction)
        sid = str(subject)
        with self._write() as conn:
            if logged_at is not None:
                conn.execute("INSERT INTO erasures VALUES (?, ?) ON CONFLICT (subject_digest)"
                             " DO UPDATE SET logged_at = max(logged_at, excluded.logged_at)",
                             (erasure_digest(subject), logged_at))
            key = self._read_key(conn, subject)
            conn.execute("UPDATE data_keys SET wrapped = zeroblob(length(wrapped)),"
                         " key_id = zeroblob(length(key_id)) WHERE subject_id = ?", (sid,))
            conn.execute("DELETE FROM data_keys WHERE subject_id = ?", (sid,))
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
                    "SELECT bordergate_field(fields, ?) AS v, count(*),"
                    " count(DISTINCT subject_id) FROM records WHERE collection = ? GROUP BY v",
                    (field, collection)).fetchall()
        return [GroupCount(None if v is None else bytes(v), n, s) for v, n, s in rows if n]

    def field_values(self, collection: str, field: str) -> list[FieldValue]:
        """Every record's stored value of ``field`` (see :class:`RecordStore`)."""
        with self._guard():
            rows = self._conn().execute(
                "SELECT subject_id, record_id, bordergate_field(fields, ?) FROM records"
                " WHERE collection = ?", (field, collection)).fetchall()
        return [FieldValue(SubjectId.parse(s), r, v) for s, r, v in rows]

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

    def add_data_key(self, key: WrappedDataKey, *,
                     logged_at: int | None = None) -> WrappedDataKey:
        """Store ``key`` unless one exists; return the stored one."""
        require_home(key.subject, self._jurisdiction)
        with self._write() as conn:
            self._check_not_erased(conn, key.subject, logged_at)
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

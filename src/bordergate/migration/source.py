"""A legacy source database (SQLite or PostgreSQL): read, delete, compact, journal.

``open_source(url)`` takes ``sqlite:///abs/path.db``, ``sqlite:rel.db``, a bare
path ending in ``.db``, or ``postgresql://…``.  The same SQL runs on both;
only the parameter marks, the type of booleans and the compaction differ.

The batch journal (``bordergate_migration``) lives in the source itself, so
that deleting a batch's rows and recording that they were deleted is one
transaction: a crash leaves either both or neither.  It holds batch numbers,
subject-key ranges, states, counts and digests; its manifest
(``bordergate_migration_manifest``) holds the record and subject pseudonyms
each batch wrote (as public as the log's), for ``verify``.

Compaction after deletion: SQLite runs with ``secure_delete`` on (deleted
content is zeroed in its pages), then a ``wal_checkpoint(TRUNCATE)`` and a
``VACUUM`` rewrite the file without free pages.  PostgreSQL gets a
``VACUUM FULL`` of each table, which rewrites it into new files without the
dead row versions and unlinks the old ones (their blocks may linger on the
disk); the WAL, replicas and backups still hold the deleted rows, and no tool
here can reach them (docs/migration.md).

Driver failures surface as :class:`~bordergate.errors.Unavailable` (code
``source_unavailable``); a SQLite text value that is not UTF-8 as
:class:`~bordergate.errors.InvalidInput` (``source_text_not_utf8``, naming the
column, never the value).  This module must never log a row's values.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate.errors import ConfigError, InvalidInput, Unavailable

__all__ = ["JournalRow", "LegacySource", "open_source"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: Deletion actions of a foreign key that change the referring row.
_CHANGING = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})
#: sqlite3's error for a TEXT value that is not UTF-8, which quotes the value.
_UNDECODABLE = re.compile(r"Could not decode to UTF-8 column '(.*?)' with text ", re.DOTALL)
_JOURNAL = ("CREATE TABLE IF NOT EXISTS bordergate_migration (batch INTEGER NOT NULL, "
            "home TEXT NOT NULL, lo BIGINT NOT NULL, hi BIGINT NOT NULL, state TEXT NOT NULL, "
            "attempts INTEGER NOT NULL, deletion TEXT, PRIMARY KEY (batch, home))")
#: One row per part and source table: its (record pseudonym, subject pseudonym) pairs,
#: one per line, space-separated (one insert per table instead of one per record: the
#: manifest was 4 % of a migration worker's CPU and most of what VACUUM rewrote).
_MANIFEST = ("CREATE TABLE IF NOT EXISTS bordergate_migration_parts (batch INTEGER NOT NULL, "
             "home TEXT NOT NULL, source_table TEXT NOT NULL, pairs TEXT NOT NULL, "
             "PRIMARY KEY (batch, home, source_table))")
#: The earlier layout (one row per record), still read for a journal it started.
_ROW_MANIFEST = "bordergate_migration_manifest"


def ident(name: str) -> str:
    """A checked SQL identifier (table or column name from the mapping).

    Raises:
        ConfigError: ``mapping_bad_identifier``.
    """
    if not isinstance(name, str) or _IDENT.fullmatch(name) is None:
        raise ConfigError(f"not a plain SQL identifier: {str(name)[:64]!r}",
                          code="mapping_bad_identifier")
    return f'"{name}"'


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One batch's part for one home: the batch's subject-key range and the part's
    progress (``planned``, ``started``, ``stored``, ``deleted``, ``done``), attempts,
    and the deletion's facts (JSON)."""

    batch: int
    home: str
    lo: int
    hi: int
    state: str
    attempts: int
    deletion: str | None


class LegacySource:
    """One legacy database; ``kind`` is ``sqlite`` or ``postgres``."""

    def __init__(self, kind: str, conn: Any, path: Path | None = None) -> None:
        self.kind = kind
        self.path = path
        self._conn = conn
        self._mark = "?" if kind == "sqlite" else "%s"
        self._row_manifest: bool | None = None  # see _has_row_manifest

    def sql(self, text: str) -> str:
        """``text`` with ``?`` marks in this driver's style."""
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def marks(self, count: int) -> str:
        return ",".join([self._mark] * count)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            undecodable = _UNDECODABLE.match(str(exc))
            if undecodable is not None:
                # sqlite3's message quotes the value (found by a review: a protected
                # value of the source printed by `migrate run`, as a retryable error)
                raise InvalidInput(f"a text value in column {undecodable.group(1)[:64]!r} "
                                   "of the legacy source is not UTF-8",
                                   code="source_text_not_utf8") from None
            raise Unavailable(f"legacy source failed: {type(exc).__name__}: {exc}",
                              code="source_unavailable") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise Unavailable(f"legacy source failed: {type(exc).__name__}",
                                  code="source_unavailable") from exc
            raise

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query (read-only; ``?`` marks).

        Raises:
            Unavailable: ``source_unavailable``.
        """
        with self._errors():
            cur = self._conn.execute(self.sql(text), tuple(params))
            rows: list[tuple[Any, ...]] = cur.fetchall()
            if self.kind == "postgres":
                self._conn.commit()
            return rows

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One durable transaction; yields a cursor taking ``?``-marked SQL via :meth:`sql`.

        Raises:
            Unavailable: ``source_unavailable``.
        """
        with self._errors():
            if self.kind == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
            cur = self._conn.cursor()
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()

    def columns(self, table: str) -> list[str]:
        """The column names of ``table`` in declaration order ([] if no such table)."""
        if self.kind == "sqlite":
            return [r[1] for r in self.query(f"PRAGMA table_info({ident(table)})")]
        return [r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]

    def tables(self) -> list[str]:
        """The names of the database's tables (its current schema's tables and
        materialized views, for PostgreSQL)."""
        if self.kind == "sqlite":
            return [str(r[0]) for r in self.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return [str(r[0]) for r in self.query(  # materialized views hold copies too
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE' UNION SELECT matviewname "
            "FROM pg_matviews WHERE schemaname = current_schema() ORDER BY 1")]

    def triggers(self, tables: Sequence[str]) -> list[str]:
        """``table: trigger`` of every trigger (and, for PostgreSQL, rule) on ``tables``,
        and ``table: foreign key ... ON DELETE ...`` of every foreign key referencing
        one of them whose deletion action changes the referring row (``CASCADE``,
        ``SET NULL``, ``SET DEFAULT``): what the database does on a deletion beyond
        deleting the rows named, which can copy them elsewhere or delete rows never
        migrated."""
        if self.kind == "sqlite":
            found = self.query("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
        else:
            found = self.query(
                "SELECT event_object_table, trigger_name FROM information_schema.triggers "
                "WHERE event_object_schema = current_schema() UNION SELECT tablename, rulename "
                "FROM pg_rules WHERE schemaname = current_schema()")
        wanted = set(tables)
        out = {f"{t}: {n}" for t, n in found if str(t) in wanted}
        # a foreign key whose deletion action changes another row: deleting a migrated
        # row would delete (or rewrite) a row of another subject, maybe never migrated
        if self.kind == "sqlite":
            for table in self.tables():
                for fk in self.query(f"PRAGMA foreign_key_list({ident(table)})"):
                    if str(fk[2]) in wanted and str(fk[6]).upper() in _CHANGING:
                        out.add(f"{table}: foreign key {fk[3]} ON DELETE {str(fk[6]).upper()}")
        else:
            for table, referenced, action in self.query(
                    "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, "
                    "c.confdeltype::text FROM pg_constraint c WHERE c.contype = 'f' "
                    "AND c.confdeltype IN ('c', 'n', 'd')"):
                if str(referenced) in wanted:
                    name = {"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}[str(action)]
                    out.add(f"{table}: foreign key to {referenced} ON DELETE {name}")
        return sorted(out)

    # -- the batch journal ------------------------------------------------
    def start_journal(self, units: Sequence[tuple[int, str, int, int]]
                      ) -> dict[tuple[int, str], JournalRow]:
        """The journal, created with ``units`` (batch, home, lo, hi) if no run started
        yet (a resumed run keeps the first run's batches, whatever was deleted since)."""
        found = self.journal()
        if found:
            if "batch" not in self.columns("bordergate_migration_parts"):
                with self.transaction() as cur:  # a journal an earlier version started
                    cur.execute(_MANIFEST)
            return found
        with self.transaction() as cur:
            cur.execute(_JOURNAL)
            cur.execute(_MANIFEST)
            cur.executemany(self.sql(
                "INSERT INTO bordergate_migration VALUES (?, ?, ?, ?, 'planned', 0, NULL)"),
                list(units))
        return self.journal()

    def journal(self) -> dict[tuple[int, str], JournalRow]:
        """Every (batch, home) part's journal row (empty if no run has started)."""
        if "batch" not in self.columns("bordergate_migration"):
            return {}
        return {(int(r[0]), str(r[1])): JournalRow(int(r[0]), str(r[1]), int(r[2]), int(r[3]),
                                                   str(r[4]), int(r[5]), r[6])
                for r in self.query(
            "SELECT batch, home, lo, hi, state, attempts, deletion FROM bordergate_migration "
            "ORDER BY batch, home")}

    def set_state(self, cur: Any, row: JournalRow, state: str, *, attempts: int,
                  deletion: str | None = None) -> None:
        """Move one part to ``state`` (inside the caller's transaction)."""
        cur.execute(self.sql("UPDATE bordergate_migration SET state = ?, attempts = ?, "
                             "deletion = COALESCE(?, deletion) WHERE batch = ? AND home = ?"),
                    (state, attempts, deletion, row.batch, row.home))

    def manifest(self) -> list[tuple[int, str, str, str, str]]:
        """(batch, home, table, record pseudonym, subject pseudonym) of every stored batch."""
        out: list[tuple[int, str, str, str, str]] = []
        if "batch" in self.columns("bordergate_migration_parts"):
            for batch, home, table, pairs in self.query(
                    "SELECT batch, home, source_table, pairs FROM bordergate_migration_parts"):
                for line in str(pairs).splitlines():
                    record, _, subject = line.partition(" ")
                    out.append((int(batch), str(home), str(table), record, subject))
        if self._has_row_manifest():
            out += [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in self.query(
                f"SELECT batch, home, source_table, record, subject FROM {_ROW_MANIFEST}")]  # noqa: S608
        return out

    def part_manifest(self, batch: int, home: str) -> dict[str, set[str]]:
        """Per source table, the record pseudonyms one part stored (its manifest)."""
        out: dict[str, set[str]] = {}
        if "batch" in self.columns("bordergate_migration_parts"):
            for table, pairs in self.query(
                    "SELECT source_table, pairs FROM bordergate_migration_parts "
                    "WHERE batch = ? AND home = ?", (batch, home)):
                out.setdefault(str(table), set()).update(
                    line.partition(" ")[0] for line in str(pairs).splitlines())
        if self._has_row_manifest():
            for table, record in self.query(
                    f"SELECT source_table, record FROM {_ROW_MANIFEST} "  # noqa: S608
                    "WHERE batch = ? AND home = ?", (batch, home)):
                out.setdefault(str(table), set()).add(str(record))
        return out

    def _has_row_manifest(self) -> bool:
        """Whether the source holds the earlier per-record manifest (looked at once:
        nothing creates it any more, and a part's manifest is set once per part)."""
        if self._row_manifest is None:
            self._row_manifest = "batch" in self.columns(_ROW_MANIFEST)
        return self._row_manifest

    def set_manifest(self, cur: Any, batch: int, home: str,
                     rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Replace one part's manifest (pseudonyms only) inside the caller's transaction.

        ``rows`` are (home, table, record pseudonym, subject pseudonym)."""
        cur.execute(self.sql("DELETE FROM bordergate_migration_parts WHERE batch = ? "
                             "AND home = ?"), (batch, home))
        if self._has_row_manifest():
            cur.execute(self.sql(f"DELETE FROM {_ROW_MANIFEST} WHERE batch = ? "  # noqa: S608
                                 "AND home = ?"), (batch, home))
        tables: dict[str, list[str]] = {}
        for _, table, record, subject in rows:
            if " " in record or "\n" in record or " " in subject or "\n" in subject:
                raise ValueError("a pseudonym holds a space or a line break")
            tables.setdefault(table, []).append(f"{record} {subject}")
        cur.executemany(self.sql("INSERT INTO bordergate_migration_parts VALUES (?, ?, ?, ?)"),
                        [(batch, home, table, "\n".join(lines))
                         for table, lines in tables.items()])

    # -- compaction -------------------------------------------------------
    def compact(self, tables: Sequence[str]) -> None:
        """Make deleted rows unrecoverable from this database as far as it can.

        Raises:
            Unavailable: ``source_unavailable``.
        """
        with self._errors():
            if self.kind == "sqlite":
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            self._conn.commit()
            self._conn.autocommit = True
            try:
                for table in tables:
                    self._conn.execute(f"VACUUM FULL {ident(table)}")
            finally:
                self._conn.autocommit = False

    def close(self) -> None:
        with self._errors():
            self._conn.close()


def open_source(url: str, *, base_dir: Path | None = None) -> LegacySource:
    """Open a legacy database (created empty if a SQLite file does not exist).

    Raises:
        ConfigError: ``source_url`` for an unknown form.
        Unavailable: ``source_unavailable``.
    """
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        try:
            conn = psycopg.connect(url)
        except psycopg.Error as exc:
            raise Unavailable(f"cannot reach the legacy source: {type(exc).__name__}",
                              code="source_unavailable") from exc
        return LegacySource("postgres", conn)
    if url.startswith("sqlite:"):
        target = url.removeprefix("sqlite:")
        target = target[2:] if target.startswith("//") else target
    elif url.endswith(".db"):
        target = url
    else:
        raise ConfigError(f"unknown legacy source {url[:80]!r}: use sqlite:PATH or "
                          "postgresql://…", code="source_url")
    path = Path(target)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        # timeout: the homes' workers (migration.parallel) take turns writing
        lite = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=120)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "secure_delete = ON",
                       "foreign_keys = ON"):
            lite.execute(f"PRAGMA {pragma}")
    except sqlite3.Error as exc:
        raise Unavailable(f"cannot open the legacy source {path}: {exc}",
                          code="source_unavailable") from exc
    return LegacySource("sqlite", _SqliteAutocommit(lite), path)


class _SqliteAutocommit:
    """sqlite3 in autocommit mode with explicit BEGIN/COMMIT, shaped like psycopg's
    connection (``execute``, ``cursor``, ``commit``, ``rollback``, ``close``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def cursor(self) -> sqlite3.Cursor:
        return self._conn.cursor()

    def commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()

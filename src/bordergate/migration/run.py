"""``bordergate migrate run``: the resumable batch loop.

Each batch (a range of subject keys fixed by the first run, kept in the
source's journal) goes through four states, each reached durably:

1. ``started``: the attempt is counted (a later attempt is a retry, and its
   entries say so);
2. per home: ``migration`` entries and the ``key-event`` of each new data key
   are durable in the home's log, *then* the records, the new data keys and
   the legacy-id map rows are written to the home's store in one
   transaction; then ``stored``, with the batch's manifest (record and subject
   pseudonyms, for ``verify``), in one source transaction;
3. ``deleted``: the batch's migrated rows are deleted from the source in the
   same transaction that records the deletion's counts and key digests;
4. ``done``: each home's ``legacy-deletion`` entry is durable.

A kill at any point leaves a state from which a new run finishes the job:
a batch interrupted before ``stored`` is imported again under the same
subject ids (found through each home's map) and the same record ids; one
interrupted after is not imported again.  Nothing is deleted from the source
before every home's copy is durable and logged.  After the last batch the
source is compacted (``LegacySource.compact``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bordergate.errors import Conflict
from bordergate.migration.evidence import (
    DeletionFacts,
    MigrationFacts,
    deletion_entry,
    legacy_keys_digest,
    migration_entry,
    records_root,
)
from bordergate.migration.homes import Home, HomeBatch
from bordergate.migration.mapping import MigrationMapping, TableMapping
from bordergate.migration.plan import Plan, subject_homes
from bordergate.migration.source import JournalRow, LegacySource, ident
from bordergate.residency.schema import FieldSpec, FieldType, Schema
from bordergate.subjects import SubjectId

__all__ = ["BatchRows", "RunReport", "homes_needed", "read_batch", "run_migration"]

Progress = Callable[[int, int], None]  # (records done in this call, batch number)


@dataclass
class BatchRows:
    """One batch's rows that have a home: per table, (key, owner, values) per home."""

    subjects: dict[int, tuple[str, str]]  # key -> (legacy id, home)
    tables: dict[str, dict[str, list[tuple[Any, int, dict[str, Any]]]]]

    @property
    def records(self) -> int:
        return sum(len(rows) for per_home in self.tables.values()
                   for rows in per_home.values())


@dataclass
class RunReport:
    """What a run did."""

    batches: int
    batches_done_before: int
    retried: int
    records: int
    seconds: float


def _as_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _as_str(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else str(value)


def _converter(spec: FieldSpec) -> Callable[[Any], Any] | None:
    """How a source value becomes what the schema field's type expects (SQLite has no
    booleans; an integer column may feed a string field), or None: as it is."""
    if spec.type is FieldType.BOOLEAN:
        return _as_bool
    return _as_str if spec.type is FieldType.STRING else None


def read_batch(source: LegacySource, mapping: MigrationMapping, lo: int, hi: int,
               specs: Mapping[str, Mapping[str, FieldSpec]], *,
               values: bool = True) -> BatchRows:
    """Read the rows of the subjects with keys in [lo, hi] whose home is decided
    (without their values when ``values`` is false: to delete them)."""
    found = subject_homes(source, mapping, f"WHERE {ident(mapping.subject_key)} BETWEEN ? AND ?",
                          (lo, hi))
    subjects = {k: (legacy, home) for k, (legacy, home) in found.items() if home is not None}
    tables: dict[str, dict[str, list[tuple[Any, int, dict[str, Any]]]]] = {}
    for t in mapping.tables:
        names = list(t.fields) if values else []
        cols = "".join(", " + ident(t.fields[n]) for n in names)
        sql = (f"SELECT {ident(t.key)}, {ident(t.owner)}{cols} FROM {ident(t.table)} "  # noqa: S608
               f"WHERE {ident(t.owner)} BETWEEN ? AND ? ORDER BY {ident(t.key)}")
        per_home: dict[str, list[tuple[Any, int, dict[str, Any]]]] = {}
        convert = [(n, _converter(specs[t.table][n])) for n in names]
        for key, owner, *row in source.query(sql, (lo, hi)):
            subject = subjects.get(int(owner))
            if subject is None:
                continue  # dirty: its owner has no home; left in place
            per_home.setdefault(subject[1], []).append((key, int(owner), {
                n: (c(v) if c is not None else v)
                for (n, c), v in zip(convert, row, strict=True)}))
        tables[t.table] = per_home
    return BatchRows(subjects, tables)


def homes_needed(source: LegacySource, plan: Plan) -> set[str]:
    """The homes a run must open: those with rows left in the source, and those whose
    ``legacy-deletion`` entries an interrupted run still owes."""
    needed = set(plan.homes)
    for row in source.journal().values():
        if row.state == "deleted":
            needed.update(json.loads(row.deletion or "{}"))
    return needed


class _Migration:
    def __init__(self, source: LegacySource, mapping: MigrationMapping, schema: Schema,
                 homes: Mapping[str, Home], clock: Callable[[], float]) -> None:
        self.source = source
        self.mapping = mapping
        self.homes = homes
        self.clock = clock
        self.specs = {t.table: schema.collection(t.collection).fields for t in mapping.tables}

    def import_batch(self, row: JournalRow) -> int:
        attempt = row.attempts + 1
        with self.source.transaction() as cur:
            self.source.set_state(cur, row.batch, "started", attempts=attempt)
        rows = read_batch(self.source, self.mapping, row.lo, row.hi, self.specs)
        manifest: list[tuple[str, str, str, str]] = []
        for code, home in sorted(self.homes.items()):
            manifest.extend(self._import_home(row.batch, attempt, rows, code, home))
        with self.source.transaction() as cur:
            self.source.set_manifest(cur, row.batch, manifest)
            self.source.set_state(cur, row.batch, "stored", attempts=attempt)
        return rows.records

    def _import_home(self, batch_no: int, attempt: int, rows: BatchRows, code: str,
                     home: Home) -> list[tuple[str, str, str, str]]:
        mine = {k: legacy for k, (legacy, h) in rows.subjects.items() if h == code}
        if not mine:
            return []
        batch = HomeBatch()
        subjects: dict[int, SubjectId] = {}
        pseudonymous: dict[int, str] = {}
        new_subjects = 0
        for key, legacy in mine.items():
            subject = home.subject_of(legacy)
            if subject is None:
                subject = SubjectId.mint(code)
                home.seal_legacy_id(legacy, subject, batch)
                new_subjects += 1
            subjects[key] = subject
            pseudonymous[key] = home.pseudonyms.subject(str(subject))
        manifest: list[tuple[str, str, str, str]] = []
        now = self.clock()
        for t in self.mapping.tables:
            table_rows = rows.tables[t.table].get(code, [])
            if not table_rows:
                continue
            pseudonyms: list[str] = []
            owners: set[int] = set()
            for key, owner, values in table_rows:
                record_id = home.record_id(batch_no, t.table, key)
                home.seal(t.collection, record_id, subjects[owner], values, batch)
                record = home.pseudonyms.record(t.collection, record_id)
                pseudonyms.append(record)
                owners.add(owner)
                manifest.append((code, t.table, record, pseudonymous[owner]))
            facts = MigrationFacts(
                batch=batch_no, attempt=attempt, table=t.table, collection=t.collection,
                source=self.source.kind,
                legacy_keys=legacy_keys_digest(t.table, (k for k, _, _ in table_rows)),
                records=len(table_rows), subjects=len(owners),
                new_subjects=new_subjects if t.table == self.mapping.subject_table else 0,
                records_root=records_root(pseudonyms), fields=tuple(sorted(t.fields)),
                dropped=dict(t.drop))
            batch.entries.append(self._entry(home, t, facts, now))
        home.commit(batch)
        return manifest

    def _entry(self, home: Home, t: TableMapping, facts: MigrationFacts, now: float) -> bytes:
        outcome, decisions = home.decide(t.collection, sorted(t.fields), now)
        entry = migration_entry(facts, home=home.code, time=now,
                                principal=home.principal.to_json(),
                                bundle=home.engine.digest, outcome=outcome, decisions=decisions)
        if outcome != "allow":
            home.append([entry])  # logged like a gateway's refused write; nothing written
            raise Conflict(f"policy of {home.code} refuses the migration's write to "
                           f"{t.collection}", code="migration_denied")
        return entry

    def delete_batch(self, row: JournalRow) -> None:
        rows = read_batch(self.source, self.mapping, row.lo, row.hi, self.specs, values=False)
        facts: dict[str, dict[str, tuple[int, str]]] = {}
        for t in self.mapping.tables:
            for code, table_rows in rows.tables[t.table].items():
                facts.setdefault(code, {})[t.table] = (
                    len(table_rows), legacy_keys_digest(t.table, (k for k, _, _ in table_rows)))
        with self.source.transaction() as cur:
            # children first: their owners' rows go last (foreign keys)
            for t in reversed(self.mapping.tables):
                keys = [k for per_home in rows.tables[t.table].values() for k, _, _ in per_home]
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    cur.execute(self.source.sql(
                        f"DELETE FROM {ident(t.table)} WHERE {ident(t.key)} "  # noqa: S608
                        f"IN ({','.join('?' * len(chunk))})"), chunk)
            self.source.set_state(cur, row.batch, "deleted", attempts=row.attempts,
                                  deletion=json.dumps(facts, sort_keys=True))

    def log_deletion(self, row: JournalRow) -> None:
        facts: dict[str, dict[str, list[Any]]] = json.loads(row.deletion or "{}")
        now = self.clock()
        for code, tables in sorted(facts.items()):
            self.homes[code].append([deletion_entry(DeletionFacts(
                batch=row.batch, attempt=row.attempts, source=self.source.kind,
                tables={t: (int(n), str(d)) for t, (n, d) in sorted(tables.items())}),
                home=code, time=now)])
        with self.source.transaction() as cur:
            self.source.set_state(cur, row.batch, "done", attempts=row.attempts)


def run_migration(source: LegacySource, mapping: MigrationMapping, plan: Plan,
                  homes: Mapping[str, Home], *, schema: Schema,
                  progress: Progress | None = None,
                  clock: Callable[[], float] = time.time) -> RunReport:
    """Migrate every batch not done yet, then compact the source.

    ``homes`` must hold every home of :func:`homes_needed` (each opened with its
    own custodian's files); with nothing left to migrate it may be empty.

    Raises:
        ConfigError: ``migration_unmapped_columns`` (nothing done), or a home
            of the plan is not open (``migration_home_missing``).
        Conflict: ``migration_denied`` (a home's policy refused; logged).
        Unavailable: source, store, keys or log failed (run again to resume).
    """
    from bordergate.errors import ConfigError

    plan.require_runnable()
    missing = sorted(homes_needed(source, plan) - set(homes))
    if missing:
        raise ConfigError(f"home {missing[0]} of the plan is not open",
                          code="migration_home_missing")
    started = clock()
    journal = source.start_journal(plan.batches)
    work = _Migration(source, mapping, schema, homes, clock)
    done_before = sum(1 for r in journal.values() if r.state == "done")
    retried = records = 0
    for number in sorted(journal):
        row = journal[number]
        if row.state in ("planned", "started"):
            retried += row.state == "started"
            count = work.import_batch(row)
            records += count
            row = source.journal()[number]
        if row.state == "stored":
            work.delete_batch(row)
            row = source.journal()[number]
        if row.state == "deleted":
            work.log_deletion(row)
        if progress is not None:
            progress(records, number)
    source.compact([t.table for t in mapping.tables])
    return RunReport(batches=len(journal), batches_done_before=done_before, retried=retried,
                     records=records, seconds=clock() - started)

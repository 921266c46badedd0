"""``bordergate migrate run``: the resumable batch loop.

Each batch (a range of subject keys fixed by the first run, kept in the
source's journal) has one part per home whose subjects it holds; each part
(run by that home's custodian: ``only``) goes through five states, each
reached durably:

1. ``started``: the attempt is counted (a later attempt is a retry, and its
   entries say so);
2. per home: ``migration`` entries and the ``key-event`` of each new data key
   are durable in the home's log (with a key service the ``migration`` entries
   first, then the key service creates the new data keys against them, then
   the records are sealed: :mod:`bordergate.migration.key_service`), *then*
   the records, the new data keys and
   the legacy-id map rows are written to the home's store in one
   transaction; then ``stored``, with the batch's manifest (record and subject
   pseudonyms, for ``verify``), in one source transaction;
3. ``deleted``: the batch's migrated rows are deleted from the source in the
   same transaction that records the deletion's counts and key digests;
4. ``logged``: the home's ``legacy-deletion`` entry is durable;
5. ``done``: after the run's last part, once per home, a published checkpoint
   of the home's log covers everything it sequenced (``Home.publish``).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bordergate.errors import ConfigError, Conflict
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
from bordergate.migration.plan import Plan, integer_key, subject_homes
from bordergate.migration.source import JournalRow, LegacySource, ident
from bordergate.residency.schema import FieldSpec, FieldType, Schema
from bordergate.subjects import SubjectId

__all__ = ["BatchRows", "RunReport", "homes_needed", "read_batch", "run_migration"]

Progress = Callable[[int, int], None]  # (records done in this call, batch number)

#: Owner keys named in one query of a batch part (well under SQLite's and
#: PostgreSQL's limits on parameters).
_OWNERS_PER_QUERY = 900
#: Source rows one batch part reads at most, over all its tables (each row is held
#: in memory with its values, then sealed, until the part's store write): about
#: 200 MB of Python objects for rows of the generated dataset's size.
MAX_PART_ROWS = 250_000


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
    #: worker processes per home (:func:`~bordergate.migration.parallel.run_parallel`);
    #: empty for a run in one process
    workers: dict[str, int] = field(default_factory=dict)


def _as_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _as_str(value: Any) -> Any:
    """A number in a string field as its text; bytes are left for the schema to refuse
    (``wrong_type``): ``str()`` made a BLOB its Python repr, stored as the value while
    the source's bytes were deleted (found by a review)."""
    return value if value is None or isinstance(value, (str, bytes, bytearray, memoryview)) \
        else str(value)


def _converter(spec: FieldSpec) -> Callable[[Any], Any] | None:
    """How a source value becomes what the schema field's type expects (SQLite has no
    booleans; an integer column may feed a string field), or None: as it is."""
    if spec.type is FieldType.BOOLEAN:
        return _as_bool
    return _as_str if spec.type is FieldType.STRING else None


def read_batch(source: LegacySource, mapping: MigrationMapping, lo: int, hi: int,
               specs: Mapping[str, Mapping[str, FieldSpec]], *,
               values: bool = True, home: str | None = None) -> BatchRows:
    """Read the rows of the subjects with keys in [lo, hi] whose home is decided
    (without their values when ``values`` is false: to delete them); with
    ``home``, only the rows of that home's subjects (one part of the batch)."""
    found = subject_homes(source, mapping, f"WHERE {ident(mapping.subject_key)} BETWEEN ? AND ?",
                          (lo, hi))
    subjects = {k: (legacy, h) for k, (legacy, h) in found.items()
                if h is not None and (home is None or h == home)}
    # with ``home``, the owners are named in the query (chunks of _OWNERS_PER_QUERY):
    # a part reads its own home's rows only, not the whole batch's once per home
    owners = sorted(subjects)
    chunks = ([owners[i:i + _OWNERS_PER_QUERY] for i in range(0, len(owners), _OWNERS_PER_QUERY)]
              if home is not None else [[]])
    tables: dict[str, dict[str, list[tuple[Any, int, dict[str, Any]]]]] = {}
    left = MAX_PART_ROWS
    for t in mapping.tables:
        names = list(t.fields) if values else []
        cols = "".join(", " + ident(t.fields[n]) for n in names)
        converters = [(n, c) for n in names if (c := _converter(specs[t.table][n])) is not None]
        per_home: dict[str, list[tuple[Any, int, dict[str, Any]]]] = {}
        for chunk in chunks:
            named = f" AND {ident(t.owner)} IN ({','.join('?' * len(chunk))})" if chunk else ""
            sql = (f"SELECT {ident(t.key)}, {ident(t.owner)}{cols} "  # noqa: S608
                   f"FROM {ident(t.table)} WHERE {ident(t.owner)} BETWEEN ? AND ?{named} "
                   f"ORDER BY {ident(t.key)} LIMIT {left + 1}")
            read = source.query(sql, (lo, hi, *chunk))
            left -= len(read)
            if left < 0:
                # found by a review: one account owning 1.5 million rows made the part
                # read them all at once (MemoryError with a trace under a 1 GB limit)
                raise ConfigError(
                    f"the batch of subject keys {lo}-{hi} holds more than {MAX_PART_ROWS} "
                    "rows; run with a smaller --batch-subjects (a subject owning more "
                    "rows than that cannot be migrated)", code="migration_part_too_large")
            for key, owner, *row in read:
                owner_key = integer_key(owner)
                subject = subjects.get(owner_key) if owner_key is not None else None
                if owner_key is None or subject is None:
                    continue  # dirty (its owner is not a subject with a home; left in place)
                record = dict(zip(names, row, strict=True))
                for n, c in converters:
                    record[n] = c(record[n])
                per_home.setdefault(subject[1], []).append((key, owner_key, record))
        if len(chunks) > 1:
            for rows in per_home.values():
                rows.sort(key=lambda r: r[0])
        _require_unique(t.table, [key for rows in per_home.values() for key, _, _ in rows])
        tables[t.table] = per_home
    return BatchRows(subjects, tables)


def _require_unique(table: str, keys: Sequence[Any]) -> None:
    """Refuse a batch whose rows of ``table`` do not each have a key of their own (as
    text: the record id hashes ``table/key``): rows the plan saw unique, changed since.

    Raises:
        ConfigError: ``migration_keys_not_unique``.
    """
    texts = [_key_text(k) for k in keys]
    if None in keys or len(set(texts)) != len(texts):
        raise ConfigError(f"rows of {table} share a key or have none; a row is deleted "
                          "by its key", code="migration_keys_not_unique")


def _key_text(key: object) -> str:
    """A source key as its record id reads it (``table/key``)."""
    return str(key)


def homes_needed(source: LegacySource, plan: Plan, only: str | None = None) -> set[str]:
    """The homes a run must open: those with parts not done (all parts of the plan
    before the first run), or only ``only``'s."""
    journal = source.journal()
    if journal:
        needed = {home for (_, home), row in journal.items() if row.state != "done"}
    else:
        needed = {home for _, home, _, _ in plan.units}
    return needed & {only} if only is not None else needed


class _Migration:
    def __init__(self, source: LegacySource, mapping: MigrationMapping, schema: Schema,
                 homes: Mapping[str, Home], clock: Callable[[], float]) -> None:
        self.source = source
        self.mapping = mapping
        self.homes = homes
        self.clock = clock
        self.specs = {t.table: schema.collection(t.collection).fields for t in mapping.tables}
        # the source keys a part just stored, per table: what its deletion removes
        # (read again from the source when a resumed run starts at ``stored``)
        self._stored_keys: dict[tuple[int, str], dict[str, list[Any]]] = {}

    def import_part(self, row: JournalRow) -> int:
        attempt = row.attempts + 1
        with self.source.transaction() as cur:
            self.source.set_state(cur, row, "started", attempts=attempt)
        rows = read_batch(self.source, self.mapping, row.lo, row.hi, self.specs, home=row.home)
        manifest = self._import_home(row.batch, attempt, rows, row.home, self.homes[row.home])
        with self.source.transaction() as cur:
            self.source.set_manifest(cur, row.batch, row.home, manifest)
            self.source.set_state(cur, row, "stored", attempts=attempt)
        self._stored_keys[(row.batch, row.home)] = {
            table: [k for k, _, _ in per_home.get(row.home, [])]
            for table, per_home in rows.tables.items()}
        return len(manifest)

    def _import_home(self, batch_no: int, attempt: int, rows: BatchRows, code: str,
                     home: Home) -> list[tuple[str, str, str, str]]:
        mine = {k: legacy for k, (legacy, h) in rows.subjects.items() if h == code}
        if not mine:
            return []
        batch = HomeBatch()
        subjects: dict[int, SubjectId] = {}
        pseudonymous: dict[int, str] = {}
        # with a key service, keys come only against the logged entries: every
        # record is sealed after the batch's entries are durable (Home.create_keys)
        later: list[Callable[[], None]] | None = None if home.key_service is None else []
        minted: list[SubjectId] = []
        known = home.subjects_of(list(mine.values()))
        for key, legacy in mine.items():
            subject = known.get(legacy)
            if subject is None:
                subject = SubjectId.mint(code)
                minted.append(subject)
                if later is None:
                    home.seal_legacy_id(legacy, subject, batch, minted=True)
                else:
                    later.append(partial(home.seal_legacy_id, legacy, subject, batch,
                                         minted=True))
            subjects[key] = subject
            pseudonymous[key] = home.pseudonyms.subject(str(subject))
        new_subjects = len(minted)
        manifest: list[tuple[str, str, str, str]] = []
        pairs: list[list[tuple[SubjectId, str]]] = []
        now = self.clock()
        for t in self.mapping.tables:
            table_rows = rows.tables[t.table].get(code, [])
            if not table_rows:
                continue
            pseudonyms: list[str] = []
            owners: set[int] = set()
            pairs.append([])
            for key, owner, values in table_rows:
                record_id = home.record_id(batch_no, t.table, key)
                if later is None:
                    home.seal(t.collection, record_id, subjects[owner], values, batch)
                else:
                    later.append(partial(home.seal, t.collection, record_id, subjects[owner],
                                         values, batch))
                pairs[-1].append((subjects[owner], record_id))
                record = home.pseudonyms.record(t.collection, record_id)
                pseudonyms.append(record)
                owners.add(owner)
                manifest.append((code, t.table, record, pseudonymous[owner]))
            facts = MigrationFacts(
                batch=batch_no, attempt=attempt, table=t.table, collection=t.collection,
                source=self.source.kind,
                legacy_keys=legacy_keys_digest(t.table, (k for k, _, _ in table_rows),
                                               home.pseudonyms.digest_hex),
                records=len(table_rows), subjects=len(owners),
                new_subjects=new_subjects if t.table == self.mapping.subject_table else 0,
                records_root=records_root(pseudonyms), fields=tuple(sorted(t.fields)),
                dropped=dict(t.drop))
            batch.entries.append(self._entry(home, t, facts, now))
        if later is not None:
            home.create_keys(batch, pairs, minted)
            for step in later:
                step()
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

    def delete_part(self, row: JournalRow) -> None:
        stored = self._stored_keys.pop((row.batch, row.home), None)
        if stored is None:
            stored = self._stored_rows(row)
        triggers = self.source.triggers([t.table for t in self.mapping.tables])
        if triggers:  # added since the plan: checked before every deletion
            raise ConfigError(f"the source runs code on its mapped tables ({triggers[0]}): "
                              "a trigger or rule can copy the rows a part deletes",
                              code="migration_source_triggers")
        facts: dict[str, tuple[int, str]] = {}
        for t in self.mapping.tables:
            if stored[t.table]:
                facts[t.table] = (len(stored[t.table]), legacy_keys_digest(
                    t.table, stored[t.table], self.homes[row.home].pseudonyms.digest_hex))
        with self.source.transaction() as cur:
            # children first: their owners' rows go last (foreign keys)
            for t in reversed(self.mapping.tables):
                keys = stored[t.table]
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    cur.execute(self.source.sql(
                        f"DELETE FROM {ident(t.table)} WHERE {ident(t.key)} "  # noqa: S608
                        f"IN ({','.join('?' * len(chunk))})"), chunk)
                    if cur.rowcount > len(chunk):
                        # another row shares a key (of another subject, maybe another
                        # home): nothing of the part is deleted (the transaction rolls back)
                        raise ConfigError(
                            f"deleting {len(chunk)} migrated rows of {t.table} would delete "
                            f"{cur.rowcount}: a key names several rows",
                            code="migration_keys_not_unique")
            self.source.set_state(cur, row, "deleted", attempts=row.attempts,
                                  deletion=json.dumps(facts, sort_keys=True))

    def resumed_part_grew(self, row: JournalRow) -> bool:
        """For a part found at ``stored`` (a run killed after its store write): whether
        the source now holds rows of its subjects that the part did not store (the
        legacy business still running).  Then the part is imported again (a retry,
        logged as such) rather than deleted: its deletion may remove only rows its
        home stored, and a subject's new rows would otherwise stay behind it (found by
        a review: the resumed deletion read the part's rows again and deleted a row
        added after the store write, and ``verify`` said OK).  Otherwise the stored
        rows are kept for :meth:`delete_part`."""
        if (row.batch, row.home) in self._stored_keys:
            return False  # stored by this run: its keys are the ones it read
        stored = self._stored_rows(row)
        now = read_batch(self.source, self.mapping, row.lo, row.hi, self.specs,
                         values=False, home=row.home)
        for table, per_home in now.tables.items():
            have = set(map(_key_text, stored[table]))
            if any(_key_text(key) not in have for key, _, _ in per_home.get(row.home, [])):
                return True
        self._stored_keys[(row.batch, row.home)] = stored
        return False

    def _stored_rows(self, row: JournalRow) -> dict[str, list[Any]]:
        """The source keys of the rows a part stored: the rows owned by the batch's
        subject keys (whatever their home says now) whose record the part's manifest
        names; never a row the source gained after the store write."""
        home = self.homes[row.home]
        manifest = self.source.part_manifest(row.batch, row.home)
        stored: dict[str, list[Any]] = {}
        for t in self.mapping.tables:
            names = manifest.get(t.table, set())
            keys = self.source.query(
                f"SELECT {ident(t.key)} FROM {ident(t.table)} "  # noqa: S608
                f"WHERE {ident(t.owner)} BETWEEN ? AND ? ORDER BY {ident(t.key)}",
                (row.lo, row.hi)) if names else []
            stored[t.table] = [
                key for (key,) in keys
                if home.pseudonyms.record(t.collection, home.record_id(row.batch, t.table, key))
                in names]
        return stored

    def log_deletion(self, row: JournalRow) -> None:
        tables: dict[str, list[Any]] = json.loads(row.deletion or "{}")
        self.homes[row.home].append([deletion_entry(DeletionFacts(
            batch=row.batch, attempt=row.attempts, source=self.source.kind,
            tables={t: (int(n), str(d)) for t, (n, d) in sorted(tables.items())}),
            home=row.home, time=self.clock())] if tables else [])
        with self.source.transaction() as cur:
            self.source.set_state(cur, row, "logged", attempts=row.attempts)

    def finish(self, logged: Sequence[JournalRow]) -> None:
        """Mark ``logged`` parts ``done`` once each home's log has published a checkpoint
        covering everything sequenced so far (theirs included): one publication per
        home and run, not one per part (a log operator publishes on its own interval,
        about a second; waiting for it after every part left the workers idle)."""
        for code in sorted({row.home for row in logged}):
            self.homes[code].publish()
        with self.source.transaction() as cur:
            for row in logged:
                self.source.set_state(cur, row, "done", attempts=row.attempts)


def run_migration(source: LegacySource, mapping: MigrationMapping, plan: Plan,
                  homes: Mapping[str, Home], *, schema: Schema, only: str | None = None,
                  progress: Progress | None = None,
                  clock: Callable[[], float] = time.time, compact: bool = True,
                  share: tuple[int, int] = (0, 1)) -> RunReport:
    """Migrate every batch part not done yet (``only`` one home's: that custodian's
    run), then compact the source (unless ``compact`` is false: a worker of
    :func:`~bordergate.migration.parallel.run_parallel`, whose parent compacts).

    ``share`` ``(i, n)``: only the parts of batches numbered ``i`` modulo ``n``
    (one of ``n`` workers of a home whose log takes several writers; each part
    still goes through its journal states alone).

    ``homes`` must hold every home of :func:`homes_needed` (each opened with its
    own custodian's files); with nothing left to migrate it may be empty.

    Raises:
        ConfigError: ``migration_unmapped_columns`` (nothing done), or a home
            of the plan is not open (``migration_home_missing``).
        Conflict: ``migration_denied`` (a home's policy refused; logged).
        Unavailable: source, store, keys or log failed (run again to resume).
    """
    index, count = share
    if not 0 <= index < count:
        raise ConfigError(f"share {index} of {count} does not exist",
                          code="migration_share_invalid")
    plan.require_runnable()
    missing = sorted(homes_needed(source, plan, only) - set(homes))
    if missing:
        raise ConfigError(f"home {missing[0]} of the plan is not open",
                          code="migration_home_missing")
    started = clock()
    journal = {key: row for key, row in source.start_journal(plan.units).items()
               if (only is None or key[1] == only) and key[0] % count == index}
    work = _Migration(source, mapping, schema, homes, clock)
    done_before = sum(1 for r in journal.values() if r.state == "done")
    retried = records = 0
    logged: list[JournalRow] = []
    for key in sorted(journal):
        row = journal[key]
        if row.state in ("planned", "started"):
            retried += row.state == "started"
            records += work.import_part(row)
            row = source.journal()[key]
        if row.state == "stored" and work.resumed_part_grew(row):
            retried += 1
            records += work.import_part(row)
            row = source.journal()[key]
        if row.state == "stored":
            work.delete_part(row)
            row = source.journal()[key]
        if row.state in ("deleted", "logged"):
            if row.state == "deleted":
                work.log_deletion(row)  # now logged: same part, same attempt
            logged.append(row)
        if progress is not None:
            progress(records, key[0])
    work.finish(logged)
    if compact:
        source.compact([t.table for t in mapping.tables])
    return RunReport(batches=len(journal), batches_done_before=done_before, retried=retried,
                     records=records, seconds=clock() - started)

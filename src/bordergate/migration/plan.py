"""The migration plan: every source column classified, every row given a home or listed.

``make_plan`` reads the source (never writes it) and answers, through the
mapping and the schema:

* for every column of every mapped table its role: ``key``, ``owner``,
  ``legacy_id``, ``home`` (a column of the home rule), ``field`` (with the
  schema field, its class and its data category), ``dropped`` (with the
  mapping's reason) or ``unmapped``.  ``run`` refuses while any column is
  unmapped: deleting the migrated rows would silently delete it too;
* for every home: subjects, records, records per collection, values per
  field class and per data category;
* the dirty rows, never guessed: subjects whose home the rule cannot decide
  (listed by legacy id), rows without an owner or whose owner is not a
  subject (listed as ``table/key``), and the rows owned by a dirty subject
  (counted per table: they stay with their owner);
* the batches: consecutive ranges of subject keys (integers), each holding
  ``batch_subjects`` subjects of the first run.

Data categories are the schema's DSP categories (28 CFR 202.249, the field's
``dsp_category``): :func:`field_category` is the one place that reads them, and
answers ``uncategorised`` for a field that carries none.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bordergate.errors import ConfigError
from bordergate.migration.mapping import MigrationMapping
from bordergate.migration.source import LegacySource, ident
from bordergate.residency.schema import FieldSpec, Schema

__all__ = ["ColumnRole", "HomePlan", "Plan", "field_category", "integer_key", "make_plan",
           "plan_text", "subject_homes"]

_LISTED_DIRTY = 1000  # dirty rows listed by id; beyond that only counted


def field_category(spec: FieldSpec) -> str:
    """The DSP category of a schema field (its ``dsp_category``), or ``uncategorised``."""
    return spec.dsp_category.value if spec.dsp_category is not None else "uncategorised"


@dataclass(frozen=True, slots=True)
class ColumnRole:
    """How one source column is treated."""

    table: str
    column: str
    role: str
    field: str | None = None
    field_class: str | None = None
    category: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("table", self.table), ("column", self.column),
                                  ("role", self.role), ("field", self.field),
                                  ("class", self.field_class), ("category", self.category),
                                  ("reason", self.reason)) if v is not None}


@dataclass
class HomePlan:
    """What one home receives."""

    subjects: int = 0
    records: int = 0
    collections: Counter[str] = field(default_factory=Counter)
    field_classes: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"subjects": self.subjects, "records": self.records,
                "collections": dict(sorted(self.collections.items())),
                "field_classes": dict(sorted(self.field_classes.items())),
                "categories": dict(sorted(self.categories.items()))}


@dataclass
class Plan:
    """The plan of a migration (see the module docstring)."""

    source: str
    columns: list[ColumnRole]
    homes: dict[str, HomePlan]
    dirty_subjects: list[tuple[str, str]]  # (legacy id, reason)
    dirty_rows: list[tuple[str, str]]      # ("table/key", reason)
    dirty_counts: Counter[str]             # table -> rows left in place
    batches: list[tuple[int, int]]
    units: list[tuple[int, str, int, int]]  # (batch, home, lo, hi): one custodian's part
    #: ("table/key" or "table.column", reason): keys that do not name one row
    not_unique: list[tuple[str, str]] = field(default_factory=list)
    #: the subject keys of ``dirty_subjects``, in the same order (listed by ``verify``,
    #: whose results go to the auditor, instead of the legacy ids)
    dirty_subject_keys: list[int] = field(default_factory=list)
    #: ``table: name`` of the triggers (PostgreSQL: and rules) on mapped tables, and
    #: the foreign keys referencing one whose deletion action changes another row
    triggers: list[str] = field(default_factory=list)

    @property
    def unmapped(self) -> list[ColumnRole]:
        return [c for c in self.columns if c.role == "unmapped"]

    @property
    def records(self) -> int:
        return sum(h.records for h in self.homes.values())

    def require_runnable(self) -> None:
        """Raises ConfigError ``migration_unmapped_columns`` naming them, if any, or
        ``migration_keys_not_unique`` naming a key that does not name one row."""
        if self.unmapped:
            names = ", ".join(f"{c.table}.{c.column}" for c in self.unmapped)
            raise ConfigError(f"unmapped source columns: {names}; map them or mark them "
                              "drop = \"reason\" in the mapping", code="migration_unmapped_columns")
        if self.triggers:
            raise ConfigError(f"the source acts on deletions from its mapped tables "
                              f"({self.triggers[0]}"
                              f"{' and more' if len(self.triggers) > 1 else ''}): a trigger or "
                              "rule can copy the rows a part deletes into another table, or "
                              "skip their deletion, and a cascading foreign key deletes rows "
                              "never migrated; drop them before the migration",
                              code="migration_source_triggers")
        if self.not_unique:
            where, reason = self.not_unique[0]
            raise ConfigError(f"{len(self.not_unique)} source keys do not name one row each "
                              f"(first: {where}: {reason}); a row is deleted by its key and "
                              "routed by its owner's, so make the mapping's keys and legacy "
                              "ids unique and not null, and subject keys integers",
                              code="migration_keys_not_unique")

    def for_home(self, home: str) -> dict[str, Any]:
        """The part of the plan one home's custodian runs (its counts, no other home's)."""
        return {"home": home, **self.homes.get(home, HomePlan()).to_json()}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "records": self.records,
            "homes": {h: p.to_json() for h, p in sorted(self.homes.items())},
            "columns": [c.to_json() for c in self.columns],
            "unmapped": [f"{c.table}.{c.column}" for c in self.unmapped],
            "dropped": {f"{c.table}.{c.column}": c.reason for c in self.columns
                        if c.role == "dropped"},
            "dirty": {
                "rows_left_in_place": sum(self.dirty_counts.values()),
                "per_table": dict(sorted(self.dirty_counts.items())),
                "subjects": [{"legacy_id": i, "reason": r} for i, r in self.dirty_subjects],
                "rows": [{"row": i, "reason": r} for i, r in self.dirty_rows],
            },
            "batches": len(self.batches),
            "keys_not_unique": [{"row": i, "reason": r} for i, r in self.not_unique],
            "triggers": list(self.triggers),
        }


def _classify(source: LegacySource, mapping: MigrationMapping, schema: Schema
              ) -> list[ColumnRole]:
    roles: list[ColumnRole] = []
    for t in mapping.tables:
        columns = source.columns(t.table)
        if not columns:
            raise ConfigError(f"the source has no table {t.table!r}", code="mapping_invalid")
        by_column = {c: f for f, c in t.fields.items()}
        coll = schema.collection(t.collection)
        for column in columns:
            if column in by_column:
                spec = coll.fields[by_column[column]]
                roles.append(ColumnRole(t.table, column, "field", spec.name,
                                        spec.field_class.value, field_category(spec)))
            elif column in t.drop:
                roles.append(ColumnRole(t.table, column, "dropped", reason=t.drop[column]))
            elif column == t.key:
                roles.append(ColumnRole(t.table, column, "key"))
            elif column == t.owner:
                roles.append(ColumnRole(t.table, column, "owner"))
            elif t.table == mapping.subject_table and column == mapping.legacy_id:
                roles.append(ColumnRole(t.table, column, "legacy_id"))
            elif t.table == mapping.subject_table and column in mapping.home.columns:
                roles.append(ColumnRole(t.table, column, "home"))
            else:
                roles.append(ColumnRole(t.table, column, "unmapped"))
        missing = (set(t.fields.values()) | {t.key, t.owner}) - set(columns)
        if missing:
            raise ConfigError(f"table {t.table!r} has no column {sorted(missing)[0]!r}",
                              code="mapping_invalid")
    return roles


def integer_key(value: object) -> int | None:
    """A subject key (or an owner column's value) as the batches read it: an integer,
    or None for anything else.  ``int()`` of a value made 1.5 (or '1') subject 1, so
    the rows of one person were routed to the home of another row, under its legacy
    id (found by a review)."""
    return value if type(value) is int else None


def subject_homes(source: LegacySource, mapping: MigrationMapping,
                  where: str = "", params: tuple[Any, ...] = (),
                  not_integer: list[object] | None = None
                  ) -> dict[int, tuple[str, str | None]]:
    """Subject key -> (legacy id, home or None) for the subjects selected by ``where``;
    a subject whose key is not an integer is left out (and added to ``not_integer``)."""
    cols = [mapping.subject_key, mapping.legacy_id, *mapping.home.columns]
    sql = (f"SELECT {', '.join(ident(c) for c in cols)} "  # noqa: S608
           f"FROM {ident(mapping.subject_table)} {where}")
    out: dict[int, tuple[str, str | None]] = {}
    for row in source.query(sql, params):
        key = integer_key(row[0])
        if key is None:
            if not_integer is not None and row[0] is not None:
                not_integer.append(row[0])
            continue
        values = dict(zip(mapping.home.columns, row[2:], strict=True))
        out[key] = (str(row[1]), mapping.home.home(values))
    return out


def make_plan(source: LegacySource, mapping: MigrationMapping, schema: Schema, *,
              batch_subjects: int = 500) -> Plan:
    """Classify and count everything (reads the source only).

    Raises:
        ConfigError: the mapping names a table or column the source lacks.
        Unavailable: ``source_unavailable``.
    """
    columns = _classify(source, mapping, schema)
    not_integer: list[object] = []
    subjects = subject_homes(source, mapping, not_integer=not_integer)
    homes: dict[str, HomePlan] = {}
    dirty_keys = [key for key, (_, home) in sorted(subjects.items()) if home is None]
    dirty_subjects = [(subjects[key][0], "no_home") for key in dirty_keys]
    for home, count in Counter(home for _, home in subjects.values()).items():
        if home is not None:
            homes[home] = HomePlan(subjects=count)
    dirty_rows: list[tuple[str, str]] = []
    dirty_counts: Counter[str] = Counter()
    for t in mapping.tables:
        fields = list(t.fields.items())
        specs = schema.collection(t.collection).fields
        counts = ", ".join(f"COUNT({ident(c)})" for _, c in fields)
        sql = (f"SELECT {ident(t.owner)}, COUNT(*), {counts} FROM {ident(t.table)} "  # noqa: S608
               f"GROUP BY {ident(t.owner)}")
        # per home: [rows, values present per field], summed over its owners first,
        # then classified once per field (not once per owner and field)
        sums: dict[str, list[int]] = {}
        for owner, rows, *present in source.query(sql):
            key = integer_key(owner)
            found = subjects.get(key) if key is not None else None
            if found is None or found[1] is None:
                dirty_counts[t.table] += int(rows)
                continue
            acc = sums.get(found[1])
            if acc is None:
                acc = sums[found[1]] = [0] * (1 + len(fields))
            acc[0] += int(rows)
            for i, n in enumerate(present, 1):
                acc[i] += int(n)
        for home, acc in sums.items():
            plan = homes[home]
            plan.records += acc[0]
            plan.collections[t.collection] += acc[0]
            for (name, _), n in zip(fields, acc[1:], strict=True):
                plan.field_classes[specs[name].field_class.value] += n
                plan.categories[field_category(specs[name])] += n
        if t.table != mapping.subject_table:
            dirty_rows.extend(_orphans(source, mapping, t.table, t.key, t.owner))
    keys = sorted(subjects)
    batches = [(keys[i], keys[min(i + batch_subjects, len(keys)) - 1])
               for i in range(0, len(keys), batch_subjects)]
    units: list[tuple[int, str, int, int]] = []
    for number, (lo, hi) in enumerate(batches):
        chunk = keys[number * batch_subjects:(number + 1) * batch_subjects]
        homes_of = {subjects[k][1] for k in chunk}
        units.extend((number, home, lo, hi) for home in sorted(h for h in homes_of if h))
    return Plan(source=source.kind, columns=columns, homes=homes,
                dirty_subjects=dirty_subjects[:_LISTED_DIRTY],
                dirty_subject_keys=dirty_keys[:_LISTED_DIRTY],
                triggers=source.triggers([t.table for t in mapping.tables]),
                dirty_rows=dirty_rows[:_LISTED_DIRTY], dirty_counts=dirty_counts,
                batches=batches, units=units,
                not_unique=(_not_unique(source, mapping) + [
                    (f"{mapping.subject_table}/{k}", "subject key not an integer")
                    for k in not_integer])[:_LISTED_DIRTY])


def _not_unique(source: LegacySource, mapping: MigrationMapping) -> list[tuple[str, str]]:
    """Keys that do not name exactly one row: a table's key (as text: a record id is
    ``m<batch>-<hash of "table/key">``, and SQLite can hold 7 and '7' in one column)
    held by several rows or by none (NULL), and a legacy id held by several subjects
    or missing.  A part deletes its rows by key, so a key two rows share deleted a
    row of another subject (perhaps of another home, before its part ran) that was
    never migrated, and two rows of one subject became one record; two subjects
    with one legacy id were merged into one home subject, or split across homes
    (found by a review)."""
    found: list[tuple[str, str]] = []
    checks: dict[tuple[str, str], str] = {}
    for t in mapping.tables:
        checks.setdefault((t.table, t.key), "key")
    checks.setdefault((mapping.subject_table, mapping.subject_key), "subject key")
    checks.setdefault((mapping.subject_table, mapping.legacy_id), "legacy id")
    for (table, column), what in checks.items():
        text = f"CAST({ident(column)} AS TEXT)"
        shared = source.query(
            f"SELECT {text}, COUNT(*) FROM {ident(table)} "  # noqa: S608
            f"WHERE {ident(column)} IS NOT NULL GROUP BY {text} "
            f"HAVING COUNT(*) > 1 ORDER BY {text} LIMIT {_LISTED_DIRTY}")
        if what == "legacy id" and shared:  # a legacy id is personal: counted, not listed
            found.append((f"{table}.{column}", f"{len(shared)} values each held by "
                          "several subjects"))
        else:
            found += [(f"{table}/{value}", f"{what} of {int(rows)} rows")
                      for value, rows in shared]
        ((nulls,),) = source.query(
            f"SELECT COUNT(*) FROM {ident(table)} WHERE {ident(column)} IS NULL")  # noqa: S608
        if nulls:
            found.append((f"{table}.{column}", f"{what} missing in {int(nulls)} rows"))
    return found


def _orphans(source: LegacySource, mapping: MigrationMapping, table: str, key: str,
             owner: str) -> list[tuple[str, str]]:
    sql = (f"SELECT t.{ident(key)}, t.{ident(owner)} FROM {ident(table)} t "  # noqa: S608
           f"LEFT JOIN {ident(mapping.subject_table)} s ON s.{ident(mapping.subject_key)} = "
           f"t.{ident(owner)} WHERE s.{ident(mapping.subject_key)} IS NULL "
           f"ORDER BY t.{ident(key)} LIMIT {_LISTED_DIRTY}")
    return [(f"{table}/{k}", "no_owner" if o is None else "owner_not_a_subject")
            for k, o in source.query(sql)]


def plan_text(plan: Plan) -> list[str]:
    """Lines for the terminal."""
    lines = [f"source: {plan.source}; {plan.records} records to migrate in "
             f"{len(plan.batches)} batches"]
    for home, p in sorted(plan.homes.items()):
        lines.append(f"  {home}: {p.subjects} subjects, {p.records} records; "
                     + ", ".join(f"{c} {n}" for c, n in sorted(p.collections.items())))
        lines.append("      field classes: " + ", ".join(
            f"{c} {n}" for c, n in sorted(p.field_classes.items()))
            + "; categories: " + ", ".join(f"{c} {n}" for c, n in sorted(p.categories.items())))
    for c in plan.columns:
        if c.role == "dropped":
            lines.append(f"  dropped {c.table}.{c.column}: {c.reason}")
    for c in plan.unmapped:
        lines.append(f"  UNMAPPED {c.table}.{c.column} (run refuses until mapped or dropped)")
    lines.append(f"  dirty: {sum(plan.dirty_counts.values())} rows left in place; subjects "
                 "without a home: " + (", ".join(i for i, _ in plan.dirty_subjects) or "none"))
    for row, reason in plan.dirty_rows:
        lines.append(f"    {row}: {reason}")
    return lines

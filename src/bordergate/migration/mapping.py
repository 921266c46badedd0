"""The migration mapping: where each collection's fields are in the legacy source.

A TOML file (the packaged ``demo_mapping.toml`` maps the generated legacy
dataset onto the demo schema)::

    [subjects]
    table = "accounts"        # one row per legacy subject
    key = "id"                # the column other tables' owner columns refer to
    legacy_id = "legacy_id"   # the legacy subject key (kept only inside its home, sealed)

    [home]
    columns = ["country"]     # the rule: the first of these columns that is not
    values = { US = "us", DE = "eu", CN = "cn" }  # empty decides, through this table;
                              # an unknown value, or none, makes the subject dirty

    [tables.messages]
    collection = "messages"
    key = "id"                # the row's primary key
    owner = "sender_id"       # the owning subject (a row linking two homes follows it)
    fields = { recipient = "recipient_id", body = "body" }   # schema field = column
    drop = { spam_score = "reason it is not migrated" }     # recorded in the entries

Every column of a mapped table must be the key, the owner, the legacy id, a
home column, a mapped field, or dropped with a reason; anything else is
listed by the plan and ``run`` refuses (deleting the migrated rows would
delete it too).  Loading raises :class:`~bordergate.errors.ConfigError` with
a stable code naming the table and column.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bordergate.errors import ConfigError, InvalidInput
from bordergate.migration.source import ident
from bordergate.residency.schema import Schema
from bordergate.subjects import parse_jurisdiction

__all__ = ["HomeRule", "MigrationMapping", "TableMapping", "demo_mapping_path", "load_mapping",
           "parse_mapping"]


@dataclass(frozen=True, slots=True)
class HomeRule:
    """Which home a subject belongs to: the first non-empty column, looked up in ``values``."""

    columns: tuple[str, ...]
    values: Mapping[str, str]

    def home(self, row: Mapping[str, Any]) -> str | None:
        """The home of a subject row, or ``None`` (dirty: no value or an unknown one)."""
        for column in self.columns:
            value = row.get(column)
            if value is None or value == "":
                continue
            return self.values.get(str(value))
        return None


@dataclass(frozen=True, slots=True)
class TableMapping:
    """One source table: its collection, key, owner column, fields and dropped columns."""

    table: str
    collection: str
    key: str
    owner: str
    fields: Mapping[str, str]  # schema field -> source column
    drop: Mapping[str, str]    # source column -> reason


@dataclass(frozen=True, slots=True)
class MigrationMapping:
    """A whole mapping: subjects table, home rule, tables in migration order."""

    subject_table: str
    subject_key: str
    legacy_id: str
    home: HomeRule
    tables: tuple[TableMapping, ...]

    def table(self, name: str) -> TableMapping:
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)


def demo_mapping_path() -> Path:
    """The packaged mapping of the generated legacy dataset onto the demo schema."""
    return Path(str(importlib.resources.files("bordergate.migration") / "demo_mapping.toml"))


def load_mapping(path: str | Path, schema: Schema) -> MigrationMapping:
    """Read and check a mapping file against ``schema``.

    Raises:
        ConfigError: ``mapping_unreadable``, ``mapping_invalid`` (the message
            names the table and column), ``mapping_bad_identifier``.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read mapping {path}: {exc.strerror}",
                          code="mapping_unreadable") from exc
    return parse_mapping(data, schema)


def _bad(message: str) -> ConfigError:
    return ConfigError(message, code="mapping_invalid")


def _text(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(f"{where}: {key!r} must be a non-empty string")
    ident(value)
    return value


def _strings(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        raise _bad(f"{where} must be a table of non-empty strings")
    return dict(value)


def parse_mapping(data: bytes, schema: Schema) -> MigrationMapping:
    """Parse a mapping (see the module docstring) and check it against ``schema``.

    Raises:
        ConfigError: as :func:`load_mapping`.
    """
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _bad(f"mapping is not TOML: {exc}") from None
    subjects = doc.get("subjects")
    home = doc.get("home")
    tables = doc.get("tables")
    if not isinstance(subjects, dict) or not isinstance(home, dict) or not isinstance(
            tables, dict) or not tables:
        raise _bad("a mapping needs [subjects], [home] and at least one [tables.NAME]")
    columns = home.get("columns")
    if not isinstance(columns, list) or not columns or not all(
            isinstance(c, str) for c in columns):
        raise _bad("home.columns must be a non-empty list of column names")
    for c in columns:
        ident(c)
    values = _strings(home.get("values"), "home.values")
    for code in values.values():
        try:
            parse_jurisdiction(code)
        except InvalidInput as exc:
            raise _bad(f"home.values: {exc}") from None
    parsed = [_table(name, body, schema) for name, body in tables.items()]
    subject_table = _text(subjects, "table", "subjects")
    if subject_table not in {t.table for t in parsed}:
        raise _bad(f"subjects.table {subject_table!r} is not one of [tables]")
    # The subjects' table first: every other row needs its owner's home.
    parsed.sort(key=lambda t: t.table != subject_table)
    return MigrationMapping(subject_table=subject_table,
                            subject_key=_text(subjects, "key", "subjects"),
                    legacy_id=_text(subjects, "legacy_id", "subjects"),
                    home=HomeRule(tuple(columns), values), tables=tuple(parsed))


def _table(name: str, body: object, schema: Schema) -> TableMapping:
    where = f"tables.{name}"
    ident(name)
    if not isinstance(body, dict):
        raise _bad(f"{where} must be a table")
    unknown = set(body) - {"collection", "key", "owner", "fields", "drop"}
    if unknown:
        raise _bad(f"{where}: unknown key {sorted(unknown)[0]!r}")
    collection = _text(body, "collection", where)
    try:
        coll = schema.collection(collection)
    except Exception as exc:
        raise _bad(f"{where}: the schema has no collection {collection!r}") from exc
    fields = _strings(body.get("fields"), f"{where}.fields")
    for field, column in fields.items():
        if field not in coll.fields:
            raise _bad(f"{where}.fields: collection {collection!r} has no field {field!r}")
        ident(column)
    drop = _strings(body.get("drop"), f"{where}.drop")
    for column in drop:
        ident(column)
    return TableMapping(table=name, collection=collection, key=_text(body, "key", where),
                        owner=_text(body, "owner", where), fields=fields, drop=drop)

"""The mapping format (migration/mapping.py): bad input is a ConfigError with a stable
code, never another exception; the home rule never guesses."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import ConfigError
from bordergate.migration.mapping import HomeRule, demo_mapping_path, parse_mapping
from bordergate.residency.schema import demo_schema_path, load_schema

SCHEMA = load_schema(demo_schema_path())
DEMO = demo_mapping_path().read_bytes()
CODES = {"mapping_invalid", "mapping_bad_identifier", "malformed_jurisdiction"}


def _code(data: bytes) -> str | None:
    try:
        parse_mapping(data, SCHEMA)
    except ConfigError as exc:
        return exc.code
    return None


def test_demo_mapping_loads_with_accounts_first() -> None:
    """Issue 15: the packaged mapping maps the generated dataset; the subjects' table
    comes first (every other row needs its owner's home)."""
    mapping = parse_mapping(DEMO, SCHEMA)
    assert mapping.tables[0].table == "accounts"
    assert mapping.table("messages").owner == "sender_id"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_a_code(data: bytes) -> None:
    """Bad input gets a clear error with a stable code, never a crash."""
    assert _code(data) in CODES


_VALUES = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none(),
                    st.lists(st.text(max_size=6), max_size=3),
                    st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2))


def _toml_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["subjects.table", "subjects.key", "home.columns", "home.values",
                        "tables.accounts.collection", "tables.accounts.owner",
                        "tables.messages.fields", "tables.accounts.drop",
                        "tables.payments.key"]), _VALUES)
def test_any_member_replaced_is_accepted_or_refused_with_a_code(where: str,
                                                                 value: object) -> None:
    """Every member of the format, given any value: loaded or ConfigError, nothing else."""
    text = DEMO.decode()
    table, _, key = where.rpartition(".")
    header = f"[{table}]\n"
    start = text.index(header) + len(header)
    line_start = text.index(f"\n{key} = ", start - 1) + 1
    line_end = text.index("\n", line_start)
    mutated = text[:line_start] + f"{key} = {_toml_value(value)}" + text[line_end:]
    try:
        tomllib.loads(mutated)
    except tomllib.TOMLDecodeError:
        return
    assert _code(mutated.encode()) in (CODES | {None})


@pytest.mark.parametrize(("row", "home"), [
    ({"country": "US"}, "us"), ({"country": "DE"}, "eu"), ({"country": None}, None),
    ({"country": ""}, None), ({"country": "ZZ"}, None)],
    ids=["us", "eu", "missing", "empty", "unknown"])
def test_home_rule_never_guesses(row: dict[str, object], home: str | None) -> None:
    """Issue 15: a subject with no value or an unknown one has no home (dirty)."""
    rule = HomeRule(("country",), {"US": "us", "DE": "eu"})
    assert rule.home(row) == home


def test_home_rule_of_several_columns() -> None:
    """The first non-empty column decides; an unknown value there is dirty, not skipped."""
    rule = HomeRule(("billing_country", "country"), {"US": "us", "DE": "eu"})
    assert rule.home({"billing_country": None, "country": "DE"}) == "eu"
    assert rule.home({"billing_country": "US", "country": "DE"}) == "us"
    assert rule.home({"billing_country": "ZZ", "country": "DE"}) is None

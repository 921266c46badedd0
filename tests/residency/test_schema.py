"""The classified schema: loading errors name file, collection, field; records are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.errors import ConfigError, InvalidInput, VerificationError
from bordergate.residency.schema import (
    TIMESTAMP_PATTERN,
    Collection,
    FieldClass,
    FieldSpec,
    FieldType,
    demo_schema_path,
    load_schema,
    parse_schema,
)

GOOD = """
[collections.users.fields.email]
class = "protected"
type = "string"
required = true
max_length = 10
[collections.users.fields.age]
class = "public"
type = "integer"
[collections.users.fields.vip]
class = "restricted"
type = "boolean"
[collections.users.fields.born]
class = "protected"
type = "timestamp"
"""


def test_demo_schema_ships_and_classifies_every_field() -> None:
    """Promise 1: the shipped short-video schema loads; all three classes are used."""
    schema = load_schema(demo_schema_path())
    assert set(schema.collections) == {"users", "profiles", "videos", "watch_history",
                                       "messages", "payments"}
    classes = {s.field_class for c in schema.collections.values() for s in c.fields.values()}
    assert classes == set(FieldClass)
    payments = schema.collection("payments").fields
    assert payments["tax_id"].field_class is FieldClass.RESTRICTED
    assert schema.collection("messages").fields["body"].field_class is FieldClass.PROTECTED
    assert schema.collection("videos").fields["title"].field_class is FieldClass.PUBLIC


BAD_SCHEMAS = {
    "not-toml": ("[collections.users", "schema_syntax", None, None),
    "no-collections": ("[schema]\nname='x'\n", "schema_invalid", None, None),
    "unknown-top": ("[other]\n", "schema_invalid", None, None),
    "unclassified": ("[collections.users.fields.email]\ntype='string'\n",
                     "unclassified_field", "users", "email"),
    "unknown-class": ("[collections.users.fields.email]\nclass='secret'\ntype='string'\n",
                      "unknown_class", "users", "email"),
    "unknown-type": ("[collections.users.fields.email]\nclass='public'\ntype='blob'\n",
                     "unknown_type", "users", "email"),
    "missing-type": ("[collections.users.fields.email]\nclass='public'\n",
                     "unknown_type", "users", "email"),
    "bad-required": ("[collections.users.fields.email]\nclass='public'\ntype='string'\n"
                     "required='yes'\n", "schema_invalid", "users", "email"),
    "bad-max-length": ("[collections.users.fields.email]\nclass='public'\ntype='string'\n"
                       "max_length=0\n", "schema_invalid", "users", "email"),
    "max-length-on-int": ("[collections.users.fields.n]\nclass='public'\ntype='integer'\n"
                          "max_length=3\n", "schema_invalid", "users", "n"),
    "unknown-field-key": ("[collections.users.fields.email]\nclass='public'\ntype='string'\n"
                          "indexed=true\n", "schema_invalid", "users", "email"),
    "bad-field-name": ("[collections.users.fields.Email]\nclass='public'\ntype='string'\n",
                       "schema_invalid", "users", "Email"),
    "bad-collection-name": ("[collections.Users.fields.email]\nclass='public'\n"
                            "type='string'\n", "schema_invalid", "Users", None),
    "no-fields": ("[collections.users]\ndescription='x'\n", "schema_invalid", "users", None),
    "field-not-table": ("[collections.users.fields]\nemail='protected'\n",
                        "schema_invalid", "users", "email"),
}


@pytest.mark.parametrize("case", BAD_SCHEMAS.values(), ids=BAD_SCHEMAS.keys())
def test_malformed_schema_names_file_collection_and_field(
        tmp_path: Path, case: tuple[str, str, str | None, str | None]) -> None:
    """Behaviour: a malformed schema is a ConfigError with a stable code naming where."""
    text, code, collection, field = case
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_schema(path)
    assert info.value.code == code
    message = str(info.value)
    assert str(path) in message
    if collection is not None:
        assert repr(collection) in message
    if field is not None:
        assert repr(field) in message


def test_unreadable_and_oversized_schema(tmp_path: Path) -> None:
    """Behaviour: a missing file, a non-UTF-8 file and a huge file get clear codes."""
    with pytest.raises(ConfigError) as info:
        load_schema(tmp_path / "missing.toml")
    assert info.value.code == "schema_unreadable"
    (tmp_path / "latin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as info:
        load_schema(tmp_path / "latin.toml")
    assert info.value.code == "schema_syntax"
    (tmp_path / "big.toml").write_bytes(b"#" * ((1 << 20) + 1))
    with pytest.raises(ConfigError) as info:
        load_schema(tmp_path / "big.toml")
    assert info.value.code == "schema_too_large"


@pytest.fixture
def users() -> Collection:
    return parse_schema(GOOD, source="good.toml").collection("users")


BAD_RECORDS = {
    "unknown-field": ({"email": "a@b", "nickname": "x"}, "unknown_field"),
    "wrong-type-string": ({"email": 5}, "wrong_type"),
    "wrong-type-int-bool": ({"email": "a", "age": True}, "wrong_type"),
    "wrong-type-int-float": ({"email": "a", "age": 1.5}, "wrong_type"),
    "wrong-type-bool": ({"email": "a", "vip": 1}, "wrong_type"),
    "wrong-type-timestamp": ({"email": "a", "born": "yesterday"}, "wrong_type"),
    "timestamp-without-offset": ({"email": "a", "born": "2024-01-01T00:00:00"}, "wrong_type"),
    "timestamp-date-only": ({"email": "a", "born": "2024-01-01"}, "wrong_type"),
    "surrogate": ({"email": "\ud800"}, "wrong_type"),
    "too-long": ({"email": "x" * 11}, "value_too_large"),
    "int-overflow": ({"email": "a", "age": 1 << 63}, "value_too_large"),
    "missing-required": ({"age": 3}, "missing_field"),
    "required-null": ({"email": None}, "missing_field"),
    "not-a-mapping": (["email"], "wrong_type"),
}


@pytest.mark.parametrize("case", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_records_get_stable_codes(users: Collection,
                                     case: tuple[object, str]) -> None:
    """Behaviour: unknown field, wrong type, oversize, missing: each a stable code."""
    values, code = case
    with pytest.raises(InvalidInput) as info:
        users.validate(values)  # type: ignore[arg-type]
    assert info.value.code == code


def test_good_record_is_canonicalised(users: Collection) -> None:
    """Behaviour: timestamps are normalised to UTC 'Z'; nulls mean absent."""
    clean = users.validate({"email": "a@b", "age": -3, "vip": False,
                            "born": "2024-01-01T02:00:00+02:00"})
    assert clean == {"email": "a@b", "age": -3, "vip": False, "born": "2024-01-01T00:00:00Z"}


def test_unknown_collection_and_field_lookup() -> None:
    """Behaviour: asking for an unknown collection or field is InvalidInput."""
    schema = parse_schema(GOOD)
    with pytest.raises(InvalidInput) as info:
        schema.collection("nope")
    assert info.value.code == "unknown_collection"
    with pytest.raises(InvalidInput) as info:
        schema.fields("users", ["email", "nope"])
    assert info.value.code == "unknown_field"


SPECS = {
    FieldType.STRING: st.text(max_size=50),
    FieldType.INTEGER: st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    FieldType.BOOLEAN: st.booleans(),
}


@pytest.mark.parametrize("field_type", list(SPECS), ids=[t.value for t in SPECS])
def test_encoding_round_trips(field_type: FieldType) -> None:
    """Behaviour: encode/decode of every type is a canonical round trip."""
    spec = FieldSpec("f", FieldClass.PROTECTED, field_type)

    @given(SPECS[field_type])
    def check(value: object) -> None:
        try:
            clean = spec.normalize(value)
        except InvalidInput:
            return  # strings with lone surrogates are refused, checked elsewhere
        assert spec.decode(spec.encode(clean)) == clean

    check()


@pytest.mark.parametrize("data", [b"01", b"+1", b" 1", b"x", b"\xff"])
def test_corrupt_stored_integers_are_verification_errors(data: bytes) -> None:
    """Behaviour: non-canonical stored bytes are a VerificationError, never ValueError."""
    spec = FieldSpec("n", FieldClass.PUBLIC, FieldType.INTEGER)
    with pytest.raises(VerificationError) as info:
        spec.decode(data)
    assert info.value.code == "stored_value_corrupt"


# Found by the schemathesis run of tests/gateway/test_openapi_conformance.py: the
# gateway checks a write's values, then the vault checks the canonical values again; a
# year-0002 value with an eastern offset is year 0001 in UTC, which the pattern refused,
# so a schema-valid write answered 400 wrong_type.
_TIMESTAMP = FieldSpec("t", FieldClass.PROTECTED, FieldType.TIMESTAMP)


@pytest.mark.parametrize("value", ["0002-01-01T16:02:21.196+21:34", "9998-12-31T23:00:00-23:59",
                                   "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999z"])
def test_a_timestamps_canonical_form_is_admitted_again(value: str) -> None:
    """Behaviour: timestamp normalisation is idempotent at the years' edges (a value
    moved into year 0001 or 9999 by its offset is checked twice on a write)."""
    clean = _TIMESTAMP.normalize(value)
    assert isinstance(clean, str) and clean.endswith("Z")
    assert _TIMESTAMP.normalize(clean) == clean


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00",
                                   "0000-01-01T00:00:00Z", "2023-02-29T00:00:00Z"])
def test_timestamps_an_offset_could_move_out_of_the_years_are_refused(value: str) -> None:
    """Behaviour: years 0001 and 9999 only in UTC (another offset could leave the
    representable years); no such calendar day: ``wrong_type``."""
    with pytest.raises(InvalidInput) as info:
        _TIMESTAMP.normalize(value)
    assert info.value.code == "wrong_type"


@given(st.from_regex(TIMESTAMP_PATTERN, fullmatch=True))
def test_every_admitted_timestamp_normalises_to_an_admitted_one(value: str) -> None:
    """Behaviour: whatever the pattern (and the OpenAPI document) admits, the store
    accepts, and its canonical form is admitted and fixed (checking twice is checking once)."""
    clean = _TIMESTAMP.normalize(value)
    assert isinstance(clean, str)
    assert TIMESTAMP_PATTERN.fullmatch(clean) is not None
    assert _TIMESTAMP.normalize(clean) == clean
    assert _TIMESTAMP.decode(_TIMESTAMP.encode(clean)) == clean

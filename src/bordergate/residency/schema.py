"""The classified schema: which collections exist and the class of every field.

A schema is a TOML file::

    [collections.users.fields.email]
    class = "protected"        # public | protected | restricted, always required
    type = "string"            # string | integer | boolean | timestamp
    required = true            # default false
    max_length = 254           # strings only, in characters; default 4096
    dsp_category = "covered_personal_identifiers"   # optional, see below
    government_related = false # optional, default false

``dsp_category`` names the 28 CFR 202 sensitive personal data category of the
field (:class:`~bordergate.dsp.categories.DspCategory`: ``covered_personal_identifiers``,
``precise_geolocation``, ``biometric_identifiers``, ``human_genomic``,
``human_omic``, ``personal_health``, ``personal_financial``); a field without
one is not sensitive personal data in the DSP's sense.  ``government_related``
marks government-related data (§202.222), which has no bulk threshold.
docs/compliance.md says how the categories were read from the text.

Promise 1 (residency) rests on this: no field may exist without a class, and
``protected``/``restricted`` fields are the ones the vault encrypts.  The
owning subject is not a field: the store keeps it beside every record.

Loading validates everything and raises :class:`ConfigError` naming the file,
the collection and the field.  Record validation turns untrusted values into
canonical ones or raises :class:`InvalidInput` with a stable code
(``unknown_collection``, ``unknown_field``, ``wrong_type``,
``value_too_large``, ``missing_field``).  Values are encoded to bytes
canonically (one byte string per value) for encryption and storage.

This module is pure apart from :func:`load_schema` reading one file; it must
never log or keep values.
"""

from __future__ import annotations

import enum
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bordergate.dsp.categories import DspCategory, parse_category
from bordergate.errors import ConfigError, InvalidInput, VerificationError

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_VALUE_BYTES",
    "TIMESTAMP_REGEX",
    "Collection",
    "FieldClass",
    "FieldSpec",
    "FieldType",
    "Schema",
    "demo_schema_path",
    "load_schema",
    "parse_schema",
]

#: Default ``max_length`` of a string field, in characters.
DEFAULT_MAX_LENGTH = 4096
#: Hard cap on one encoded value, whatever the schema says.
MAX_VALUE_BYTES = 65536
_MAX_SCHEMA_BYTES = 1 << 20
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_INT64 = (-(1 << 63), (1 << 63) - 1)
# RFC 3339 date-time (section 5.6), exactly: a real calendar date, seconds 00-59 (no leap
# second), at most 9 fraction digits; in UTC (``Z``, ``+00:00``, ``-00:00``) of the years 0001
# to 9999, with another offset of the years 0002 to 9998 (so that no offset can move it out of
# the representable years).  Every value's canonical form (UTC, ``Z``) is itself admitted, so
# normalizing is idempotent: a value checked twice (the gateway, then the vault) passes twice.
# The same text is the pattern of timestamp fields in the OpenAPI document (gateway.openapi):
# what it admits, the store accepts.
_YEAR_UTC = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_YEAR = ("(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]"
         "|999[0-8])")
_LEAP = ("(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)")
_MONTH_DAY = ("(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
              "|(?:0[13578]|1[02])-31)")
_TIME = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?"
TIMESTAMP_REGEX = (f"^(?:(?:{_YEAR_UTC}-{_MONTH_DAY}|{_LEAP}-02-29){_TIME}(?:[Zz]|[+-]00:00)"
                   f"|(?:{_YEAR}-{_MONTH_DAY}|{_LEAP}-02-29){_TIME}"
                   "[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$")
TIMESTAMP_PATTERN = re.compile(TIMESTAMP_REGEX)
_FIELD_KEYS = frozenset({"class", "type", "required", "max_length", "description",
                         "dsp_category", "government_related"})


class FieldClass(enum.StrEnum):
    """How sensitive a field is (docs/design.md, data model)."""

    PUBLIC = "public"
    PROTECTED = "protected"
    RESTRICTED = "restricted"

    @property
    def encrypted(self) -> bool:
        """Whether values of this class are stored encrypted (promise 1)."""
        return self is not FieldClass.PUBLIC


class FieldType(enum.StrEnum):
    """The value type of a field."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One classified field of a collection."""

    name: str
    field_class: FieldClass
    type: FieldType
    required: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    dsp_category: DspCategory | None = None
    government_related: bool = False

    def normalize(self, value: object) -> object:
        """Check an untrusted value against this field and return its canonical form.

        Raises:
            InvalidInput: ``wrong_type`` or ``value_too_large``.
        """
        if self.type is FieldType.STRING:
            _string_bytes(self, value)
            return value
        if self.type is FieldType.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _wrong_type(self, value)
            if not _INT64[0] <= value <= _INT64[1]:
                raise InvalidInput(
                    f"field {self.name!r} does not fit in 64 bits", code="value_too_large"
                )
            return value
        if self.type is FieldType.BOOLEAN:
            if not isinstance(value, bool):
                raise _wrong_type(self, value)
            return value
        return _normalize_timestamp(self, value)

    def canonical_bytes(self, value: object) -> bytes:
        """``encode(normalize(value))`` in one step: the same checks in the same order,
        the same errors, the same bytes (the migration's per-value hot path; a string
        is encoded once, not once to find surrogates and again to store it).

        Raises:
            InvalidInput: ``wrong_type`` or ``value_too_large``, as :meth:`normalize`.
        """
        if self.type is FieldType.STRING:
            return _string_bytes(self, value)
        if self.type is FieldType.TIMESTAMP:
            return _normalize_timestamp(self, value).encode("ascii")
        return self.encode(self.normalize(value))

    def encode(self, value: object) -> bytes:
        """Canonical bytes of a value already passed through :meth:`normalize`."""
        if self.type is FieldType.BOOLEAN:
            return b"1" if value else b"0"
        if self.type is FieldType.INTEGER:
            return str(value).encode("ascii")
        assert isinstance(value, str)
        return value.encode("utf-8")

    def decode(self, data: bytes) -> object:
        """Inverse of :meth:`encode` for bytes read back from a store.

        Raises:
            VerificationError: ``stored_value_corrupt`` if the bytes are not a
                canonical encoding of this field's type.
        """
        try:
            if self.type is FieldType.BOOLEAN:
                if data not in (b"0", b"1"):
                    raise ValueError("not a boolean")
                return data == b"1"
            if self.type is FieldType.INTEGER:
                number = int(data.decode("ascii"))
                if str(number).encode("ascii") != data:
                    raise ValueError("not canonical")
                return number
            return data.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise VerificationError(
                f"stored value of field {self.name!r} is corrupt", code="stored_value_corrupt"
            ) from exc


@dataclass(frozen=True, slots=True)
class Collection:
    """A named collection and its classified fields."""

    name: str
    fields: Mapping[str, FieldSpec]

    def field(self, name: str) -> FieldSpec:
        """The field called ``name``.

        Raises:
            InvalidInput: ``unknown_field``.
        """
        spec = self.fields.get(name) if isinstance(name, str) else None
        if spec is None:
            raise InvalidInput(
                f"collection {self.name!r} has no field {str(name)[:64]!r}", code="unknown_field"
            )
        return spec

    def validate(self, values: Mapping[str, object]) -> dict[str, object]:
        """Check a whole record and return its canonical values.

        Raises:
            InvalidInput: ``unknown_field``, ``wrong_type``, ``value_too_large``
                or ``missing_field`` (checked in that order, first failure wins).
        """
        if not isinstance(values, Mapping):
            raise InvalidInput("a record must be an object of fields", code="wrong_type")
        clean: dict[str, object] = {}
        for name, value in values.items():
            spec = self.field(name)
            if value is None:
                continue  # an absent optional field; required ones are caught below
            clean[name] = spec.normalize(value)
        for spec in self.fields.values():
            if spec.required and spec.name not in clean:
                raise InvalidInput(
                    f"field {spec.name!r} of {self.name!r} is required", code="missing_field"
                )
        return clean


@dataclass(frozen=True, slots=True)
class Schema:
    """All collections of a deployment, each field classified."""

    collections: Mapping[str, Collection]
    source: str = "<schema>"

    def collection(self, name: str) -> Collection:
        """The collection called ``name``.

        Raises:
            InvalidInput: ``unknown_collection``.
        """
        found = self.collections.get(name) if isinstance(name, str) else None
        if found is None:
            raise InvalidInput(
                f"no collection {str(name)[:64]!r}", code="unknown_collection"
            )
        return found

    def fields(self, collection: str, names: Iterable[str] | None = None) -> list[FieldSpec]:
        """The specs of ``names`` (all fields if ``None``) in ``collection``.

        Raises:
            InvalidInput: ``unknown_collection`` or ``unknown_field``.
        """
        coll = self.collection(collection)
        if names is None:
            return list(coll.fields.values())
        return [coll.field(name) for name in names]


def demo_schema_path() -> Path:
    """Where the shipped demo schema (a short-video platform) lives."""
    return Path(str(importlib.resources.files("bordergate.residency") / "demo_schema.toml"))


def load_schema(path: str | Path) -> Schema:
    """Read and validate a schema file.

    Raises:
        ConfigError: ``schema_unreadable`` if the file cannot be read, otherwise
            as :func:`parse_schema`.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_SCHEMA_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read schema: {exc.strerror}",
                          code="schema_unreadable") from exc
    return parse_schema(data, source=str(path))


def parse_schema(data: bytes | str, *, source: str = "<schema>") -> Schema:
    """Validate schema TOML text and build a :class:`Schema`.

    Raises:
        ConfigError: with code ``schema_syntax`` (not TOML), ``schema_too_large``,
            ``unclassified_field`` (no ``class``), ``unknown_class``,
            ``unknown_type``, ``unknown_dsp_category``, ``invalid_government_related``
            or ``schema_invalid`` (anything else); the message names the file,
            collection and field.
    """
    if isinstance(data, bytes):
        if len(data) > _MAX_SCHEMA_BYTES:
            raise ConfigError(f"{source}: schema larger than 1 MiB", code="schema_too_large")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: schema is not UTF-8", code="schema_syntax") from exc
    try:
        doc = tomllib.loads(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}", code="schema_syntax") from exc
    unknown = set(doc) - {"collections", "schema"}
    if unknown:
        raise _invalid(source, None, None, f"unknown top-level keys {sorted(unknown)}")
    raw = doc.get("collections")
    if not isinstance(raw, dict) or not raw:
        raise _invalid(source, None, None, "needs at least one [collections.<name>] table")
    collections = {name: _collection(source, name, body) for name, body in raw.items()}
    return Schema(collections=collections, source=source)


def _collection(source: str, name: str, body: object) -> Collection:
    if _NAME.fullmatch(name) is None:
        raise _invalid(source, name, None, "collection names are [a-z][a-z0-9_]{0,62}")
    if not isinstance(body, dict):
        raise _invalid(source, name, None, "must be a table")
    unknown = set(body) - {"fields", "description"}
    if unknown:
        raise _invalid(source, name, None, f"unknown keys {sorted(unknown)}")
    fields = body.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise _invalid(source, name, None, "needs at least one field")
    specs = {fname: _field(source, name, fname, fbody) for fname, fbody in fields.items()}
    return Collection(name=name, fields=specs)


def _field(source: str, coll: str, name: str, body: object) -> FieldSpec:
    if _NAME.fullmatch(name) is None:
        raise _invalid(source, coll, name, "field names are [a-z][a-z0-9_]{0,62}")
    if not isinstance(body, dict):
        raise _invalid(source, coll, name, "must be a table with class and type")
    unknown = set(body) - _FIELD_KEYS
    if unknown:
        raise _invalid(source, coll, name, f"unknown keys {sorted(unknown)}")
    if "class" not in body:
        raise _invalid(source, coll, name, "has no class (public, protected or restricted)",
                       code="unclassified_field")
    try:
        field_class = FieldClass(body["class"])
    except ValueError as exc:
        raise _invalid(source, coll, name, f"unknown class {body['class']!r}",
                       code="unknown_class") from exc
    try:
        field_type = FieldType(str(body.get("type")))
    except ValueError as exc:
        raise _invalid(source, coll, name, f"unknown or missing type {body.get('type')!r}",
                       code="unknown_type") from exc
    required = body.get("required", False)
    if not isinstance(required, bool):
        raise _invalid(source, coll, name, "required must be true or false")
    max_length = body.get("max_length", DEFAULT_MAX_LENGTH)
    if "max_length" in body and field_type is not FieldType.STRING:
        raise _invalid(source, coll, name, "max_length applies to strings only")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not (
        1 <= max_length <= MAX_VALUE_BYTES // 4
    ):
        raise _invalid(source, coll, name, f"max_length must be 1..{MAX_VALUE_BYTES // 4}")
    category, government = _dsp(source, coll, name, body)
    return FieldSpec(name=name, field_class=field_class, type=field_type,
                     required=required, max_length=max_length, dsp_category=category,
                     government_related=government)


def _dsp(source: str, coll: str, name: str,
         body: Mapping[str, object]) -> tuple[DspCategory | None, bool]:
    """The field's DSP category and government-related flag (module docstring)."""
    category = None
    if "dsp_category" in body:
        try:
            category = parse_category(body["dsp_category"])
        except ValueError as exc:
            raise _invalid(source, coll, name, str(exc), code="unknown_dsp_category") from None
    government = body.get("government_related", False)
    if not isinstance(government, bool):
        raise _invalid(source, coll, name, "government_related must be true or false",
                       code="invalid_government_related")
    return category, government


def _invalid(source: str, coll: str | None, field: str | None, why: str,
             *, code: str = "schema_invalid") -> ConfigError:
    where = source
    if coll is not None:
        where += f": collection {coll!r}"
    if field is not None:
        where += f", field {field!r}"
    return ConfigError(f"{where}: {why}", code=code)


def _wrong_type(spec: FieldSpec, value: object) -> InvalidInput:
    return InvalidInput(
        f"field {spec.name!r} must be a {spec.type.value}, not {type(value).__name__}",
        code="wrong_type",
    )


def _string_bytes(spec: FieldSpec, value: object) -> bytes:
    """The UTF-8 bytes of a string field's value, checked: a string, not longer than
    the field allows, no lone surrogates (``wrong_type``, ``value_too_large``)."""
    if not isinstance(value, str):
        raise _wrong_type(spec, value)
    if len(value) > spec.max_length or len(value) * 4 > MAX_VALUE_BYTES:
        raise InvalidInput(
            f"field {spec.name!r} is longer than {spec.max_length} characters",
            code="value_too_large",
        )
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _wrong_type(spec, value) from None


def _normalize_timestamp(spec: FieldSpec, value: object) -> str:
    if not isinstance(value, str) or TIMESTAMP_PATTERN.fullmatch(value) is None:
        raise InvalidInput(
            f"field {spec.name!r} must be an RFC 3339 timestamp (date, time and UTC offset; "
            "years 0001 to 9999 in UTC, 0002 to 9998 with another offset)", code="wrong_type"
        )
    if len(value) == 20 and value[10] == "T" and value[19] == "Z":
        return value  # whole seconds in UTC, already the canonical form below gives
    moment = datetime.fromisoformat(value.upper())
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

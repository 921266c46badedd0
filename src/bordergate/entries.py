"""The vocabulary of log entries: canonical JSON, entry types, pseudonyms.

Every entry any bordergate component writes to a jurisdiction's log is a
canonical JSON object (UTF-8, sorted keys, no insignificant whitespace, no
floats) with at least ``"v"`` (format version: :data:`ENTRY_VERSION` when
written, any of :data:`ENTRY_VERSIONS` when read), ``"type"`` (one of
:data:`ENTRY_TYPES`) and ``"time"`` (RFC 3339 UTC with milliseconds, exactly as
:func:`format_time` writes it), at most :data:`~bordergate.tlog.tiles.ENTRY_MAX`
bytes long (the log's entry-bundle format).  The gateway, the releases tooling
and the key custody write entries through one encoder family: :func:`encode_entry`
(the reference), and for the gateway's hot path :func:`encode_entry_with`
(members given already encoded) and :class:`EntryTemplate` (a precompiled
shape); both give exactly the reference's bytes.  The auditor reads entries
with :func:`parse_entry`.  This module is the one definition of a valid entry:
the entry types, their families (:data:`DECISION_ACTIONS`,
:data:`APPROVAL_CHANGE_TYPES`, :data:`RELEASE_ENTRY_TYPES`) and the time format
are defined here and imported everywhere else.

Promise 7: entries carry field names, classes and keyed pseudonyms of subject
and record ids, never values or raw ids.  :class:`Pseudonymizer` computes
``HMAC-SHA256(per-log secret, kind || 0x00 || raw id)``, so the custodian (who
holds the secret) can later prove which pseudonym is whose to an investigator,
and nobody else can link them.

This module must never do I/O or read a clock: times are passed in.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from bordergate.errors import VerificationError
from bordergate.tlog.tiles import ENTRY_MAX

__all__ = [
    "APPROVAL_CHANGE_TYPES",
    "DECISION_ACTIONS",
    "ENTRY_TYPES",
    "ENTRY_VERSION",
    "ENTRY_VERSIONS",
    "RELEASE_ENTRY_TYPES",
    "Entry",
    "EntryTemplate",
    "EntryTime",
    "Pseudonymizer",
    "canonical_json",
    "canonical_tail",
    "encode_entry",
    "encode_entry_with",
    "format_time",
    "is_entry_version",
    "parse_entry",
    "parse_time",
    "time_parts",
]

ENTRY_VERSION = 2
"""The version every entry is written with.  2 (issue 12): entries may carry the
members that let other parties attest their facts (the roster version of a
decision, approvers' signatures on approval changes, the appender credential,
the gateway's receipt key); the auditor applies each check by version
(:mod:`bordergate.audit.rules.versions`).  1: every release before issue 12."""

ENTRY_VERSIONS: frozenset[int] = frozenset({1, 2})
"""Every version the entry parser accepts (logs written by earlier releases still audit)."""

# The keys each entry type must carry besides v/type/time (checked on parse).
ENTRY_TYPES: Mapping[str, frozenset[str]] = MappingProxyType({
    "access": frozenset({"principal", "collection", "subject", "record", "purpose",
                         "bundle", "decisions"}),
    "write": frozenset({"principal", "collection", "subject", "record", "purpose",
                        "bundle", "decisions"}),
    "export": frozenset({"principal", "collection", "purpose", "bundle", "decisions", "k"}),
    "erase": frozenset({"principal", "subject", "purpose", "bundle", "decisions"}),
    "approval-request": frozenset({"approval", "requester", "purpose", "scope", "expires"}),
    "approval-grant": frozenset({"approval", "approver"}),
    "approval-deny": frozenset({"approval", "approver"}),
    "approval-revoke": frozenset({"approval", "by"}),
    "approval-refused": frozenset({"approval", "actor", "action", "code"}),
    "release": frozenset({"release", "manifest"}),
    "release-review": frozenset({"release", "reviewer", "verdict", "note", "key", "signature"}),
    "key-event": frozenset({"kind", "kek_version"}),
    # a data key released by the key service against a logged decision (keys.justification)
    "key-access": frozenset({"jurisdiction", "operation", "subject", "justified", "leaf"}),
    # an export's subjects, logged before their keys are asked for (keys.bulk)
    "export-intent": frozenset({"principal", "collection", "group_by", "purpose", "outcome",
                                "subjects", "root"}),
    "migration": frozenset({"batch"}),  # + members of docs/migration.md, checked when present
    "legacy-deletion": frozenset({"batch", "gateway", "source", "rows", "tables"}),
    "gateway-start": frozenset({"gateway", "release", "reviewed"}),
    "token-revoke": frozenset({"jti", "by"}),
    "roster": frozenset({"roster", "serial", "key", "signature"}),
    # a read that would cross a bulk threshold of 28 CFR 202.205 (gateway.bulk_counters)
    "bulk-threshold": frozenset({"principal", "collection", "subject", "counters", "outcome"}),
})

#: Decision entries (promise 4), each with the Cedar action it records.
DECISION_ACTIONS: Mapping[str, str] = MappingProxyType(
    {"access": "read", "write": "write", "export": "export", "erase": "erase"})
#: Entries that change an open approval request (grant, deny, revoke).
APPROVAL_CHANGE_TYPES: tuple[str, ...] = ("approval-grant", "approval-deny", "approval-revoke")
#: Entries of the release ledger (promise 6), in the order a release goes through them.
RELEASE_ENTRY_TYPES: tuple[str, ...] = ("release", "release-review", "gateway-start")

# The one canonical time form, digits ASCII only (``\d`` would take any Unicode digit).
_TIME_FORM = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z")


def _reject_float(value: str) -> Any:
    raise ValueError("floats are not allowed in log entries")


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: UTF-8, sorted keys, no whitespace, no floats.

    Raises:
        ValueError: the value holds floats, NaN, or non-JSON types (programmer misuse).
    """
    def check(v: Any) -> None:
        if isinstance(v, float):
            raise ValueError("floats are not allowed in canonical JSON")
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise ValueError("object keys must be strings")
                check(x)
        elif isinstance(v, list | tuple):
            for x in v:
                check(x)
    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def time_parts(epoch_seconds: float) -> tuple[int, int]:
    """``(whole seconds, microseconds)``, rounded as ``datetime.fromtimestamp`` does."""
    frac, whole = math.modf(epoch_seconds)
    micro = round(frac * 1e6)
    seconds = int(whole)
    if micro >= 1_000_000:
        return seconds + 1, micro - 1_000_000
    if micro < 0:
        return seconds - 1, micro + 1_000_000
    return seconds, micro


def format_time(epoch_seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-28T00:19:58.123Z``.

    Rounds to the microsecond as ``datetime.fromtimestamp`` does, then truncates
    to the millisecond (about 5x faster than going through ``datetime``).
    """
    seconds, micro = time_parts(epoch_seconds)
    t = time.gmtime(seconds)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}.{micro // 1000:03d}Z")


# The end of a canonical entry: its last members, ``time``, ``type`` and ``v`` (keys
# are sorted), and the brace closing the object.  In valid JSON nothing nested can
# end the entry's bytes, so these are the entry's own (a repeated key read as its
# last, as by every JSON reader here).
_CANONICAL_TAIL = re.compile(
    rb',"time":"([0-9T:.Z-]{20,40})","type":"([a-z][a-z-]*)","v":[0-9]{1,3}\}\Z')


def canonical_tail(data: bytes) -> tuple[str, str] | None:
    """The ``time`` and ``type`` of an entry's bytes, read from its last bytes without
    a parse (the read path's entries are kilobytes: the sequencer's role check and a
    read's receipt need only these), or None when it does not end as a canonical
    entry does (then parse it).  What the bytes hold before is not checked."""
    found = _CANONICAL_TAIL.search(data, max(0, len(data) - 120))
    if found is None:
        return None
    return found[1].decode("ascii"), found[2].decode("ascii")


def parse_time(text: str) -> float:
    """Parse a :func:`format_time` string back to epoch seconds.

    Only the exact form :func:`format_time` writes is accepted
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``, every field zero-padded to its width, a real
    calendar date, no leap second), and only when the value prints back as the
    same string: ``format_time(parse_time(s)) == s`` for every ``s`` accepted.
    Up to 2106 (2^32 seconds) every such string is accepted; beyond, a float
    epoch no longer holds every millisecond and some are refused.

    Raises:
        VerificationError: code ``malformed_entry`` for any other string or a
            value that is not a string.
    """
    match = _TIME_FORM.fullmatch(text) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError(text)
        year, month, day, hour, minute, second, milli = map(int, match.groups())
        moment = datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC)
        epoch = moment.timestamp()
        if format_time(epoch) != text:
            raise ValueError(text)
    except ValueError:
        raise VerificationError(f"malformed entry time {str(text)[:40]!r}",
                                code="malformed_entry") from None
    return epoch


@dataclass(frozen=True)
class Entry:
    """A parsed log entry: its type, time (epoch seconds) and whole body."""

    type: str
    time: float
    body: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    @property
    def version(self) -> int:
        """The entry's format version (one of :data:`ENTRY_VERSIONS`, checked on parse)."""
        return int(self.body["v"])


def _check_members(entry_type: str, keys: set[str] | frozenset[str]) -> None:
    """Refuse an unknown type, missing keys or the reserved ``v``/``type``/``time``.

    Raises:
        ValueError: as :func:`encode_entry`.
    """
    required = ENTRY_TYPES.get(entry_type)
    if required is None:
        raise ValueError(f"unknown entry type {entry_type!r}")
    missing = required - keys
    if missing:
        raise ValueError(f"{entry_type} entry lacks {sorted(missing)}")
    if {"v", "type", "time"} & keys:
        raise ValueError("v, type and time are set by the entry encoder")


def _check_size(entry_type: str, data: bytes) -> bytes:
    if len(data) > ENTRY_MAX:
        raise ValueError(f"{entry_type} entry of {len(data)} bytes exceeds the log's limit")
    return data


def encode_entry(entry_type: str, time: float, body: Mapping[str, Any]) -> bytes:
    """Build the canonical bytes of one entry (the reference encoder).

    :func:`encode_entry_with` and :class:`EntryTemplate` are faster ways to the
    same bytes for callers that hold parts of an entry already encoded.

    Raises:
        ValueError: unknown type, missing keys, reserved keys in ``body``, or an
            entry over 65535 bytes (programmer misuse: the caller builds bodies).
    """
    _check_members(entry_type, set(body))
    return _check_size(entry_type, canonical_json(
        {**body, "v": ENTRY_VERSION, "type": entry_type, "time": format_time(time)}))


def encode_entry_with(entry_type: str, time: float, body: Mapping[str, Any],
                      encoded: Mapping[str, bytes]) -> bytes:
    """``encode_entry(type, time, {**body, **members})`` where the members in
    ``encoded`` are given as their canonical JSON (computed once, used often:
    the gateway's ``decisions`` arrays).

    Byte-for-byte what :func:`encode_entry` gives (property-tested): the body is
    canonicalised with a placeholder in each encoded member's slot (canonical
    key order does not depend on values), then the placeholders are replaced.

    Raises:
        ValueError: as :func:`encode_entry`; also when a name is both in
            ``body`` and in ``encoded``.
    """
    if encoded.keys() & body.keys():
        raise ValueError("a member is both in body and in encoded")
    placeholders = {name: f"\x00{name}\x00" for name in encoded}
    data = encode_entry(entry_type, time, {**body, **placeholders})
    for name, value in encoded.items():
        marker = json.dumps(placeholders[name]).encode()
        head, found, tail = data.partition(marker)
        if not found or marker in tail:  # a body value holds the placeholder's text
            decoded = {n: json.loads(v) for n, v in encoded.items()}
            return encode_entry(entry_type, time, {**body, **decoded})
        data = head + value + tail
    return _check_size(entry_type, data)


class EntryTemplate:
    """The canonical bytes of entries of one shape, with slots for what varies.

    Built once from a body whose slot members are left out; :meth:`fill`
    then joins the fixed fragments with each slot's canonical JSON and the
    entry time (from :class:`EntryTime`).  Because canonical JSON orders
    members by key only, the result is byte-for-byte
    ``encode_entry(type, time, {**body, **slots})`` (property-tested), at the
    cost of one join instead of a full encoding.

    Raises:
        ValueError: as ``encode_entry`` (unknown type, missing or reserved keys),
            or a slot also in ``body``.
    """

    def __init__(self, entry_type: str, body: Mapping[str, Any], slots: Sequence[str]) -> None:
        if set(slots) & body.keys():
            raise ValueError("slots are not in body")
        _check_members(entry_type, set(body) | set(slots))
        self.entry_type = entry_type
        names = [*slots, "time"]
        nonce = secrets.token_hex(16)  # unguessable: no body text can hold a marker
        markers = {name: f"\x00{nonce}:{i}\x00" for i, name in enumerate(names)}
        data = canonical_json({**body, **markers, "v": ENTRY_VERSION, "type": entry_type})
        order: list[tuple[int, str]] = []
        for name, marker in markers.items():
            encoded = json.dumps(marker).encode()
            at = data.find(encoded)
            if at < 0 or data.find(encoded, at + 1) >= 0:  # pragma: no cover (2**-128)
                raise ValueError(f"slot {name!r} not found exactly once")
            order.append((at, name))
        order.sort()
        self.slots = tuple(name for _, name in order)
        self._fragments: list[bytes] = []
        rest = data
        for _, name in order:
            head, _, rest = rest.partition(json.dumps(markers[name]).encode())
            self._fragments.append(head)
        self._fragments.append(rest)
        self._take = tuple(names.index(name) for name in self.slots)

    def fill(self, values: Sequence[bytes], time: bytes) -> bytes:
        """The entry with ``values`` (canonical JSON, in the order of the
        constructor's ``slots``) and ``time`` (from :class:`EntryTime`) filled in.

        Raises:
            ValueError: the entry exceeds the log's limit.
        """
        given = (*values, time)
        fragments = self._fragments
        parts = [fragments[0]]
        for i, take in enumerate(self._take, 1):
            parts.append(given[take])
            parts.append(fragments[i])
        return _check_size(self.entry_type, b"".join(parts))


class EntryTime:
    """:func:`format_time` as the canonical JSON string of an entry's ``time``
    (for :meth:`EntryTemplate.fill`), with the text up to the second cached."""

    def __init__(self) -> None:
        self._cached = (-1, b"")  # (second, JSON text up to it): one attribute, one swap

    def __call__(self, epoch_seconds: float) -> bytes:
        """The JSON text (with quotes) of ``format_time(epoch_seconds)``."""
        seconds, micro = time_parts(epoch_seconds)
        second, prefix = self._cached
        if seconds != second:
            prefix = b'"' + format_time(float(seconds))[:-4].encode()
            self._cached = (seconds, prefix)
        return prefix + b'%03dZ"' % (micro // 1000)


def is_entry_version(value: object) -> bool:
    """Whether ``value`` is a version the parser accepts (an int, never ``true``)."""
    return type(value) is int and value in ENTRY_VERSIONS


def parse_entry(data: bytes) -> Entry:
    """Parse and check one entry read from a log.

    Raises:
        VerificationError: code ``malformed_entry`` for bad JSON, a non-canonical
            encoding, an unknown type or version, or missing keys.
    """
    try:
        body = json.loads(data.decode("utf-8"), parse_float=_reject_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise VerificationError("entry is not UTF-8 JSON without floats",
                                code="malformed_entry") from None
    if not isinstance(body, dict):
        raise VerificationError("entry is not a JSON object", code="malformed_entry")
    if not is_entry_version(body.get("v")):
        raise VerificationError(f"unknown entry version {str(body.get('v'))[:20]!r}",
                                code="malformed_entry")
    entry_type = body.get("type")
    required = ENTRY_TYPES.get(entry_type) if isinstance(entry_type, str) else None
    if required is None:
        raise VerificationError(f"unknown entry type {str(entry_type)[:40]!r}",
                                code="malformed_entry")
    missing = required - body.keys()
    if missing:
        raise VerificationError(f"{entry_type} entry lacks {sorted(missing)}",
                                code="malformed_entry")
    time = parse_time(body.get("time"))  # type: ignore[arg-type]
    try:  # json.loads gave str keys and no floats (NaN/Infinity: allow_nan refuses them),
        # so canonical_json's walk over the value is not needed here
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:
        canonical = b""
    if canonical != data:
        raise VerificationError("entry is not in canonical JSON form", code="malformed_entry")
    return Entry(entry_type, time, body)  # type: ignore[arg-type]


class Pseudonymizer:
    """Keyed pseudonyms of raw ids under one log's secret (promise 7)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("a pseudonym secret is at least 32 bytes")
        self._secret = bytes(secret)
        # keyed once: each pseudonym copies this state (about a third of the cost
        # of keying HMAC afresh per call; read, migration and key-service hot paths)
        self._keyed = crypto_hmac.HMAC(self._secret, hashes.SHA256())

    def pseudonym(self, kind: str, raw_id: str) -> str:
        """``<kind>:<hex HMAC-SHA256>`` of ``raw_id`` (kinds: subject, record, ...)."""
        return f"{kind}:{self.digest_hex(kind, raw_id)}"

    def digest_hex(self, kind: str, raw_id: str) -> str:
        """The hex HMAC-SHA256 of ``raw_id`` under ``kind``: :meth:`pseudonym` without
        its ``<kind>:`` prefix (keyed ids derived from a pseudonym)."""
        mac = self._keyed.copy()
        mac.update(kind.encode() + b"\x00" + raw_id.encode())
        return mac.finalize().hex()

    def subject(self, subject_id: str) -> str:
        return self.pseudonym("subject", subject_id)

    def record(self, collection: str, record_id: str) -> str:
        return self.pseudonym("record", f"{collection}/{record_id}")

    def matches(self, pseudonym: str, kind: str, raw_id: str) -> bool:
        """Whether ``pseudonym`` is ``raw_id``'s (for the custodian's proofs)."""
        return hmac.compare_digest(pseudonym, self.pseudonym(kind, raw_id))

"""A roster version: who may read a jurisdiction's data, as its identity authority vouches.

The identity authority of the jurisdiction whose data is read lists every
principal who may read it, its own staff and foreign principals alike (a
foreign authority vouching for its own staff could relabel them as local).
One **roster version** is a canonical JSON document (the encoding of
:func:`bordergate.entries.canonical_json`: UTF-8, sorted keys, no
insignificant whitespace, no floats)::

    {"format": "bordergate-roster/v1",
     "jurisdiction": "us",                 the jurisdiction whose data is read
     "serial": 3,                           increases with every version
     "issued": "2026-11-29T00:00:00.000Z",  when the authority made it
     "principals": {
       "<principal id>": {
         "org": "ttus", "org_kind": "local", "location": "us",
         "roles": ["approver"],             sorted, distinct
         "approver_keys": ["<base64 of a raw 32-byte Ed25519 public key>"],
         "covered_person": false,           28 CFR 202.211
         "covered_person_basis": null | "<text>"}}}

Rules: every member is present and no other is; ``approver_keys`` is
non-empty exactly when ``roles`` holds ``approver`` (an approver is someone
whose signature can be checked), and no key is listed for two principals (one
key-holder would count as two approvers: ``roster_malformed``);
``covered_person_basis`` is a non-empty text when ``covered_person`` is true
(which paragraph of 28 CFR 202.211 applies, e.g. ``"202.211(a)(4): ..."``), and
may be a text or null when false.

The version's **digest** is ``sha256:<hex>`` of the canonical bytes; it is
what the authority signs (:mod:`bordergate.roster.signing`), what a
``roster`` log entry and every decision entry name, and the document's
published name (``rosters/sha256-<hex>.json``).

Pure: bytes and values in, values out.  This module must never do I/O or read
a clock, and never lets ``ValueError``/``KeyError``/``TypeError`` escape on
untrusted bytes: every failure is a ``VerificationError`` with a stable code
(``roster_oversize``, ``roster_malformed``, ``roster_not_canonical``,
``roster_digest_mismatch``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bordergate.entries import canonical_json, parse_time
from bordergate.errors import VerificationError
from bordergate.policy.entities import Principal

__all__ = [
    "APPROVER_ROLE",
    "MAX_ROSTER_BYTES",
    "ROSTER_FORMAT",
    "Roster",
    "RosterPrincipal",
    "parse_roster",
    "roster_digest",
    "roster_path",
]

ROSTER_FORMAT = "bordergate-roster/v1"
APPROVER_ROLE = "approver"
#: Largest roster document accepted, checked before parsing.
MAX_ROSTER_BYTES = 8 << 20
_MAX_KEYS = 8
_DIGEST_PREFIX = "sha256:"
_CODE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TOP = frozenset({"format", "jurisdiction", "serial", "issued", "principals"})
_MEMBERS = frozenset({"org", "org_kind", "location", "roles", "approver_keys",
                      "covered_person", "covered_person_basis"})


def _malformed(message: str) -> VerificationError:
    return VerificationError(message, code="roster_malformed")


@dataclass(frozen=True)
class RosterPrincipal:
    """One principal as the authority vouches for it.

    Attributes:
        id: the principal id (a token's ``sub``).
        org, org_kind, location, roles: the attributes the policy sees.
        approver_keys: raw 32-byte Ed25519 public keys (approvers only).
        covered_person: whether 28 CFR 202.211 makes them a covered person.
        covered_person_basis: the paragraph and reason (required when covered).
        principal: the policy's ``Principal`` of these attributes (built once).
    """

    id: str
    org: str
    org_kind: str
    location: str
    roles: frozenset[str] = frozenset()
    approver_keys: tuple[bytes, ...] = ()
    covered_person: bool = False
    covered_person_basis: str | None = None
    principal: Principal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Raises ValueError for attributes the rules refuse (module docstring)."""
        object.__setattr__(self, "principal", Principal(
            self.id, self.org, self.org_kind, self.location, frozenset(self.roles)))
        object.__setattr__(self, "roles", self.principal.roles)
        keys = tuple(self.approver_keys)
        if any(not isinstance(k, bytes) or len(k) != 32 for k in keys) or \
                len(set(keys)) != len(keys) or len(keys) > _MAX_KEYS:
            raise ValueError(f"approver keys of {self.id!r} must be distinct raw 32-byte "
                             f"Ed25519 keys, at most {_MAX_KEYS}")
        object.__setattr__(self, "approver_keys", keys)
        if (APPROVER_ROLE in self.roles) != bool(keys):
            raise ValueError(f"{self.id!r}: approver keys are listed exactly for approvers")
        if not isinstance(self.covered_person, bool):
            raise ValueError(f"{self.id!r}: covered_person must be true or false")
        basis = self.covered_person_basis
        if basis is not None and (not isinstance(basis, str) or not basis or len(basis) > 1000):
            raise ValueError(f"{self.id!r}: covered_person_basis must be a text of at most "
                             "1000 characters, or null")
        if self.covered_person and basis is None:
            raise ValueError(f"{self.id!r}: a covered person needs covered_person_basis "
                             "(28 CFR 202.211)")

    def attributes(self) -> dict[str, Any]:
        """The principal's attributes as a decision entry records them
        (``Principal.to_json``)."""
        return self.principal.to_json()

    def to_json(self) -> dict[str, Any]:
        """The JSON form inside a roster document (without the id)."""
        return {
            "org": self.org, "org_kind": self.org_kind, "location": self.location,
            "roles": sorted(self.roles),
            "approver_keys": [base64.b64encode(k).decode("ascii") for k in self.approver_keys],
            "covered_person": self.covered_person,
            "covered_person_basis": self.covered_person_basis,
        }


def roster_digest(document: bytes) -> str:
    """``sha256:<hex>`` of a roster document's bytes."""
    return _DIGEST_PREFIX + hashlib.sha256(document).hexdigest()


def roster_path(digest: str) -> str:
    """``rosters/sha256-<hex>.json``: where a version is published beside ``bundles/``.

    Raises:
        ValueError: not a ``sha256:<64 hex>`` digest (programmer misuse).
    """
    hex_part = digest.removeprefix(_DIGEST_PREFIX)
    if not digest.startswith(_DIGEST_PREFIX) or len(hex_part) != 64 or \
            any(c not in "0123456789abcdef" for c in hex_part):
        raise ValueError(f"not a sha256: digest: {digest[:80]!r}")
    return f"rosters/sha256-{hex_part}.json"


@dataclass(frozen=True)
class Roster:
    """One roster version: its principals by id, its canonical bytes and digest.

    Build one with :meth:`build` (from values) or :func:`parse_roster` (from
    untrusted bytes).  Look-ups are a dict access: :meth:`principal` and
    :meth:`approver_keys` are what gateways and auditors call per decision.

    Attributes:
        jurisdiction: the jurisdiction whose data the listed principals may read.
        serial: the version number (greater than every earlier version's).
        issued: when the authority made it (RFC 3339, as entries write times).
        principals: ``RosterPrincipal`` by principal id (read-only).
        document: the canonical JSON bytes.
        digest: ``sha256:<hex>`` of ``document``.
    """

    jurisdiction: str
    serial: int
    issued: str
    principals: Mapping[str, RosterPrincipal]
    document: bytes
    digest: str

    @classmethod
    def build(cls, *, jurisdiction: str, serial: int, issued: str,
              principals: Iterable[RosterPrincipal]) -> Roster:
        """A roster version of ``principals`` (ids distinct).

        Raises:
            ValueError: duplicate ids, an approver key listed for two principals, a
                bad serial, jurisdiction or time.
        """
        by_id: dict[str, RosterPrincipal] = {}
        holders: dict[bytes, str] = {}
        for p in principals:
            if p.id in by_id:
                raise ValueError(f"principal {p.id!r} is listed twice")
            by_id[p.id] = p
            for key in p.approver_keys:
                if key in holders:  # one key-holder would count as two approvers
                    raise ValueError(f"one approver key is listed for {holders[key][:80]!r} "
                                     f"and {p.id[:80]!r}")
                holders[key] = p.id
        if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < 2**53:
            raise ValueError("serial must be a positive integer below 2**53")
        if not isinstance(jurisdiction, str) or not _CODE.fullmatch(jurisdiction):
            raise ValueError("jurisdiction must be a lowercase code like 'us'")
        try:
            parse_time(issued)
        except VerificationError as exc:
            raise ValueError(f"issued: {exc}") from None
        document = canonical_json({
            "format": ROSTER_FORMAT, "jurisdiction": jurisdiction, "serial": serial,
            "issued": issued, "principals": {i: p.to_json() for i, p in by_id.items()}})
        return cls(jurisdiction, serial, issued, MappingProxyType(by_id), document,
                   roster_digest(document))

    def principal(self, principal_id: object) -> RosterPrincipal | None:
        """The listed principal ``principal_id``, or None when not listed (an id that
        is not a string, as an untrusted entry may record, is never listed)."""
        return self.principals.get(principal_id) if isinstance(principal_id, str) else None

    def approver_keys(self, principal_id: object) -> tuple[bytes, ...]:
        """Raw 32-byte Ed25519 keys of approver ``principal_id``; ``()`` when the
        principal is not listed or is not an approver."""
        found = self.principal(principal_id)
        return found.approver_keys if found is not None else ()

    def __contains__(self, principal_id: object) -> bool:
        return principal_id in self.principals


def _decode_key(text: object, principal_id: str) -> bytes:
    if not isinstance(text, str):
        raise _malformed(f"{principal_id!r}: approver keys must be base64 strings")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{principal_id!r}: an approver key is not base64") from None
    if base64.b64encode(key).decode("ascii") != text:
        raise _malformed(f"{principal_id!r}: an approver key is not canonical base64")
    return key


def _principal_from(principal_id: str, body: object) -> RosterPrincipal:
    if not isinstance(body, dict) or body.keys() != _MEMBERS:
        raise _malformed(f"principal {principal_id[:80]!r} must have exactly the members "
                         f"{sorted(_MEMBERS)}")
    roles, keys = body["roles"], body["approver_keys"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles) or \
            roles != sorted(set(roles)):
        raise _malformed(f"{principal_id[:80]!r}: roles must be sorted distinct strings")
    if not isinstance(keys, list):
        raise _malformed(f"{principal_id[:80]!r}: approver_keys must be a list")
    try:
        return RosterPrincipal(
            principal_id, body["org"], body["org_kind"], body["location"], frozenset(roles),
            tuple(_decode_key(k, principal_id[:80]) for k in keys), body["covered_person"],
            body["covered_person_basis"])
    except (ValueError, TypeError) as exc:
        raise _malformed(f"principal {principal_id[:80]!r}: {exc}") from None


def parse_roster(data: bytes, digest: str | None = None) -> Roster:
    """Parse and check a roster document (untrusted bytes).

    Args:
        data: the document's bytes.
        digest: when given, the digest the document must have (checked first).

    Returns:
        The roster version; its ``document`` is ``data``.

    Raises:
        VerificationError: ``roster_oversize``, ``roster_digest_mismatch``,
            ``roster_malformed`` (not JSON, members, types, rules) or
            ``roster_not_canonical`` (not the canonical encoding).
    """
    if len(data) > MAX_ROSTER_BYTES:
        raise VerificationError(f"a roster document is at most {MAX_ROSTER_BYTES} bytes",
                                code="roster_oversize")
    if digest is not None and roster_digest(data) != digest:
        raise VerificationError(f"the roster document is not {digest[:80]}",
                                code="roster_digest_mismatch")
    try:
        body = json.loads(data.decode("utf-8"), parse_float=_refuse_float,
                          object_pairs_hook=_unique)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("a roster document is UTF-8 JSON without floats or "
                         "repeated members") from None
    if not isinstance(body, dict) or body.keys() != _TOP or body["format"] != ROSTER_FORMAT:
        raise _malformed(f"a roster document has exactly {sorted(_TOP)}, format "
                         f"{ROSTER_FORMAT!r}")
    principals = body["principals"]
    if not isinstance(principals, dict):
        raise _malformed("principals must be an object by principal id")
    try:
        roster = Roster.build(
            jurisdiction=body["jurisdiction"], serial=body["serial"], issued=body["issued"],
            principals=[_principal_from(i, p) for i, p in principals.items()])
    except (ValueError, TypeError) as exc:
        raise _malformed(f"roster: {exc}") from None
    if roster.document != data:
        raise VerificationError("the roster document is not in canonical JSON form",
                                code="roster_not_canonical")
    return roster


def _refuse_float(text: str) -> Any:
    raise ValueError("floats are not allowed in a roster")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError(f"member {name[:40]!r} repeated")
        seen[name] = value
    return seen

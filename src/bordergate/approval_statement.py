"""Approver-signed approval statements: a grant, denial or revocation, signed on
the approver's side with the approver's own Ed25519 key (issue 12, item 4).

The gateway used to be the only witness that an approver granted an approval:
the ``approval-grant`` entry was its own claim, and a gateway (or a log
operator re-signing a rebuilt log) could write one for any approver.  Now the
approver signs a **statement** with a key that only the approver holds and that
the principal roster lists for them; the gateway verifies it before logging,
stores it in the entry, and the auditor verifies it again, so a grant whose
statement is missing or does not verify never counts.

A statement binds everything that decides what the approval lets through::

    bordergate/approval-statement/v1 LF
    canonical JSON {"approval": "apr-...", "approver": "<principal id>",
                    "origin": "<log origin>", "request": "sha256:<hex>",
                    "verdict": "grant" | "deny" | "revoke"}

The first line is a context string (domain separation: these bytes can never be
read as a signed note, a checkpoint, a token or a roster signature).  The JSON
is :func:`bordergate.entries.canonical_json` (sorted keys, no whitespace).
``request`` is the **request digest**: ``sha256:`` and the hex RFC 9162 leaf
hash of the ``approval-request`` entry's canonical bytes, so the statement
names exactly the request (requester, purpose, scope, expiry) that the log
holds, and an approver can prove that entry's inclusion in a witnessed
checkpoint with the same hash.  ``origin`` ties it to one log, ``approval`` to
one approval, ``verdict`` to one action (a denial cannot be replayed as a
grant), ``approver`` to one principal (a key listed for two principals cannot
lend one's grant to the other).

An entry holds it as ``"statement": {"request": "sha256:<hex>", "key": "<base64
raw Ed25519 public key>", "signature": "<base64 Ed25519 signature>"}``.

A requester revoking their own request signs nothing: that only reduces access.

Checking logic takes values and does no I/O; :func:`load_signing_key` and
:func:`write_signing_key` are the only file seams.  Parsers of untrusted input
raise ``VerificationError`` with a stable code, never ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bordergate.entries import canonical_json
from bordergate.errors import ConfigError, Unavailable, VerificationError
from bordergate.tlog.note import load_ed25519_public_key

__all__ = [
    "STATEMENT_CONTEXT",
    "VERDICTS",
    "ApprovalStatement",
    "ApproverKeys",
    "MappingApproverKeys",
    "SignedStatement",
    "key_text",
    "load_signing_key",
    "parse_statement",
    "request_digest",
    "sign_statement",
    "verify_statement",
    "write_signing_key",
]

STATEMENT_CONTEXT = b"bordergate/approval-statement/v1"
VERDICTS: tuple[str, ...] = ("grant", "deny", "revoke")
_DIGEST_PREFIX = "sha256:"
_MAX_STATEMENT = 4096
_MAX_TEXT = 512  # origin, approval id and principal id: far longer than any real one
_MEMBERS = frozenset({"approval", "approver", "origin", "request", "verdict"})


class ApproverKeys(Protocol):
    """Where an approver's public keys come from (the principal roster in force)."""

    def approver_keys(self, principal_id: str) -> tuple[bytes, ...]:
        """The raw 32-byte Ed25519 public keys listed for ``principal_id`` as an
        approver (empty when it is not an approver, or not listed)."""
        ...


class MappingApproverKeys:
    """Approver keys from a plain mapping (tests, and sources without a roster)."""

    def __init__(self, keys: Mapping[str, tuple[bytes, ...] | list[bytes]]) -> None:
        self._keys = {who: tuple(listed) for who, listed in keys.items()}

    def approver_keys(self, principal_id: str) -> tuple[bytes, ...]:
        return self._keys.get(principal_id, ())


def request_digest(request_entry: bytes) -> str:
    """``sha256:<hex>`` of the RFC 9162 leaf hash of an ``approval-request``
    entry's canonical bytes (what a statement names as ``request``)."""
    return _DIGEST_PREFIX + hashlib.sha256(b"\x00" + request_entry).hexdigest()


def _is_digest(text: object) -> bool:
    hex_part = text[len(_DIGEST_PREFIX):] if isinstance(text, str) else ""
    return isinstance(text, str) and text.startswith(_DIGEST_PREFIX) and \
        len(hex_part) == 64 and all(c in "0123456789abcdef" for c in hex_part)


@dataclass(frozen=True)
class ApprovalStatement:
    """What an approver signs (see the module docstring).

    Attributes:
        origin: the log's origin line.
        approval: the approval id.
        request: the request digest (:func:`request_digest`).
        verdict: ``grant``, ``deny`` or ``revoke``.
        approver: the signing approver's principal id.
    """

    origin: str
    approval: str
    request: str
    verdict: str
    approver: str

    def __post_init__(self) -> None:
        """Raises ValueError for values no statement may hold (programmer misuse)."""
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}")
        if not _is_digest(self.request):
            raise ValueError("request must be a sha256:<64 hex> digest")
        for name in ("origin", "approval", "approver"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
                raise ValueError(f"{name} must be a text of 1 to {_MAX_TEXT} characters")

    def encode(self) -> bytes:
        """The signed bytes: the context line, then the canonical JSON."""
        return STATEMENT_CONTEXT + b"\n" + canonical_json({
            "approval": self.approval, "approver": self.approver, "origin": self.origin,
            "request": self.request, "verdict": self.verdict})


def parse_statement(data: bytes) -> ApprovalStatement:
    """The statement ``data`` encodes (exactly :meth:`ApprovalStatement.encode`'s bytes).

    Raises:
        VerificationError: ``malformed_approval_statement`` for anything else.
    """
    def fail(why: str) -> VerificationError:
        return VerificationError(f"not an approval statement: {why}",
                                 code="malformed_approval_statement")
    if not isinstance(data, bytes) or len(data) > _MAX_STATEMENT:
        raise fail("too long or not bytes")
    context, sep, text = data.partition(b"\n")
    if context != STATEMENT_CONTEXT or not sep:
        raise fail("wrong context line")
    try:
        body = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail("not UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) != _MEMBERS:
        raise fail(f"members must be {sorted(_MEMBERS)}")
    try:
        statement = ApprovalStatement(**body)
    except (TypeError, ValueError) as exc:
        raise fail(str(exc)) from None
    if statement.encode() != data:
        raise fail("not in canonical form")
    return statement


def key_text(public_key: bytes) -> str:
    """The base64 text of a raw public key, as entries and rosters write it."""
    return base64.b64encode(public_key).decode("ascii")


@dataclass(frozen=True)
class SignedStatement:
    """A statement's signature as an entry and the HTTP API carry it.

    Attributes:
        request: the request digest that was signed.
        key: the raw 32-byte Ed25519 public key that signed.
        signature: the 64-byte Ed25519 signature of the statement's bytes.
    """

    request: str
    key: bytes
    signature: bytes

    def to_json(self) -> dict[str, str]:
        """``{"request", "key", "signature"}`` (key and signature in base64)."""
        return {"request": self.request, "key": key_text(self.key),
                "signature": base64.b64encode(self.signature).decode("ascii")}

    @classmethod
    def from_json(cls, data: object) -> SignedStatement:
        """Parse the JSON form (untrusted: a request body or a log entry).

        Raises:
            VerificationError: ``malformed_approval_signature``.
        """
        def fail(why: str) -> VerificationError:
            return VerificationError(f"malformed approval signature: {why}",
                                     code="malformed_approval_signature")
        if not isinstance(data, dict) or set(data) != {"request", "key", "signature"}:
            raise fail("members must be request, key and signature")
        if not _is_digest(data["request"]):
            raise fail("request must be a sha256:<64 hex> digest")
        raw: dict[str, bytes] = {}
        for name, size in (("key", 32), ("signature", 64)):
            text = data[name]
            try:
                value = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
            except (binascii.Error, ValueError):
                value = b""
            if len(value) != size or key_text(value) != text:
                raise fail(f"{name} must be {size} bytes in canonical base64")
            raw[name] = value
        return cls(data["request"], raw["key"], raw["signature"])


def sign_statement(statement: ApprovalStatement, key: ed25519.Ed25519PrivateKey
                   ) -> SignedStatement:
    """Sign ``statement`` with an approver's own private key (on the approver's side)."""
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return SignedStatement(statement.request, public, key.sign(statement.encode()))


def verify_statement(statement: ApprovalStatement, signed: SignedStatement | None,
                     keys: ApproverKeys) -> None:
    """Check that ``signed`` is ``statement`` signed by a key the approver holds.

    Raises:
        VerificationError: ``approval_signature_missing`` (no signature),
            ``approval_request_mismatch`` (signed for another request digest),
            ``approver_key_unknown`` (the key is not one of the approver's), or
            ``approval_signature_invalid`` (it does not verify: another origin,
            approval, verdict or approver, or a forged signature).
    """
    if signed is None:
        raise VerificationError(f"the {statement.verdict} carries no signature by the "
                                "approver's own key", code="approval_signature_missing")
    if signed.request != statement.request:
        raise VerificationError("the signature names another request digest than the "
                                "approval's request entry", code="approval_request_mismatch")
    if signed.key not in keys.approver_keys(statement.approver):
        raise VerificationError(f"key {key_text(signed.key)} is not an approver key of "
                                f"{statement.approver[:80]!r} in the roster",
                                code="approver_key_unknown")
    try:  # the shared loader refuses small-order keys, under which anything verifies
        load_ed25519_public_key(signed.key).verify(signed.signature, statement.encode())
    except (InvalidSignature, VerificationError):
        raise VerificationError("the signature does not verify for this log, approval, "
                                "request, verdict and approver",
                                code="approval_signature_invalid") from None


def load_signing_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """An approver's Ed25519 private key from an unencrypted PKCS#8 PEM file.

    Raises:
        ConfigError: ``approver_key_invalid`` (unreadable, or not Ed25519).
    """
    try:
        key: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read approver key {path}: {exc}",
                          code="approver_key_invalid") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key", code="approver_key_invalid")
    return key


def write_signing_key(path: Path) -> bytes:
    """Create a new approver key at ``path`` (PKCS#8 PEM, mode 0600, never
    overwriting) and return its raw public key.

    Raises:
        ConfigError: ``approver_key_exists`` if ``path`` exists.
        Unavailable: ``key_file_unwritable`` (nothing is left at ``path``).
    """
    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    from bordergate.tlog.logdir import write_key

    try:  # whole or not at all, never overwriting
        write_key(path, data.decode("ascii").strip())
    except ConfigError:
        raise ConfigError(f"{path} exists; not overwriting",
                          code="approver_key_exists") from None
    except OSError as exc:
        raise Unavailable(f"cannot write {path}: {exc.strerror}",
                          code="key_file_unwritable") from None
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)

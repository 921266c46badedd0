"""Receipts: the gateway's signed statement of what it released under a log entry.

Every answer that releases subject data (a read, an export) carries a
**receipt** signed with the gateway's own registered Ed25519 key (issue 12,
item 5; docs/gateway.md "Receipts").  The receipt names the log entry that
recorded the decision (origin, index, and the RFC 9162 leaf hash of the
entry's bytes), the request the entry recorded (the entry's token id ``jti``
and its ``time``, copied from the entry), what kind of answer it was, the names
of the fields whose
values were released (export: the grouping field, the number of groups and the
noisy number suppressed) and a **salted digest** of exactly the values
released::

    digest = HMAC-SHA256(key = salt, DIGEST_CONTEXT || JCS(released values))

where JCS is RFC 8785 JSON canonicalization (the ``rfc8785`` package) and the
salt is 32 fresh random bytes sent to the requester only (``receipt_salt``
in the answer, never in the log or the receipt).  Integers outside the
I-JSON range (|n| > 2^53 - 1; the schema allows 64-bit integers) are encoded
as their decimal string, as RFC 8785 section 6 advises; a field has one type,
so the mapping stays one-to-one per field.  The receipt's own numbers (index,
groups, suppressed) are integers from 0 to 2^53 - 1, so every receipt has an
RFC 8785 form; the parser refuses others.  Without the salt, a receipt
reveals nothing about low-entropy values (a birth year, a boolean), so it can
be handed to a monitor; with the salt and the answer, the requester can prove
the exact values.

The signature is Ed25519 over ``SIGNED_CONTEXT || JCS(statement)`` (the
receipt without ``signature``): the context string separates receipts from
every other thing a bordergate key signs (checkpoints, reviews, tokens) and
names the format version.  The key is written as a signed-note verifier key
(``name+hexid+base64(0x01||key)``, :mod:`bordergate.tlog.note`), the form of
every other key in a deployment.

Format versions: ``bordergate-receipt/v2`` (:data:`FORMAT`, what gateways
issue) binds the receipt to its request: the client refuses a receipt whose
``jti`` is not its own token's or whose ``time`` is not within its request
(:func:`check_binding`), and a monitor finds a ``jti`` or ``time`` that is not
the entry's (:func:`entry_discrepancies`), so a gateway cannot release a
record while citing an earlier allowing entry of another request.
``bordergate-receipt/v1`` receipts (issued before) have no such members; they
still parse and verify (their own signing context), but their tie to a request
cannot be checked (:attr:`Receipt.bound` is false).  The digest's format is
unchanged (:data:`DIGEST_CONTEXT`).

Who could lie, and what catches it (docs/design.md, "Trust model"): a gateway
that logs a denial, or an under-reported ``released`` list, and still releases
data signs a receipt that contradicts its own entry;
:func:`entry_discrepancies` names the contradiction, and since the receipt is
signed by the gateway's registered key (named in the deployment file and in its
``gateway-start`` entry), the gateway cannot disown it.  A gateway that sends a
receipt not matching the body is caught by :func:`check_answer` in the client.

Pure: bytes and values in, values out.  This module must never do I/O, read a
clock or the environment, and never let ``ValueError``/``KeyError`` escape on
an untrusted receipt (``VerificationError`` with a ``receipt_*`` code).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from bordergate.entries import canonical_tail, parse_time
from bordergate.errors import VerificationError
from bordergate.tlog import merkle
from bordergate.tlog.note import Ed25519Verifier, Signer

__all__ = [
    "ACTIONS",
    "DIGEST_CONTEXT",
    "FORMAT",
    "FORMAT_V1",
    "MAX_RECEIPT_BYTES",
    "SALT_BYTES",
    "SIGNED_CONTEXT",
    "Receipt",
    "ReceiptSigner",
    "UnsignedReceipt",
    "canonical_released",
    "check_answer",
    "check_binding",
    "entry_discrepancies",
    "jcs",
    "parse_receipt",
    "released_digest",
    "released_values",
    "verify_receipt_signature",
]

#: The receipt format and version gateways issue, the value of its ``format`` member.
FORMAT = "bordergate-receipt/v2"
#: The format before receipts named their request (still verified, not bound).
FORMAT_V1 = "bordergate-receipt/v1"
#: Prefix of the bytes the gateway signs (domain separation, version).
SIGNED_CONTEXT = b"bordergate-receipt/v2 statement\n"
_SIGNED_CONTEXTS = {FORMAT: SIGNED_CONTEXT, FORMAT_V1: b"bordergate-receipt/v1 statement\n"}
#: Prefix of the bytes the salted digest covers (unchanged since v1).
DIGEST_CONTEXT = b"bordergate-receipt/v1 released values\n"
SALT_BYTES = 32
#: Answers that release subject data, and the entry type that records each.
ACTIONS: Mapping[str, str] = {"read": "access", "export": "export"}
MAX_RECEIPT_BYTES = 64 * 1024
_SAFE_INT = 2**53 - 1
_MEMBERS_V1 = frozenset({"format", "key", "gateway", "origin", "index", "leaf_hash",
                         "action", "collection", "fields", "groups", "suppressed", "digest",
                         "signature"})
_MEMBERS = {FORMAT: _MEMBERS_V1 | {"jti", "time"}, FORMAT_V1: _MEMBERS_V1}
_MAX_FIELDS = 1024
_NOT_PLAIN = re.compile("[\ud800-\udfff\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON escapes can make them; UTF-8 cannot


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")  # base64.b64encode's bytes


@dataclass(frozen=True)
class Receipt:
    """A gateway's signed statement that it released ``fields`` under entry ``index``.

    Attributes:
        key: the gateway's receipt verifier key (``name+hexid+base64``).
        gateway: the jurisdiction code of the gateway.
        origin: the origin of the log holding the entry.
        index: the entry's index in that log.
        leaf_hash: RFC 9162 leaf hash of the entry's bytes.
        action: ``read`` or ``export``.
        collection: the collection read or exported.
        fields: names of the fields whose values were released (read: those
            with a value; export: the grouping field), sorted.
        groups: export only: groups released (None for a read).
        suppressed: export only: the noisy number of groups not released.
        digest: the salted digest of the released values.
        signature: Ed25519 over ``SIGNED_CONTEXT || JCS(statement)`` (the context
            of the receipt's format).
        jti: v2: the token id the entry records (None: the entry records none,
            as an export's does).
        time: v2: the entry's ``time`` (None for a v1 receipt).
        format: :data:`FORMAT` or :data:`FORMAT_V1`.
    """

    key: str
    gateway: str
    origin: str
    index: int
    leaf_hash: bytes
    action: str
    collection: str
    fields: tuple[str, ...]
    groups: int | None
    suppressed: int | None
    digest: bytes
    signature: bytes
    jti: str | None = None
    time: str | None = None
    format: str = FORMAT

    @property
    def bound(self) -> bool:
        """Whether the receipt names its request (token id and time): v2 and later."""
        return self.format != FORMAT_V1

    def statement(self) -> dict[str, Any]:
        """The signed members (everything but ``signature``) as JSON values."""
        statement = {"format": self.format, "key": self.key, "gateway": self.gateway,
                     "origin": self.origin, "index": self.index,
                     "leaf_hash": _b64(self.leaf_hash), "action": self.action,
                     "collection": self.collection, "fields": list(self.fields),
                     "groups": self.groups, "suppressed": self.suppressed,
                     "digest": _b64(self.digest)}
        if self.bound:
            statement.update(jti=self.jti, time=self.time)
        return statement

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return _SIGNED_CONTEXTS[self.format] + jcs(self.statement())

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON object (what answers carry and files hold)."""
        return {**self.statement(), "signature": _b64(self.signature)}

    def to_bytes(self) -> bytes:
        """The receipt as canonical JSON bytes (for files)."""
        return jcs(self.to_json())


def _jcs_safe(value: Any) -> Any:
    """``value`` with integers outside the I-JSON range as decimal strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > _SAFE_INT else value
    if isinstance(value, Mapping):
        return {k: _jcs_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jcs_safe(v) for v in value]
    return value  # refused by rfc8785 below


def _plain(value: Any) -> bool:
    """Whether ``json.dumps`` with sorted keys gives exactly RFC 8785's bytes for
    ``value``, if its UTF-8 encoding succeeds (a lone surrogate fails it): no
    floats (JCS formats them as ECMAScript does), integers within the I-JSON
    range, and object keys without characters past the BMP (JCS sorts keys by
    UTF-16 code units, Python by code points: they differ only there).  String
    values need no check: both escape ``"``, ``\\`` and controls alike (short
    forms for ``\\b\\f\\n\\r\\t``, ``\\u00xx`` otherwise) and write
    everything else as UTF-8.  One loop, no recursion: the gateway runs it on
    every answer."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if not -_SAFE_INT <= item <= _SAFE_INT:
                return False
        elif kind is dict:
            for key, member in item.items():
                if type(key) is not str or (not key.isascii() and _NOT_PLAIN.search(key)):
                    return False
                if type(member) is not str:
                    stack.append(member)
        elif kind is list:
            stack.extend(item)
        else:
            return False  # floats and anything else: the reference decides
    return True


_DUMPS = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode


def jcs(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``: ``json.dumps`` for :func:`_plain` values (what
    the gateway's hot path encodes, property-tested equal to the reference), the
    ``rfc8785`` package for everything else.

    Raises:
        rfc8785.CanonicalizationError: what the reference refuses.
    """
    if _plain(value):
        try:
            return _DUMPS(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference refuses it with its own error
    return rfc8785.dumps(value)


def canonical_released(values: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of the released values (big integers as strings, see above).

    Raises:
        VerificationError: ``receipt_values_not_json`` for values JCS cannot
            encode (NaN, non-string keys, lone surrogates, other types).
    """
    if _plain(values):
        try:
            return _DUMPS(values).encode("utf-8")
        except UnicodeEncodeError:
            pass
    try:
        return rfc8785.dumps(_jcs_safe(values))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise VerificationError(f"released values are not canonical JSON: {exc}",
                                code="receipt_values_not_json") from None


def released_digest(salt: bytes, values: Mapping[str, Any]) -> bytes:
    """``HMAC-SHA256(salt, DIGEST_CONTEXT || JCS(values))``.

    Raises:
        VerificationError: as :func:`canonical_released`.
    """
    # the one-shot C HMAC: the gateway computes one per answer
    return hmac.digest(salt, DIGEST_CONTEXT + canonical_released(values), "sha256")


def released_values(action: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """What the digest of an answer covers: the body members that carry subject data
    (read: ``fields``; export: ``groups`` and ``suppressed``).

    Raises:
        VerificationError: ``receipt_mismatch`` for a body without them.
    """
    try:
        if action == "read":
            return {"fields": body["fields"]}
        if action == "export":
            return {"groups": body["groups"], "suppressed": body["suppressed"]}
    except (KeyError, TypeError):
        raise VerificationError(f"the answer lacks the released members of a {action}",
                                code="receipt_mismatch") from None
    raise VerificationError(f"no receipt for action {action!r}", code="receipt_malformed")


@functools.lru_cache(maxsize=256)
def _statement_parts(key: str, gateway: str, origin: str, action: str, collection: str, *,
                     fields: tuple[str, ...]) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The fixed parts of a statement's RFC 8785 bytes for one answer shape, around
    the members that vary per answer (digest, groups, index, jti, leaf hash,
    suppressed, time).
    JCS writes an object as its members in key order, each value written on its own,
    so the statement is these parts with the varying values between them (the keys
    below are in JCS order; ``test_statement_template_equals_reference`` holds the
    concatenation to ``rfc8785``).

    Raises:
        rfc8785.CanonicalizationError: a string JCS refuses (a lone surrogate).
    """
    return (b'{"action":' + jcs(action) + b',"collection":' + jcs(collection)
            + b',"digest":"',
            b'","fields":' + jcs(list(fields)) + b',"format":' + jcs(FORMAT)
            + b',"gateway":' + jcs(gateway) + b',"groups":',
            b',"index":',
            b',"key":' + jcs(key) + b',"leaf_hash":"',
            b'","origin":' + jcs(origin) + b',"suppressed":')


def _count_bytes(value: int | None) -> bytes:
    return b"null" if value is None else b"%d" % value


def _statement_bytes(key: str, gateway: str, statement: Mapping[str, Any]) -> bytes:
    """``jcs(statement)`` for a statement of ``key`` and ``gateway`` whose counts are
    within the I-JSON range, from the cached parts of its shape (the gateway signs
    one statement per answer; only the digest, index, token id, leaf hash, counts
    and time vary).

    Raises:
        rfc8785.CanonicalizationError: a string JCS refuses (a lone surrogate).
    """
    head, fields, index, leaf, origin = _statement_parts(
        key, gateway, statement["origin"], statement["action"], statement["collection"],
        fields=tuple(statement["fields"]))
    return b"".join((head, statement["digest"].encode("ascii"), fields,
                     _count_bytes(statement["groups"]), index,
                     b"%d" % statement["index"], b',"jti":', jcs(statement["jti"]), leaf,
                     statement["leaf_hash"].encode("ascii"), origin,
                     _count_bytes(statement["suppressed"]), b',"time":',
                     jcs(statement["time"]), b"}"))


def _entry_request(entry: bytes, token_id: str | None = None) -> tuple[str | None, str]:
    """The token id (None if it records none) and time of a log entry's bytes;
    ``token_id``: the token id the caller filled the entry with (then only the time
    is read, from the entry's tail).

    Raises:
        ValueError: not a log entry with a string ``time`` (programmer misuse).
    """
    tail = canonical_tail(entry) if token_id is not None else None
    if tail is not None:  # else not canonical at its end: parse it
        return token_id, tail[0]
    try:
        body = json.loads(entry)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("time"), str):
        raise ValueError("a receipt is prepared from a log entry with its time")
    jti = body.get("jti")
    return (jti if isinstance(jti, str) else None), body["time"]


@dataclass(frozen=True)
class UnsignedReceipt:
    """A receipt's statement before its signature: what :meth:`ReceiptSigner.prepare`
    builds, so that the signature itself can be made elsewhere (a serving gateway's
    receipt helper process, :mod:`bordergate.gateway.signing`).

    Attributes:
        statement: the signed members as JSON values.
        message: the bytes the signature covers (``SIGNED_CONTEXT || JCS(statement)``).
        salt: the digest's salt, for the requester only.
    """

    statement: dict[str, Any]
    message: bytes
    salt: bytes

    def signed(self, signature: bytes) -> dict[str, Any]:
        """The receipt as JSON with ``signature`` (made over :attr:`message`)."""
        return {**self.statement, "signature": _b64(signature)}


class ReceiptSigner:
    """Signs the receipts of one gateway (its registered key, its jurisdiction)."""

    def __init__(self, signer: Signer, gateway: str) -> None:
        self.signer = signer
        self.gateway = gateway
        self.key = signer.verifier().key_string  # once: the hot path signs per answer

    def prepare(self, *, origin: str, index: int, entry: bytes, action: str,
                collection: str, fields: Sequence[str], values: Mapping[str, Any],
                groups: int | None = None, suppressed: int | None = None,
                salt: bytes | None = None, token_id: str | None = None) -> UnsignedReceipt:
        """The statement of an answer's receipt and the bytes to sign, with its salt.
        ``values`` is :func:`released_values` of the answer's body; ``entry`` the
        bytes of the entry at ``index`` (as logged), whose token id and time the
        statement copies (``token_id``: the one the caller filled the entry with,
        which spares parsing it).  No signature yet (see :meth:`issue`).

        Raises:
            ValueError: an unknown action, an index or count outside 0..2^53 - 1,
                an ``entry`` that is not a log entry (programmer misuse).
            VerificationError: as :func:`canonical_released`.
        """
        if action not in ACTIONS:
            raise ValueError(f"no receipt for action {action!r}")
        if not all(0 <= n <= _SAFE_INT for n in (index, groups or 0, suppressed or 0)):
            # what parse_receipt refuses: no verifier could canonicalize it (RFC 8785)
            raise ValueError("a receipt's index and counts are integers from 0 to 2^53 - 1")
        jti, time = _entry_request(entry, token_id)
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        statement = {
            "format": FORMAT, "key": self.key, "gateway": self.gateway, "origin": origin,
            "index": index, "leaf_hash": _b64(merkle.leaf_hash(entry)), "action": action,
            "collection": collection, "fields": sorted(fields), "groups": groups,
            "suppressed": suppressed, "digest": _b64(released_digest(salt, values)),
            "jti": jti, "time": time}
        encoded = _statement_bytes(self.key, self.gateway, statement)
        return UnsignedReceipt(statement, SIGNED_CONTEXT + encoded, salt)

    def issue(self, *, origin: str, index: int, entry: bytes, action: str,
              collection: str, fields: Sequence[str], values: Mapping[str, Any],
              groups: int | None = None, suppressed: int | None = None,
              salt: bytes | None = None) -> tuple[dict[str, Any], bytes]:
        """The signed receipt (as JSON) of an answer, and its salt (for the requester
        only): :meth:`prepare` and one Ed25519 signature, here.

        Raises:
            ValueError: an unknown action (programmer misuse).
            VerificationError: as :func:`canonical_released`.
        """
        unsigned = self.prepare(origin=origin, index=index, entry=entry, action=action,
                                collection=collection, fields=fields, values=values,
                                groups=groups, suppressed=suppressed, salt=salt)
        return unsigned.signed(self.signer.sign(unsigned.message)), unsigned.salt


# -- parsing ---------------------------------------------------------------------
def _fail(detail: str) -> VerificationError:
    return VerificationError(f"malformed receipt: {detail}", code="receipt_malformed")


def _text(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if (not isinstance(value, str) or not value or len(value) > 1024
            or _SURROGATE.search(value)):
        raise _fail(f"{name} must be a non-empty string")
    return value


def _count(doc: Mapping[str, Any], name: str, *, optional: bool = False) -> int | None:
    value = doc[name]
    if value is None and optional:
        return None
    # RFC 8785 (I-JSON) numbers: a larger count could not be canonicalized to check
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _SAFE_INT:
        raise _fail(f"{name} must be an integer from 0 to 2^53 - 1")
    return value


def _bytes(doc: Mapping[str, Any], name: str, size: int | None) -> bytes:
    text = _text(doc, name)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{name} is not base64") from None
    if size is not None and len(raw) != size:
        raise _fail(f"{name} must be {size} bytes")
    if _b64(raw) != text:
        raise _fail(f"{name} is not canonical base64")
    return raw


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("a member is named twice")
    return doc


def parse_receipt(data: bytes | Mapping[str, Any]) -> Receipt:
    """A receipt from its JSON bytes or parsed object (untrusted; signature not checked).

    Raises:
        VerificationError: ``receipt_malformed`` for anything but a receipt of
            :data:`FORMAT` or :data:`FORMAT_V1` (members exactly those of its
            format), ``receipt_unknown_format`` for another format or version.
    """
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_RECEIPT_BYTES:
            raise _fail(f"larger than {MAX_RECEIPT_BYTES} bytes")
        try:
            doc = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_unique)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _fail("not UTF-8 JSON") from None
    else:
        doc = data
    if not isinstance(doc, Mapping):
        raise _fail("not a JSON object")
    form = doc.get("format")
    members = _MEMBERS.get(form) if isinstance(form, str) else None
    if members is None:
        raise VerificationError(f"unknown receipt format {str(form)[:60]!r} "
                                f"(this verifier reads {FORMAT} and {FORMAT_V1})",
                                code="receipt_unknown_format")
    if set(doc) != members:
        odd = sorted(set(doc) ^ members)
        raise _fail(f"unexpected or missing members {odd[:5]}")
    action = _text(doc, "action")
    if action not in ACTIONS:
        raise _fail(f"unknown action {action[:40]!r}")
    fields = doc["fields"]
    if (not isinstance(fields, list) or len(fields) > _MAX_FIELDS
            or not all(isinstance(f, str) and 0 < len(f) <= 256 and not _SURROGATE.search(f)
                       for f in fields)
            or fields != sorted(set(fields))):
        raise _fail("fields must be a sorted list of distinct field names")
    export = action == "export"
    groups = _count(doc, "groups", optional=not export)
    suppressed = _count(doc, "suppressed", optional=not export)
    if not export and (groups is not None or suppressed is not None):
        raise _fail("groups and suppressed are null for a read")
    if export and len(fields) != 1:
        raise _fail("an export names one grouping field")
    index = _count(doc, "index")
    assert index is not None
    jti, time = _request(doc) if form == FORMAT else (None, None)
    return Receipt(
        key=_text(doc, "key"), gateway=_text(doc, "gateway"), origin=_text(doc, "origin"),
        index=index, leaf_hash=_bytes(doc, "leaf_hash", merkle.HASH_SIZE), action=action,
        collection=_text(doc, "collection"), fields=tuple(fields), groups=groups,
        suppressed=suppressed, digest=_bytes(doc, "digest", 32),
        signature=_bytes(doc, "signature", 64), jti=jti, time=time, format=str(form))


def _request(doc: Mapping[str, Any]) -> tuple[str | None, str]:
    """The ``jti`` (a string, or null) and ``time`` (an entry time) of a v2 receipt."""
    jti = None if doc["jti"] is None else _text(doc, "jti")
    time = _text(doc, "time")
    try:
        parse_time(time)
    except VerificationError:
        raise _fail("time must be an entry time (YYYY-MM-DDTHH:MM:SS.mmmZ)") from None
    return jti, time


# -- checking ----------------------------------------------------------------------
def verify_receipt_signature(receipt: Receipt,
                             trusted: Sequence[str] | None = None) -> Ed25519Verifier:
    """Check the receipt's signature with the key it names, and that this key is one
    of ``trusted`` (verifier key strings; None: any key, to be checked elsewhere,
    e.g. against the log's ``gateway-start`` entries).

    Returns:
        The verifier of the key that signed it.

    Raises:
        VerificationError: ``receipt_key_untrusted`` (not a trusted key),
            ``receipt_signature_invalid``, ``malformed_verifier_key``,
            ``receipt_malformed`` (a statement RFC 8785 cannot encode).
    """
    verifier = Ed25519Verifier.from_key_string(receipt.key)
    try:  # parse_receipt admits only what canonicalizes; a Receipt built otherwise may not
        message = receipt.signed_bytes()
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        raise _fail("its statement has no RFC 8785 form") from None
    if trusted is not None:
        known = {Ed25519Verifier.from_key_string(k).key_string for k in trusted}
        if verifier.key_string not in known:
            raise VerificationError(
                f"the receipt is signed by {verifier.name}+{verifier.key_id:08x}, which is "
                "not a registered receipt key of this gateway", code="receipt_key_untrusted")
    if not verifier.verify(message, receipt.signature):
        raise VerificationError("the receipt's signature does not verify",
                                code="receipt_signature_invalid")
    return verifier


def _names_with_values(fields: object) -> list[str]:
    if not isinstance(fields, Mapping):
        raise VerificationError("the answer's fields are not an object", code="receipt_mismatch")
    return sorted(name for name, value in fields.items() if value is not None)


def check_answer(receipt: Receipt, salt: bytes, body: Mapping[str, Any], *,
                 origin: str | None = None, index: int | None = None,
                 action: str | None = None, collection: str | None = None) -> None:
    """Check that ``receipt`` describes the answer ``body`` exactly (the client's check).

    The digest must be that of the body's released values under ``salt``, the
    field names those with a value in the body (read) or the grouping field,
    group count and suppressed number of the export; ``origin``/``index``
    (the answer's log headers), when given, must be the receipt's.  ``action``
    and ``collection`` are what the caller asked for: a client must give them,
    since a receipt of another action covers other members of the body (an
    export receipt on a read answer covers none of its ``fields``).

    Raises:
        VerificationError: ``receipt_mismatch`` or ``receipt_digest_mismatch``.
    """
    if action is not None and receipt.action != action:
        raise VerificationError(f"a receipt of an {receipt.action!r} on the answer of a "
                                f"{action!r}", code="receipt_mismatch")
    if collection is not None and (receipt.collection != collection
                                   or body.get("collection") != collection):
        raise VerificationError(f"the answer or its receipt is not about collection "
                                f"{collection!r}, the one asked for", code="receipt_mismatch")
    values = released_values(receipt.action, body)
    if receipt.action == "read":
        named = _names_with_values(values["fields"])
        if list(receipt.fields) != named:
            raise VerificationError(
                f"the receipt names fields {list(receipt.fields)} but the answer released "
                f"{named}", code="receipt_mismatch")
    else:
        groups = values["groups"]
        if (not isinstance(groups, list) or receipt.groups != len(groups)
                or receipt.suppressed != values["suppressed"]
                or [body.get("group_by")] != list(receipt.fields)):
            raise VerificationError("the receipt's export does not match the answer",
                                    code="receipt_mismatch")
    if body.get("collection") != receipt.collection:
        raise VerificationError("the receipt names another collection",
                                code="receipt_mismatch")
    if (origin is not None and origin != receipt.origin) or (
            index is not None and index != receipt.index):
        raise VerificationError("the receipt names another log entry than the answer",
                                code="receipt_mismatch")
    try:
        expected = released_digest(salt, values)
    except VerificationError as exc:
        raise VerificationError(str(exc), code="receipt_digest_mismatch") from None
    if not hmac.compare_digest(expected, receipt.digest):
        raise VerificationError("the receipt's digest is not that of the values received",
                                code="receipt_digest_mismatch")


def check_binding(receipt: Receipt, *, jti: str | None, start: float, end: float,
                  tolerance: float) -> None:
    """Check that ``receipt`` names the request the client made (the client's check):
    its ``jti`` is the client's token's (reads and exports alike: both entries record
    the token id) and its ``time`` lies from ``start - tolerance`` to
    ``end + tolerance`` (the request's start and end by the client's clock, the
    tolerance for the two clocks' skew).  So a gateway cannot answer with the
    receipt of an earlier entry that allowed another request (the residual: two
    requests of one token within one window, docs/threat-model.md).

    Raises:
        VerificationError: ``receipt_mismatch`` (another token, another time, or a
            v1 receipt, which names no request).
    """
    if not receipt.bound or receipt.time is None:
        raise VerificationError(f"a {receipt.format} receipt names no request",
                                code="receipt_mismatch")
    if receipt.jti is None or receipt.jti != jti:
        raise VerificationError("the receipt's entry records another token than this "
                                "client's", code="receipt_mismatch")
    moment = parse_time(receipt.time)
    if not start - tolerance <= moment <= end + tolerance:
        raise VerificationError(f"the receipt's entry was logged at {receipt.time}, not "
                                "during this request", code="receipt_mismatch")


def entry_discrepancies(receipt: Receipt, entry: Mapping[str, Any]) -> list[str]:
    """Where the (parsed) log entry does not allow what the receipt says was released.

    An empty list means the entry records this release: the entry type of the
    action, the same gateway and collection, (v2) the same token id and time,
    an outcome that is not a denial,
    and (read) every released field in the entry's ``released`` list with an
    allowing decision, or (export) the same grouping field, number of groups and
    number suppressed.  Whether the decisions themselves were right is the
    audit's replay (promise 4), not this check.
    """
    expected = ACTIONS[receipt.action]
    kind = entry.get("type")
    if kind != expected:
        return [f"entry {receipt.index} is a {str(kind)[:40]!r} entry, not the {expected!r} "
                f"entry a {receipt.action} is recorded by"]
    found: list[str] = []
    gateway = entry.get("gateway")
    if gateway is not None and gateway != receipt.gateway:
        found.append(f"the entry was written by gateway {str(gateway)[:20]!r}, the receipt "
                     f"by {receipt.gateway!r}")
    if entry.get("collection") != receipt.collection:
        found.append(f"the entry is about collection {str(entry.get('collection'))[:60]!r}, "
                     f"the receipt {receipt.collection!r}")
    if receipt.bound:
        found += _request_discrepancies(receipt, entry)
    outcome = entry.get("outcome")
    if outcome not in ("allow", "partial"):
        found.append(f"the entry records outcome {str(outcome)[:20]!r} (a denial) but the "
                     f"gateway's receipt says it released {list(receipt.fields)}")
    if receipt.action == "read":
        found += _read_discrepancies(receipt, entry)
    else:
        found += _export_discrepancies(receipt, entry)
    return found


def _request_discrepancies(receipt: Receipt, entry: Mapping[str, Any]) -> list[str]:
    """Where a v2 receipt names another request than its entry records."""
    found: list[str] = []
    jti = entry.get("jti")
    if receipt.jti != (jti if isinstance(jti, str) else None):
        found.append(f"the receipt names token id {receipt.jti!r}, the entry "
                     f"{str(jti)[:64]!r}: the gateway cited another request's entry")
    if receipt.time != entry.get("time"):
        found.append(f"the receipt names time {receipt.time!r}, the entry "
                     f"{str(entry.get('time'))[:40]!r}: the gateway cited another "
                     "request's entry")
    return found


def _allowed_fields(entry: Mapping[str, Any]) -> set[str]:
    decisions = entry.get("decisions")
    if not isinstance(decisions, list):
        return set()
    return {str(d.get("field")) for d in decisions
            if isinstance(d, Mapping) and d.get("allowed") is True}


def _read_discrepancies(receipt: Receipt, entry: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    logged = entry.get("released")
    listed = {x for x in logged if isinstance(x, str)} if isinstance(logged, list) else set()
    unlisted = sorted(set(receipt.fields) - listed)
    if unlisted:
        found.append(f"released {unlisted} which the entry's released list "
                     f"{sorted(listed)} does not name (an under-reported release)")
    unallowed = sorted(set(receipt.fields) - _allowed_fields(entry))
    if unallowed:
        found.append(f"released {unallowed} without an allowing decision in the entry")
    return found


def _export_discrepancies(receipt: Receipt, entry: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if [entry.get("group_by")] != list(receipt.fields):
        found.append(f"the entry groups by {str(entry.get('group_by'))[:60]!r}, the receipt "
                     f"by {receipt.fields[0]!r}")
    if entry.get("groups") != receipt.groups:
        found.append(f"released {receipt.groups} groups, the entry records "
                     f"{str(entry.get('groups'))[:20]}")
    if entry.get("suppressed") != receipt.suppressed:
        found.append(f"reported {receipt.suppressed} groups suppressed, the entry "
                     f"{str(entry.get('suppressed'))[:20]}")
    if receipt.fields and receipt.fields[0] not in _allowed_fields(entry):
        found.append(f"exported {receipt.fields[0]!r} without an allowing decision")
    return found

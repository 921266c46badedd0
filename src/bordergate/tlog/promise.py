"""The sequencer's signed promise of inclusion (like a Certificate Transparency SCT).

When the log operator acknowledges an entry it can hand the appender a small
statement, signed with the log key, that the entry with this leaf hash *is*
entry ``index`` of log ``origin`` as of ``time``.  Anyone holding the log's
verifier key can check it without the log; a later checkpoint that does not
include that leaf at that index proves the operator broke its word (the
statement is evidence against it).  A key service can release a data key on
the strength of a promise before the next checkpoint is published.

Encoding (domain-separated, so no checkpoint, note or other signature of the
same key can be taken for a promise, nor the reverse)::

    message   = b"bordergate/inclusion-promise/v1\\x00" + statement
    statement = origin "\\n" index "\\n" base64(leaf hash) "\\n" time-ms "\\n"
    promise   = statement + "\\u2014 " + base64(Ed25519 signature of message) "\\n"

``index`` and ``time-ms`` (milliseconds since the Unix epoch) are decimal
without leading zeros.  The signature is the log key's raw Ed25519 signature
(the same key that signs checkpoints, under its own domain prefix).

This module is pure: bytes in, values out; the time is a parameter.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from bordergate.errors import VerificationError
from bordergate.tlog import merkle
from bordergate.tlog.note import Signer, Verifier, decode_base64

__all__ = ["MAX_PROMISE", "InclusionPromise", "open_promise", "promise_for"]

DOMAIN = b"bordergate/inclusion-promise/v1\x00"
MAX_PROMISE = 1024
_DASH = "\u2014 "
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,18})\Z")


@dataclass(frozen=True)
class InclusionPromise:
    """What a promise states: entry ``index`` of ``origin`` has ``leaf_hash`` (at ``time_ms``)."""

    origin: str
    index: int
    leaf_hash: bytes
    time_ms: int

    def statement(self) -> bytes:
        """The signed statement (without the domain prefix)."""
        return (f"{self.origin}\n{self.index}\n{base64.b64encode(self.leaf_hash).decode()}\n"
                f"{self.time_ms}\n").encode()

    def covers(self, entry: bytes) -> bool:
        """Whether this promise is about exactly ``entry``."""
        return merkle.leaf_hash(entry) == self.leaf_hash


def promise_for(signer: Signer, index: int, entry: bytes, time_ms: int) -> bytes:
    """The signed promise that ``entry`` is entry ``index`` of the signer's log.

    Raises:
        ValueError: a negative index or time (programmer misuse).
    """
    if index < 0 or time_ms < 0:
        raise ValueError("index and time are non-negative")
    statement = InclusionPromise(signer.name, index, merkle.leaf_hash(entry),
                                 time_ms).statement()
    signature = signer.sign(DOMAIN + statement)
    return statement + f"{_DASH}{base64.b64encode(signature).decode()}\n".encode()


def open_promise(data: bytes, verifier: Verifier) -> InclusionPromise:
    """Parse a promise and check its signature by ``verifier`` (the log's key).

    Raises:
        VerificationError: ``malformed_promise`` (any defect of form) or
            ``promise_signature_invalid`` (another key, another origin, or
            altered bytes).
    """
    if len(data) > MAX_PROMISE:
        raise VerificationError("promise too long", code="malformed_promise")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("promise is not UTF-8", code="malformed_promise") from None
    lines = text.split("\n")
    if len(lines) != 6 or lines[5] != "" or not lines[4].startswith(_DASH):
        raise VerificationError("a promise is four lines and a signature line",
                                code="malformed_promise")
    origin, index, leaf, time_ms = lines[:4]
    if not origin or _DECIMAL.match(index) is None or _DECIMAL.match(time_ms) is None:
        raise VerificationError("bad promise origin, index or time", code="malformed_promise")
    # canonical base64 only: another spelling of the same signature (other bits in
    # the last character's unused low bits) would be a second valid promise text
    leaf_hash = decode_base64(leaf, code="malformed_promise", what="a promise's leaf hash")
    signature = decode_base64(lines[4][len(_DASH):], code="malformed_promise",
                              what="a promise's signature")
    promise = InclusionPromise(origin, int(index), leaf_hash, int(time_ms))
    if len(leaf_hash) != 32 or promise.statement() != "\n".join(lines[:4]).encode() + b"\n":
        raise VerificationError("promise is not in canonical form", code="malformed_promise")
    if origin != verifier.name or len(signature) != 64 \
            or not verifier.verify(DOMAIN + promise.statement(), signature):
        raise VerificationError(f"promise not signed by {verifier.name}",
                                code="promise_signature_invalid")
    return promise

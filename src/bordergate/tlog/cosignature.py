"""C2SP tlog-cosignature ``cosignature/v1``: timestamped Ed25519 witness signatures.

A cosignature is a signed-note signature of type ``0x04`` over a checkpoint:
the signature bytes are ``u64 timestamp (big-endian) || Ed25519 signature``,
and the signed message is ``"cosignature/v1\\n" + "time <timestamp>\\n" +
<checkpoint note text>`` (c2sp.org/tlog-cosignature).  A witness uses
:class:`CosignatureSigner`; logs and auditors check cosignatures with
:class:`CosignatureVerifier`, which plugs into :func:`bordergate.tlog.note.open_note`
like any other verifier (promise 5: append-only and witnessed).

Pure: time is a parameter (a clock callable given to the signer), never read
here.  This module must never do I/O, and must never let ``ValueError`` escape
on untrusted input.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Callable, Iterable, Sequence

from cryptography.exceptions import InvalidSignature

from bordergate.errors import VerificationError
from bordergate.tlog.note import (
    Ed25519Verifier,
    NoteSignature,
    _parse_signer_key,
    ed25519_key,
)

__all__ = [
    "COSIGNATURE_TYPE",
    "MAX_TIMESTAMP",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosignature_message",
    "cosignature_timestamp",
    "count_witnesses",
    "group_by_witness",
]

COSIGNATURE_TYPE = 0x04
MAX_TIMESTAMP = (1 << 63) - 1


def cosignature_message(text: str | bytes, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs for a checkpoint note text at ``timestamp``.

    Raises:
        ValueError: ``timestamp`` outside 0..2^63-1 (programmer misuse).
    """
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError("cosignature timestamp out of range")
    body = text.encode("utf-8") if isinstance(text, str) else text
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The timestamp of a cosignature/v1 signature line (bytes after the key id).

    Raises:
        VerificationError: code ``malformed_cosignature`` if the signature is not
            72 bytes or the timestamp exceeds 2^63-1.
    """
    blob = signature.signature
    if len(blob) != 72:
        raise VerificationError(
            "a cosignature/v1 signature is 8 + 64 bytes", code="malformed_cosignature"
        )
    (timestamp,) = struct.unpack(">Q", blob[:8])
    if timestamp > MAX_TIMESTAMP:
        raise VerificationError(
            "cosignature timestamp exceeds 2^63-1", code="malformed_cosignature"
        )
    return int(timestamp)


def group_by_witness(keys: Iterable[tuple[str, int]], trusted: Sequence[CosignatureVerifier]
                     ) -> list[tuple[tuple[str, int], ...]]:
    """Group ``(name, key id)`` pairs of cosignatures by the witness that made them.

    The one counting rule of a witness quorum (promise 5), used by
    :class:`bordergate.tlog.client.LogClient` and
    :func:`bordergate.audit.witness_check.check_witnesses` alike.  A quorum
    counts witnesses, not keys:

    * a witness is one name: several keys under one name (a key rotation)
      are one witness, or one colluding witness would count twice;
    * one public key is one witness whatever names it is listed under:
      cosignature/v1 does not sign the key name, so whoever holds one real
      cosignature can copy its line under every other name that key has.

    So two pairs belong to the same witness when they share a name or a
    public key (transitively).  Pairs that are no ``trusted`` key are dropped.

    Args:
        keys: the ``(name, key id)`` of verified cosignatures (or of trusted keys).
        trusted: the witness keys the caller trusts.

    Returns:
        One tuple of ``(name, key id)`` pairs per distinct witness, each tuple
        and the list sorted, repeated pairs once.
    """
    public = {(v.name, v.key_id): v.public_key for v in trusted}
    parent: dict[object, object] = {}

    def root(node: object) -> object:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    members = sorted({k for k in keys if k in public})
    for name, key_id in members:  # one set: the pair, its name and its public key
        for other in (("name", name), ("key", public[name, key_id])):
            parent[root(other)] = root(("pair", name, key_id))
    groups: dict[object, list[tuple[str, int]]] = {}
    for name, key_id in members:
        groups.setdefault(root(("pair", name, key_id)), []).append((name, key_id))
    return sorted(tuple(g) for g in groups.values())


def count_witnesses(keys: Iterable[tuple[str, int]],
                    trusted: Sequence[CosignatureVerifier]) -> int:
    """How many distinct trusted witnesses the ``(name, key id)`` pairs stand for
    (:func:`group_by_witness`); with ``keys`` the trusted keys themselves, how
    many witnesses a quorum can count at most."""
    return len(group_by_witness(keys, trusted))


class CosignatureVerifier(Ed25519Verifier):
    """Checks cosignature/v1 (type 0x04) signatures of one witness key.

    The key, its name, id and key string work as for a log key (only the type
    byte differs); what is signed differs, see :meth:`verify`.
    """

    key_type = COSIGNATURE_TYPE

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (timestamp || sig) is a valid cosignature of the text."""
        if len(signature) != 72:
            return False
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return False
        signed = cosignature_message(message, timestamp)
        try:
            self._public_key.verify(signature[8:], signed)
        except InvalidSignature:
            return False
        return True


class CosignatureSigner:
    """A witness key that produces cosignature/v1 signatures at the clock's time."""

    key_type = COSIGNATURE_TYPE

    def __init__(self, name: str, seed: bytes, clock: Callable[[], int]) -> None:
        """Build from a key name, a 32-byte seed and a clock giving POSIX seconds.

        Raises:
            ValueError: an invalid name or seed length (programmer misuse).
        """
        self._seed, self._private_key, self.public_key, self.key_id = ed25519_key(
            name, seed, self.key_type)
        self.name = name
        self.clock = clock

    @classmethod
    def generate(cls, name: str, clock: Callable[[], int]) -> CosignatureSigner:
        """A new witness key with a fresh random seed."""
        return cls(name, secrets.token_bytes(32), clock)

    @classmethod
    def from_key_string(cls, key: str, clock: Callable[[], int]) -> CosignatureSigner:
        """Parse ``PRIVATE+KEY+name+hexid+base64(0x04||seed)``.

        Raises:
            VerificationError: code ``malformed_signer_key`` on any defect.
        """
        name, seed = _parse_signer_key(key, cls.key_type)
        return cls(name, seed, clock)

    @property
    def key_string(self) -> str:
        """The private key string; keep it secret."""
        encoded = base64.b64encode(bytes([self.key_type]) + self._seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def verifier(self) -> CosignatureVerifier:
        """The matching cosignature/v1 verifier."""
        return CosignatureVerifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Cosign a checkpoint note text now: ``u64 timestamp || Ed25519 signature``."""
        return self.sign_at(message, self.clock())

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """Cosign a checkpoint note text with an explicit timestamp.

        Raises:
            ValueError: ``timestamp`` outside 0..2^63-1 (programmer misuse).
        """
        signed = cosignature_message(message, timestamp)
        return struct.pack(">Q", timestamp) + self._private_key.sign(signed)

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r}, key_id={self.key_id:08x})"

"""C2SP signed-note: Ed25519 signers and verifiers, key strings, sign and open.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or
more signature lines ``— <key name> base64(key id || signature)``
(c2sp.org/signed-note).  This module formats and parses notes and key strings
and checks signatures; it is the base every checkpoint and cosignature in
bordergate stands on (promise 5: append-only and witnessed).

Key strings:

* verifier key: ``<name>+<8 hex digits key id>+base64(type || public key)``
* signer key:   ``PRIVATE+KEY+<name>+<8 hex digits key id>+base64(type || seed)``

where the key id is the first four bytes (big-endian) of
``SHA-256(name || 0x0A || type || public key)``.  Type ``0x01`` is Ed25519
(this module); type ``0x04`` is the timestamped cosignature/v1 of
c2sp.org/tlog-cosignature, which lives in :mod:`bordergate.tlog.cosignature`
and plugs into :func:`open_note` through the same :class:`Verifier` base.

Rules from the spec that :func:`open_note` enforces: signatures from unknown
keys (name and key id not both matching a known verifier) are kept but never
trusted; a signature from a known key that fails to verify rejects the whole
note; a note without any verified signature is rejected.  A line repeated
verbatim is checked once: a note is untrusted input (a witness verifies every
request's), and a public checkpoint's valid signature line copied a hundred
times must not cost a hundred Ed25519 checks.

This module is pure: it takes bytes and returns values.  It must never read
files, the network or the clock, and must never let ``ValueError``,
``IndexError`` or ``UnicodeDecodeError`` escape on untrusted input: every
failure is a :class:`~bordergate.errors.VerificationError` with a stable code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bordergate.errors import VerificationError

__all__ = [
    "ED25519_TYPE",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Ed25519Verifier",
    "NoteSignature",
    "NoteSigner",
    "OpenedNote",
    "Signer",
    "Verifier",
    "add_signatures",
    "decode_base64",
    "ed25519_key",
    "is_valid_key_name",
    "key_id_for",
    "load_ed25519_public_key",
    "note_signatures",
    "open_note",
    "parse_signature_lines",
    "parse_verifier_key",
    "sign_note",
]

ED25519_TYPE = 0x01
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # ASCII controls except newline
_BAD_NAME_CHAR = re.compile(r"[\s+\x00-\x1f\x7f]")  # Unicode spaces, plus, controls


def key_id_for(name: str, key_type: int, public_key: bytes) -> int:
    """Compute the signed-note key id of a key.

    Args:
        name: the key name.
        key_type: the signature type byte (0x01 Ed25519, 0x04 cosignature/v1).
        public_key: the public key material (32 bytes for Ed25519 types).

    Returns:
        The first four bytes of SHA-256(name || 0x0A || type || key), big-endian.
    """
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def is_valid_key_name(name: str) -> bool:
    """Whether ``name`` is a valid key name: non-empty, no Unicode space, no ``+``.

    Control characters are refused too, since a note may not contain them.
    """
    return name != "" and "+" not in name and _BAD_NAME_CHAR.search(name) is None


def decode_base64(text: str, *, code: str, what: str) -> bytes:
    """Decode canonical standard base64 (RFC 4648 section 4), strictly.

    Args:
        text: the encoded text.
        code: the error code to raise with.
        what: what is being decoded, for the message.

    Returns:
        The decoded bytes.

    Raises:
        VerificationError: characters outside the alphabet, bad padding, or a
            non-canonical encoding (stray bits in the last character).
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise VerificationError(f"{what} is not valid base64", code=code) from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{what} is not canonical base64", code=code)
    return raw


def parse_verifier_key(vkey: str) -> tuple[str, int, int, bytes]:
    """Split a verifier key string into its parts, checking its form and key id.

    Args:
        vkey: ``<name>+<hex key id>+base64(type || key material)``.

    Returns:
        ``(name, key_id, key_type, key_material)``.

    Raises:
        VerificationError: code ``malformed_verifier_key`` on any defect,
            including a key id that does not match the name and key.
    """
    code = "malformed_verifier_key"
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise VerificationError("verifier key must be name+keyid+key", code=code)
    name, hex_id, key64 = parts
    if not is_valid_key_name(name):
        raise VerificationError("verifier key has an invalid key name", code=code)
    key_id = _parse_hex_key_id(hex_id, code=code)
    raw = decode_base64(key64, code=code, what="verifier key material")
    if len(raw) < 2:
        raise VerificationError("verifier key material is too short", code=code)
    key_type, material = raw[0], raw[1:]
    if key_id_for(name, key_type, material) != key_id:
        raise VerificationError("verifier key id does not match name and key", code=code)
    return name, key_id, key_type, material


def _parse_hex_key_id(hex_id: str, *, code: str) -> int:
    if len(hex_id) != 8 or any(ch not in "0123456789abcdef" for ch in hex_id):
        raise VerificationError("key id must be 8 lowercase hex digits", code=code)
    return int(hex_id, 16)


def _vkey_string(name: str, key_id: int, key_type: int, material: bytes) -> str:
    encoded = base64.b64encode(bytes([key_type]) + material).decode("ascii")
    return f"{name}+{key_id:08x}+{encoded}"


class NoteSigner(Protocol):
    """Anything that can sign a note: a name, a key id and a ``sign`` method."""

    @property
    def name(self) -> str:
        """The key name written in the signature line."""

    @property
    def key_id(self) -> int:
        """The 32-bit key id written before the signature."""

    def sign(self, message: bytes) -> bytes:
        """Sign the note text; return the signature bytes (without the key id)."""


class Verifier(ABC):
    """A known key that can check the signatures of one (name, key id) pair.

    Subclasses define the signature type: :class:`Ed25519Verifier` (0x01) here,
    the cosignature/v1 verifier (0x04) in :mod:`bordergate.tlog.cosignature`.
    A key string is parsed by the subclass of its type (``from_key_string``),
    so this base never needs to know its subclasses.
    """

    name: str
    key_id: int

    @property
    @abstractmethod
    def key_string(self) -> str:
        """The verifier key string ``name+hexid+base64(type||key)``."""

    @abstractmethod
    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key id) is valid over the note text."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key_string!r})"


# The y-coordinates (32 bytes little-endian, sign bit of x cleared) of every encoding of
# an Ed25519 point of small order (order 1, 2, 4 or 8: the eight torsion points), as in
# libsodium's blocklist (crypto_core/ed25519/ref10/ed25519_ref10.c, ge25519_has_small_order):
# y = 0, 1, the two y of the order-8 points, p - 1, and the non-canonical y = p, p + 1
# (RFC 8032 section 5.1.3 decoding, p = 2^255 - 19).  With the sign bit ignored this
# also covers the "negative zero" x of y = 1 and y = p - 1.  Under such a key the
# signature (R = identity, S = 0) and others verify for every message, so whoever
# registers it can disown what it signed and anyone can sign as it.
# tests/tlog/test_small_order_keys.py recomputes this set from the curve.
_SMALL_ORDER_Y = frozenset(bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
))


def load_ed25519_public_key(material: bytes, *, code: str = "malformed_verifier_key"
                            ) -> Ed25519PublicKey:
    """Load a raw 32-byte Ed25519 public key to verify signatures with.

    The one loader of every Ed25519 key bordergate verifies with (log, witness,
    receipt, roster authority, reviewer and approver keys): it refuses the
    encodings of the small-order points, under which a signature verifies for
    every message (see ``_SMALL_ORDER_Y``).

    Raises:
        VerificationError: with ``code``, for a key that is not 32 bytes, not a
            point, or of small order.
    """
    if len(material) != 32:
        raise VerificationError("an Ed25519 public key is 32 bytes", code=code)
    if material[:31] + bytes([material[31] & 0x7F]) in _SMALL_ORDER_Y:
        raise VerificationError("a small-order Ed25519 public key (any signature would "
                                "verify under it) is refused", code=code)
    try:
        return Ed25519PublicKey.from_public_bytes(material)
    except ValueError as exc:
        raise VerificationError("not an Ed25519 public key", code=code) from exc


class Ed25519Verifier(Verifier):
    """An Ed25519 (type 0x01) signed-note verifier."""

    key_type = ED25519_TYPE

    def __init__(self, name: str, public_key: bytes) -> None:
        """Build a verifier from a key name and a 32-byte Ed25519 public key.

        Raises:
            VerificationError: code ``malformed_verifier_key`` for a bad name or key.
        """
        if not is_valid_key_name(name):
            raise VerificationError("invalid key name", code="malformed_verifier_key")
        self._public_key = load_ed25519_public_key(public_key)
        self.public_key = public_key
        self.name = name
        self.key_id = key_id_for(name, self.key_type, public_key)

    @classmethod
    def from_key_string(cls, vkey: str) -> Self:
        """Parse a verifier key string of this class's type (0x01 for a log key).

        Raises:
            VerificationError: code ``malformed_verifier_key`` on any defect or
                another key type.
        """
        name, _key_id, key_type, material = parse_verifier_key(vkey)
        if key_type != cls.key_type:
            raise VerificationError(
                f"expected key type 0x{cls.key_type:02x}, got 0x{key_type:02x}",
                code="malformed_verifier_key",
            )
        return cls(name, material)

    @property
    def key_string(self) -> str:
        """The verifier key string."""
        return _vkey_string(self.name, self.key_id, self.key_type, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            self._public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def ed25519_key(name: str, seed: bytes, key_type: int
                ) -> tuple[bytes, Ed25519PrivateKey, bytes, int]:
    """``(seed, private key, raw public key, key id)`` of a named signing key.

    Raises:
        ValueError: an invalid key name or a seed that is not 32 bytes (misuse).
    """
    if not is_valid_key_name(name):
        raise ValueError(f"invalid key name {name!r}")
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    private_key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
    public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return bytes(seed), private_key, public_key, key_id_for(name, key_type, public_key)


class Signer:
    """An Ed25519 (type 0x01) signed-note signer: a key name and a 32-byte seed."""

    key_type = ED25519_TYPE

    def __init__(self, name: str, seed: bytes) -> None:
        """Build a signer; prefer :meth:`generate`, :meth:`from_seed` or a key string.

        Raises:
            ValueError: an invalid key name or a seed that is not 32 bytes
                (programmer misuse; key strings are checked by
                :meth:`from_key_string`).
        """
        self._seed, self._private_key, self.public_key, self.key_id = ed25519_key(
            name, seed, self.key_type)
        self.name = name

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new signer with a fresh random seed from the OS."""
        return cls(name, secrets.token_bytes(32))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """A signer from a known 32-byte seed (tests use fixed seeds)."""
        return cls(name, seed)

    @classmethod
    def from_key_string(cls, key: str) -> Signer:
        """Parse a signer key string ``PRIVATE+KEY+name+hexid+base64(0x01||seed)``.

        Raises:
            VerificationError: code ``malformed_signer_key`` on any defect,
                including a key id that does not match.
        """
        name, seed = _parse_signer_key(key, cls.key_type)
        signer = cls(name, seed)
        return signer

    @property
    def key_string(self) -> str:
        """The private signer key string; keep it secret."""
        encoded = base64.b64encode(bytes([self.key_type]) + self._seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{encoded}"

    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


def _parse_signer_key(key: str, key_type: int) -> tuple[str, bytes]:
    """Parse ``PRIVATE+KEY+name+hexid+base64(type||seed)`` for an Ed25519 type.

    Returns the name and the 32-byte seed; raises VerificationError
    ``malformed_signer_key`` otherwise (the key id is checked against the seed).
    """
    code = "malformed_signer_key"
    if not key.startswith(_PRIVATE_PREFIX):
        raise VerificationError("signer key must start with PRIVATE+KEY+", code=code)
    parts = key[len(_PRIVATE_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise VerificationError("signer key must be PRIVATE+KEY+name+keyid+key", code=code)
    name, hex_id, key64 = parts
    if not is_valid_key_name(name):
        raise VerificationError("signer key has an invalid key name", code=code)
    key_id = _parse_hex_key_id(hex_id, code=code)
    raw = decode_base64(key64, code=code, what="signer key material")
    if len(raw) != 33 or raw[0] != key_type:
        raise VerificationError(
            f"signer key must be type 0x{key_type:02x} with a 32-byte seed", code=code
        )
    seed = raw[1:]
    public = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    if key_id_for(name, key_type, public) != key_id:
        raise VerificationError("signer key id does not match name and key", code=code)
    return name, seed


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def to_line(self) -> str:
        """The signature line, ``— name base64(keyid||signature)\\n``."""
        blob = struct.pack(">I", self.key_id) + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text is backed by at least one verified signature."""

    text: str
    verified: list[NoteSignature] = field(default_factory=list)
    unverified: list[NoteSignature] = field(default_factory=list)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if _CONTROL.search(text):
        raise ValueError("note text must not contain control characters other than newline")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` with every signer and return the signed note bytes.

    Args:
        text: the note text; must end with a newline and hold no control
            characters other than newline.
        signers: one or more signers (Ed25519 :class:`Signer`, cosigners, ...).

    Returns:
        ``text``, a blank line, and one signature line per signer, UTF-8 encoded.

    Raises:
        ValueError: the text breaks the note rules or no signer was given
            (programmer misuse).
    """
    _check_text(text)
    if not signers:
        raise ValueError("a note needs at least one signer")
    message = text.encode("utf-8")
    lines = [NoteSignature(s.name, s.key_id, s.sign(message)).to_line() for s in signers]
    return (text + "\n" + "".join(lines)).encode("utf-8")


def note_signatures(
    data: bytes, *, max_size: int = MAX_NOTE_SIZE
) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and its signature lines, verifying nothing.

    Args:
        data: the signed note bytes (untrusted).
        max_size: the largest note accepted, in bytes.

    Returns:
        ``(text, signatures)`` in the order they appear.

    Raises:
        VerificationError: code ``malformed_note`` if any format rule is broken.
    """
    code = "malformed_note"
    if len(data) > max_size:
        raise VerificationError(f"note is larger than {max_size} bytes", code="note_too_large")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError("note is not valid UTF-8", code=code) from exc
    if _CONTROL.search(whole):
        raise VerificationError("note contains a control character", code=code)
    split = whole.rfind("\n\n")
    if split < 0:
        raise VerificationError("note has no blank line before its signatures", code=code)
    text, block = whole[: split + 1], whole[split + 2 :]
    if not block.endswith("\n"):
        raise VerificationError("note must end with a signature line and newline", code=code)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"note has more than {MAX_SIGNATURES} signatures", code=code)
    return text, [_parse_signature_line(line) for line in lines]


def parse_signature_lines(data: bytes) -> list[NoteSignature]:
    """Parse a bare block of signature lines (e.g. a witness's add-checkpoint answer).

    Args:
        data: one or more ``— name base64`` lines, each ending with a newline.

    Returns:
        The signatures in order; nothing is verified.

    Raises:
        VerificationError: code ``malformed_note`` for any malformed line, an
            empty block, or more than the signature limit.
    """
    code = "malformed_note"
    if len(data) > MAX_NOTE_SIZE:
        raise VerificationError("signature block is too large", code="note_too_large")
    try:
        block = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError("signature block is not valid UTF-8", code=code) from exc
    if not block.endswith("\n") or _CONTROL.search(block):
        raise VerificationError("signature lines must be newline-terminated text", code=code)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"more than {MAX_SIGNATURES} signatures", code=code)
    return [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> NoteSignature:
    code = "malformed_note"
    if not line.startswith(_SIG_PREFIX):
        raise VerificationError("signature line must start with an em dash and space", code=code)
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep or not is_valid_key_name(name) or " " in b64:
        raise VerificationError("signature line must be '— name signature'", code=code)
    blob = decode_base64(b64, code=code, what="signature")
    if len(blob) < 5:
        raise VerificationError("signature is shorter than a key id and one byte", code=code)
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def open_note(
    data: bytes, verifiers: Sequence[Verifier], *, max_size: int = MAX_NOTE_SIZE
) -> OpenedNote:
    """Parse a signed note and verify it against the known verifiers.

    Args:
        data: the signed note bytes (untrusted).
        verifiers: the known keys; a signature is checked only if both its
            name and key id match one of them.
        max_size: the largest note accepted, in bytes.

    Returns:
        The note text with its verified and unverified (unknown key) signatures;
        a repeated (name, key id) is listed once.

    Raises:
        VerificationError: ``malformed_note`` / ``note_too_large`` for a bad
            format, ``invalid_signature`` if a known key's signature fails,
            ``no_known_signature`` if no known key signed the note.
    """
    text, signatures = note_signatures(data, max_size=max_size)
    known = {(v.name, v.key_id): v for v in reversed(verifiers)}
    message = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    checked: set[NoteSignature] = set()
    for sig in signatures:
        if sig in checked:
            continue  # the same line again: verified once (100 copies cost one check)
        checked.add(sig)
        verifier = known.get((sig.name, sig.key_id))
        if verifier is not None and not verifier.verify(message, sig.signature):
            raise VerificationError(
                f"signature by known key {sig.name}+{sig.key_id:08x} does not verify",
                code="invalid_signature",
            )
        if (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        (verified if verifier is not None else unverified).append(sig)
    if not verified:
        raise VerificationError("note is not signed by any known key", code="no_known_signature")
    return OpenedNote(text, verified, unverified)


def add_signatures(note: bytes, new: Iterable[NoteSignature]) -> bytes:
    """Merge signature lines into a signed note, dropping repeated (name, key id).

    The existing lines keep their order and win over new ones with the same
    (name, key id); new lines are appended in order.  Nothing is verified:
    callers merge signatures they verified (e.g. witness cosignatures).

    Args:
        note: a well-formed signed note.
        new: the signatures to add.

    Returns:
        The signed note bytes with the merged signature block.

    Raises:
        VerificationError: ``malformed_note`` if ``note`` is malformed or the
            result would exceed the signature limit.
    """
    text, existing = note_signatures(note)
    merged = list(existing)
    seen = {(s.name, s.key_id) for s in existing}
    for sig in new:
        if (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            merged.append(sig)
    if len(merged) > MAX_SIGNATURES:
        raise VerificationError(
            f"note would have more than {MAX_SIGNATURES} signatures", code="malformed_note"
        )
    return (text + "\n" + "".join(s.to_line() for s in merged)).encode("utf-8")

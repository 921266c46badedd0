"""C2SP tlog-checkpoint: the signed tree head of a log, and its witness cosignatures.

A checkpoint's note text is the origin line, the decimal tree size, the base64
root hash, then optional non-empty extension lines (c2sp.org/tlog-checkpoint).
It is signed as a signed note by the log's key and cosigned by witnesses
(cosignature/v1).  Promise 5 (append-only and witnessed) is checked against
these values.

Rule chosen here beyond the spec's SHOULD: the log's key name must equal the
origin line; a checkpoint signed by a key of another name is refused
(``origin_mismatch``), so one key cannot vouch for another log by accident.

Pure: bytes in, values out.  This module must never do I/O or read the clock,
and must never let ``ValueError``/``IndexError`` escape on untrusted input.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bordergate.errors import VerificationError
from bordergate.tlog.cosignature import CosignatureVerifier, cosignature_timestamp
from bordergate.tlog.note import (
    MAX_NOTE_SIZE,
    NoteSignature,
    NoteSigner,
    Verifier,
    decode_base64,
    open_note,
    sign_note,
)

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "Cosignature",
    "SignedCheckpoint",
    "open_checkpoint",
    "sign_checkpoint",
]

MAX_TREE_SIZE = (1 << 63) - 1
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # ASCII controls except newline


@dataclass(frozen=True)
class Checkpoint:
    """The body of a checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise ValueError("origin must be one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError("tree size out of range")
        if len(self.root) != 32:
            raise ValueError("root hash must be 32 bytes")
        if any(not line or "\n" in line for line in self.extensions):
            raise ValueError("extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """The checkpoint note text, ending with a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly.

        Args:
            text: the note text (without signatures), ending with a newline.

        Returns:
            The checkpoint.

        Raises:
            VerificationError: code ``malformed_checkpoint`` for a missing final
                newline, fewer than three lines, an empty line, an empty origin,
                a size that is not canonical decimal below 2^63, or a root that
                is not canonical base64 of 32 bytes.
        """
        code = "malformed_checkpoint"
        if not text.endswith("\n"):
            raise VerificationError("checkpoint text must end with a newline", code=code)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise VerificationError("checkpoint needs origin, size and root lines", code=code)
        if any(line == "" for line in lines):
            raise VerificationError("checkpoint lines must be non-empty", code=code)
        if _CONTROL.search(text):
            raise VerificationError("checkpoint contains a control character", code=code)
        origin, size_line, root_line = lines[:3]
        size = _parse_size(size_line)
        root = decode_base64(root_line, code=code, what="checkpoint root hash")
        if len(root) != 32:
            raise VerificationError("checkpoint root hash must be 32 bytes", code=code)
        return cls(origin, size, root, tuple(lines[3:]))


def _parse_size(line: str) -> int:
    code = "malformed_checkpoint"
    if not line.isascii() or not line.isdigit():
        raise VerificationError("tree size must be ASCII decimal digits", code=code)
    if line != "0" and line.startswith("0"):
        raise VerificationError("tree size must not have leading zeros", code=code)
    if len(line) > 19 or int(line) > MAX_TREE_SIZE:
        raise VerificationError("tree size must be below 2^63", code=code)
    return int(line)


@dataclass(frozen=True)
class Cosignature:
    """A verified witness cosignature: who, when (POSIX seconds), the raw line."""

    name: str
    key_id: int
    timestamp: int
    signature: NoteSignature


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with its verified cosignatures."""

    checkpoint: Checkpoint
    note: bytes
    log_signature: NoteSignature
    cosignatures: tuple[Cosignature, ...] = ()


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """Sign a checkpoint with the log's key; returns the signed note bytes.

    Raises:
        ValueError: the signer's name differs from the origin (programmer misuse).
    """
    if signer.name != checkpoint.origin:
        raise ValueError("the log key name must equal the checkpoint origin")
    return sign_note(checkpoint.to_text(), [signer])


def open_checkpoint(
    data: bytes,
    verifier: Verifier,
    *,
    cosigners: Sequence[CosignatureVerifier] = (),
    max_size: int = MAX_NOTE_SIZE,
) -> SignedCheckpoint:
    """Verify a signed checkpoint with the log's key and parse it.

    Args:
        data: the signed checkpoint note (untrusted).
        verifier: the log's key; its name must equal the origin line.
        cosigners: witness keys whose cosignatures are checked and returned;
            other signatures are ignored.
        max_size: the largest note accepted, in bytes.

    Returns:
        The checkpoint, the note bytes, the log's signature line, and the
        verified cosignatures (with their timestamps).

    Raises:
        VerificationError: ``malformed_note``/``note_too_large`` for a bad note,
            ``invalid_signature`` if a known key's signature fails,
            ``no_known_signature``/``missing_log_signature`` if the log did not
            sign it, ``malformed_checkpoint`` for a bad body,
            ``origin_mismatch`` if the origin is not the log key's name,
            ``malformed_cosignature`` for a bad cosignature timestamp.
    """
    opened = open_note(data, [verifier, *cosigners], max_size=max_size)
    log_sigs = [
        s for s in opened.verified if (s.name, s.key_id) == (verifier.name, verifier.key_id)
    ]
    if not log_sigs:
        raise VerificationError(
            f"checkpoint is not signed by the log key {verifier.name}",
            code="missing_log_signature",
        )
    checkpoint = Checkpoint.parse(opened.text)
    if checkpoint.origin != verifier.name:
        raise VerificationError(
            f"checkpoint origin {checkpoint.origin!r} is not the log key name {verifier.name!r}",
            code="origin_mismatch",
        )
    cosigner_ids = {(c.name, c.key_id) for c in cosigners}
    cosignatures = tuple(
        Cosignature(s.name, s.key_id, cosignature_timestamp(s), s)
        for s in opened.verified
        if (s.name, s.key_id) in cosigner_ids
    )
    return SignedCheckpoint(checkpoint, data, log_sigs[0], cosignatures)

"""What an auditor remembers of a log between runs, and the seam where it is kept.

After a log verified, the auditor keeps the signed checkpoint it verified and
the tree edge at that size (:class:`~bordergate.tlog.tiles.TileFrontier`: the
partial hash tile of each level, as hex, and the partial entry bundle), so
that the next run proves consistency from there and reads only new bundles
(promise 5: a rewrite, a gap or a split view is detected).

The state file is JSON::

    {"type": "bordergate/audit-log-state/v1", "origin": ..., "checkpoint": <note>,
     "frontier": {"size": n, "levels": [[hex, ...], ...], "bundle": <base64>}}

:func:`decode_state` re-checks everything it reads: the note's log signature,
the shape of the edge, and that the edge reproduces the checkpoint's root.
:class:`AuditStateStore` is the one I/O seam (bytes per origin, evidence
files); :class:`MemoryStateStore` is its in-memory twin, the directory store
is in :mod:`bordergate.audit.logstate_dir`.  Encoding and decoding are pure:
this module must never touch files or the network.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Protocol

from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.merkle import HASH_SIZE
from bordergate.tlog.note import Verifier
from bordergate.tlog.tiles import (
    ENTRY_MAX,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileFrontier,
    TileRef,
    decode_bundle,
)

__all__ = [
    "STATE_TYPE",
    "AuditState",
    "AuditStateStore",
    "MemoryStateStore",
    "decode_state",
    "encode_state",
]

STATE_TYPE = "bordergate/audit-log-state/v1"
_CODE = "audit_state_invalid"
_MAX_STATE = (TILE_WIDTH * (2 + ENTRY_MAX)) * 4 // 3 + (4 << 20)
"""The largest state file read: what the largest state written holds (a partial entry
bundle of 255 entries of up to 65,535 bytes, in base64, beside a checkpoint note of
at most 1 MiB and the partial hash tiles), with room.  It was 1 MiB: a log whose
last partial bundle held ~1 MB of entries (twenty large ones) left a state every
later run refused (``audit_state_invalid``), so no audit of that log ran again."""


@dataclass(frozen=True)
class AuditState:
    """The last verified checkpoint of one log and the tree edge at its size."""

    signed: SignedCheckpoint
    frontier: TileFrontier

    @property
    def size(self) -> int:
        return self.signed.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.signed.checkpoint.root


class AuditStateStore(Protocol):
    """Where an auditor keeps its per-log state and the evidence it finds."""

    def read(self, origin: str) -> bytes | None:
        """The saved state of ``origin``, or None if this log was never verified.

        Raises:
            Unavailable: the store cannot be read.
        """

    def write(self, origin: str, data: bytes) -> None:
        """Replace the state of ``origin`` atomically and durably.

        Raises:
            Unavailable: the store cannot be written (the old state stays).
        """

    def write_evidence(self, name: str, data: bytes) -> str:
        """Keep an evidence file under ``name``; returns where it is.

        Raises:
            Unavailable: the store cannot be written.
        """


class MemoryStateStore:
    """In-memory :class:`AuditStateStore` twin for tests."""

    def __init__(self) -> None:
        """An empty store."""
        self.states: dict[str, bytes] = {}
        self.evidence: dict[str, bytes] = {}

    def read(self, origin: str) -> bytes | None:
        """The saved state bytes of ``origin``."""
        return self.states.get(origin)

    def write(self, origin: str, data: bytes) -> None:
        """Replace the state of ``origin``."""
        self.states[origin] = bytes(data)

    def write_evidence(self, name: str, data: bytes) -> str:
        """Keep the evidence in memory; its name is where it is."""
        self.evidence[name] = bytes(data)
        return name


def encode_state(state: AuditState) -> bytes:
    """The state file bytes (JSON, UTF-8) of a verified state."""
    frontier = state.frontier
    doc = {
        "type": STATE_TYPE,
        "origin": state.signed.checkpoint.origin,
        "checkpoint": state.signed.note.decode("utf-8"),
        "frontier": {
            "size": frontier.size,
            "levels": [[h.hex() for h in level] for level in frontier.levels],
            "bundle": base64.b64encode(
                b"".join(data for _, data in frontier.partial_bundle())).decode("ascii"),
        },
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def _invalid(message: str) -> VerificationError:
    return VerificationError(f"audit state: {message}", code=_CODE)


def _levels(value: object, size: int) -> list[list[bytes]]:
    if not isinstance(value, list) or not value or len(value) > 8:
        raise _invalid("frontier levels must be a list of 1 to 8 levels")
    if size >> (TILE_HEIGHT * len(value)):
        raise _invalid(f"{len(value)} frontier levels cannot hold size {size}")
    levels: list[list[bytes]] = []
    for number, level in enumerate(value):
        want = (size >> (TILE_HEIGHT * number)) % TILE_WIDTH
        if not isinstance(level, list) or len(level) != want:
            raise _invalid(f"frontier level {number} must hold {want} hashes")
        try:
            hashes = [bytes.fromhex(h) for h in level]
        except (TypeError, ValueError) as exc:
            raise _invalid(f"frontier level {number} holds a non-hex hash") from exc
        if any(len(h) != HASH_SIZE for h in hashes):
            raise _invalid(f"frontier level {number} holds a hash of the wrong length")
        levels.append(hashes)
    return levels


def _bundle(value: object, size: int) -> bytes:
    if not isinstance(value, str):
        raise _invalid("the partial bundle must be base64 text")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise _invalid("the partial bundle is not base64") from exc
    try:
        decode_bundle(data, size % TILE_WIDTH)
    except VerificationError as exc:
        raise _invalid(f"the partial bundle: {exc}") from exc
    return data


def _frontier(size: int, levels: list[list[bytes]], bundle: bytes) -> TileFrontier:
    """The edge, rebuilt the way a writer restores it from its partial tiles."""
    def read(ref: TileRef) -> bytes:
        if ref.is_bundle:
            return bundle
        return b"".join(levels[ref.level]) if ref.level < len(levels) else b""
    return TileFrontier.restore(size, read)


def decode_state(data: bytes, verifier: Verifier) -> AuditState:
    """Parse and re-check a state file written by :func:`encode_state`.

    Args:
        data: the state file bytes.
        verifier: the log's key; the saved checkpoint must carry its signature.

    Returns:
        The state, whose edge reproduces the saved checkpoint's root.

    Raises:
        VerificationError: ``audit_state_invalid`` for any defect.
    """
    if len(data) > _MAX_STATE:
        raise _invalid("the file is too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid("not UTF-8 JSON") from exc
    if not isinstance(doc, dict) or doc.get("type") != STATE_TYPE:
        raise _invalid(f"the type must be {STATE_TYPE}")
    note, frontier_doc = doc.get("checkpoint"), doc.get("frontier")
    if not isinstance(note, str) or not isinstance(frontier_doc, dict):
        raise _invalid("checkpoint or frontier missing")
    try:
        signed = open_checkpoint(note.encode("utf-8"), verifier)
    except VerificationError as exc:
        raise _invalid(f"the saved checkpoint does not verify: {exc}") from exc
    size = frontier_doc.get("size")
    if type(size) is not int or size != signed.checkpoint.size:
        raise _invalid("the frontier size is not the checkpoint size")
    levels = _levels(frontier_doc.get("levels"), size)
    bundle = _bundle(frontier_doc.get("bundle"), size)
    try:
        frontier = _frontier(size, levels, bundle)
    except VerificationError as exc:
        raise _invalid(f"the saved tree edge: {exc}") from exc
    if frontier.root() != signed.checkpoint.root:
        raise _invalid("the saved tree edge does not reproduce the saved root")
    return AuditState(signed, frontier)

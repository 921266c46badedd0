"""C2SP tlog-witness: the add-checkpoint protocol and the witness's cosigning rule.

A witness keeps, per log origin, the latest checkpoint it cosigned, and
cosigns a new checkpoint only if it is signed by the log's key and provably
extends that state (RFC 9162 consistency proof), so that no two parties can be
shown different histories (promise 5: a split view is detected).

This module holds the wire format (request body ``old <size>``, proof lines,
blank line, signed checkpoint) and :class:`Witness`, whose only I/O seam is the
small :class:`WitnessState` interface (an in-memory twin is here, SQLite is in
:mod:`bordergate.tlog.witness_sqlite`).  :class:`GroupCommitWitness` lets
concurrent requests share one durable commit (asyncio, no HTTP).  HTTP is in
:mod:`bordergate.tlog.witness_server`, the log-side client in
:mod:`bordergate.tlog.witness_client`.

Errors map to the spec's status codes through their ``http_status`` (see
:data:`STATUS_BY_CODE`): 400 malformed, 403 bad log signature, 404 unknown
log, 409 stale old size (:class:`SizeMismatch`, carries the witness's size) or
a conflicting root, 422 bad consistency proof.  This module must never read
the clock, the environment or the network.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bordergate.errors import (
    BordergateError,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    VerificationError,
)
from bordergate.tlog.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.evidence import build_evidence, prefix_root_from_proof
from bordergate.tlog.merkle import HASH_SIZE, verify_consistency
from bordergate.tlog.note import (
    NoteSignature,
    Verifier,
    decode_base64,
    note_signatures,
)

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_SIZE",
    "STATUS_BY_CODE",
    "AddCheckpoint",
    "GroupCommitWitness",
    "LogState",
    "MemoryWitnessState",
    "SizeMismatch",
    "StateChange",
    "Witness",
    "WitnessState",
    "format_add_checkpoint",
    "parse_add_checkpoint",
    "status_for",
]

MAX_PROOF_LINES = 63
MAX_REQUEST_SIZE = 64 * 1024

STATUS_BY_CODE: Mapping[str, int] = {
    "malformed_request": 400,
    "bad_log_signature": 403,
    "unknown_log": 404,
    "request_too_large": 413,
    "stale_old_size": 409,
    "conflicting_root": 409,
    "consistency_failed": 422,
}


def status_for(error: BordergateError) -> int:
    """The add-checkpoint HTTP status for an error raised by :class:`Witness`."""
    return STATUS_BY_CODE.get(error.code, error.http_status)


class SizeMismatch(Conflict):
    """The request's old size is not the witness's size for the log (HTTP 409)."""

    default_code = "stale_old_size"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request body."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint_note: bytes


def _malformed(message: str) -> InvalidInput:
    return InvalidInput(message, code="malformed_request")


def _parse_old_size(line: bytes) -> int:
    if not line.startswith(b"old "):
        raise _malformed("the first line must be 'old <size>'")
    digits = line[4:]
    if not digits.isdigit() or len(digits) > 19 or (digits != b"0" and digits.startswith(b"0")):
        raise _malformed("old size must be a decimal without leading zeros")
    size = int(digits)
    if size >= 1 << 63:
        raise _malformed("old size must be below 2^63")
    return size


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint request body (the note itself is not checked here).

    Args:
        body: ``old <size>\\n``, up to 63 base64 proof lines, a blank line,
            then the signed checkpoint note.

    Returns:
        The old size, the proof hashes and the note bytes.

    Raises:
        InvalidInput: code ``malformed_request`` (400) for any defect,
            ``request_too_large`` (413) above :data:`MAX_REQUEST_SIZE`.
    """
    if len(body) > MAX_REQUEST_SIZE:
        raise InvalidInput("request body is too large", code="request_too_large")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise _malformed("no blank line between the proof and the checkpoint")
    lines = head.split(b"\n")
    old_size = _parse_old_size(lines[0])
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _malformed(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            text = line.decode("ascii")
            value = decode_base64(text, code="malformed_request", what="proof line")
        except UnicodeDecodeError as exc:
            raise _malformed("proof lines must be base64") from exc
        except VerificationError as exc:
            raise _malformed(str(exc)) from exc
        if len(value) != HASH_SIZE:
            raise _malformed("each proof line must be a 32-byte hash")
        proof.append(value)
    if old_size == 0 and proof:
        raise _malformed("the proof must be empty when the old size is 0")
    return AddCheckpoint(old_size, tuple(proof), note)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint_note: bytes) -> bytes:
    """Build an add-checkpoint request body (the log side)."""
    lines = [f"old {old_size}\n".encode()]
    lines += [base64.b64encode(h) + b"\n" for h in proof]
    return b"".join(lines) + b"\n" + checkpoint_note


@dataclass(frozen=True)
class LogState:
    """What a witness remembers of one log: the latest cosigned checkpoint."""

    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True)
class StateChange:
    """Replace the state of ``origin`` by ``new`` if it is still ``expected``."""

    origin: str
    expected: LogState | None
    new: LogState


class WitnessState(Protocol):
    """Where a witness keeps its per-log state; every write is durable on return."""

    def get(self, origin: str) -> LogState | None:
        """The latest cosigned checkpoint of ``origin``, or None if never cosigned."""

    def compare_and_set(self, changes: Sequence[StateChange]) -> bool:
        """Apply all changes in order, atomically and durably, or none of them.

        Returns False (and changes nothing) if any change's ``expected`` is not
        the state at that point (earlier changes of the batch included).
        """


class MemoryWitnessState:
    """In-memory :class:`WitnessState` twin for tests (not durable)."""

    def __init__(self) -> None:
        """An empty state."""
        self._logs: dict[str, LogState] = {}

    def get(self, origin: str) -> LogState | None:
        """The stored state of ``origin``."""
        return self._logs.get(origin)

    def compare_and_set(self, changes: Sequence[StateChange]) -> bool:
        """Apply the changes if each one's expected state holds."""
        logs = dict(self._logs)
        for change in changes:
            if logs.get(change.origin) != change.expected:
                return False
            logs[change.origin] = change.new
        self._logs = logs
        return True


class Witness:
    """Cosigns checkpoints of the configured logs that extend what it cosigned before."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, Sequence[Verifier]],
        state: WitnessState,
        *,
        on_evidence: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """Build a witness.

        Args:
            signer: the witness's cosignature/v1 key (with its clock).
            logs: the trusted log keys per origin.
            state: the durable per-log state.
            on_evidence: called with ``(origin, evidence file bytes)`` when a log
                is caught signing two inconsistent checkpoints.
        """
        self.signer = signer
        self.logs = {origin: list(keys) for origin, keys in logs.items()}
        self.state = state
        self._on_evidence = on_evidence

    def add_checkpoint(self, body: bytes) -> bytes:
        """Handle one add-checkpoint request body; return the cosignature line(s).

        Raises:
            InvalidInput: ``malformed_request`` (400), ``request_too_large`` (413).
            NotFound: ``unknown_log`` (404).
            VerificationError: ``bad_log_signature`` (403), ``consistency_failed`` (422).
            SizeMismatch: the old size is not the witness's size (409, ``.size``).
            Conflict: ``conflicting_root``: same size as stored, another root (409).
            Unavailable: the state could not be written (nothing was cosigned).
        """
        request, signed = self.prepare(body)
        checkpoint = signed.checkpoint
        for _attempt in range(8):
            stored = self.state.get(checkpoint.origin)
            new = self.decide(request, signed, stored)
            if new is not None and not self.state.compare_and_set(
                    [StateChange(checkpoint.origin, stored, new)]):
                continue
            return self.cosign(checkpoint)
        raise Conflict("witness state kept changing; retry", code="busy")

    def prepare(self, body: bytes) -> tuple[AddCheckpoint, SignedCheckpoint]:
        """Parse a request and verify the log's signature (no state is read).

        Raises:
            InvalidInput, NotFound, VerificationError: as :meth:`add_checkpoint`.
        """
        request = parse_add_checkpoint(body)
        signed = self._open(request.checkpoint_note)
        if request.old_size > signed.checkpoint.size:
            raise _malformed("old size is larger than the checkpoint size")
        return request, signed

    def _open(self, note: bytes) -> SignedCheckpoint:
        try:
            text, _ = note_signatures(note)
            origin = Checkpoint.parse(text).origin
        except VerificationError as exc:
            raise _malformed(f"checkpoint: {exc}") from exc
        keys = self.logs.get(origin)
        if not keys:
            raise NotFound(f"unknown log {origin!r}", code="unknown_log")
        failures = []
        for key in keys:
            try:
                return open_checkpoint(note, key)
            except VerificationError as exc:
                failures.append(str(exc))
        raise VerificationError(
            "no valid signature by a log key: " + "; ".join(failures), code="bad_log_signature"
        )

    def decide(
        self, request: AddCheckpoint, signed: SignedCheckpoint, stored: LogState | None
    ) -> LogState | None:
        """The cosigning rule: the new state to store, or None to re-cosign the stored one.

        Raises:
            SizeMismatch, Conflict, VerificationError: as :meth:`add_checkpoint`
                (and hands any self-evident split view to ``on_evidence``).
        """
        checkpoint = signed.checkpoint
        stored_size = stored.size if stored is not None else 0
        if request.old_size != stored_size:
            raise SizeMismatch(
                f"old size {request.old_size} is not the witness's size {stored_size}",
                size=stored_size,
            )
        new = LogState(checkpoint.size, checkpoint.root, signed.note)
        if stored is None:
            return new
        if checkpoint.size == stored.size:
            if checkpoint.root != stored.root:
                self._report(stored, signed)
                raise Conflict(
                    f"the witness cosigned another root for size {stored.size}",
                    code="conflicting_root",
                )
            if request.proof:
                raise VerificationError(
                    "a consistency proof between equal sizes must be empty",
                    code="consistency_failed",
                )
            return None
        if stored.size == 0:
            return new  # every tree extends the empty tree
        try:
            verify_consistency(
                stored.size, checkpoint.size, stored.root, checkpoint.root, request.proof
            )
        except VerificationError as exc:
            self._report(stored, signed, request.proof)
            raise VerificationError(str(exc), code="consistency_failed") from exc
        return new

    def _report(
        self, stored: LogState, signed: SignedCheckpoint, proof: Sequence[bytes] = ()
    ) -> None:
        """Hand a self-evident split view to ``on_evidence`` (see evidence.py)."""
        if self._on_evidence is None:
            return
        checkpoint = signed.checkpoint
        prefix_root = None
        if checkpoint.size != stored.size:
            prefix_root = prefix_root_from_proof(
                stored.size, checkpoint.size, checkpoint.root, proof
            )
            if prefix_root is None or prefix_root == stored.root:
                return  # a wrong proof alone proves nothing
        for key in self.logs.get(checkpoint.origin, []):
            try:
                evidence = build_evidence(
                    stored.note,
                    signed.note,
                    key,
                    older_size_root_in_newer=prefix_root,
                    proof=proof if prefix_root is not None else (),
                )
            except VerificationError:
                continue
            self._on_evidence(checkpoint.origin, evidence)
            return

    def cosign(self, checkpoint: Checkpoint) -> bytes:
        """The cosignature line for a checkpoint whose new state is durable."""
        text = checkpoint.to_text().encode("utf-8")
        signature = NoteSignature(self.signer.name, self.signer.key_id, self.signer.sign(text))
        return signature.to_line().encode("utf-8")


class GroupCommitWitness:
    """The async front of a :class:`Witness`: concurrent requests share one durable commit.

    Every check runs on the event loop thread, one request at a time, against
    the latest *accepted* state of the log (durable, or accepted and waiting
    for the next commit).  Accepted changes are written in order, in one
    transaction per batch, by a worker thread while the loop keeps checking
    new requests; each request is answered only after the commit holding its
    change (or the change it re-cosigns) is durable.  A failed commit fails
    every request that depended on it (503) and nothing of it is cosigned.
    This object must only be used from one event loop.
    """

    def __init__(self, witness: Witness, *, max_batch: int = 512) -> None:
        """Wrap ``witness``; at most ``max_batch`` changes go into one commit."""
        self.witness = witness
        self.max_batch = max_batch
        self._durable: dict[str, LogState | None] = {}
        self._pending: dict[str, tuple[LogState, asyncio.Future[None]]] = {}
        self._queue: list[tuple[StateChange, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def _view(self, origin: str) -> tuple[LogState | None, asyncio.Future[None] | None]:
        if origin in self._pending:
            state, done = self._pending[origin]
            return state, done
        if origin not in self._durable:
            self._durable[origin] = self.witness.state.get(origin)
        return self._durable[origin], None

    async def add_checkpoint(self, body: bytes) -> bytes:
        """Handle one add-checkpoint request body; errors as :meth:`Witness.add_checkpoint`."""
        request, signed = self.witness.prepare(body)
        checkpoint = signed.checkpoint
        stored, pending = self._view(checkpoint.origin)
        new = self.witness.decide(request, signed, stored)
        if new is None:
            if pending is not None:
                await asyncio.shield(pending)
            else:
                await self._still_latest(request, signed, stored)
            return self.witness.cosign(checkpoint)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        self._pending[checkpoint.origin] = (new, done)
        self._queue.append((StateChange(checkpoint.origin, stored, new), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        await asyncio.shield(done)
        return self.witness.cosign(checkpoint)

    async def _still_latest(self, request: AddCheckpoint, signed: SignedCheckpoint,
                            stored: LogState | None) -> None:
        """Before re-cosigning the cached state, check that it is still the durable one.

        A cosignature's timestamp says "at this time, this was the latest checkpoint I
        cosigned" (an auditor takes a fresh one for the log's current state).  Another
        process sharing the state file (a restart overlapping the old process) may have
        cosigned a larger checkpoint since this one cached its state: the request is
        then judged against the durable state (409 with its size, most likely) and
        the cache is dropped.

        Raises:
            SizeMismatch, Conflict, VerificationError: as :meth:`Witness.decide`.
            Unavailable: ``state_moved``: the durable state changed in a way that
                would store something new; the caller retries.
        """
        origin = signed.checkpoint.origin
        current = await asyncio.to_thread(self.witness.state.get, origin)
        if current == stored:
            return
        if origin not in self._pending:
            self._durable.pop(origin, None)
        if self.witness.decide(request, signed, current) is not None:
            raise Unavailable("witness state changed underneath; retry", code="state_moved")

    async def _write(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            changes = [change for change, _ in batch]
            try:
                ok = await asyncio.to_thread(self.witness.state.compare_and_set, changes)
                if not ok:
                    raise Unavailable("witness state changed underneath", code="state_moved")
            except Exception as exc:
                self._fail(batch, exc)
                continue
            for change, done in batch:
                self._durable[change.origin] = change.new
                if self._pending.get(change.origin, (None,))[0] is change.new:
                    del self._pending[change.origin]
                done.set_result(None)

    def _fail(self, batch: list[tuple[StateChange, asyncio.Future[None]]], exc: Exception) -> None:
        """Fail a batch and every queued change built on it; forget cached state."""
        failed = {change.origin for change, _ in batch}
        dependent = [item for item in self._queue if item[0].origin in failed]
        self._queue = [item for item in self._queue if item[0].origin not in failed]
        error = exc if isinstance(exc, Unavailable) else Unavailable(f"state write failed: {exc}")
        for change, done in batch + dependent:
            self._pending.pop(change.origin, None)
            self._durable.pop(change.origin, None)
            if not done.done():
                done.set_exception(error)


def _retrieve(done: asyncio.Future[None]) -> None:
    """Mark a commit future's exception as seen even if its request went away."""
    if not done.cancelled():
        done.exception()

"""Tests of the witness's cosigning rule and wire format, in process (promise 5)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import (
    BordergateError,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    VerificationError,
)
from bordergate.tlog.evidence import verify_evidence
from bordergate.tlog.note import note_signatures, parse_signature_lines
from bordergate.tlog.witness import (
    GroupCommitWitness,
    LogState,
    MemoryWitnessState,
    SizeMismatch,
    StateChange,
    Witness,
    WitnessState,
    format_add_checkpoint,
    parse_add_checkpoint,
    status_for,
)
from bordergate.tlog.witness_sqlite import SqliteWitnessState
from tests.tlog.memory_log import (
    FIXED_TIME,
    ORIGIN,
    TEST_ONLY_OTHER_LOG_SEED,
    MemoryLog,
    fixed_log_signer,
    fixed_witness_signer,
)


@pytest.fixture(params=["memory", "sqlite"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> WitnessState:
    """The witness state: the in-memory twin and the real SQLite backend."""
    if request.param == "memory":
        return MemoryWitnessState()
    return SqliteWitnessState(tmp_path / "witness.db")


class Evidence(list[tuple[str, bytes]]):
    """Collects evidence handed out by the witness."""

    def __call__(self, origin: str, data: bytes) -> None:
        self.append((origin, data))


@pytest.fixture
def evidence() -> Evidence:
    """An evidence sink that records what it gets."""
    return Evidence()


@pytest.fixture
def witness(state: WitnessState, evidence: Evidence) -> Witness:
    """A witness trusting the test log's key."""
    log_key = fixed_log_signer().verifier()
    return Witness(fixed_witness_signer(), {ORIGIN: [log_key]}, state, on_evidence=evidence)


@pytest.fixture
def log() -> MemoryLog:
    """An honest test log with 5 entries."""
    return MemoryLog(fixed_log_signer()).append_n(5)


def add(witness: Witness, log: MemoryLog, old: int, size: int | None = None) -> bytes:
    size = len(log.hashes) if size is None else size
    return witness.add_checkpoint(
        format_add_checkpoint(old, log.proof(old, size), log.checkpoint(size))
    )


def check_cosignature_by_hand(line: bytes, checkpoint_note: bytes) -> int:
    """Verify a cosignature line from the spec alone; return its timestamp."""
    text = checkpoint_note[: checkpoint_note.rindex(b"\n\n") + 1]
    name, b64 = line.decode()[2:].rstrip("\n").split(" ")
    blob = base64.b64decode(b64)
    witness = fixed_witness_signer()
    assert name == witness.name
    assert blob[:4] == hashlib.sha256(name.encode() + b"\n\x04" + witness.public_key).digest()[:4]
    timestamp = struct.unpack(">Q", blob[4:12])[0]
    message = b"cosignature/v1\ntime %d\n" % timestamp + text
    Ed25519PublicKey.from_public_bytes(witness.public_key).verify(blob[12:], message)
    return timestamp


def test_first_cosignature(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: a first checkpoint (old 0) is cosigned and stored; cosig checks by hand."""
    line = add(witness, log, 0)
    assert check_cosignature_by_hand(line, log.checkpoint()) == FIXED_TIME
    stored = witness.state.get(ORIGIN)
    assert stored is not None
    assert (stored.size, stored.root, stored.note) == (5, log.root(5), log.checkpoint())


def test_growth_and_idempotence(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: a consistent bigger checkpoint is cosigned; the same one is re-cosigned."""
    add(witness, log, 0)
    log.append_n(6)
    first = add(witness, log, 5)
    again = add(witness, log, 11)
    assert first == again  # same key, same clock, deterministic Ed25519
    assert witness.state.get(ORIGIN) == LogState(11, log.root(11), log.checkpoint())


def test_stale_old_size(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: an old size other than the witness's gives 409 with its size, no change."""
    add(witness, log, 0)
    log.append_n(3)
    before = witness.state.get(ORIGIN)
    with pytest.raises(SizeMismatch) as err:
        add(witness, log, 0)
    assert (err.value.size, status_for(err.value)) == (5, 409)
    with pytest.raises(SizeMismatch):
        add(witness, log, 3)
    assert witness.state.get(ORIGIN) == before


def test_smaller_checkpoint_refused(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: a rollback to a smaller size is refused (409), state unchanged."""
    log.append_n(5)
    add(witness, log, 0)
    before = witness.state.get(ORIGIN)
    with pytest.raises(SizeMismatch):
        add(witness, log, 3, 3)
    with pytest.raises(InvalidInput) as err:  # old > checkpoint size is malformed
        witness.add_checkpoint(format_add_checkpoint(10, [], log.checkpoint(3)))
    assert status_for(err.value) == 400
    assert witness.state.get(ORIGIN) == before


def test_bad_proof(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: a consistency proof that does not verify gives 422, no state change."""
    add(witness, log, 0)
    log.append_n(4)
    proof = log.proof(5)
    proof[0] = bytes(32)
    before = witness.state.get(ORIGIN)
    with pytest.raises(VerificationError) as err:
        witness.add_checkpoint(format_add_checkpoint(5, proof, log.checkpoint()))
    assert (err.value.code, status_for(err.value)) == ("consistency_failed", 422)
    assert witness.state.get(ORIGIN) == before


def test_unknown_log(witness: Witness) -> None:
    """Promise 5: a checkpoint of an unconfigured origin gives 404, no state."""
    other = MemoryLog(fixed_log_signer("log.test/other")).append_n(2)
    with pytest.raises(NotFound) as err:
        add(witness, other, 0)
    assert (err.value.code, status_for(err.value)) == ("unknown_log", 404)
    assert witness.state.get("log.test/other") is None


def test_bad_log_signature(witness: Witness) -> None:
    """Promise 5: a checkpoint signed by another key of the same name gives 403."""
    impostor = MemoryLog(fixed_log_signer(ORIGIN, TEST_ONLY_OTHER_LOG_SEED)).append_n(2)
    with pytest.raises(VerificationError) as err:
        add(witness, impostor, 0)
    assert (err.value.code, status_for(err.value)) == ("bad_log_signature", 403)
    assert witness.state.get(ORIGIN) is None


def test_tampered_signature(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: a checkpoint whose log signature fails gives 403, no state."""
    note = bytearray(log.checkpoint())
    note[-5] ^= 1
    with pytest.raises(BordergateError) as err:
        witness.add_checkpoint(format_add_checkpoint(0, [], bytes(note)))
    assert status_for(err.value) in (400, 403)
    assert witness.state.get(ORIGIN) is None


def test_same_size_other_root_writes_evidence(
    witness: Witness, log: MemoryLog, evidence: Evidence
) -> None:
    """Promise 5: a second root for the cosigned size is refused (409) and proven."""
    add(witness, log, 0)
    fork = log.fork(3, b"fork").append_n(2, b"fork")
    with pytest.raises(Conflict) as err:
        add(witness, fork, 5)
    assert (err.value.code, status_for(err.value)) == ("conflicting_root", 409)
    assert witness.state.get(ORIGIN) == LogState(5, log.root(5), log.checkpoint())
    ((origin, data),) = evidence
    assert origin == ORIGIN
    assert "two different roots for size 5" in verify_evidence(data).describe()


def test_fork_with_growth_writes_evidence(
    witness: Witness, log: MemoryLog, evidence: Evidence
) -> None:
    """Promise 5: a forked bigger checkpoint fails (422) and its own proof is evidence."""
    add(witness, log, 0)  # size 5: not a power of two, so the proof carries the prefix
    fork = log.fork(4, b"fork").append_n(5, b"fork")
    with pytest.raises(VerificationError) as err:
        add(witness, fork, 5)
    assert status_for(err.value) == 422
    ((_, data),) = evidence
    view = verify_evidence(data)
    assert view.older.checkpoint.size == 5
    assert view.newer.checkpoint.size == 9
    assert view.older_size_root_in_newer == fork.root(5)


def test_garbage_proof_is_not_evidence(
    witness: Witness, log: MemoryLog, evidence: Evidence
) -> None:
    """Promise 5: a wrong proof alone proves nothing, so no evidence is written."""
    add(witness, log, 0)
    log.append_n(4)
    with pytest.raises(VerificationError):
        witness.add_checkpoint(format_add_checkpoint(5, [bytes(32)] * 3, log.checkpoint()))
    assert evidence == []


def test_response_lines_parse(witness: Witness, log: MemoryLog) -> None:
    """Promise 5: the answer is signature lines that merge into the checkpoint note."""
    (sig,) = parse_signature_lines(add(witness, log, 0))
    text, _ = note_signatures(log.checkpoint())
    assert witness.signer.verifier().verify(text.encode(), sig.signature)


GOOD_NOTE = MemoryLog(fixed_log_signer()).append_n(1).checkpoint()
HASH64 = base64.b64encode(bytes(32))
MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "no-blank-line": b"old 0\n" + GOOD_NOTE,
    "no-old-line": b"\n" + GOOD_NOTE,
    "old-leading-zero": b"old 01\n\n" + GOOD_NOTE,
    "old-negative": b"old -1\n\n" + GOOD_NOTE,
    "old-two-spaces": b"old  1\n\n" + GOOD_NOTE,
    "old-huge": b"old 99999999999999999999\n\n" + GOOD_NOTE,
    "old-2^63": b"old %d\n\n" % (1 << 63) + GOOD_NOTE,
    "proof-not-base64": b"old 1\n!!!!\n\n" + GOOD_NOTE,
    "proof-short-hash": b"old 1\n" + base64.b64encode(bytes(31)) + b"\n\n" + GOOD_NOTE,
    "proof-64-lines": b"old 1\n" + (HASH64 + b"\n") * 64 + b"\n" + GOOD_NOTE,
    "proof-with-old-0": b"old 0\n" + HASH64 + b"\n\n" + GOOD_NOTE,
    "proof-not-ascii": b"old 1\n\xff\xfe\n\n" + GOOD_NOTE,
    "note-garbage": b"old 0\n\nnot a note",
    "note-bad-checkpoint": b"old 0\n\n" + GOOD_NOTE.replace(b"\n1\n", b"\n01\n"),
    "crlf": b"old 0\r\n\r\n" + GOOD_NOTE,
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies(witness: Witness, body: bytes) -> None:
    """Bad input: each malformed add-checkpoint body gives 400, no state change."""
    with pytest.raises(InvalidInput) as err:
        witness.add_checkpoint(body)
    assert status_for(err.value) == 400
    assert witness.state.get(ORIGIN) is None


def test_oversize_body(witness: Witness) -> None:
    """Bad input: a body over the cap gives 413 before parsing, no state change."""
    with pytest.raises(InvalidInput) as err:
        witness.add_checkpoint(b"old 0\n\n" + b"x" * (64 * 1024))
    assert status_for(err.value) == 413
    assert witness.state.get(ORIGIN) is None


def test_request_format_round_trip(log: MemoryLog) -> None:
    """Promise 5: the request body the log builds parses back to the same values."""
    log.append_n(7)
    body = format_add_checkpoint(5, log.proof(5), log.checkpoint())
    parsed = parse_add_checkpoint(body)
    assert (parsed.old_size, list(parsed.proof), parsed.checkpoint_note) == (
        5,
        log.proof(5),
        log.checkpoint(),
    )


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=8))
def test_any_growth_sequence_cosigned(steps: list[int]) -> None:
    """Promise 5: an honest log growing by any steps is cosigned at every size."""
    log = MemoryLog(fixed_log_signer())
    witness = Witness(
        fixed_witness_signer(), {ORIGIN: [log.signer.verifier()]}, MemoryWitnessState()
    )
    old = 0
    for step in steps:
        log.append_n(step)
        size = len(log.hashes)
        if old == 0 and size == 0:
            witness.add_checkpoint(format_add_checkpoint(0, [], log.checkpoint()))
            continue
        line = add(witness, log, old)
        assert check_cosignature_by_hand(line, log.checkpoint()) == FIXED_TIME
        old = size
    stored = witness.state.get(ORIGIN)
    assert stored is None or stored.size == len(log.hashes)


class CountingState(MemoryWitnessState):
    """The in-memory state, counting commits and failing them on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0
        self.fail = False

    def compare_and_set(self, changes: Sequence[StateChange]) -> bool:
        if self.fail:
            raise Unavailable("disk on fire (test)")
        self.commits += 1
        return super().compare_and_set(changes)


def test_group_commit_batches_and_orders() -> None:
    """Promise 5: concurrent requests share commits; each log's chain is stored in order."""
    logs = [MemoryLog(fixed_log_signer(f"log.test/{i}")).append_n(20) for i in range(4)]
    state = CountingState()
    witness = Witness(
        fixed_witness_signer(), {log.signer.name: [log.signer.verifier()] for log in logs}, state
    )
    front = GroupCommitWitness(witness)
    sizes = [3, 7, 12, 20]

    def body(log: MemoryLog, old: int, size: int) -> bytes:
        return format_add_checkpoint(old, log.proof(old, size), log.checkpoint(size))

    async def run() -> list[bytes]:
        requests = [
            front.add_checkpoint(body(log, old, size))
            for log in logs
            for old, size in zip([0, *sizes[:-1]], sizes, strict=True)
        ]
        requests.append(front.add_checkpoint(body(logs[0], 20, 20)))  # re-cosign while pending
        return await asyncio.gather(*requests)

    answers = asyncio.run(run())
    assert len(answers) == 17
    assert state.commits < 16  # batched: fewer commits than stored changes
    for log in logs:
        assert state.get(log.signer.name) == LogState(20, log.root(20), log.checkpoint(20))


def test_group_commit_failure_cosigns_nothing() -> None:
    """Promise 5: if the durable write fails, no request of that batch is cosigned."""
    log = MemoryLog(fixed_log_signer()).append_n(9)
    state = CountingState()
    front = GroupCommitWitness(
        Witness(fixed_witness_signer(), {ORIGIN: [log.signer.verifier()]}, state)
    )

    async def run(old: int, size: int) -> bytes:
        return await front.add_checkpoint(
            format_add_checkpoint(old, log.proof(old, size), log.checkpoint(size))
        )

    async def both() -> list[bytes | BaseException]:
        return await asyncio.gather(run(0, 4), run(4, 9), return_exceptions=True)

    state.fail = True
    results = asyncio.run(both())
    assert all(isinstance(r, Unavailable) for r in results)
    assert state.get(ORIGIN) is None
    state.fail = False
    assert asyncio.run(run(0, 9)).startswith("\u2014 witness.test/w1 ".encode())
    assert state.get(ORIGIN) == LogState(9, log.root(9), log.checkpoint(9))

"""Review: a witness's cost per request does not grow with copied signature lines.

A witness verifies the log's signature on every add-checkpoint request, from
anyone who can reach it, one request at a time on its event loop
(``tlog.witness.GroupCommitWitness``).  A published checkpoint is public, and
its valid log signature line copied 100 times (the signed-note limit) into a
12 KB request used to cost 100 Ed25519 checks (21 ms against 0.3 ms for the
real request): an unauthenticated sender could hold the witness's loop, and
the log's requests queued behind, at about 70 times the cost of its traffic.
A line repeated verbatim is now verified once (``tlog.note.open_note``); the
rule that any failing known-key line rejects the note is unchanged.
"""

from __future__ import annotations

import pytest

from bordergate.errors import VerificationError
from bordergate.tlog.note import (
    Ed25519Verifier,
    NoteSignature,
    open_note,
    parse_signature_lines,
)
from bordergate.tlog.witness import MemoryWitnessState, Witness, format_add_checkpoint
from tests.tlog.memory_log import MemoryLog, fixed_log_signer, fixed_witness_signer


class CountingVerifier(Ed25519Verifier):
    """The log's key, counting the Ed25519 checks made with it."""

    checks = 0

    def verify(self, message: bytes, signature: bytes) -> bool:
        CountingVerifier.checks += 1
        return super().verify(message, signature)


def test_a_signature_line_copied_100_times_is_checked_once_by_the_witness() -> None:
    """The witness cosigns the request with 100 copies of the log's signature line (it is
    a valid note) after one Ed25519 check, not 100."""
    log = MemoryLog(fixed_log_signer()).append_n(3)
    key = CountingVerifier(log.signer.name, log.signer.public_key)
    witness = Witness(fixed_witness_signer(), {log.signer.name: [key]}, MemoryWitnessState())
    text, line = log.checkpoint().split(b"\n\n")
    CountingVerifier.checks = 0
    witness.add_checkpoint(format_add_checkpoint(0, [], text + b"\n\n" + line * 100))
    assert CountingVerifier.checks == 1


def test_a_bad_copy_still_rejects_the_note() -> None:
    """Copies are skipped only when byte-identical: a line under the log's key with other
    signature bytes is still checked, and rejects the note."""
    log = MemoryLog(fixed_log_signer()).append_n(3)
    text, line = log.checkpoint().split(b"\n\n")
    good = parse_signature_lines(line)[0]
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    bad = NoteSignature(good.name, good.key_id, flipped).to_line().encode()
    with pytest.raises(VerificationError) as refused:
        open_note(text + b"\n\n" + line * 50 + bad, [log.signer.verifier()])
    assert refused.value.code == "invalid_signature"

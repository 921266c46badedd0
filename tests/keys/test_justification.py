"""The key service's judgement of a justification (issue 13, item 3), pure: each
refusal has its stable code, and only a promised, well-formed, fresh, allowed
decision of the operation's type about the subject passes."""

from __future__ import annotations

import pytest

from bordergate.entries import encode_entry
from bordergate.keys.justification import (
    REFUSAL_CODES,
    CheckpointProof,
    JustificationRefused,
    TrustedCheckpoints,
    check_justification,
)
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import Signer, sign_note
from bordergate.tlog.promise import promise_for

LOG = Signer.from_seed("us.test/log", b"\x01" * 32)      # TEST-ONLY
OTHER = Signer.from_seed("us.test/log", b"\x02" * 32)    # TEST-ONLY
NOW = 1_800_000_000.0
SUBJECT = "subject:" + "ab" * 32


SEALED = {"users": frozenset({"email", "government_id"})}


def _entry(kind: str = "access", *, subject: str = SUBJECT, outcome: str = "allow",
           t: float = NOW, fields: tuple[str, ...] = ("email", "handle")) -> bytes:
    return encode_entry(kind, t, {
        "principal": {"id": "p"}, "collection": "users", "subject": subject,
        "record": "record:x", "purpose": "operations", "bundle": "b", "decisions": [],
        "outcome": outcome, "released": list(fields), "fields": list(fields)})


def _judge(entry: bytes | None, promise: bytes | None, *, operation: str = "read") -> str:
    try:
        check_justification(operation=operation, subject_pseudonym=SUBJECT, entry=entry,
                            promise=promise, verifier=LOG.verifier(), now=NOW, window=30,
                            sealed=SEALED)
    except JustificationRefused as exc:
        return exc.code
    return "released"


def _promised(entry: bytes, signer: Signer = LOG, t: float = NOW) -> bytes:
    return promise_for(signer, 7, entry, int(t * 1000))


CASES = {
    "released": lambda: (_entry(), _promised(_entry()), "read"),
    "partial read released": lambda: (_entry(outcome="partial"),
                                      _promised(_entry(outcome="partial")), "read"),
    "key_justification_missing": lambda: (None, None, "read"),
    "key_justification_unproven": lambda: (_entry(), _promised(_entry(), OTHER), "read"),
    "key_justification_malformed": lambda: (b"{}", _promised(b"{}"), "read"),
    "key_justification_wrong_operation": lambda: (_entry(), _promised(_entry()), "write"),
    "key_justification_subject_mismatch": lambda: (
        _entry(subject="subject:" + "cd" * 32),
        _promised(_entry(subject="subject:" + "cd" * 32)), "read"),
    "key_justification_denied": lambda: (_entry(outcome="deny"),
                                         _promised(_entry(outcome="deny")), "read"),
    "key_justification_no_sealed_field": lambda: (
        _entry(fields=("handle",)), _promised(_entry(fields=("handle",))), "read"),
    "key_justification_stale": lambda: (_entry(t=NOW - 31), _promised(_entry(t=NOW - 31)),
                                        "read"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_justification_gets_its_verdict(case: str) -> None:
    """Each case is judged with its stable code (or released)."""
    entry, promise, operation = CASES[case]()
    expected = "released" if case.endswith("released") else case
    assert _judge(entry, promise, operation=operation) == expected


def test_a_partial_write_is_denied_and_every_code_is_listed() -> None:
    """A write needs every field allowed; the codes tested are the module's list."""
    entry = _entry("write", outcome="partial")
    assert _judge(entry, _promised(entry), operation="write") == "key_justification_denied"
    tested = {c for c in CASES if c.startswith("key_")} | \
        {c.split(" ")[0] for c in PROOF_CASES if c.startswith("key_")}
    assert set(REFUSAL_CODES) == tested


# -- inclusion proofs in witnessed checkpoints (instead of a promise) -----------------
WITNESSES = tuple(CosignatureSigner(f"witness.test/w{i}", bytes([40 + i]) * 32,
                                    lambda: int(NOW)) for i in range(2))  # TEST-ONLY
TRUSTED = TrustedCheckpoints(tuple(w.verifier() for w in WITNESSES), quorum=2)


def _proof(entry: bytes, *, cosigners: int = 2, signer: Signer = LOG,
           tamper: bool = False) -> CheckpointProof:
    """``entry`` at index 2 of a 5-entry tree, in a checkpoint signed by ``signer`` and
    cosigned by the first ``cosigners`` witnesses."""
    leaves = [merkle.leaf_hash(e) for e in (b"a", b"b", entry, b"d", b"e")]
    root = merkle.root_from_leaf_hashes(leaves)
    path = merkle.inclusion_proof(2, 5, lambda level, index: _node(leaves, level, index))
    if tamper:
        path = [bytes(32), *path[1:]]
    note = sign_note(Checkpoint(LOG.name, 5, root).to_text(),
                     [signer, *WITNESSES[:cosigners]])
    return CheckpointProof(note, 2, tuple(path))


def _node(leaves: list[bytes], level: int, index: int) -> bytes:
    width = 1 << level
    return merkle.root_from_leaf_hashes(leaves[index * width:(index + 1) * width])


def _judge_proof(entry: bytes, proof: CheckpointProof,
                 trusted: TrustedCheckpoints | None = TRUSTED) -> str:
    try:
        justified = check_justification(
            operation="read", subject_pseudonym=SUBJECT, entry=entry, promise=None,
            verifier=LOG.verifier(), now=NOW, window=30, sealed=SEALED, proof=proof,
            trusted=trusted)
    except JustificationRefused as exc:
        return exc.code
    assert (justified.index, justified.evidence) == (2, "checkpoint")
    assert justified.leaf_hash == merkle.leaf_hash(entry)
    return "released"


PROOF_CASES = {
    "released": lambda: _judge_proof(_entry(), _proof(_entry())),
    "key_justification_unwitnessed": lambda: _judge_proof(_entry(),
                                                          _proof(_entry(), cosigners=1)),
    "key_justification_unwitnessed (no witness trusted)": lambda: _judge_proof(
        _entry(), _proof(_entry()), None),
    "key_justification_unproven": lambda: _judge_proof(_entry(), _proof(_entry(),
                                                                         tamper=True)),
    "key_justification_unproven (another entry)": lambda: _judge_proof(
        _entry(), _proof(_entry(outcome="partial"))),
    "key_justification_unproven (another log key)": lambda: _judge_proof(
        _entry(), _proof(_entry(), signer=OTHER)),
    "key_justification_stale": lambda: _judge_proof(_entry(t=NOW - 31),
                                                    _proof(_entry(t=NOW - 31))),
}


@pytest.mark.parametrize("case", list(PROOF_CASES), ids=list(PROOF_CASES))
def test_an_inclusion_proof_in_a_witnessed_checkpoint_justifies_like_a_promise(
        case: str) -> None:
    """Item 4: an entry proven in a checkpoint signed by the log and cosigned by the
    trusted witness quorum justifies a key; fewer cosignatures or no trusted witness is
    key_justification_unwitnessed; a wrong path, another entry's proof or another log
    key's checkpoint is key_justification_unproven; freshness still applies."""
    assert PROOF_CASES[case]() == case.split(" ", maxsplit=1)[0]


def test_one_witness_under_two_names_is_not_a_quorum_of_two() -> None:
    """Promise 5 (found by a review, as for the auditor and the log client): the key
    service trusts one witness key under two names (cosignature/v1 does not sign the
    name, so whoever holds one real cosignature can copy its line under the other).
    A checkpoint carrying that one cosignature twice is not a quorum of two:
    ``key_justification_unwitnessed``; before, each (name, key id) counted."""
    seed = bytes([40]) * 32  # the first witness's TEST-ONLY key, under a second name
    alias = CosignatureSigner("witness.test/alias", seed, lambda: int(NOW))
    trusted = TrustedCheckpoints((WITNESSES[0].verifier(), alias.verifier()), quorum=2)
    entry = _entry()
    leaves = [merkle.leaf_hash(e) for e in (b"a", b"b", entry, b"d", b"e")]
    path = merkle.inclusion_proof(2, 5, lambda level, index: _node(leaves, level, index))
    note = sign_note(Checkpoint(LOG.name, 5, merkle.root_from_leaf_hashes(leaves)).to_text(),
                     [LOG, WITNESSES[0], alias])
    assert _judge_proof(entry, CheckpointProof(note, 2, tuple(path)), trusted) == \
        "key_justification_unwitnessed"

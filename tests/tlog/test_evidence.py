"""Tests of split-view evidence files and `bordergate audit evidence` (promise 5)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bordergate.errors import VerificationError
from bordergate.tlog.evidence import build_evidence, prefix_root_from_proof, verify_evidence
from tests.tlog.memory_log import TEST_ONLY_OTHER_LOG_SEED, MemoryLog, fixed_log_signer


@pytest.fixture
def log() -> MemoryLog:
    """An honest test log of 12 entries."""
    return MemoryLog(fixed_log_signer()).append_n(12)


def test_same_size_evidence(log: MemoryLog) -> None:
    """Promise 5: two signed roots for one size are self-evident and verify offline."""
    fork = log.fork(6, b"fork").append_n(6, b"fork")
    data = build_evidence(log.checkpoint(), fork.checkpoint(), log.signer.verifier())
    view = verify_evidence(data)
    assert view.older.checkpoint.root != view.newer.checkpoint.root
    doc = json.loads(data)
    assert doc["checkpoints"] == [log.checkpoint().decode(), fork.checkpoint().decode()]


@pytest.mark.parametrize("old", [3, 4, 5, 8, 11])
def test_different_size_evidence(log: MemoryLog, old: int) -> None:
    """Promise 5: a newer tree whose prefix root differs is proven by a consistency proof."""
    fork = log.fork(2, b"fork").append_n(20, b"fork")
    data = build_evidence(
        fork.checkpoint(),
        log.checkpoint(old),
        log.signer.verifier(),
        older_size_root_in_newer=fork.root(old),
        proof=fork.proof(old),
    )
    view = verify_evidence(data)
    assert (view.older.checkpoint.size, view.newer.checkpoint.size) == (old, 22)
    assert f"contains a tree of size {old}" in view.describe()


def test_prefix_root_from_proof(log: MemoryLog) -> None:
    """Promise 5: a proof from a non-power-of-two size reveals the newer tree's prefix root."""
    assert prefix_root_from_proof(5, 12, log.root(12), log.proof(5)) == log.root(5)
    assert prefix_root_from_proof(4, 12, log.root(12), log.proof(4)) is None
    assert prefix_root_from_proof(5, 12, bytes(32), log.proof(5)) is None
    assert prefix_root_from_proof(5, 12, log.root(12), [b"short"]) is None


def test_consistent_checkpoints_are_not_evidence(log: MemoryLog) -> None:
    """Promise 5: two consistent checkpoints never make evidence (no false accusation)."""
    verifier = log.signer.verifier()
    with pytest.raises(VerificationError) as err:
        build_evidence(log.checkpoint(), log.checkpoint(), verifier)
    assert err.value.code == "not_evidence"
    with pytest.raises(VerificationError) as err:
        build_evidence(
            log.checkpoint(5),
            log.checkpoint(),
            verifier,
            older_size_root_in_newer=log.root(5),
            proof=log.proof(5),
        )
    assert err.value.code == "not_evidence"
    with pytest.raises(VerificationError) as err:  # a made-up prefix root with no valid proof
        build_evidence(
            log.checkpoint(5),
            log.checkpoint(),
            verifier,
            older_size_root_in_newer=bytes(32),
            proof=log.proof(5),
        )
    assert err.value.code == "not_evidence"
    with pytest.raises(VerificationError) as err:  # different sizes, nothing to prove it
        build_evidence(log.checkpoint(5), log.checkpoint(), verifier)
    assert err.value.code == "not_evidence"


def test_other_key_is_not_evidence(log: MemoryLog) -> None:
    """Promise 5: a checkpoint not signed by the log's key cannot accuse the log."""
    impostor = MemoryLog(fixed_log_signer(log.signer.name, TEST_ONLY_OTHER_LOG_SEED))
    impostor.append_n(12, b"other")
    with pytest.raises(VerificationError):
        build_evidence(log.checkpoint(), impostor.checkpoint(), log.signer.verifier())


def _same_size_doc(log: MemoryLog) -> dict[str, object]:
    fork = log.fork(6, b"fork").append_n(6, b"fork")
    data = build_evidence(log.checkpoint(), fork.checkpoint(), log.signer.verifier())
    doc: dict[str, object] = json.loads(data)
    return doc


def _mutations(log: MemoryLog) -> dict[str, bytes]:
    doc = _same_size_doc(log)
    notes = doc["checkpoints"]
    assert isinstance(notes, list)
    other = MemoryLog(fixed_log_signer("log.test/other")).append_n(3)
    cases: dict[str, object] = {
        "wrong-type": {**doc, "type": "x"},
        "no-vkey": {k: v for k, v in doc.items() if k != "vkey"},
        "bad-vkey": {**doc, "vkey": "garbage"},
        "other-vkey": {**doc, "vkey": other.signer.verifier().key_string},
        "one-note": {**doc, "checkpoints": notes[:1]},
        "notes-not-strings": {**doc, "checkpoints": [1, 2]},
        "same-note-twice": {**doc, "checkpoints": [notes[0], notes[0]]},
        "tampered-note": {**doc, "checkpoints": [notes[0], notes[1].replace("\n12\n", "\n13\n")]},
        "origin-mismatch": {**doc, "origin": "log.test/other"},
        "bad-prefix-root": {**doc, "older_size_root_in_newer": "***", "proof": []},
        "proof-not-list": {
            **doc,
            "older_size_root_in_newer": base64.b64encode(bytes(32)).decode(),
            "proof": "x",
        },
        "a-list": [doc],
    }
    out = {name: json.dumps(value).encode() for name, value in cases.items()}
    out["not-json"] = b"{"
    out["not-utf8"] = b"\xff"
    out["too-large"] = b" " * (1 << 20) + b"{}"
    return out


CASES = _mutations(MemoryLog(fixed_log_signer()).append_n(12))


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_malformed_evidence(data: bytes) -> None:
    """Bad input: each broken evidence file is a VerificationError, never another error."""
    with pytest.raises(VerificationError):
        verify_evidence(data)


BORDERGATE = str(Path(sys.executable).parent / "bordergate")


def _audit(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BORDERGATE, "audit", "evidence", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_audit_evidence_command(tmp_path: Path, log: MemoryLog) -> None:
    """Promise 5: `bordergate audit evidence` exits 0 on proof, 1 on non-proof, 3 on no file."""
    good = tmp_path / "good.json"
    good.write_bytes(json.dumps(_same_size_doc(log)).encode())
    bad = tmp_path / "bad.json"
    bad.write_bytes(CASES["tampered-note"])
    ok = _audit(good)
    assert ok.returncode == 0, ok.stderr
    assert "SPLIT VIEW PROVEN" in ok.stdout
    refused = _audit(bad)
    assert refused.returncode == 1
    assert "NOT EVIDENCE" in refused.stdout
    assert _audit(tmp_path / "missing.json").returncode == 3

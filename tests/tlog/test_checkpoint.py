"""Tests of C2SP checkpoints and cosignature/v1 (promise 5: append-only and witnessed)."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from bordergate.tlog.cosignature import CosignatureSigner, cosignature_timestamp
from bordergate.tlog.note import Signer, add_signatures, note_signatures, sign_note

# TEST-ONLY keys from fixed seeds; never use these outside tests.
ORIGIN = "log.test/one"
TEST_ONLY_LOG_SEED = bytes([7] * 32)
TEST_ONLY_WITNESS_SEED = bytes([9] * 32)
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture
def log_signer() -> Signer:
    """The test-only log key."""
    return Signer.from_seed(ORIGIN, TEST_ONLY_LOG_SEED)


@pytest.fixture
def witness() -> CosignatureSigner:
    """A test-only witness key with a fixed clock."""
    return CosignatureSigner("witness.test/w1", TEST_ONLY_WITNESS_SEED, lambda: 1679315147)


def test_spec_example_body_parses() -> None:
    """Promise 5: the tlog-checkpoint spec example body parses and re-formats exactly."""
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.parse(text)
    assert (cp.origin, cp.size, len(cp.root)) == ("example.com/behind-the-sofa", 20852163, 32)
    assert cp.to_text() == text


def test_extensions_round_trip() -> None:
    """Promise 5: extension lines are kept in order and re-formatted exactly."""
    cp = Checkpoint(ORIGIN, 5, ROOT, ("ext one", "ext two"))
    assert Checkpoint.parse(cp.to_text()) == cp


R64 = base64.b64encode(ROOT).decode()
MALFORMED: dict[str, str] = {
    "no-final-newline": f"{ORIGIN}\n1\n{R64}",
    "two-lines": f"{ORIGIN}\n1\n",
    "empty-origin": f"\n1\n{R64}\n",
    "empty-extension": f"{ORIGIN}\n1\n{R64}\n\nx\n",
    "leading-zero": f"{ORIGIN}\n01\n{R64}\n",
    "negative": f"{ORIGIN}\n-1\n{R64}\n",
    "plus-sign": f"{ORIGIN}\n+1\n{R64}\n",
    "spaces": f"{ORIGIN}\n 1\n{R64}\n",
    "hex-size": f"{ORIGIN}\n0x10\n{R64}\n",
    "unicode-digits": f"{ORIGIN}\n\u0661\n{R64}\n",
    "size-2^63": f"{ORIGIN}\n{1 << 63}\n{R64}\n",
    "huge-size": f"{ORIGIN}\n{'9' * 40}\n{R64}\n",
    "root-31-bytes": f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root-33-bytes": f"{ORIGIN}\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",
    "root-bad-base64": f"{ORIGIN}\n1\n{R64[:-2]}!=\n",
    "root-url-base64": f"{ORIGIN}\n1\n{R64.replace('+', '-').replace('/', '_')}x\n",
    "tab-in-origin": f"log\ttest\n1\n{R64}\n",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies(text: str) -> None:
    """Bad input: each malformed checkpoint body is a malformed_checkpoint error."""
    with pytest.raises(VerificationError) as err:
        Checkpoint.parse(text)
    assert err.value.code == "malformed_checkpoint"


def test_size_limits() -> None:
    """Promise 5: sizes 0 and 2^63-1 are valid checkpoint sizes."""
    assert Checkpoint.parse(f"{ORIGIN}\n0\n{R64}\n").size == 0
    assert Checkpoint.parse(f"{ORIGIN}\n{(1 << 63) - 1}\n{R64}\n").size == (1 << 63) - 1


def test_open_signed_checkpoint(log_signer: Signer, witness: CosignatureSigner) -> None:
    """Promise 5: a log-signed, witness-cosigned checkpoint opens with its cosignature."""
    cp = Checkpoint(ORIGIN, 10, ROOT)
    note = sign_checkpoint(cp, log_signer)
    _, cosigs = note_signatures(sign_note(cp.to_text(), [witness]))
    cosigned = add_signatures(note, cosigs)
    signed = open_checkpoint(cosigned, log_signer.verifier(), cosigners=[witness.verifier()])
    assert signed.checkpoint == cp
    assert signed.note == cosigned
    assert [(c.name, c.timestamp) for c in signed.cosignatures] == [("witness.test/w1", 1679315147)]
    # without the witness key configured, the cosignature is simply ignored
    assert open_checkpoint(cosigned, log_signer.verifier()).cosignatures == ()


def test_cosignature_independent_check(log_signer: Signer, witness: CosignatureSigner) -> None:
    """Promise 5: a cosignature verifies with a by-hand cosignature/v1 message (spec text)."""
    text = Checkpoint(ORIGIN, 10, ROOT).to_text()
    _, (sig,) = note_signatures(sign_note(text, [witness]))
    expected_id = hashlib.sha256(b"witness.test/w1\n\x04" + witness.public_key).digest()[:4]
    assert struct.pack(">I", sig.key_id) == expected_id
    timestamp = struct.unpack(">Q", sig.signature[:8])[0]
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text.encode()
    Ed25519PublicKey.from_public_bytes(witness.public_key).verify(sig.signature[8:], message)
    assert cosignature_timestamp(sig) == 1679315147


def test_cosignature_bad_length(log_signer: Signer) -> None:
    """Bad input: a cosignature that is not 72 bytes is a malformed_cosignature error."""
    _, (sig,) = note_signatures(sign_note("x\n", [log_signer]))
    with pytest.raises(VerificationError) as err:
        cosignature_timestamp(sig)
    assert err.value.code == "malformed_cosignature"


def test_missing_log_signature(log_signer: Signer, witness: CosignatureSigner) -> None:
    """Promise 5: a checkpoint only cosigned (not signed by the log) is refused."""
    note = sign_note(Checkpoint(ORIGIN, 10, ROOT).to_text(), [witness])
    with pytest.raises(VerificationError) as err:
        open_checkpoint(note, log_signer.verifier(), cosigners=[witness.verifier()])
    assert err.value.code == "missing_log_signature"


def test_origin_must_match_key_name() -> None:
    """Promise 5: a checkpoint whose origin is not the log key's name is refused."""
    other = Signer.from_seed("log.test/other", TEST_ONLY_LOG_SEED)
    note = sign_note(Checkpoint(ORIGIN, 1, ROOT).to_text(), [other])
    with pytest.raises(VerificationError) as err:
        open_checkpoint(note, other.verifier())
    assert err.value.code == "origin_mismatch"


def test_signed_malformed_body(log_signer: Signer) -> None:
    """Bad input: a validly signed note with a bad checkpoint body is refused."""
    note = sign_note(f"{ORIGIN}\n01\n{R64}\n", [log_signer])
    with pytest.raises(VerificationError) as err:
        open_checkpoint(note, log_signer.verifier())
    assert err.value.code == "malformed_checkpoint"


def test_forged_cosignature_rejects(log_signer: Signer, witness: CosignatureSigner) -> None:
    """Promise 5: a configured witness's cosignature that fails rejects the checkpoint."""
    cp = Checkpoint(ORIGIN, 10, ROOT)
    _, (sig,) = note_signatures(sign_note(Checkpoint(ORIGIN, 11, ROOT).to_text(), [witness]))
    note = add_signatures(sign_checkpoint(cp, log_signer), [sig])
    with pytest.raises(VerificationError) as err:
        open_checkpoint(note, log_signer.verifier(), cosigners=[witness.verifier()])
    assert err.value.code == "invalid_signature"


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=(1 << 63) - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
        max_size=3,
    ),
)
def test_checkpoint_round_trip(size: int, root: bytes, extensions: list[str]) -> None:
    """Promise 5: any checkpoint formats and parses back to itself, signed and opened."""
    signer = Signer.from_seed(ORIGIN, TEST_ONLY_LOG_SEED)
    cp = Checkpoint(ORIGIN, size, root, tuple(extensions))
    assert open_checkpoint(sign_checkpoint(cp, signer), signer.verifier()).checkpoint == cp

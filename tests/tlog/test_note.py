"""Tests of the C2SP signed-note module (promise 5: append-only and witnessed)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.tlog.cosignature import CosignatureSigner, CosignatureVerifier
from bordergate.tlog.note import (
    Ed25519Verifier,
    NoteSignature,
    Signer,
    add_signatures,
    key_id_for,
    note_signatures,
    open_note,
    sign_note,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "signed-note" / "known-answers.json").read_text()
)

# TEST-ONLY keys from fixed seeds; never use these outside tests.
TEST_ONLY_SEED_A = bytes(range(32))
TEST_ONLY_SEED_B = bytes(range(32, 64))


@pytest.fixture
def signer_a() -> Signer:
    """A test-only Ed25519 signer from a fixed seed."""
    return Signer.from_seed("example.test/a", TEST_ONLY_SEED_A)


@pytest.fixture
def signer_b() -> Signer:
    """A second test-only Ed25519 signer from a fixed seed."""
    return Signer.from_seed("example.test/b", TEST_ONLY_SEED_B)


@pytest.mark.parametrize("case", VECTORS["verify"], ids=lambda c: c["vkey"].split("+")[0])
def test_verify_vectors(case: dict[str, str]) -> None:
    """Promise 5: a published signed note verifies with its published verifier key."""
    verifier = Ed25519Verifier.from_key_string(case["vkey"])
    assert verifier.key_string == case["vkey"]
    opened = open_note(case["note"].encode(), [verifier])
    assert opened.text == case["text"]
    assert [s.name for s in opened.verified] == [verifier.name]
    assert opened.unverified == []


@pytest.mark.parametrize("case", VECTORS["sign"], ids=lambda c: c["vkey"].split("+")[0])
def test_sign_vectors(case: dict[str, str]) -> None:
    """Promise 5: signing the published text with the published key gives the exact note."""
    signer = Signer.from_key_string(case["private_key"])
    assert signer.key_string == case["private_key"]
    assert signer.verifier().key_string == case["vkey"]
    assert sign_note(case["text"], [signer]) == case["note"].encode()
    opened = open_note(case["note"].encode(), [Ed25519Verifier.from_key_string(case["vkey"])])
    assert opened.text == case["text"]


@pytest.mark.parametrize("vkey", VECTORS["bad_vkeys"])
def test_bad_vkeys(vkey: str) -> None:
    """Bad input: every published bad verifier key is a VerificationError."""
    with pytest.raises(VerificationError) as err:
        Ed25519Verifier.from_key_string(vkey)
    assert err.value.code == "malformed_verifier_key"


GOOD_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3+",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+zzzzzzzz+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AQ==",
    ],
    ids=[
        "empty",
        "name-only",
        "empty-key",
        "uppercase-id",
        "short-id",
        "wrong-id",
        "truncated-base64",
        "non-canonical-base64",
        "bad-base64-char",
        "space-in-name",
        "non-hex-id",
        "key-too-short",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    """Bad input: each malformed verifier key form is a malformed_verifier_key error."""
    assert Ed25519Verifier.from_key_string(GOOD_VKEY).name == "PeterNeumann"
    with pytest.raises(VerificationError) as err:
        Ed25519Verifier.from_key_string(vkey)
    assert err.value.code == "malformed_verifier_key"


def test_cosignature_vkey_types() -> None:
    """Promise 5: a type-0x04 verifier key parses as a cosignature/v1 verifier, and
    each verifier type refuses the other's key strings."""
    cosigner = CosignatureSigner("witness.test/w", TEST_ONLY_SEED_A, lambda: 1)
    parsed = CosignatureVerifier.from_key_string(cosigner.verifier().key_string)
    assert isinstance(parsed, CosignatureVerifier)
    assert parsed.key_id == key_id_for("witness.test/w", 0x04, cosigner.public_key)
    with pytest.raises(VerificationError):
        Ed25519Verifier.from_key_string(cosigner.verifier().key_string)
    with pytest.raises(VerificationError):
        CosignatureVerifier.from_key_string(GOOD_VKEY)


@pytest.mark.parametrize(
    "key",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKD",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+BYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
    ids=["no-key", "wrong-id", "no-prefix", "short-seed", "wrong-type"],
)
def test_malformed_signer_keys(key: str) -> None:
    """Bad input: a malformed signer key string is a malformed_signer_key error."""
    with pytest.raises(VerificationError) as err:
        Signer.from_key_string(key)
    assert err.value.code == "malformed_signer_key"


def test_unknown_signatures_kept_not_trusted(signer_a: Signer, signer_b: Signer) -> None:
    """Promise 5: signatures by unknown keys are kept apart and never trusted."""
    note = sign_note("hello\n", [signer_a, signer_b])
    opened = open_note(note, [signer_a.verifier()])
    assert [s.name for s in opened.verified] == ["example.test/a"]
    assert [s.name for s in opened.unverified] == ["example.test/b"]


def test_same_name_other_key_is_unknown(signer_a: Signer) -> None:
    """Promise 5: a key sharing only the name with a known key is ignored, not checked."""
    impostor = Signer.from_seed("example.test/a", TEST_ONLY_SEED_B)
    note = sign_note("hello\n", [impostor, signer_a])
    opened = open_note(note, [signer_a.verifier()])
    assert [s.key_id for s in opened.verified] == [signer_a.key_id]
    assert [s.key_id for s in opened.unverified] == [impostor.key_id]


def test_no_known_signature(signer_a: Signer, signer_b: Signer) -> None:
    """Promise 5: a note with no signature from a known key is rejected."""
    note = sign_note("hello\n", [signer_b])
    with pytest.raises(VerificationError) as err:
        open_note(note, [signer_a.verifier()])
    assert err.value.code == "no_known_signature"


def test_bad_known_signature_rejects_note(signer_a: Signer, signer_b: Signer) -> None:
    """Promise 5: one failing signature from a known key rejects the whole note."""
    note = sign_note("hello\n", [signer_a, signer_b])
    text, sigs = note_signatures(note)
    forged = NoteSignature(sigs[1].name, sigs[1].key_id, bytes(64))
    tampered = (text + "\n" + sigs[0].to_line() + forged.to_line()).encode()
    with pytest.raises(VerificationError) as err:
        open_note(tampered, [signer_a.verifier(), signer_b.verifier()])
    assert err.value.code == "invalid_signature"


def test_tampered_text_fails(signer_a: Signer) -> None:
    """Promise 5: changing the signed text makes the signature fail."""
    note = sign_note("hello\n", [signer_a])
    with pytest.raises(VerificationError) as err:
        open_note(note.replace(b"hello", b"hellO"), [signer_a.verifier()])
    assert err.value.code == "invalid_signature"


def _sig_line(name: str = "example.test/a", blob: bytes = b"\x00" * 68) -> str:
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


MALFORMED_NOTES: dict[str, bytes] = {
    "not-utf8": b"hello\xff\n\n" + _sig_line().encode(),
    "control-char": b"hel\x01lo\n\n" + _sig_line().encode(),
    "carriage-return": b"hello\r\n\n" + _sig_line().encode(),
    "no-blank-line": ("hello\n" + _sig_line()).encode(),
    "no-signatures": b"hello\n\n",
    "no-final-newline": ("hello\n\n" + _sig_line()).encode()[:-1],
    "blank-after-signatures": ("hello\n\n" + _sig_line() + "\n").encode(),
    "hyphen-not-em-dash": ("hello\n\n" + _sig_line().replace("\u2014", "-")).encode(),
    "no-space-after-dash": ("hello\n\n" + _sig_line().replace("\u2014 ", "\u2014")).encode(),
    "empty-name": ("hello\n\n" + _sig_line(name="")).encode(),
    "plus-in-name": ("hello\n\n" + _sig_line(name="a+b")).encode(),
    "extra-field": ("hello\n\n" + _sig_line().replace("\n", " x\n")).encode(),
    "bad-base64": ("hello\n\n\u2014 example.test/a AAAA*AAA\n").encode(),
    "non-canonical-base64": ("hello\n\n\u2014 example.test/a AAAAAAB=\n").encode(),
    "signature-too-short": ("hello\n\n" + _sig_line(blob=b"\x00" * 4)).encode(),
    "too-many-signatures": ("hello\n\n" + _sig_line() * 101).encode(),
    "empty-base64": ("hello\n\n\u2014 example.test/a \n").encode(),
}


@pytest.mark.parametrize("data", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_notes(data: bytes, signer_a: Signer) -> None:
    """Bad input: each broken note rule gives malformed_note, never another exception."""
    with pytest.raises(VerificationError) as err:
        open_note(data, [signer_a.verifier()])
    assert err.value.code == "malformed_note"


def test_note_too_large(signer_a: Signer) -> None:
    """Bad input: a note over the size cap is refused before parsing."""
    note = sign_note("x" * 2000 + "\n", [signer_a])
    with pytest.raises(VerificationError) as err:
        open_note(note, [signer_a.verifier()], max_size=1000)
    assert err.value.code == "note_too_large"


def test_text_may_contain_blank_lines(signer_a: Signer) -> None:
    """Promise 5: the text ends at the LAST blank line, so texts may hold blank lines."""
    text = "one\n\ntwo\n"
    opened = open_note(sign_note(text, [signer_a]), [signer_a.verifier()])
    assert opened.text == text


def test_add_signatures_merges_and_dedups(signer_a: Signer, signer_b: Signer) -> None:
    """Promise 5: witness cosignatures merge into a note once per (name, key id)."""
    cosigner = CosignatureSigner("witness.test/w", TEST_ONLY_SEED_B, lambda: 1700000000)
    note = sign_note("hello\n", [signer_a])
    _, witness_sigs = note_signatures(sign_note("hello\n", [cosigner, signer_b]))
    merged = add_signatures(note, witness_sigs)
    merged_again = add_signatures(merged, witness_sigs)
    assert merged_again == merged
    opened = open_note(merged, [signer_a.verifier(), cosigner.verifier(), signer_b.verifier()])
    assert [s.name for s in opened.verified] == [
        "example.test/a",
        "witness.test/w",
        "example.test/b",
    ]


def test_cosignature_example_parses() -> None:
    """Promise 5: the spec's cosigned checkpoint example parses: a 72-byte cosignature."""
    _, sigs = note_signatures(VECTORS["cosignature_example"]["note"].encode())
    assert [len(s.signature) for s in sigs] == [64, 72]
    assert struct.unpack(">Q", sigs[1].signature[:8])[0] == 1679315147


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)) | st.just("\n"),
        max_size=200,
    ),
    seed=st.binary(min_size=32, max_size=32),
)
def test_round_trip(text: str, seed: bytes) -> None:
    """Promise 5: any valid text signed with any key opens to the same text."""
    text = text + "\n"
    signer = Signer.from_seed("prop.test/k", seed)
    opened = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert opened.text == text
    assert opened.verified[0].key_id == signer.key_id

"""Approver-signed approval statements (issue 12 item 4): the format round-trips,
every member is bound by the signature, and untrusted input only ever raises
VerificationError with a stable code."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.approval_statement import (
    STATEMENT_CONTEXT,
    ApprovalStatement,
    MappingApproverKeys,
    SignedStatement,
    load_signing_key,
    parse_statement,
    request_digest,
    sign_statement,
    verify_statement,
    write_signing_key,
)
from bordergate.errors import ConfigError, VerificationError
from tests.approvers import approver_key, keys_for, public_key

_text = st.text(min_size=1, max_size=60)
_digest = st.binary(min_size=1, max_size=64).map(request_digest)
statements = st.builds(ApprovalStatement, origin=_text, approval=_text, request=_digest,
                       verdict=st.sampled_from(["grant", "deny", "revoke"]), approver=_text)
KEYS = keys_for(["carol", "dave"])


@given(statements)
def test_statement_round_trips(statement: ApprovalStatement) -> None:
    """Issue 12 item 4: a statement's bytes are the context line and canonical JSON,
    and parse back to the same statement."""
    data = statement.encode()
    assert data.startswith(STATEMENT_CONTEXT + b"\n")
    assert parse_statement(data) == statement


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_a_stable_code(data: bytes) -> None:
    """Style (parsers of untrusted bytes): anything but a statement's exact bytes is
    malformed_approval_statement, never another exception."""
    try:
        parse_statement(data)
    except VerificationError as exc:
        assert exc.code == "malformed_approval_statement"


@given(statements, st.sampled_from(["origin", "approval", "request", "verdict", "approver"]))
def test_every_member_is_bound_by_the_signature(statement: ApprovalStatement,
                                                 member: str) -> None:
    """Issue 12 item 4: a signed statement verifies for exactly what was signed; the
    same signature presented for another origin, approval, request, verdict or
    approver fails."""
    statement = dataclasses.replace(statement, approver="carol")
    signed = sign_statement(statement, approver_key("carol"))
    verify_statement(statement, signed, KEYS)
    other = {"origin": statement.origin + "x", "approval": statement.approval + "x",
             "request": request_digest(statement.request.encode()),
             "verdict": "deny" if statement.verdict != "deny" else "grant",
             "approver": "dave"}[member]
    changed = dataclasses.replace(statement, **{member: other})
    with pytest.raises(VerificationError) as raised:
        verify_statement(changed, signed, KEYS)
    assert raised.value.code in ("approval_signature_invalid", "approval_request_mismatch",
                                 "approver_key_unknown")


@given(statements, st.integers(min_value=0, max_value=63))
def test_a_flipped_signature_bit_fails(statement: ApprovalStatement, at: int) -> None:
    """Issue 12 item 4: any change to the signature bytes fails verification."""
    statement = dataclasses.replace(statement, approver="carol")
    signed = sign_statement(statement, approver_key("carol"))
    broken = bytearray(signed.signature)
    broken[at] ^= 0x01
    with pytest.raises(VerificationError) as raised:
        verify_statement(statement, dataclasses.replace(signed, signature=bytes(broken)), KEYS)
    assert raised.value.code == "approval_signature_invalid"


def _statement() -> ApprovalStatement:
    return ApprovalStatement(origin="us.test/log", approval="apr-" + "a" * 26,
                             request=request_digest(b"request"), verdict="grant",
                             approver="carol")


@pytest.mark.parametrize(("signed", "keys", "code"), [
    (None, KEYS, "approval_signature_missing"),
    (sign_statement(_statement(), approver_key("mallory")), KEYS, "approver_key_unknown"),
    (sign_statement(_statement(), approver_key("dave")), KEYS, "approver_key_unknown"),
    (sign_statement(_statement(), approver_key("carol")), MappingApproverKeys({}),
     "approver_key_unknown"),
    (sign_statement(dataclasses.replace(_statement(), request=request_digest(b"other")),
                    approver_key("carol")), KEYS, "approval_request_mismatch"),
], ids=["unsigned", "unlisted key", "another approver's key", "no roster keys",
        "another request"])
def test_refusals_have_stable_codes(signed: SignedStatement | None,
                                    keys: MappingApproverKeys, code: str) -> None:
    """Issue 12 item 4: each way a statement fails has its own stable code."""
    with pytest.raises(VerificationError) as raised:
        verify_statement(_statement(), signed, keys)
    assert raised.value.code == code


@given(statements)
def test_signed_form_round_trips(statement: ApprovalStatement) -> None:
    """Issue 12 item 4: the JSON an entry holds parses back to the same signature."""
    signed = sign_statement(statement, approver_key("dave"))
    assert SignedStatement.from_json(signed.to_json()) == signed


@pytest.mark.parametrize("change", [
    {"key": "AAAA"}, {"signature": "not base64!"}, {"request": "sha1:00"}, {"extra": "x"},
    {"key": base64.b64encode(b"\x00" * 32).decode() + "\n"}, {"signature": 7},
], ids=["short key", "bad base64", "bad digest", "extra member", "non-canonical base64",
        "not a string"])
def test_malformed_signed_form_is_refused(change: dict[str, object]) -> None:
    """Style (untrusted input): a malformed statement member is
    malformed_approval_signature, never ValueError or KeyError."""
    data = {**sign_statement(_statement(), approver_key("carol")).to_json(), **change}
    with pytest.raises(VerificationError) as raised:
        SignedStatement.from_json(data)
    assert raised.value.code == "malformed_approval_signature"


def test_keygen_writes_a_private_key_once_and_loads_it(tmp_path: Path) -> None:
    """Issue 12 item 4: `approval keygen` writes the approver's key (0600, never
    overwriting); it loads back and signs for the public key it printed."""
    path = tmp_path / "carol.pem"
    public = write_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError) as exists:
        write_signing_key(path)
    assert exists.value.code == "approver_key_exists"
    signed = sign_statement(_statement(), load_signing_key(path))
    verify_statement(_statement(), signed, MappingApproverKeys({"carol": (public,)}))
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(ConfigError) as junk:
        load_signing_key(tmp_path / "junk.pem")
    assert junk.value.code == "approver_key_invalid"
    assert public != public_key("carol")

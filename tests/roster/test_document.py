"""The roster format and the authority's signature (issue 12 item 3).

Promise 4 (replayable decisions) needs the principal's attributes to be the
identity authority's, not the gateway's word: these tests check that a roster
version round-trips canonically, that its digest names its bytes, and that
every malformed document or bad signature fails with a stable code.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.entries import canonical_json
from bordergate.errors import ConfigError, VerificationError
from bordergate.roster import (
    Roster,
    RosterAuthority,
    RosterPrincipal,
    RosterSignature,
    parse_roster,
    roster_digest,
    roster_path,
    sign_roster,
)
from bordergate.tlog.note import Signer

ISSUED = "2026-11-29T00:00:00.000Z"


def authority_signer(name: str = "us-identity") -> Signer:
    """TEST-ONLY authority key from a fixed seed."""
    return Signer.from_seed(name, (name.encode() * 32)[:32])


def sample_roster(serial: int = 1) -> Roster:
    return Roster.build(jurisdiction="us", serial=serial, issued=ISSUED, principals=[
        RosterPrincipal("alice", "ttus", "local", "us", frozenset({"analyst"})),
        RosterPrincipal("carol", "ttus", "custodian", "us", frozenset({"approver"}),
                        approver_keys=(b"\x01" * 32,)),
        RosterPrincipal("wei", "bytedance", "parent", "cn", frozenset({"engineer"}),
                        covered_person=True,
                        covered_person_basis="202.211(a)(4): employee of a covered person "
                                             "primarily resident in a country of concern"),
    ])


_code = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
_text = st.text(min_size=1, max_size=20)


@st.composite
def roster_principals(draw: st.DrawFn) -> RosterPrincipal:
    roles = draw(st.frozensets(st.sampled_from(["analyst", "engineer", "approver", "custodian"])))
    keys = tuple(draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3,
                               unique=True))) if "approver" in roles else ()
    covered = draw(st.booleans())
    basis = draw(_text) if covered else draw(st.none() | _text)
    return RosterPrincipal(draw(_text), draw(_text), draw(_code), draw(_code), roles, keys,
                           covered, basis)


@given(st.lists(roster_principals(), max_size=6, unique_by=lambda p: p.id),
       st.integers(min_value=1, max_value=2**53 - 1), _code)
def test_roster_round_trips_canonically(principals: list[RosterPrincipal], serial: int,
                                        jurisdiction: str) -> None:
    """Any roster version parses back to itself from its canonical bytes, keeps its digest,
    and every principal's attributes and approver keys read back unchanged."""
    roster = Roster.build(jurisdiction=jurisdiction, serial=serial, issued=ISSUED,
                          principals=principals)
    parsed = parse_roster(roster.document, roster.digest)
    assert parsed == roster
    assert parsed.digest == roster_digest(roster.document)
    for p in principals:
        found = parsed.principal(p.id)
        assert found == p and found.principal == p.principal
        assert parsed.approver_keys(p.id) == p.approver_keys


def test_lookups() -> None:
    """The look-up API other rooms use: attributes by id, approver keys as raw bytes."""
    roster = sample_roster()
    carol = roster.principal("carol")
    assert carol is not None and carol.attributes() == {
        "id": "carol", "org": "ttus", "org_kind": "custodian", "location": "us",
        "roles": ["approver"]}
    assert roster.approver_keys("carol") == (b"\x01" * 32,)
    assert roster.approver_keys("alice") == () and roster.approver_keys("nobody") == ()
    assert roster.principal("nobody") is None and "wei" in roster
    assert roster_path(roster.digest) == f"rosters/sha256-{roster.digest[7:]}.json"


def _mutated(change: dict[str, object] | None = None, principal: dict[str, object] | None = None
             ) -> bytes:
    body = json.loads(sample_roster().document)
    body.update(change or {})
    if principal:
        body["principals"]["carol"].update(principal)
    return canonical_json(body)


@pytest.mark.parametrize(("data", "code"), [
    (b"\xff", "roster_malformed"),
    (b"[]", "roster_malformed"),
    (b'{"format":1.5}', "roster_malformed"),
    (_mutated({"format": "other/v1"}), "roster_malformed"),
    (_mutated({"extra": 1}), "roster_malformed"),
    (_mutated({"serial": 0}), "roster_malformed"),
    (_mutated({"jurisdiction": "US"}), "roster_malformed"),
    (_mutated({"issued": "yesterday"}), "roster_malformed"),
    (_mutated({"principals": []}), "roster_malformed"),
    (_mutated(principal={"approver_keys": []}), "roster_malformed"),
    (_mutated(principal={"approver_keys": ["AAAA"]}), "roster_malformed"),
    (_mutated(principal={"approver_keys": ["not base64!"]}), "roster_malformed"),
    (_mutated(principal={"roles": ["b", "a"]}), "roster_malformed"),
    (_mutated(principal={"covered_person": True, "covered_person_basis": None}),
     "roster_malformed"),
    (_mutated(principal={"covered_person": 1}), "roster_malformed"),
    (_mutated(principal={"location": "Abroad"}), "roster_malformed"),
    (_mutated(principal={"nickname": "c"}), "roster_malformed"),
    (sample_roster().document.replace(b'"format"', b' "format"'), "roster_not_canonical"),
    (sample_roster().document[:-1] + b',"format":"x"}', "roster_malformed"),
    (b" " * (8 << 20 | 1), "roster_oversize"),
], ids=["not-utf8", "not-object", "float", "format", "extra-member", "serial", "jurisdiction",
        "issued", "principals-list", "approver-without-key", "short-key", "bad-base64",
        "unsorted-roles", "covered-without-basis", "covered-not-bool", "location-code",
        "extra-principal-member", "not-canonical", "repeated-member", "oversize"])
def test_malformed_documents_have_stable_codes(data: bytes, code: str) -> None:
    """Every malformed roster document is refused with a stable code, never a crash."""
    with pytest.raises(VerificationError) as caught:
        parse_roster(data)
    assert caught.value.code == code


def test_signature_verifies_and_binds_digest_serial_and_jurisdiction() -> None:
    """The authority's signature verifies for its own version only: another document,
    serial, jurisdiction or key is refused with a stable code."""
    signer = authority_signer()
    authority = RosterAuthority.from_key_strings("us", [signer.verifier().key_string])
    roster = sample_roster()
    signature = sign_roster(roster, signer)
    assert authority.verify(roster.document, signature) == roster
    again = RosterSignature.from_entry_body(signature.entry_body())
    assert again == signature

    other = sample_roster(serial=2)
    with pytest.raises(VerificationError) as caught:
        authority.verify(other.document, signature)
    assert caught.value.code == "roster_digest_mismatch"
    moved = RosterSignature(other.digest, 2, signature.key, signature.signature)
    with pytest.raises(VerificationError) as caught:
        authority.verify(other.document, moved)
    assert caught.value.code == "roster_signature_invalid"
    eu = RosterAuthority.from_key_strings("eu", [signer.verifier().key_string])
    with pytest.raises(VerificationError) as caught:
        eu.verify(roster.document, signature)
    assert caught.value.code == "roster_signature_invalid"
    foreign = sign_roster(roster, authority_signer("cn-identity"))
    with pytest.raises(VerificationError) as caught:
        authority.verify(roster.document, foreign)
    assert caught.value.code == "roster_unknown_key"


@pytest.mark.parametrize("body", [
    {}, {"roster": "sha256:00", "serial": "1", "key": "k", "signature": "AA=="},
    {"roster": "sha256:00", "serial": True, "key": "k", "signature": "AA=="},
    {"roster": "sha256:00", "serial": 1, "key": "k", "signature": "!!"},
    {"roster": "sha256:00", "serial": 1, "key": "k", "signature": "AB=="},
], ids=["empty", "serial-text", "serial-bool", "signature-not-base64",
        "signature-not-canonical-base64"])
def test_malformed_signature_members(body: dict[str, object]) -> None:
    """A roster entry or .sig file with ill-typed members is ``roster_signature_malformed``."""
    with pytest.raises(VerificationError) as caught:
        RosterSignature.from_entry_body(body)
    assert caught.value.code == "roster_signature_malformed"


def test_authority_key_must_parse() -> None:
    """A deployment naming an unreadable authority key does not load."""
    for keys in ([], ["not a key"]):
        with pytest.raises(ConfigError) as caught:
            RosterAuthority.from_key_strings("us", keys)
        assert caught.value.code == "roster_authority_key_invalid"


def test_roster_principal_rules() -> None:
    """Approver keys are listed exactly for approvers; a covered person has a basis."""
    with pytest.raises(ValueError, match="exactly for approvers"):
        RosterPrincipal("a", "o", "local", "us", frozenset({"analyst"}),
                        approver_keys=(b"\x00" * 32,))
    with pytest.raises(ValueError, match=r"202\.211"):
        RosterPrincipal("a", "o", "local", "us", covered_person=True)
    assert base64.b64decode(json.loads(sample_roster().document)["principals"]["carol"]
                            ["approver_keys"][0]) == b"\x01" * 32


def test_an_id_that_is_not_a_string_is_never_listed() -> None:
    """Promise 4: a principal id an untrusted entry records as a list or an object is
    not listed (and has no approver keys); looking it up never raises."""
    roster = sample_roster()
    for bad in (["carol"], {"id": "carol"}, None, 7):
        assert roster.principal(bad) is None
        assert roster.approver_keys(bad) == ()

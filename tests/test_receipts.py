"""Receipts (issue 12, item 5): format round trips, tampering, canonical encoding.

The keys here are derived from fixed seeds and are TEST-ONLY.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.entries import canonical_json, parse_time
from bordergate.errors import VerificationError
from bordergate.receipts import (
    FORMAT,
    FORMAT_V1,
    SIGNED_CONTEXT,
    Receipt,
    ReceiptSigner,
    canonical_released,
    check_answer,
    check_binding,
    entry_discrepancies,
    jcs,
    parse_receipt,
    released_digest,
    released_values,
    verify_receipt_signature,
)
from bordergate.tlog import merkle
from bordergate.tlog.note import Signer

SIGNER = ReceiptSigner(Signer.from_seed(
    "us.receipts-TEST-ONLY", hashlib.sha256(b"bordergate TEST-ONLY receipt key").digest()), "us")
OTHER = ReceiptSigner(Signer.from_seed(
    "us.receipts-TEST-ONLY", hashlib.sha256(b"bordergate TEST-ONLY other key").digest()), "us")

names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
values = st.one_of(st.none(), st.booleans(), int64, st.text(max_size=40))
field_maps = st.dictionaries(names, values, max_size=8)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
              st.text(st.characters(codec=None, categories=["Cs", "Lu"]), max_size=3),
              int64),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)


TIME = "2026-11-29T00:00:00.000Z"


def _entry(fields: dict[str, Any], *, outcome: str = "allow",
           released: list[str] | None = None) -> bytes:
    present = sorted(n for n, v in fields.items() if v is not None)
    return canonical_json({
        "v": 1, "type": "access", "time": "2026-11-29T00:00:00.000Z", "gateway": "us",
        "collection": "profiles", "outcome": outcome,
        "released": present if released is None else released,
        "decisions": [{"field": n, "allowed": outcome != "deny"} for n in fields]})


def _read(fields: dict[str, Any], entry: bytes, index: int = 7) -> tuple[dict[str, Any], bytes,
                                                                          dict[str, Any]]:
    body = {"collection": "profiles", "fields": fields}
    receipt, salt = SIGNER.issue(
        origin="us.test/log", index=index, entry=entry, action="read", collection="profiles",
        fields=[n for n, v in fields.items() if v is not None],
        values=released_values("read", body))
    return receipt, salt, body


@given(json_values)
def test_fast_canonical_encoding_is_rfc8785(value: Any) -> None:
    """Receipt format: the hot path's JSON encoder gives exactly RFC 8785's bytes
    (the ``rfc8785`` package is the reference) for every value it accepts."""
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return
    assert jcs(value) == expected


counts = st.one_of(st.none(), st.integers(min_value=-(2**60), max_value=2**60),
                   st.integers(min_value=0, max_value=2**53 - 1))
texts = st.one_of(st.text(max_size=12), st.text(st.characters(codec=None, categories=["Cs"]),
                                                max_size=2))


@given(texts, texts, texts, st.sampled_from(["read", "export"]), texts,
       st.lists(st.text(max_size=8), max_size=5),
       st.one_of(st.integers(min_value=0, max_value=2**53 - 1),
                 st.integers(min_value=-(2**60), max_value=2**60)), counts, counts, st.binary(),
       st.binary(max_size=40), st.one_of(st.none(), texts))
def test_statement_template_equals_reference(
        key: str, gateway: str, origin: str, action: str, collection: str,
        fields: list[str], index: int, groups: int | None, suppressed: int | None,
        payload: bytes, salt: bytes, jti: str | None) -> None:
    """Receipt format: the statement a gateway signs, written from the cached parts of
    its answer's shape, is byte for byte ``rfc8785``'s encoding of the statement (or
    refused where the reference refuses), for any members, so every signature is
    over exactly the canonical statement a verifier rebuilds.  An index or count outside
    0..2^53 - 1 (which no verifier could canonicalize) is refused as misuse."""
    entry = json.dumps({"jti": jti, "payload": payload.hex(), "time": TIME}).encode()
    signer = ReceiptSigner(SIGNER.signer, gateway)
    signer.key = key
    if not all(0 <= n <= 2**53 - 1 for n in (index, groups or 0, suppressed or 0)):
        with pytest.raises(ValueError, match="2\\^53"):
            signer.prepare(origin=origin, index=index, entry=entry, action=action,
                           collection=collection, fields=fields, values={"fields": {}},
                           groups=groups, suppressed=suppressed, salt=salt)
        return
    try:
        expected: bytes | None = rfc8785.dumps({
            "format": FORMAT, "key": key, "gateway": gateway, "origin": origin,
            "index": index, "leaf_hash": base64.b64encode(merkle.leaf_hash(entry)).decode(),
            "action": action, "collection": collection, "fields": sorted(fields),
            "groups": groups, "suppressed": suppressed, "jti": jti, "time": TIME,
            "digest": base64.b64encode(released_digest(salt, {"fields": {}})).decode()})
    except rfc8785.CanonicalizationError:
        expected = None
    try:
        statement, _ = signer.issue(origin=origin, index=index, entry=entry, action=action,
                                    collection=collection, fields=fields,
                                    values={"fields": {}}, groups=groups,
                                    suppressed=suppressed, salt=salt)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        assert expected is None
        return
    assert expected is not None
    signed = base64.b64decode(statement.pop("signature"))
    assert statement == json.loads(expected)
    assert SIGNER.signer.verifier().verify(SIGNED_CONTEXT + expected, signed)


@given(field_maps)
def test_64_bit_integers_are_encoded_as_strings(fields: dict[str, Any]) -> None:
    """Receipt format: every value the schema allows (64-bit integers included) has a
    canonical encoding; integers past 2^53 - 1 are strings, as RFC 8785 section 6
    advises."""
    encoded = canonical_released({"fields": fields})
    decoded = json.loads(encoded)["fields"]
    for name, value in fields.items():
        big = isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1
        assert decoded[name] == (str(value) if big else value)


@settings(max_examples=60)
@given(field_maps)
def test_round_trip(fields: dict[str, Any]) -> None:
    """Receipt format: an issued receipt parses back, its signature verifies with the
    registered key, its digest matches the answer, and the honest entry allows it."""
    entry = _entry(fields)
    receipt_json, salt, body = _read(fields, entry)
    wire = json.loads(json.dumps(receipt_json))  # as a client parses it
    receipt = parse_receipt(json.dumps(wire).encode())
    assert receipt.to_json() == receipt_json
    assert receipt.leaf_hash == merkle.leaf_hash(entry)
    verify_receipt_signature(receipt, [SIGNER.key])
    check_answer(receipt, salt, json.loads(json.dumps(body)), origin="us.test/log", index=7)
    assert entry_discrepancies(receipt, json.loads(entry)) == []
    assert parse_receipt(receipt.to_bytes()) == receipt


@settings(max_examples=60)
@given(field_maps, st.data())
def test_any_changed_member_fails_the_signature(fields: dict[str, Any],
                                                data: st.DataObject) -> None:
    """Receipt format: changing any signed member (a different entry, index, field
    list, digest, ...) makes the signature fail or the receipt unparseable."""
    receipt_json, _, _ = _read(fields, _entry(fields))
    member = data.draw(st.sampled_from(sorted(set(receipt_json) - {"format", "signature"})))
    original = receipt_json[member]
    if isinstance(original, int) and not isinstance(original, bool):
        changed: Any = original + 1
    elif member in ("leaf_hash", "digest"):
        raw = bytearray(base64.b64decode(original))
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1
        changed = base64.b64encode(bytes(raw)).decode()
    elif member == "key":
        changed = OTHER.key
    elif member == "fields":
        changed = sorted({*original, "zz_extra"})
    elif original is None:
        changed = 1
    else:
        changed = original + "x"
    tampered = {**receipt_json, member: changed}
    with pytest.raises(VerificationError):
        verify_receipt_signature(parse_receipt(json.dumps(tampered).encode()))


@settings(max_examples=60)
@given(field_maps.filter(bool), st.data())
def test_a_changed_value_fails_the_digest(fields: dict[str, Any], data: st.DataObject) -> None:
    """Client check: a body whose released values differ from what the receipt signed
    (one value changed) fails with ``receipt_digest_mismatch`` or ``receipt_mismatch``."""
    receipt_json, salt, body = _read(fields, _entry(fields))
    name = data.draw(st.sampled_from(sorted(fields)))
    new = data.draw(values.filter(lambda v: v != fields[name] or type(v) is not type(
        fields[name])))
    tampered = {**body, "fields": {**fields, name: new}}
    with pytest.raises(VerificationError) as caught:
        check_answer(parse_receipt(receipt_json), salt, tampered)
    assert caught.value.code in ("receipt_digest_mismatch", "receipt_mismatch")


def test_wrong_salt_fails_the_digest() -> None:
    """Client check: the digest is bound to the salt sent with the answer."""
    receipt_json, _salt, body = _read({"email": "a@example.com"}, _entry({"email": "x"}))
    with pytest.raises(VerificationError) as caught:
        check_answer(parse_receipt(receipt_json), bytes(32), body)
    assert caught.value.code == "receipt_digest_mismatch"


def test_untrusted_key_is_refused() -> None:
    """Registered key: a receipt signed by a key that is not the gateway's is refused."""
    receipt_json, _, _ = _read({"email": "a@example.com"}, _entry({"email": "x"}))
    with pytest.raises(VerificationError) as caught:
        verify_receipt_signature(parse_receipt(receipt_json), [OTHER.key])
    assert caught.value.code == "receipt_key_untrusted"


def test_a_lying_denial_contradicts_the_receipt() -> None:
    """Issue 12 acceptance (lying denial, pure part): an entry that records a denial,
    or a released list that leaves fields out, contradicts the gateway's receipt."""
    fields = {"email": "a@example.com", "name": "A"}
    denied = _entry(fields, outcome="deny", released=[])
    receipt_json, _, _ = _read(fields, denied)
    found = entry_discrepancies(parse_receipt(receipt_json), json.loads(denied))
    assert any("denial" in f for f in found) and any("under-reported" in f for f in found)
    under = _entry(fields, released=["name"])
    receipt_json, _, _ = _read(fields, under)
    found = entry_discrepancies(parse_receipt(receipt_json), json.loads(under))
    assert found == ["released ['email'] which the entry's released list ['name'] does "
                     "not name (an under-reported release)"]


_LONE = json.dumps({**_read({"email": "a"}, _entry({"email": "x"}))[0], "origin": "\ud800"})


@pytest.mark.parametrize("text", [
    b"", b"[]", b"{", b'{"format": "bordergate-receipt/v1"}', "\udcff".encode(
        "utf-8", "surrogatepass"), b'{"format": 1}', b"x" * 70_000, _LONE.encode(),
], ids=["empty", "array", "truncated", "members-missing", "not-utf8", "format-not-text",
        "too-large", "lone-surrogate-escape"])
def test_malformed_receipts_are_verification_errors(text: bytes) -> None:
    """Parsers of untrusted bytes raise VerificationError with a receipt code, nothing else."""
    with pytest.raises(VerificationError) as caught:
        parse_receipt(text)
    assert caught.value.code in ("receipt_malformed", "receipt_unknown_format")


@given(st.data())
def test_mangled_receipts_never_leak_other_errors(data: st.DataObject) -> None:
    """Parsers of untrusted bytes: any member replaced by any JSON value gives a
    receipt or a VerificationError, never ValueError/KeyError/TypeError."""
    receipt_json, _, _ = _read({"email": "a@example.com"}, _entry({"email": "x"}))
    member = data.draw(st.sampled_from(sorted(receipt_json)))
    mangled = {**receipt_json, member: data.draw(json_values)}
    try:
        verify_receipt_signature(parse_receipt(json.dumps(mangled).encode()))
    except VerificationError as exc:
        assert exc.code.startswith("receipt_") or exc.code == "malformed_verifier_key"
    else:
        assert mangled == receipt_json  # only the receipt as signed verifies


def test_unknown_version_is_named() -> None:
    """Receipt format: a receipt of another version is refused as such."""
    receipt_json, _, _ = _read({"email": "a@example.com"}, _entry({"email": "x"}))
    with pytest.raises(VerificationError) as caught:
        parse_receipt({**receipt_json, "format": "bordergate-receipt/v3"})
    assert caught.value.code == "receipt_unknown_format"
    assert FORMAT == "bordergate-receipt/v2"


def test_export_receipt_round_trip_and_under_reported_groups() -> None:
    """Issue 12, item 5 (exports): an export's receipt covers its groups and the number
    suppressed; the client checks them against the answer, and an export entry that
    records fewer groups than the receipt says were released contradicts it."""
    body = {"collection": "users", "group_by": "country", "suppressed": 2,
            "groups": [{"value": "US", "records": 40, "subjects": 38},
                       {"value": None, "records": 2**60, "subjects": 11}]}
    entry = {"type": "export", "time": TIME, "gateway": "us", "collection": "users",
             "group_by": "country",
             "outcome": "allow", "groups": 2, "suppressed": 2,
             "decisions": [{"field": "country", "allowed": True}]}
    receipt_json, salt = SIGNER.issue(
        origin="us.test/log", index=3, entry=canonical_json(entry), action="export",
        collection="users", fields=["country"], values=released_values("export", body),
        groups=2, suppressed=2)
    receipt = parse_receipt(json.dumps(receipt_json).encode())
    check_answer(receipt, salt, json.loads(json.dumps(body)))
    assert entry_discrepancies(receipt, entry) == []
    with pytest.raises(VerificationError) as caught:
        check_answer(receipt, salt, {**body, "groups": body["groups"][:1]})
    assert caught.value.code == "receipt_mismatch"
    assert entry_discrepancies(receipt, {**entry, "groups": 1}) == [
        "released 2 groups, the entry records 1"]


_EXPORT_ENTRY = canonical_json({"type": "export", "time": TIME})


@pytest.mark.parametrize("member", ["index", "groups", "suppressed"])
@pytest.mark.parametrize("value", [2**53, 2**60, 2**63 - 1], ids=["2^53", "2^60", "2^63-1"])
def test_counts_past_the_json_integer_range_are_malformed(member: str, value: int) -> None:
    """Parsers of untrusted bytes (receipts, issue 12 item 5): an index or count past
    2^53 - 1, which RFC 8785 cannot encode, is ``receipt_malformed`` when parsed, never
    an ``rfc8785`` error from the signature check (``receipt verify`` and the client
    crashed with IntegerDomainError)."""
    body = {"collection": "users", "group_by": "country", "suppressed": 0, "groups": []}
    receipt_json, _ = SIGNER.issue(
        origin="us.test/log", index=3, entry=_EXPORT_ENTRY, action="export", collection="users",
        fields=["country"], values=released_values("export", body), groups=0, suppressed=0)
    with pytest.raises(VerificationError) as caught:
        verify_receipt_signature(parse_receipt(json.dumps({**receipt_json,
                                                           member: value}).encode()))
    assert caught.value.code == "receipt_malformed"


def test_a_receipt_at_the_largest_json_integer_verifies() -> None:
    """Receipt format: 2^53 - 1, the largest count RFC 8785 encodes, is issued, parsed
    and verified like any other."""
    top = 2**53 - 1
    body = {"collection": "users", "group_by": "country", "suppressed": top, "groups": []}
    receipt_json, _ = SIGNER.issue(
        origin="us.test/log", index=top, entry=_EXPORT_ENTRY, action="export", collection="users",
        fields=["country"], values=released_values("export", body), groups=0, suppressed=top)
    verify_receipt_signature(parse_receipt(json.dumps(receipt_json).encode()), [SIGNER.key])


def _signed(receipt: Receipt) -> Receipt:
    """``receipt`` with the signature of SIGNER over its statement (what a lying
    gateway, holding its own key, can make of any statement)."""
    return replace(receipt, signature=SIGNER.signer.sign(receipt.signed_bytes()))


def test_a_receipt_names_its_entrys_token_id_and_time() -> None:
    """Promise 3 / receipts, issue 12 item 5 (request binding): the statement a gateway
    signs copies the entry's ``jti`` and ``time``; a receipt naming another token id
    or time than its entry (a gateway citing an earlier allowing entry of another
    request) is a discrepancy, which it was not when receipts named neither."""
    fields = {"email": "b@example.test"}
    entry = json.loads(_entry(fields))
    entry["jti"] = "token-of-request-a-0123"
    raw = canonical_json(entry)
    receipt_json, _, _ = _read(fields, raw)
    receipt = parse_receipt(receipt_json)
    assert (receipt.jti, receipt.time, receipt.bound) == ("token-of-request-a-0123", TIME, True)
    assert entry_discrepancies(receipt, entry) == []
    lie = _signed(replace(receipt, jti="token-of-request-b-4567",
                          time="2026-11-29T01:00:00.000Z"))
    verify_receipt_signature(lie, [SIGNER.key])
    found = entry_discrepancies(lie, entry)
    assert len(found) == 2 and all("another request's entry" in f for f in found)


def test_the_client_refuses_a_receipt_of_another_request() -> None:
    """Promise 3 / receipts, issue 12 item 5 (request binding): the client's check
    refuses a receipt whose token id is not its token's, or whose entry time is
    outside its request (give or take the tolerance), and an old-format receipt,
    which names no request; an export's receipt too names its token (a null one,
    which an entry of no token gives, is refused: exports' entries record it)."""
    fields = {"email": "b@example.test"}
    entry = {**json.loads(_entry(fields)), "jti": "mine-0123456789ab"}
    receipt = parse_receipt(_read(fields, canonical_json(entry))[0])
    at = parse_time(TIME)
    check_binding(receipt, jti="mine-0123456789ab", start=at - 1, end=at + 1, tolerance=0)
    check_binding(receipt, jti="mine-0123456789ab", start=at + 29, end=at + 40, tolerance=30)
    cases = [{"jti": "someone-else-0123"}, {"jti": None},
             {"start": at + 31, "end": at + 40}, {"start": at - 90, "end": at - 31}]
    for case in cases:
        args: dict[str, Any] = {"jti": "mine-0123456789ab", "start": at - 1, "end": at + 1,
                                "tolerance": 30.0, **case}
        with pytest.raises(VerificationError) as caught:
            check_binding(receipt, **args)
        assert caught.value.code == "receipt_mismatch", case
    old = replace(receipt, format=FORMAT_V1, jti=None, time=None)
    with pytest.raises(VerificationError) as caught:
        check_binding(old, jti="mine-0123456789ab", start=at - 1, end=at + 1, tolerance=30)
    assert caught.value.code == "receipt_mismatch"
    export = _signed(replace(receipt, action="export", fields=("country",), groups=0,
                             suppressed=0))
    check_binding(export, jti="mine-0123456789ab", start=at - 1, end=at + 1, tolerance=0)
    with pytest.raises(VerificationError) as caught:
        check_binding(_signed(replace(export, jti=None)), jti="mine-0123456789ab",
                      start=at - 1, end=at + 1, tolerance=0)
    assert caught.value.code == "receipt_mismatch"


def test_an_old_format_receipt_still_verifies() -> None:
    """Receipt format (versions): a ``bordergate-receipt/v1`` receipt, issued before
    receipts named their request, parses and its signature verifies (the v1 signing
    context, no jti or time members); it is not bound, and its entry check is the
    same as before."""
    fields = {"email": "a@example.com"}
    entry = _entry(fields)
    new = parse_receipt(_read(fields, entry)[0])
    old = _signed(replace(new, format=FORMAT_V1, jti=None, time=None))
    wire = old.to_json()
    assert wire["format"] == "bordergate-receipt/v1" and "jti" not in wire
    assert old.signed_bytes().startswith(b"bordergate-receipt/v1 statement\n")
    parsed = parse_receipt(json.dumps(wire).encode())
    assert parsed == old and not parsed.bound
    verify_receipt_signature(parsed, [SIGNER.key])
    assert entry_discrepancies(parsed, json.loads(entry)) == []
    with pytest.raises(VerificationError) as caught:  # v2 members in a v1 receipt
        parse_receipt({**wire, "jti": None, "time": TIME})
    assert caught.value.code == "receipt_malformed"


@given(st.sampled_from(["access", "export"]), st.floats(0, 4_000_000_000),
       st.dictionaries(st.sampled_from(["collection", "purpose", "note", "vouched"]),
                       st.one_of(st.text(max_size=12), st.integers(), st.none(),
                                 st.fixed_dictionaries({"time": st.text(max_size=8)})),
                       max_size=3),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=22))
def test_the_entry_time_read_from_the_tail_is_the_parsed_one(
        kind: str, when: float, members: dict[str, Any], jti: str) -> None:
    """Receipts (request binding): the time a receipt copies, read from the entry's
    last bytes without a parse (the read path's), is the time the parsed entry holds,
    whatever nested members (a nested ``time`` too) come before it."""
    from bordergate.entries import canonical_json, format_time
    from bordergate.receipts import _entry_request
    entry = canonical_json({**members, "jti": jti, "time": format_time(when), "type": kind,
                            "v": 2})
    parsed = json.loads(entry)
    assert _entry_request(entry, jti) == (jti, parsed["time"]) == _entry_request(entry)

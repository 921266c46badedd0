"""The client's receipt checks against a hostile gateway on a real socket (issue 12,
item 5; promise 3 'log before release').

A gateway that lies to its client answers with a genuine receipt, signed by its
registered key, that does not cover what it released: a receipt of another action
(an export's, on a read: the read's ``fields`` then fall under no digest), of
another collection, or with log headers the client cannot read.  The client must
refuse each with a stable ``receipt_*`` code, keep no receipt and return nothing.
Keys are TEST-ONLY (fixed seeds, tests/gateway/deployment.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bordergate.client import GatewayClient
from bordergate.entries import encode_entry
from bordergate.errors import VerificationError
from bordergate.policy.entities import Principal
from bordergate.receipts import ReceiptSigner, released_values
from tests.gateway.deployment import Tokens, receipt_signer
from tests.gateway.test_client_redirects import Listener

ORIGIN = "us.bordergate.test/log"
LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
SIGNER = ReceiptSigner(receipt_signer("us"), "us")
SECRET = {"email": "secret@example.test", "ssn": "123-45-6789"}


def _token_jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def _entry(kind: str, jti: str | None, **members: Any) -> bytes:
    """An allowing entry of ``kind`` as the gateway logs it (now, with the token's jti)."""
    body: dict[str, Any] = {"principal": {"id": "alice"}, "purpose": "operations",
                            "bundle": "sha256:00", "outcome": "allow", "gateway": "us",
                            "release": None, **members}
    if jti is not None:
        body["jti"] = jti
    return encode_entry(kind, time.time(), body)


def _with_receipt(body: dict[str, Any], action: str, receipt_body: dict[str, Any], *,
                  entry: bytes, fields: list[str], index: int = 5, **counts: Any
                  ) -> dict[str, Any]:
    receipt, salt = SIGNER.issue(origin=ORIGIN, index=index, entry=entry, action=action,
                                 collection=str(receipt_body["collection"]), fields=fields,
                                 values=released_values(action, receipt_body), **counts)
    return {**body, "receipt": receipt, "receipt_salt": base64.b64encode(salt).decode()}


HEADERS = {"Bordergate-Log-Origin": ORIGIN, "Bordergate-Log-Index": "5"}


@pytest.fixture
def hostile() -> Iterator[Listener]:
    """A lying us gateway: a real HTTP server answering what each test sets."""
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


def _client(listener: Listener, token: str) -> GatewayClient:
    return GatewayClient(listener.url, token, gateways={"us": listener.url},
                         receipt_keys={"us": SIGNER.key})


def _export_entry(jti: str | None) -> bytes:
    return _entry("export", jti, collection="users", group_by="country", k=5, groups=0,
                  suppressed=0, decisions=[{"field": "country", "allowed": True}])


def test_a_read_answered_with_an_export_receipt_is_refused(hostile: Listener) -> None:
    """Promise 3 / receipts (issue 12 item 5): a gateway answers a read with the values
    of two fields and the genuine receipt of an allowed export (group count 0), so the
    read's fields are covered by no digest and the cited entry allows the export: the
    client refuses it (``receipt_mismatch``), keeps no receipt."""
    token = Tokens().token(LOCAL, "us")
    read = {"collection": "users", "record": "r1", "purpose": "operations",
            "withheld": [], "outcome": "allow", "fields": SECRET,
            "group_by": "country", "groups": [], "suppressed": 0}
    hostile.answer = (200, _with_receipt(read, "export", read, entry=_export_entry(None),
                                         fields=["country"], groups=0, suppressed=0), HEADERS)
    with _client(hostile, token) as client, pytest.raises(VerificationError) as caught:
        client.read("users", "r1", purpose="operations")
    assert caught.value.code == "receipt_mismatch"
    assert client.receipts == []


def test_an_export_answered_with_a_read_receipt_is_refused(hostile: Listener) -> None:
    """Promise 3 / receipts (issue 12 item 5): an export answer whose receipt is that of
    a read releasing no field leaves its groups under no digest: refused
    (``receipt_mismatch``)."""
    token = Tokens().token(LOCAL, "us")
    export = {"collection": "users", "group_by": "country", "k": 5, "suppressed": 0,
              "truncated": False, "groups": [{"value": "US", "records": 900,
                                              "subjects": 900}], "fields": {}}
    entry = _entry("access", _token_jti(token), collection="users", subject="subject:00",
                   record="record:00", released=[], decisions=[])
    hostile.answer = (200, _with_receipt(export, "read", export, entry=entry, fields=[]),
                      HEADERS)
    with _client(hostile, token) as client, pytest.raises(VerificationError) as caught:
        client.export("users", "country")
    assert caught.value.code == "receipt_mismatch"
    assert client.receipts == []


def _honest_read(token: str, collection: str = "users") -> dict[str, Any]:
    """A read answer of ``collection`` with its consistent receipt (the token's entry)."""
    read = {"collection": collection, "record": "r1", "purpose": "operations",
            "withheld": [], "outcome": "allow", "fields": SECRET}
    entry = _entry("access", _token_jti(token), collection=collection, subject="subject:00",
                   record="record:00", released=sorted(SECRET),
                   decisions=[{"field": f, "allowed": True} for f in sorted(SECRET)])
    return _with_receipt(read, "read", read, entry=entry, fields=sorted(SECRET))


def test_a_read_answered_about_another_collection_is_refused(hostile: Listener) -> None:
    """Promise 3 / receipts (issue 12 item 5): a read of ``users`` answered with another
    collection's values and their consistent receipt is not the answer asked for:
    ``receipt_mismatch``."""
    token = Tokens().token(LOCAL, "us")
    hostile.answer = (200, _honest_read(token, "profiles"), HEADERS)
    with _client(hostile, token) as client, pytest.raises(VerificationError) as caught:
        client.read("users", "r1", purpose="operations")
    assert caught.value.code == "receipt_mismatch"
    assert client.receipts == []


def test_an_honest_read_answer_is_accepted(hostile: Listener) -> None:
    """Receipts (issue 12 item 5): the same socket serving an honest answer (the control
    of the tests above) passes every check and keeps its receipt."""
    token = Tokens().token(LOCAL, "us")
    hostile.answer = (200, _honest_read(token), HEADERS)
    with _client(hostile, token) as client:
        got = client.read("users", "r1", purpose="operations")
    assert got.fields == SECRET and got.log_index == 5 and len(client.receipts) == 1


ODD_HEADERS = {
    "index is a superscript digit": {"Bordergate-Log-Origin": ORIGIN,
                                     "Bordergate-Log-Index": "\u00b2"},
    "index is an Arabic-Indic digit": {"Bordergate-Log-Origin": ORIGIN,
                                       "Bordergate-Log-Index": "\u0665"},
    "no origin header": {"Bordergate-Log-Index": "5"},
    "no index header": {"Bordergate-Log-Origin": ORIGIN},
}


@pytest.mark.parametrize("case", list(ODD_HEADERS), ids=list(ODD_HEADERS))
def test_an_answer_whose_log_headers_do_not_parse_is_a_receipt_mismatch(
        hostile: Listener, case: str) -> None:
    """Receipts (issue 12 item 5), stable error codes: an answer whose log headers are
    missing or not ASCII digits (``str.isdigit`` takes '²', which ``int`` refuses) is
    ``receipt_mismatch``, never a ValueError or KeyError from the client."""
    token = Tokens().token(LOCAL, "us")
    headers = {name: value.encode("utf-8").decode("latin-1")
               for name, value in ODD_HEADERS[case].items()}
    hostile.answer = (200, _honest_read(token), headers)
    with _client(hostile, token) as client, pytest.raises(VerificationError) as caught:
        client.read("users", "r1", purpose="operations")
    assert caught.value.code == "receipt_mismatch"
    assert client.receipts == []


def _allowing_read_entry(jti: str, when: float) -> bytes:
    return encode_entry("access", when, {
        "principal": {"id": "alice"}, "purpose": "operations", "bundle": "sha256:00",
        "outcome": "allow", "gateway": "us", "release": None, "collection": "users",
        "subject": "subject:00", "record": "record:00", "released": sorted(SECRET),
        "decisions": [{"field": f, "allowed": True} for f in sorted(SECRET)], "jti": jti})


def test_a_receipt_citing_an_earlier_entry_of_another_request_is_refused(
        hostile: Listener) -> None:
    """Promise 3 / receipts, issue 12 item 5 (request binding): a gateway logs a denial
    of this read, releases the record anyway and attaches the genuine receipt of an
    earlier allowing read (same collection and fields) by another token, or by this
    token an hour ago: before, the client accepted it (the receipt named no request);
    now the receipt names its entry's token id and time, and the client refuses one
    that is not its token's or not within its request (``receipt_mismatch``)."""
    token = Tokens().token(LOCAL, "us")
    other = Tokens().token(LOCAL, "us")
    read = {"collection": "users", "record": "r2", "purpose": "operations",
            "withheld": [], "outcome": "allow", "fields": SECRET}
    for jti, when in ((_token_jti(other), time.time()),
                      (_token_jti(token), time.time() - 3600)):
        hostile.answer = (200, _with_receipt(read, "read", read,
                                             entry=_allowing_read_entry(jti, when),
                                             fields=sorted(SECRET)), HEADERS)
        with _client(hostile, token) as client, pytest.raises(VerificationError) as caught:
            client.read("users", "r2", purpose="operations")
        assert caught.value.code == "receipt_mismatch"
        assert client.receipts == []
    # the same answer for this token's own entry, logged now, is accepted
    hostile.answer = (200, _with_receipt(read, "read", read, fields=sorted(SECRET),
                                         entry=_allowing_read_entry(_token_jti(token),
                                                                    time.time())), HEADERS)
    with _client(hostile, token) as client:
        assert client.read("users", "r2", purpose="operations").fields == SECRET


@pytest.mark.parametrize("member", ["withheld", "outcome"])
def test_a_read_answer_without_its_withheld_list_or_outcome_is_a_mismatch(
        hostile: Listener, member: str) -> None:
    """Stable error codes (found by the receipts' review): a lying answer that leaves
    out ``withheld`` or ``outcome`` is ``receipt_mismatch``, not a KeyError."""
    token = Tokens().token(LOCAL, "us")
    answer = {k: v for k, v in _honest_read(token).items() if k != member}
    hostile.answer = (200, answer, HEADERS)
    with _client(hostile, token) as client, pytest.raises(VerificationError) as caught:
        client.read("users", "r1", purpose="operations")
    assert caught.value.code == "receipt_mismatch"

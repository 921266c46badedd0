"""Holding receipts against a log (``bordergate.receipt_log``), on an in-memory log.

Issue 12, item 5: what ties a receipt to the gateway is its key registered by a
``gateway-start`` entry (or held from the deployment file); a receipt for an
entry the log does not hold, or under an unregistered key, proves nothing about
the gateway.  Keys are TEST-ONLY (fixed seeds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bordergate.appender import stamp
from bordergate.entries import encode_entry, format_time
from bordergate.errors import VerificationError
from bordergate.receipt_log import verify_in_log
from bordergate.receipts import FORMAT_V1, Receipt, ReceiptSigner, parse_receipt
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.memory import MemoryStorage

LOG = Signer.from_seed("us.receipts.test/log", hashlib.sha256(b"TEST-ONLY log").digest())
GATEWAY = ReceiptSigner(Signer.from_seed(
    "us.gateway-receipts-TEST-ONLY", hashlib.sha256(b"TEST-ONLY gateway").digest()), "us")
FORGER = ReceiptSigner(Signer.from_seed(
    "us.gateway-receipts-TEST-ONLY", hashlib.sha256(b"TEST-ONLY forger").digest()), "us")
T = 1_790_000_000.0


def _access(released: list[str], outcome: str = "allow") -> bytes:
    return encode_entry("access", T, {
        "principal": {}, "collection": "users", "subject": "subject:00", "record": "record:00",
        "purpose": "operations", "bundle": "sha256:00", "outcome": outcome, "gateway": "us",
        "released": released,
        "decisions": [{"field": f, "allowed": outcome != "deny"} for f in ("email", "handle")]})


@pytest.fixture
def log() -> Iterator[tuple[LogClient, list[bytes]]]:
    """A log: the gateway's start (registering GATEWAY's key), then two reads."""
    storage = MemoryStorage()
    create_log(storage, LOG)
    entries = [encode_entry("gateway-start", T, {
        "gateway": "us", "release": None, "reviewed": False, "unreviewed": True,
        "receipt_key": GATEWAY.key}), _access(["email", "handle"]), _access([], "deny")]
    with Sequencer(storage, LOG) as sequencer:
        sequencer.submit(entries).result()
        sequencer.publish()
    yield LogClient(StorageSource(storage), LOG.verifier()), entries


def _receipt(signer: ReceiptSigner, index: int, entry: bytes) -> Receipt:
    values = {"fields": {"email": "a@example.test", "handle": "a"}}
    receipt, _ = signer.issue(origin=LOG.name, index=index, entry=entry, action="read",
                              collection="users", fields=["email", "handle"], values=values)
    return parse_receipt(receipt)


def test_honest_receipt_is_consistent(log: tuple[LogClient, list[bytes]]) -> None:
    """Issue 12, item 5: a receipt of a logged release is proved consistent, its key
    registered by the gateway-start entry."""
    client, entries = log
    verdict = verify_in_log(_receipt(GATEWAY, 1, entries[1]), client)
    assert verdict.consistent and verdict.registered_at == 0


def test_denial_with_a_receipt_is_a_discrepancy(log: tuple[LogClient, list[bytes]]) -> None:
    """Issue 12, item 5: a receipt signed over a logged denial is proof of a lie."""
    client, entries = log
    verdict = verify_in_log(_receipt(GATEWAY, 2, entries[2]), client)
    assert not verdict.consistent
    assert any("a denial" in d for d in verdict.discrepancies)


def test_receipt_for_another_entry_is_a_discrepancy(log: tuple[LogClient, list[bytes]]
                                                    ) -> None:
    """Issue 12, item 5: a receipt whose leaf hash is not the entry's at its index
    names an entry the log does not hold there."""
    client, entries = log
    verdict = verify_in_log(_receipt(GATEWAY, 2, entries[1]), client)
    assert verdict.discrepancies == [
        "the receipt's leaf hash is not that of entry 2 of the log: the gateway signed a "
        "receipt for an entry the log does not hold"]


def test_unregistered_key_proves_nothing(log: tuple[LogClient, list[bytes]]) -> None:
    """Issue 12, item 5: a receipt under a key no gateway-start registered is not the
    gateway's word (``receipt_key_unregistered``), unless the caller holds the key as
    the gateway's, when the missing registration is itself a discrepancy."""
    client, entries = log
    forged = _receipt(FORGER, 2, entries[2])
    with pytest.raises(VerificationError) as caught:
        verify_in_log(forged, client)
    assert caught.value.code == "receipt_key_unregistered"
    verdict = verify_in_log(forged, client, key_trusted=True)
    assert any("registers the receipt key" in d for d in verdict.discrepancies)


def test_a_registered_receipt_key_is_not_taken_for_personal_data() -> None:
    """Promise 7 scan (issue 12, item 5): the ``receipt_key`` of a ``gateway-start``
    entry is key material, not a value; a key id of digits must not read as a phone
    number (it did in the demo before the scan skipped the member)."""
    from bordergate.audit.personal_data import scan_entry
    from bordergate.entries import parse_entry

    raw = encode_entry("gateway-start", T, {
        "gateway": "us", "release": None, "reviewed": False,
        "receipt_key": "us.gateway-receipts+12345678+AWhk0nOb2XV5K3vk0tHLOKMCkOJRL0pXtiMhvlEjlbYx"})
    assert scan_entry(raw, parse_entry(raw).body) == []


def _stamped_log(entries: list[bytes]) -> LogClient:
    storage = MemoryStorage()
    create_log(storage, LOG)
    with Sequencer(storage, LOG) as sequencer:
        sequencer.submit(entries).result()
        sequencer.publish()
    return LogClient(StorageSource(storage), LOG.verifier())


def _start(key: str, appender: str) -> bytes:
    return stamp(encode_entry("gateway-start", T, {
        "gateway": "us", "release": None, "reviewed": False, "unreviewed": True,
        "receipt_key": key}), appender)


ROLES = {"us-gw-1": "gateway", "us-gw-2": "gateway", "us-keyservice": "key-service",
         "us-custodian": "custodian"}


@pytest.mark.parametrize("roles", [None, ROLES], ids=["no role table", "role table"])
@pytest.mark.parametrize("foreign", ["us-keyservice", "us-custodian"])
def test_a_gateway_start_of_another_credential_registers_no_key(
        roles: dict[str, str] | None, foreign: str) -> None:
    """Promise 3 / receipts (issue 12 item 5): the key service's or custodian's append
    credential may not write a gateway-start (the auditor's appender roles); one that
    does, naming its own key, must not make receipts under that key the gateway's
    (a forged 'proof' that the gateway lied about its honest denial): the key is
    unregistered, and the refused start is named."""
    entries = [_start(GATEWAY.key, "us-gw-1"), stamp(_access(["email", "handle"]), "us-gw-1"),
               _start(FORGER.key, foreign), stamp(_access([], "deny"), "us-gw-1")]
    client = _stamped_log(entries)
    with pytest.raises(VerificationError) as caught:
        verify_in_log(_receipt(FORGER, 3, entries[3]), client, appenders=roles)
    assert caught.value.code == "receipt_key_unregistered"
    assert f"entry 2, a gateway-start of gateway 'us', was appended with credential " \
        f"'{foreign}'" in str(caught.value)
    verdict = verify_in_log(_receipt(GATEWAY, 1, entries[1]), client, appenders=roles)
    assert verdict.consistent and verdict.registered_at == 0
    assert verdict.registered_by == "us-gw-1"


def test_with_a_role_table_any_gateway_worker_registers_and_several_keys_are_noted() -> None:
    """Receipts (issue 12 item 5): with the auditor's appender roles, a start by
    another gateway worker's credential registers its key; a gateway that registered
    several receipt keys is noted (no contradiction: keys rotate)."""
    entries = [_start(FORGER.key, "us-gw-1"), _start(GATEWAY.key, "us-gw-2"),
               stamp(_access(["email", "handle"]), "us-gw-1")]
    client = _stamped_log(entries)
    verdict = verify_in_log(_receipt(GATEWAY, 2, entries[2]), client, appenders=ROLES)
    assert verdict.consistent and verdict.registered_by == "us-gw-2"
    assert any("registered 2 receipt keys" in note for note in verdict.notes)


def test_a_receipt_citing_another_requests_entry_is_a_discrepancy() -> None:
    """Promise 3 / receipts, issue 12 item 5 (request binding): a gateway logs a denial
    of request B, releases B's record anyway and answers with a receipt naming B's
    token id and time but citing the earlier allowing entry of request A (same
    collection and fields): the client cannot tell, but ``verify_in_log`` names the
    token id and time the entry does not record (before, it said consistent)."""
    def access(jti: str, when: float, outcome: str, released: list[str]) -> bytes:
        return stamp(encode_entry("access", when, {
            "principal": {}, "collection": "users", "subject": "subject:00",
            "record": "record:00", "purpose": "operations", "bundle": "sha256:00",
            "outcome": outcome, "gateway": "us", "released": released, "jti": jti,
            "decisions": [{"field": f, "allowed": outcome != "deny"}
                          for f in ("email", "handle")]}), "us-gw-1")
    entries = [_start(GATEWAY.key, "us-gw-1"),
               access("token-a-0123456789", T, "allow", ["email", "handle"]),
               access("token-b-0123456789", T + 60, "deny", [])]
    client = _stamped_log(entries)
    honest = _receipt(GATEWAY, 1, entries[1])
    assert honest.jti == "token-a-0123456789" and verify_in_log(honest, client).consistent
    lie = replace(honest, jti="token-b-0123456789", time=format_time(T + 60))
    lie = replace(lie, signature=GATEWAY.signer.sign(lie.signed_bytes()))
    verdict = verify_in_log(lie, client)
    assert not verdict.consistent
    assert any("names token id 'token-b-0123456789', the entry 'token-a-0123456789'" in d
               for d in verdict.discrepancies)
    assert any("names time" in d for d in verdict.discrepancies)


def test_an_old_format_receipt_verifies_but_its_request_binding_is_not_checked(
        log: tuple[LogClient, list[bytes]]) -> None:
    """Receipt format (versions): a v1 receipt, issued before receipts named their
    request, is still held against the log (consistent here), with a note that its
    request binding could not be checked."""
    client, entries = log
    new = _receipt(GATEWAY, 1, entries[1])
    old = replace(new, format=FORMAT_V1, jti=None, time=None)
    old = replace(old, signature=GATEWAY.signer.sign(old.signed_bytes()))
    verdict = verify_in_log(parse_receipt(old.to_bytes()), client)
    assert verdict.consistent
    assert any("request binding could not be checked" in n for n in verdict.notes)
    assert not any("request binding" in n for n in verify_in_log(new, client).notes)

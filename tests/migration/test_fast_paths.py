"""The migration's hot-path encoders give exactly the reference bytes (issue 15,
performance; promises 2 and 7 unchanged): property tests of each fast path against
the reference it replaces."""

from __future__ import annotations

import hmac
import os
import random
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.entries import Pseudonymizer
from bordergate.errors import BordergateError, Conflict
from bordergate.gateway.decisions import key_event_entry
from bordergate.keys.envelope import (
    collection_aad_head,
    field_aad_prefix,
    open_sealed,
    record_aad_prefix,
    seal_many,
)
from bordergate.keys.events import KeyEvent, KeyEventKind
from bordergate.migration.homes import KeyEventEntries
from bordergate.residency.schema import FieldClass, FieldSpec, FieldType
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.subjects import SubjectId

_SPECS = [FieldSpec("f", FieldClass.PROTECTED, t, max_length=m)
          for t in FieldType for m in (3, 200)]
_TIMESTAMPS = st.datetimes(min_value=datetime(2, 1, 2), max_value=datetime(9998, 12, 30),
                           timezones=st.sampled_from([UTC, None])).map(
    lambda d: (d.replace(tzinfo=UTC) if d.tzinfo is None else d))


def _outcome(call):  # type: ignore[no-untyped-def]
    try:
        return ("ok", call())
    except BordergateError as exc:
        return ("error", type(exc).__name__, exc.code)


@given(spec=st.sampled_from(_SPECS),
       value=st.one_of(st.text(max_size=8), st.text(max_size=300), st.integers(), st.booleans(),
                       st.none(), st.floats(allow_nan=False),
                       _TIMESTAMPS.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
                       _TIMESTAMPS.map(lambda d: d.isoformat()),
                       _TIMESTAMPS.map(lambda d: d.astimezone(
                           __import__("datetime").timezone(timedelta(hours=5))).isoformat()),
                       st.just("2024-02-30T00:00:00Z"), st.just("2024-01-01t00:00:00z"),
                       st.just("\ud800")))
@settings(max_examples=600)
def test_canonical_bytes_is_encode_of_normalize(spec: FieldSpec, value: object) -> None:
    """Issue 15 fast path: ``FieldSpec.canonical_bytes`` (one step, canonical UTC
    timestamps taken as they are) gives the bytes ``encode(normalize(v))`` gives, and
    refuses exactly what it refuses, with the same error class and code."""
    assert _outcome(lambda: spec.canonical_bytes(value)) == _outcome(
        lambda: spec.encode(spec.normalize(value)))


@given(kind=st.sampled_from(["subject", "record", "legacy-record", "legacy-subject"]),
       raw=st.text(max_size=80))
def test_pseudonyms_are_hmac_sha256_under_the_secret(kind: str, raw: str) -> None:
    """Promise 7 with the keyed state copied per call: a pseudonym is still
    ``kind:hex(HMAC-SHA256(secret, kind NUL raw))``, the reference an auditor's
    custodian proof recomputes."""
    secret = b"\x07" * 32  # TEST-ONLY secret
    try:
        message = kind.encode() + b"\x00" + raw.encode()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            Pseudonymizer(secret).pseudonym(kind, raw)
        return
    expected = hmac.new(secret, message, "sha256").hexdigest()
    pseudonyms = Pseudonymizer(secret)
    assert pseudonyms.pseudonym(kind, raw) == f"{kind}:{expected}"
    assert pseudonyms.pseudonym(kind, raw) == f"{kind}:{expected}"  # the state is reusable
    assert pseudonyms.digest_hex(kind, raw) == expected


@given(parts=st.lists(st.text(max_size=40), min_size=4, max_size=4))
def test_a_record_prefix_from_its_collection_head_is_the_field_aad_prefix(
        parts: list[str]) -> None:
    """Promise 2 with the AAD head computed once per subject and collection: the
    prefix built from it is byte-for-byte ``field_aad_prefix``."""
    jurisdiction, subject, collection, record_id = parts
    try:
        expected = field_aad_prefix(jurisdiction, subject, collection, record_id)
    except UnicodeEncodeError:
        return
    head = collection_aad_head(jurisdiction, subject, collection)
    assert record_aad_prefix(head, record_id) == expected


@given(items=st.lists(st.tuples(st.binary(max_size=64), st.binary(max_size=64)), max_size=8))
def test_seal_many_seals_each_value_under_its_own_nonce(
        items: list[tuple[bytes, bytes]]) -> None:
    """Promise 2 with one getrandom per record: every value ``seal_many`` gives opens
    with ``open_sealed`` under its own AAD only, and no two share a nonce."""
    aead = AESGCM(os.urandom(32))
    sealed = seal_many(aead, items)
    assert [open_sealed(aead, s, aad) for s, (_, aad) in zip(sealed, items, strict=True)] == [
        p for p, _ in items]
    nonces = [s[1:13] for s in sealed]
    assert len(set(nonces)) == len(nonces)
    for s, (_, aad) in zip(sealed, items, strict=True):
        with pytest.raises(BordergateError):
            open_sealed(aead, s, aad + b"x")


@given(version=st.integers(min_value=1, max_value=10**6),
       at=st.floats(min_value=0, max_value=2**33, allow_nan=False),
       now=st.floats(min_value=0, max_value=2**33, allow_nan=False),
       kind=st.sampled_from(list(KeyEventKind)))
def test_key_event_entries_from_the_template_equal_the_reference(
        version: int, at: float, now: float, kind: KeyEventKind) -> None:
    """Issue 15 fast path: a migration's ``key-event`` entry from the template is
    byte-for-byte ``key_event_entry`` with the migration's gateway and reason."""
    pseudonyms = Pseudonymizer(b"\x05" * 32)  # TEST-ONLY secret
    entries = KeyEventEntries("eu", pseudonyms)
    for subject in (SubjectId.mint("eu"), SubjectId.mint("eu")):
        event = KeyEvent(kind, "eu", version, at, subject)
        assert entries.entry(event, now) == key_event_entry(
            event, pseudonyms.subject, now, {"gateway": "eu", "reason": "migration"})


def _records(subject: SubjectId, count: int, rnd: random.Random
             ) -> list[tuple[str, str, SubjectId, dict[str, bytes]]]:
    return [("watch_history", f"m1-{rnd.getrandbits(64):016x}", subject,
             {"title": os.urandom(30)}) for _ in range(count)]


def test_a_bulk_batch_with_a_record_of_another_subject_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 15 fast path, promise 1: a bulk ``put_batch`` (sorted, no lookup per
    record) that meets an existing record of another subject falls back to the
    checked path and refuses with ``record_owner_mismatch``; nothing of the batch is
    written.  Re-storing a subject's own records replaces their fields."""
    store = SqliteRecordStore(tmp_path / "s.db", jurisdiction="eu")
    rnd = random.Random(5)
    alice, bob = SubjectId.mint("eu"), SubjectId.mint("eu")
    first = _records(alice, 1500, rnd)
    store.put_batch([], first)
    clash = [*_records(bob, 1500, rnd), (first[7][0], first[7][1], bob, {"title": b"x"})]
    with pytest.raises(Conflict) as raised:
        store.put_batch([], clash)
    assert raised.value.code == "record_owner_mismatch"
    assert [r.record_id for r in store.subject_records(bob)] == []
    again = [(c, r, s, {"title": b"new"}) for c, r, s, _ in first]
    store.put_batch([], again)
    assert store.get_record(first[7][0], first[7][1], ["title"]).fields == {"title": b"new"}
    assert len(store.subject_records(alice)) == 1500
    store.close()

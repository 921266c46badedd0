"""The vault end to end: validation before writing, sealing, AAD binding, aggregates."""

from __future__ import annotations

import pytest

from bordergate.errors import Conflict, InvalidInput, NotFound, VerificationError, WrongJurisdiction
from bordergate.keys.events import KeyEventKind
from bordergate.residency.schema import Schema
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId
from tests.residency.conftest import StoreFactory, make_vault

USER = {"handle": "alice", "email": "alice@example.com", "phone": "+15550100",
        "country": "US", "created_at": "2024-05-01T12:00:00Z", "government_id": "X123"}


def _nothing_written(vault: Vault) -> None:
    for name in vault.schema.collections:
        assert vault.store.group_count(name, None) == []
    assert vault.store.data_key_counts() == {}


def test_round_trip_returns_only_fields_asked_for(vault: Vault) -> None:
    """Promise 1: values round-trip; only the fields asked for are opened and returned."""
    alice = vault.mint_subject()
    events = vault.put("users", "u1", alice, USER)
    assert [e.kind for e in events] == [KeyEventKind.DATA_KEY_CREATED]
    got = vault.get("users", "u1", ["email", "country", "birth_date"])
    assert got.subject == alice
    assert got.values == {"email": "alice@example.com", "country": "US"}
    assert vault.get("users", "u1").values == USER
    assert vault.owner("users", "u1") == alice
    assert vault.put("users", "u2", str(alice), USER) == []  # key exists: no new event
    assert [r.record_id for r in vault.records_of(alice)] == ["u1", "u2"]
    vault.delete("users", "u2")
    with pytest.raises(NotFound):
        vault.get("users", "u2")


def test_public_only_record_needs_no_data_key(vault: Vault) -> None:
    """Promise 1: public fields are stored in clear; no data key is created for them."""
    bob = vault.mint_subject()
    assert vault.put("profiles", "p1", bob, {"display_name": "Bob",
                                             "private_account": False}) == []
    assert vault.store.get_record("profiles", "p1", ["display_name"]).fields == {
        "display_name": b"Bob"}
    assert vault.store.data_key_counts() == {}


def test_erasure_never_claims_more_than_it_did(vault: Vault) -> None:
    """Promise 8 (issue 11 item 6): on every store an erasure that destroyed a data key
    answers ``until_kek_destroyed`` with the KEK version that wrapped it (copies taken
    before stay openable until then); a subject without a key has nothing sealed left."""
    alice, bob = vault.mint_subject(), vault.mint_subject()
    vault.put("users", "u1", alice, USER)
    vault.put("profiles", "p1", bob, {"display_name": "Bob", "private_account": False})
    report = vault.erase(alice)
    assert (report.records, report.data_key_destroyed) == (1, True)
    assert (report.residue, report.residue_kek_version) == ("until_kek_destroyed", 1)
    vault.keyring.rotate()
    carol = vault.mint_subject()
    vault.put("users", "u2", carol, USER)
    later = vault.erase(carol)
    assert (later.residue, later.residue_kek_version) == ("until_kek_destroyed", 2)
    public_only = vault.erase(bob)
    assert (public_only.records, public_only.data_key_destroyed) == (1, False)
    assert (public_only.residue, public_only.residue_kek_version) == ("none", None)


BAD_PUTS = {
    "malformed-subject": ("users", "u1", "us-nope", USER, "malformed_subject_id"),
    "malformed-record-id": ("users", "u/1", None, USER, "malformed_record_id"),
    "unknown-collection": ("friends", "u1", None, USER, "unknown_collection"),
    "unknown-field": ("users", "u1", None, {**USER, "ssn": "1"}, "unknown_field"),
    "wrong-type": ("users", "u1", None, {**USER, "email": 42}, "wrong_type"),
    "oversize": ("users", "u1", None, {**USER, "email": "a" * 255}, "value_too_large"),
    "missing-field": ("users", "u1", None, {"handle": "x"}, "missing_field"),
}


@pytest.mark.parametrize("case", BAD_PUTS.values(), ids=BAD_PUTS.keys())
def test_bad_input_has_a_stable_code_and_writes_nothing(
        vault: Vault, case: tuple[str, str, str | None, dict[str, object], str]) -> None:
    """Behaviour: malformed ids, unknown field, wrong type, oversize: clear code, no write."""
    collection, record_id, subject, values, code = case
    with pytest.raises(InvalidInput) as info:
        vault.put(collection, record_id, subject or vault.mint_subject(), values)
    assert info.value.code == code
    _nothing_written(vault)


def test_foreign_subject_refused_by_the_vault(vault: Vault) -> None:
    """Promise 1: the US vault refuses to store, list or erase an EU subject."""
    eu = SubjectId.mint("eu")
    for call in (lambda: vault.put("users", "u1", eu, USER), lambda: vault.erase(eu),
                 lambda: vault.records_of(eu)):
        with pytest.raises(WrongJurisdiction) as info:
            call()
        assert info.value.home == "eu"
    _nothing_written(vault)


def test_bad_reads(vault: Vault) -> None:
    """Behaviour: reads of unknown fields, collections or malformed ids have stable codes."""
    vault.put("users", "u1", vault.mint_subject(), USER)
    cases = {"unknown_field": lambda: vault.get("users", "u1", ["ssn"]),
             "unknown_collection": lambda: vault.get("friends", "u1"),
             "malformed_record_id": lambda: vault.get("users", "../u1"),
             "record_not_found": lambda: vault.get("users", "u9")}
    for code, call in cases.items():
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.code == code


def test_other_subject_cannot_overwrite(vault: Vault) -> None:
    """Promise 1: a record id belongs to one subject; a put for another is a Conflict."""
    vault.put("users", "u1", vault.mint_subject(), USER)
    with pytest.raises(Conflict) as info:
        vault.put("users", "u1", vault.mint_subject(), USER)
    assert info.value.code == "record_owner_mismatch"
    assert vault.store.data_key_counts() == {1: 1}


def test_ciphertext_moved_to_another_field_or_record_fails(vault: Vault) -> None:
    """Promise 1: a ciphertext copied into another field, record or subject does not open."""
    alice, bob = vault.mint_subject(), vault.mint_subject()
    vault.put("users", "a", alice, USER)
    vault.put("users", "a2", alice, {**USER, "email": "other@example.com"})
    vault.put("users", "b", bob, {**USER, "email": "bob@example.com"})
    email = vault.store.get_record("users", "a", ["email"]).fields["email"]

    def tamper(record_id: str, subject: SubjectId, field: str) -> None:
        raw = vault.store.get_record("users", record_id, list(vault.schema.collection(
            "users").fields)).fields
        vault.store.put_record("users", record_id, subject, {**raw, field: email})

    tamper("a", alice, "phone")   # another field of the same record
    tamper("a2", alice, "email")  # the same field of another record of the same subject
    tamper("b", bob, "email")     # another subject's record
    for record_id, field in (("a", "phone"), ("a2", "email"), ("b", "email")):
        with pytest.raises(VerificationError) as info:
            vault.get("users", record_id, [field])
        assert info.value.code == "decryption_failed"
    assert vault.get("users", "a", ["email"]).values["email"] == "alice@example.com"


def test_aggregates_for_k_anonymous_exports(vault: Vault) -> None:
    """Behaviour: counts of records and distinct subjects, grouped in the store or in process."""
    countries = ["US"] * 5 + ["CA"] * 2 + ["MX"]
    for i, country in enumerate(countries):
        subject = vault.mint_subject()
        vault.put("users", f"u{i}", subject, {**USER, "country": country,
                                              "phone": "+1" if i % 2 else "+52"})
    public = vault.aggregate("users", "country", min_subjects=2)
    assert [(g.value, g.records, g.subjects) for g in public.groups] == [("CA", 2, 2),
                                                                         ("US", 5, 5)]
    assert public.suppressed == 1
    protected = vault.aggregate("users", "phone")
    assert {g.value: g.subjects for g in protected.groups} == {"+1": 4, "+52": 4}
    (total,) = vault.aggregate("users").groups
    assert (total.records, total.subjects) == (8, 8)
    with pytest.raises(InvalidInput):
        vault.aggregate("users", "nope")


def test_stale_cache_after_erase_and_recreate_elsewhere(store_factory: StoreFactory,
                                                        demo_schema: Schema) -> None:
    """Promise 8: a worker with a cached key of an erased subject never misreads new data."""
    store = store_factory("us")
    first = make_vault(demo_schema, store)
    second = Vault(demo_schema, store, type(first.keyring)(
        first.keyring._backend, store))
    alice = first.mint_subject()
    first.put("users", "u1", alice, USER)
    assert second.get("users", "u1", ["email"]).values  # second caches alice's key
    first.erase(alice)
    with pytest.raises(NotFound):
        second.get("users", "u1")
    first.put("users", "u1", alice, {**USER, "email": "new@example.com"})  # new data key
    assert second.get("users", "u1", ["email"]).values == {"email": "new@example.com"}
    second.put("users", "u2", alice, USER)  # the writer checks the stored key id
    assert first.get("users", "u2", ["email"]).values == {"email": USER["email"]}

"""One record-store contract, run on the memory twin, SQLite and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.errors import ConfigError, Conflict, NotFound, Unavailable, WrongJurisdiction
from bordergate.keys.keyring import WrappedDataKey
from bordergate.residency.stores import RecordRef, open_record_store
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.subjects import SubjectId
from tests.residency.conftest import StoreFactory


def test_put_get_selected_fields_owner_delete(store_factory: StoreFactory) -> None:
    """Promise 1: a store returns only the fields asked for, and knows each record's owner."""
    store = store_factory("us")
    alice = SubjectId.mint("us")
    store.put_record("users", "u1", alice, {"a": b"1", "b": b"2", "c": b"3"})
    got = store.get_record("users", "u1", ["a", "c", "missing"])
    assert got.subject == alice and got.fields == {"a": b"1", "c": b"3"}
    assert store.get_record("users", "u1", []).fields == {}
    assert store.owner("users", "u1") == alice
    store.put_record("users", "u1", alice, {"b": b"9"})  # whole replacement
    assert store.get_record("users", "u1", ["a", "b"]).fields == {"b": b"9"}
    store.delete_record("users", "u1")
    for call in (lambda: store.get_record("users", "u1", ["a"]),
                 lambda: store.owner("users", "u1"),
                 lambda: store.delete_record("users", "u1")):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.code == "record_not_found"


def test_owners_of_many_records_in_one_round(store_factory: StoreFactory) -> None:
    """Issue 15 (bulk lookups of the migration's legacy-id map): ``owners`` gives the
    owner of each record that exists, across query chunks, in the asked collection
    only, and leaves out the ids that do not exist."""
    store = store_factory("us")
    alice, bob = SubjectId.mint("us"), SubjectId.mint("us")
    ids = [f"r{i:04d}" for i in range(2000)]
    store.put_batch([], [("users", r, alice if i % 2 else bob, {"a": b"1"})
                         for i, r in enumerate(ids)])
    store.put_record("other", "r0001", bob, {"a": b"1"})
    asked = [*ids[::3], "missing", "r9999"]
    found = store.owners("users", asked)
    assert found == {r: (alice if int(r[1:]) % 2 else bob) for r in ids[::3]}
    assert store.owners("users", []) == {}
    assert store.owners("other", ["r0001", "r0002"]) == {"r0001": bob}


def test_foreign_subject_is_refused_and_nothing_written(store_factory: StoreFactory) -> None:
    """Promise 1: a US store refuses an EU subject's record and data key; nothing is written."""
    store = store_factory("us")
    eu = SubjectId.mint("eu")
    with pytest.raises(WrongJurisdiction) as info:
        store.put_record("users", "u1", eu, {"a": b"1"})
    assert info.value.home == "eu"
    with pytest.raises(WrongJurisdiction):
        store.add_data_key(WrappedDataKey(eu, b"k" * 16, 1, b"w" * 61))
    with pytest.raises(WrongJurisdiction):
        store.erase_subject(eu)
    with pytest.raises(WrongJurisdiction):
        store.subject_records(eu)
    assert store.group_count("users", None) == []
    assert store.data_key_counts() == {}


def test_record_owned_by_another_subject(store_factory: StoreFactory) -> None:
    """Promise 1: records belong to exactly one subject; another cannot overwrite them."""
    store = store_factory("us")
    alice, bob = SubjectId.mint("us"), SubjectId.mint("us")
    store.put_record("users", "u1", alice, {"a": b"1"})
    with pytest.raises(Conflict) as info:
        store.put_record("users", "u1", bob, {"a": b"2"})
    assert info.value.code == "record_owner_mismatch"
    assert store.get_record("users", "u1", ["a"]) .fields == {"a": b"1"}


def test_list_erase_and_aggregate(store_factory: StoreFactory) -> None:
    """Promise 8: erasing a subject removes its data key and every row, nothing else."""
    store = store_factory("us")
    alice, bob = SubjectId.mint("us"), SubjectId.mint("us")
    store.add_data_key(WrappedDataKey(alice, b"a" * 16, 1, b"A" * 61))
    store.add_data_key(WrappedDataKey(bob, b"b" * 16, 1, b"B" * 61))
    for i in range(3):
        store.put_record("videos", f"a{i}", alice, {"visibility": b"public"})
    store.put_record("users", "alice", alice, {"country": b"US"})
    store.put_record("videos", "b0", bob, {"visibility": b"private"})
    store.put_record("videos", "b1", bob, {})
    assert store.subject_records(alice) == [RecordRef("users", "alice")] + [
        RecordRef("videos", f"a{i}") for i in range(3)]
    groups = {g.value: (g.records, g.subjects) for g in store.group_count("videos",
                                                                          "visibility")}
    assert groups == {b"public": (3, 1), b"private": (1, 1), None: (1, 1)}
    (total,) = store.group_count("videos", None)
    assert (total.records, total.subjects) == (5, 2)
    values = sorted((v.record_id, v.value) for v in store.field_values("videos", "visibility"))
    assert values[0] == ("a0", b"public") and ("b1", None) in values
    erased = store.erase_subject(alice)
    assert erased.records == 4
    assert erased.data_key == WrappedDataKey(alice, b"a" * 16, 1, b"A" * 61)
    assert store.get_data_key(alice) is None
    assert store.subject_records(alice) == []
    assert store.get_data_key(bob) is not None
    assert [r.record_id for r in store.subject_records(bob)] == ["b0", "b1"]
    again = store.erase_subject(alice)
    assert (again.records, again.data_key) == (0, None)


def test_data_key_table_contract(store_factory: StoreFactory) -> None:
    """Promise 8: data keys insert once, compare-and-swap on rewrap, page by subject id."""
    store = store_factory("us")
    subjects = sorted((SubjectId.mint("us") for _ in range(5)), key=str)
    keys = [WrappedDataKey(s, bytes([i]) * 16, 1, bytes([i]) * 61)
            for i, s in enumerate(subjects)]
    for key in keys:
        assert store.add_data_key(key) == key
    loser = WrappedDataKey(subjects[0], b"z" * 16, 1, b"z" * 61)
    assert store.add_data_key(loser) == keys[0]
    newer = WrappedDataKey(subjects[0], keys[0].key_id, 2, b"n" * 61)
    assert store.rewrap_data_key(keys[0], newer)
    assert not store.rewrap_data_key(keys[0], newer)  # stale
    assert store.data_key_counts() == {1: 4, 2: 1}
    page = store.data_keys_not_under(2, "", 2)
    assert page == keys[1:3]
    assert store.data_keys_not_under(2, str(page[-1].subject), 10) == keys[3:]


def test_store_bound_to_its_jurisdiction(tmp_path: Path) -> None:
    """Promise 1: a jurisdiction's database cannot be opened as another's."""
    SqliteRecordStore(tmp_path / "us.db", jurisdiction="us").close()
    with pytest.raises(ConfigError) as info:
        SqliteRecordStore(tmp_path / "us.db", jurisdiction="eu")
    assert info.value.code == "store_jurisdiction_mismatch"


@pytest.mark.postgres
def test_postgres_bound_to_its_jurisdiction(postgres_url: str) -> None:
    """Promise 1: a PostgreSQL jurisdiction database cannot be opened as another's."""
    open_record_store(postgres_url, jurisdiction="us").close()
    with pytest.raises(ConfigError) as info:
        open_record_store(postgres_url, jurisdiction="eu")
    assert info.value.code == "store_jurisdiction_mismatch"


def test_sqlite_failures_surface_as_unavailable(tmp_path: Path) -> None:
    """Behaviour: an unusable SQLite store is Unavailable (503), never a sqlite3 error."""
    with pytest.raises(Unavailable) as info:
        SqliteRecordStore(tmp_path / "no" / "dir" / "us.db", jurisdiction="us")
    assert info.value.code == "store_unavailable"
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(Unavailable):
        SqliteRecordStore(tmp_path / "junk.db", jurisdiction="us")


@pytest.mark.postgres
def test_postgres_down_surfaces_as_unavailable(postgres_url: str) -> None:
    """Behaviour: an unreachable or stopped PostgreSQL is Unavailable, never a psycopg error."""
    from bordergate.residency.stores.postgres import PostgresRecordStore

    with pytest.raises(Unavailable) as info:
        PostgresRecordStore("postgresql://nobody@127.0.0.1:1/none", jurisdiction="us",
                            timeout=1.0)
    assert info.value.code == "store_unavailable"
    store = PostgresRecordStore(postgres_url, jurisdiction="us", timeout=1.0)
    store.close()
    with pytest.raises(Unavailable):
        store.owner("users", "u1")


def test_open_record_store_by_url(tmp_path: Path) -> None:
    """Behaviour: deployments name stores by URL; unknown schemes are a ConfigError."""
    store = open_record_store("sqlite:us.db", jurisdiction="us", base_dir=tmp_path)
    assert store.kind == "sqlite" and (tmp_path / "us.db").exists()
    store.close()
    assert open_record_store("memory:", jurisdiction="us").kind == "memory"
    with pytest.raises(ConfigError) as info:
        open_record_store("mysql://x", jurisdiction="us")
    assert info.value.code == "store_url"

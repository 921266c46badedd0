"""The SQLite store's record format (one row per record, its fields packed in one
value): what is written reads back byte for byte, bytes it did not write are refused
with a stable code, and a file of the earlier layout (one row per field) is converted
in place on first open with every record, owner and aggregate unchanged."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.errors import Unavailable
from bordergate.residency.stores import GroupCount, RecordRef
from bordergate.residency.stores.sqlite import (
    SqliteRecordStore,
    field_of,
    pack_fields,
    unpack_fields,
)
from bordergate.subjects import SubjectId

_names = st.text(min_size=1, max_size=40).filter(lambda name: "\x00" not in name)
_fields = st.dictionaries(_names, st.binary(max_size=300), max_size=12)


@given(_fields)
def test_packed_fields_read_back_exactly(fields: dict[str, bytes]) -> None:
    """Store round trip (promise 2's stored bytes unchanged): any names, any bytes,
    including empty values and non-ASCII names, come back equal and in order."""
    unpacked = unpack_fields(pack_fields(fields))
    assert unpacked == fields
    assert list(unpacked) == list(fields)


@given(_fields.filter(bool), st.data())
def test_a_truncated_or_extended_record_is_refused(fields: dict[str, bytes],
                                                    data: st.DataObject) -> None:
    """Fail closed: a packed record cut short, or with bytes appended, is never read as
    some other set of fields; it is ``store_unavailable``."""
    packed = pack_fields(fields)
    cut = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    for damaged in (packed[:cut], packed + b"\x00"):
        with pytest.raises(Unavailable) as raised:
            unpack_fields(damaged)
        assert raised.value.code == "store_unavailable"


def test_an_unknown_format_byte_is_refused() -> None:
    """Fail closed: a value of another format is not guessed at."""
    with pytest.raises(Unavailable) as raised:
        unpack_fields(b"\x01" + pack_fields({"a": b"1"})[1:])
    assert raised.value.code == "store_unavailable"


@pytest.mark.parametrize("name", ["", "a\x00b"])
def test_a_name_the_format_cannot_hold_is_refused_when_packing(name: str) -> None:
    """Nothing is written that would not read back: an empty name or one holding NUL
    (schema field names are identifiers, so neither reaches the store) is refused."""
    with pytest.raises(ValueError):
        pack_fields({name: b"1"})


def _earlier_layout(path: Path, alice: str, bob: str) -> None:
    """A store file as the earlier layout wrote it: one ``record_fields`` row per field."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("""
        PRAGMA journal_mode = WAL;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE records (
            collection TEXT NOT NULL, record_id TEXT NOT NULL, subject_id TEXT NOT NULL,
            PRIMARY KEY (collection, record_id)) WITHOUT ROWID;
        CREATE INDEX records_by_subject ON records (subject_id);
        CREATE TABLE record_fields (
            collection TEXT NOT NULL, record_id TEXT NOT NULL, field TEXT NOT NULL,
            value BLOB NOT NULL, PRIMARY KEY (collection, record_id, field)) WITHOUT ROWID;
        CREATE TABLE data_keys (
            subject_id TEXT PRIMARY KEY, key_id BLOB NOT NULL, kek_version INTEGER NOT NULL,
            wrapped BLOB NOT NULL) WITHOUT ROWID;
        INSERT INTO meta VALUES ('jurisdiction', 'us');
    """)
    db.executemany("INSERT INTO records VALUES (?, ?, ?)",
                   [("profiles", "p1", alice), ("profiles", "p2", bob),
                    ("profiles", "p3", bob), ("videos", "v1", alice)])
    db.executemany("INSERT INTO record_fields VALUES (?, ?, ?, ?)",
                   [("profiles", "p1", "language", b"de"), ("profiles", "p1", "bio", b"x"),
                    ("profiles", "p2", "language", b"de"), ("profiles", "p3", "language", b"fr"),
                    ("videos", "v1", "title", b"\x00\xff")])
    db.close()


def test_a_file_of_the_earlier_layout_is_converted_on_open(tmp_path: Path) -> None:
    """Upgrade without loss: every record keeps its owner and its stored bytes per
    field, a record with no field rows stays (with none), aggregates count the same,
    the per-field table is gone, and writing and erasing work on the converted file."""
    alice, bob = SubjectId.mint("us"), SubjectId.mint("us")
    path = tmp_path / "records.db"
    _earlier_layout(path, str(alice), str(bob))
    store = SqliteRecordStore(path, jurisdiction="us")
    try:
        assert store.get_record("profiles", "p1", ["language", "bio"]).fields == {
            "language": b"de", "bio": b"x"}
        assert store.get_record("videos", "v1", ["title"]).fields == {"title": b"\x00\xff"}
        assert store.owner("profiles", "p3") == bob
        assert sorted(store.group_count("profiles", "language"), key=lambda g: g.records) == [
            GroupCount(b"fr", 1, 1), GroupCount(b"de", 2, 2)]
        assert store.subject_records(alice) == [RecordRef("profiles", "p1"),
                                                RecordRef("videos", "v1")]
        store.put_record("profiles", "p4", alice, {"language": b"it"})
        assert store.erase_subject(bob).records == 2
    finally:
        store.close()
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "record_fields" not in tables
    assert db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("2",)
    db.close()
    reopened = SqliteRecordStore(path, jurisdiction="us")  # a second open changes nothing
    try:
        assert reopened.get_record("profiles", "p4", ["language"]).fields == {
            "language": b"it"}
    finally:
        reopened.close()


@given(_fields, _names)
def test_one_field_is_read_as_the_whole_record_reads_it(fields: dict[str, bytes],
                                                        name: str) -> None:
    """The aggregates' and exports' extractor (``bordergate_field``) gives exactly what
    unpacking the record gives for that field, ``None`` for a field it lacks."""
    packed = pack_fields(fields)
    assert field_of(packed, name) == fields.get(name)
    for present, value in fields.items():
        assert field_of(packed, present) == value


@given(_fields.filter(bool), st.data())
def test_the_extractor_refuses_a_damaged_record(fields: dict[str, bytes],
                                                data: st.DataObject) -> None:
    """Fail closed in aggregates too: a record cut anywhere (head, names or any value)
    is ``store_unavailable`` whichever field is asked for, never a shorter value nor
    an absent field (a cut inside the names once read as "absent")."""
    packed = pack_fields(fields)
    name = data.draw(st.sampled_from(list(fields)))
    cut = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    with pytest.raises(Unavailable) as raised:
        field_of(packed[:cut], name)
    assert raised.value.code == "store_unavailable"


def test_openers_of_a_file_of_the_earlier_layout_at_once_all_start(
        tmp_path: Path) -> None:
    """Upgrade without a race: eight openers of one file of the earlier layout at once
    (gateway workers starting together) all open it, and every record is there once;
    before, the ones that had seen the old layout but waited for the lock failed with
    ``store_unavailable`` (``no such table: record_fields``) in 6 of 10 tries."""
    for attempt in range(5):
        alice, bob = SubjectId.mint("us"), SubjectId.mint("us")
        path = tmp_path / f"records-{attempt}.db"
        _earlier_layout(path, str(alice), str(bob))
        start = threading.Barrier(8)
        failures: list[BaseException] = []

        def open_it(path: Path = path, start: threading.Barrier = start,
                    failures: list[BaseException] = failures) -> None:
            start.wait()
            try:
                SqliteRecordStore(path, jurisdiction="us").close()
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

        openers = [threading.Thread(target=open_it) for _ in range(8)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
        assert failures == []
        store = SqliteRecordStore(path, jurisdiction="us")
        try:
            assert store.subject_records(bob) == [RecordRef("profiles", "p2"),
                                                  RecordRef("profiles", "p3")]
            assert store.get_record("profiles", "p1", ["language"]).fields == {
                "language": b"de"}
        finally:
            store.close()

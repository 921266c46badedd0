"""RecordStore.put_batch (bulk imports, bordergate.migration): keys and records in one
transaction on every backend; any refusal writes nothing."""

from __future__ import annotations

import pytest

from bordergate.errors import Conflict, WrongJurisdiction
from bordergate.keys.keyring import WrappedDataKey
from bordergate.subjects import SubjectId
from tests.residency.conftest import StoreFactory


def _key(subject: SubjectId, tag: bytes = b"k") -> WrappedDataKey:
    return WrappedDataKey(subject, tag * 16, 1, b"wrapped-" + tag)


def test_put_batch_writes_keys_and_records_together(store_factory: StoreFactory) -> None:
    """Promises 1 and 3: a batch's data keys and records land together, readable after."""
    store = store_factory("us")
    a, b = SubjectId.mint("us"), SubjectId.mint("us")
    store.put_batch([_key(a), _key(b)], [("users", "r1", a, {"email": b"sealed-1"}),
                                          ("users", "r2", b, {"email": b"sealed-2"})])
    assert store.get_record("users", "r1", ["email"]).fields == {"email": b"sealed-1"}
    assert store.owner("users", "r2") == b
    assert store.get_data_key(a) == _key(a)
    store.put_batch([], [("users", "r1", a, {"phone": b"sealed-3"})])  # replaced wholly
    assert store.get_record("users", "r1", ["email", "phone"]).fields == {"phone": b"sealed-3"}


@pytest.mark.parametrize("fault", ["key_exists", "owner_mismatch", "foreign"])
def test_a_refused_batch_writes_nothing(store_factory: StoreFactory, fault: str) -> None:
    """Promise 1 and fail closed: a key that exists, a record of another subject or a
    subject homed elsewhere refuses the whole batch, and nothing of it is stored."""
    store = store_factory("us")
    a, fresh = SubjectId.mint("us"), SubjectId.mint("us")
    store.put_batch([_key(a)], [("users", "r1", a, {"email": b"x"})])
    keys = [_key(fresh, b"n")]
    records = [("users", "r2", fresh, {"email": b"y"})]
    if fault == "key_exists":
        keys.append(_key(a, b"z"))
    elif fault == "owner_mismatch":
        records.append(("users", "r1", fresh, {"email": b"z"}))
    else:
        records.append(("users", "r3", SubjectId.mint("eu"), {"email": b"z"}))
    with pytest.raises((Conflict, WrongJurisdiction)):
        store.put_batch(keys, records)
    assert store.get_data_key(fresh) is None
    assert store.subject_records(fresh) == []
    assert store.owner("users", "r1") == a

"""The key ring on every backend: data keys, cache, rotation, destruction, shredding, events."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bordergate.errors import ConfigError, Conflict, NotFound
from bordergate.keys.events import KeyEvent, KeyEventKind
from bordergate.keys.keyring import DataKeyCache, KeyRing, SubjectCipher
from bordergate.residency.schema import demo_schema_path, load_schema
from bordergate.residency.stores.memory import MemoryRecordStore
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId
from tests.keys.conftest import BackendFactory


def _ring(factory: BackendFactory, jurisdiction: str, **kw: object) -> KeyRing:
    ring = KeyRing(factory(jurisdiction), MemoryRecordStore(jurisdiction),
                   clock=lambda: 1_700_000_000.0, **kw)  # type: ignore[arg-type]
    ring.init()
    return ring


def _no_key_bytes(event: KeyEvent) -> None:
    fields = [getattr(event, name) for name in event.__slots__]
    assert all(isinstance(v, (str, int, float, SubjectId, KeyEventKind, type(None)))
               for v in fields)


def test_init_once(backend_factory: BackendFactory, jurisdiction: str) -> None:
    """Promise 8: init creates KEK v1 as an auditable event, and only once."""
    ring = KeyRing(backend_factory(jurisdiction), MemoryRecordStore(jurisdiction))
    with pytest.raises(ConfigError) as info:
        ring.cipher_for(SubjectId.mint(jurisdiction), create=True)
    assert info.value.code == "keys_not_initialised"
    event = ring.init()
    assert (event.kind, event.kek_version) == (KeyEventKind.KEK_CREATED, 1)
    with pytest.raises(Conflict) as err:
        ring.init()
    assert err.value.code == "keys_already_initialised"


def test_data_key_created_once_per_subject(backend_factory: BackendFactory,
                                           jurisdiction: str) -> None:
    """Promise 1: each subject gets its own data key, created once, with an event."""
    ring = _ring(backend_factory, jurisdiction)
    alice, bob = SubjectId.mint(jurisdiction), SubjectId.mint(jurisdiction)
    a1, event = ring.cipher_for(alice, create=True)
    assert event is not None and event.kind is KeyEventKind.DATA_KEY_CREATED
    assert event.subject == alice
    _no_key_bytes(event)
    a2, again = ring.cipher_for(alice, create=True)
    assert again is None and a2.key_id == a1.key_id
    b1, _ = ring.cipher_for(bob, create=True)
    sealed = a1.seal(b"x", b"aad")
    assert a2.open(sealed, b"aad") == b"x"
    with pytest.raises(Exception):  # noqa: B017 -- bob's key must not open alice's value
        b1.open(sealed, b"aad")
    with pytest.raises(NotFound) as info:
        ring.cipher_for(SubjectId.mint(jurisdiction))
    assert info.value.code == "no_data_key"


def test_rotation_rewraps_everything_and_old_version_can_go(backend_factory: BackendFactory,
                                                            jurisdiction: str) -> None:
    """Promise 8: rotation re-wraps every data key; old data stays readable; v1 destroyable."""
    ring = _ring(backend_factory, jurisdiction)
    subjects = [SubjectId.mint(jurisdiction) for _ in range(7)]
    sealed = {s: ring.cipher_for(s, create=True)[0].seal(b"v-" + str(s).encode(), b"a")
              for s in subjects}
    with pytest.raises(Conflict) as info:
        ring.destroy_version(1)
    assert info.value.code == "kek_version_current"
    created, rotated = ring.rotate()
    assert (created.kind, created.kek_version) == (KeyEventKind.KEK_CREATED, 2)
    assert (rotated.kind, rotated.count) == (KeyEventKind.KEK_ROTATED, 7)
    assert ring.status().data_keys == {2: 7}
    destroyed = ring.destroy_version(1)
    assert destroyed.kind is KeyEventKind.KEK_DESTROYED
    assert len(ring.cache) == 0  # evicted: they were unwrapped under v1
    for subject, value in sealed.items():
        cipher, _ = ring.cipher_for(subject)
        assert cipher.kek_version == 2
        assert cipher.open(value, b"a") == b"v-" + str(subject).encode()
    for event in (created, rotated, destroyed):
        _no_key_bytes(event)


def test_destroy_refused_while_a_data_key_still_uses_it(backend_factory: BackendFactory,
                                                        jurisdiction: str) -> None:
    """Promise 8: a KEK version that still wraps a data key cannot be destroyed."""
    backend = backend_factory(jurisdiction)
    store = MemoryRecordStore(jurisdiction)
    ring = KeyRing(backend, store)
    ring.init()
    ring.cipher_for(SubjectId.mint(jurisdiction), create=True)
    backend.create_version()  # a new version without re-wrapping
    with pytest.raises(Conflict) as info:
        ring.destroy_version(1)
    assert info.value.code == "kek_version_in_use"
    assert ring.rewrap().count == 1
    ring.destroy_version(1)


def test_cache_is_bounded_lru() -> None:
    """Behaviour: the unwrapped-key cache never holds more than its bound, LRU first out."""
    cache = DataKeyCache(3)
    ciphers = [SubjectCipher(SubjectId.mint("us"), b"k" * 16, 1, bytes(32)) for _ in range(5)]
    for c in ciphers[:3]:
        cache.put(c)
    assert cache.get(str(ciphers[0].subject)) is ciphers[0]  # now most recent
    cache.put(ciphers[3])
    cache.put(ciphers[4])
    assert len(cache) == 3
    assert cache.get(str(ciphers[1].subject)) is None
    assert cache.get(str(ciphers[2].subject)) is None
    assert cache.get(str(ciphers[0].subject)) is ciphers[0]
    cache.evict_version(1)
    assert len(cache) == 0
    assert repr(ciphers[0]).count("us-") == 1 and "0000" not in repr(ciphers[0])


def test_erase_evicts_the_cache_and_the_key_is_gone(backend_factory: BackendFactory,
                                                    jurisdiction: str) -> None:
    """Promise 8: after a shred, neither the cache nor the store can give the key back."""
    ring = _ring(backend_factory, jurisdiction)
    store = ring._store  # the memory twin the ring was built with
    alice = SubjectId.mint(jurisdiction)
    ring.cipher_for(alice, create=True)
    schema = load_schema(demo_schema_path())
    vault = Vault(schema, store, ring)  # type: ignore[arg-type]
    report = vault.erase(alice)
    assert report.data_key_destroyed
    (event,) = report.events
    assert event.kind is KeyEventKind.SUBJECT_SHREDDED and event.subject == alice
    assert ring.cache.get(str(alice)) is None
    with pytest.raises(NotFound):
        ring.cipher_for(alice)


def test_concurrent_first_writes_agree_on_one_key(backend_factory: BackendFactory,
                                                  jurisdiction: str) -> None:
    """Promise 1: racing writers of a new subject end up with one stored data key."""
    ring = _ring(backend_factory, jurisdiction)
    other = KeyRing(backend_factory(jurisdiction), ring._store)
    alice = SubjectId.mint(jurisdiction)
    results: list[bytes] = []

    def write(r: KeyRing) -> None:
        results.append(r.cipher_for(alice, create=True)[0].key_id)

    threads = [threading.Thread(target=write, args=(r,)) for r in (ring, other) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and len(set(results)) == 1


def test_event_entry_pseudonymises_the_subject() -> None:
    """Promise 7: a key event's log form carries a pseudonym, never the raw subject id."""
    alice = SubjectId.mint("us")
    event = KeyEvent(KeyEventKind.SUBJECT_SHREDDED, "us", 3, 1_700_000_000.0, alice)
    entry = event.to_entry(lambda raw: "p:" + str(len(raw)))
    assert entry == {"event": "subject-shredded", "jurisdiction": "us", "kek_version": 3,
                     "at": "2023-11-14T22:13:20Z", "subject": "p:29"}
    assert str(alice) not in repr(entry)


def test_vault_on_sqlite_with_each_backend(backend_factory: BackendFactory, jurisdiction: str,
                                           tmp_path: Path) -> None:
    """Promises 1 and 8: the whole vault life cycle runs the same on every key backend."""
    from bordergate.residency.stores.sqlite import SqliteRecordStore

    store = SqliteRecordStore(tmp_path / "j.db", jurisdiction=jurisdiction)
    ring = KeyRing(backend_factory(jurisdiction), store)
    ring.init()
    vault = Vault(load_schema(demo_schema_path()), store, ring)
    alice = vault.mint_subject()
    values = {"amount_minor": 499, "currency": "USD", "paid_at": "2024-02-29T23:59:59Z",
              "tax_id": "123-45-6789"}
    vault.put("payments", "p1", alice, values)
    ring.rotate()
    ring.destroy_version(1)
    ring.cache.evict(str(alice))
    assert vault.get("payments", "p1").values == values
    report = vault.erase(alice)
    assert report.data_key_destroyed and report.residue == "until_kek_destroyed"
    assert report.residue_kek_version == 2  # wrapped under v2 since the rotation
    assert b"123-45-6789" not in (tmp_path / "j.db").read_bytes()
    store.close()

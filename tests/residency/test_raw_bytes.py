"""Raw-byte proofs on real SQLite files and a real PostgreSQL cluster's files.

Promise 1: a protected or restricted value never appears in clear in any file
of the store.  Promise 8: after erasure, no stored byte of the subject can be
decrypted, even by someone holding the KEK.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from bordergate.errors import NotFound, VerificationError
from bordergate.keys.backends.memory import MemoryKeyBackend
from bordergate.keys.envelope import data_key_aad, field_aad, open_sealed
from bordergate.keys.keyring import KeyRing
from bordergate.residency.schema import Schema
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.residency.vault import Vault
from bordergate.subjects import SubjectId
from tests.postgres_server import PostgresServer
from tests.residency.conftest import TEST_SEED


def _marked_records(vault: Vault, subject: SubjectId,
                    tag: str = "1") -> tuple[list[bytes], list[bytes]]:
    """Write every collection with unique markers; return (secret markers, public markers)."""
    secret, public = [], []
    for name, coll in vault.schema.collections.items():
        values: dict[str, object] = {}
        for spec in coll.fields.values():
            if spec.type.value != "string":
                continue
            marker = "M" + secrets.token_hex(max(1, min(spec.max_length, 24) // 2 - 1))
            marker = marker[: spec.max_length] if spec.max_length >= 8 else ""
            if not marker:
                continue
            values[spec.name] = marker
            (secret if spec.field_class.encrypted else public).append(marker.encode())
        full = {**_required_defaults(vault.schema, name), **values}
        vault.put(name, f"{name}-{tag}", subject, full)
    return secret, public


def _required_defaults(schema: Schema, collection: str) -> dict[str, object]:
    defaults: dict[str, object] = {}
    for spec in schema.collection(collection).fields.values():
        if spec.required:
            defaults[spec.name] = {"string": "x", "integer": 1, "boolean": True,
                                   "timestamp": "2024-01-01T00:00:00Z"}[spec.type.value]
    return defaults


def _sqlite_files(store: SqliteRecordStore) -> bytes:
    files = [store.path, Path(f"{store.path}-wal"), Path(f"{store.path}-shm")]
    return b"".join(p.read_bytes() for p in files if p.exists())


def _sqlite_vault(tmp_path: Path, schema: Schema) -> tuple[Vault, MemoryKeyBackend]:
    store = SqliteRecordStore(tmp_path / "us.db", jurisdiction="us")
    backend = MemoryKeyBackend("us", seed=TEST_SEED)  # test-only KEK
    ring = KeyRing(backend, store)
    ring.init()
    return Vault(schema, store, ring), backend


def test_sqlite_file_never_holds_a_protected_value_in_clear(tmp_path: Path,
                                                            demo_schema: Schema) -> None:
    """Promise 1: scan the SQLite file, WAL and shm: no protected value, public ones present."""
    vault, _ = _sqlite_vault(tmp_path, demo_schema)
    secret, public = _marked_records(vault, vault.mint_subject())
    assert secret and public
    for data in (_sqlite_files(vault.store),):  # before checkpoint (in the WAL)
        assert all(p in data for p in public)  # the scan does see stored bytes
        assert not [s for s in secret if s in data]
    vault.store.close()
    data = _sqlite_files(vault.store)  # after close: everything checkpointed into the file
    assert all(p in data for p in public)
    assert not [s for s in secret if s in data]


def test_sqlite_erasure_leaves_nothing_decryptable(tmp_path: Path,
                                                   demo_schema: Schema) -> None:
    """Promise 8: after erasure the wrapped key and ciphertexts are gone from the file
    (secure_delete, WAL truncated), and captured ciphertexts open under no key we hold."""
    vault, backend = _sqlite_vault(tmp_path, demo_schema)
    alice, bob = vault.mint_subject(), vault.mint_subject()
    secret, _ = _marked_records(vault, alice)
    _marked_records(vault, bob, "2")
    wrapped = vault.store.get_data_key(alice)
    assert wrapped is not None
    captured = {(name, f): value for name, coll in demo_schema.collections.items()
                for f, value in vault.store.get_record(name, f"{name}-1", list(
                    coll.fields)).fields.items() if coll.fields[f].field_class.encrypted}
    before = _sqlite_files(vault.store)
    assert wrapped.wrapped in before and all(c in before for c in captured.values())

    report = vault.erase(alice)
    # Nothing is left in this file, but a copy taken before would still open: the
    # erasure is final only once KEK v1 is destroyed (tests/gateway/test_erasure.py).
    assert report.data_key_destroyed and report.residue == "until_kek_destroyed"
    assert report.residue_kek_version == 1
    assert report.records == len(demo_schema.collections)
    after = _sqlite_files(vault.store)
    assert wrapped.wrapped not in after
    assert wrapped.key_id not in after
    assert not [c for c in captured.values() if c in after]
    assert not [s for s in secret if s in after]
    # The KEK still exists, but no wrapped key of alice remains for it to open,
    with pytest.raises(NotFound):
        vault.keyring.cipher_for(alice)
    # and no data key the system still holds opens any captured ciphertext.
    _nothing_opens(vault, backend, captured, alice)


def _nothing_opens(vault: Vault, backend: MemoryKeyBackend,
                   captured: dict[tuple[str, str], bytes], subject: SubjectId) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    held = []
    after = ""
    while page := vault.store.data_keys_not_under(0, after, 100):
        for key in page:
            aad = data_key_aad("us", str(key.subject), key.kek_version)
            held.append(AESGCM(backend.unwrap(key.wrapped, aad, key.kek_version)))
        after = str(page[-1].subject)
    assert held  # other subjects' keys are still there
    for (collection, field), sealed in captured.items():
        aad = field_aad("us", str(subject), collection, f"{collection}-1", field)
        for aead in held:
            with pytest.raises(VerificationError):
                open_sealed(aead, sealed, aad)


def _cluster_bytes(server: PostgresServer, url: str) -> bytes:
    """CHECKPOINT, then read every file of the database and the cluster's WAL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()"
                           ).fetchone()
    assert row is not None
    files = [*(server.data / "base" / str(row[0])).iterdir(),
             *(server.data / "pg_wal").glob("0*")]
    return b"".join(p.read_bytes() for p in files if p.is_file())


@pytest.mark.postgres
def test_postgres_files_never_hold_a_protected_value_in_clear(
        postgres_server: PostgresServer, demo_schema: Schema) -> None:
    """Promise 1: scan the database's relation files and the WAL: no protected value."""
    from bordergate.residency.stores.postgres import PostgresRecordStore

    url = postgres_server.database(prefix="us")
    store = PostgresRecordStore(url, jurisdiction="us", pool_size=2)
    try:
        ring = KeyRing(MemoryKeyBackend("us", seed=TEST_SEED), store)
        ring.init()
        vault = Vault(demo_schema, store, ring)
        secret, public = _marked_records(vault, vault.mint_subject())
        data = _cluster_bytes(postgres_server, url)
        assert all(p in data for p in public)
        assert not [s for s in secret if s in data]
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_erasure_leaves_nothing_decryptable(postgres_server: PostgresServer,
                                                     demo_schema: Schema) -> None:
    """Promise 8: after erasure no data key opens the subject's ciphertexts; dead row
    versions of the wrapped key stay openable only until the KEK version is destroyed."""
    from bordergate.residency.stores.postgres import PostgresRecordStore

    url = postgres_server.database(prefix="us")
    store = PostgresRecordStore(url, jurisdiction="us", pool_size=2)
    try:
        backend = MemoryKeyBackend("us", seed=TEST_SEED)  # test-only KEK
        ring = KeyRing(backend, store)
        ring.init()
        vault = Vault(demo_schema, store, ring)
        alice, bob = vault.mint_subject(), vault.mint_subject()
        _marked_records(vault, alice)
        _marked_records(vault, bob, "2")
        wrapped = store.get_data_key(alice)
        assert wrapped is not None
        captured = {(name, f): v for name, coll in demo_schema.collections.items()
                    for f, v in store.get_record(name, f"{name}-1", list(coll.fields)
                                                 ).fields.items()
                    if coll.fields[f].field_class.encrypted}

        report = vault.erase(alice)
        assert report.residue == "until_kek_destroyed" and report.residue_kek_version == 1
        with pytest.raises(NotFound):
            vault.keyring.cipher_for(alice)
        _nothing_opens(vault, backend, captured, alice)
        # Dead tuples (or the WAL) may still hold the wrapped key: it is only as good
        # as KEK v1. Rotating and destroying v1 closes that residue for good.
        ring.rotate()
        ring.destroy_version(1)
        aad = data_key_aad("us", str(alice), 1)
        with pytest.raises(NotFound):
            backend.unwrap(wrapped.wrapped, aad, 1)
        assert vault.get("users", "users-2").subject == bob  # bob's data unaffected
        _nothing_opens(vault, backend, captured, alice)
    finally:
        store.close()

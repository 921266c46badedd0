"""Record-store and vault fixtures: the memory twin, SQLite files, real PostgreSQL databases.

TEST-ONLY keys: vaults here use the in-memory key backend with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bordergate.keys.backends.memory import MemoryKeyBackend
from bordergate.keys.keyring import KeyRing
from bordergate.residency.schema import Schema, demo_schema_path, load_schema
from bordergate.residency.stores import RecordStore
from bordergate.residency.stores.memory import MemoryRecordStore
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.residency.vault import Vault

TEST_SEED = b"bordergate residency test-only KEK seed"
StoreFactory = Callable[[str], RecordStore]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store of one kind per jurisdiction (same jurisdiction: same database)."""
    opened: list[RecordStore] = []
    urls: dict[str, str] = {}

    def make(jurisdiction: str) -> RecordStore:
        store: RecordStore
        if request.param == "memory":
            store = MemoryRecordStore(jurisdiction)
        elif request.param == "sqlite":
            store = SqliteRecordStore(tmp_path / f"{jurisdiction}.db", jurisdiction=jurisdiction)
        else:
            from bordergate.residency.stores.postgres import PostgresRecordStore

            if jurisdiction not in urls:
                server = request.getfixturevalue("postgres_server")
                urls[jurisdiction] = server.database(prefix=jurisdiction)
            store = PostgresRecordStore(urls[jurisdiction], jurisdiction=jurisdiction,
                                        pool_size=2)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def demo_schema() -> Schema:
    """The shipped short-video schema."""
    return load_schema(demo_schema_path())


def make_vault(schema: Schema, store: RecordStore, **kw: object) -> Vault:
    """A vault on ``store`` with a fresh, seeded (test-only) in-memory key ring."""
    ring = KeyRing(MemoryKeyBackend(store.jurisdiction, seed=TEST_SEED), store,
                   **kw)  # type: ignore[arg-type]
    ring.init()
    return Vault(schema, store, ring)


@pytest.fixture
def vault(store_factory: StoreFactory, demo_schema: Schema) -> Vault:
    """A US vault on each kind of store."""
    return make_vault(demo_schema, store_factory("us"))

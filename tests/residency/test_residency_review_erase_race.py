"""A write racing an erasure must not bring the erased subject's data back (promise 8).

Found by the residency review.  A write is logged, then carried out; an
erasure is logged, then carried out.  When a write's entry is sequenced before
an erasure's but its store change lands after the erasure's (a slow thread, a
key service answering late), the write used to re-create the subject: a new
data key and a readable record of a subject the gateway had just answered
``data_key_destroyed`` for, from a decision the log shows *before* the
erasure.  The store now keeps, per erased subject, the log index of its
erasure, and refuses a change whose entry is older (``subject_erased``, 409):
a write logged after the erasure (the subject written again) still lands.

The gateway is the real one (SQLite store, key file, Cedar, the sequencer) in
process, with its log on the in-memory twin, so that the test can hold the
write's store change until the erasure is done: the interleaving is the one a
busy gateway gives by chance.  Keys are TEST-ONLY (tests/gateway/deployment.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.errors import Conflict
from bordergate.gateway.app import create_app
from bordergate.gateway.service import Gateway, SequencerLog
from bordergate.gateway.startup import open_gateway
from bordergate.policy.entities import Principal
from bordergate.residency.schema import Schema
from bordergate.residency.stores import erasure_digest
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.subjects import SubjectId
from bordergate.tlog.storage.memory import MemoryStorage
from bordergate.tlog.tiles import TILE_WIDTH, TileRef, decode_bundle
from tests.gateway.deployment import Tokens, write_deployment
from tests.residency.conftest import StoreFactory, make_vault

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
LATE_EMAIL = "written-after-erasure@example.test"
LATE_GOV = "GOV-LATE-7731"


def _values(email: str, gov: str) -> dict[str, str]:
    return {"handle": "racer", "email": email, "created_at": "2024-01-01T00:00:00Z",
            "government_id": gov}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    deployment = load_config(write_deployment(tmp_path))
    gw = open_gateway(deployment, "us", log_storage=MemoryStorage())
    try:
        yield gw
    finally:
        gw.close()


def _hold_store_change(gw: Gateway, record_id: str) -> tuple[threading.Event, threading.Event]:
    """Hold the write of ``record_id`` as it reaches the store (its entry is already
    durable): the first event is set when it gets there, the second lets it go on."""
    reached, go_on = threading.Event(), threading.Event()
    store: Any = gw.vault.store
    owner = store.owner

    def held_owner(collection: str, rid: str) -> SubjectId:
        if rid == record_id and not go_on.is_set():
            reached.set()
            assert go_on.wait(20)
        result: SubjectId = owner(collection, rid)
        return result

    store.owner = held_owner
    return reached, go_on


def test_a_write_logged_before_an_erasure_cannot_bring_the_subject_back(
        gateway: Gateway) -> None:
    """Promise 8: after an erasure answered, no record or data key of the subject is
    left by a write whose entry the log holds before the erasure's; the write answers
    409 ``subject_erased``; a write logged after the erasure writes the subject again."""
    tokens = Tokens()
    auth = tokens.header(LOCAL, "us")
    reached, go_on = _hold_store_change(gateway, "late")

    async def main() -> dict[str, Any]:
        await gateway.announce_start(unreviewed=True, release=None)
        transport = httpx.ASGITransport(app=create_app(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            r = await c.post("/v1/subjects", headers=auth)
            subject = str(r.json()["subject"])
            r = await c.put("/v1/users/first", params={"purpose": "operations"},
                            headers=auth, json={"subject": subject,
                                                "values": _values("a@example.test", "G-1")})
            assert r.status_code == 200, r.text
            write = asyncio.create_task(c.put(
                "/v1/users/late", params={"purpose": "operations"}, headers=auth,
                json={"subject": subject, "values": _values(LATE_EMAIL, LATE_GOV)}))
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, reached.wait, 20), "write never ran"
            erased = await c.delete(f"/v1/subjects/{subject}", params={"purpose": "erasure"},
                                    headers=auth)
            go_on.set()
            late = await write
            read = await c.get("/v1/users/late", headers=auth,
                               params={"purpose": "operations", "fields": "email"})
            again = await c.put("/v1/users/again", params={"purpose": "operations"},
                                headers=auth, json={"subject": subject,
                                                    "values": _values("b@example.test", "G-2")})
            return {"subject": subject, "erased": erased, "late": late, "read": read,
                    "again": again}

    out = asyncio.run(main())
    erased, late = out["erased"], out["late"]
    assert erased.status_code == 200, erased.text
    assert erased.json()["data_key_destroyed"] is True
    # the race: the write's entry is in the log before the erasure's
    kinds = [(e.type, e.body.get("record")) for e in map(parse_entry, _entries(gateway))]
    erase_at = erased.json()["log"]["index"]
    writes = [i for i, (kind, _) in enumerate(kinds) if kind == "write"]
    assert len(writes) == 3 and writes[1] < erase_at < writes[2], kinds
    assert late.status_code == 409, late.text
    assert late.json()["code"] == "subject_erased"
    assert out["read"].status_code == 404, out["read"].text
    assert LATE_EMAIL not in out["read"].text
    # the store holds nothing the late write carried: only the record written afterwards
    refs = gateway.vault.store.subject_records(SubjectId.parse(out["subject"]))
    assert [r.record_id for r in refs] == ["again"], refs
    assert out["again"].status_code == 200, out["again"].text


def _entries(gw: Gateway) -> list[bytes]:
    """Every entry so far, from the published bundles of the in-memory log."""
    log = gw.log
    assert isinstance(log, SequencerLog)
    log.sequencer.publish()
    storage = log.sequencer.storage
    assert isinstance(storage, MemoryStorage)
    size, out = log.sequencer.size, []
    for index in range(size // TILE_WIDTH + 1):
        width = min(TILE_WIDTH, size - index * TILE_WIDTH)
        data = storage.objects.get(TileRef(-1, index, width).path) if width > 0 else None
        if data is not None:
            out += decode_bundle(data, width)
    return out


USER = {"handle": "store", "email": "store@example.test", "created_at": "2024-01-01T00:00:00Z",
        "government_id": "GOV-STORE-1"}


def test_every_store_refuses_a_change_logged_before_the_erasure(
        store_factory: StoreFactory, demo_schema: Schema) -> None:
    """Promise 8, on the memory, SQLite and PostgreSQL stores alike: after an erasure
    logged at index 7, a record or data key of the subject decided by entry 5 is
    refused (``subject_erased``, nothing written, no data key left), one decided by
    entry 9 (the subject written again) lands; only a digest of the id is kept."""
    store = store_factory("us")
    vault = make_vault(demo_schema, store)
    subject = vault.mint_subject()
    vault.put("users", "r1", subject, USER, logged_at=3)
    report = vault.erase(subject, logged_at=7)
    assert report.records == 1 and report.data_key_destroyed
    with pytest.raises(Conflict) as refused:
        vault.put("users", "r2", subject, USER, logged_at=5)
    assert refused.value.code == "subject_erased"
    assert store.subject_records(subject) == [] and store.get_data_key(subject) is None
    _, wrapped, _ = vault.keyring.new_data_key(subject)
    with pytest.raises(Conflict):
        store.add_data_key(wrapped, logged_at=6)
    assert store.get_data_key(subject) is None
    vault.put("users", "r3", subject, USER, logged_at=9)
    assert vault.get("users", "r3", ["email"]).values == {"email": USER["email"]}
    # a later erasure logged at a lower index (two workers) never lowers the mark
    vault.erase(subject, logged_at=12)
    vault.erase(subject, logged_at=11)
    with pytest.raises(Conflict):
        vault.put("users", "r4", subject, USER, logged_at=11)
    vault.put("users", "r4", subject, USER, logged_at=13)
    if isinstance(store, SqliteRecordStore):
        with sqlite3.connect(store.path) as conn:
            kept = [row[0] for row in conn.execute("SELECT subject_digest FROM erasures")]
        assert kept == [erasure_digest(subject)] and str(subject) not in kept[0]

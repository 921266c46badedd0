"""No blocking work on the gateway's event loop (issue 10, item 3).

Store, key-backend and fsync calls run on worker threads; only bounded point
reads that the vault declares cheap (``Vault.inline_point_reads``) run inline.
The behavioural check: while an export groups 100,000 subjects by a protected
field (every value opened in this process: seconds of work), single-record
reads served by the same event loop keep a p99 latency under 50 ms.  Had the
export run on the loop, every read would wait for all of it.

The 100,000 subjects are seeded straight into the jurisdiction's SQLite file
(wrapped data keys and sealed values made with the real key-file KEK and the
real envelope), which takes seconds where 100,000 gateway writes would take
minutes.  Keys are TEST-ONLY (tests/gateway/deployment.py).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from bordergate.config import load_config
from bordergate.gateway.app import create_app
from bordergate.gateway.startup import open_gateway
from bordergate.keys.envelope import data_key_aad, field_aad_prefix, field_aad_suffix
from bordergate.keys.keyring import SubjectCipher
from bordergate.policy.entities import Principal
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.residency.subjects import SubjectId
from bordergate.residency.vault import Vault
from bordergate.tlog.storage.memory import MemoryStorage
from tests.gateway.deployment import Tokens, write_deployment

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
SUBJECTS = 100_000
GENDERS = [f"g{i}" for i in range(8)]


def _seed_profiles(vault: Vault, count: int) -> list[str]:
    """``count`` subjects of ``us``, each with one ``profiles`` record (its id is the
    subject id) holding ``private_account`` (public) and a sealed ``gender``
    (protected), written in one SQLite transaction; returns the subject ids."""
    store = vault.store
    assert isinstance(store, SqliteRecordStore)
    backend = vault.keyring._backend  # the deployment's key-file KEK (TEST-ONLY)
    version = backend.versions()[-1]
    gender = vault.schema.collection("profiles").fields["gender"]
    records, fields, keys, ids = [], [], [], []
    for i in range(count):
        subject = SubjectId.mint("us")
        sid = str(subject)
        data_key, key_id = os.urandom(32), os.urandom(16)
        wrapped = backend.wrap(data_key, data_key_aad("us", sid, version), version)
        sealed = SubjectCipher(subject, key_id, version, data_key).seal(
            gender.encode(GENDERS[i % len(GENDERS)]),
            field_aad_prefix("us", sid, "profiles", sid) + field_aad_suffix("gender"))
        ids.append(sid)
        keys.append((sid, key_id, version, wrapped))
        records.append(("profiles", sid, sid))
        fields += [("profiles", sid, "gender", sealed),
                   ("profiles", sid, "private_account", b"1" if i % 2 else b"0")]
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO data_keys VALUES (?, ?, ?, ?)", keys)
        conn.executemany("INSERT INTO records VALUES (?, ?, ?)", records)
        conn.executemany("INSERT INTO record_fields VALUES (?, ?, ?, ?)", fields)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ids


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@pytest.mark.slow
def test_reads_stay_fast_while_an_export_over_100k_subjects_runs(tmp_path: Path) -> None:
    """Issue 10 item 3 (no blocking work on the event loop): while an export over
    100,000 subjects runs, concurrent single-record reads on the same gateway keep
    a p99 latency under 50 ms, and the export's counts are complete."""
    deployment = load_config(write_deployment(tmp_path))
    gateway = open_gateway(deployment, "us", log_storage=MemoryStorage())
    try:
        assert gateway.vault.inline_point_reads  # SQLite + key file: reads run inline
        subjects = _seed_profiles(gateway.vault, SUBJECTS)
        app = create_app(gateway)
        auth = Tokens().header(LOCAL, "us")
        rng = random.Random(10)

        async def read(client: httpx.AsyncClient) -> float:
            subject = rng.choice(subjects)
            started = time.perf_counter()
            r = await client.get(f"/v1/profiles/{subject}", headers=auth, params={
                "fields": "private_account,gender", "purpose": "operations"})
            elapsed = time.perf_counter() - started
            assert r.status_code == 200, r.text
            return elapsed

        async def main() -> tuple[httpx.Response, list[float], float]:
            await gateway.announce_start(unreviewed=True, release=None)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                for _ in range(20):  # warm the plan, decision and token caches
                    await read(client)
                started = time.perf_counter()
                export = asyncio.create_task(client.post("/v1/exports", headers=auth, json={
                    "collection": "profiles", "group_by": "gender",
                    "purpose": "analytics_aggregate", "min_subjects": 3}))
                latencies = []
                while not export.done():
                    latencies.append(await read(client))
                    await asyncio.sleep(0.002)
                return await export, latencies, time.perf_counter() - started

        answer, latencies, seconds = asyncio.run(main())
    finally:
        gateway.close()
    assert answer.status_code == 200, answer.text
    groups = answer.json()["groups"]
    assert sorted(g["value"] for g in groups) == GENDERS
    assert sum(g["subjects"] for g in groups) == SUBJECTS
    assert len(latencies) >= 50, f"the export took {seconds:.2f} s: too short to measure"
    assert _p99(latencies) < 0.050, (
        f"p99 {_p99(latencies) * 1000:.1f} ms over {len(latencies)} reads during a "
        f"{seconds:.1f} s export")

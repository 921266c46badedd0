"""Issue 11 item 6, "erasure overclaims": the attack and its fix, against real processes.

The attack: copy the store before an erasure (a backup, a copied SQLite file,
a ``pg_dump``); after the gateway answered ``residue: "none"``, open the copy
with the jurisdiction's unchanged KEK and read the erased subject's values.

The fix checked here (promise 8): the erasure answers ``until_kek_destroyed``
with the KEK version over HTTP; the copy indeed still opens (the answer is
true); ``bordergate keys rotate --destroy-old`` re-wraps the live keys,
destroys the old version, and logs ``kek-destroyed`` through the log's single
writer; after that the copy opens no more, live data still reads, and the
destruction is in the verified log.  On SQLite the gateway runs its own
sequencer (the command is refused while it holds the log, and runs once it is
stopped); on PostgreSQL the gateway sends to a sequencer service and the
command logs through the same service while the gateway keeps serving.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.config import Jurisdiction, load_config
from bordergate.entries import parse_entry
from bordergate.errors import NotFound
from bordergate.keys.backends.keyfile import LocalKeyFile
from bordergate.keys.keyring import KeyRing
from bordergate.log_access import log_verifier
from bordergate.policy.entities import Principal
from bordergate.residency.schema import demo_schema_path, load_schema
from bordergate.residency.stores import RecordStore
from bordergate.residency.stores.postgres import PostgresRecordStore
from bordergate.residency.stores.sqlite import SqliteRecordStore
from bordergate.residency.vault import Vault
from bordergate.tlog.client import DirectorySource, LogClient
from tests.gateway.conftest import (
    BORDERGATE,
    start_process,
    start_sequencer_service,
    stop_process,
    wait_healthy,
)
from tests.gateway.deployment import Tokens, free_port, use_sequencer_service, write_deployment
from tests.postgres_server import PostgresServer


def _kek_path(j: object) -> Path:
    """The KEK file of a jurisdiction configured with the ``file`` key backend."""
    from bordergate.keys.backend import KeyFileSettings

    settings = j.keys
    assert isinstance(settings, KeyFileSettings)
    return settings.path

LOCAL = Principal("local-us", "ttus", "local", "us", frozenset({"engineer"}))
SECRET = {"email": "erased-one@example.test", "government_id": "GOV-ERASED-4471"}


def _user(tag: str) -> dict[str, str]:
    sealed = SECRET if tag == "alice" else {"email": f"{tag}@example.test",
                                            "government_id": f"GOV-{tag}"}
    return {"handle": f"handle-{tag}", "created_at": "2024-05-01T12:00:00Z", **sealed}


def _write(http: httpx.Client, url: str, tokens: Tokens, tag: str) -> str:
    headers = tokens.header(LOCAL, "us")
    subject = str(http.post(f"{url}/v1/subjects", headers=headers).json()["subject"])
    r = http.put(f"{url}/v1/users/{tag}", params={"purpose": "operations"}, headers=headers,
                 json={"subject": subject, "values": _user(tag)})
    assert r.status_code == 200, r.text
    return subject


def _erase(http: httpx.Client, url: str, tokens: Tokens, subject: str) -> dict[str, Any]:
    r = http.delete(f"{url}/v1/subjects/{subject}", params={"purpose": "erasure"},
                    headers=tokens.header(LOCAL, "us"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _read_back(store: RecordStore, j: Jurisdiction) -> dict[str, object]:
    """Open a copy of the store as an attacker holding the jurisdiction's KEK file would."""
    keys = LocalKeyFile(_kek_path(j), jurisdiction="us")
    try:
        vault = Vault(load_schema(demo_schema_path()), store, KeyRing(keys, store))
        return vault.get("users", "alice", ["email", "government_id"]).values
    finally:
        keys.close()
        store.close()


def _keys_rotate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BORDERGATE, "keys", "rotate", "-j", "us", "--config", str(config),
                           "--destroy-old"], check=False, capture_output=True, text=True,
                          timeout=120)


def _logged_events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _key_events(j: Jurisdiction) -> dict[int, dict[str, Any]]:
    """Every ``key-event`` entry of the verified log, by index."""
    client = LogClient(DirectorySource(Path(j.log.storage)),
                       log_verifier(j))
    signed = client.checkpoint()
    found: dict[int, dict[str, Any]] = {}

    def collect(first: int, batch: list[bytes]) -> None:
        for n, raw in enumerate(batch):
            entry = parse_entry(raw)
            if entry.type == "key-event":
                found[first + n] = dict(entry.body)

    client.rebuild(signed, on_entries=collect)
    return found


def _check_destruction_logged(j: Jurisdiction, printed: list[dict[str, Any]]) -> None:
    """The printed events are in the log at the printed indexes; the shred came first."""
    events = _key_events(j)
    assert [e["event"] for e in printed] == ["kek-created", "kek-rotated", "kek-destroyed"]
    for line in printed:
        entry = events[line["log"]["index"]]
        assert (entry["kind"], entry["kek_version"], entry["by"]) == (
            line["event"], line["kek_version"], "custodian")
        assert "subject" not in entry
    destroyed = printed[2]["log"]["index"]
    assert events[destroyed]["kek_version"] == 1
    shredded = [i for i, e in events.items() if e["kind"] == "subject-shredded"]
    assert shredded and max(shredded) < destroyed
    assert events[max(shredded)]["kek_version"] == 1


def test_sqlite_copy_readable_until_the_kek_version_is_destroyed(
        tmp_path: Path, tokens: Tokens) -> None:
    """Promise 8: a copy of the SQLite store taken before an erasure opens under the
    unchanged KEK, so the gateway answers until_kek_destroyed with version 1; the logged
    destruction of v1 (refused while the gateway holds the log) makes the copy unreadable."""
    config = write_deployment(tmp_path)
    j = load_config(config).jurisdiction("us")
    process = start_process(config, "us")
    try:
        with httpx.Client(timeout=30.0) as http:
            wait_healthy(j.public_url, process)
            alice = _write(http, j.public_url, tokens, "alice")
            _write(http, j.public_url, tokens, "bob")
            db = Path(j.store.removeprefix("sqlite:"))
            backup = tmp_path / "backup-before-erasure.db"
            with sqlite3.connect(db) as live, sqlite3.connect(backup) as copy:
                live.backup(copy)  # an online backup, as an operator takes it
            body = _erase(http, j.public_url, tokens, alice)
            assert body["data_key_destroyed"] and body["records"] == 1
            assert (body["residue"], body["residue_kek_version"]) == ("until_kek_destroyed", 1)
            assert _read_back(SqliteRecordStore(backup, jurisdiction="us"), j) == SECRET

            busy = _keys_rotate(config)  # the gateway is the log's writer
            assert busy.returncode == 1 and "log_writer_busy" in busy.stderr
            assert LocalKeyFile(_kek_path(j), jurisdiction="us").versions() == (1,)
    finally:
        stop_process(process)
    printed = _logged_events(_keys_rotate(config))
    with pytest.raises(NotFound) as gone:
        _read_back(SqliteRecordStore(backup, jurisdiction="us"), j)
    assert gone.value.code == "kek_version_not_found"
    _check_destruction_logged(j, printed)
    process = start_process(config, "us")
    try:
        with httpx.Client(timeout=30.0) as http:
            wait_healthy(j.public_url, process)
            r = http.get(f"{j.public_url}/v1/users/bob",
                         params={"purpose": "operations", "fields": "email"},
                         headers=tokens.header(LOCAL, "us"))
            assert r.status_code == 200 and r.json()["fields"] == {"email": "bob@example.test"}
    finally:
        stop_process(process)


def _with_sequencer_service(config: Path, url: str, port: int) -> None:
    """Point us at PostgreSQL and at a sequencer service on ``port``."""
    text = config.read_text()
    text = text.replace('store = "sqlite:us/records.db"', f'store = "{url}"')
    config.write_text(text)
    use_sequencer_service(config, port)


def _pg_dump(server: PostgresServer, url: str, into: Path) -> str:
    """Back the database up with pg_dump and restore it into a new one; its URL."""
    tools = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    dump = shutil.which("pg_dump") or str(tools[0] / "pg_dump")
    restore = shutil.which("pg_restore") or str(tools[0] / "pg_restore")
    subprocess.run([dump, "-Fc", "-f", str(into), url], check=True, timeout=120)
    copy = server.database(prefix="backup")
    subprocess.run([restore, "--no-owner", "-d", copy, str(into)], check=True, timeout=120)
    return copy


@pytest.mark.postgres
def test_postgres_backup_readable_until_the_kek_version_is_destroyed(
        tmp_path: Path, tokens: Tokens, postgres_server: PostgresServer) -> None:
    """Promise 8: a pg_dump taken before an erasure restores and opens under the unchanged
    KEK, so the answer is until_kek_destroyed with version 1; rotating and destroying v1,
    logged through the sequencer service the gateway uses, makes that backup unreadable
    while the gateway keeps serving live data."""
    port = free_port()
    config = write_deployment(tmp_path)
    _with_sequencer_service(config, postgres_server.database(prefix="us"), port)
    j = load_config(config).jurisdiction("us")
    sequencer = start_sequencer_service(j, port)
    process = start_process(config, "us")
    try:
        with httpx.Client(timeout=30.0) as http:
            wait_healthy(j.public_url, process)
            alice = _write(http, j.public_url, tokens, "alice")
            _write(http, j.public_url, tokens, "bob")
            backup = _pg_dump(postgres_server, j.store, tmp_path / "before-erasure.dump")
            body = _erase(http, j.public_url, tokens, alice)
            assert body["data_key_destroyed"] and body["records"] == 1
            assert (body["residue"], body["residue_kek_version"]) == ("until_kek_destroyed", 1)

            def restored() -> RecordStore:
                return PostgresRecordStore(backup, jurisdiction="us", pool_size=1)

            assert _read_back(restored(), j) == SECRET
            printed = _logged_events(_keys_rotate(config))  # while the gateway serves
            with pytest.raises(NotFound) as gone:
                _read_back(restored(), j)
            assert gone.value.code == "kek_version_not_found"
            r = http.get(f"{j.public_url}/v1/users/bob",
                         params={"purpose": "operations", "fields": "email"},
                         headers=tokens.header(LOCAL, "us"))
            assert r.status_code == 200 and r.json()["fields"] == {"email": "bob@example.test"}
            r = http.get(f"{j.public_url}/v1/log/proof/{printed[2]['log']['index']}")
            assert r.status_code == 200, r.text  # the destruction is in a checkpoint
    finally:
        stop_process(process)
        stop_process(sequencer)
    _check_destruction_logged(j, printed)

"""Two gateway workers and the log operator on PostgreSQL, killed and restarted under
load (issue 16 item 3; docs/scale-out.md).

Real processes and a real PostgreSQL server: the us record store and the us log
each live in a PostgreSQL database; ``bordergate log sequencer`` is given the
log's ``postgresql://`` URL; two ``bordergate gateway serve`` workers share one
deployment file and differ only by ``--listen`` and ``--credential-file``.
Under a bounded mixed load of writes and reads spread over both workers, the
sequencer and then the second worker are killed (SIGKILL) and restarted.
Promise 3 (log before release) across the kills: every acknowledged write or
read names a log index whose entry is that decision, for that record, appended
with the credential of the worker that answered; every acknowledged write reads
back; the log verifies from its URL and the audit finds nothing but what the
development set-up implies.  Keys are TEST-ONLY (tests/gateway/deployment.py).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bordergate.config import Jurisdiction, load_config
from bordergate.entries import Entry, Pseudonymizer, parse_entry
from bordergate.log_access import log_verifier, read_pseudonym_secret
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.releases.publication import publish_bundle
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.credentials import AppendCredential
from bordergate.tlog.storage.postgres import PostgresStorage
from bordergate.tree_digest import read_tree
from tests.audit.scenario import APPROVER1, LOCAL
from tests.gateway.conftest import BORDERGATE, start_sequencer_service, wait_healthy
from tests.gateway.deployment import Tokens, free_port, use_sequencer_service, write_deployment
from tests.postgres_server import PostgresServer

OPS = 160  # write-then-read pairs, spread over both workers (bounded load)
THREADS = 4
RETRIES = 300  # per step, 0.1 s apart: a process down longer than that fails the test


@dataclass
class Acked:
    """What the workers acknowledged: (action, worker, record id, log index)."""

    done: list[tuple[str, int, str, int]] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.done)


def _worker_port() -> int:
    """A free port whose admin twin (port + 1000) is free too."""
    while True:
        port = free_port()
        if port + 1000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1000))
                except OSError:
                    continue
            return port


def _start_worker(config: Path, port: int, credential: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [BORDERGATE, "gateway", "serve", "--config", str(config), "--jurisdiction", "us",
         "--unreviewed", "--listen", f"127.0.0.1:{port}", "--credential-file", str(credential)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    if process.stderr:
        process.stderr.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    if process.stderr:
        process.stderr.close()


def _load(urls: list[str], tokens: Tokens, acked: Acked, ops: Iterator[int]) -> None:
    """One load thread: write a record then read it, alternating workers, until ``ops``
    runs out.  A refusal (503 or no answer while a process is down) is counted and the
    step retried, at most ``RETRIES`` times per step (bounded load)."""
    auth = tokens.header(LOCAL, "us")
    with httpx.Client(timeout=20.0, headers=auth) as http:
        subjects: dict[int, str] = {}
        for n in ops:
            worker = n % len(urls)
            url, rid = urls[worker], f"scale-{n}"
            for step in ("subject", "write", "read"):
                if step == "subject" and worker in subjects:
                    continue
                for _ in range(RETRIES):
                    try:
                        _step(http, url, step, rid, worker, subjects, acked)
                        break
                    except (httpx.HTTPError, KeyError, ValueError):
                        with acked.lock:
                            acked.refused += 1
                        time.sleep(0.1)


def _step(http: httpx.Client, url: str, step: str, rid: str, worker: int,
          subjects: dict[int, str], acked: Acked) -> None:
    if step == "subject":
        subjects[worker] = http.post(f"{url}/v1/subjects").json()["subject"]
        return
    if step == "write":
        r = http.put(f"{url}/v1/users/{rid}", params={"purpose": "operations"},
                     json={"subject": subjects[worker], "values": {
                         "handle": rid, "email": f"{rid}@example.test",
                         "created_at": "2024-01-01T00:00:00Z"}})
    else:
        r = http.get(f"{url}/v1/users/{rid}", params={"purpose": "operations",
                                                      "fields": "email"})
    if r.status_code != 200:
        raise httpx.HTTPStatusError("refused", request=r.request, response=r)
    if step == "read":
        assert r.json()["fields"]["email"] == f"{rid}@example.test"
    with acked.lock:
        acked.done.append((step, worker, rid, r.json()["log"]["index"]))


def _wait_acks(acked: Acked, more: int, threads: list[threading.Thread]) -> None:
    target = acked.count() + more
    deadline = time.monotonic() + 300
    while acked.count() < target and any(t.is_alive() for t in threads):
        assert time.monotonic() < deadline, "the load made no progress"
        time.sleep(0.1)


def _log_entries(j: Jurisdiction, url: str) -> list[Entry]:
    storage = PostgresStorage(url)
    try:
        client = LogClient(StorageSource(storage), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        return [parse_entry(client.entry(i, size)) for i in range(size)]
    finally:
        storage.close()


def _published_size(url: str) -> int:
    out = subprocess.run([BORDERGATE, "log", "checkpoint", url], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return int(out.splitlines()[1])


@pytest.mark.postgres
def test_two_workers_and_the_sequencer_on_postgresql_lose_nothing_acknowledged(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    """Issue 16 item 3 (promise 3): two workers and the sequencer on PostgreSQL, under
    mixed load; SIGKILL of the sequencer and of a worker, both restarted; every
    acknowledged write and read has its own entry, appended by the worker that answered,
    every acknowledged write reads back, the log verifies from its postgresql:// URL, the
    audit is clean and the restarted worker's dashboard shows the log's real size."""
    config = write_deployment(tmp_path)
    store_url, log_url = (postgres_server.database(prefix=p) for p in ("us", "uslog"))
    text = config.read_text().replace('store = "sqlite:us/records.db"', f'store = "{store_url}"')
    config.write_text(text.replace('storage = "us/log"', f'storage = "{log_url}"', 1))
    port = free_port()
    use_sequencer_service(config, port)  # provisions the log in PostgreSQL
    j = load_config(config).jurisdiction("us")
    assert j.sequencer is not None and j.log.storage == log_url
    second = AppendCredential.issue("us-gw-2")  # the second worker's own credential
    credentials = [j.log.sequencer.credential_file, tmp_path / "us" / "us-gw-2.cred"]  # type: ignore[union-attr]
    credentials[1].write_text(second.token + "\n")
    credentials[1].chmod(0o600)
    with j.sequencer.credentials_file.open("a") as out:
        out.write(second.list_line + "\n")
    storage = PostgresStorage(log_url)
    publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))  # for the audit's replay
    storage.close()

    tokens = Tokens()
    ports = [_worker_port(), _worker_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    sequencer = start_sequencer_service(j, port)  # `log sequencer postgresql://...`
    workers = [_start_worker(config, p, c) for p, c in zip(ports, credentials, strict=True)]
    acked = Acked()
    try:
        for url, worker in zip(urls, workers, strict=True):
            wait_healthy(url, worker, timeout=240)
        ops = iter(range(OPS))
        lock = threading.Lock()

        def next_op() -> Iterator[int]:
            while True:
                with lock:
                    n = next(ops, None)
                if n is None:
                    return
                yield n
        threads = [threading.Thread(target=_load, args=(urls, tokens, acked, next_op()))
                   for _ in range(THREADS)]
        for t in threads:
            t.start()
        _wait_acks(acked, 40, threads)
        _kill(sequencer)  # the log operator dies mid-load
        time.sleep(1)
        sequencer = start_sequencer_service(j, port)
        _wait_acks(acked, 40, threads)
        _kill(workers[1])  # and a worker
        workers[1] = _start_worker(config, ports[1], credentials[1])
        wait_healthy(urls[1], workers[1], timeout=240)
        for t in threads:
            t.join(600)
        assert not any(t.is_alive() for t in threads)
        writes = [(w, rid) for action, w, rid, _ in acked.done if action == "write"]
        with httpx.Client(timeout=20.0, headers=tokens.header(LOCAL, "us")) as http:
            for w, rid in writes:  # every acknowledged write reads back, from either worker
                r = http.get(f"{urls[1 - w]}/v1/users/{rid}",
                             params={"purpose": "operations", "fields": "email"})
                assert r.status_code == 200 and r.json()["fields"]["email"] == \
                    f"{rid}@example.test", r.text
            last = max(i for *_, i in acked.done)
            deadline = time.monotonic() + 60
            while _published_size(log_url) <= last:
                assert time.monotonic() < deadline, "the acknowledged entries were never published"
                time.sleep(0.5)
            dashboard = http.get(f"http://127.0.0.1:{ports[1] + 1000}/dashboard/data.json",
                                 headers=tokens.header(APPROVER1, "us"))
            assert dashboard.status_code == 200, dashboard.text
            assert dashboard.json()["log"]["size"] > last  # the real size, not 0
    finally:
        for worker in workers:
            _stop(worker)
        _stop(sequencer)

    assert acked.count() == 2 * OPS, (acked.count(), acked.refused)
    assert len({i for *_, i in acked.done}) == len(acked.done)  # one entry per answer
    entries = _log_entries(j, log_url)
    pseudonyms = Pseudonymizer(read_pseudonym_secret(j.log.pseudonym_secret_file))
    kinds = {"write": "write", "read": "access"}
    for action, worker, rid, index in acked.done:
        entry = entries[index]
        assert entry.type == kinds[action], (action, index, entry.type)
        assert entry.body["record"] == pseudonyms.record("users", rid)
        assert entry.body["appender"] == ("us-gw-1", "us-gw-2")[worker]
    verified = subprocess.run([BORDERGATE, "log", "verify", log_url, "--vkey",
                               log_verifier(j).key_string], capture_output=True, text=True,
                              timeout=300, check=False)
    assert verified.returncode == 0, verified.stderr
    auditor = tmp_path / "auditor.toml"
    auditor.write_text(f'[auditor]\nname = "TEST auditor"\ntime_tolerance_s = 5\n\n'
                       f'[logs.us]\nlocation = "{log_url}"\n'
                       f'vkey = "{log_verifier(j).key_string}"\n')
    audit = subprocess.run([BORDERGATE, "audit", "run", "--config", str(auditor), "--state",
                            str(tmp_path / "state"), "--report", str(tmp_path / "report"),
                            "--exit-zero"], capture_output=True, text=True, timeout=600,
                           check=False)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    # exit 1 only because the log is unwitnessed (--exit-zero covers findings only)
    assert (audit.returncode, report["summary"]["logs_unwitnessed"]) == (1, ["us"]), audit.stderr
    assert [log["verified"] for log in report["logs"]] == [True], report["logs"]
    assert report["summary"]["logs_failed"] == [] and report["summary"]["replay_mismatches"] == 0
    # the workers run --unreviewed and the sequencer --unwitnessed (development)
    unexpected = [(f["kind"], f.get("index")) for f in report["findings"]
                  if f["kind"] not in ("unreviewed_start", "checkpoint_unwitnessed")]
    assert unexpected == []

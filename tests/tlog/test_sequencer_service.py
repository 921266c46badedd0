"""The sequencer as its own process, shared by several gateway workers.

Promise 3 (log before release) in the scale-out shape: workers get an index
only for durable entries, every worker's entries land exactly once, and a
dead sequencer makes appends fail (so nothing is released) instead of hanging.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bordergate.errors import Unavailable
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.credentials import AppendCredential, CredentialList
from bordergate.tlog.logdir import write_key
from bordergate.tlog.remote import RemoteSequencer
from bordergate.tlog.sequencer import create_log
from bordergate.tlog.sequencer_service import encode_entries
from bordergate.tlog.storage.fs import FileStorage
from tests.tlog.logkeys import log_signer

BIN = Path(sys.executable).parent / "bordergate"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, tmp: Path, *, any_entries: bool = True) -> None:
        self.dir = tmp / "log"
        self.key = tmp / "log.key"
        self.credentials = {name: AppendCredential.issue(name) for name in ("worker-a", "worker-b")}
        self.list_file = tmp / "appenders.txt"
        self.list_file.write_text(CredentialList.of(self.credentials.values()).to_text())
        self.any_entries = any_entries
        create_log(FileStorage(self.dir), log_signer())
        write_key(self.key, log_signer().key_string)
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN), "log", "sequencer", str(self.dir), "--credentials", str(self.list_file),
             "--key-file", str(self.key), "--port", str(self.port), "--interval", "0.05",
             "--unwitnessed", *(["--any-entries"] if self.any_entries else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                httpx.get(self.url + "/checkpoint", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("sequencer service did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def token(self) -> str:
        return self.credentials["worker-a"].token


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_workers_share_one_log(service: Service) -> None:
    """Promise 3: two workers' concurrent appends each get durable, distinct indexes."""
    async def worker(name: str) -> dict[int, bytes]:
        remote = RemoteSequencer(service.url, service.token, log_signer().verifier())
        entries = [f"{name}-{i}".encode() for i in range(300)]
        indexes = await asyncio.gather(*(remote.append(e) for e in entries))
        await remote.publish()
        await remote.aclose()
        return dict(zip(indexes, entries, strict=True))

    async def both() -> list[dict[int, bytes]]:
        return list(await asyncio.gather(worker("a"), worker("b")))
    a, b = asyncio.run(both())
    assert not set(a) & set(b)
    assert sorted(set(a) | set(b)) == list(range(600))
    client = LogClient(DirectorySource(service.dir), log_signer().verifier())
    signed = client.checkpoint()
    assert signed.checkpoint.size == 600
    for index, entry in {**a, **b}.items():
        assert client.entry(index, 600) == entry


def test_dead_sequencer_fails_appends(service: Service) -> None:
    """Promise 3: with the sequencer gone, appends fail (fail closed), then recover."""
    async def one(entry: bytes) -> int:
        remote = RemoteSequencer(service.url, service.token, log_signer().verifier(),
                                 timeout=2)
        try:
            return await remote.append(entry)
        finally:
            await remote.aclose()
    assert asyncio.run(one(b"first")) == 0
    service.stop()
    with pytest.raises(Unavailable):
        asyncio.run(one(b"lost"))
    service.start()
    assert asyncio.run(one(b"after restart")) == 1


def test_bad_token_and_oversize_are_refused(service: Service) -> None:
    """Bad input: a wrong token is 401, an oversize or truncated body 413/400; nothing logged."""
    body = encode_entries([b"x"])
    assert httpx.post(service.url + "/append", content=body,
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    auth = {"Authorization": f"Bearer {service.token}"}
    assert httpx.post(service.url + "/append", content=b"\x00\x05ab",
                      headers=auth).status_code == 400
    big = httpx.post(service.url + "/append", content=b"\x00" * (17 << 20), headers=auth)
    assert big.status_code == 413
    r = httpx.post(service.url + "/publish", headers=auth)
    assert r.status_code == 200 and b"\n0\n" in r.content

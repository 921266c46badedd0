"""The log operator's sequencer recovers from a storage failure without a restart.

Promise 3 (log before release) and operability: when the log's storage refuses
writes, the sequencer service fails closed (every append 503, nothing
acknowledged that is not durable); once storage takes durable writes again the
same process appends again (it re-reads and re-verifies the log as after a
crash), and the log holds exactly the entries acknowledged, in order.  Before,
it failed closed until someone restarted it.  Real processes: the service runs
through ``tests/tlog/dead_disk_sequencer.py`` (the command with its storage
wrapped from the outside).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bordergate.errors import Unavailable
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.credentials import AppendCredential, CredentialList
from bordergate.tlog.logdir import write_key
from bordergate.tlog.remote import RemoteSequencer
from bordergate.tlog.sequencer import create_log
from bordergate.tlog.storage.fs import FileStorage
from tests.tlog.logkeys import log_signer
from tests.tlog.test_sequencer_service import _port

ROOT = Path(__file__).resolve().parents[2]


def _append(url: str, token: str, entry: bytes) -> int:
    async def one() -> int:
        remote = RemoteSequencer(url, token, log_signer().verifier(), timeout=5)
        try:
            return await remote.append(entry)
        finally:
            await remote.aclose()
    return asyncio.run(one())


def test_a_sequencer_whose_disk_died_fails_closed_then_recovers_without_restart(
        tmp_path: Path) -> None:
    """Fail closed, then recover in place: appends answer ``log_unwritable`` while
    the disk is dead and are not sequenced; after it comes back the same process
    acknowledges appends again, and the log verifies with exactly the entries
    acknowledged, the recovered one right after the last before the failure."""
    log_dir, key = tmp_path / "log", tmp_path / "log.key"
    create_log(FileStorage(log_dir), log_signer())
    write_key(key, log_signer().key_string)
    credential = AppendCredential.issue("worker-a")
    appenders = tmp_path / "appenders.txt"
    appenders.write_text(CredentialList.of([credential]).to_text())
    fault = tmp_path / "disk-dead"
    port = _port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tlog.dead_disk_sequencer", str(fault), str(log_dir),
         "--credentials", str(appenders), "--key-file", str(key), "--port", str(port),
         "--interval", "0.05", "--unwitnessed", "--any-entries"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the sequencer exited"
            try:
                httpx.get(url + "/checkpoint", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the sequencer did not start"
                time.sleep(0.05)
        assert _append(url, credential.token, b"before") == 0

        fault.touch()
        for entry in (b"lost 1", b"lost 2"):
            with pytest.raises(Unavailable) as err:
                _append(url, credential.token, entry)
            assert err.value.code in ("log_unwritable", "log_unavailable")
        time.sleep(2.5)  # recovery attempts against the dead disk fail and change nothing
        with pytest.raises(Unavailable):
            _append(url, credential.token, b"lost 3")

        fault.unlink()
        deadline = time.monotonic() + 30
        while True:
            try:
                index = _append(url, credential.token, b"after")
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the sequencer did not recover"
                time.sleep(0.2)
        assert process.poll() is None  # the same process: no restart
        assert index == 1
        assert _append(url, credential.token, b"and on") == 2

        client = LogClient(DirectorySource(log_dir), log_signer().verifier())
        deadline = time.monotonic() + 10
        while (signed := client.checkpoint()).checkpoint.size < 3:
            assert time.monotonic() < deadline, "no checkpoint covers the recovered entries"
            time.sleep(0.05)
        assert signed.checkpoint.size == 3
        assert [client.prove_entry(i, signed) for i in range(3)] == [b"before", b"after",
                                                                     b"and on"]
    finally:
        process.terminate()
        process.wait(15)

"""The gateway's data-key cache against real processes (issue 13, item 3; promise 3).

us runs its sequencer, key service and gateway as their own processes, the
gateway caching released data keys for ``CACHE_SECONDS``.  A read whose
subject's key is cached opens the values in memory, logs its own ``access``
entry and answers once it is durable, with no new release; a read in the last
quarter of the key's lifetime is served from the cached key and its entry
justifies a renewal, logged by the key service as a ``key-access`` entry naming
that read's index, which the audit matches to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from bordergate.config import load_config
from bordergate.entries import parse_entry
from tests.gateway.conftest import BORDERGATE, start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, free_port, use_sequencer_service, write_deployment
from tests.keys.test_key_service_processes import (
    EMAIL,
    LOCAL,
    KeyedDeployment,
    _add_key_service,
    _start,
    _write,
    audited,
)

CACHE_SECONDS = 12  # renewal is due once less than 3 s of it are left


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedDeployment]:
    """A TEST-ONLY deployment: us with sequencer, key service and a caching gateway."""
    root = tmp_path_factory.mktemp("cached")
    config = write_deployment(root)
    use_sequencer_service(config, free_port())
    _add_key_service(config, free_port())
    config.write_text(config.read_text().replace(
        "cache_seconds = 0\n", f"cache_seconds = {CACHE_SECONDS}\n"))
    us = load_config(config).jurisdiction("us")
    assert us.key_service is not None and us.key_service.cache_seconds == CACHE_SECONDS
    common = ["--config", str(config), "--jurisdiction", "us"]
    processes = [_start([BORDERGATE, "log", "sequencer", *common, "--interval", "0.1",
                         "--unwitnessed"], f"{us.log.sequencer_url}/checkpoint")]
    try:
        processes.append(_start([BORDERGATE, "keys", "serve", *common],
                                f"{us.key_service.url}/healthz"))
        processes.append(start_process(config, "us"))
        wait_healthy(us.public_url, processes[-1])
        yield KeyedDeployment(config, us, "", "", processes[1])
    finally:
        for process in reversed(processes):
            stop_process(process)


def _read(http: httpx.Client, subject: str) -> int:
    r = http.get(f"/v1/users/{subject}", params={"purpose": "operations", "fields": "email"})
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["email"] == EMAIL
    return int(r.json()["log"]["index"])


def _key_accesses(cached: KeyedDeployment, after: int) -> list[tuple[str, int]]:
    """(operation, justified index) of every key-access entry, once one names an
    index at or after ``after`` (the background renewal has been logged)."""
    deadline = time.monotonic() + 30
    while True:
        accesses = [(parse_entry(e)["operation"], parse_entry(e)["justified"])
                    for e in cached.entries(after) if b'"type":"key-access"' in e]
        if any(j >= after for _, j in accesses) or time.monotonic() > deadline:
            return accesses
        time.sleep(0.2)


def test_cached_reads_are_logged_without_a_release_and_a_late_read_renews(
        cached: KeyedDeployment) -> None:
    """A read right after the write (its key cached by the write's release) is logged
    and answered with no key-access entry of its own; a read in the last quarter of
    the lifetime is answered too and its entry is the one the renewal's key-access
    entry names; the audit matches every key-access entry to its decision."""
    with httpx.Client(base_url=cached.us.public_url, headers=Tokens().header(LOCAL, "us"),
                      timeout=30) as http:
        subject = _write(http, EMAIL)  # the write's release caches the new key
        written = time.monotonic()
        first = _read(http, subject)
        time.sleep(max(0.0, written + CACHE_SECONDS * 0.75 + 0.5 - time.monotonic()))
        late = _read(http, subject)
    accesses = _key_accesses(cached, late)
    reads = {j for op, j in accesses if op == "read"}
    assert first not in reads  # served from the cache: no release for it
    assert late in reads       # its entry justified the renewal
    assert [op for op, _ in accesses].count("create") == 1
    entries = cached.entries(late)
    assert parse_entry(entries[first]).type == "access"  # logged all the same
    inspector = audited(cached, entries)
    kinds = {f.kind for f in inspector.findings}
    assert not kinds & {"key_promise_broken", "key_access_unjustified", "key_access_malformed"}


"""Review: a witness's fresh cosignature always stands for its latest checkpoint (promise 5).

An auditor on its first visit takes a checkpoint its witnesses cosigned recently
for the log's current state (``audit.witness_check``): a cosignature stamped at
time T must mean "at T this was the latest checkpoint of the log I cosigned".
``witness serve`` keeps its state in SQLite and guards it against other
processes writing the same file (a restart that overlaps the old process, or
two processes behind one name); here two real ``bordergate witness serve``
processes share one state file, and the log operator asks the one that has not
seen the newer checkpoint to re-cosign the older one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bordergate.tlog.witness import LogState, format_add_checkpoint
from bordergate.tlog.witness_sqlite import SqliteWitnessState
from tests.tlog.memory_log import MemoryLog
from tests.tlog.witnessed import ORIGIN, WitnessServer, log_signer


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[WitnessServer, WitnessServer]]:
    first = WitnessServer(tmp_path, 0, [log_signer()])
    second = WitnessServer(tmp_path, 0, [log_signer()])  # same directory: same state file
    assert first.state == second.state
    first.start()
    second.start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_no_fresh_cosignature_for_a_superseded_checkpoint(
        two_processes: tuple[WitnessServer, WitnessServer]) -> None:
    """After the other process durably cosigned size 20, the process that cached size 10
    refuses to re-cosign size 10 (409, its size is 20) instead of stamping it with the
    current time: a fresh cosignature on a superseded checkpoint would let the log pass
    it off as its current state to a first-time auditor, hiding entries 10..19."""
    first, second = two_processes
    log = MemoryLog(log_signer()).append_n(20)
    with httpx.Client(timeout=30) as http:
        def post(witness: WitnessServer, old: int, size: int) -> httpx.Response:
            body = format_add_checkpoint(old, log.proof(old, size), log.checkpoint(size))
            return http.post(witness.url + "/add-checkpoint", content=body)

        assert post(first, 0, 10).status_code == 200  # the first process caches size 10
        assert post(second, 10, 20).status_code == 200
        again = post(first, 10, 10)
        assert (again.status_code, again.content) == (409, b"20\n"), again.text
        assert again.headers["content-type"].startswith("text/x.tlog.size")
        assert post(first, 20, 20).status_code == 200  # and it now knows size 20
    store = SqliteWitnessState(first.state)
    try:
        assert store.get(ORIGIN) == LogState(20, log.root(20), log.checkpoint(20))
    finally:
        store.close()

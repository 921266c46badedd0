"""The gateway's in-process log appender: appends of one event-loop turn share one
submission, each caller's entries contiguous and durable before it returns (promise 3)."""

from __future__ import annotations

import asyncio

import pytest

from bordergate.errors import InvalidInput, Unavailable
from bordergate.gateway.service import SequencerLog
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.memory import MemoryStorage
from tests.tlog.logkeys import log_signer


def _log() -> tuple[MemoryStorage, Sequencer]:
    storage = MemoryStorage()
    create_log(storage, log_signer())
    return storage, Sequencer(storage, log_signer())


def test_one_turn_of_appends_is_contiguous_and_durable() -> None:
    """Promise 3: concurrent appends each get the index of their own entries, which the
    log holds at exactly those indexes once the appends return."""
    storage, sequencer = _log()
    with sequencer:
        log = SequencerLog(sequencer)

        async def run() -> list[int]:
            batches = [[f"e{i}-{j}".encode() for j in range(i % 3 + 1)] for i in range(40)]
            firsts = await asyncio.gather(*(log.append_many(b) for b in batches))
            for first, batch in zip(firsts, batches, strict=True):
                assert sequencer.size >= first + len(batch)
            return [i for first, batch in zip(firsts, batches, strict=True)
                    for i in range(first, first + len(batch))]

        indexes = asyncio.run(run())
        assert sorted(indexes) == list(range(len(indexes)))
        signed = sequencer.publish(10)
    client = LogClient(StorageSource(storage), log_signer().verifier())
    size = signed.checkpoint.size
    expected = [f"e{i}-{j}".encode() for i in range(40) for j in range(i % 3 + 1)]
    got = sorted(client.entry(i, size) for i in range(size))
    assert got == sorted(expected)


def test_failed_log_acknowledges_nobody() -> None:
    """Promise 3: when the log cannot be written, every waiter of the turn gets
    Unavailable (fail closed), none gets an index."""
    storage, sequencer = _log()
    with sequencer:
        log = SequencerLog(sequencer)
        storage.fail_writes = True

        async def run() -> list[object]:
            return await asyncio.gather(*(log.append_many([b"x%d" % i]) for i in range(5)),
                                        return_exceptions=True)

        results = asyncio.run(run())
        assert all(isinstance(r, Unavailable) for r in results), results
        again = asyncio.run(run())
        assert all(isinstance(r, Unavailable) for r in again), again
        storage.fail_writes = False


def test_oversize_entry_is_refused_alone() -> None:
    """Promise 3: an entry over the log's limit is refused for its caller only; the
    other appends of the same turn are sequenced."""
    _, sequencer = _log()
    with sequencer:
        log = SequencerLog(sequencer)

        async def run() -> list[object]:
            return await asyncio.gather(log.append_many([b"ok"]),
                                        log.append_many([b"x" * 70_000]),
                                        log.append_many([b"ok too"]),
                                        return_exceptions=True)

        first, big, last = asyncio.run(run())
        assert isinstance(big, InvalidInput) and big.code == "entry_too_large"
        assert sorted([first, last]) == [0, 1]
    with pytest.raises(Unavailable):
        sequencer.submit([b"after close"])

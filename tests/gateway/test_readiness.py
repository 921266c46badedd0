"""Readiness in process: a witness lag only degrades /readyz, a backlog past the
configured bound fails it; a failed log recovers through ``SequencerLog.recover``
(docs/gateway.md, "Liveness, readiness, recovery"; issue 11 item 8)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from bordergate.errors import Unavailable
from bordergate.gateway.readiness import Readiness
from bordergate.gateway.service import SequencerLog
from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.sequencer import Sequencer
from tests.gateway.test_inprocess import LOCAL, Harness


class NoWitnessQuorum:
    """Witnesses that never answer: checkpoints are signed but never published."""

    def cosign(self, note: bytes, checkpoint: Checkpoint,
               prove: Callable[[int], list[bytes]]) -> bytes:
        raise Unavailable("no witness answered", code="witness_quorum_not_reached")


@pytest.fixture
def lagging(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    log = h.gateway.log
    assert isinstance(log, SequencerLog)
    log.sequencer.witnessing = NoWitnessQuorum()
    try:
        yield h
    finally:
        h.gateway.close()


def _appends(h: Harness, count: int) -> None:
    async def go(c: httpx.AsyncClient) -> None:
        for _ in range(count):
            assert (await c.post("/v1/subjects", headers=h.auth(LOCAL))).status_code == 201
            await h.gateway.announce_start(unreviewed=True, release=None)
    h.run(go)


def test_witness_lag_degrades_and_a_backlog_past_the_bound_fails(lagging: Harness) -> None:
    """Item 8: entries durable but not covered by a published checkpoint (no witness
    quorum) leave the gateway ready but ``degraded`` (``checkpoint_stale``): reads need
    durability, not cosignatures; past ``readiness_max_backlog`` it is ``failing``
    (``checkpoint_backlog``)."""
    _appends(lagging, 3)
    log = lagging.gateway.log
    assert isinstance(log, SequencerLog) and log.backlog() >= 3

    ready, body = asyncio.run(Readiness(lagging.gateway, max_backlog=1000,
                                        stale_after=-1.0).check())
    assert ready and body["status"] == "degraded" and body["code"] == "checkpoint_stale"
    assert body["checks"]["sequencer"]["unpublished"] >= 3
    assert body["checks"]["log"]["status"] == "ok"

    ready, body = asyncio.run(Readiness(lagging.gateway, max_backlog=2).check())
    assert not ready and body["status"] == "failing"
    assert body["code"] == "checkpoint_backlog"


class RefusingStorage:
    """Wraps a storage from outside; refuses every write while ``dead`` is set."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.dead = False

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if name in {"put", "sync", "sync_wal", "wal_append", "wal_trim", "publish_checkpoint"}:
            def refusing(*args: object) -> object:
                if self.dead:
                    raise Unavailable("disk refuses writes", code="log_unwritable")
                return attr(*args)  # type: ignore[operator]
            return refusing
        return attr


def test_failed_log_recovers_with_every_acknowledged_entry(tmp_path: Path) -> None:
    """Promise 3 and item 8: after a refused write the log fails closed (appends get
    ``log_unwritable``, /readyz fails naming it); recovery while the disk is still dead
    fails and changes nothing; once it takes writes, ``recover`` re-opens the log from
    storage, every acknowledged entry is still there and appends continue after it."""
    h = Harness(tmp_path)
    try:
        log = h.gateway.log
        assert isinstance(log, SequencerLog)
        storage = RefusingStorage(log.sequencer.storage)
        log.sequencer.close()
        log.sequencer = Sequencer(storage, log.sequencer.signer)  # type: ignore[arg-type]
        log.sequencer.start()
        readiness = Readiness(h.gateway, max_backlog=1000)

        async def go() -> None:
            acked = [await log.append_many([b'{"n":%d}' % i]) for i in range(5)]
            storage.dead = True
            with pytest.raises(Unavailable):
                await log.append_many([b'{"n":"lost"}'])
            ready, body = await readiness.check()
            assert not ready and body["code"] == "log_unwritable"
            with pytest.raises(Unavailable):
                await log.recover()
            assert log.failure() is not None
            storage.dead = False
            await log.recover()
            assert log.failure() is None
            assert (await readiness.check())[0]
            after = await log.append_many([b'{"n":"after"}'])
            assert after > acked[-1]
            checkpoint = await log.publish(10.0)
            entries: Sequence[bytes] = [h.gateway.log_reader.entry(i, checkpoint.checkpoint.size)
                                        for i in acked]
            assert entries == [b'{"n":%d}' % i for i in range(5)]

        asyncio.run(go())
    finally:
        h.gateway.close()

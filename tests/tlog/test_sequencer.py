"""The sequencer's contract: durable group commit, push back, fail closed.

Promise 3 (log before release) needs a log that says "durable" only when it
is, refuses rather than drops, and stops acknowledging when storage fails.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from bordergate.errors import Conflict, InvalidInput, PushBack, Unavailable, VerificationError
from bordergate.tlog import merkle
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.memory import MemoryStorage
from tests.tlog.logkeys import log_signer


def _log(**cfg: float) -> tuple[MemoryStorage, Sequencer]:
    storage = MemoryStorage()
    create_log(storage, log_signer())
    return storage, Sequencer(storage, log_signer(), config=SequencerConfig(**cfg))  # type: ignore[arg-type]


def test_indexes_are_contiguous_and_in_order() -> None:
    """Promise 5: each submission gets contiguous indexes; the tree matches."""
    storage, seq = _log(checkpoint_interval=0.01)
    with seq:
        firsts = [seq.append_many([f"{i}-{j}".encode() for j in range(i)]) for i in range(1, 30)]
        cp = seq.publish()
    assert firsts == [sum(range(1, i)) for i in range(1, 30)]
    client = LogClient(StorageSource(storage), log_signer().verifier())
    assert client.prove_entry(firsts[5] + 2, client.checkpoint()) == b"6-2"
    assert cp.checkpoint.size == sum(range(1, 30))


def test_async_append_from_many_tasks() -> None:
    """Promise 3: concurrent requests each get a distinct, durable index."""
    _, seq = _log(checkpoint_interval=0.01)

    async def run() -> list[int]:
        return await asyncio.gather(*(seq.append(f"req {i}".encode()) for i in range(500)))
    with seq:
        indexes = asyncio.run(run())
        seq.publish()
    assert sorted(indexes) == list(range(500))


def test_entry_over_65535_bytes_is_refused() -> None:
    """Bad input: the bundle format's limit is enforced with a stable code."""
    _, seq = _log()
    with seq:
        with pytest.raises(InvalidInput) as e:
            seq.submit([b"x" * 65536])
        assert e.value.code == "entry_too_large"
        assert seq.append_many([b"x" * 65535]) == 0


def test_full_queue_pushes_back_and_drops_nothing() -> None:
    """Promise 3: a full queue answers PushBack; accepted entries all land."""
    storage, seq = _log(max_pending=100, checkpoint_interval=0.01)
    gate = threading.Event()
    real_sync = storage.sync

    def slow_sync() -> None:
        gate.wait(5)
        real_sync()
    storage.sync = slow_sync  # type: ignore[method-assign]
    with seq:
        accepted = []
        pushed_back = 0
        for i in range(300):
            try:
                accepted.append((i, seq.submit([str(i).encode()])))
            except PushBack as e:
                pushed_back += 1
                assert e.retry_after > 0
        gate.set()
        indexes = {f.result(10): i for i, f in accepted}
        seq.publish()
    assert pushed_back > 0
    client = LogClient(StorageSource(storage), log_signer().verifier())
    signed = client.checkpoint()
    for index, i in indexes.items():
        assert client.entry(index, signed.checkpoint.size) == str(i).encode()


def test_storage_failure_fails_closed() -> None:
    """Promise 3: when storage refuses writes, nothing more is acknowledged."""
    storage, seq = _log(checkpoint_interval=0.01)
    with seq:
        seq.append_many([b"before"])
        storage.fail_writes = True
        with pytest.raises(Unavailable):
            seq.append_many([b"during"], timeout=5)
        storage.fail_writes = False
        with pytest.raises(Unavailable) as e:
            seq.submit([b"after"])
        assert e.value.code == "log_unwritable"


def test_second_sequencer_is_refused() -> None:
    """Promise 5: a second writer of the same log is refused clearly."""
    storage, seq = _log()
    with seq, pytest.raises(Conflict):
        Sequencer(storage, log_signer()).start()


def test_damaged_storage_refuses_to_start() -> None:
    """Promise 5: a log whose tiles do not reproduce its checkpoint never restarts."""
    storage, seq = _log(checkpoint_interval=0.01)
    with seq:
        seq.append_many([b"a"] * 300)
        seq.publish()
    tile = next(p for p in storage.objects if p.startswith("tile/0/001.p/"))
    storage.objects[tile] = bytes(len(storage.objects[tile]))
    with pytest.raises(VerificationError) as e:
        Sequencer(storage, log_signer()).start()
    assert e.value.code == "log_storage_damaged"
    assert not storage.writer


def test_checkpoint_published_within_interval_without_asking() -> None:
    """Promise 5: a signed checkpoint follows appends at least once per interval."""
    storage, seq = _log(checkpoint_interval=0.05)
    with seq:
        seq.append_many([b"x"] * 10)
        for _ in range(100):
            if seq.published_size == 10:
                break
            threading.Event().wait(0.02)
        assert seq.published_size == 10
        signed = LogClient(StorageSource(storage), log_signer().verifier()).checkpoint()
        assert signed.checkpoint.root == merkle.root_from_leaf_hashes([merkle.leaf_hash(b"x")] * 10)

"""PostgreSQL log storage shared by the sequencer's threads (issue 16 item 3).

The sequencer's writer thread syncs tiles, its publisher thread publishes
checkpoints and trims the write-ahead batches, and the service's threads read,
all through one ``PostgresStorage``.  Found by the two-worker test: a read run
inside another thread's transaction made a sync fail ("transaction commit at
the wrong nesting level") and the log failed closed.  Every operation must
succeed and every synced tile must be readable, whatever the interleaving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bordergate.tlog.storage import CHECKPOINT_PATH
from bordergate.tlog.storage.postgres import PostgresStorage

ROUNDS = 150  # per thread (bounded)


@pytest.mark.postgres
def test_writer_publisher_and_readers_share_one_storage(postgres_url: str) -> None:
    """Concurrent syncs, checkpoint publications, write-ahead trims and reads on one
    storage all succeed, and every tile a sync returned for reads back."""
    storage = PostgresStorage(postgres_url, log="threads")
    storage.acquire_writer()
    failures: list[BaseException] = []
    synced: list[str] = []

    def guarded(work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as e:  # reported by the test below
                failures.append(e)
        return threading.Thread(target=run)

    def writer() -> None:
        for n in range(ROUNDS):
            path = f"tile/0/{n:03d}"
            storage.put([(path, b"%d" % n)])
            storage.wal_append(n, 1, b"\0\1x")
            storage.sync()
            synced.append(path)

    def publisher() -> None:
        for n in range(ROUNDS):
            storage.publish_checkpoint(b"checkpoint %d\n" % n)
            storage.wal_trim(n)

    def reader() -> None:
        for _ in range(ROUNDS):
            storage.read(CHECKPOINT_PATH)
            list(storage.wal_replay(0))

    threads = [guarded(writer), guarded(publisher), guarded(reader), guarded(reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert failures == []
        assert [storage.read(p) for p in synced] == [b"%d" % n for n in range(ROUNDS)]
        assert storage.read(CHECKPOINT_PATH) == b"checkpoint %d\n" % (ROUNDS - 1)
    finally:
        storage.close()

"""One storage test-suite, run against every LogStorage backend.

Promise 5 (append-only log) and promise 3 (log before release) rest on the
storage contract: durable puts after sync, atomic checkpoints, one writer, and
no path outside the C2SP layout ever read.  The PostgreSQL backend runs
against the real server the suite starts.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bordergate.errors import Conflict, VerificationError
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage import LogStorage
from bordergate.tlog.storage.memory import MemoryStorage
from bordergate.tlog.tiles import TileRef
from tests.tlog.logkeys import log_signer

Factory = Callable[[], LogStorage]


def test_put_sync_read_and_partials(storage_factory: Factory) -> None:
    """Promise 5: stored tiles read back exactly; partial versions are listed."""
    s = storage_factory()
    s.acquire_writer()
    s.put([("tile/0/000.p/3", b"a" * 96), ("tile/0/000.p/7", b"b" * 224),
           ("tile/entries/000.p/2", b"\x00\x00\x00\x00")])
    s.sync()
    assert s.read("tile/0/000.p/3") == b"a" * 96
    assert s.read("tile/0/001") is None
    assert s.partial_widths(TileRef(0, 0)) == [3, 7]
    assert s.partial_widths(TileRef(-1, 0)) == [2]
    assert s.partial_widths(TileRef(1, 0)) == []
    s.publish_checkpoint(b"one\n")
    s.publish_checkpoint(b"two\n")
    assert s.read("checkpoint") == b"two\n"
    s.release_writer()


@pytest.mark.parametrize("path", ["../etc/passwd", "tile/../../x", ".sequencer/lock", "",
                                  "tile/0/1", "/checkpoint"])
def test_read_refuses_paths_outside_the_layout(storage_factory: Factory, path: str) -> None:
    """Bad input: no path outside checkpoint and tile/ is ever read (no traversal)."""
    with pytest.raises(VerificationError):
        storage_factory().read(path)


def test_second_writer_is_refused(storage_factory: Factory) -> None:
    """Promise 5: one writer per log; a second one gets a clear Conflict."""
    first = storage_factory()
    first.acquire_writer()
    second = storage_factory()
    if second is first:  # the in-memory twin is one object
        with pytest.raises(Conflict):
            MemoryStorage.acquire_writer(second)  # type: ignore[arg-type]
    else:
        with pytest.raises(Conflict, match="writer"):
            second.acquire_writer()
    first.release_writer()
    second.acquire_writer()
    second.release_writer()


def test_sequencer_round_trip_on_backend(storage_factory: Factory) -> None:
    """Promise 5: a log written through the sequencer verifies from storage alone,
    and a restarted sequencer continues the same tree."""
    signer = log_signer()
    create_log(storage_factory(), signer)
    entries = [f"entry {i}".encode() * (i % 5) for i in range(1300)]
    cfg = SequencerConfig(checkpoint_interval=0.05)
    with Sequencer(storage_factory(), signer, config=cfg) as seq:
        assert seq.append_many(entries[:700]) == 0
        first_cp = seq.publish()
    with Sequencer(storage_factory(), signer, config=cfg) as seq:
        assert seq.size == 700
        assert seq.append_many(entries[700:]) == 700
        cp = seq.publish()
    client = LogClient(StorageSource(storage_factory()), signer.verifier())
    seen: list[bytes] = []
    result = client.rebuild(client.checkpoint(), on_entries=lambda i, es: seen.extend(es))
    assert seen == entries and result.size == 1300 == cp.checkpoint.size
    assert client.root(700, 1300) == first_cp.checkpoint.root


def test_write_ahead_records_replay_and_trim(storage_factory: Factory) -> None:
    """Promise 3: small batches are durable as write-ahead records after sync,
    replay from any index, and are forgotten only below a published size."""
    from bordergate.tlog.tiles import join_bundle
    s = storage_factory()
    s.acquire_writer()
    s.wal_append(10, 2, join_bundle([b"a", b"b"]))
    s.wal_append(12, 3, join_bundle([b"c", b"", b"e"]))
    s.sync()
    assert list(s.wal_replay(0)) == [(10, [b"a", b"b"]), (12, [b"c", b"", b"e"])]
    assert list(s.wal_replay(12)) == [(12, [b"c", b"", b"e"])]
    s.wal_trim(12)  # may keep more (whole segments), never less
    assert [first for first, _ in s.wal_replay(12)] == [12]
    s.wal_append(15, 1, join_bundle([b"f"]))
    s.sync()
    s.wal_trim(16)
    assert list(s.wal_replay(0)) == []
    s.release_writer()


def test_write_ahead_replay_reads_every_record_in_order_past_a_page(
        storage_factory: Factory) -> None:
    """Promise 3: a write-ahead log longer than one read of it (PostgreSQL reads 256
    records per query) replays every record once, in order, from any start."""
    from bordergate.tlog.tiles import join_bundle
    s = storage_factory()
    s.acquire_writer()
    records = [(first, [f"e{first}".encode(), f"e{first + 1}".encode()])
               for first in range(0, 1400, 2)]  # 700 records: three pages and a part
    for first, entries in records:
        s.wal_append(first, 2, join_bundle(entries))
    s.sync()
    assert list(s.wal_replay(0)) == records
    assert list(s.wal_replay(513)) == records[256:]  # record 512 holds entry 513
    assert list(s.wal_replay(1400)) == []
    s.release_writer()


def test_small_batches_recover_from_the_write_ahead_log(storage_factory: Factory) -> None:
    """Promise 3: entries acknowledged in small batches survive an abandoned writer."""
    signer = log_signer()
    create_log(storage_factory(), signer)
    cfg = SequencerConfig(checkpoint_interval=3600)  # no checkpoint before the "crash"
    seq = Sequencer(storage_factory(), signer, config=cfg)
    seq.start()
    seq.append_many([b"big"] * 300)
    for i in range(20):
        seq.append_many([f"small {i}".encode()])
    seq.storage.release_writer()  # crash: nothing more is written or published
    with Sequencer(storage_factory(), signer, config=cfg) as again:
        assert again.size == 320
        signed = again.publish()
    client = LogClient(StorageSource(storage_factory()), signer.verifier())
    assert client.entry(319, signed.checkpoint.size) == b"small 19"
    assert client.rebuild(client.checkpoint()).size == 320

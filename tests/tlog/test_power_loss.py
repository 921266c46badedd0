"""Power-loss test: what the disk never made durable is taken back, many times.

Promise 5 and the durability contract of the log (``tlog.storage``): a small
batch is acknowledged once its write-ahead record is synced, while the full
entry bundles and tiles it completes stay unsynced until the next checkpoint.
SIGKILL (``test_crash.py``) cannot test that, since the page cache survives
it; a power loss does not.  :class:`PowerLossStorage` remembers every write no
sync has covered yet and, at the loss, takes each back the way a disk may
(a new file gone, empty or cut short; a replaced file old or new; a
write-ahead segment cut anywhere after its last synced length).  After every
loss a new sequencer must recover every acknowledged entry with its exact
bytes, and its checkpoint must be consistent with every one published before.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import Unavailable
from bordergate.tlog import merkle
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, _WriteAhead, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.tiles import decode_bundle, join_bundle
from tests.tlog.crash_writer import entry_bytes
from tests.tlog.logkeys import log_signer

LOSSES = 12
SEED = 11
# entries per submission: a gateway's small batches only, or now and then a bulk one
GATEWAY, MIXED = [1] * 8 + [2, 3], [1] * 30 + [2] * 5 + [3, 7, 40, 300]
IN_FLIGHT = 16  # submissions not yet acknowledged, as from a gateway's concurrent reads


class PowerLossStorage(FileStorage):
    """TEST-ONLY: a :class:`FileStorage` that can lose what was never synced."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        super().__init__(root)
        self._rng = rng
        self._power = threading.Lock()  # one write or sync at a time, and the loss between
        self._volatile: dict[Path, bytes | None] = {}  # path -> its durable bytes (None: absent)
        self._wal_durable: dict[Path, int] = {}
        self.dead = False

    def _alive(self) -> None:
        if self.dead:
            raise Unavailable("the power is off (test)", code="log_unwritable")

    def put(self, items: Sequence[tuple[str, bytes]]) -> None:
        with self._power:
            self._alive()
            for rel, _ in items:
                path = self.root / rel
                if path not in self._volatile:
                    self._volatile[path] = path.read_bytes() if path.exists() else None
            super().put(items)

    def wal_append(self, first: int, count: int, encoded: bytes) -> None:
        with self._power:
            self._alive()
            super().wal_append(first, count, encoded)

    def _note_wal_durable(self) -> None:
        for _, path in self._segments():
            self._wal_durable[path] = path.stat().st_size

    def sync_wal(self) -> None:
        with self._power:
            self._alive()
            super().sync_wal()
            self._note_wal_durable()

    def sync(self) -> None:
        with self._power:
            self._alive()
            super().sync()
            self._volatile.clear()
            self._note_wal_durable()

    def publish_checkpoint(self, note: bytes) -> None:
        with self._power:
            self._alive()
            super().publish_checkpoint(note)  # fsynced and renamed: durable at once

    def wal_trim(self, below: int) -> None:
        with self._power:
            self._alive()
            super().wal_trim(below)

    def lose_power(self) -> int:
        """Take back what no sync covered; returns how many files were touched."""
        with self._power:
            self.dead = True
            touched = 0
            for path, durable in self._volatile.items():
                touched += 1
                if durable is not None:  # replaced by rename: the old file or the new
                    if self._rng.random() < 0.5:
                        path.write_bytes(durable)
                    continue
                if not path.exists():
                    continue
                fate = self._rng.choice(["gone", "empty", "cut", "whole"])
                if fate == "gone":
                    path.unlink()
                elif fate == "empty":
                    path.write_bytes(b"")
                elif fate == "cut":
                    data = path.read_bytes()
                    path.write_bytes(data[:self._rng.randrange(len(data) + 1)])
            for _, path in self._segments():
                size = path.stat().st_size
                durable_size = self._wal_durable.get(path, 0)
                if size > durable_size:
                    touched += 1
                    with path.open("r+b") as f:
                        f.truncate(self._rng.randint(durable_size, size))
            return touched


def _check_log(log_dir: Path, seen: list[bytes]) -> int:
    """Every entry's exact bytes, and consistency with every earlier checkpoint."""
    client = LogClient(DirectorySource(log_dir), log_signer().verifier())
    signed = client.checkpoint()
    size = signed.checkpoint.size

    def check(first: int, entries: list[bytes]) -> None:
        for offset, e in enumerate(entries):
            assert e == entry_bytes(SEED, first + offset), f"index {first + offset} differs"
    client.rebuild(signed, on_entries=check)
    for note in seen:
        old = client.open(note).checkpoint
        if old.size > 0:
            merkle.verify_consistency(old.size, size, old.root, signed.checkpoint.root,
                                      client.consistency_proof(old.size, size))
    seen.append(signed.note)
    return size


def test_power_loss_takes_back_nothing_acknowledged(tmp_path: Path) -> None:
    """Promise 5: a small batch acknowledged on its write-ahead record alone (its full
    bundles unsynced) survives a power loss; so does everything acknowledged before,
    and the recovered log is consistent with every checkpoint it published."""
    log_dir = tmp_path / "log"
    create_log(FileStorage(log_dir), log_signer())
    rng = random.Random(SEED)
    seen: list[bytes] = []
    acknowledged = 0
    touched = 0
    for round_no in range(LOSSES):
        batches = GATEWAY if round_no % 2 else MIXED
        storage = PowerLossStorage(log_dir, rng)
        seq = Sequencer(storage, log_signer(),
                        config=SequencerConfig(checkpoint_interval=rng.choice([0.05, 0.5])))
        seq.start()
        assert seq.size >= acknowledged, "an acknowledged entry was lost"
        next_index = seq.size
        pending: list[tuple[int, int, Future[int]]] = []
        losses: list[int] = []
        loss = threading.Timer(rng.uniform(0.05, 0.4),
                               lambda s=storage, out=losses: out.append(s.lose_power()))
        loss.start()
        with contextlib.suppress(Unavailable):  # the writes refused once the power is off
            while not losses:
                # a gateway's small batches, now and then a bulk one
                n = rng.choice(batches)
                entries = [entry_bytes(SEED, next_index + i) for i in range(n)]
                pending.append((next_index, n, seq.submit(entries)))
                next_index += n
                while len(pending) > IN_FLIGHT or (pending and pending[0][2].done()):
                    first, count, future = pending.pop(0)
                    assert future.result(10) == first
                    acknowledged = max(acknowledged, first + count)
        loss.join()
        touched += losses[0]
        for first, count, future in pending:  # acknowledged before the loss count too
            with contextlib.suppress(Unavailable):
                if future.result(10) == first:
                    acknowledged = max(acknowledged, first + count)
        seq.close()
        with Sequencer(FileStorage(log_dir), log_signer()) as recovered:
            assert recovered.size >= acknowledged, "an acknowledged entry was lost"
        assert _check_log(log_dir, seen) >= acknowledged
    assert acknowledged > 10 * 256, "too little was written to cross many full bundles"
    assert touched > LOSSES, "the losses took back too little to mean anything"


def test_a_bundle_torn_yet_decodable_is_passed_over_for_the_write_ahead_log(
        tmp_path: Path) -> None:
    """Promise 5: small batches completed a full bundle, acknowledged on their
    write-ahead records, the bundle not yet synced; the power loss left the bundle
    whole in shape but other in content (as a file system that exposes unwritten
    blocks may). Recovery takes those entries from the write-ahead log, never
    from the bundle, and writes the bundle again."""
    log_dir = tmp_path / "log"
    create_log(FileStorage(log_dir), log_signer())
    storage = PowerLossStorage(log_dir, random.Random(SEED))
    seq = Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=3600))
    seq.start()
    for i in range(300):  # one by one, as a gateway's reads: past the first bundle
        assert seq.submit([entry_bytes(SEED, i)]).result(10) == i
    bundle = log_dir / "tile/entries/000"
    assert bundle.exists() and bundle in storage._volatile  # written, not synced
    with storage._power:
        storage.dead = True
    seq.close()  # its final checkpoint is refused: the power is off
    bundle.write_bytes(join_bundle([b"not what was logged %d" % i for i in range(256)]))
    with Sequencer(FileStorage(log_dir), log_signer()) as recovered:
        assert recovered.size == 300
    _check_log(log_dir, [])
    assert decode_bundle(bundle.read_bytes(), 256) == [entry_bytes(SEED, i) for i in range(256)]


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_the_write_ahead_window_check_agrees_with_reading_every_record(
        data: st.DataObject) -> None:
    """Recovery's check of bundles against the write-ahead log (``_WriteAhead``),
    which reads the records once and keeps one window, says the same as a map of
    every record's entries, for any records and any windows going forward."""
    records: list[tuple[int, list[bytes]]] = []
    index = data.draw(st.integers(0, 20))
    for _ in range(data.draw(st.integers(0, 8))):
        index += data.draw(st.integers(0, 3))  # records may leave gaps
        count = data.draw(st.integers(1, 6))
        records.append((index, [b"%d" % (index + i) for i in range(count)]))
        index += count
    held = {i: e for first, es in records for i, e in enumerate(es, first)}
    cursor = _WriteAhead(iter(records))
    start = data.draw(st.integers(0, 20))
    for _ in range(data.draw(st.integers(1, 6))):
        width = data.draw(st.integers(0, 10))
        entries = [b"%d" % i if data.draw(st.booleans()) else b"other" for i in
                   range(start, start + width)]
        expected = any(held.get(i, e) != e for i, e in enumerate(entries, start))
        assert cursor.disagrees(start, entries) == expected
        start += width + data.draw(st.integers(0, 4))

"""The single, durable, batching writer of one log.

Callers submit entries and get their indexes once the entries are durable.
A writer thread takes a batch from the queue, integrates it into the tree
edge and writes the full bundles and tiles it completes; an acknowledger
thread syncs storage once for every batch written meanwhile (group commit)
and only then acknowledges them.  A large batch is made durable by its
bundles (the new partial bundle written too) and acknowledged after a full
sync; a small one, the usual case of a serving gateway, by one write-ahead
record and acknowledged after the write-ahead log alone is synced: the full
bundles and tiles it completed are made durable by the next checkpoint's sync
(a full bundle of 3 KB entries is 768 KB; syncing it on the acknowledgement's
path stalled every append behind it).  A publisher thread, at
least every ``checkpoint_interval`` seconds, writes the partial hash tiles,
syncs, signs a checkpoint, gathers witness cosignatures (when configured) and
publishes it.  Recovery after a crash restores the tree edge from the last
published checkpoint's tiles, checks it reproduces that root, then re-reads
every durable bundle after it, so every acknowledged entry survives and the
log stays consistent with every checkpoint it ever published.

Guarded submissions (docs/log-durability.md, "State versions"): when the
sequencer is given a ``state_keys`` function (which state keys an entry
changes; supplied by whoever runs the log, so this module still never
interprets entries), it keeps, for every key, the index of the last entry that
changed it (its *version*; -1 when none did).  A submission may carry
``expect``, a map of keys to the versions its caller decided under; the writer
thread checks it when it assigns indexes, atomically with every other
submission, and refuses a stale one with :class:`~bordergate.errors.StaleState`
(nothing sequenced).  So once an entry that changes a key has an index, no
guarded entry at a higher index was decided under the key's older state.  The
versions are rebuilt from the log itself on start (the log is their only
record), before anything is accepted.

Faults fail closed: once storage refuses a write, the sequencer acknowledges
nothing more (``Unavailable``) until it is restarted and recovers.  A
sequencer never clears its own failure: :meth:`Sequencer.reopen` closes the
failed one and starts a new one over the same storage, whose start runs the
crash recovery (the durable re-check of the log's state) and
:meth:`Sequencer.check_durable` (a durable write), so in-memory state that a
failed write may have left behind is never trusted.  A full
queue answers :class:`~bordergate.errors.PushBack`; nothing is ever dropped.
This module must never interpret entries.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Protocol

from bordergate.errors import (
    InvalidInput,
    PushBack,
    StaleState,
    Unavailable,
    VerificationError,
)
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from bordergate.tlog.note import Signer
from bordergate.tlog.storage import CHECKPOINT_PATH, LogStorage
from bordergate.tlog.tiles import (
    ENTRIES,
    ENTRY_MAX,
    TILE_WIDTH,
    TileFrontier,
    TileHashes,
    TileRef,
    decode_bundle,
    decode_tile,
    join_bundle,
    tile_node_reader,
)

__all__ = ["CheckpointWitnessing", "Sequencer", "SequencerConfig", "StateKeys", "create_log"]

StateKeys = Callable[[bytes], Iterable[str]]
"""Which state keys one entry changes (empty for most entries); must be pure and fast."""

log = logging.getLogger(__name__)
_sha256 = hashlib.sha256


@dataclass(frozen=True)
class SequencerConfig:
    """Batching, queueing and publication limits of one sequencer."""

    max_batch: int = 65_536
    max_pending: int = 1_000_000
    checkpoint_interval: float = 1.0
    retry_after: float = 1.0
    refresh_interval: float = 600.0
    """With witnesses, an unchanged checkpoint is cosigned again after this many seconds,
    so an idle log's checkpoint stays fresh for auditors (their window: 3600 s)."""


class CheckpointWitnessing(Protocol):
    """Turns a log-signed checkpoint into a witnessed one (see tlog.witness)."""

    def cosign(self, note: bytes, checkpoint: Checkpoint,
               prove: Callable[[int], list[bytes]]) -> bytes:
        """Return ``note`` with enough cosignatures merged in.

        ``prove(old_size)`` gives the consistency proof from ``old_size``.

        Raises:
            Unavailable: the quorum could not be reached (publication waits).
        """


def create_log(storage: LogStorage, signer: Signer) -> bytes:
    """Publish the empty checkpoint of a new log; returns it.

    Raises:
        Conflict: the storage already holds a checkpoint or has a writer.
    """
    from bordergate.errors import Conflict
    storage.acquire_writer()
    try:
        if storage.read(CHECKPOINT_PATH) is not None:
            raise Conflict("a log already exists there", code="log_exists")
        note = sign_checkpoint(Checkpoint(signer.name, 0, merkle.EMPTY_ROOT), signer)
        storage.publish_checkpoint(note)
        return note
    finally:
        storage.release_writer()


class _Submission:
    __slots__ = ("entries", "expect", "future")

    def __init__(self, entries: list[bytes], future: Future[int],
                 expect: dict[str, int] | None = None) -> None:
        self.entries = entries
        self.future = future
        self.expect = expect


class _WriteAhead:
    """The write-ahead records, in index order, read once: a bundle's window at a time
    while recovery checks the bundles after the checkpoint (memory: one window), then
    the rest for its replay (:meth:`rest`)."""

    def __init__(self, records: Iterator[tuple[int, list[bytes]]]) -> None:
        self._records = records
        self._held: list[tuple[int, list[bytes]]] = []
        self._exhausted = False

    def disagrees(self, first: int, entries: Sequence[bytes]) -> bool:
        """Whether a record holds another entry at an index of ``first``,
        ``first + 1``, ... than ``entries`` does (windows must not go backwards)."""
        end = first + len(entries)
        self._held = [(f, e) for f, e in self._held if f + len(e) > first]
        while not self._exhausted and (not self._held or
                                       self._held[-1][0] + len(self._held[-1][1]) < end):
            record = next(self._records, None)
            if record is None:
                self._exhausted = True
            elif record[0] + len(record[1]) > first:
                self._held.append(record)
        for held_first, held in self._held:
            lo, hi = max(first, held_first), min(end, held_first + len(held))
            if lo < hi and held[lo - held_first:hi - held_first] != \
                    list(entries[lo - first:hi - first]):
                return True
        return False

    def rest(self) -> Iterator[tuple[int, list[bytes]]]:
        """The records not yet passed over, in order: those held, then the unread."""
        yield from self._held
        self._held = []
        yield from self._records


class Sequencer:
    """The single writer of one log (see the module docstring).

    Use as a context manager or call :meth:`start` and :meth:`close`.
    """

    def __init__(self, storage: LogStorage, signer: Signer, *,
                 config: SequencerConfig | None = None,
                 witnessing: CheckpointWitnessing | None = None,
                 state_keys: StateKeys | None = None) -> None:
        self.storage = storage
        self.signer = signer
        self.origin = signer.name
        self.config = config or SequencerConfig()
        self.witnessing = witnessing
        self._queue: deque[_Submission] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._state_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._publish_cond = threading.Condition()
        self._frontier = TileFrontier()
        self._next = 0
        self._published: SignedCheckpoint | None = None
        self._failure: Exception | None = None
        self._stopping = False
        self._publish_wanted = False
        self._threads: list[threading.Thread] = []
        self._written_partials: set[TileRef] = set()
        self._ack_cond = threading.Condition()
        # (batch, its first index, whether it is in the write-ahead log)
        self._to_ack: deque[tuple[list[_Submission], int, bool]] = deque()
        self._writer_done = False
        self._state_keys = state_keys
        self._versions: dict[str, int] = {}
        self._publish_error: Unavailable | None = None
        self._published_at = time.monotonic()

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Sequencer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Become the writer, recover, publish what recovery found, start threads.

        Raises:
            Conflict: another writer holds the log.
            VerificationError: storage does not reproduce its own checkpoint.
            Unavailable: storage cannot be read or written.
        """
        self.storage.acquire_writer()
        try:
            self._recover()
        except BaseException:
            self.storage.release_writer()
            raise
        self._writer_done = False
        for name, target in (("writer", self._write_loop), ("acknowledger", self._ack_loop),
                             ("publisher", self._publish_loop)):
            t = threading.Thread(target=target, name=f"tlog-{name}:{self.origin}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, publish a final checkpoint, stop and release the log."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._publish_cond:
            self._publish_cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        if self._failure is None and self._frontier.size != self.published_size:
            try:
                self._publish_once()
            except Exception as e:  # recovery on the next start replays the WAL
                log.warning("final checkpoint of %s not published: %s", self.origin, e)
        self.storage.release_writer()

    def _recover(self) -> None:
        note = self.storage.read(CHECKPOINT_PATH)
        if note is None:
            raise Unavailable(f"log {self.origin} has no checkpoint: create it first",
                              code="log_missing")
        signed = open_checkpoint(note, self.signer.verifier())
        cp = signed.checkpoint

        def read(ref: TileRef) -> bytes:
            data = self.storage.read(ref.path)
            if data is None:
                raise VerificationError(f"log storage lacks {ref.path} of size {cp.size}",
                                        code="log_storage_damaged")
            return data

        frontier = TileFrontier.restore(cp.size, read)
        if frontier.root() != cp.root:
            raise VerificationError(
                f"log storage does not reproduce the published root of size {cp.size}",
                code="log_storage_damaged")
        self._frontier, self._published = frontier, signed
        write_ahead = _WriteAhead(self.storage.wal_replay(cp.size))
        self._replay_bundles(write_ahead)
        self._replay_wal(write_ahead.rest())
        self._next = frontier.size
        self._rebuild_versions()
        if frontier.size != cp.size:
            try:
                self._publish_once()
            except Unavailable as e:  # e.g. no witness quorum yet: the publisher retries
                log.warning("checkpoint of %s not published yet: %s", self.origin, e)

    def _rebuild_versions(self) -> None:
        """Recompute every state key's version from the entries of the log.

        Raises:
            VerificationError: a full entry bundle is missing or damaged.
        """
        self._versions = {}
        if self._state_keys is None:
            return
        full = self._frontier.size // TILE_WIDTH
        for n in range(full):
            ref = TileRef(ENTRIES, n)
            data = self.storage.read(ref.path)
            if data is None:
                raise VerificationError(f"log storage lacks {ref.path}",
                                        code="log_storage_damaged")
            self._note_versions(n * TILE_WIDTH, decode_bundle(data, TILE_WIDTH))
        self._note_versions(full * TILE_WIDTH, self._frontier.bundle)

    def _note_versions(self, first: int, entries: Sequence[bytes]) -> None:
        keys_of = self._state_keys
        if keys_of is None:
            return
        versions = self._versions
        for index, entry in enumerate(entries, first):
            for key in keys_of(entry):
                versions[key] = index

    def version(self, key: str) -> int:
        """The index of the last entry sequenced that changed ``key`` (-1: none)."""
        return self._versions.get(key, -1)

    def _replay_wal(self, records: Iterable[tuple[int, list[bytes]]]) -> None:
        """Integrate the durable write-ahead ``records`` (in index order) after what
        the bundles held; records wholly before it are passed over."""
        for first, entries in records:
            skip = self._frontier.size - first
            if skip < 0:
                raise VerificationError(
                    f"write-ahead log has a gap at index {self._frontier.size}",
                    code="log_storage_damaged")
            if skip < len(entries):
                self._integrate(entries[skip:], recovering=True)

    def _replay_bundles(self, write_ahead: _WriteAhead) -> None:
        """Integrate the durable entries found in bundles after the checkpoint.

        A bundle that disagrees with an entry the write-ahead log holds was not
        synced when a power loss took part of it back (a small batch's bundles are
        synced by the next checkpoint, its record at once): it is passed over like a
        torn one, and the write-ahead records give those entries.
        """
        frontier = self._frontier
        while True:
            index, have = divmod(frontier.size, TILE_WIDTH)
            candidates = [TILE_WIDTH, *sorted(
                (w for w in self.storage.partial_widths(TileRef(ENTRIES, index)) if w > have),
                reverse=True)]
            for width in candidates:
                ref = TileRef(ENTRIES, index, width)
                data = self.storage.read(ref.path)
                if data is None:
                    continue
                try:
                    entries = decode_bundle(data, width)
                except VerificationError:
                    continue  # torn by the crash: never acknowledged, or in the WAL
                if write_ahead.disagrees(frontier.size, entries[have:]):
                    continue  # not synced, and torn so that it still decodes
                if entries[:have] != frontier.bundle:
                    raise VerificationError(f"bundle {ref.path} disagrees with the log",
                                            code="log_storage_damaged")
                self._integrate(entries[have:], recovering=True)
                break
            else:
                return
            if width != TILE_WIDTH:
                return

    def reopen(self) -> Sequencer:
        """A new, started sequencer over this one's storage, after closing this one.

        The new one recovers from storage alone (the published checkpoint is
        re-verified against its tiles, durable bundles and write-ahead records
        replayed, as after a crash) and then proves storage takes a durable
        write (:meth:`check_durable`).  Used to recover from a failure without
        restarting the process.

        Raises:
            Conflict: another writer took the log meanwhile.
            VerificationError: storage does not reproduce its own checkpoint.
            Unavailable: storage still refuses reads or writes.
        """
        if not self._stopping:  # a failed earlier attempt closed it already
            self.close()
        fresh = Sequencer(self.storage, self.signer, config=self.config,
                          witnessing=self.witnessing, state_keys=self._state_keys)
        fresh.start()
        try:
            fresh.check_durable()
        except BaseException:
            fresh.close()
            raise
        return fresh

    def check_durable(self) -> None:
        """Prove storage takes durable writes: rewrite the current partial entry
        bundle (its path names its content, so rewriting it changes nothing),
        sync, and publish the current checkpoint again (unchanged note).

        Raises:
            Unavailable: storage refused the write, or the sequencer has failed.
        """
        with self._state_lock:
            if self._failure is not None:
                raise Unavailable(f"log failed: {self._failure}", code="log_unwritable")
            bundle = self._frontier.partial_bundle()
            published = self._published
        with self._io_lock:
            try:
                self.storage.put([(ref.path, data) for ref, data in bundle])
                self.storage.sync()
                if published is not None:
                    self.storage.publish_checkpoint(published.note)
            except Exception as e:
                self._set_failure(e)
                raise Unavailable(f"log storage refuses durable writes: {e}",
                                  code="log_unwritable") from e

    # -- submitting ----------------------------------------------------------
    @property
    def failure(self) -> Exception | None:
        """Why this sequencer stopped acknowledging entries (fail closed), or None."""
        return self._failure

    @property
    def size(self) -> int:
        """Entries sequenced (acknowledged or about to be)."""
        return self._next

    @property
    def published_size(self) -> int:
        return self._published.checkpoint.size if self._published else 0

    @property
    def checkpoint(self) -> SignedCheckpoint | None:
        """The latest published checkpoint."""
        return self._published

    def submit(self, entries: Sequence[bytes], *,
               expect: Mapping[str, int] | None = None) -> Future[int]:
        """Queue entries to be sequenced contiguously; the future gives the first index.

        With ``expect`` (state key -> version the caller decided under) the
        entries are sequenced only if every version is still current when they
        get their indexes; else the future fails with ``StaleState``.

        Raises:
            InvalidInput: an entry is longer than 65535 bytes (``entry_too_large``).
            PushBack: the queue is full; nothing was queued.
            Unavailable: the log cannot be written (fail closed), or ``expect``
                was given to a sequencer that keeps no state versions
                (``state_untracked``).
        """
        if expect and self._state_keys is None:
            raise Unavailable(f"log {self.origin} keeps no state versions; a guarded "
                              "submission cannot be checked", code="state_untracked")
        batch = list(entries)
        for e in batch:
            if len(e) > ENTRY_MAX:
                raise InvalidInput(f"log entry of {len(e)} bytes exceeds 65535",
                                   code="entry_too_large")
        fut: Future[int] = Future()
        with self._cond:
            if self._failure is not None:
                raise Unavailable(f"log {self.origin} is not writable: {self._failure}",
                                  code="log_unwritable")
            if self._stopping:
                raise Unavailable(f"log {self.origin} is shutting down", code="log_unavailable")
            if self._pending + len(batch) > self.config.max_pending:
                raise PushBack(f"log {self.origin} queue is full",
                               retry_after=self.config.retry_after)
            if not self._queue:  # else the writer was woken already and will take it
                self._cond.notify()
            self._queue.append(_Submission(batch, fut, dict(expect) if expect else None))
            self._pending += len(batch)
        return fut

    def append_many(self, entries: Sequence[bytes], timeout: float | None = 60.0) -> int:
        """Sequence entries durably; returns the index of the first."""
        return self.submit(entries).result(timeout)

    async def append(self, entry: bytes) -> int:
        """Sequence one entry durably; returns its index."""
        return await asyncio.wrap_future(self.submit([entry]))

    def promises(self, first: int, entries: Sequence[bytes]) -> list[bytes]:
        """The log key's signed promises of inclusion (:mod:`bordergate.tlog.promise`)
        for ``entries``, acknowledged as entries ``first``, ``first + 1``, ...

        Call it only with an index this sequencer acknowledged for exactly these
        entries: the promise is the log operator's word.
        """
        from bordergate.tlog.promise import promise_for

        now_ms = int(time.time() * 1000)
        return [promise_for(self.signer, first + i, e, now_ms) for i, e in enumerate(entries)]

    def publish(self, timeout: float = 30.0) -> SignedCheckpoint:
        """Wait until a checkpoint covering every entry submitted so far is published.

        Raises:
            Unavailable: not published in time, or the log failed.
        """
        target = self._wait_sequenced(timeout)
        deadline = time.monotonic() + timeout
        with self._publish_cond:
            self._publish_wanted = True
            self._publish_cond.notify_all()
            while self.published_size < target:
                if self._failure is not None:
                    raise Unavailable(f"log failed: {self._failure}", code="log_unwritable")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._publish_timeout()
                self._publish_cond.wait(min(left, 0.1))
        assert self._published is not None
        return self._published

    def _publish_timeout(self) -> Unavailable:
        """Why :meth:`publish` gave up: the last publication failure (a witness quorum
        not reached keeps its code) or a plain timeout."""
        why = self._publish_error
        if why is None:
            return Unavailable("checkpoint not published in time", code="checkpoint_timeout")
        return Unavailable(f"checkpoint not published in time: {why}", code=why.code)

    def _wait_sequenced(self, timeout: float) -> int:
        with self._cond:
            queued = [s.future for s in self._queue]
        # a refused guarded submission is settled too (its StaleState is its caller's)
        if futures_wait(queued, timeout).not_done:
            raise Unavailable("entries not sequenced in time", code="checkpoint_timeout")
        return self._next

    # -- writer thread ---------------------------------------------------------
    def _take_batch(self) -> list[_Submission] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            taken: list[_Submission] = []
            count = 0
            while self._queue and (not taken or count + len(self._queue[0].entries)
                                   <= self.config.max_batch):
                sub = self._queue.popleft()
                taken.append(sub)
                count += len(sub.entries)
            self._pending -= count
            return taken

    def _write_loop(self) -> None:
        # Integrates and writes each batch, then hands it to the acknowledger,
        # which syncs storage and acknowledges; hashing the next batch overlaps
        # the previous batch's sync (the sync releases the GIL while it waits).
        try:
            while (taken := self._take_batch()) is not None:
                if self._failure is not None:
                    self._fail(taken, self._failure)
                    continue
                first = self._next
                if self._state_keys is not None:
                    taken = self._admit(taken, first)
                    if not taken:
                        continue
                entries = [e for sub in taken for e in sub.entries]
                try:
                    ahead = self._integrate(entries, sync=False)
                except Exception as e:
                    self._set_failure(e)
                    self._fail(taken, e)
                    continue
                self._next = first + len(entries)
                with self._ack_cond:
                    self._to_ack.append((taken, first, ahead))
                    self._ack_cond.notify()
        finally:
            with self._ack_cond:
                self._writer_done = True
                self._ack_cond.notify()

    def _admit(self, taken: list[_Submission], first: int) -> list[_Submission]:
        """Refuse the stale guarded submissions of a batch, note the versions the
        others set (on the writer thread, as their indexes are assigned)."""
        admitted: list[_Submission] = []
        index = first
        versions = self._versions
        for sub in taken:
            if sub.expect:
                stale = {k: versions.get(k, -1) for k, v in sub.expect.items()
                         if versions.get(k, -1) != v}
                if stale:
                    sub.future.set_exception(StaleState(
                        f"state changed since the decision: {', '.join(sorted(stale))}",
                        current=stale))
                    continue
            self._note_versions(index, sub.entries)
            index += len(sub.entries)
            admitted.append(sub)
        return admitted

    def _ack_loop(self) -> None:
        while True:
            with self._ack_cond:
                while not self._to_ack and not self._writer_done:
                    self._ack_cond.wait()
                if not self._to_ack:
                    return
                groups = list(self._to_ack)
                self._to_ack.clear()
            try:
                if all(ahead for _, _, ahead in groups):  # every batch in the write-ahead log
                    self.storage.sync_wal()
                else:
                    self.storage.sync()
            except Exception as e:
                self._set_failure(e)
                for taken, _, _ in groups:
                    self._fail(taken, e)
                continue
            for taken, first, _ in groups:
                index = first
                for sub in taken:
                    sub.future.set_result(index)
                    index += len(sub.entries)

    def _integrate(self, entries: Sequence[bytes], *, sync: bool = True,
                   recovering: bool = False) -> bool:
        """Add entries to the tree edge and write them down (and sync); returns
        whether the batch went to the write-ahead log.

        A batch of fewer entries than a bundle holds goes to the write-ahead log
        as one record (the partial bundle is written at the next checkpoint); a
        larger one, or one replayed by recovery, writes its bundles directly.
        Either way the full bundles and tiles it completes are written (durable
        by the next sync: a small batch's acknowledgement syncs the write-ahead
        log alone, so it never waits for a full bundle).
        """
        sha = _sha256
        hashes = [sha(b"\x00" + e).digest() for e in entries]
        with self._state_lock:
            first = self._frontier.size
            done = self._frontier.append(entries, hashes)
            small = len(entries) < TILE_WIDTH and not recovering
            if not small:
                done += self._frontier.partial_bundle()
            try:
                self.storage.put([(ref.path, data) for ref, data in done])
                if small:
                    self.storage.wal_append(first, len(entries), join_bundle(entries))
                if sync:
                    self.storage.sync()
            except Exception as e:
                # under the state lock, so no checkpoint can cover the lost batch
                self._set_failure(e)
                raise
        return small

    def _set_failure(self, e: Exception) -> None:
        with self._cond:
            if self._failure is None:
                log.error("log %s stops acknowledging entries: %s", self.origin, e)
                self._failure = e
            queued = list(self._queue)
            self._queue.clear()
            self._pending = 0
        self._fail(queued, e)
        with self._publish_cond:
            self._publish_cond.notify_all()

    @staticmethod
    def _fail(subs: Sequence[_Submission], e: Exception) -> None:
        err = e if isinstance(e, Unavailable) else Unavailable(f"log write failed: {e}",
                                                               code="log_unwritable")
        for sub in subs:
            if not sub.future.done():
                sub.future.set_exception(err)

    # -- publisher thread --------------------------------------------------------
    def _publish_loop(self) -> None:
        interval = self.config.checkpoint_interval
        while True:
            with self._publish_cond:
                if not self._publish_wanted and not self._stopping:
                    self._publish_cond.wait(interval)
                self._publish_wanted = False
            if self._stopping or self._failure is not None:
                return
            if self._frontier.size == self.published_size and not self._refresh_due():
                continue
            try:
                self._publish_once()
            except Unavailable as e:
                self._publish_error = e
                log.warning("checkpoint of %s not published yet: %s", self.origin, e)
            except Exception as e:
                self._set_failure(e)
                return

    def _refresh_due(self) -> bool:
        """Whether an unchanged checkpoint should be cosigned again (witnesses only)."""
        return self.witnessing is not None and self._published is not None and \
            time.monotonic() - self._published_at >= self.config.refresh_interval

    def _publish_once(self) -> None:
        with self._state_lock:
            if self._failure is not None:
                raise Unavailable(f"log failed: {self._failure}", code="log_unwritable")
            size, root = self._frontier.size, self._frontier.root()
            # a path names its content: an upper level's partial tile that was
            # already written for an earlier checkpoint need not be written again
            partials = [(r, d) for r, d in self._frontier.partial_tiles()
                        if r not in self._written_partials]
            bundle = self._frontier.partial_bundle()
        with self._io_lock:
            self.storage.put([(ref.path, data) for ref, data in bundle + partials])
            self.storage.sync()
        self._written_partials = {r for r, _ in partials} | {
            r for r in self._written_partials if r.level > 0}
        cp = Checkpoint(self.origin, size, root)
        note = sign_checkpoint(cp, self.signer)
        if self.witnessing is not None:
            note = self.witnessing.cosign(note, cp, self._prover(size))
        with self._io_lock:
            self.storage.publish_checkpoint(note)
            self.storage.wal_trim(size)
        signed = open_checkpoint(note, self.signer.verifier())  # also a self-check
        with self._publish_cond:
            self._published = signed
            self._published_at = time.monotonic()
            self._publish_error = None
            self._publish_cond.notify_all()

    def _prover(self, size: int) -> Callable[[int], list[bytes]]:
        cache: dict[TileRef, TileHashes] = {}

        def tile(ref: TileRef) -> TileHashes:
            if ref not in cache:
                with self._io_lock:
                    data = self.storage.read(ref.path)
                if data is None:
                    raise Unavailable(f"tile {ref.path} missing", code="log_unavailable")
                cache[ref] = TileHashes(decode_tile(data, ref.width))
            return cache[ref]

        def prove(old_size: int) -> list[bytes]:
            if old_size in (0, size):
                return []
            return merkle.consistency_proof(old_size, size, tile_node_reader(size, tile))
        return prove


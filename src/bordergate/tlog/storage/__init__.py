"""Where a log's tiles, bundles, checkpoint and write-ahead batches live.

One small interface, :class:`LogStorage`, with three implementations chosen by
configuration: ``memory`` (the test twin), ``fs`` (the embedded default: a
directory any static web server can serve as-is) and ``postgres``.

The sequencer's durability contract rests on these operations:

* ``put`` and ``wal_append`` may be lazy; ``sync`` makes every earlier
  ``put`` and ``wal_append`` durable, ``sync_wal`` every earlier
  ``wal_append`` only.  A large batch is made durable by its entry bundles
  (full ones and the new partial one) and acknowledged after a ``sync``; a
  small batch, which would otherwise rewrite a partial bundle many times its
  size, by one write-ahead record, and acknowledged after a ``sync_wal``: the
  full bundles and tiles it completes are made durable by the next
  checkpoint's ``sync``, before the checkpoint that names them is published
  (until then the write-ahead log holds their entries, and recovery writes
  them again);
* ``wal_replay`` yields the records holding entries at or after an index,
  ``wal_trim`` forgets those wholly below a published size;
* ``publish_checkpoint`` atomically and durably replaces the checkpoint;
* ``partial_widths`` lists the partial versions of a tile or bundle present,
  so that recovery can find the last durable entries.

This package must never interpret entries, sign anything or talk HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from bordergate.locations import parse_log_location
from bordergate.tlog.storage.layout import CHECKPOINT_PATH, OBJECT_PATH, check_object_path
from bordergate.tlog.storage.wal import WalBatch
from bordergate.tlog.tiles import TileRef

__all__ = ["CHECKPOINT_PATH", "OBJECT_PATH", "LogStorage", "check_object_path", "open_storage"]

class LogStorage(Protocol):
    """The storage seam of one log (see the module docstring for durability)."""

    def acquire_writer(self) -> None:
        """Become the single writer of this log.

        Raises:
            Conflict: another writer holds the log.
        """

    def release_writer(self) -> None:
        """Give up the writer role (idempotent)."""

    def wal_append(self, first: int, count: int, encoded: bytes) -> None:
        """Record a small batch (``encoded``: bundle encoding); durable after sync."""

    def wal_replay(self, start: int) -> Iterator[WalBatch]:
        """Yield intact records, in order, that hold entries at ``start`` or later."""

    def wal_trim(self, below: int) -> None:
        """Forget (some or all) records whose entries are all below ``below``."""

    def put(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store tiles or bundles by path; durable only after :meth:`sync`."""

    def sync(self) -> None:
        """Make every earlier :meth:`put` and :meth:`wal_append` durable; a sync
        running in another thread has finished its work when this one returns."""

    def sync_wal(self) -> None:
        """Make every earlier :meth:`wal_append` durable (puts may stay lazy)."""

    def publish_checkpoint(self, note: bytes) -> None:
        """Atomically and durably replace the signed checkpoint."""

    def read(self, path: str) -> bytes | None:
        """Return the object at ``path`` (``checkpoint`` or a tile path), or None."""

    def partial_widths(self, ref: TileRef) -> list[int]:
        """Widths of the partial versions of ``ref``'s tile or bundle that exist."""

    def close(self) -> None:
        """Release every resource (the writer role included)."""


def open_storage(location: str) -> LogStorage:
    """Open the storage named by ``location``: a directory or a ``postgresql://`` URL.

    Raises:
        ConfigError: ``log_location``: the location names no usable backend
            (:func:`bordergate.locations.parse_log_location`).
    """
    parsed = parse_log_location(location)
    if parsed.kind == "postgresql":
        from bordergate.tlog.storage.postgres import PostgresStorage
        return PostgresStorage(parsed.target)
    from bordergate.tlog.storage.fs import FileStorage
    return FileStorage(parsed.target)

"""In-memory log storage: the test twin of the file and PostgreSQL backends.

Everything is "durable" the moment it is stored; ``fail_writes`` lets a test
make the storage refuse writes, as a full or broken disk would.  Never used in
production (nothing survives the process).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bordergate.errors import Conflict, Unavailable
from bordergate.tlog.storage.layout import CHECKPOINT_PATH, check_object_path
from bordergate.tlog.storage.wal import WalBatch
from bordergate.tlog.tiles import TileRef, decode_bundle, parse_path

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A log held in dictionaries."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.wal: list[WalBatch] = []
        self.writer = False
        self.fail_writes = False

    def _check(self) -> None:
        if self.fail_writes:
            raise Unavailable("storage refuses writes (test)", code="log_unwritable")

    def acquire_writer(self) -> None:
        if self.writer:
            raise Conflict("log already has a writer", code="log_writer_busy")
        self.writer = True

    def release_writer(self) -> None:
        self.writer = False

    def wal_append(self, first: int, count: int, encoded: bytes) -> None:
        self._check()
        self.wal.append((first, decode_bundle(encoded, count)))

    def wal_replay(self, start: int) -> Iterator[WalBatch]:
        for first, entries in list(self.wal):
            if first + len(entries) > start:
                yield first, list(entries)

    def wal_trim(self, below: int) -> None:
        self.wal = [(f, e) for f, e in self.wal if f + len(e) > below]

    def put(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._check()
        self.objects.update(items)

    def sync(self) -> None:
        self._check()

    def sync_wal(self) -> None:
        self._check()

    def publish_checkpoint(self, note: bytes) -> None:
        self._check()
        self.objects[CHECKPOINT_PATH] = note

    def read(self, path: str) -> bytes | None:
        if path != CHECKPOINT_PATH:
            parse_path(path)
        return self.objects.get(path)

    def write_object(self, path: str, data: bytes) -> None:
        check_object_path(path)
        self._check()
        self.objects[path] = data

    def read_object(self, path: str) -> bytes | None:
        check_object_path(path)
        return self.objects.get(path)

    def partial_widths(self, ref: TileRef) -> list[int]:
        prefix = TileRef(ref.level, ref.index).path + ".p/"
        return sorted(int(p[len(prefix):]) for p in self.objects if p.startswith(prefix))

    def close(self) -> None:
        self.release_writer()

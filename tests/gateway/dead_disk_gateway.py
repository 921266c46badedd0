"""TEST-ONLY launcher: a real gateway whose log disk dies while a file exists.

Usage: python -m tests.gateway.dead_disk_gateway CONFIG JURISDICTION FAULT_FILE

It serves the jurisdiction exactly as ``bordergate gateway serve --unreviewed``
does, except that the configured log storage is wrapped from the outside by
:class:`DeadDiskStorage`, which refuses every write while FAULT_FILE exists.
(The suite runs as root, so making the log directory read-only would not
stop the writes: the fault is injected here instead, never in ``src/``.)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bordergate.config import load_config
from bordergate.errors import Unavailable
from bordergate.gateway.startup import serve_gateway
from bordergate.tlog.storage import LogStorage, open_storage
from bordergate.tlog.storage.wal import WalBatch
from bordergate.tlog.tiles import TileRef


class DeadDiskStorage:
    """A :class:`LogStorage` that refuses writes while ``fault_file`` exists."""

    def __init__(self, inner: LogStorage, fault_file: Path) -> None:
        self._inner = inner
        self._fault = fault_file

    def _check(self) -> None:
        if self._fault.exists():
            raise Unavailable("log storage refuses writes (dead disk)", code="log_unwritable")

    def acquire_writer(self) -> None:
        self._inner.acquire_writer()

    def release_writer(self) -> None:
        self._inner.release_writer()

    def put(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._check()
        self._inner.put(items)

    def sync(self) -> None:
        self._check()
        self._inner.sync()

    def sync_wal(self) -> None:
        self._check()
        self._inner.sync_wal()

    def wal_append(self, first: int, count: int, encoded: bytes) -> None:
        self._check()
        self._inner.wal_append(first, count, encoded)

    def wal_replay(self, start: int) -> Iterator[WalBatch]:
        return self._inner.wal_replay(start)

    def wal_trim(self, below: int) -> None:
        self._check()
        self._inner.wal_trim(below)

    def publish_checkpoint(self, note: bytes) -> None:
        self._check()
        self._inner.publish_checkpoint(note)

    def read(self, path: str) -> bytes | None:
        return self._inner.read(path)

    def partial_widths(self, ref: TileRef) -> list[int]:
        return self._inner.partial_widths(ref)

    def read_object(self, path: str) -> bytes | None:
        reader = getattr(self._inner, "read_object", None)
        return reader(path) if reader is not None else None

    def close(self) -> None:
        self._inner.close()


def main() -> None:
    config, code, fault = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    deployment = load_config(config)
    storage = DeadDiskStorage(open_storage(deployment.jurisdiction(code).log.storage), fault)
    asyncio.run(serve_gateway(deployment, code, unreviewed=True, log_storage=storage))


if __name__ == "__main__":
    main()

"""File-system log storage: the embedded default.

Layout of a log directory ``DIR``::

    DIR/checkpoint                 the signed checkpoint (atomically replaced)
    DIR/tile/<L>/<N>[.p/<W>]       hash tiles
    DIR/tile/entries/<N>[.p/<W>]   entry bundles
    DIR/bundles/sha256-<hex>.tar   content-addressed objects (released policy bundles)
    DIR/.sequencer/lock            the single-writer lock (flock)
    DIR/.sequencer/wal/<first>     write-ahead segments of small batches

``checkpoint`` and ``tile/`` are exactly the C2SP tlog-tiles layout, so the
directory can be served by any static web server.  The signing key never
lives here.

Durability: files and write-ahead records are written without an fsync
each; ``sync`` makes all of them durable: an fdatasync of the write-ahead
segment, then an fsync of each file written (and its directory) when they are
few, or one ``syncfs(2)`` of the directory's file system when they are many.
``sync_wal`` makes the write-ahead records durable alone (an fdatasync of one
file): a small batch is acknowledged on it, so a full entry bundle (768 KB of
3 KB entries) is made durable by the next checkpoint, not on an append's path.
This module must never serve files or interpret entries.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from bordergate.durable import replace_file
from bordergate.errors import Conflict, Unavailable
from bordergate.tlog.storage.layout import CHECKPOINT_PATH, check_object_path
from bordergate.tlog.storage.wal import WalBatch, decode_records, encode_record
from bordergate.tlog.tiles import TileRef, parse_path

__all__ = ["FileStorage"]

@functools.cache
def _load_syncfs() -> object | None:
    # Python has no os.syncfs; one syncfs(2) per checkpoint is far cheaper than
    # an fsync for each of the thousands of tile files written per second.
    # Loaded on the first sync: finding libc runs ldconfig, which readers never need.
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_FSYNC_EACH_UP_TO = 8
_SEGMENT_DIGITS = 20


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class FileStorage:
    """A log in a directory (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._state = self.root / ".sequencer"
        self._lock_fd: int | None = None
        self._made_dirs: set[Path] = set()
        self._wal_dir = self._state / "wal"
        self._wal_lock = threading.Lock()
        self._wal_fd: int | None = None
        self._wal_dirty = False
        self._wal_new_segment = False
        self._wal_segment: tuple[int, int] | None = None  # (first, end) of the open one
        self._segment_ends: dict[int, int] = {}  # segments this process closed: first -> end
        self._unsynced: list[Path] = []
        self._sync_lock = threading.Lock()

    # -- writer role -------------------------------------------------------
    def acquire_writer(self) -> None:
        """Take the directory's flock; a second writer gets :class:`Conflict`."""
        if self._lock_fd is not None:
            return
        self._state.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Conflict(f"log {self.root} already has a writer (lock held)",
                               code="log_writer_busy") from None
            raise Unavailable(f"cannot lock log {self.root}: {e}", code="log_unavailable") from e
        self._lock_fd = fd

    def release_writer(self) -> None:
        with self._wal_lock:
            self._close_segment()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # -- write-ahead records of small batches ------------------------------------
    def _segments(self) -> list[tuple[int, Path]]:
        try:
            names = [p for p in self._wal_dir.iterdir()
                     if p.name.isdigit() and len(p.name) == _SEGMENT_DIGITS]
        except FileNotFoundError:
            return []
        return sorted((int(p.name), p) for p in names)

    def _close_segment(self) -> None:
        if self._wal_fd is not None:
            try:
                if self._wal_dirty:
                    os.fdatasync(self._wal_fd)
            finally:
                os.close(self._wal_fd)
                self._wal_fd = None
                self._wal_dirty = False
                if self._wal_segment is not None:
                    self._segment_ends[self._wal_segment[0]] = self._wal_segment[1]
                    self._wal_segment = None

    def wal_append(self, first: int, count: int, encoded: bytes) -> None:
        """Append one record to the current segment (durable after :meth:`sync`).

        Raises:
            Unavailable: the disk refused the write.
        """
        record = encode_record(first, count, encoded)
        with self._wal_lock:
            try:
                if self._wal_fd is None:
                    self._wal_dir.mkdir(parents=True, exist_ok=True)
                    path = self._wal_dir / str(first).zfill(_SEGMENT_DIGITS)
                    self._wal_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    self._wal_new_segment = True
                    self._wal_segment = (first, first)
                _write_all(self._wal_fd, record)
                assert self._wal_segment is not None
                self._wal_segment = (self._wal_segment[0], first + count)
            except OSError as e:
                raise Unavailable(f"log write-ahead append failed: {e}",
                                  code="log_unwritable") from e
            self._wal_dirty = True

    def wal_replay(self, start: int) -> Iterator[WalBatch]:
        """Yield intact records holding entries at ``start`` or later; cut torn tails."""
        segments = self._segments()
        for i, (_first, path) in enumerate(segments):
            following = segments[i + 1][0] if i + 1 < len(segments) else None
            if following is not None and following <= start:
                continue
            data = path.read_bytes()
            good = 0
            for end, first, entries in decode_records(data):
                good = end
                if first + len(entries) > start:
                    yield first, entries
            if good != len(data) and self._lock_fd is not None:
                with open(path, "r+b") as f:  # the torn tail was never acknowledged
                    f.truncate(good)
                    os.fsync(f.fileno())

    def wal_trim(self, below: int) -> None:
        """Close the current segment; delete segments whose entries are all below ``below``.

        Runs under the lock an append takes, so it never reads a segment this
        process wrote (their ends are kept): only one left by an earlier process.
        """
        with self._wal_lock:
            try:
                self._close_segment()
                segments = self._segments()
                for i, (first, path) in enumerate(segments):
                    if i + 1 < len(segments):
                        end = segments[i + 1][0]
                    elif first in self._segment_ends:
                        end = self._segment_ends[first]
                    else:
                        end = max((f + len(e) for _, f, e in decode_records(path.read_bytes())),
                                  default=0)
                    if end <= below:
                        path.unlink()
                        self._segment_ends.pop(first, None)
            except OSError as e:
                raise Unavailable(f"log write-ahead trim failed: {e}",
                                  code="log_unwritable") from e

    def sync_wal(self) -> None:
        """Make every earlier write-ahead record durable (files put stay lazy).

        Raises:
            Unavailable: the disk refused it.
        """
        try:
            self._sync_wal()
        except OSError as e:
            raise Unavailable(f"log write-ahead sync failed: {e}", code="log_unwritable") from e

    def _sync_wal(self) -> None:
        with self._wal_lock:
            if self._wal_fd is not None and self._wal_dirty:
                os.fdatasync(self._wal_fd)
                self._wal_dirty = False
            if self._wal_new_segment:
                self._fsync_dir(self._wal_dir)
                self._wal_new_segment = False

    # -- tiles and checkpoint ----------------------------------------------
    def put(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write tiles/bundles, each atomically (temp file, rename); no fsync.

        A path may be written again with the same bytes (recovery, a partial
        tile of an upper level); the rename means a reader or a crash sees the
        old or the new file whole, never a truncated one.

        Raises:
            Unavailable: the disk refused the write.
        """
        try:
            for rel, data in items:
                path = self.root / rel
                parent = path.parent
                if parent not in self._made_dirs:
                    parent.mkdir(parents=True, exist_ok=True)
                    self._made_dirs.add(parent)
                self._write_new(path, data)
                self._unsynced.append(path)
        except OSError as e:
            raise Unavailable(f"log tile write failed: {e}", code="log_unwritable") from e

    @staticmethod
    def _write_new(path: Path, data: bytes) -> None:
        # A new path is created exclusively and written in place: if a crash
        # tears it, it belonged to a batch that was never acknowledged, and
        # recovery writes it again.  An existing path is replaced atomically,
        # so a file a checkpoint may name is never seen truncated.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            return
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """Make every earlier put durable.

        A few files (a checkpoint's) are fsynced one by one with their
        directories, so latency does not depend on what other processes have
        left dirty on the file system; many files (bulk appends) take one
        ``syncfs`` of the directory's file system instead.  Two threads' syncs
        run one after the other: when a sync returns, the files another thread's
        sync took are durable too.
        """
        with self._sync_lock:
            self._sync_files()

    def _sync_files(self) -> None:
        paths, self._unsynced = self._unsynced, []
        try:
            self._sync_wal()
            if not paths:
                return
            syncfs = _load_syncfs() if len(paths) > _FSYNC_EACH_UP_TO else None
            if syncfs is not None:
                fd = os.open(self.root, os.O_RDONLY)
                try:
                    if syncfs(fd) != 0:  # type: ignore[operator]
                        import ctypes

                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                return
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
            for d in {p.parent for p in paths}:
                self._fsync_dir(d)
        except OSError as e:
            raise Unavailable(f"log sync failed: {e}", code="log_unwritable") from e

    def publish_checkpoint(self, note: bytes) -> None:
        """Write ``checkpoint`` atomically (temp file, fsync, rename, fsync dir).

        Raises:
            Unavailable: the disk refused the write.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            replace_file(self.root / CHECKPOINT_PATH, note)
        except OSError as e:
            raise Unavailable(f"checkpoint publication failed: {e}", code="log_unwritable") from e

    def read(self, path: str) -> bytes | None:
        """Read ``checkpoint`` or a tile path; None if absent.

        Raises:
            VerificationError: ``path`` is neither (never touches other files).
        """
        if path != CHECKPOINT_PATH:
            parse_path(path)
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unavailable(f"log read failed: {e}", code="log_unavailable") from e

    def write_object(self, path: str, data: bytes) -> None:
        """Durably store a content-addressed object (``bundles/sha256-<hex>.tar``).

        Raises:
            VerificationError: any other path.
            Unavailable: the disk refused the write.
        """
        check_object_path(path)
        target = self.root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_file(target, data)
        except OSError as e:
            raise Unavailable(f"object write failed: {e}", code="log_unwritable") from e

    def read_object(self, path: str) -> bytes | None:
        """Read a content-addressed object; None if absent.

        Raises:
            VerificationError: any path but ``bundles/sha256-<hex>.tar``.
        """
        check_object_path(path)
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unavailable(f"object read failed: {e}", code="log_unavailable") from e

    def partial_widths(self, ref: TileRef) -> list[int]:
        """Widths of the ``.p/<W>`` versions of ``ref`` present on disk."""
        full = self.root / TileRef(ref.level, ref.index).path
        folder = full.parent / (full.name + ".p")
        try:
            names = [p.name for p in folder.iterdir()]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise Unavailable(f"log read failed: {e}", code="log_unavailable") from e
        return sorted(int(n) for n in names if n.isdigit() and 0 < int(n) < 256
                      and str(int(n)) == n)

    def close(self) -> None:
        self.release_writer()

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release_writer()

"""Replacing a small file atomically and durably: how bordergate writes state files.

Checkpoints, key files, auditor and witness state, evidence and reports are
all written the same way: a temporary file beside the target, fsync, rename
over the target, fsync of the directory.  A reader or a crash sees the old
file or the new one, whole, never a mix.  This module must never interpret
what it writes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_file", "sync_directory", "write_whole"]


def replace_file(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Atomically and durably replace ``path`` with ``data`` (file ``mode``).

    Raises:
        OSError: the write failed; ``path`` is unchanged and no temp file is left.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            write_whole(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_directory(path.parent)


def write_whole(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the open file ``fd`` and fsync it.

    Raises:
        OSError: the write or the sync failed (the file may hold part of ``data``).
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def sync_directory(directory: Path) -> None:
    """Make the names in ``directory`` durable (after a file was created, renamed or
    linked there)."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

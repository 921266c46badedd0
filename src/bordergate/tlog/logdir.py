"""Opening a log named on the command line: its storage, key file and settings.

A log is named by a directory ``DIR`` or a ``postgresql://`` URL (the
database's log, as a deployment's ``log.storage`` names it; parsed by
:func:`bordergate.locations.parse_log_location`).  With the files backend the
tiles live in ``DIR`` itself; ``DIR/.sequencer/storage.json`` may instead record
a database URL and log name (``log init DIR --postgres URL``), and ``DIR`` then
holds nothing else.  A log named by its URL has no ``DIR.key``: its commands
that sign take ``--key-file``.  The signing key
lives beside the served directory (``DIR.key``, mode 0600) or where
``--key-file`` says, never inside ``DIR``.

Key files are created 0600 and the directories and public keys the provisioning
commands create (:func:`make_dirs`, :func:`write_public`) are never writable by
group or others, whatever the process's umask (found by the keys review: under
umask 0 ``gateway init`` left every key directory 0777 and the log's verifier key
0666, for any local user to replace).

This module must never sign, serve or interpret entries, and never create a
file or directory another user can write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bordergate.errors import ConfigError
from bordergate.tlog.storage import LogStorage
from bordergate.tlog.storage.fs import FileStorage

if TYPE_CHECKING:
    from bordergate.tlog.note import Signer

__all__ = [
    "default_key_file",
    "key_file_for",
    "make_dirs",
    "open_log",
    "open_log_storage",
    "read_signer",
    "record_key_file",
    "record_postgres",
    "write_key",
    "write_public",
]

#: link(2) failures meaning the file system has no hard links (write_key then
#: creates the file in place with O_EXCL, removing it if the write fails).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                            errno.ENOSYS, errno.EMLINK})
_POINTER = Path(".sequencer") / "storage.json"
_KEY_POINTER = Path(".sequencer") / "key-path"


def default_key_file(log_dir: Path) -> Path:
    """The log's signing key file: where ``log init`` recorded it, else ``DIR.key``."""
    pointer = log_dir / _KEY_POINTER
    if pointer.is_file():
        return Path(pointer.read_text().strip())
    resolved = log_dir.resolve()
    return resolved.with_name(resolved.name + ".key")


def record_key_file(log_dir: Path, key_file: Path) -> None:
    """Remember where the signing key lives (its path only: the key stays outside)."""
    write_public(log_dir / _KEY_POINTER, str(key_file.resolve()) + "\n")


def make_dirs(path: Path) -> None:
    """Create directory ``path`` and its missing parents, each at most 0755 whatever
    the umask (never writable by group or others: a directory holding keys must not
    let another user rename, replace or plant files in it).  Existing directories
    are left as they are."""
    missing: list[Path] = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)  # the umask can only take bits away
        except FileExistsError:
            continue


def write_public(path: Path, text: str) -> None:
    """Write a file anyone may read and only its owner change (a verifier key, a
    public key, the pointer to a log's key), mode 0644 whatever the umask,
    atomically (a crash leaves no half-written file); its directory is made by
    :func:`make_dirs`.

    Raises:
        OSError: the write failed.
    """
    from bordergate.durable import replace_file

    make_dirs(path.parent)
    replace_file(path, text.encode("utf-8"), mode=0o644)


def write_key(path: Path, secret: str) -> None:
    """Create a key file readable only by its owner; refuse to overwrite.

    The key is written whole to a fresh 0600 temporary file beside ``path``,
    fsynced, then linked to ``path`` (which fails if anything, a symbolic link
    included, is there) and the directory fsynced: a crash or a full disk leaves
    no file or the whole key, never a truncated one that would be kept for ever
    ("never overwrites") or a key lost after what it signed was made durable
    (found by the keys review).

    Raises:
        ConfigError: ``key_file_exists``: the file already exists.
        OSError: the key could not be written (nothing is left at ``path``).
    """
    exists = ConfigError(f"key file {path} already exists; refusing to overwrite it",
                         code="key_file_exists")
    if os.path.lexists(path):
        raise exists
    from bordergate.durable import sync_directory, write_whole

    data = (secret + "\n").encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, 0o600)
            write_whole(fd, data)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces: EEXIST for a file or a link there
        except FileExistsError:
            raise exists from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _write_in_place(path, data, exists)  # a file system without hard links
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    sync_directory(path.parent)


def _write_in_place(path: Path, data: bytes, exists: ConfigError) -> None:
    """Create ``path`` (never following or replacing anything there) and write
    ``data``; removed again if the write fails, so no cut key stays."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise exists from None
    from bordergate.durable import write_whole

    try:
        try:
            write_whole(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def read_signer(path: Path) -> Signer:
    """Load a log signing key file.

    Raises:
        ConfigError: missing, unreadable, or not a signer key.
    """
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read key file {path}: {e.strerror}",
                          code="key_file_unreadable") from None
    from bordergate.errors import VerificationError
    from bordergate.tlog.note import Signer  # here: reading a checkpoint needs no crypto
    try:
        return Signer.from_key_string(text)
    except VerificationError as e:
        raise ConfigError(f"{path} is not a log signing key: {e}",
                          code="key_file_invalid") from None


def record_postgres(log_dir: Path, url: str) -> None:
    """Remember that the log named by ``log_dir`` lives in PostgreSQL."""
    write_public(log_dir / _POINTER, json.dumps({"postgres": url, "log": log_dir.resolve().name}))


def open_log_storage(log_dir: Path) -> LogStorage:
    """The storage of the log named by ``log_dir`` (files unless recorded otherwise)."""
    pointer = log_dir / _POINTER
    if pointer.exists():
        try:
            info = json.loads(pointer.read_text())
            url, name = str(info["postgres"]), str(info["log"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{pointer} is damaged: {e}", code="log_config_invalid") from None
        from bordergate.tlog.storage.postgres import PostgresStorage
        return PostgresStorage(url, log=name)
    return FileStorage(log_dir)


def open_log(location: str) -> LogStorage:
    """The storage of the log named on a command line: a directory (files, or the
    database its pointer records) or a ``postgresql://`` URL.

    Raises:
        ConfigError: ``log_location`` for another URL scheme or an empty name.
    """
    from bordergate.locations import parse_log_location
    where = parse_log_location(location)
    if where.kind == "postgresql":
        from bordergate.tlog.storage.postgres import PostgresStorage
        return PostgresStorage(where.target)
    return open_log_storage(Path(where.target))


def key_file_for(location: str, key_file: Path | None) -> Path:
    """The signing key of the log named ``location``: ``key_file`` if given, else the
    directory's (:func:`default_key_file`).

    Raises:
        ConfigError: ``key_file_required`` for a log named by a URL without ``key_file``.
    """
    if key_file is not None:
        return key_file
    from bordergate.locations import is_postgres_url
    if is_postgres_url(location):
        raise ConfigError("a log named by its postgresql:// URL needs --key-file",
                          code="key_file_required")
    return default_key_file(Path(location))

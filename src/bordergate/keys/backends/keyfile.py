"""The local key-file backend (default): one jurisdiction's KEKs in one 0600 file.

File format (JSON, UTF-8)::

    {"format": "bordergate-kek-file/1", "jurisdiction": "us",
     "versions": {"1": "<base64 of 32 key bytes>", "2": "..."}}

The file is created with mode 0600 (``O_CREAT|O_EXCL``), and a file readable
by group or others is refused.  Every change is written to a fresh 0600
temporary file in the same directory, fsynced and renamed over the old one
(so a crash never leaves a half-written key file), under an exclusive lock on
``<file>.lock`` so two processes cannot lose each other's versions.  Other
processes notice a changed file (inode, mtime, size) on their next wrap or
unwrap and re-read it, so a destroyed version stops working everywhere.

Destroying a version removes it from the file.  Blocks the file system freed
may still hold the old bytes: a deployment that needs guaranteed physical
destruction of a KEK uses the PKCS#11 backend.

This module must never log, print or copy key bytes anywhere but the key
file, never put them in an exception message or ``repr``, and never open its
lock through a symbolic link.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bordergate.durable import replace_file
from bordergate.errors import ConfigError, NotFound, Unavailable
from bordergate.keys.backends.software import SoftwareKeks
from bordergate.subjects import parse_jurisdiction

__all__ = ["FILE_FORMAT", "LocalKeyFile"]

FILE_FORMAT = "bordergate-kek-file/1"
_MAX_FILE_BYTES = 1 << 20


class LocalKeyFile(SoftwareKeks):
    """KEK versions of one jurisdiction kept in a local, owner-only file."""

    kind = "file"
    inline_unwraps = True  # one stat and one AES-GCM open; the file is re-read only if it changed

    def __init__(self, path: str | Path, *, jurisdiction: str, create: bool = False) -> None:
        """Open (or with ``create``, create empty) the key file at ``path``.

        Raises:
            ConfigError: ``key_file_missing``, ``key_file_permissions`` (readable
                by group or others), ``key_file_invalid``, or
                ``key_file_jurisdiction`` (the file belongs to another jurisdiction).
            Unavailable: ``key_backend_unavailable`` if the file cannot be read.
        """
        self._jurisdiction = parse_jurisdiction(jurisdiction)
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._mutex = threading.Lock()
        if create and not self._path.exists():
            with self._locked():
                if not self._path.exists():
                    self._write({})
        self._seen: tuple[int, int, int] | None = None
        self._keks: dict[int, AESGCM] = self._read()

    def __repr__(self) -> str:
        return f"LocalKeyFile(path={str(self._path)!r}, jurisdiction={self._jurisdiction!r})"

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose KEKs these are."""
        return self._jurisdiction

    @property
    def path(self) -> Path:
        """Where the key file lives."""
        return self._path

    def versions(self) -> tuple[int, ...]:
        """The KEK versions in the file, ascending (re-read from disk)."""
        keks = self._read()
        with self._mutex:
            self._keks = keks
        return tuple(sorted(keks))

    def create_version(self) -> int:
        """Add the next KEK version to the file and return it."""
        with self._locked():
            raw = self._read_raw()
            version = max(raw, default=0) + 1
            raw[version] = os.urandom(32)
            self._write(raw)
            keks = {v: AESGCM(k) for v, k in raw.items()}
        with self._mutex:
            self._keks = keks
        return version

    def destroy_version(self, version: int) -> None:
        """Remove KEK ``version`` from the file.

        Raises:
            NotFound: ``kek_version_not_found``.
        """
        with self._locked():
            raw = self._read_raw()
            if raw.pop(version, None) is None:
                raise NotFound(f"KEK version {version} does not exist",
                               code="kek_version_not_found")
            self._write(raw)
            keks = {v: AESGCM(k) for v, k in raw.items()}
        with self._mutex:
            self._keks = keks

    def close(self) -> None:
        """Forget the KEKs held in memory."""
        with self._mutex:
            self._keks = {}

    def _kek(self, version: int) -> AESGCM:
        # Another process may have created or destroyed a version: one stat per
        # call (unwraps are rare behind the key ring's cache) keeps us coherent.
        if self._signature() != self._seen:
            keks = self._read()
            with self._mutex:
                self._keks = keks
        with self._mutex:
            kek = self._keks.get(version)
        if kek is None:
            raise NotFound(f"KEK version {version} of {self._jurisdiction} does not exist",
                           code="kek_version_not_found")
        return kek

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            # never through a link planted there (it would create the link's target)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise Unavailable(f"cannot lock key file {self._path}: {exc.strerror}",
                              code="key_backend_unavailable") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> dict[int, AESGCM]:
        seen = self._signature()
        keks = {v: AESGCM(k) for v, k in self._read_raw().items()}
        self._seen = seen
        return keks

    def _read_raw(self) -> dict[int, bytes]:
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise ConfigError(f"key file {self._path} does not exist (run `bordergate keys init`)",
                              code="key_file_missing") from exc
        except OSError as exc:
            raise Unavailable(f"cannot open key file {self._path}: {exc.strerror}",
                              code="key_backend_unavailable") from exc
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if stat.S_IMODE(mode) & 0o077:
                raise ConfigError(
                    f"key file {self._path} is readable by others (mode "
                    f"{stat.S_IMODE(mode):04o}); it must be 0600",
                    code="key_file_permissions",
                )
            data = handle.read(_MAX_FILE_BYTES + 1)
        return self._parse(data)

    def _parse(self, data: bytes) -> dict[int, bytes]:
        bad = ConfigError(f"key file {self._path} is not a bordergate key file",
                          code="key_file_invalid")
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
                raise bad
            versions = doc["versions"]
            owner = doc["jurisdiction"]
            if not isinstance(versions, dict):
                raise bad
            raw = {int(v): base64.b64decode(k, validate=True) for v, k in versions.items()}
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise bad from exc
        if owner != self._jurisdiction:
            raise ConfigError(f"key file {self._path} holds keys of {owner!r}, "
                              f"not {self._jurisdiction!r}", code="key_file_jurisdiction")
        if any(v < 1 or len(k) != 32 for v, k in raw.items()):
            raise bad
        return raw

    def _write(self, raw: dict[int, bytes]) -> None:
        doc = {
            "format": FILE_FORMAT,
            "jurisdiction": self._jurisdiction,
            "versions": {str(v): base64.b64encode(k).decode("ascii")
                         for v, k in sorted(raw.items())},
        }
        data = json.dumps(doc, indent=1).encode("utf-8") + b"\n"
        try:
            replace_file(self._path, data, mode=0o600)
        except OSError as exc:
            raise Unavailable(f"cannot write key file {self._path}: {exc.strerror}",
                              code="key_backend_unavailable") from exc

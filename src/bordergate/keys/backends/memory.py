"""The in-memory key backend: the test twin of the file and PKCS#11 backends.

KEKs live in this process only and vanish with it.  Tests may pass a
``seed`` to derive KEK bytes deterministically (test-only; never in a
deployment).  This module must never write anything anywhere.
"""

from __future__ import annotations

import hashlib
import os
import threading

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bordergate.errors import NotFound
from bordergate.keys.backends.software import SoftwareKeks
from bordergate.subjects import parse_jurisdiction

__all__ = ["MemoryKeyBackend"]


class MemoryKeyBackend(SoftwareKeks):
    """Versioned KEKs held in a dict; same contract as every :class:`KeyBackend`."""

    kind = "memory"
    inline_unwraps = True  # one AES-GCM open in memory

    def __init__(self, jurisdiction: str, *, seed: bytes | None = None) -> None:
        self._jurisdiction = parse_jurisdiction(jurisdiction)
        self._seed = seed
        self._keks: dict[int, AESGCM] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryKeyBackend(jurisdiction={self._jurisdiction!r})"

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose KEKs these are."""
        return self._jurisdiction

    def versions(self) -> tuple[int, ...]:
        """The KEK versions that exist, ascending."""
        with self._lock:
            return tuple(sorted(self._keks))

    def create_version(self) -> int:
        """Create the next KEK version and return it."""
        with self._lock:
            version = max(self._keks, default=0) + 1
            if self._seed is None:
                material = os.urandom(32)
            else:  # test-only determinism
                material = hashlib.sha256(self._seed + self._jurisdiction.encode()
                                          + version.to_bytes(4, "big")).digest()
            self._keks[version] = AESGCM(material)
            return version

    def _kek(self, version: int) -> AESGCM:
        with self._lock:
            kek = self._keks.get(version)
        if kek is None:
            raise NotFound(f"KEK version {version} of {self._jurisdiction} does not exist",
                           code="kek_version_not_found")
        return kek

    def destroy_version(self, version: int) -> None:
        """Forget KEK ``version``.

        Raises:
            NotFound: ``kek_version_not_found``.
        """
        with self._lock:
            if self._keks.pop(version, None) is None:
                raise NotFound(f"KEK version {version} does not exist",
                               code="kek_version_not_found")

    def close(self) -> None:
        """Nothing to release."""

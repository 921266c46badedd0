"""A jurisdiction's key ring: per-subject data keys, wrapped by versioned KEKs.

The key ring joins a :class:`~bordergate.keys.backend.KeyBackend` (the KEKs)
with a :class:`DataKeyStore` (the wrapped data keys, kept in the
jurisdiction's own record store) and hands out :class:`SubjectCipher` objects
that seal and open field values (promise 1).

* ``cipher_for(subject, create=True)`` creates a subject's data key on first
  write (a ``data-key-created`` event); later calls unwrap it once and then
  serve it from a bounded per-process LRU cache (memory only, never written).
* ``rotate()`` creates a new KEK version and re-wraps every data key under it;
  old data stays readable because the data keys themselves do not change.
  ``destroy_version(v)`` then destroys the old KEK, refusing while any data
  key is still wrapped under it.  That is what makes erasures final: every
  copy of a data key wrapped under ``v`` (backups, old copies of the store)
  stops opening.  ``bordergate keys`` logs it (:mod:`bordergate.custody_log`).
* ``shredded(subject)`` evicts a subject whose data key the store destroyed
  (crypto-shredding, promise 8) and yields the ``subject-shredded`` event.

Every auditable operation returns :class:`~bordergate.keys.events.KeyEvent`
values.  This module must never log, persist or return raw key bytes; only
:class:`SubjectCipher` holds a usable key, inside an OpenSSL context.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bordergate.errors import ConfigError, Conflict, NotFound, VerificationError
from bordergate.keys.backend import KeyBackend
from bordergate.keys.envelope import (
    DATA_KEY_BYTES,
    FORMAT_V1,
    NONCE_BYTES,
    SEAL_OVERHEAD,
    data_key_aad,
    open_sealed,
    seal,
    seal_many,
)
from bordergate.keys.events import KeyEvent, KeyEventKind
from bordergate.subjects import SubjectId

__all__ = [
    "DEFAULT_CACHE_ENTRIES",
    "DataKeyCache",
    "DataKeyStore",
    "KeyRing",
    "KeyRingStatus",
    "SubjectCipher",
    "WrappedDataKey",
    "initialise",
    "refuse_new_kek",
]

#: Default bound of the per-process unwrapped-data-key cache.
DEFAULT_CACHE_ENTRIES = 10_000
_REWRAP_BATCH = 500


def initialise(backend: KeyBackend, *, clock: Callable[[], float] = time.time,
               stored: Mapping[int, int] | None = None) -> KeyEvent:
    """Create KEK version 1 of a jurisdiction (``bordergate keys init``).

    ``stored``: the jurisdiction's store's data keys per KEK version
    (``DataKeyStore.data_key_counts``), when the caller knows the store.  A backend
    without a KEK over a store holding data keys has lost the KEK they are wrapped
    under (a key file missing, another token): a new version 1 would open none of
    them and clash with the old one's return, so it is refused (found by the keys
    review: ``gateway init`` silently made one).

    Raises:
        Conflict: ``keys_already_initialised`` if a KEK exists.
        ConfigError: ``kek_missing_for_stored_keys``.
        Unavailable: the backend cannot be reached.
    """
    if backend.versions():
        raise Conflict(f"{backend.jurisdiction} already has a KEK",
                       code="keys_already_initialised")
    refuse_new_kek(backend.jurisdiction, stored or {})
    return KeyEvent(kind=KeyEventKind.KEK_CREATED, jurisdiction=backend.jurisdiction,
                    kek_version=backend.create_version(), time=clock())


def refuse_new_kek(jurisdiction: str, stored: Mapping[int, int]) -> None:
    """Refuse to create a first KEK while the store holds data keys (:func:`initialise`).

    Raises:
        ConfigError: ``kek_missing_for_stored_keys``.
    """
    held = {v: n for v, n in stored.items() if n}
    if held:
        raise ConfigError(
            f"the store of {jurisdiction} holds {sum(held.values())} data keys wrapped under "
            f"KEK version(s) {', '.join(map(str, sorted(held)))}, but the key backend has no "
            "KEK (a key file missing, another token?): a new KEK would open none of them; "
            "restore the key backend", code="kek_missing_for_stored_keys")


@dataclass(frozen=True, slots=True)
class WrappedDataKey:
    """A subject's data key as stored: sealed under KEK ``kek_version``.

    ``key_id`` names the data key (random, 16 bytes) so that a cached key can
    be told apart from a newer one created after an erasure.
    """

    subject: SubjectId
    key_id: bytes
    kek_version: int
    wrapped: bytes


class DataKeyStore(Protocol):
    """Where a jurisdiction keeps its wrapped data keys (its record store)."""

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction the store is bound to."""
        ...

    def get_data_key(self, subject: SubjectId) -> WrappedDataKey | None:
        """The subject's wrapped data key, or ``None``."""
        ...

    def add_data_key(self, key: WrappedDataKey) -> WrappedDataKey:
        """Store ``key`` unless the subject already has one; return the stored one."""
        ...

    def rewrap_data_key(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Replace ``old`` by ``new`` if ``old`` is still stored; report whether it was."""
        ...

    def data_keys_not_under(self, kek_version: int, after: str,
                            limit: int) -> list[WrappedDataKey]:
        """Up to ``limit`` keys not wrapped under ``kek_version``, subject id > ``after``."""
        ...

    def data_key_counts(self) -> dict[int, int]:
        """How many data keys are wrapped under each KEK version."""
        ...


class SubjectCipher:
    """A subject's unwrapped data key, usable only to seal and open field values."""

    __slots__ = ("_aead", "kek_version", "key_id", "subject")

    def __init__(self, subject: SubjectId, key_id: bytes, kek_version: int,
                 data_key: bytes) -> None:
        self.subject = subject
        self.key_id = key_id
        self.kek_version = kek_version
        self._aead = AESGCM(data_key)

    def __repr__(self) -> str:
        return f"SubjectCipher(subject={str(self.subject)!r}, kek_version={self.kek_version})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt one value (format of :mod:`bordergate.keys.envelope`)."""
        return seal(self._aead, plaintext, aad)

    def seal_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """Encrypt several ``(plaintext, aad)`` values (:func:`.envelope.seal_many`)."""
        return seal_many(self._aead, items)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """Decrypt one value.

        Raises:
            VerificationError: ``sealed_format`` or ``decryption_failed``.
        """
        # Hot path of every read: the checks of envelope.open_sealed, inlined.
        if len(sealed) < SEAL_OVERHEAD or sealed[0] != FORMAT_V1:
            return open_sealed(self._aead, sealed, aad)  # raises sealed_format
        try:
            return self._aead.decrypt(sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise VerificationError("sealed value does not open under this key and context",
                                    code="decryption_failed") from exc


class DataKeyCache:
    """Bounded LRU of unwrapped data keys: per process, memory only."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max = max_entries
        self._entries: OrderedDict[str, SubjectCipher] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, subject: str) -> SubjectCipher | None:
        """The cached cipher of ``subject``, marking it recently used."""
        with self._lock:
            cipher = self._entries.get(subject)
            if cipher is not None:
                self._entries.move_to_end(subject)
            return cipher

    def put(self, cipher: SubjectCipher) -> None:
        """Cache ``cipher``, evicting the least recently used beyond the bound."""
        if self._max == 0:
            return
        with self._lock:
            self._entries[str(cipher.subject)] = cipher
            self._entries.move_to_end(str(cipher.subject))
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def evict(self, subject: str) -> None:
        """Forget one subject's key."""
        with self._lock:
            self._entries.pop(subject, None)

    def evict_version(self, kek_version: int) -> None:
        """Forget every key that was unwrapped under KEK ``kek_version``."""
        with self._lock:
            for name in [n for n, c in self._entries.items() if c.kek_version == kek_version]:
                del self._entries[name]


@dataclass(frozen=True, slots=True)
class KeyRingStatus:
    """What ``bordergate keys status`` shows; no key material."""

    jurisdiction: str
    backend: str
    versions: tuple[int, ...]
    current: int | None
    data_keys: dict[int, int]
    cached: int


class KeyRing:
    """Data keys of one jurisdiction: create, unwrap (cached), rotate, shred."""

    def __init__(self, backend: KeyBackend, store: DataKeyStore, *,
                 cache_entries: int = DEFAULT_CACHE_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        """Bind a backend and a data-key store of the same jurisdiction.

        Raises:
            ConfigError: ``jurisdiction_mismatch`` if they belong to different ones.
        """
        if backend.jurisdiction != store.jurisdiction:
            raise ConfigError(
                f"key backend of {backend.jurisdiction!r} cannot serve the store of "
                f"{store.jurisdiction!r}", code="jurisdiction_mismatch")
        self._backend = backend
        self._store = store
        self._cache = DataKeyCache(cache_entries)
        self._clock = clock
        self._create_lock = threading.Lock()

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction of this key ring."""
        return self._backend.jurisdiction

    @property
    def inline_unwraps(self) -> bool:
        """Whether the backend's ``unwrap`` may run on an event loop (see ``KeyBackend``)."""
        return self._backend.inline_unwraps

    @property
    def cache(self) -> DataKeyCache:
        """The per-process unwrapped-key cache (exposed for tests and status)."""
        return self._cache

    def _event(self, kind: KeyEventKind, version: int, subject: SubjectId | None = None,
               count: int | None = None) -> KeyEvent:
        return KeyEvent(kind=kind, jurisdiction=self.jurisdiction, kek_version=version,
                        time=self._clock(), subject=subject, count=count)

    def current_version(self) -> int:
        """The KEK version new data keys are wrapped under.

        Raises:
            ConfigError: ``keys_not_initialised`` if no KEK exists yet.
        """
        versions = self._backend.versions()
        if not versions:
            raise ConfigError(f"no KEK for {self.jurisdiction} (run `bordergate keys init`)",
                              code="keys_not_initialised")
        return versions[-1]

    def init(self) -> KeyEvent:
        """Create KEK version 1.

        Raises:
            Conflict: ``keys_already_initialised`` if a KEK exists.
            ConfigError: ``kek_missing_for_stored_keys`` if the store holds data keys.
        """
        return initialise(self._backend, clock=self._clock,
                          stored=self._store.data_key_counts())

    def cipher_for(self, subject: SubjectId, *,
                   create: bool = False) -> tuple[SubjectCipher, KeyEvent | None]:
        """The subject's cipher, from the cache or unwrapped; optionally created.

        With ``create`` the stored key is always looked up (one cheap read), so a
        writer never seals under a key that another process has shredded.

        Raises:
            NotFound: ``no_data_key`` if the subject has none and ``create`` is false.
            ConfigError: ``keys_not_initialised`` when creating without a KEK.
            VerificationError: if a stored wrapped key does not open.
        """
        cached = self._cache.get(str(subject))
        if cached is not None and not create:
            return cached, None
        stored = self._store.get_data_key(subject)
        if stored is not None:
            if cached is not None and cached.key_id == stored.key_id:
                return cached, None
            return self._unwrap(stored), None
        if not create:
            raise NotFound("the subject has no data key (never written, or erased)",
                           code="no_data_key")
        return self._create(subject)

    def refresh(self, subject: SubjectId) -> SubjectCipher:
        """Drop a cached key and unwrap the stored one again (after a failed open).

        Raises:
            NotFound: ``no_data_key``.
        """
        self._cache.evict(str(subject))
        cipher, _ = self.cipher_for(subject)
        return cipher

    def _unwrap(self, stored: WrappedDataKey) -> SubjectCipher:
        aad = data_key_aad(self.jurisdiction, str(stored.subject), stored.kek_version)
        data_key = self._backend.unwrap(stored.wrapped, aad, stored.kek_version)
        if len(data_key) != DATA_KEY_BYTES:
            raise VerificationError("unwrapped data key has the wrong size",
                                    code="decryption_failed")
        cipher = SubjectCipher(stored.subject, stored.key_id, stored.kek_version, data_key)
        self._cache.put(cipher)
        return cipher

    def _create(self, subject: SubjectId) -> tuple[SubjectCipher, KeyEvent | None]:
        with self._create_lock:
            version = self.current_version()
            data_key = os.urandom(DATA_KEY_BYTES)
            aad = data_key_aad(self.jurisdiction, str(subject), version)
            new = WrappedDataKey(subject, os.urandom(16), version,
                                 self._backend.wrap(data_key, aad, version))
            stored = self._store.add_data_key(new)
        if stored.key_id != new.key_id:  # another writer won the race: use theirs
            return self._unwrap(stored), None
        cipher = SubjectCipher(subject, new.key_id, version, data_key)
        self._cache.put(cipher)
        return cipher, self._event(KeyEventKind.DATA_KEY_CREATED, version, subject)

    def new_data_key(self, subject: SubjectId, kek_version: int | None = None
                     ) -> tuple[SubjectCipher, WrappedDataKey, KeyEvent]:
        """A new data key for ``subject``, wrapped but not stored: the caller
        stores it with the records sealed under it in one transaction (a bulk
        import, ``RecordStore.put_batch``), and logs the event.  ``kek_version``:
        the current version as the caller just read it (a bulk import reads it
        once per batch), else read from the backend now.

        Raises:
            ConfigError: ``keys_not_initialised``.
        """
        version = self.current_version() if kek_version is None else kek_version
        data_key = os.urandom(DATA_KEY_BYTES)
        aad = data_key_aad(self.jurisdiction, str(subject), version)
        wrapped = WrappedDataKey(subject, os.urandom(16), version,
                                 self._backend.wrap(data_key, aad, version))
        cipher = SubjectCipher(subject, wrapped.key_id, version, data_key)
        return cipher, wrapped, self._event(KeyEventKind.DATA_KEY_CREATED, version, subject)

    def rewrap(self) -> KeyEvent:
        """Re-wrap every data key not under the current KEK version.

        Resumable: running it again after a crash finishes the job.

        Raises:
            ConfigError: ``keys_not_initialised``.
        """
        target = self.current_version()
        after, count = "", 0
        while True:
            batch = self._store.data_keys_not_under(target, after, _REWRAP_BATCH)
            if not batch:
                break
            for old in batch:
                old_aad = data_key_aad(self.jurisdiction, str(old.subject), old.kek_version)
                data_key = self._backend.unwrap(old.wrapped, old_aad, old.kek_version)
                new_aad = data_key_aad(self.jurisdiction, str(old.subject), target)
                new = WrappedDataKey(old.subject, old.key_id, target,
                                     self._backend.wrap(data_key, new_aad, target))
                if self._store.rewrap_data_key(old, new):
                    count += 1
            after = str(batch[-1].subject)
        return self._event(KeyEventKind.KEK_ROTATED, target, count=count)

    def rotate(self) -> list[KeyEvent]:
        """Create a new KEK version and re-wrap every data key under it.

        Raises:
            ConfigError: ``keys_not_initialised``.
        """
        self.current_version()
        created = self._event(KeyEventKind.KEK_CREATED, self._backend.create_version())
        return [created, self.rewrap()]

    def destroy_version(self, version: int) -> KeyEvent:
        """Destroy an old KEK version once no data key is wrapped under it.

        Raises:
            Conflict: ``kek_version_current`` or ``kek_version_in_use``.
            NotFound: ``kek_version_not_found``.
        """
        if version == self.current_version():
            raise Conflict(f"KEK version {version} is current; rotate first",
                           code="kek_version_current")
        in_use = self._store.data_key_counts().get(version, 0)
        if in_use:
            raise Conflict(f"{in_use} data keys are still wrapped under KEK version "
                           f"{version}; run rewrap first", code="kek_version_in_use")
        self._backend.destroy_version(version)
        self._cache.evict_version(version)
        return self._event(KeyEventKind.KEK_DESTROYED, version)

    def shredded(self, subject: SubjectId, kek_version: int) -> KeyEvent:
        """Record that the store destroyed ``subject``'s data key: evict and report."""
        self._cache.evict(str(subject))
        return self._event(KeyEventKind.SUBJECT_SHREDDED, kek_version, subject)

    def status(self) -> KeyRingStatus:
        """Versions, current version and data keys per version; no key material."""
        versions = self._backend.versions()
        return KeyRingStatus(
            jurisdiction=self.jurisdiction, backend=self._backend.kind, versions=versions,
            current=versions[-1] if versions else None,
            data_keys=self._store.data_key_counts(), cached=len(self._cache))

"""The PKCS#11 key backend: KEKs that never leave a hardware security module.

Each KEK version is an AES-256 secret-key object on the token, created with
``CKA_TOKEN``, ``CKA_SENSITIVE`` and not ``CKA_EXTRACTABLE``, labelled
``bordergate-kek/<jurisdiction>/<version>``.  A secret-key object under that
label is used only if the token says it was generated there and has never been
readable: private (not usable without the PIN), sensitive and non-extractable
since its creation (``CKA_ALWAYS_SENSITIVE``, ``CKA_NEVER_EXTRACTABLE``),
generated on the token (``CKA_LOCAL``: its value was never known outside it), an
AES-256 key, one object per version.  Any other object under a KEK label (a key
imported with a value someone knows, a public object anyone could plant or use
without the PIN, a second object for one version, a label that is not a
version) makes every operation fail closed (``kek_object_invalid``, found by a
review: a process that could open a public read-write session planted a public
AES key of known value as the next version, and new data keys were wrapped
under it).  Data keys are wrapped with
``CKM_AES_GCM`` inside the token, in the format of
:mod:`bordergate.keys.envelope` (the caller's associated data goes into the
GCM parameters), so wrapped keys from this backend and the file backend look
alike.  Destroying a version calls ``C_DestroyObject``.

Tested against SoftHSM2 (Debian ``softhsm2``) through ``python-pkcs11``.  One
session per backend, used under a lock.  Token or session failures surface
as :class:`Unavailable` (code ``key_backend_unavailable``).

This module must never ask the token for key bytes, never use a KEK object the
token does not vouch for as generated there and never extractable, and never log
the PIN.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from bordergate.errors import NotFound, Unavailable, VerificationError
from bordergate.keys.envelope import FORMAT_V1, NONCE_BYTES, split_sealed
from bordergate.subjects import parse_jurisdiction

__all__ = ["Pkcs11Backend"]

_LABEL = "bordergate-kek/{jurisdiction}/"
_VERSION = re.compile(r"[1-9][0-9]{0,8}\Z", re.ASCII)
#: What a KEK object must say of itself: generated on the token, usable only after
#: login, never readable, an AES-256 key (CKA_VALUE_LEN is in bytes).
_KEK_ATTRIBUTES = {
    Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.ALWAYS_SENSITIVE: True,
    Attribute.EXTRACTABLE: False, Attribute.NEVER_EXTRACTABLE: True, Attribute.LOCAL: True,
    Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE_LEN: 32,
}
# One lock for every session of this process: PKCS#11 modules differ in how
# thread-safe they are across sessions (SoftHSM2 is not, for object searches),
# and KEK operations are rare behind the key ring's data-key cache.
_TOKEN_LOCK = threading.RLock()
_STALE_HANDLE = (pkcs11.ObjectHandleInvalid, pkcs11.KeyHandleInvalid)
_UNAVAILABLE = (
    pkcs11.DeviceError, pkcs11.DeviceMemory, pkcs11.DeviceRemoved, pkcs11.TokenNotPresent,
    pkcs11.TokenNotRecognised, pkcs11.SessionClosed, pkcs11.SessionHandleInvalid,
    pkcs11.SessionCount, pkcs11.UserNotLoggedIn, pkcs11.PinIncorrect, pkcs11.PinLocked,
    pkcs11.NoSuchToken, pkcs11.HostMemory,
)


class Pkcs11Backend:
    """KEK versions of one jurisdiction as non-extractable AES keys on a PKCS#11 token."""

    kind = "pkcs11"
    inline_unwraps = False  # a call into the token's library: may wait on the device

    def __init__(self, *, library: str, token_label: str, pin: str, jurisdiction: str) -> None:
        """Open a read-write user session on the token labelled ``token_label``.

        Raises:
            Unavailable: ``key_backend_unavailable`` if the library, token or
                login fails.
        """
        self._jurisdiction = parse_jurisdiction(jurisdiction)
        self._prefix = _LABEL.format(jurisdiction=self._jurisdiction)
        self._lock = _TOKEN_LOCK
        self._handles: dict[int, Any] = {}
        try:
            with self._lock:
                lib = pkcs11.lib(library)
                token = lib.get_token(token_label=token_label)
                try:
                    self._session = token.open(user_pin=pin, rw=True)
                except pkcs11.UserAlreadyLoggedIn:
                    # PKCS#11 login is per process and token: a second backend in
                    # this process shares the first one's login.
                    self._session = token.open(rw=True)
        except (RuntimeError, OSError) as exc:  # PKCS11Error is a RuntimeError
            raise Unavailable(f"cannot open PKCS#11 token {token_label!r}: "
                              f"{type(exc).__name__}", code="key_backend_unavailable") from exc

    def __repr__(self) -> str:
        return f"Pkcs11Backend(jurisdiction={self._jurisdiction!r})"

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose KEKs these are."""
        return self._jurisdiction

    def versions(self) -> tuple[int, ...]:
        """The KEK versions on the token, ascending."""
        with self._lock:
            return tuple(sorted(self._scan()))

    def create_version(self) -> int:
        """Generate the next KEK version inside the token and return it."""
        with self._lock:
            version = max(self._scan(), default=0) + 1
            label = f"{self._prefix}{version}"
            try:
                key = self._session.generate_key(
                    KeyType.AES, 256, label=label, id=label.encode("ascii"), store=True,
                    template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                              Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                              Attribute.WRAP: False, Attribute.UNWRAP: False},
                )
            except pkcs11.PKCS11Error as exc:
                raise Unavailable(f"token refused to create a KEK: {type(exc).__name__}",
                                  code="key_backend_unavailable") from exc
            self._handles[version] = key
            return version

    def wrap(self, data_key: bytes, aad: bytes, version: int) -> bytes:
        """Seal a data key under KEK ``version`` with CKM_AES_GCM on the token.

        Raises:
            NotFound: ``kek_version_not_found``.
            Unavailable: ``key_backend_unavailable``.
        """
        nonce = os.urandom(NONCE_BYTES)
        params = pkcs11.GCMParams(nonce, aad, 128)
        with self._lock:
            try:
                body = self._with_key(version, lambda key: key.encrypt(
                    data_key, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            except pkcs11.PKCS11Error as exc:  # the retry's faults too (found by a review)
                raise Unavailable(f"token failed to wrap: {type(exc).__name__}",
                                  code="key_backend_unavailable") from exc
        return bytes((FORMAT_V1,)) + nonce + bytes(body)

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Open a wrapped data key on the token.

        Raises:
            NotFound: ``kek_version_not_found``.
            VerificationError: ``sealed_format`` or ``decryption_failed``.
            Unavailable: ``key_backend_unavailable``.
        """
        nonce, body = split_sealed(wrapped)
        params = pkcs11.GCMParams(nonce, aad, 128)
        with self._lock:
            try:
                plain = self._with_key(version, lambda key: key.decrypt(
                    body, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            except _UNAVAILABLE as exc:
                raise Unavailable(f"token failed to unwrap: {type(exc).__name__}",
                                  code="key_backend_unavailable") from exc
            except pkcs11.PKCS11Error as exc:  # SoftHSM reports a bad tag as GeneralError
                raise VerificationError("wrapped key does not open under this KEK and context",
                                        code="decryption_failed") from exc
        return bytes(plain)

    def destroy_version(self, version: int) -> None:
        """Destroy KEK ``version`` on the token (C_DestroyObject).

        Raises:
            NotFound: ``kek_version_not_found``.
            Unavailable: ``key_backend_unavailable``.
        """
        with self._lock:
            key = self._key(version, rescan=True)
            try:
                key.destroy()
            except pkcs11.PKCS11Error as exc:
                raise Unavailable(f"token failed to destroy a KEK: {type(exc).__name__}",
                                  code="key_backend_unavailable") from exc
            self._handles.pop(version, None)

    def close(self) -> None:
        """Close the session."""
        with self._lock:
            self._handles.clear()
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._session.close()

    def _with_key(self, version: int, use: Callable[[Any], Any]) -> Any:
        """``use`` of KEK ``version``'s handle, looked up again once if the handle went
        stale (the key destroyed through another session): what that lookup raises
        (``kek_version_not_found``) is the answer then.  Under ``self._lock``."""
        try:
            return use(self._key(version))
        except _STALE_HANDLE:
            return use(self._key(version, rescan=True))

    def _key(self, version: int, *, rescan: bool = False) -> Any:
        key = None if rescan else self._handles.get(version)
        if key is None:
            key = self._scan().get(version)
        if key is None:
            raise NotFound(f"KEK version {version} of {self._jurisdiction} does not exist",
                           code="kek_version_not_found")
        self._handles[version] = key
        return key

    def _scan(self) -> dict[int, Any]:
        """The KEK objects of this jurisdiction by version, each checked
        (:data:`_KEK_ATTRIBUTES`).

        Raises:
            Unavailable: ``kek_object_invalid`` (an object under a KEK label the
                token does not vouch for, or two for one version), or
                ``key_backend_unavailable``.
        """
        found: dict[int, Any] = {}
        try:
            for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
                label = str(obj[Attribute.LABEL] or "")
                if not label.startswith(self._prefix):
                    continue
                suffix = label[len(self._prefix):]
                if _VERSION.match(suffix) is None:
                    raise _invalid(label, "its label names no KEK version")
                version = int(suffix)
                if version in found:
                    raise _invalid(label, "two token objects carry this label")
                _check_kek(obj, label)
                found[version] = obj
        except pkcs11.PKCS11Error as exc:
            raise Unavailable(f"cannot list token objects: {type(exc).__name__}",
                              code="key_backend_unavailable") from exc
        self._handles = dict(found)
        return found


def _invalid(label: str, why: str) -> Unavailable:
    return Unavailable(f"token object {label[:80]!r} is not a KEK this backend made: {why}; "
                       "no KEK is used until it is removed", code="kek_object_invalid")


def _check_kek(obj: Any, label: str) -> None:
    """Refuse a KEK object whose attributes are not all :data:`_KEK_ATTRIBUTES`.

    Raises:
        Unavailable: ``kek_object_invalid``.
    """
    try:
        have = obj.get_attributes(list(_KEK_ATTRIBUTES))
    except pkcs11.PKCS11Error as exc:
        raise _invalid(label, f"the token does not state its attributes "
                              f"({type(exc).__name__})") from exc
    wrong = sorted(a.name for a, want in _KEK_ATTRIBUTES.items() if have.get(a) != want)
    if wrong:
        raise _invalid(label, f"wrong {', '.join(wrong)} (imported, public or extractable)")

"""Envelope encryption formats: sealed field values and wrapped data keys.

Promise 1 (residency) and promise 8 (erasure is real) rest on two layers:

* each subject has its own 256-bit **data key**; every ``protected`` and
  ``restricted`` field value is sealed with AES-256-GCM under it;
* the data key is stored only **wrapped** (AES-256-GCM) under the
  jurisdiction's key-encryption key (KEK) of a given version, held by a
  :class:`~bordergate.keys.backend.KeyBackend`.

Both sealed forms share one versioned byte layout::

    sealed = 0x01 || nonce (12 bytes, random) || ciphertext || tag (16 bytes)

The associated data binds a sealed field value to its place, so a ciphertext
copied into another field, record, collection, subject or jurisdiction fails
to open::

    field AAD    = "bordergate/field/v1" 0x00 || lp(jurisdiction) || lp(subject id)
                   || lp(collection) || lp(record id) || lp(field)
    data-key AAD = "bordergate/data-key/v1" 0x00 || lp(jurisdiction) || lp(subject id)
                   || lp(decimal KEK version)

where ``lp(s)`` is the UTF-8 of ``s`` prefixed by its length as a big-endian
uint16.  Binding the KEK version means a wrapped key cannot be replayed as if
it belonged to another version.

This module is pure (it only draws nonces from the OS CSPRNG): it must never
log, store or return key bytes anywhere but to its caller.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bordergate.errors import VerificationError

__all__ = [
    "DATA_KEY_BYTES",
    "FORMAT_V1",
    "NONCE_BYTES",
    "SEAL_OVERHEAD",
    "collection_aad_head",
    "data_key_aad",
    "field_aad",
    "field_aad_prefix",
    "field_aad_suffix",
    "open_sealed",
    "record_aad_prefix",
    "seal",
    "seal_many",
    "split_sealed",
]

FORMAT_V1 = 0x01
NONCE_BYTES = 12
TAG_BYTES = 16
DATA_KEY_BYTES = 32
#: Bytes a sealed value adds to its plaintext (format byte, nonce, tag).
SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES

_FIELD_LABEL = b"bordergate/field/v1\x00"
_DATA_KEY_LABEL = b"bordergate/data-key/v1\x00"


def _lp(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("AAD component longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def field_aad_prefix(jurisdiction: str, subject: str, collection: str, record_id: str) -> bytes:
    """The AAD shared by all fields of one record; append :func:`field_aad_suffix`."""
    return (_FIELD_LABEL + _lp(jurisdiction) + _lp(subject) + _lp(collection)
            + _lp(record_id))


def collection_aad_head(jurisdiction: str, subject: str, collection: str) -> bytes:
    """The start of :func:`field_aad_prefix` shared by all of one subject's records in
    one collection (a bulk import computes it once per subject and collection)."""
    return _FIELD_LABEL + _lp(jurisdiction) + _lp(subject) + _lp(collection)


def record_aad_prefix(head: bytes, record_id: str) -> bytes:
    """:func:`field_aad_prefix` from its :func:`collection_aad_head`."""
    return head + _lp(record_id)


def field_aad(jurisdiction: str, subject: str, collection: str, record_id: str,
              field: str) -> bytes:
    """The associated data that binds a sealed value to exactly one field of one record."""
    return field_aad_prefix(jurisdiction, subject, collection, record_id) + _lp(field)


@functools.lru_cache(maxsize=4096)
def field_aad_suffix(field: str) -> bytes:
    """The per-field tail of a field AAD (see :func:`field_aad_prefix`)."""
    return _lp(field)


def data_key_aad(jurisdiction: str, subject: str, kek_version: int) -> bytes:
    """The associated data that binds a wrapped data key to its subject and KEK version."""
    return _DATA_KEY_LABEL + _lp(jurisdiction) + _lp(subject) + _lp(str(kek_version))


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``aead`` with a fresh random nonce, format v1."""
    nonce = os.urandom(NONCE_BYTES)
    return bytes((FORMAT_V1,)) + nonce + aead.encrypt(nonce, plaintext, aad)


def seal_many(aead: AESGCM, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """:func:`seal` of each ``(plaintext, aad)``: the same format, each value under
    its own random nonce, the nonces drawn from the OS in one call (one
    ``getrandom`` per record instead of one per value)."""
    nonces = os.urandom(NONCE_BYTES * len(items))
    head = bytes((FORMAT_V1,))
    out = []
    for i, (plaintext, aad) in enumerate(items):
        nonce = nonces[i * NONCE_BYTES:(i + 1) * NONCE_BYTES]
        out.append(head + nonce + aead.encrypt(nonce, plaintext, aad))
    return out


def split_sealed(sealed: bytes) -> tuple[bytes, bytes]:
    """Split a sealed value into ``(nonce, ciphertext_and_tag)``.

    Raises:
        VerificationError: ``sealed_format`` if the bytes are not format v1.
    """
    if len(sealed) < SEAL_OVERHEAD or sealed[0] != FORMAT_V1:
        raise VerificationError("sealed value has an unknown format or is truncated",
                                code="sealed_format")
    return bytes(sealed[1:1 + NONCE_BYTES]), bytes(sealed[1 + NONCE_BYTES:])


def open_sealed(aead: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt a v1 sealed value and check it against ``aad``.

    Raises:
        VerificationError: ``sealed_format`` if malformed, ``decryption_failed``
            if the key or the associated data do not match.
    """
    nonce, body = split_sealed(sealed)
    try:
        return aead.decrypt(nonce, body, aad)
    except InvalidTag as exc:
        raise VerificationError("sealed value does not open under this key and context",
                                code="decryption_failed") from exc

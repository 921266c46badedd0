"""What the software key backends share: data keys sealed under in-memory KEKs.

The key-file backend and the in-memory twin both hold their key-encryption
keys as AES-256-GCM objects in this process; they differ only in where those
keys come from.  This module must never read or write key material itself.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bordergate.keys.envelope import open_sealed, seal

__all__ = ["SoftwareKeks"]


class SoftwareKeks:
    """Wrap and unwrap data keys with the KEK version ``_kek`` returns."""

    def _kek(self, version: int) -> AESGCM:
        """The KEK of ``version``.

        Raises:
            NotFound: ``kek_version_not_found``.
        """
        raise NotImplementedError

    def wrap(self, data_key: bytes, aad: bytes, version: int) -> bytes:
        """Seal a data key under KEK ``version``.

        Raises:
            NotFound: ``kek_version_not_found``.
        """
        return seal(self._kek(version), data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Open a wrapped data key.

        Raises:
            NotFound: ``kek_version_not_found``.
            VerificationError: ``sealed_format`` or ``decryption_failed``.
        """
        return open_sealed(self._kek(version), wrapped, aad)

"""The key-backend seam: where a jurisdiction's key-encryption keys (KEKs) live.

A backend holds the versioned KEKs of exactly one jurisdiction and does four
things with them: create a new version, wrap a data key under a version,
unwrap it, destroy a version.  KEK bytes never leave a backend (the PKCS#11
backend cannot even read them).  Backends, chosen by configuration
(:func:`open_key_backend`):

* ``file``   -- :mod:`bordergate.keys.backends.keyfile`, the default: one 0600
  file per jurisdiction;
* ``pkcs11`` -- :mod:`bordergate.keys.backends.hsm`, a real HSM interface
  (tested against SoftHSM2);
* ``memory`` -- :mod:`bordergate.keys.backends.memory`, the in-memory twin for tests.

All backends wrap with AES-256-GCM in the format of
:mod:`bordergate.keys.envelope`, the caller passing the associated data.

This module must never hold or log key bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from bordergate.errors import ConfigError

__all__ = ["KeyBackend", "open_key_backend"]


@runtime_checkable
class KeyBackend(Protocol):
    """Versioned key-encryption keys of one jurisdiction.

    Implementations raise :class:`~bordergate.errors.Unavailable` (code
    ``key_backend_unavailable``) when the key store cannot be reached, and never
    expose key bytes through any attribute, ``repr`` or error message.
    """

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose KEKs these are."""
        ...

    @property
    def kind(self) -> str:
        """The backend kind as named in configuration (``file``, ``pkcs11``, ``memory``)."""
        ...

    #: Whether ``unwrap`` is cheap enough to call on an event loop: a KEK held
    #: in this process's memory (one AES-GCM open) is; a call into a token or
    #: a remote service is not.
    inline_unwraps: bool

    def versions(self) -> tuple[int, ...]:
        """The KEK versions that exist, ascending (empty before ``keys init``)."""
        ...

    def create_version(self) -> int:
        """Create a new KEK version (the highest, hence current) and return it."""
        ...

    def wrap(self, data_key: bytes, aad: bytes, version: int) -> bytes:
        """Seal ``data_key`` under KEK ``version`` with associated data ``aad``.

        Raises:
            NotFound: ``kek_version_not_found`` if that version does not exist.
        """
        ...

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Open a wrapped data key.

        Raises:
            NotFound: ``kek_version_not_found`` if that version does not exist
                (for instance because it was destroyed).
            VerificationError: ``sealed_format`` or ``decryption_failed``.
        """
        ...

    def destroy_version(self, version: int) -> None:
        """Destroy KEK ``version`` for good.

        Raises:
            NotFound: ``kek_version_not_found``.
        """
        ...

    def close(self) -> None:
        """Release sessions and forget key handles."""
        ...


def open_key_backend(spec: Mapping[str, object], *, jurisdiction: str,
                     base_dir: Path | None = None, create: bool = False) -> KeyBackend:
    """Open the backend a deployment's ``[jurisdictions.<j>.keys]`` table names.

    ``{backend = "file", path = "keys/us.kek"}`` (path relative to ``base_dir``),
    or ``{backend = "pkcs11", library = "/usr/lib/softhsm/libsofthsm2.so",
    token = "bordergate-us", pin_env = "BORDERGATE_US_PIN"}`` (the PIN is read
    from that environment variable, never from the file).  ``create`` lets the
    file backend create a missing key file (``bordergate keys init``).

    Raises:
        ConfigError: ``key_backend_config`` for an unknown backend or missing
            setting, and as the chosen backend raises when opening.
        Unavailable: if the backend cannot be reached.
    """
    kind = spec.get("backend", "file")
    if kind == "file":
        path = spec.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError("keys: the file backend needs path = \"...\"",
                              code="key_backend_config")
        full = Path(path) if base_dir is None else base_dir / path
        from bordergate.keys.backends.keyfile import LocalKeyFile

        return LocalKeyFile(full, jurisdiction=jurisdiction, create=create)
    if kind == "pkcs11":
        library, token, pin_env = spec.get("library"), spec.get("token"), spec.get("pin_env")
        if not all(isinstance(x, str) and x for x in (library, token, pin_env)):
            raise ConfigError("keys: the pkcs11 backend needs library, token and pin_env",
                              code="key_backend_config")
        assert isinstance(library, str) and isinstance(token, str) and isinstance(pin_env, str)
        pin = os.environ.get(pin_env)
        if not pin:
            raise ConfigError(f"keys: environment variable {pin_env} (the token PIN) is not set",
                              code="key_backend_config")
        from bordergate.keys.backends.hsm import Pkcs11Backend

        return Pkcs11Backend(library=library, token_label=token, pin=pin,
                             jurisdiction=jurisdiction)
    raise ConfigError(f"keys: unknown backend {kind!r} (file or pkcs11)",
                      code="key_backend_config")

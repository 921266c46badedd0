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
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from bordergate.errors import ConfigError

__all__ = [
    "DEFAULT_PIN_ENV",
    "KeyBackend",
    "KeyBackendSettings",
    "KeyFileSettings",
    "Pkcs11Settings",
    "open_key_backend",
    "parse_key_backend",
]


@dataclass(frozen=True)
class KeyFileSettings:
    """The ``file`` backend: one 0600 KEK file."""

    path: Path


#: The environment variable holding the PKCS#11 token PIN unless ``pin_env`` names another
#: (the deployment file's ``keys.pin_env`` and ``bordergate keys --pin-env`` alike).
DEFAULT_PIN_ENV = "BORDERGATE_PKCS11_PIN"


@dataclass(frozen=True)
class Pkcs11Settings:
    """The ``pkcs11`` backend: a token of a PKCS#11 module; the PIN is in ``pin_env``."""

    library: str
    token: str
    pin_env: str


KeyBackendSettings = KeyFileSettings | Pkcs11Settings


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


def parse_key_backend(spec: Mapping[str, object], *, where: str = "keys",
                      base_dir: Path | None = None) -> KeyBackendSettings:
    """The typed settings of a ``[jurisdictions.<j>.keys]`` table (checked once, at load).

    ``{backend = "file", path = "keys/us.kek"}`` (path relative to ``base_dir``;
    ``file`` is the default backend), or ``{backend = "pkcs11", library =
    "/usr/lib/softhsm/libsofthsm2.so", token = "bordergate-us", pin_env =
    "BORDERGATE_PKCS11_PIN"}`` (the PIN is read from that environment variable when
    the backend is opened, never from the file; ``pin_env`` defaults to
    :data:`DEFAULT_PIN_ENV`, as ``bordergate keys --pin-env`` does).  ``where`` prefixes messages.

    Raises:
        ConfigError: ``key_backend_config`` for an unknown backend, an unknown
            key or a missing setting (the message names the key).
    """
    kind = spec.get("backend", "file")
    allowed = {"file": {"backend", "path"},
               "pkcs11": {"backend", "library", "token", "pin_env"}}.get(str(kind))
    if allowed is None:
        raise ConfigError(f"{where}.backend: unknown backend {kind!r} (file or pkcs11)",
                          code="key_backend_config")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: not a setting of the {kind} backend",
                          code="key_backend_config")
    values = {}
    defaults = {"pin_env": DEFAULT_PIN_ENV} if kind == "pkcs11" else {}
    for name in sorted(allowed - {"backend"}):
        value = spec.get(name, defaults.get(name))
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}.{name}: the {kind} backend needs {name} = \"...\"",
                              code="key_backend_config")
        values[name] = value
    if kind == "file":
        path = Path(values["path"])
        return KeyFileSettings(path if base_dir is None or path.is_absolute()
                               else base_dir / path)
    return Pkcs11Settings(library=values["library"], token=values["token"],
                          pin_env=values["pin_env"])


def open_key_backend(settings: KeyBackendSettings, *, jurisdiction: str,
                     create: bool = False) -> KeyBackend:
    """Open the backend ``settings`` name (see :func:`parse_key_backend`).

    ``create`` lets the file backend create a missing key file (``bordergate keys init``).

    Raises:
        ConfigError: ``key_backend_config`` if the PIN variable is not set, and
            as the chosen backend raises when opening.
        Unavailable: if the backend cannot be reached.
    """
    if isinstance(settings, KeyFileSettings):
        from bordergate.keys.backends.keyfile import LocalKeyFile

        return LocalKeyFile(settings.path, jurisdiction=jurisdiction, create=create)
    pin = os.environ.get(settings.pin_env)
    if not pin:
        raise ConfigError(f"keys: environment variable {settings.pin_env} (the token PIN) "
                          "is not set", code="key_backend_config")
    from bordergate.keys.backends.hsm import Pkcs11Backend

    return Pkcs11Backend(library=settings.library, token_label=settings.token, pin=pin,
                         jurisdiction=jurisdiction)

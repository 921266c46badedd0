"""The checked TOML reader under every bordergate configuration file.

The deployment file (:mod:`bordergate.config`) and the auditor's file
(:mod:`bordergate.audit.auditor_config`) are read by the same rules:

* at most 1 MiB, UTF-8, TOML (``config_too_large``, ``config_syntax``);
* unknown keys are refused (``config_unknown_key``) so that a typo never
  silently falls back to a default; a missing key is ``config_missing_key``;
* a string is non-empty and has no leading or trailing whitespace;
* relative paths resolve against the file's directory;
* store and log locations go through :mod:`bordergate.locations`;
* release reviewers are ``{name, public_key}`` with an Ed25519 verifier key.

Every error is a :class:`ConfigError` whose message names the key
(``jurisdictions.us.log.origin: missing``).  This module only checks text: it
must never open stores, keys or logs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bordergate.errors import ConfigError, VerificationError
from bordergate.locations import (
    LogLocation,
    LogSourceLocation,
    StoreLocation,
    parse_log_location,
    parse_log_source,
    parse_store_location,
)
from bordergate.tlog.note import Ed25519Verifier

__all__ = ["MAX_CONFIG_BYTES", "ConfigReader", "parse_toml", "read_config_file"]

MAX_CONFIG_BYTES = 1 << 20


def read_config_file(path: Path, what: str) -> bytes:
    """The bytes of a configuration file (``what`` names it in errors).

    Raises:
        ConfigError: ``config_unreadable`` or ``config_too_large``.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}",
                          code="config_unreadable") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than 1 MiB", code="config_too_large")
    return data


def parse_toml(data: bytes | str, source: str) -> dict[str, Any]:
    """The TOML document in ``data``.

    Raises:
        ConfigError: ``config_too_large`` or ``config_syntax``.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than 1 MiB", code="config_too_large")
    try:
        return tomllib.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: not UTF-8 TOML: {exc}", code="config_syntax") from exc


class ConfigReader:
    """Reads values out of a TOML document, naming the key in every error."""

    def __init__(self, source: str, base_dir: Path) -> None:
        """Errors start with ``source``; relative paths resolve against ``base_dir``."""
        self.source = source
        self.base = base_dir

    def fail(self, key: str, why: str, code: str = "config_invalid") -> ConfigError:
        """The error for ``key`` (not raised: the caller raises it)."""
        return ConfigError(f"{self.source}: {key}: {why}", code=code)

    def table(self, value: object, key: str, allowed: set[str], *,
              required: bool = True) -> dict[str, Any]:
        """``value`` as a table with only ``allowed`` keys (``{}`` if absent and optional).

        ``key`` is where the table is, ``""`` for the whole document.
        """
        if value is None:
            if required:
                raise self.fail(key, "missing table", "config_missing_key")
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            where = f"{key}.{unknown[0]}" if key else unknown[0]
            raise self.fail(where, "unknown key", "config_unknown_key")
        return value

    def text(self, doc: Mapping[str, Any], key: str, name: str,
             default: str | None = None) -> str:
        """A non-empty string without surrounding whitespace."""
        value = doc.get(name, default)
        if value is None:
            raise self.fail(f"{key}.{name}", "missing", "config_missing_key")
        return self.string(value, f"{key}.{name}")

    def string(self, value: object, where: str) -> str:
        """``value`` (found at ``where``) as a non-empty string without surrounding whitespace."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be a non-empty string")
        if value != value.strip():
            raise self.fail(where, "must not begin or end with whitespace")
        return value

    def texts(self, doc: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
        """An array of such strings (empty if absent)."""
        value = doc.get(name, [])
        if not isinstance(value, list):
            raise self.fail(f"{key}.{name}", "must be an array of strings")
        return tuple(self.string(item, f"{key}.{name}[{i}]") for i, item in enumerate(value))

    def integer(self, doc: Mapping[str, Any], key: str, name: str, default: int, *,
                low: int, high: int) -> int:
        """An integer from ``low`` to ``high`` (booleans refused)."""
        value = doc.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(f"{key}.{name}", f"must be an integer from {low} to {high}")
        return value

    def path(self, doc: Mapping[str, Any], key: str, name: str,
             default: str | None = None) -> Path:
        """A path, relative ones resolved against the file's directory."""
        raw = Path(self.text(doc, key, name, default))
        return raw if raw.is_absolute() else self.base / raw

    def store(self, doc: Mapping[str, Any], key: str, name: str) -> StoreLocation:
        """A record store location (:func:`bordergate.locations.parse_store_location`)."""
        text = self.text(doc, key, name)
        try:
            return parse_store_location(text, base_dir=self.base)
        except ConfigError:
            raise self.fail(f"{key}.{name}", "use sqlite:PATH, postgresql://... or memory:"
                            ) from None

    def log_storage(self, doc: Mapping[str, Any], key: str, name: str) -> LogLocation:
        """Where a log's storage lives: a directory or a postgresql:// URL."""
        text = self.text(doc, key, name)
        try:
            return parse_log_location(text, base_dir=self.base)
        except ConfigError:
            raise self.fail(f"{key}.{name}", "a directory or a postgresql:// URL") from None

    def log_source(self, text: str, key: str) -> LogSourceLocation:
        """Where a reader fetches a log: a directory, an http(s) URL or a postgresql:// URL."""
        try:
            return parse_log_source(text, base_dir=self.base)
        except ConfigError:
            raise self.fail(key, "a directory, an http(s) URL or a postgresql:// URL") from None

    def reviewers(self, doc: Mapping[str, Any], key: str, name: str
                  ) -> tuple[tuple[str, str], ...]:
        """Release reviewers ``[{name, public_key}]`` as ``(name, Ed25519 verifier key)``."""
        value = doc.get(name, [])
        where = f"{key}.{name}"
        if not isinstance(value, list):
            raise self.fail(where, "must be an array of {name, public_key}")
        out = []
        for i, item in enumerate(value):
            entry = self.table(item, f"{where}[{i}]", {"name", "public_key"})
            public = self.text(entry, f"{where}[{i}]", "public_key")
            try:
                Ed25519Verifier.from_key_string(public)
            except VerificationError as exc:
                raise self.fail(f"{where}[{i}].public_key", f"not a reviewer key: {exc}"
                                ) from None
            out.append((self.text(entry, f"{where}[{i}]", "name"), public))
        return tuple(out)

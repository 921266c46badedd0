"""Where a record store or a log lives: the one parser of store and log locations.

Every command and configuration file that names a store or a log goes through
this module, so that the accepted forms are written once:

* a **record store** (records, data keys, approvals): ``sqlite:PATH``
  (``sqlite:///abs/path.db`` too, or a bare path ending in ``.db``),
  ``postgresql://...`` / ``postgres://...`` (one database per jurisdiction),
  or ``memory:`` (tests and demos);
* a **log's storage** (where the sequencer writes): a directory or a
  ``postgresql://`` URL;
* a **log source** (where a reader fetches a published log): a directory, an
  ``http(s)://`` base URL, or the ``postgresql://`` URL of the database that keeps it.

Relative paths resolve against ``base_dir`` when one is given.  This module
only parses text: it must never open a file, a database or a connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bordergate.errors import ConfigError

__all__ = [
    "LogLocation",
    "LogSourceLocation",
    "StoreLocation",
    "is_postgres_url",
    "parse_log_location",
    "parse_log_source",
    "parse_store_location",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_HTTP_SCHEMES = ("http://", "https://")


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` is a PostgreSQL connection URL."""
    return text.startswith(_POSTGRES_SCHEMES)


def _resolve(raw: str, base_dir: Path | None) -> str:
    path = Path(raw)
    return str(path if base_dir is None or path.is_absolute() else base_dir / path)


@dataclass(frozen=True)
class StoreLocation:
    """A record store: ``kind`` and its ``target`` (a file path, a URL, or empty)."""

    kind: Literal["sqlite", "postgresql", "memory"]
    target: str

    @property
    def url(self) -> str:
        """The canonical form: ``sqlite:PATH``, the PostgreSQL URL, or ``memory:``."""
        if self.kind == "sqlite":
            return "sqlite:" + self.target
        if self.kind == "memory":
            return "memory:"
        return self.target


def parse_store_location(text: str, *, base_dir: Path | None = None) -> StoreLocation:
    """Parse a record store location.

    Raises:
        ConfigError: ``store_url`` if ``text`` is none of the accepted forms.
    """
    if is_postgres_url(text):
        return StoreLocation("postgresql", text)
    if text == "memory:":
        return StoreLocation("memory", "")
    if text.startswith("sqlite:") or text.endswith(".db"):
        raw = text.removeprefix("sqlite://").removeprefix("sqlite:")
        if raw:
            return StoreLocation("sqlite", _resolve(raw, base_dir))
    raise ConfigError(f"store URL {text!r}: use sqlite:PATH, postgresql://... or memory:",
                      code="store_url")


@dataclass(frozen=True)
class LogLocation:
    """A log's storage: a ``directory`` path or a ``postgresql`` URL."""

    kind: Literal["directory", "postgresql"]
    target: str


def parse_log_location(text: str, *, base_dir: Path | None = None) -> LogLocation:
    """Parse where a log's storage lives.

    Raises:
        ConfigError: ``log_location`` for an empty text or another URL scheme.
    """
    if is_postgres_url(text):
        return LogLocation("postgresql", text)
    if "://" in text or not text.strip():
        raise ConfigError(f"log storage {text!r}: a directory or a postgresql:// URL",
                          code="log_location")
    return LogLocation("directory", _resolve(text, base_dir))


@dataclass(frozen=True)
class LogSourceLocation:
    """A published log as a reader reaches it: a ``directory``, an ``http`` base URL
    or a ``postgresql`` URL."""

    kind: Literal["directory", "http", "postgresql"]
    target: str


def parse_log_source(text: str, *, base_dir: Path | None = None) -> LogSourceLocation:
    """Parse where a reader fetches a log from (an http(s) URL loses its trailing ``/``).

    Raises:
        ConfigError: ``log_location`` for an empty text or another URL scheme.
    """
    if text.startswith(_HTTP_SCHEMES):
        return LogSourceLocation("http", text.rstrip("/"))
    if is_postgres_url(text):
        return LogSourceLocation("postgresql", text)
    if "://" in text or not text.strip():
        raise ConfigError(f"log {text!r}: a directory, an http(s) URL or a postgresql:// URL",
                          code="log_location")
    return LogSourceLocation("directory", _resolve(text, base_dir))

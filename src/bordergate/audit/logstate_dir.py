"""The auditor's state directory: one JSON file per log origin, evidence beside it.

``--state DIR`` holds ``<origin>.json`` (the origin percent-encoded so that
``/`` and other path characters cannot escape the directory; a SHA-256 name
when the origin is very long) and the split-view evidence files the auditor
writes.  Every write goes to a temporary file that is synced and then renamed
over the old one, and the directory is synced: a crash leaves the old state
or the new one, never a mix (the state changes only after full verification).

This module must never interpret what it stores.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import quote

from bordergate.durable import replace_file
from bordergate.errors import Unavailable

__all__ = ["DirectoryStateStore", "state_file_name"]

_MAX_NAME = 200
_EVIDENCE_NAME = re.compile(r"[A-Za-z0-9._%-]{1,200}")


def state_file_name(origin: str) -> str:
    """The file name holding the state of ``origin`` (no path separators)."""
    name = quote(origin, safe="") + ".json"
    if len(name) > _MAX_NAME or name.startswith("."):
        name = "sha256-" + hashlib.sha256(origin.encode("utf-8")).hexdigest() + ".json"
    return name


class DirectoryStateStore:
    """An :class:`~bordergate.audit.logstate.AuditStateStore` in a directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use (and create if needed) the directory ``root``.

        Raises:
            Unavailable: ``audit_state_unavailable`` if it cannot be created.
        """
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(f"cannot create state directory {self.root}: {exc}",
                              code="audit_state_unavailable") from exc

    def path(self, origin: str) -> Path:
        """Where the state of ``origin`` lives."""
        return self.root / state_file_name(origin)

    def read(self, origin: str) -> bytes | None:
        """The saved state of ``origin``, or None."""
        try:
            return self.path(origin).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unavailable(f"cannot read audit state {self.path(origin)}: {exc}",
                              code="audit_state_unavailable") from exc

    def write(self, origin: str, data: bytes) -> None:
        """Replace the state of ``origin`` atomically and durably."""
        self._replace(self.path(origin), data)

    def write_evidence(self, name: str, data: bytes) -> str:
        """Write an evidence file (atomically); returns its path."""
        if not _EVIDENCE_NAME.fullmatch(name) or name.startswith("."):
            raise ValueError(f"not a plain evidence file name: {name!r}")
        path = self.root / name
        self._replace(path, data)
        return str(path)

    def _replace(self, path: Path, data: bytes) -> None:
        try:
            replace_file(path, data)
        except OSError as exc:
            raise Unavailable(f"cannot write {path}: {exc}",
                              code="audit_state_unavailable") from exc

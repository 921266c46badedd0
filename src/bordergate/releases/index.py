"""The release entries of one log, read once and kept up to date incrementally.

Start-up must not re-read a log of millions of entries every time.  A
:class:`ReleaseIndex` keeps the ``release``, ``release-review`` and
``gateway-start`` entries it has seen together with the verified edge of the
tree (size, root, frontier); :meth:`ReleaseIndex.update` fetches the current
signed checkpoint through a :class:`~bordergate.tlog.client.LogClient`, reads
only the entry bundles after the saved size, and re-verifies them with
``LogClient.rebuild`` (every new tile reproduced, the root compared to the
signed checkpoint, earlier entries proven unchanged), so the work is linear in
the *new* entries and the saved state is consistent with the signed log.

The state can be saved to a file (``save``/``load``).  That file is a cache
kept by the custodian's host beside the gateway's code: protect it as the
code is protected.  A missing or unreadable cache just means a full scan.

This module must never write to a log or decide anything about releases (the
ledger does).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bordergate.durable import replace_file
from bordergate.entries import RELEASE_ENTRY_TYPES, Entry, parse_entry
from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import SignedCheckpoint
from bordergate.tlog.client import LogClient
from bordergate.tlog.tiles import TileFrontier

__all__ = ["ReleaseIndex"]

_MARKERS = tuple(f'"type":"{kind}"'.encode() for kind in RELEASE_ENTRY_TYPES)
_STATE_VERSION = 1


@dataclass
class ReleaseIndex:
    """Release-related entries of one log up to a verified size.

    Attributes:
        origin: the log's origin (checked against each checkpoint).
        size: how many entries have been scanned and verified.
        entries: ``(index, entry bytes)`` of every release-related entry.
        malformed: indexes of entries that looked release-related but did not parse.
    """

    origin: str
    size: int = 0
    root: bytes = b""
    frontier: TileFrontier | None = None
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    malformed: list[int] = field(default_factory=list)

    def update(self, client: LogClient) -> SignedCheckpoint:
        """Scan and verify the entries added since the last update.

        Returns:
            The signed checkpoint now covered.

        Raises:
            VerificationError: the checkpoint is not this log's, the log
                shrank, rewrote verified entries or does not reproduce its root.
            NotFound: the log has no checkpoint.
            Unavailable: the log cannot be read.
        """
        signed = client.checkpoint()
        if signed.checkpoint.origin != self.origin:
            raise VerificationError(f"checkpoint of {signed.checkpoint.origin!r}, expected "
                                    f"{self.origin!r}", code="wrong_log")
        if signed.checkpoint.size == self.size and signed.checkpoint.root == self.root:
            return signed
        found: list[tuple[int, bytes]] = []
        bad: list[int] = []

        def collect(first: int, batch: list[bytes]) -> None:
            for offset, data in enumerate(batch):
                if any(m in data for m in _MARKERS):
                    try:
                        parse_entry(data)
                    except VerificationError:
                        bad.append(first + offset)
                        continue
                    found.append((first + offset, data))

        result = client.rebuild(signed, start=self.frontier, on_entries=collect)
        self.size, self.root, self.frontier = result.size, result.root, result.frontier
        self.entries.extend(found)
        self.malformed.extend(bad)
        return signed

    def parsed(self) -> list[tuple[int, Entry]]:
        """The indexed entries, parsed, in log order (release-related types only)."""
        out = []
        for index, data in self.entries:
            entry = parse_entry(data)
            if entry.type in RELEASE_ENTRY_TYPES:
                out.append((index, entry))
        return out

    # -- the cache file ---------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (mode 0600)."""
        f = self.frontier
        state: dict[str, Any] = {
            "v": _STATE_VERSION, "origin": self.origin, "size": self.size,
            "root": _b64(self.root),
            "frontier": None if f is None else {
                "size": f.size, "levels": [[_b64(h) for h in lv] for lv in f.levels],
                "bundle": [_b64(e) for e in f.bundle]},
            "entries": [[i, _b64(d)] for i, d in self.entries],
            "malformed": self.malformed,
        }
        replace_file(path, json.dumps(state).encode(), mode=0o600)

    @classmethod
    def load(cls, path: Path | None, origin: str) -> ReleaseIndex:
        """Read a saved state, or start empty if it is missing, damaged or another log's."""
        if path is None:
            return cls(origin)
        try:
            state = json.loads(path.read_text("utf-8"))
            if state["v"] != _STATE_VERSION or state["origin"] != origin:
                return cls(origin)
            fr = state["frontier"]
            frontier = None if fr is None else TileFrontier(
                int(fr["size"]), [[_unb64(h) for h in lv] for lv in fr["levels"]],
                [_unb64(e) for e in fr["bundle"]])
            index = cls(origin, int(state["size"]), _unb64(state["root"]), frontier,
                        [(int(i), _unb64(d)) for i, d in state["entries"]],
                        [int(i) for i in state["malformed"]])
        except (OSError, ValueError, KeyError, TypeError):
            return cls(origin)
        if frontier is None or frontier.size != index.size or frontier.root() != index.root:
            return cls(origin)
        return index


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)

"""Where a log's objects live, by path: the checkpoint and the published bundles.

Every storage backend and every reader agree on these paths (the tiles' own
paths are :mod:`bordergate.tlog.tiles`').  A leaf of the storage package, so
that the backends can use it without importing the package that chooses
between them.  This module must never do I/O.
"""

from __future__ import annotations

import re

from bordergate.errors import VerificationError

__all__ = ["CHECKPOINT_PATH", "OBJECT_PATH", "check_object_path"]

CHECKPOINT_PATH = "checkpoint"
# Content-addressed objects published beside the tiles (released policy bundles,
# promise 6; signed roster versions, bordergate.roster): ``write_object`` and
# ``read_object`` accept these paths only.
OBJECT_PATH = re.compile(r"bundles/sha256-[0-9a-f]{64}\.tar|rosters/sha256-[0-9a-f]{64}\.json")


def check_object_path(path: str) -> None:
    """Refuse any object path but ``bundles/sha256-<hex>.tar`` and
    ``rosters/sha256-<hex>.json``.

    Raises:
        VerificationError: code ``bad_object_path``.
    """
    if not OBJECT_PATH.fullmatch(path):
        raise VerificationError(f"not a content-addressed object path: {path[:80]!r}",
                                code="bad_object_path")

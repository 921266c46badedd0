"""Which log entries change which state: the keys the log's sequencer versions.

A state that reads decide under (today: one approval) has a *key*; the entries
that change it (an approval's request, grants, denial, revocation) name it.
The sequencer keeps, per key, the index of the last entry that changed it (its
*version*) and refuses a guarded submission decided under an older version
(``tlog.sequencer``, docs/log-durability.md "State versions").  This module is
the one definition of those keys: the gateway passes :func:`state_keys` to the
sequencer it runs, ``bordergate log sequencer`` to the service, and the gateway
guards its reads with :func:`approval_key`.  A later state (a token revocation,
a privacy budget) adds its entry types and key here.

Pure: bytes in, keys out.  This module must never do I/O, and imports nothing
of bordergate (the log's sequencer command loads it: no import cycle).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["APPROVAL_CHANGE_TYPES", "approval_key", "state_keys"]

_ENTRY_VERSIONS = frozenset({1, 2})
APPROVAL_CHANGE_TYPES = frozenset(
    {"approval-request", "approval-grant", "approval-deny", "approval-revoke"})
_MARK = b'"type":"approval-'


def approval_key(approval_id: str) -> str:
    """The state key of one approval."""
    return "approval/" + approval_id


def state_keys(entry: bytes) -> tuple[str, ...]:
    """The state keys ``entry`` changes (most entries: none).

    Costs one substring search for an entry that changes nothing; an entry
    that is not a JSON object of a known entry format changes nothing.
    """
    if _MARK not in entry:
        return ()
    try:
        body: Any = json.loads(entry)
    except (ValueError, RecursionError):  # the writer thread must never die of an entry
        return ()
    version = body.get("v") if isinstance(body, dict) else None
    # entries.ENTRY_VERSIONS (not imported: the sequencer must not import the vocabulary)
    if type(version) is not int or version not in _ENTRY_VERSIONS:
        return ()
    approval = body.get("approval")
    if body.get("type") in APPROVAL_CHANGE_TYPES and isinstance(approval, str):
        return (approval_key(approval),)
    return ()

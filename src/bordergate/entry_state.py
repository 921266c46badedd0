"""Which log entries change which state: the keys the log's sequencer versions.

A state that decisions are made under has a *key*; the entries that change it
name it:

* ``approval/<id>``: one approval (its request, grants, denial, revocation);
* ``roster``: the identity authority's roster version in force (a ``roster``
  entry);
* ``token-revocations``: the set of revoked tokens (a ``token-revoke`` entry).

The sequencer keeps, per key, the index of the last entry that changed it (its
*version*) and refuses a guarded submission decided under an older version
(``tlog.sequencer``, docs/log-durability.md "State versions").  This module is
the one definition of those keys: the gateway passes :func:`state_keys` to the
sequencer it runs, ``bordergate log sequencer`` to the service, and the gateway
guards its reads with :func:`approval_key`, and every decision that names a
roster version or checked a token with :data:`ROSTER_KEY` and
:data:`REVOCATIONS_KEY` (``gateway.decided_state``).  A gateway's log
followers track the same two versions with this same function, so the
gateway's view and the sequencer's can only differ by what the gateway has not
read yet.  A later state (a privacy budget) adds its entry types and key here.

Pure: bytes in, keys out.  This module must never do I/O, and imports nothing
of bordergate (the log's sequencer command loads it: no import cycle).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["APPROVAL_CHANGE_TYPES", "REVOCATIONS_KEY", "ROSTER_KEY", "approval_key",
           "state_keys"]

_ENTRY_VERSIONS = frozenset({1, 2})
APPROVAL_CHANGE_TYPES = frozenset(
    {"approval-request", "approval-grant", "approval-deny", "approval-revoke"})
#: The state key of the roster version in force (changed by every ``roster`` entry).
ROSTER_KEY = "roster"
#: The state key of the revoked tokens (changed by every ``token-revoke`` entry).
REVOCATIONS_KEY = "token-revocations"
_SINGLE_KEYS = {"roster": (ROSTER_KEY,), "token-revoke": (REVOCATIONS_KEY,)}
# The bytes that start every state-changing entry's type member; in canonical JSON
# a quote inside a string is escaped, so these bytes occur only as a member.
_MARK = re.compile(rb'"type":"(?:approval-|roster"|token-revoke")')


def approval_key(approval_id: str) -> str:
    """The state key of one approval."""
    return "approval/" + approval_id


def state_keys(entry: bytes) -> tuple[str, ...]:
    """The state keys ``entry`` changes (most entries: none).

    Costs one pattern search for an entry that changes nothing; an entry
    that is not a JSON object of a known entry format changes nothing.
    """
    if _MARK.search(entry) is None:
        return ()
    try:
        body: Any = json.loads(entry)
    except (ValueError, RecursionError):  # the writer thread must never die of an entry
        return ()
    version = body.get("v") if isinstance(body, dict) else None
    # entries.ENTRY_VERSIONS (not imported: the sequencer must not import the vocabulary)
    if type(version) is not int or version not in _ENTRY_VERSIONS:
        return ()
    kind = body.get("type")
    single = _SINGLE_KEYS.get(kind) if type(kind) is str else None
    if single is not None:
        return single
    approval = body.get("approval")
    if kind in APPROVAL_CHANGE_TYPES and isinstance(approval, str):
        return (approval_key(approval),)
    return ()

"""The log state a gateway decides under, and catching up when the log is ahead.

A decision depends on two states that other parties change through the log:
the identity authority's roster version in force (``roster`` entries) and the
revoked tokens (``token-revoke`` entries).  A worker reads both with its
followers, a little behind the sequencer (it reads up to the last published
checkpoint).  So that no entry records a decision made under a state the log
had already replaced (what the auditor reports as ``roster_superseded`` and
``token_revoked_use``), each decision's entries go to the sequencer guarded by
the versions the worker had read when it decided (:meth:`DecidedState.versions`,
read *before* the token is checked and the roster consulted: a follower that
moves in between makes the guard stale, never wrong); the sequencer admits
them only if no newer change was sequenced since (docs/log-durability.md,
"State versions").  When it refuses (``StaleState``), the worker pokes its
followers and waits until they have read the change (:meth:`DecidedState.catch_up`),
then decides again: a read of a token revoked meanwhile is refused
(``token_revoked``), a principal the new roster drops is refused, and one
whose attributes changed is decided under the new version.

The versions are counted with ``entry_state.state_keys``, the very function the
sequencer counts with, so the worker's view and the sequencer's differ only by
what the worker has not read yet.  This module must never let a decision's
entry go unguarded, and never wait without a bound (:data:`CATCH_UP_SECONDS`,
then 503 ``log_state_behind``, nothing logged, nothing released).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from bordergate.entry_state import REVOCATIONS_KEY, ROSTER_KEY
from bordergate.errors import Unavailable
from bordergate.gateway.fifo_cache import BoundedFifoCache

__all__ = ["CATCH_UP_SECONDS", "DECIDED_KEYS", "DecidedState", "Followed", "Poked"]

#: Seconds a decision waits for the worker's followers to read a change the
#: sequencer already holds (the log operator publishes about once a second).
CATCH_UP_SECONDS = 5.0
#: The state keys every decision is guarded by.
DECIDED_KEYS = frozenset({ROSTER_KEY, REVOCATIONS_KEY})
_STEP = 0.01
_MAX_APPROVAL_GUARDS = 1024


class Followed(Protocol):
    """A state a follower keeps from the log: the index of its last change read."""

    version: int


class Poked(Protocol):
    """A follower that can be asked to read the log now."""

    def poke(self) -> None:
        """Read the log now."""
        ...


class DecidedState:
    """The versions of a worker's roster and revocations, and waiting for them."""

    def __init__(self, revocations: Followed, roster: Followed | None) -> None:
        """Bind the worker's revoked tokens and roster in force (None: no roster)."""
        self.revocations = revocations
        self.roster = roster
        self._last: tuple[tuple[int, int], Mapping[str, int]] | None = None
        # (approval key, version, id(versions)) -> (versions, kept alive; the merge)
        self._approvals: BoundedFifoCache[tuple[str, int, int],
                                          tuple[Mapping[str, int], Mapping[str, int]]] = \
            BoundedFifoCache(_MAX_APPROVAL_GUARDS)

    def versions(self) -> Mapping[str, int]:
        """The versions a decision starting now is made under (read them before
        checking the token and consulting the roster).  One object per state, so
        that the decisions of one state batch together on their way to the log."""
        revoked = self.revocations.version
        roster = -1 if self.roster is None else self.roster.version
        last = self._last
        if last is not None and last[0] == (revoked, roster):
            return last[1]
        versions: dict[str, int] = {REVOCATIONS_KEY: revoked}
        if self.roster is not None:
            versions[ROSTER_KEY] = roster
        frozen = MappingProxyType(versions)
        self._last = ((revoked, roster), frozen)
        return frozen

    def with_approval(self, versions: Mapping[str, int], key: str, version: int
                      ) -> Mapping[str, int]:
        """``versions`` (from :meth:`versions`) with an approval's ``version`` under
        ``key``: one object per approval version and state, so that the reads under
        one approval batch too (they change none of its keys; the approval's own
        changes pass a mapping of their own and go alone)."""
        cache_key = (key, version, id(versions))
        found = self._approvals.get(cache_key)
        if found is not None and found[0] is versions:
            return found[1]
        merged = MappingProxyType({key: version, **versions})
        self._approvals.put(cache_key, (versions, merged))
        return merged

    @staticmethod
    def concerns(current: Mapping[str, int]) -> bool:
        """Whether a refusal's stale keys include one of the decision's keys."""
        return not DECIDED_KEYS.isdisjoint(current)

    async def catch_up(self, current: Mapping[str, int], follower: Poked | None) -> None:
        """Wait until this worker has read every change the sequencer reported
        (``current``: a ``StaleState``'s versions), poking its ``follower`` to read now.

        Raises:
            Unavailable: ``log_state_behind`` after :data:`CATCH_UP_SECONDS`.
        """
        deadline = time.monotonic() + CATCH_UP_SECONDS
        if follower is not None:
            follower.poke()
        while not self._reached(current):
            if time.monotonic() >= deadline:
                raise Unavailable("this worker has not yet read the log's newer roster "
                                  "version or token revocations; retry",
                                  code="log_state_behind")
            await asyncio.sleep(_STEP)

    def _reached(self, current: Mapping[str, int]) -> bool:
        revoked = current.get(REVOCATIONS_KEY)
        if revoked is not None and self.revocations.version < revoked:
            return False
        roster = current.get(ROSTER_KEY)
        return roster is None or self.roster is None or self.roster.version >= roster

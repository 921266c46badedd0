"""A worker's one reader of its log: new entries to the states kept from the log.

A gateway worker keeps states that other parties change through the log: the
revoked tokens (``gateway.revocations``) and the roster version in force
(``gateway.roster_in_force``).  :func:`follow` reads the log's entries that
some state has not seen yet, up to the log's published checkpoint, each bundle
once, and hands every state the entries from its own ``next_index`` on; a
:class:`LogFollower` thread does that every ``interval`` seconds, and at once
when poked (a decision the sequencer refused because the log already holds a
newer change, ``gateway.decided_state``).  A failed poll (log storage briefly
unreadable, an entry a state refuses to read) is logged and retried at the next
tick.

This module must never stop polling on an error (a follower that stopped would
leave its worker deciding under a state the log has replaced; the sequencer's
guard would then refuse every decision, failing closed, until a restart), and
never hand a state an entry twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from bordergate.errors import BordergateError
from bordergate.tlog.client import LogClient
from bordergate.tlog.tiles import TILE_WIDTH

__all__ = ["POLL_INTERVAL", "FollowedState", "LogFollower", "follow"]

log = logging.getLogger(__name__)

#: Seconds between two polls of the log by a running worker.
POLL_INTERVAL = 0.5


class FollowedState(Protocol):
    """A state kept from the log's entries."""

    @property
    def next_index(self) -> int:
        """The first log index not read yet."""
        ...

    def apply(self, first_index: int, entries: Iterable[bytes]) -> object:
        """Apply the log's entries from ``first_index`` on (contiguous)."""
        ...


def follow(states: Sequence[FollowedState], client: LogClient) -> None:
    """Read the log's entries from the lowest ``next_index`` of ``states`` up to its
    current checkpoint, each bundle once, and apply each state the entries it has
    not read.

    Raises:
        VerificationError, NotFound: the log's checkpoint or bundles do not read;
            what a state's ``apply`` raises (the next call goes on from there).
    """
    if not states:
        return
    size = client.checkpoint().checkpoint.size
    start = min(s.next_index for s in states)
    while start < size:
        bundle, offset = divmod(start, TILE_WIDTH)
        first = bundle * TILE_WIDTH
        width = min(TILE_WIDTH, size - first)
        entries = client.bundle(bundle, width)
        for state in states:
            skip = max(offset, state.next_index - first)
            if skip < width:
                state.apply(first + skip, entries[skip:width])
        start = first + width


class LogFollower:
    """Calls :func:`follow` for ``states`` every ``interval`` seconds on its own thread,
    and at once after :meth:`poke`."""

    def __init__(self, states: Sequence[FollowedState], client: LogClient,
                 interval: float = POLL_INTERVAL) -> None:
        self.states = list(states)
        self.client = client
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def poke(self) -> None:
        """Poll now rather than at the next tick (thread-safe, never blocks)."""
        self._wake.set()

    def close(self) -> None:
        """Stop polling (waits for the thread)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                follow(self.states, self.client)
            except (BordergateError, OSError) as exc:
                log.warning("log follower: cannot read the log: %s", exc)

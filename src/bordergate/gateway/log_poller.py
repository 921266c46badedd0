"""A thread that reads a gateway's log every few tenths of a second, or at once when poked.

The gateway's followers of the log (token revocations, roster versions) read
the entries a worker has not seen yet, up to the log's published checkpoint.
They poll on an interval; a decision that the sequencer refused because the
log already holds a newer change (``gateway.decided_state``) pokes them to
read now instead of at the next tick.  A failed poll (log storage briefly
unreadable) is logged and retried at the next tick.

This module must never stop polling on an error: a follower that stopped would
leave its worker deciding under a state the log has replaced (the sequencer's
guard would then refuse every decision, failing closed, until a restart).
"""

from __future__ import annotations

import logging
import threading

from bordergate.errors import BordergateError

__all__ = ["LogPoller"]

log = logging.getLogger(__name__)


class LogPoller:
    """Calls :meth:`poll` every ``interval`` seconds on its own thread, and at once
    after :meth:`poke`.  Subclasses implement :meth:`poll`."""

    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def poll(self) -> None:
        """Read the log's new entries (on the poller's thread)."""
        raise NotImplementedError

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
                self.poll()
            except (BordergateError, OSError) as exc:
                log.warning("%s: cannot read the log: %s", self._thread.name, exc)

"""Recovering a failed log writer while the party holding it keeps serving.

A sequencer that storage refused fails closed and never clears its own failure
(``tlog.sequencer``): it is replaced by one recovered from storage.  Both
holders of a sequencer, a gateway with its log in process and the log
operator's sequencer service, try that once per interval for as long as they
serve; :func:`keep_recovering` is that loop, once.

This module must never recover anything itself (the holder's ``recover`` does)
and never stop trying because an attempt failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["keep_recovering"]

log = logging.getLogger(__name__)


async def keep_recovering(recover: Callable[[], Awaitable[bool]], interval: float,
                          what: str) -> None:
    """Until cancelled: every ``interval`` seconds, ``await recover()`` (True: it
    replaced a failed writer, False: nothing had failed); ``what`` names the writer
    in the log lines of a recovery and of a failed attempt."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await recover():
                log.warning("%s recovered: writing again", what)
        except Exception as exc:  # still failing closed; the next turn tries again
            log.info("%s still fails closed: [%s] %s", what,
                     getattr(exc, "code", type(exc).__name__), exc)

"""Receipt signatures made on a worker thread, beside the gateway's event loop.

Every answer that releases data carries a receipt with one Ed25519 signature by
the gateway's key (``bordergate.receipts``).  Under load the gateway's event
loop is its one busy thread, and the signature was about a tenth of its CPU per
read.  ``cryptography`` releases the GIL while it signs, so a signature made on
another thread runs in parallel with the loop.  :class:`SigningThread` signs on
one worker thread; the answers that reach their receipt in the same turn of the
loop (a batch of log entries acknowledged at once) go to it in one hand-off.

Nothing changes in what is signed or when data leaves: the same key signs the
same bytes (``ReceiptSigner.prepare``), one signature per answer, and the
answer waits for its signature, so no data leaves without its receipt (and
none before its entry is durable: the receipt names the logged entry).
A signing failure fails every answer of the hand-off (nothing released).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bordergate.errors import Unavailable

__all__ = ["SigningThread"]


class SigningThread:
    """Signs messages with ``sign`` on one worker thread, many per hand-off."""

    def __init__(self, sign: Callable[[bytes], bytes]) -> None:
        self._sign = sign
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receipt-signer")
        # per event loop: the messages waiting for the next hand-off
        self._pending: dict[asyncio.AbstractEventLoop,
                            list[tuple[bytes, asyncio.Future[bytes]]]] = {}

    async def sign(self, message: bytes) -> bytes:
        """The signature of ``message``.

        Raises:
            Unavailable: ``receipt_signing_failed`` (the thread is closed, or the
                key failed to sign).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        waiting = self._pending.get(loop)
        if waiting is None:  # the first this turn: hand them all off after this turn
            waiting = self._pending[loop] = []
            loop.call_soon(self._hand_off, loop)
        waiting.append((message, future))
        return await future

    def _hand_off(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        messages = [message for message, _ in batch]
        try:
            signing = self._executor.submit(self._sign_all, messages)
        except RuntimeError:  # closed
            _settle(batch, None)
            return

        def done(signing: Future[list[bytes]]) -> None:  # on the worker thread
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, batch, signing)

        signing.add_done_callback(done)

    def _sign_all(self, messages: list[bytes]) -> list[bytes]:
        return [self._sign(message) for message in messages]

    def close(self) -> None:
        """Stop the worker thread (after the signatures handed off so far)."""
        self._executor.shutdown(wait=True)


def _settle(batch: list[tuple[bytes, asyncio.Future[bytes]]],
            signing: Future[list[bytes]] | None) -> None:
    """Give each waiter its signature, or the failure (on the event loop)."""
    failure: BaseException | None = None
    signatures: list[bytes] = []
    if signing is None:
        failure = Unavailable("the receipt signer is closed; nothing released",
                              code="receipt_signing_failed")
    elif signing.exception() is not None:
        failure = Unavailable(f"signing a receipt failed: {signing.exception()!r}; "
                              "nothing released", code="receipt_signing_failed")
    else:
        signatures = signing.result()
    for i, (_, future) in enumerate(batch):
        if future.done():  # the waiter went away
            continue
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(signatures[i])

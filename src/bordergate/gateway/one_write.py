"""uvicorn's httptools protocol, writing each answer's head and body in one call.

uvicorn writes a response's status line and headers to the socket as soon as the
app sends ``http.response.start``, and the body when it sends
``http.response.body``: two ``send`` system calls, two TCP segments and two
wake-ups of the client for every answer.  On the gateway's read path (issue 12's
bench) the second write cost about as much CPU as the receipt's salted digest and
leaf hash together.  :class:`OneWriteProtocol` holds the head until the first
body part (or the end of the response, or the connection's close) and writes
both at once.  The bytes on the wire, their order and the connection's handling
(keep-alive, pipelining, ``100 Continue``, flow control, errors) are uvicorn's;
only how the bytes are cut into writes changes
(``test_one_write_protocol_answers_byte_for_byte_as_uvicorn``).

It is what ``gateway serve`` runs for ``--http auto`` (the default) and
``--http httptools``; ``--http h11`` keeps uvicorn's h11 protocol unchanged.
This module must never change a byte of an answer.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = ["OneWriteProtocol"]


class _HeadHeld:
    """A transport that holds the first write (an answer's head) and sends it with
    the next one; every other call goes to the real transport."""

    __slots__ = ("held", "real")

    def __init__(self, real: Any) -> None:
        self.real = real
        self.held: bytes | None = None  # None: the head is still to come

    def write(self, data: bytes) -> None:
        held = self.held
        if held is None:
            self.held = data
            return
        if held:
            self.held = b""
            data = held + data
        self.real.write(data)

    def flush(self) -> None:
        """Write the head if it is still held."""
        if self.held:
            self.real.write(self.held)
        self.held = b""

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle with the head held for the body."""

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            self.transport = _HeadHeld(self.transport)  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            held = self.transport
            if isinstance(held, _HeadHeld) and (self.response_complete or self.disconnected):
                if not self.disconnected:
                    held.flush()  # a body-less answer (HEAD, 204, 304) ends here
                self.transport = held.real


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose cycles write each answer's head with its
    first body part (a uvicorn ``Config(http=...)`` class)."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:  # created just now, not yet running
            cycle.__class__ = _OneWriteCycle

"""Plain keep-alive HTTP/1.1 requests to one loopback or private-network service.

A gateway asks its key service for a data key on every read that misses its
data-key cache; through httpx each such request cost about a millisecond of
client CPU (its connection pool scans every connection, and each request
probes for an async library by a failing import).  :class:`KeepAlivePool`
keeps idle connections, writes the request by hand and reads a
``Content-Length`` answer: a fraction of that cost.  It speaks only what the
bordergate services answer (HTTP/1.1, ``Content-Length`` bodies, no chunking,
no TLS: an https URL keeps httpx).

A connection idle longer than :data:`IDLE_REUSE` seconds is not reused (the
server may have closed it: uvicorn does after 5 s); any failure closes the
connection and raises :class:`~bordergate.errors.Unavailable` with the pool's
code.  A request is never retried (the service may have acted on it).

(:class:`bordergate.tlog.remote.RemoteSequencer` has its own copy of this for
its batched appends; the two can share this module.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bordergate.errors import Unavailable

__all__ = ["IDLE_REUSE", "Answer", "KeepAlivePool"]

IDLE_REUSE = 2.0  # seconds; uvicorn closes idle keep-alive connections after 5
_MAX_IDLE = 64
_MAX_ANSWER = 1 << 20


@dataclass(frozen=True)
class Answer:
    """A service's answer: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class KeepAlivePool:
    """Requests to one ``host:port`` over reused HTTP/1.1 connections."""

    def __init__(self, host: str, port: int, *, headers: Mapping[str, str], timeout: float,
                 code: str) -> None:
        """Bind the service, the headers sent with every request (credentials), the
        timeout of one whole request and the error code of :class:`Unavailable`."""
        self.host, self.port, self.timeout, self.code = host, port, timeout, code
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, body: bytes = b"",
                      content_type: str = "application/json", extra: str = "") -> Answer:
        """The service's answer to one request (``extra``: more header lines, each
        ``Name: value\r\n``).

        Raises:
            Unavailable: connecting, sending or reading failed, timed out, or the
                answer was not a ``Content-Length`` HTTP/1.x answer.
        """
        now = time.monotonic()
        while self._idle and now - self._idle[-1][0] > IDLE_REUSE:
            self._idle.pop()[2].close()
        try:
            async with asyncio.timeout(self.timeout):
                if self._idle:
                    _, reader, writer = self._idle.pop()
                else:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(
                        (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._head}"
                         f"{extra}Content-Type: {content_type}\r\nContent-Length: {len(body)}"
                         "\r\n\r\n").encode("latin-1") + body)
                    answer = await self._answer(reader, writer)
                except BaseException:
                    writer.close()
                    raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            raise Unavailable(f"service at {self.host}:{self.port} unreachable: {e!r}",
                              code=self.code) from e
        if answer.headers.get("connection", "").lower() == "close" or \
                len(self._idle) >= _MAX_IDLE:
            writer.close()
        else:
            self._idle.append((time.monotonic(), reader, writer))
        return answer

    @staticmethod
    async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Answer:
        await writer.drain()
        status = (await reader.readline()).split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
            raise ValueError("not an HTTP/1.x answer")
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > _MAX_ANSWER:
            raise ValueError("an answer without a bounded Content-Length")
        return Answer(int(status[1]), headers, await reader.readexactly(int(length)))

    def close(self) -> None:
        """Close every idle connection."""
        for _, _, writer in self._idle:
            writer.close()
        self._idle.clear()

"""The gateway's uvicorn protocol that writes each answer's head with its body
(``bordergate.gateway.one_write``): nothing on the wire changes."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bordergate.gateway.one_write import OneWriteProtocol


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """TEST-ONLY ASGI app: one answer of each shape uvicorn handles differently."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":  # no content-length: chunked, three parts
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two", b""):
            await send({"type": "http.response.body", "body": part, "more_body": bool(part)})
    elif path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fails":  # the head is out, then the app fails: uvicorn closes
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        raise RuntimeError("TEST-ONLY failure after the head")
    else:
        body = b'{"ok":true}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _exchange(port: int, request: bytes, then: bytes = b"") -> bytes:
    """Send ``request``; with ``then``, wait for ``100 Continue`` before sending it;
    everything the server sends until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    received = b""
    if then:
        received = await reader.readuntil(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(then)
    received += await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return received


_PIPELINED = (b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
              b"HEAD /json HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /empty HTTP/1.1\r\nHost: t\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
              b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
_CASES = [
    (_PIPELINED, b""),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
     b"Connection: close\r\n\r\n", b"body"),
    (b"GET /fails HTTP/1.1\r\nHost: t\r\n\r\n", b""),
    (b"GET /json HTTP/1.0\r\nHost: t\r\n\r\n", b""),
]


async def _answers(protocol: type) -> list[bytes]:
    port = _port()
    server = uvicorn.Server(uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="critical",
        access_log=False, server_header=False, date_header=False))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        return [await _exchange(port, request, then) for request, then in _CASES]
    finally:
        server.should_exit = True
        await serving


def test_one_write_protocol_answers_byte_for_byte_as_uvicorn() -> None:
    """Promise 3's wire (the gateway answers only after logging, in uvicorn's framing):
    holding an answer's head for its body changes no byte and no order of what a
    client receives, for pipelined keep-alive requests (a JSON answer, HEAD, a
    chunked stream, 204, an echoed body, Connection: close), a ``100 Continue``
    exchange, an app that fails after sending its head (the connection closes
    after the head, as uvicorn does) and HTTP/1.0."""
    plain = asyncio.run(_answers(HttpToolsProtocol))
    one_write = asyncio.run(_answers(OneWriteProtocol))
    assert plain[0].count(b"HTTP/1.1 200 OK") == 5 and b"HTTP/1.1 204" in plain[0]
    assert b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n" in plain[0] and plain[0].endswith(b'{"ok":true}')
    assert plain[1].endswith(b"\r\n\r\nbody") and plain[2].startswith(b"HTTP/1.1 200 OK")
    assert one_write == plain

"""The sequencer as its own process: one writer per log, many gateway workers.

``bordergate log sequencer DIR`` owns a log (it holds the single-writer lock)
and offers, on loopback or a private network, next to the read-only log paths:

* ``POST /append``: body = entries in entry-bundle encoding (big-endian uint16
  length, then bytes, repeated), at most ``max_body`` bytes; answers
  ``{"first": N, "count": C}`` once the entries are durable, 503 with
  ``Retry-After`` on push back, 503 when the log cannot be written;
* ``POST /append-guarded``: one guarded submission (docs/log-durability.md,
  "State versions"), body = JSON ``{"entries": [base64 ...], "expect": {key:
  version}}``; answers as ``/append``, or 409 ``{"code": "stale_state",
  "current": {key: version}}`` when a version changed (nothing sequenced);
* ``POST /publish``: waits for a checkpoint covering every entry so far and
  returns it (``text/plain``);
* ``GET /checkpoint`` and ``/tile/...``: as ``bordergate log serve``.

Each writer authenticates with its own append credential
(:mod:`bordergate.tlog.credentials`: ``Authorization: Bearer ID.SECRET``,
checked against the sequencer's credential list in constant time); a request
without a listed credential gets 401 ``unauthenticated``.  The service hands
every entry of an authenticated request, with the credential's id, to an
optional ``check_entry`` given by its caller (``bordergate log sequencer``
passes :func:`bordergate.tlog.credentials.require_appender`: each entry must name the
credential that sends it, so the log operator, not the appender, attests who
appended it); a refused entry refuses the whole request with 403 and the
check's code, nothing sequenced.  Answers name the credential
(``"appender": ID``).  With ``?promise=1`` an ``/append`` answer also carries
``"promises"``: the log key's signed promise of inclusion of each entry
(:mod:`bordergate.tlog.promise`).

This module must never interpret entries itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bordergate.errors import BordergateError, PushBack, StaleState, VerificationError
from bordergate.tlog.credentials import CredentialList
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.server import log_routes
from bordergate.tlog.tiles import ENTRY_MAX

__all__ = ["EntryCheck", "decode_entries", "decode_guarded", "encode_entries", "encode_guarded",
           "make_sequencer_app"]

#: ``check(credential_id, entry)``: raises VerificationError to refuse the entry.
EntryCheck = Callable[[str, bytes], None]

DEFAULT_MAX_BODY = 16 << 20


def decode_entries(data: bytes) -> list[bytes]:
    """Split entry-bundle-encoded bytes into entries (any count).

    Raises:
        VerificationError: truncated input (``malformed_entries``).
    """
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise VerificationError("entries truncated in a length", code="malformed_entries")
        n = int.from_bytes(data[pos:pos + 2], "big")
        if pos + 2 + n > end:
            raise VerificationError("entries truncated in an entry", code="malformed_entries")
        entries.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return entries


def encode_entries(entries: list[bytes]) -> bytes:
    """The request body for ``POST /append``."""
    if any(len(e) > ENTRY_MAX for e in entries):
        raise ValueError("entry longer than 65535 bytes")
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries)


def encode_guarded(entries: list[bytes], expect: dict[str, int]) -> bytes:
    """The request body for ``POST /append-guarded``."""
    if any(len(e) > ENTRY_MAX for e in entries):
        raise ValueError("entry longer than 65535 bytes")
    return json.dumps({"entries": [base64.b64encode(e).decode("ascii") for e in entries],
                       "expect": expect}).encode()


def decode_guarded(data: bytes) -> tuple[list[bytes], dict[str, int]]:
    """The entries and expected versions of a ``POST /append-guarded`` body.

    Raises:
        VerificationError: not that shape (``malformed_entries``).
    """
    try:
        body: Any = json.loads(data)
        entries = [base64.b64decode(e, validate=True) for e in body["entries"]]
        expect = body["expect"]
        ok = isinstance(expect, dict) and expect and all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in expect.items())
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise VerificationError("malformed guarded submission", code="malformed_entries") from e
    if not ok or not entries or any(len(e) > ENTRY_MAX for e in entries):
        raise VerificationError("malformed guarded submission", code="malformed_entries")
    return entries, dict(expect)


def _problem(e: BordergateError) -> Response:
    headers = {"Retry-After": str(max(1, round(e.retry_after)))} \
        if isinstance(e, PushBack) else {}
    return JSONResponse({"code": e.code, "detail": str(e)}, status_code=e.http_status,
                        headers=headers, media_type="application/problem+json")


async def _read_body(request: Request, max_body: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise VerificationError("request body too large", code="body_too_large")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_body:
            raise VerificationError("request body too large", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(code: str, detail: str, status: int) -> Response:
    return JSONResponse({"code": code, "detail": detail}, status_code=status,
                        media_type="application/problem+json")


def make_sequencer_app(sequencer: Sequencer, credentials: CredentialList, *,
                       check_entry: EntryCheck | None = None,
                       max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The sequencer service app over a started ``sequencer``, accepting appends
    from ``credentials`` and checking each entry with ``check_entry``."""

    def authenticated(request: Request) -> str | None:
        return credentials.authenticate(request.headers.get("authorization", ""))

    async def read_body(request: Request) -> bytes:
        return await _read_body(request, max_body)

    def checked(appender: str, entries: list[bytes]) -> Response | None:
        if check_entry is None:
            return None
        try:
            for entry in entries:
                check_entry(appender, entry)
        except VerificationError as e:
            return _refused(e.code, str(e), 403)
        return None

    def acknowledged(appender: str, first: int, entries: list[bytes],
                     promise: bool) -> Response:
        answer: dict[str, Any] = {"first": first, "count": len(entries), "appender": appender}
        if promise:
            answer["promises"] = [p.decode() for p in sequencer.promises(first, entries)]
        return Response(json.dumps(answer), media_type="application/json")

    async def append(request: Request) -> Response:
        appender = authenticated(request)
        if appender is None:
            return _refused("unauthenticated", "bad or missing append credential", 401)
        try:
            body = await read_body(request)
            entries = decode_entries(body)
            if not entries:
                raise VerificationError("no entries in the request", code="no_entries")
            refusal = checked(appender, entries)
            if refusal is not None:
                return refusal
            first = await asyncio.wrap_future(sequencer.submit(entries))
        except VerificationError as e:
            status = 413 if e.code == "body_too_large" else 400
            return _refused(e.code, str(e), status)
        except BordergateError as e:
            return _problem(e)
        return acknowledged(appender, first, entries,
                            request.query_params.get("promise") == "1")

    async def append_guarded(request: Request) -> Response:
        appender = authenticated(request)
        if appender is None:
            return _refused("unauthenticated", "bad or missing append credential", 401)
        try:
            entries, expect = decode_guarded(await read_body(request))
            refusal = checked(appender, entries)
            if refusal is not None:
                return refusal
            first = await asyncio.wrap_future(sequencer.submit(entries, expect=expect))
        except VerificationError as e:
            status = 413 if e.code == "body_too_large" else 400
            return _refused(e.code, str(e), status)
        except StaleState as e:
            return JSONResponse({"code": e.code, "detail": str(e), "current": e.current},
                                status_code=409, media_type="application/problem+json")
        except BordergateError as e:
            return _problem(e)
        return acknowledged(appender, first, entries,
                            request.query_params.get("promise") == "1")

    async def publish(request: Request) -> Response:
        if authenticated(request) is None:
            return _refused("unauthenticated", "bad or missing append credential", 401)
        try:
            signed = await asyncio.to_thread(sequencer.publish, 30.0)
        except BordergateError as e:
            return _problem(e)
        return PlainTextResponse(signed.note.decode(), headers={"Cache-Control": "no-store"})

    routes = [Route("/append", append, methods=["POST"]),
              Route("/append-guarded", append_guarded, methods=["POST"]),
              Route("/publish", publish, methods=["POST"]),
              *log_routes(sequencer.storage)]
    return Starlette(routes=routes)

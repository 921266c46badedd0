"""The sequencer as its own process: one writer per log, many gateway workers.

``bordergate log sequencer DIR`` owns a log (it holds the single-writer lock)
and offers, on loopback or a private network, next to the read-only log paths:

* ``POST /append``: body = entries in entry-bundle encoding (big-endian uint16
  length, then bytes, repeated), at most ``max_body`` bytes; answers
  ``{"first": N, "count": C}`` once the entries are durable, 503 with
  ``Retry-After`` on push back, 503 when the log cannot be written; with a
  ``Bordergate-Expect: {key: version}`` header the request is one guarded
  submission (docs/log-durability.md, "State versions"), answered 409
  ``{"code": "stale_state", "current": {key: version}}`` when a version
  changed (nothing sequenced), 400 ``malformed_expect`` when the header is
  not a JSON object of integers;
* ``POST /append-guarded``: the same guarded submission with a JSON body
  ``{"entries": [base64 ...], "expect": {key: version}}`` (kept for clients of
  the first format);
* ``POST /publish``: waits for a checkpoint covering every entry so far and
  returns it (``text/plain``);
* ``GET /checkpoint`` and ``/tile/...``: as ``bordergate log serve``.

A sequencer that failed (its storage refused a write: it fails closed, every
append answers 503) is recovered while the service runs: once a second the
service tries :meth:`Sequencer.reopen` (storage re-read and re-verified as
after a crash, then a durable write proven) and, when that succeeds, appends go
to the recovered sequencer; until then they keep failing closed
(:class:`ServingSequencer`).

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
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bordergate.direct_route import require_declared_middleware
from bordergate.errors import (
    BordergateError,
    PushBack,
    StaleState,
    VerificationError,
)
from bordergate.tlog.credentials import CredentialList
from bordergate.tlog.recovery import keep_recovering
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.server import log_routes
from bordergate.tlog.tiles import ENTRY_MAX

__all__ = ["EXPECT_HEADER", "EntryCheck", "SequencerApp", "ServingSequencer", "decode_entries",
           "decode_expect", "decode_guarded", "encode_entries", "encode_expect",
           "make_sequencer_app"]


#: ``check(credential_id, entry)``: raises VerificationError to refuse the entry.
EntryCheck = Callable[[str, bytes], None]

DEFAULT_MAX_BODY = 16 << 20
#: Seconds between two attempts to recover a failed sequencer while serving.
RECOVER_INTERVAL = 1.0


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


#: The request header of a guarded ``POST /append``: the expected state versions.
EXPECT_HEADER = "Bordergate-Expect"
_MAX_EXPECT = 4096


def encode_expect(expect: Mapping[str, int]) -> str:
    """The :data:`EXPECT_HEADER` value of ``expect`` (compact JSON, sorted keys)."""
    return json.dumps(dict(expect), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)


def decode_expect(text: str) -> dict[str, int]:
    """The expected state versions of a :data:`EXPECT_HEADER` value.

    Raises:
        VerificationError: not a non-empty JSON object of integers (``malformed_expect``).
    """
    try:
        expect: Any = json.loads(text) if len(text) <= _MAX_EXPECT else None
    except ValueError:
        expect = None
    if not _is_expect(expect):
        raise VerificationError(f"{EXPECT_HEADER} must be a JSON object of state versions",
                                code="malformed_expect")
    return dict(expect)


def _is_expect(value: Any) -> bool:
    """Whether ``value`` is a non-empty map of state keys to versions (integers)."""
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and type(v) is int for k, v in value.items())


def decode_guarded(data: bytes) -> tuple[list[bytes], dict[str, int]]:
    """The entries and expected versions of a ``POST /append-guarded`` body.

    Raises:
        VerificationError: not that shape (``malformed_entries``).
    """
    try:
        body: Any = json.loads(data)
        entries = [base64.b64decode(e, validate=True) for e in body["entries"]]
        expect = body["expect"]
        ok = _is_expect(expect)
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise VerificationError("malformed guarded submission", code="malformed_entries") from e
    if not ok or not entries or any(len(e) > ENTRY_MAX for e in entries):
        raise VerificationError("malformed guarded submission", code="malformed_entries")
    return entries, dict(expect)


def _stale(e: StaleState) -> Response:
    """409 ``stale_state`` with the current versions (nothing was sequenced)."""
    return JSONResponse({"code": e.code, "detail": str(e), "current": e.current},
                        status_code=409, media_type="application/problem+json")


def _problem(e: BordergateError) -> Response:
    headers = {"Retry-After": str(max(1, round(e.retry_after)))} \
        if isinstance(e, PushBack) else {}
    return JSONResponse({"code": e.code, "detail": str(e)}, status_code=e.http_status,
                        headers=headers, media_type="application/problem+json")


async def _read_body(request: Request, max_body: int) -> bytes:
    return await _read_stream(request.headers.get("content-length"), request.stream(),
                              max_body)


async def _read_stream(declared: str | None, stream: AsyncIterator[bytes],
                       max_body: int) -> bytes:
    """A request body of at most ``max_body`` bytes (by its declared length and by
    counting the stream).

    Raises:
        VerificationError: ``body_too_large``.
    """
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise VerificationError("request body too large", code="body_too_large")
    chunks, total = [], 0
    async for chunk in stream:
        total += len(chunk)
        if total > max_body:
            raise VerificationError("request body too large", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive_stream(receive: Any) -> AsyncIterator[bytes]:
    """The body chunks of an ASGI request, as Starlette's ``Request.stream`` yields them.

    Raises:
        ClientDisconnect: the client went away before the body was complete.
    """
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def _refused(code: str, detail: str, status: int) -> Response:
    return JSONResponse({"code": code, "detail": detail}, status_code=status,
                        media_type="application/problem+json")


class ServingSequencer:
    """The sequencer a service appends to now: the started one, or the one that
    recovered it after a failure (:meth:`recover_while_serving`)."""

    def __init__(self, sequencer: Sequencer) -> None:
        self.sequencer = sequencer

    async def recover(self) -> bool:
        """If the sequencer failed, replace it by one recovered from storage;
        whether it was replaced.

        Raises:
            Unavailable, VerificationError, Conflict: as :meth:`Sequencer.reopen`
                (the failed sequencer stays in place, failing closed).
        """
        failed = self.sequencer
        if failed.failure is None:
            return False
        self.sequencer = await asyncio.to_thread(failed.reopen)
        return True

    async def recover_while_serving(self, interval: float) -> None:
        """Until cancelled: :meth:`recover` once per ``interval`` seconds."""
        await keep_recovering(self.recover, interval,
                              f"sequencer of {self.sequencer.signer.name}")

    def close(self) -> None:
        self.sequencer.close()


def _recovering(serving: ServingSequencer
                ) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: :meth:`ServingSequencer.recover_while_serving` while it runs."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(serving.recover_while_serving(RECOVER_INTERVAL))
        try:
            yield
        finally:
            task.cancel()
    return lifespan


def make_sequencer_app(sequencer: Sequencer | ServingSequencer, credentials: CredentialList, *,
                       check_entry: EntryCheck | None = None,
                       max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The sequencer service app over a started ``sequencer``, accepting appends
    from ``credentials`` and checking each entry with ``check_entry``; while the
    app runs (its lifespan), a failed sequencer is recovered every
    :data:`RECOVER_INTERVAL` seconds."""
    serving = sequencer if isinstance(sequencer, ServingSequencer) else \
        ServingSequencer(sequencer)

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
            answer["promises"] = [p.decode()
                                  for p in serving.sequencer.promises(first, entries)]
        return Response(json.dumps(answer), media_type="application/json")

    async def append_direct(authorization: str, declared: str | None,
                            stream: AsyncIterator[bytes], promise: bool,
                            expected: str | None = None) -> Response:
        appender = credentials.authenticate(authorization)
        if appender is None:
            return _refused("unauthenticated", "bad or missing append credential", 401)
        try:
            expect = None if expected is None else decode_expect(expected)
            body = await _read_stream(declared, stream, max_body)
            entries = decode_entries(body)
            if not entries:
                raise VerificationError("no entries in the request", code="no_entries")
            refusal = checked(appender, entries)
            if refusal is not None:
                return refusal
            first = await asyncio.wrap_future(serving.sequencer.submit(entries, expect=expect))
        except VerificationError as e:
            status = 413 if e.code == "body_too_large" else 400
            return _refused(e.code, str(e), status)
        except StaleState as e:
            return _stale(e)
        except BordergateError as e:
            return _problem(e)
        return acknowledged(appender, first, entries, promise)

    async def append(request: Request) -> Response:
        return await append_direct(request.headers.get("authorization", ""),
                                   request.headers.get("content-length"), request.stream(),
                                   request.query_params.get("promise") == "1",
                                   request.headers.get(EXPECT_HEADER))

    async def append_guarded(request: Request) -> Response:
        appender = authenticated(request)
        if appender is None:
            return _refused("unauthenticated", "bad or missing append credential", 401)
        try:
            entries, expect = decode_guarded(await read_body(request))
            refusal = checked(appender, entries)
            if refusal is not None:
                return refusal
            first = await asyncio.wrap_future(
                serving.sequencer.submit(entries, expect=expect))
        except VerificationError as e:
            status = 413 if e.code == "body_too_large" else 400
            return _refused(e.code, str(e), status)
        except StaleState as e:
            return _stale(e)
        except BordergateError as e:
            return _problem(e)
        return acknowledged(appender, first, entries,
                            request.query_params.get("promise") == "1")

    async def publish(request: Request) -> Response:
        if authenticated(request) is None:
            return _refused("unauthenticated", "bad or missing append credential", 401)
        try:
            signed = await asyncio.to_thread(serving.sequencer.publish, 30.0)
        except BordergateError as e:
            return _problem(e)
        return PlainTextResponse(signed.note.decode(), headers={"Cache-Control": "no-store"})

    routes = [Route("/append", append, methods=["POST"]),
              Route("/append-guarded", append_guarded, methods=["POST"]),
              Route("/publish", publish, methods=["POST"]),
              *log_routes(serving.sequencer.storage)]  # the same storage after recovery
    return SequencerApp(append_direct, routes=routes, lifespan=_recovering(serving))


#: ``append(authorization, content_length, body_stream, promise, expect_header)``:
#: the answer to one ``POST /append``.
DirectAppend = Callable[[str, str | None, AsyncIterator[bytes], bool, str | None],
                        Awaitable[Response]]
_EXPECT_NAME = EXPECT_HEADER.lower().encode("latin-1")


class SequencerApp(Starlette):
    """The sequencer service's Starlette app with a direct ASGI path for its hot route,
    ``POST /append`` (every gateway batch), as :class:`bordergate.gateway.app.GatewayApp`
    has for reads.

    The direct path calls the same handler as the Starlette route (same answers,
    problem bodies and headers; ``test_direct_append_path_answers_as_the_starlette_route``
    holds both to that) without building a ``Request`` and without walking the
    route table or Starlette's exception middleware.  What it skips, and why nothing
    is lost:

    * the route table: only the exact path ``/append`` with method ``POST`` and no
      ``root_path`` mount is taken; everything else goes to Starlette;
    * ``Request``: the ``Authorization`` and ``Content-Length`` headers are read as
      Starlette reads them (the first of each), the query as its ``QueryParams``
      (the last ``promise`` wins) and the body from ``receive`` as ``Request.stream``
      does (a client that disconnects before its body is complete gets no answer
      and nothing is sequenced, as on the route);
    * ``ServerErrorMiddleware``: an unexpected exception answers 500 ``Internal
      Server Error`` (plain text, as that middleware does) and is raised again
      for the server to log;
    * the app's user middleware: the direct path applies exactly
      :attr:`DIRECT_ROUTE_MIDDLEWARE` (none), and :meth:`build_middleware_stack`
      refuses to build an app whose middleware list differs, so a middleware
      added later cannot be skipped silently on this route.
    """

    #: The user middleware (``Starlette.user_middleware`` classes, in order) that
    #: the direct append route applies itself.  Add a middleware to the app and it
    #: must be added here *and* applied in :meth:`__call__`, or the app refuses to
    #: start.
    DIRECT_ROUTE_MIDDLEWARE: tuple[type, ...] = ()

    def __init__(self, append: DirectAppend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._append = append

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, refused when its user middleware is not what the direct
        route applies (built before the first request of either path).

        Raises:
            ConfigError: ``direct_route_middleware_mismatch``.
        """
        require_declared_middleware(self, self.DIRECT_ROUTE_MIDDLEWARE, route="append",
                                    applied_in="SequencerApp.__call__")
        return super().build_middleware_stack()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.middleware_stack is None:  # checks the middleware before any direct append
            self.middleware_stack = self.build_middleware_stack()
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] == "/append" and not scope.get("root_path")):
            authorization: str | None = None
            declared: str | None = None
            expected: str | None = None
            for name, value in scope["headers"]:  # as Starlette's Headers.get: the first
                if name == b"authorization" and authorization is None:
                    authorization = value.decode("latin-1")
                elif name == b"content-length" and declared is None:
                    declared = value.decode("latin-1")
                elif name == _EXPECT_NAME and expected is None:
                    expected = value.decode("latin-1")
            query = scope["query_string"]
            promise = bool(query) and dict(parse_qsl(
                query.decode("latin-1"), keep_blank_values=True)).get("promise") == "1"
            try:
                response = await self._append(authorization or "", declared,
                                               _receive_stream(receive), promise, expected)
            except ClientDisconnect:
                return
            except Exception:
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, send)
                raise
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

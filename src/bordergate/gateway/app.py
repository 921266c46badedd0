"""The gateway's HTTP API (Starlette on uvicorn): parse, call ``Gateway``, render.

Routes (documented in ``gateway.openapi``, served at ``/openapi.json``)::

    POST   /v1/subjects                           mint a subject homed here
    PUT    /v1/{collection}/{record_id}?purpose=  write a record {subject, values}
    GET    /v1/{collection}/{record_id}?fields=&purpose=[&approval=&subject=]
    DELETE /v1/subjects/{subject_id}?purpose=     erase (crypto-shred) a subject
    POST   /v1/exports                            k-anonymous aggregate
    POST   /v1/approvals                          request an approval
    POST   /v1/approvals/{id}/grant|deny|revoke   change its state (body: the
                                                  approver's signed statement)
    GET    /v1/approvals/{id}, /v1/approvals?state=
    GET    /v1/log/checkpoint, /v1/log/tile/..., /v1/log/proof/{index}
    GET    /healthz (liveness), /readyz (readiness, ``gateway.readiness``), /openapi.json

The dashboard and ``/metrics`` are not here: they are served on the admin
listener (``gateway.admin``), to custodians and monitors only.

Errors are RFC 9457 ``application/problem+json`` bodies with a stable ``code``
(from the error tree's ``.code``/``.http_status``): 421 names the home gateway
(``gateway`` member, ``Location`` and ``Bordergate-Home-Gateway`` headers),
``PushBack`` adds ``Retry-After``.  Bodies larger than the configured limit are
refused (413) before they are parsed, by ``Content-Length`` and by counting
the stream.  Reads and writes answer with ``Bordergate-Log-Origin`` and
``Bordergate-Log-Index`` headers naming the entry that recorded the decision.

This module must never answer with a stack trace, never send data before the
``Gateway`` call returned (the log append is inside it), and never proxy a
request to another jurisdiction.
"""

from __future__ import annotations

import decimal
import json
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp

from bordergate.direct_route import require_declared_middleware
from bordergate.errors import (
    BordergateError,
    InvalidInput,
    PushBack,
    Unavailable,
    WrongJurisdiction,
)
from bordergate.gateway.fifo_cache import BoundedFifoCache
from bordergate.gateway.openapi import INDEX_MAX, api_model, openapi_document
from bordergate.gateway.readiness import Readiness
from bordergate.gateway.service import DeniedAfterLogging, Gateway, Outcome
from bordergate.tlog.server import log_routes

__all__ = ["APPROVAL_HEADER", "GatewayApp", "GatewayMetrics", "create_app",
           "health_routes", "metrics_endpoint", "problem_response", "refusing_app"]

log = logging.getLogger(__name__)

APPROVAL_HEADER = "bordergate-approval"
PROBLEM_TYPE = "urn:bordergate:problem:"
_PROBLEM = "application/problem+json"


class _ProblemBody(JSONResponse):
    media_type = _PROBLEM


def problem_response(status: int, code: str, detail: str,
                     members: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem response with bordergate's stable ``code`` member."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {"type": PROBLEM_TYPE + code, "title": title, "status": status,
            "detail": detail, "code": code, **(members or {})}
    return _ProblemBody(body, status_code=status, headers=headers)


def _error_response(exc: BordergateError) -> Response:
    members: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, WrongJurisdiction):
        members = {"home": exc.home, "gateway": exc.location}
        if exc.location:
            headers = {"Location": exc.location, "Bordergate-Home-Gateway": exc.location}
    elif isinstance(exc, PushBack):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        members["retry_after"] = exc.retry_after
    elif isinstance(exc, DeniedAfterLogging):
        members = exc.members
        headers = {"Bordergate-Log-Index": str(exc.log_index)}
        origin = exc.members.get("log", {}).get("origin")
        if origin:
            headers["Bordergate-Log-Origin"] = origin
    status = exc.http_status if exc.http_status >= 400 else 500
    if isinstance(exc, Unavailable) and "Retry-After" not in headers:
        headers["Retry-After"] = "1"
    return problem_response(status, exc.code, exc.message, members, headers)


class GatewayMetrics:
    """Prometheus metrics of one gateway, in their own registry.

    Labels carry route names, HTTP statuses and field outcomes only: never a
    principal, requester, subject, record or approval id, nor a path (served
    on the admin listener, ``gateway.admin``).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("bordergate_requests", "HTTP requests answered",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("bordergate_request_seconds", "Time to answer",
                                 ["route"], registry=self.registry,
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0))
        self.fields = Counter("bordergate_fields", "Fields decided on reads",
                              ["outcome"], registry=self.registry)
        self._children: dict[tuple[str, int], Any] = {}
        self._latencies: dict[str, Any] = {}
        self.released = self.fields.labels("released")
        self.withheld = self.fields.labels("withheld")

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answer of ``route`` and its latency (label children cached)."""
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, str(status))
        child.inc()
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self.latency.labels(route)
        latency.observe(seconds)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (header and stream).

    Raises:
        InvalidInput: ``body_too_large`` (413) or ``malformed_body``.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidInput("Content-Length is not a number", code="malformed_body")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> InvalidInput:
    exc = InvalidInput(f"the request body exceeds {limit} bytes", code="body_too_large")
    exc.http_status = 413
    return exc


def _json_number(text: str) -> int | float:
    """A JSON number written with a fraction or exponent: an ``int`` when its value is
    integral (JSON Schema's ``integer`` is a value, not a spelling: ``25.0`` and
    ``2.5e1`` are 25), else a float.  Exponents of 19 digits and more stay floats, so
    a huge exponent costs nothing and still fails every integer check."""
    number = decimal.Decimal(text)
    if number.adjusted() < 19 and number == number.to_integral_value():
        return int(number)
    return float(text)


async def read_json(request: Request, limit: int) -> object:
    """The body parsed as JSON (size-checked first).

    Raises:
        InvalidInput: ``body_too_large`` (413) or ``malformed_json`` (400).
    """
    data = await read_body(request, limit)
    try:
        return json.loads(data, parse_float=_json_number)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON", code="malformed_json") from None


Handler = Callable[[Request, Gateway], Awaitable[Outcome]]


def _endpoint(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        state = request.app.state
        gateway: Gateway | None = getattr(state, "gateway", None)
        metrics: GatewayMetrics = state.metrics
        try:
            if gateway is None:
                raise Unavailable("the gateway is not serving", code="gateway_not_started")
            outcome = await handler(request, gateway)
            response: Response = JSONResponse(outcome.body, status_code=outcome.status,
                                              headers=outcome.headers)
        except BordergateError as exc:
            response = _error_response(exc)
        except Exception:  # never a stack trace to the caller; the log keeps it
            log.exception("unhandled error on %s", route)
            response = problem_response(500, "internal_error",
                                        "the gateway failed; nothing was released")
        metrics.observe(route, response.status_code, time.perf_counter() - started)
        return response

    return endpoint


def _auth(request: Request) -> str | None:
    return request.headers.get("authorization")


async def _mint(request: Request, gw: Gateway) -> Outcome:
    await read_body(request, gw.limits.max_body_bytes)
    return await gw.mint_subject(_auth(request))


async def _read(request: Request, gw: Gateway) -> Outcome:
    q = request.query_params
    outcome = await gw.read(
        _auth(request), request.path_params["collection"], request.path_params["record_id"],
        fields=q.get("fields"), purpose=q.get("purpose"),
        approval=request.headers.get(APPROVAL_HEADER) or q.get("approval"),
        subject=q.get("subject"))
    metrics: GatewayMetrics = request.app.state.metrics
    metrics.released.inc(len(outcome.body["fields"]))
    metrics.withheld.inc(len(outcome.body["withheld"]))
    return outcome


async def _write(request: Request, gw: Gateway) -> Outcome:
    gw.authenticate(_auth(request))  # 401 before reading a body
    payload = await read_json(request, gw.limits.max_body_bytes)
    return await gw.write(_auth(request), request.path_params["collection"],
                          request.path_params["record_id"], payload,
                          purpose=request.query_params.get("purpose"))


async def _erase(request: Request, gw: Gateway) -> Outcome:
    return await gw.erase(_auth(request), request.path_params["subject_id"],
                          purpose=request.query_params.get("purpose"))


async def _export(request: Request, gw: Gateway) -> Outcome:
    gw.authenticate(_auth(request))
    return await gw.export(_auth(request), await read_json(request, gw.limits.max_body_bytes))


async def _approval_request(request: Request, gw: Gateway) -> Outcome:
    gw.authenticate(_auth(request))
    payload = await read_json(request, gw.limits.max_body_bytes)
    return await gw.request_approval(_auth(request), payload)


def _approval_change(verdict: str) -> Handler:
    async def change(request: Request, gw: Gateway) -> Outcome:
        data = await read_body(request, gw.limits.max_body_bytes)
        try:  # an empty body: a requester withdrawing their own request signs nothing
            payload = json.loads(data, parse_float=_json_number) if data.strip() else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise InvalidInput("the body is not valid JSON", code="malformed_json") from None
        if data.strip() and not isinstance(payload, dict):  # JSON null is not "no body"
            raise InvalidInput("the body must be empty or {\"statement\": {...}}",
                               code="malformed_body")
        return await gw.decide_approval(_auth(request), request.path_params["approval_id"],
                                        verdict, payload)
    return change


async def _revoke_token(request: Request, gw: Gateway) -> Outcome:
    gw.authenticate(_auth(request))
    return await gw.revoke_token(_auth(request), await read_json(request,
                                                                gw.limits.max_body_bytes))


async def _approval_get(request: Request, gw: Gateway) -> Outcome:
    return await gw.get_approval(_auth(request), request.path_params["approval_id"])


async def _approval_list(request: Request, gw: Gateway) -> Outcome:
    return await gw.list_approvals(_auth(request), request.query_params.get("state"))


async def _proof(request: Request, gw: Gateway) -> Outcome:
    raw = request.path_params["index"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > INDEX_MAX:
        raise InvalidInput(f"the index must be an integer from 0 to {INDEX_MAX}",
                           code="malformed_index")
    return await gw.inclusion_proof(int(raw))


async def _healthz(request: Request) -> Response:
    """Liveness: the gateway started and serves HTTP (200 even while it fails closed;
    ``/readyz`` says whether it would answer a read)."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    refusal = getattr(request.app.state, "refusal", None)
    if gateway is None:
        return problem_response(503, refusal[0] if refusal else "gateway_not_started",
                                refusal[1] if refusal else "the gateway is not serving")
    return JSONResponse({"status": "ok", "jurisdiction": gateway.jurisdiction,
                         "origin": gateway.origin, "bundle": gateway.bundle_digest})


async def _readyz(request: Request) -> Response:
    """Readiness (``gateway.readiness``): 200 ready or degraded, 503 failing with the
    first failing check's code and reason."""
    readiness: Readiness = request.app.state.readiness
    ready, body = await readiness.check()
    if ready:
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
    members = {k: v for k, v in body.items() if k not in ("code", "reason")}
    return problem_response(503, body["code"], body["reason"], members,
                            headers={"Retry-After": "1", "Cache-Control": "no-store"})


def health_routes() -> list[Route]:
    """``/healthz`` and ``/readyz`` (public and admin listeners)."""
    return [Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"])]


async def metrics_endpoint(request: Request) -> Response:
    """``/metrics`` in the Prometheus text format (admin listener only)."""
    metrics: GatewayMetrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "route_not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = exc.detail if isinstance(exc, HTTPException) else "error"
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return problem_response(status, code, str(detail), headers=headers)


def _method_not_allowed(allowed: set[str]) -> Response:
    """405 with the ``Allow`` header RFC 9110 (section 15.5.6) requires."""
    if "GET" in allowed:
        allowed = allowed | {"HEAD"}
    return problem_response(405, "method_not_allowed", "Method Not Allowed",
                            headers={"Allow": ", ".join(sorted(allowed))})


Endpoint = Callable[[Request], Awaitable[Response]]


def _dispatch(endpoints: dict[str, Endpoint]) -> Endpoint:
    """One endpoint answering several methods of one path (HEAD as GET), so that a
    405 on that path names all of them in ``Allow``."""
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = endpoints.get(method)
        if handler is None:
            return _method_not_allowed(set(endpoints))
        return await handler(request)
    return endpoint


def _collection_endpoint(collection: str, endpoints: dict[str, Endpoint]) -> Endpoint:
    """The record endpoints of one schema collection (its own route, so that its
    405 names its methods); the handlers read the collection as a path parameter."""
    dispatch = _dispatch(endpoints)

    async def endpoint(request: Request) -> Response:
        request.scope["path_params"] = {**request.path_params, "collection": collection}
        return await dispatch(request)
    return endpoint


def _record_fallback(record_endpoints: dict[str, Endpoint]) -> Endpoint:
    """``/v1/{collection}/{record_id}`` for any first segment the schema does not name.

    A path another route serves with other methods (``GET /v1/subjects/{id}``)
    is answered 405 with that route's methods in ``Allow``, not read as a
    collection; an unknown collection is read or written, to be refused with
    ``unknown_collection``.
    """
    async def endpoint(request: Request) -> Response:
        allowed: set[str] = set()
        for route in request.app.router.routes:
            if isinstance(route, Route) and route.endpoint is not endpoint:
                match, _ = route.matches(request.scope)
                if match is not Match.NONE:
                    allowed |= set(route.methods or ())
        if allowed:
            return _method_not_allowed(allowed)
        return await _dispatch(record_endpoints)(request)
    return endpoint


_RESERVED = frozenset({"subjects", "exports", "approvals", "log"})


def _routes(gateway: Gateway) -> list[Route]:
    def r(path: str, name: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, _endpoint(name, handler), methods=methods)

    read, write = _endpoint("read", _read), _endpoint("write", _write)
    routes = [
        *health_routes(),
        Route("/openapi.json", _openapi, methods=["GET"]),
        r("/v1/subjects", "mint_subject", _mint, ["POST"]),
        r("/v1/subjects/{subject_id}", "erase", _erase, ["DELETE"]),
        r("/v1/exports", "export", _export, ["POST"]),
        Route("/v1/approvals", _dispatch({
            "POST": _endpoint("approval_request", _approval_request),
            "GET": _endpoint("approval_list", _approval_list)}), methods=["GET", "POST"]),
        r("/v1/approvals/{approval_id}", "approval_get", _approval_get, ["GET"]),
        r("/v1/approvals/{approval_id}/grant", "approval_grant", _approval_change("grant"),
          ["POST"]),
        r("/v1/approvals/{approval_id}/deny", "approval_deny", _approval_change("deny"),
          ["POST"]),
        r("/v1/approvals/{approval_id}/revoke", "approval_revoke", _approval_change("revoke"),
          ["POST"]),
        r("/v1/log/proof/{index}", "log_proof", _proof, ["GET"]),
        r("/v1/tokens/revoke", "token_revoke", _revoke_token, ["POST"]),
    ]
    routes += log_routes(gateway.log_storage, prefix="/v1/log")
    records = {"GET": read, "PUT": write}
    routes += [Route(f"/v1/{name}/{{record_id}}", _collection_endpoint(name, records),
                     methods=["GET", "PUT"])
               for name in sorted(set(gateway.schema.collections) - _RESERVED)]
    routes.append(Route("/v1/{collection}/{record_id}", _record_fallback(records)))
    return routes


_JSON_BODY = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None,
                              separators=(",", ":")).encode  # as JSONResponse renders
_MAX_QUERIES = 1024


class GatewayApp(Starlette):
    """The gateway's Starlette app with a direct ASGI path for the hot route,
    ``GET /v1/{collection}/{record_id}`` of a schema collection.

    The direct path does what the Starlette route does (same ``Gateway.read``
    call, same answers, problem bodies, headers and metrics; the differential
    test ``test_direct_read_path_answers_as_the_starlette_route`` holds both
    to that) without building a ``Request`` and ``Response`` and without
    walking the route table: that is most of a read's cost in Python, and the
    bench's ratio to a bare endpoint (issue 5) depends on it.  Every other
    request goes through Starlette.  What the direct path skips, and why
    nothing is lost:

    * the route table: the path is matched by hand, and only for schema
      collections (the reserved first segments ``subjects``, ``exports``,
      ``approvals`` and ``log`` and any ``root_path`` mount go to Starlette);
    * ``Request``/``JSONResponse``: headers and the query string are read as
      Starlette reads them (first header wins, last query value wins, blanks
      kept) and the body is rendered with ``JSONResponse``'s encoder;
    * ``ServerErrorMiddleware`` and ``ExceptionMiddleware``: the direct path
      catches every exception itself, as the routed ``_endpoint`` does
      (problem bodies, never a stack trace);
    * the app's user middleware: the direct path applies exactly
      :attr:`DIRECT_ROUTE_MIDDLEWARE` (none), and :meth:`build_middleware_stack`
      refuses to build an app whose middleware list differs, so a middleware
      added later cannot be skipped silently on this route.
    """

    #: The user middleware (``Starlette.user_middleware`` classes, in order) that
    #: the direct read route applies itself.  Add a middleware to the app and
    #: it must be added here *and* applied in :meth:`_read`, or the app refuses
    #: to start.
    DIRECT_ROUTE_MIDDLEWARE: tuple[type, ...] = ()

    def __init__(self, gateway: Gateway, metrics: GatewayMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics
        self._collections = frozenset(gateway.schema.collections) - _RESERVED
        self._queries: BoundedFifoCache[bytes, dict[str, str]] = BoundedFifoCache(_MAX_QUERIES)

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, refused when its user middleware is not what the
        direct route applies (built at start-up by the lifespan request, or
        before the first request of either path).

        Raises:
            ConfigError: ``direct_route_middleware_mismatch``.
        """
        require_declared_middleware(self, self.DIRECT_ROUTE_MIDDLEWARE, route="read",
                                    applied_in="GatewayApp._read")
        return super().build_middleware_stack()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.middleware_stack is None:  # checks the middleware before any direct read
            self.middleware_stack = self.build_middleware_stack()
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            parts = scope["path"].split("/")
            if (len(parts) == 4 and parts[1] == "v1" and parts[2] in self._collections
                    and parts[3]):
                await self._read(scope, receive, send, parts[2], parts[3])
                return
        await super().__call__(scope, receive, send)

    def _query(self, raw: bytes) -> dict[str, str]:
        # as Starlette's QueryParams: blank values kept, the last of a repeated name wins
        query = self._queries.get(raw)
        if query is None:
            query = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
            self._queries.put(raw, query)
        return query

    async def _read(self, scope: Any, receive: Any, send: Any, collection: str,
                    record_id: str) -> None:
        started = time.perf_counter()
        metrics = self._metrics
        authorization = approval_header = None
        for name, value in scope["headers"]:  # as Starlette's Headers.get: the first one
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"bordergate-approval" and approval_header is None:
                approval_header = value.decode("latin-1")
        try:
            gateway: Gateway | None = getattr(self.state, "gateway", None)
            if gateway is None:
                raise Unavailable("the gateway is not serving", code="gateway_not_started")
            q = self._query(scope["query_string"])
            outcome = await gateway.read(
                authorization, collection, record_id, fields=q.get("fields"),
                purpose=q.get("purpose"), approval=approval_header or q.get("approval"),
                subject=q.get("subject"))
            released, withheld = len(outcome.body["fields"]), len(outcome.body["withheld"])
            if released:  # an increment by 0 takes the counter's lock for nothing
                metrics.released.inc(released)
            if withheld:
                metrics.withheld.inc(withheld)
            body = _JSON_BODY(outcome.body).encode("utf-8")
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                       for k, v in outcome.headers.items()]
            headers += [(b"content-length", str(len(body)).encode()),
                        (b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": outcome.status,
                        "headers": headers})
            await send({"type": "http.response.body", "body": body})
            status = outcome.status
        except BordergateError as exc:
            response = _error_response(exc)
            await response(scope, receive, send)
            status = response.status_code
        except Exception:  # never a stack trace to the caller; the log keeps it
            log.exception("unhandled error on read")
            response = problem_response(500, "internal_error",
                                        "the gateway failed; nothing was released")
            await response(scope, receive, send)
            status = 500
        metrics.observe("read", status, time.perf_counter() - started)


def create_app(gateway: Gateway) -> Starlette:
    """The Starlette app serving an already started ``gateway``.

    The caller owns the gateway (``gateway.startup.start_gateway``) and closes it.
    """
    metrics = GatewayMetrics()
    app = GatewayApp(gateway, metrics, routes=_routes(gateway),
                     exception_handlers={HTTPException: _http_error})
    app.state.gateway = gateway
    app.state.metrics = metrics
    app.state.readiness = Readiness(gateway, max_backlog=gateway.limits.readiness_max_backlog)
    app.state.openapi = openapi_document(api_model(
        gateway.schema, gateway.engine.bundle, jurisdiction=gateway.jurisdiction,
        limits=gateway.limits))
    return app


def refusing_app(code: str, detail: str) -> Starlette:
    """An app that answers every request with 503 ``code`` (fail closed at startup).

    Used when the gateway must not serve: policy bundle unreadable, no approved
    release, key backend or log unavailable at start.
    """
    async def refuse(request: Request) -> Response:
        return problem_response(503, code, detail, headers={"Retry-After": "30"})

    app = Starlette(routes=[Route("/{path:path}", refuse,
                                  methods=["GET", "POST", "PUT", "DELETE", "HEAD"])])
    app.state.gateway = None
    app.state.refusal = (code, detail)
    return app

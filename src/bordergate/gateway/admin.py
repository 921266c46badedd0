"""The gateway's admin listener: the dashboard and ``/metrics``, for custodians and monitors.

Operational data (pending approvals with their requesters and reasons, the
log's traffic by destination, request counts) is not for every principal, so
it is not served on the public listener at all.  The admin listener is a
second HTTP server of the same process, bound to loopback by default
(``admin_listen`` in the deployment file, ``gateway serve --admin-listen``)::

    GET  /login                   a form asking for a token (browsers)
    POST /login                   token -> session cookie, 303 to /dashboard/
    POST /logout                  forget the session
    GET  /dashboard/, /dashboard/data.json, /dashboard/dashboard.js
    GET  /metrics                 Prometheus text; no identifiers in any label
    GET  /healthz, /readyz        as on the public listener

Everything but ``/login``, ``/logout``, ``/healthz`` and ``/readyz`` needs an
**admin principal**: a token from this jurisdiction's issuer (verified by the
gateway's own verifier, lifetime and all) of a custodian working here
(``org_kind = "custodian"``, ``loc`` = this jurisdiction) or of a principal
with the ``monitor`` role.  Tools send it as ``Authorization: Bearer``;
browsers post it once to ``/login`` and get a session cookie (random id,
``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS, at most
:data:`SESSION_SECONDS`) that names the token held here; the token is
verified again on every request, so an expired (or revoked) token ends its
session at once.  Without credentials: 401; with a token that is not an
admin's: 403.

CSRF: everything but the two ``POST`` routes only reads; a login or logout
whose ``Origin`` is another site's is refused, and the cookie is never sent
cross-site (``SameSite=Strict``).

This module must never change gateway state, append to the log, or serve
the dashboard or metrics without an admin principal.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bordergate.errors import BordergateError, PolicyDenied, Unauthenticated
from bordergate.gateway.service import Gateway
from bordergate.policy.entities import Principal

__all__ = ["ADMIN_COOKIE", "SESSION_SECONDS", "AdminGuard", "AdminSessions",
           "admin_principal", "create_admin_app", "is_admin"]

ADMIN_COOKIE = "bordergate_admin"
SESSION_SECONDS = 900
MONITOR_ROLE = "monitor"
_MAX_SESSIONS = 1024
_MAX_LOGIN_BODY = 16 * 1024
_OPEN_PATHS = frozenset({"/login", "/logout", "/healthz", "/readyz"})
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'")
_LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bordergate admin: {jurisdiction}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:36em;margin:4em auto}}
textarea{{width:100%;height:8em;font:12px monospace}}</style></head><body>
<h1>bordergate gateway {jurisdiction}: admin</h1>
<p>Paste a custodian or monitor token of this jurisdiction. It stays on this
gateway; your browser keeps only a session cookie for {minutes} minutes.</p>
{message}
<form method="post" action="/login">
<label for="token">Token</label><br>
<textarea id="token" name="token" autocomplete="off" required></textarea><br>
<button type="submit">Sign in</button></form></body></html>
"""


def is_admin(principal: Principal, jurisdiction: str) -> bool:
    """Whether ``principal`` may see the admin listener of ``jurisdiction``'s gateway:
    a custodian working there, or a monitor."""
    return MONITOR_ROLE in principal.roles or (
        principal.org_kind == "custodian" and principal.location == jurisdiction)


class AdminSessions:
    """Browser sessions of the admin listener: random id -> (Authorization, expiry).

    Bounded (the oldest session goes first); thread-safe.
    """

    def __init__(self, seconds: float = SESSION_SECONDS, max_sessions: int = _MAX_SESSIONS,
                 clock: Any = time.monotonic) -> None:
        self.seconds = seconds
        self.max_sessions = max_sessions
        self.clock = clock
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, authorization: str) -> str:
        """A new session for ``authorization``; returns its id."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._items[sid] = (authorization, self.clock() + self.seconds)
            while len(self._items) > self.max_sessions:
                self._items.popitem(last=False)
        return sid

    def authorization(self, sid: str) -> str | None:
        """The Authorization of a live session, or None."""
        with self._lock:
            item = self._items.get(sid)
            if item is None:
                return None
            if item[1] <= self.clock():
                del self._items[sid]
                return None
            return item[0]

    def close(self, sid: str) -> None:
        with self._lock:
            self._items.pop(sid, None)


def _problem(exc: BordergateError) -> Response:
    from bordergate.gateway.app import problem_response

    return problem_response(exc.http_status, exc.code, exc.message)


def _same_origin(request: Request) -> bool:
    """A ``POST`` from a page of this listener (or from a tool sending no Origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


class AdminGuard:
    """ASGI middleware: every path but the open ones needs an admin principal."""

    def __init__(self, app: ASGIApp, *, gateway: Gateway, sessions: AdminSessions) -> None:
        self.app = app
        self.gateway = gateway
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            self.authorize(request)
        except BordergateError as exc:
            response = _problem(exc)
            if (isinstance(exc, Unauthenticated) and scope["method"] == "GET"
                    and "text/html" in request.headers.get("accept", "")):
                response = RedirectResponse("/login", status_code=303)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def authorize(self, request: Request) -> Principal:
        """The admin principal of ``request`` (bearer header, else session cookie).

        Raises:
            Unauthenticated, PolicyDenied: as :func:`admin_principal`.
        """
        authorization = request.headers.get("authorization")
        if authorization is None:
            sid = request.cookies.get(ADMIN_COOKIE)
            authorization = self.sessions.authorization(sid) if sid else None
        return admin_principal(self.gateway, authorization)


def admin_principal(gateway: Gateway, authorization: str | None) -> Principal:
    """The principal of ``authorization`` if it is an admin of ``gateway``.

    Raises:
        Unauthenticated: no credentials (``admin_login_required``), or a bad token.
        PolicyDenied: ``admin_only``: the token is not a custodian's or monitor's.
    """
    if authorization is None:
        raise Unauthenticated("the admin listener needs a custodian or monitor token "
                              "(Authorization: Bearer, or sign in at /login)",
                              code="admin_login_required")
    principal = gateway.authenticate(authorization)
    if not is_admin(principal, gateway.jurisdiction):
        raise PolicyDenied("only this jurisdiction's custodians and monitors may see "
                           "the dashboard and metrics", code="admin_only")
    return principal


def create_admin_app(gateway: Gateway, public: Starlette, *,
                     sessions: AdminSessions | None = None) -> Starlette:
    """The admin listener's app for ``gateway``, sharing the metrics and readiness of
    ``public`` (the app of :func:`bordergate.gateway.app.create_app`)."""
    from bordergate.gateway.app import (
        health_routes,
        metrics_endpoint,
        problem_response,
        read_body,
    )
    from bordergate.gateway.dashboard import dashboard_app

    sessions = sessions or AdminSessions()
    headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}

    def page(message: str = "", status: int = 200) -> Response:
        return HTMLResponse(_LOGIN_PAGE.format(
            jurisdiction=escape(gateway.jurisdiction), minutes=SESSION_SECONDS // 60,
            message=f"<p><strong>{escape(message)}</strong></p>" if message else ""),
            status_code=status, headers=headers)

    async def login_form(request: Request) -> Response:
        return page()

    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return problem_response(403, "cross_origin_login",
                                    "a sign-in must come from this listener's own page")
        try:
            body = await read_body(request, _MAX_LOGIN_BODY)
            form = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
            authorization = f"Bearer {form.get('token', '').strip()}"
            admin_principal(gateway, authorization)
        except BordergateError as exc:
            return page(f"Not signed in ({exc.code}).", status=exc.http_status)
        response = RedirectResponse("/dashboard/", status_code=303, headers=headers)
        response.set_cookie(ADMIN_COOKIE, sessions.open(authorization),
                            max_age=SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(request: Request) -> Response:
        if not _same_origin(request):
            return problem_response(403, "cross_origin_login",
                                    "a sign-out must come from this listener's own page")
        sid = request.cookies.get(ADMIN_COOKIE)
        if sid:
            sessions.close(sid)
        response = RedirectResponse("/login", status_code=303, headers=headers)
        response.delete_cookie(ADMIN_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "route_not_found", 405: "method_not_allowed"}.get(status, "http_error")
        return problem_response(status, code, str(getattr(exc, "detail", "error")))

    routes = [Route("/login", login_form, methods=["GET"]),
              Route("/login", login, methods=["POST"]),
              Route("/logout", logout, methods=["POST"]),
              Route("/metrics", metrics_endpoint, methods=["GET"]),
              *health_routes(),
              Mount("/dashboard", dashboard_app(gateway))]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.gateway = gateway
    app.state.metrics = public.state.metrics
    app.state.readiness = public.state.readiness
    app.state.sessions = sessions
    app.add_middleware(AdminGuard, gateway=gateway, sessions=sessions)
    return app

"""The guard of a direct ASGI route: an app that serves one hot route itself
(the gateway's reads, the log operator's appends) bypasses Starlette's user
middleware on it, so the app must declare exactly the middleware that route
applies, and refuses to build its stack otherwise.  This module must never
serve a request: it only compares the declared middleware with the app's.
"""

from __future__ import annotations

from typing import Any

from bordergate.errors import ConfigError

__all__ = ["require_declared_middleware"]


def require_declared_middleware(app: Any, declared: tuple[type, ...], *, route: str,
                                applied_in: str) -> None:
    """Refuse ``app`` (a Starlette app) whose user middleware differs from ``declared``.

    Raises:
        ConfigError: ``direct_route_middleware_mismatch``.
    """
    added: tuple[object, ...] = tuple(m.cls for m in app.user_middleware)
    if added != declared:
        names = [getattr(cls, "__name__", repr(cls)) for cls in added]
        raise ConfigError(
            f"the app's middleware {names} differs from what the direct {route} route "
            f"applies ({[c.__name__ for c in declared]}): apply it "
            f"in {applied_in} and declare it in DIRECT_ROUTE_MIDDLEWARE",
            code="direct_route_middleware_mismatch")

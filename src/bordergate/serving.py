"""How every bordergate party serves HTTP under uvicorn: the settings they share.

The gateway, the log operator's sequencer, the key service, a witness and the
log server each stop on SIGINT or SIGTERM.  A request still open then has
:data:`GRACEFUL_SHUTDOWN_S` to finish before uvicorn cancels it, so a slow or
stalled client cannot keep a party running after it was told to stop (the
demo stops every party on any signal).  This module must never choose an app,
a host or a port: the callers pass them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GRACEFUL_SHUTDOWN_S", "run_server", "server_config"]

#: Seconds an open request gets after a stop signal before it is cancelled.
GRACEFUL_SHUTDOWN_S = 5


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {"log_level": "warning",
                                "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S}
    settings.update(options)
    return settings


def server_config(app: Any, *, host: str, port: int, **options: Any) -> Any:
    """A ``uvicorn.Config`` for ``app`` with the shared settings (warnings only,
    bounded grace period); ``options`` adds to or overrides uvicorn's own."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, **_settings(options))


def run_server(app: Any, *, host: str, port: int, **options: Any) -> None:
    """Serve ``app`` until a stop signal, as ``uvicorn.run`` does (exit status 3 when
    it cannot start), with :func:`server_config`'s settings."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, **_settings(options))

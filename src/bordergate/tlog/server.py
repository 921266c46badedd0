"""Serve a log read-only over HTTP: the checkpoint, tiles, entry bundles.

Only ``/checkpoint``, ``/tile/...`` paths that parse as C2SP tile paths, and
content-addressed ``/bundles/sha256-<hex>.tar`` and ``/rosters/sha256-<hex>.json``
objects are answered; anything
else that may sit in the directory (the sequencer's lock, temp files) is
invisible: no listing, no traversal.  Full tiles, bundles and content-addressed
objects are immutable; partial tiles are long-cacheable; the checkpoint is
``no-cache``.

This module must never write to the log, nor read storage on the event loop.
"""

from __future__ import annotations

import asyncio
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bordergate.errors import Unavailable, VerificationError
from bordergate.tlog.storage import CHECKPOINT_PATH, LogStorage
from bordergate.tlog.tiles import parse_path

__all__ = ["log_routes", "make_log_app"]

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=86400"
_CONTENT = re.compile(r"sha256-[0-9a-f]{64}\.tar")
_ROSTER = re.compile(r"sha256-[0-9a-f]{64}\.json")


def _not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404,
                             headers={"Cache-Control": "no-store"})


def log_routes(storage: LogStorage, prefix: str = "") -> list[Route]:
    """Starlette routes serving ``storage`` under ``prefix`` (e.g. ``/v1/log``)."""

    async def read(path: str) -> bytes | None:
        # File or PostgreSQL reads: on a worker thread, never on the event loop.
        try:
            return await asyncio.to_thread(storage.read, path)
        except Unavailable:
            return None

    async def checkpoint(request: Request) -> Response:
        data = await read(CHECKPOINT_PATH)
        if data is None:
            return _not_found()
        return Response(data, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    async def tile(request: Request) -> Response:
        path = "tile/" + request.path_params["rest"]
        try:
            ref = parse_path(path)
        except VerificationError:
            return _not_found()
        data = await read(ref.path)
        if data is None:
            return _not_found()
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": IMMUTABLE if ref.is_full else PARTIAL})

    async def bundle_object(request: Request) -> Response:
        name = request.path_params["name"]
        reader = getattr(storage, "read_object", None)
        if not _CONTENT.fullmatch(name) or reader is None:
            return _not_found()
        data = await asyncio.to_thread(reader, f"bundles/{name}")
        if data is None:
            return _not_found()
        return Response(data, media_type="application/x-tar",
                        headers={"Cache-Control": IMMUTABLE})

    async def roster_object(request: Request) -> Response:
        name = request.path_params["name"]
        reader = getattr(storage, "read_object", None)
        if not _ROSTER.fullmatch(name) or reader is None:
            return _not_found()
        data = await asyncio.to_thread(reader, f"rosters/{name}")
        if data is None:
            return _not_found()
        return Response(data, media_type="application/json",
                        headers={"Cache-Control": IMMUTABLE})

    return [
        Route(f"{prefix}/checkpoint", checkpoint, methods=["GET", "HEAD"]),
        Route(f"{prefix}/rosters/{{name}}", roster_object, methods=["GET", "HEAD"]),
        Route(f"{prefix}/tile/{{rest:path}}", tile, methods=["GET", "HEAD"]),
        Route(f"{prefix}/bundles/{{name}}", bundle_object, methods=["GET", "HEAD"]),
    ]


def make_log_app(storage: LogStorage) -> Starlette:
    """A read-only app serving one log at the root (``bordergate log serve``)."""
    return Starlette(routes=log_routes(storage))

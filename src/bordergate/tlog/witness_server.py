"""The witness over HTTP: ``POST /add-checkpoint`` of C2SP tlog-witness, on Starlette.

This module only moves bytes between HTTP and :class:`~bordergate.tlog.witness.Witness`:
it caps the body before reading it all (413), maps the witness's errors to the
spec's status codes (400, 403, 404, 409 with a ``text/x.tlog.size`` body, 422),
and writes split-view evidence files.  It must never decide what to cosign.

Requests go through :class:`~bordergate.tlog.witness.GroupCommitWitness`:
checks run on the event loop thread one at a time against the latest accepted
state, concurrent requests share one durable commit, and each is answered only
after its state is durable (the SQLite compare-and-set also guards against
other processes writing the same file).

Crash tests wrap the witness's state store from the outside
(``tests/tlog/crashing_witness.py``); nothing here exists for tests only.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bordergate.durable import replace_file
from bordergate.errors import BordergateError, InvalidInput
from bordergate.tlog.witness import (
    MAX_REQUEST_SIZE,
    GroupCommitWitness,
    SizeMismatch,
    Witness,
    status_for,
)

__all__ = [
    "EvidenceDirectory",
    "create_app",
    "witness_routes",
]

async def _read_capped(request: Request, cap: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidInput("bad Content-Length", code="malformed_request")
        if int(length) > cap:
            raise InvalidInput(f"body larger than {cap} bytes", code="request_too_large")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise InvalidInput(f"body larger than {cap} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def witness_routes(witness: Witness, *, max_body: int = MAX_REQUEST_SIZE) -> list[Route]:
    """The witness's HTTP routes (``POST /add-checkpoint``), to mount in an app."""
    front = GroupCommitWitness(witness)

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _read_capped(request, max_body)
            lines = await front.add_checkpoint(body)
        except SizeMismatch as exc:
            return Response(f"{exc.size}\n", status_code=409, media_type="text/x.tlog.size")
        except BordergateError as exc:
            return PlainTextResponse(f"{exc.code}: {exc}\n", status_code=status_for(exc))
        return Response(lines, status_code=200, media_type="text/plain; charset=utf-8")

    return [Route("/add-checkpoint", add_checkpoint, methods=["POST"])]


def create_app(witness: Witness, *, max_body: int = MAX_REQUEST_SIZE) -> Starlette:
    """A Starlette app serving one witness."""
    return Starlette(routes=witness_routes(witness, max_body=max_body))


class EvidenceDirectory:
    """Writes split-view evidence files into a directory, durably."""

    def __init__(self, path: str | Path) -> None:
        """Use (and create) the directory ``path``."""
        self.path = Path(path)

    def __call__(self, origin: str, evidence: bytes) -> None:
        """Write one evidence file named after the origin and its digest."""
        self.path.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", origin)[:80]
        name = f"split-view-{safe}-{hashlib.sha256(evidence).hexdigest()[:16]}.json"
        target = self.path / name
        if target.exists():
            return
        replace_file(target, evidence)

"""The log side of C2SP tlog-witness: ask a witness to cosign a checkpoint.

The log's publisher sends each new signed checkpoint with a consistency proof
from the size the witness last cosigned; the witness answers with
cosignature/v1 lines, or with 409 and its size, after which the caller
re-sends with a proof from that size (promise 5: witnessed).

Network errors and 5xx answers are :class:`~bordergate.errors.Unavailable`;
the witness refusing the request is :class:`~bordergate.errors.InvalidInput`
(or ``NotFound``/``Conflict``) with a code naming why; a malformed answer is a
:class:`~bordergate.errors.VerificationError`.  This module must never decide
which checkpoint to publish; it only talks to one witness.

A witness is not trusted by the log either: an answer is read as a stream and
refused past :data:`MAX_RESPONSE` bytes (``witness_response_too_large``), and
with a ``deadline`` the whole answer must have arrived by it
(``witness_too_slow``), so that one witness streaming an endless or trickling
answer can neither exhaust the log's memory nor hold its thread.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import httpx
from httpx._client import UseClientDefault

from bordergate.errors import (
    BordergateError,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    VerificationError,
)
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.note import NoteSignature, note_signatures, parse_signature_lines
from bordergate.tlog.witness import format_add_checkpoint

__all__ = [
    "MAX_RESPONSE",
    "CosignResult",
    "Cosigned",
    "StaleSize",
    "add_checkpoint_url",
    "read_cosign_response",
    "request_cosignature",
    "request_cosignature_sync",
]

MAX_RESPONSE = 64 * 1024
"""The largest witness answer read, in bytes (a cosignature line is about 130)."""


@dataclass(frozen=True)
class Cosigned:
    """The witness cosigned: its signature lines (verified if a key was given)."""

    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class StaleSize:
    """The witness's size differs from the old size sent (409); re-send from ``size``."""

    size: int


CosignResult = Cosigned | StaleSize

_REFUSALS: dict[int, tuple[type[BordergateError], str]] = {
    400: (InvalidInput, "witness_bad_request"),
    403: (InvalidInput, "witness_bad_signature"),
    404: (NotFound, "witness_unknown_log"),
    413: (InvalidInput, "witness_request_too_large"),
    422: (InvalidInput, "witness_bad_proof"),
}


def add_checkpoint_url(prefix: str) -> str:
    """The add-checkpoint URL under a witness's submission prefix."""
    return prefix.rstrip("/") + "/add-checkpoint"


def read_cosign_response(
    status: int,
    content_type: str,
    body: bytes,
    signed_checkpoint: bytes,
    verifier: CosignatureVerifier | None = None,
) -> CosignResult:
    """Interpret a witness's answer (pure; shared by the async and sync clients).

    Args:
        status: the HTTP status.
        content_type: the response's Content-Type.
        body: the response body.
        signed_checkpoint: the checkpoint note that was sent.
        verifier: the witness's key; if given, only its valid cosignatures are
            returned and at least one is required.

    Returns:
        :class:`Cosigned` or :class:`StaleSize`.

    Raises:
        InvalidInput/NotFound: the witness refused the request (code says why).
        Conflict: ``witness_conflict``: the witness holds another root for this size.
        Unavailable: a 5xx or unexpected status.
        VerificationError: a malformed answer or no valid cosignature.
    """
    if status == 200:
        return Cosigned(_cosignatures(body, signed_checkpoint, verifier))
    reason = body[:200].decode("utf-8", "replace").strip()
    if status == 409:
        if content_type.split(";", maxsplit=1)[0].strip() == "text/x.tlog.size":
            return StaleSize(_parse_size(body))
        raise Conflict(f"witness conflict: {reason}", code="witness_conflict")
    if status in _REFUSALS:
        kind, code = _REFUSALS[status]
        raise kind(f"witness refused ({status}): {reason}", code=code)
    raise Unavailable(f"witness answered {status}: {reason}", code="witness_unavailable")


def _parse_size(body: bytes) -> int:
    text = body.decode("ascii", "replace")
    digits = text[:-1] if text.endswith("\n") else text
    if not digits.isdigit() or len(digits) > 19 or (digits != "0" and digits.startswith("0")):
        raise VerificationError("witness sent a malformed size", code="malformed_witness_response")
    return int(digits)


def _cosignatures(
    body: bytes, signed_checkpoint: bytes, verifier: CosignatureVerifier | None
) -> tuple[NoteSignature, ...]:
    try:
        signatures = parse_signature_lines(body)
    except VerificationError as exc:
        raise VerificationError(
            f"witness sent malformed signature lines: {exc}", code="malformed_witness_response"
        ) from exc
    if verifier is None:
        return tuple(signatures)
    text, _ = note_signatures(signed_checkpoint)
    message = text.encode("utf-8")
    mine = [s for s in signatures if (s.name, s.key_id) == (verifier.name, verifier.key_id)]
    # a line sent again verbatim is checked once (a witness's 100 copies, one check)
    if not mine or not all(verifier.verify(message, s.signature) for s in set(mine)):
        raise VerificationError(
            f"witness {verifier.name} sent no valid cosignature", code="invalid_cosignature"
        )
    return tuple(mine)


async def request_cosignature(
    client: httpx.AsyncClient,
    url: str,
    signed_checkpoint: bytes,
    old_size: int,
    proof: Sequence[bytes],
    *,
    verifier: CosignatureVerifier | None = None,
    deadline: float | None = None,
) -> CosignResult:
    """POST a checkpoint to a witness's add-checkpoint URL and read the answer.

    Args:
        client: the HTTP client (keep-alive recommended by the spec).
        url: the full add-checkpoint URL (see :func:`add_checkpoint_url`).
        signed_checkpoint: the log-signed checkpoint note.
        old_size: the size the witness last cosigned (0 if unknown).
        proof: the consistency proof from ``old_size`` to the checkpoint.
        verifier: the witness's key, to verify the cosignatures.
        deadline: a :func:`time.monotonic` time by which the answer must be read
            whole (None: only the client's own timeouts apply).

    Returns:
        :class:`Cosigned` or :class:`StaleSize` (re-send from that size).

    Raises:
        Unavailable: the witness cannot be reached or answered 5xx;
            ``witness_too_slow`` past ``deadline``.
        VerificationError: ``witness_response_too_large`` past :data:`MAX_RESPONSE`.
        InvalidInput/NotFound/Conflict/VerificationError: see
            :func:`read_cosign_response`.
    """
    body = format_add_checkpoint(old_size, proof, signed_checkpoint)
    try:
        async with client.stream("POST", url, content=body,
                                 timeout=_timeout(deadline)) as response:
            _check_length(response, url)
            data = await _read_async(response.aiter_bytes(), url, deadline)
    except httpx.HTTPError as exc:
        raise Unavailable(f"witness {url}: {exc}", code="witness_unavailable") from exc
    return read_cosign_response(
        response.status_code,
        response.headers.get("content-type", ""),
        data,
        signed_checkpoint,
        verifier,
    )


def request_cosignature_sync(
    client: httpx.Client,
    url: str,
    signed_checkpoint: bytes,
    old_size: int,
    proof: Sequence[bytes],
    *,
    verifier: CosignatureVerifier | None = None,
    deadline: float | None = None,
) -> CosignResult:
    """The blocking twin of :func:`request_cosignature` (same arguments and errors)."""
    body = format_add_checkpoint(old_size, proof, signed_checkpoint)
    try:
        with client.stream("POST", url, content=body, timeout=_timeout(deadline)) as response:
            _check_length(response, url)
            data = _read_sync(response.iter_bytes(), url, deadline)
    except httpx.HTTPError as exc:
        raise Unavailable(f"witness {url}: {exc}", code="witness_unavailable") from exc
    return read_cosign_response(
        response.status_code,
        response.headers.get("content-type", ""),
        data,
        signed_checkpoint,
        verifier,
    )


def _timeout(deadline: float | None) -> httpx.Timeout | UseClientDefault:
    """The request's timeout: each wait at most the time left before ``deadline``."""
    if deadline is None:
        return httpx.USE_CLIENT_DEFAULT
    return httpx.Timeout(max(0.001, deadline - time.monotonic()))


def _check_length(response: httpx.Response, url: str) -> None:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_RESPONSE:
        raise _too_large(url)


def _too_large(url: str) -> VerificationError:
    return VerificationError(f"witness {url} answered more than {MAX_RESPONSE} bytes",
                             code="witness_response_too_large")


class _Capped:
    """The chunks of one answer, refused past :data:`MAX_RESPONSE` or ``deadline``."""

    def __init__(self, url: str, deadline: float | None) -> None:
        self.url, self.deadline = url, deadline
        self.chunks: list[bytes] = []
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > MAX_RESPONSE:
            raise _too_large(self.url)
        self.chunks.append(chunk)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Unavailable(f"witness {self.url} did not finish its answer in time",
                              code="witness_too_slow")


def _read_sync(stream: Iterator[bytes], url: str, deadline: float | None) -> bytes:
    answer = _Capped(url, deadline)
    for chunk in stream:
        answer.add(chunk)
    return b"".join(answer.chunks)


async def _read_async(stream: AsyncIterator[bytes], url: str, deadline: float | None) -> bytes:
    answer = _Capped(url, deadline)
    async for chunk in stream:
        answer.add(chunk)
    return b"".join(answer.chunks)

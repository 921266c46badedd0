"""A client of a sequencer service that batches concurrent appends.

Gateway workers that share one log send their entries to the log's
sequencer process (see :mod:`bordergate.tlog.sequencer_service`).  Within one
worker, appends that arrive while requests are in flight are coalesced into
the next request (client-side group commit, at most three requests in flight,
each batch given contiguous indexes), so the HTTP cost is paid per batch, not
per entry.  Any failure (unreachable service, 5xx, timeout) fails
every append in the batch with :class:`~bordergate.errors.Unavailable`: the
caller must then release nothing (an entry may or may not have been
sequenced; a logged decision whose data was never sent is harmless, the
reverse never happens).

A guarded submission (:meth:`RemoteSequencer.append_guarded`, or
:meth:`RemoteSequencer.append_attested` with ``expect``) is batched the same
way with the appends pending beside it that pass the very same ``expect``
object (a gateway's decisions made under one roster and revocation state,
which change none of its keys): one ``POST /append`` with the
``Bordergate-Expect`` header, admitted or refused whole by the sequencer; a
refusal comes back as :class:`~bordergate.errors.StaleState` to each of its
callers.  Appends passing another object (equal or not) or none never share a
request, so an entry that changes an expected key (an approval's revocation,
passed with a mapping of its own) is never admitted together with the entries
decided under the state it changes.

The client authenticates with its append credential (``ID.SECRET``,
:mod:`bordergate.tlog.credentials`).  :meth:`RemoteSequencer.append_promised`
sends entries alone and returns the log operator's signed promise of
inclusion of each (:mod:`bordergate.tlog.promise`), checked against the log's
key and the entries sent.

This module must never interpret entries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from bordergate.errors import InvalidInput, PushBack, StaleState, Unavailable, VerificationError
from bordergate.keepalive import Answer, KeepAlivePool
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.note import Verifier
from bordergate.tlog.promise import InclusionPromise, open_promise
from bordergate.tlog.sequencer_service import EXPECT_HEADER, encode_entries, encode_expect
from bordergate.tlog.tiles import ENTRY_MAX

__all__ = ["RemoteSequencer"]

_MAX_REQUEST_ENTRIES = 8192
_MAX_IN_FLIGHT = 3


@dataclass(frozen=True, slots=True, eq=False)
class _Expected:
    """The batch key of one expectation object: its header value (encoded once);
    compared by identity."""

    header: str


Expect = _Expected | None
_MAX_SHARED = 64  # expectation objects remembered for batching (then forgotten)


_Item = TypeVar("_Item", bound=tuple[Any, ...])


def _take(queue: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """The next request's items: the longest run from the head with the very same
    batch key (item ``[2]``, None: unguarded), within the entry bound; and the rest."""
    expect = queue[0][2]
    take, count = 0, 0
    while take < len(queue) and queue[take][2] is expect and (
            take == 0 or count + len(queue[take][0]) <= _MAX_REQUEST_ENTRIES):
        count += len(queue[take][0])
        take += 1
    return queue[:take], queue[take:]


def _problem_code(r: Answer, default: str) -> str:
    try:
        code = json.loads(r.body)["code"]
    except (ValueError, KeyError, TypeError):
        return default
    return code if isinstance(code, str) and code.isidentifier() else default


def _answer(r: httpx.Response) -> Answer:
    """An httpx response as the keep-alive pool's answer (lower-case header names)."""
    return Answer(r.status_code, dict(r.headers.items()), r.content)


def _text(r: Answer) -> str:
    return r.body[:200].decode("utf-8", "replace")


class RemoteSequencer:
    """Append to a log through its sequencer service (a gateway ``LogAppender``)."""

    def __init__(self, url: str, credential: str, verifier: Verifier, *,
                 timeout: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        """Bind the service's ``url``, this appender's ``credential`` (``ID.SECRET``)
        and the log's ``verifier`` key (checkpoints and promises).  Batches go over
        plain keep-alive HTTP/1.1 connections (a fraction of httpx's cost per
        request) unless ``client`` is given or the URL is https."""
        self.url = url.rstrip("/")
        self.verifier = verifier
        self._headers = {"Authorization": f"Bearer {credential}"}
        parts = urlsplit(self.url)
        self._base = parts.path.rstrip("/")
        self._raw = KeepAlivePool(parts.hostname or "", parts.port or 80,
                                  headers=self._headers, timeout=timeout,
                                  code="log_unavailable") \
            if client is None and parts.scheme == "http" else None
        # plain http never uses TLS: no certificate store to load (~70 ms of CPU a client)
        self._client = client or httpx.AsyncClient(timeout=timeout,
                                                   verify=parts.scheme == "https")
        # (entries, waiter, expected versions or None), in the order appended
        self._pending: list[tuple[list[bytes], asyncio.Future[int], Expect]] = []
        self._senders: set[asyncio.Task[None]] = set()
        # promised appends (append_attested without a guard), batched the same way
        self._promised: list[tuple[list[bytes], asyncio.Future[tuple[int, list[bytes]]],
                                   Expect]] = []
        self._promise_senders: set[asyncio.Task[None]] = set()
        self._checkpoint: SignedCheckpoint | None = None
        self._acknowledged = 0  # one past the last index acknowledged to this appender
        # id(expectation mapping) -> (the mapping, kept alive; its batch key)
        self._shared: dict[int, tuple[Mapping[str, int], _Expected]] = {}

    @property
    def origin(self) -> str:
        return self.verifier.name

    async def append_many(self, entries: Sequence[bytes]) -> int:
        """Sequence entries durably through the service; the index of the first.

        Raises:
            InvalidInput: an entry is longer than 65535 bytes.
            PushBack: the service's queue is full.
            Unavailable: the service cannot be reached or cannot write.
        """
        return await self._queue(entries, None)

    async def _queue(self, entries: Sequence[bytes], expect: Expect) -> int:
        batch = list(entries)
        if any(len(e) > ENTRY_MAX for e in batch):
            raise InvalidInput("log entry exceeds 65535 bytes", code="entry_too_large")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future, expect))
        if len(self._senders) < _MAX_IN_FLIGHT:
            # up to _MAX_IN_FLIGHT batches in flight: an entry arriving while one is
            # on the wire need not wait a whole round trip before it is sent
            sender = asyncio.create_task(self._send_loop())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await future

    async def append(self, entry: bytes) -> int:
        """Sequence one entry; its index."""
        return await self.append_many([entry])

    async def append_guarded(self, entries: Sequence[bytes],
                             expect: Mapping[str, int]) -> int:
        """Sequence entries only if each state key still has the version expected.

        Concurrent appends passing the very same ``expect`` object may share one
        submission, admitted or refused whole: pass one object only for entries
        that change none of its keys (a gateway's decisions under one state); an
        append that changes an expected key (an approval's grant or revocation)
        passes a mapping of its own, and goes alone.

        Raises:
            StaleState: a version changed; nothing was sequenced.
            InvalidInput, PushBack, Unavailable: as :meth:`append_many`.
        """
        if not expect:
            raise ValueError("a guarded append expects at least one state version")
        return await self._queue(entries, self._expect(expect))

    async def append_promised(self, entries: Sequence[bytes]
                              ) -> tuple[int, list[InclusionPromise]]:
        """Sequence entries (alone in one request) and return the index of the
        first with the log operator's signed promise of inclusion of each.

        Raises:
            VerificationError: a promise is missing, badly signed, or not about
                the entry sent at its index (``promise_mismatch``).
            InvalidInput, PushBack, Unavailable: as :meth:`append_many`.
        """
        first, texts = await self.append_attested(entries)
        return first, [open_promise(t, self.verifier) for t in texts]

    async def append_attested(self, entries: Sequence[bytes],
                              expect: Mapping[str, int] | None = None
                              ) -> tuple[int, list[bytes]]:
        """As :meth:`append_promised` (guarded by ``expect`` as :meth:`append_guarded`
        when given), returning each promise's signed bytes, checked, to forward
        (a gateway sends them to the key service).

        Raises:
            StaleState: with ``expect``, a version changed; nothing was sequenced.
            VerificationError, InvalidInput, PushBack, Unavailable: as
                :meth:`append_promised`.
        """
        batch = list(entries)
        if not batch or any(len(e) > ENTRY_MAX for e in batch):
            raise InvalidInput("between 1 entry and entries of 65535 bytes",
                               code="entry_too_large")
        # concurrent callers expecting the same versions share one request
        future: asyncio.Future[tuple[int, list[bytes]]] = \
            asyncio.get_running_loop().create_future()
        self._promised.append((batch, future, self._expect(expect) if expect else None))
        if len(self._promise_senders) < _MAX_IN_FLIGHT:
            sender = asyncio.create_task(self._send_promised())
            self._promise_senders.add(sender)
            sender.add_done_callback(self._promise_senders.discard)
        return await future

    def _promised_answer(self, r: Answer, batch: list[bytes]
                         ) -> tuple[int, list[bytes]]:
        """The first index and each entry's checked promise from an ``?promise=1`` answer.

        Raises:
            VerificationError: ``promise_missing`` or ``promise_mismatch``.
            PushBack, Unavailable: as :meth:`_first_of`.
        """
        first = self._first_of(r)
        try:
            texts = [t.encode() for t in json.loads(r.body)["promises"]]
            promises = [open_promise(t, self.verifier) for t in texts]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise VerificationError("sequencer answered without promises",
                                    code="promise_missing") from e
        if len(promises) != len(batch) or any(
                p.index != first + i or not p.covers(e)
                for i, (p, e) in enumerate(zip(promises, batch, strict=True))):
            raise VerificationError("a promise is not about the entry sent at its index",
                                    code="promise_mismatch")
        return first, texts

    def _expect(self, expect: Mapping[str, int]) -> _Expected:
        """The batch key of ``expect``: one per mapping *object*, so that only appends
        passing the very same object share a request (see :meth:`append_guarded`)."""
        shared = self._shared.get(id(expect))
        if shared is not None and shared[0] is expect:
            return shared[1]
        if len(self._shared) >= _MAX_SHARED:
            self._shared.clear()
        key = _Expected(encode_expect(expect))
        self._shared[id(expect)] = (expect, key)
        return key

    async def _send_promised(self) -> None:
        while self._promised:
            group, self._promised = _take(self._promised)
            entries = [e for batch, _, _ in group for e in batch]
            try:
                r = await self._post("/append?promise=1", encode_entries(entries), group[0][2])
                first, texts = self._promised_answer(r, entries)
                self._acknowledged = max(self._acknowledged, first + len(entries))
            except Exception as e:  # every waiter of this request gets the same failure
                err = e if isinstance(e, Unavailable | InvalidInput | VerificationError
                                      | StaleState) \
                    else Unavailable(f"sequencer service failed: {e}", code="log_unavailable")
                for _, fut, _ in group:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            offset = 0
            for batch, fut, _ in group:
                if not fut.done():
                    fut.set_result((first + offset, texts[offset:offset + len(batch)]))
                offset += len(batch)

    async def _send_loop(self) -> None:
        while self._pending:
            group, self._pending = _take(self._pending)
            entries = [e for batch, _, _ in group for e in batch]
            try:
                first = self._first_of(await self._post("/append", encode_entries(entries),
                                                        group[0][2]))
                self._acknowledged = max(self._acknowledged, first + len(entries))
            except Exception as e:  # every waiter of this batch gets the same failure
                err = e if isinstance(e, Unavailable | InvalidInput | StaleState) else \
                    Unavailable(f"sequencer service failed: {e}", code="log_unavailable")
                for _, fut, _ in group:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for batch, fut, _ in group:
                if not fut.done():
                    fut.set_result(first)
                first += len(batch)

    async def _post(self, path: str, body: bytes, expect: Expect) -> Answer:
        """POST one batch (guarded by ``expect`` when not None); the answer.

        Raises:
            StaleState: the service refused the batch as stale (nothing sequenced).
            Unavailable: the service is unreachable or answered garbage.
        """
        header = "" if expect is None else f"{EXPECT_HEADER}: {expect.header}\r\n"
        try:
            if self._raw is not None:
                r = await self._raw_post(path, body, header)
            else:
                headers = self._headers if expect is None else \
                    {**self._headers, EXPECT_HEADER: expect.header}
                r = _answer(await self._client.post(f"{self.url}{path}", content=body,
                                                    headers=headers))
        except httpx.HTTPError as e:
            raise Unavailable(f"sequencer service unreachable: {e}",
                              code="log_unavailable") from e
        if r.status == 409 and expect is not None:
            try:
                current = {str(k): int(v) for k, v in json.loads(r.body)["current"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise Unavailable("sequencer service answered garbage",
                                  code="log_unavailable") from e
            raise StaleState("state changed since the decision", current=current)
        return r

    @staticmethod
    def _first_of(r: Answer) -> int:
        """The index of the first entry of an ``/append`` answer (read from the
        keep-alive pool's answer as it is: no httpx response per batch).

        Raises:
            PushBack: 503 with ``Retry-After``.
            Unavailable: a refusal, another status, or a garbled answer.
        """
        if r.status == 503 and "retry-after" in r.headers:
            raise PushBack("sequencer service pushes back",
                           retry_after=float(r.headers["retry-after"]))
        if r.status in (401, 403):  # this appender's credential or entries refused
            code = "sequencer_credential_refused" if r.status == 401 else \
                _problem_code(r, "appender_refused")
            raise Unavailable(f"the log's sequencer refused the append: {_text(r)}",
                              code=code)
        if r.status != 200:
            raise Unavailable(f"sequencer service answered {r.status}: {_text(r)}",
                              code="log_unwritable")
        try:
            return int(json.loads(r.body)["first"])
        except (ValueError, KeyError, TypeError) as e:
            raise Unavailable("sequencer service answered garbage", code="log_unavailable") \
                from e

    def checkpoint(self) -> SignedCheckpoint | None:
        """The latest checkpoint this client saw (see :meth:`publish`)."""
        return self._checkpoint

    async def publish(self, timeout: float = 30.0) -> SignedCheckpoint:
        """Ask the service for a checkpoint covering everything sequenced so far,
        checked to cover every entry it acknowledged to this appender.

        Raises:
            Unavailable: not published in time, or the service failed;
                ``checkpoint_not_published``: the checkpoint stops short of an entry
                the service acknowledged (readers of published checkpoints would not
                see it).
            VerificationError: the service returned a badly signed checkpoint.
        """
        try:
            r = await self._client.post(f"{self.url}/publish", headers=self._headers,
                                        timeout=timeout + 5)
        except httpx.HTTPError as e:
            raise Unavailable(f"sequencer service unreachable: {e}",
                              code="log_unavailable") from e
        if r.status_code == 401:
            raise Unavailable("the log's sequencer refused this append credential",
                              code="sequencer_credential_refused")
        if r.status_code != 200:
            raise Unavailable(f"sequencer service answered {r.status_code}",
                              code="checkpoint_timeout")
        signed = open_checkpoint(r.content, self.verifier)
        self._checkpoint = signed
        if signed.checkpoint.size < self._acknowledged:
            raise Unavailable(f"the sequencer service published size {signed.checkpoint.size}, "
                              f"short of entry {self._acknowledged - 1} it acknowledged",
                              code="checkpoint_not_published")
        return signed

    def close(self) -> None:
        """Forget pending work (the service keeps what it acknowledged)."""
        for _, fut, _ in self._pending:
            if not fut.done():
                fut.set_exception(Unavailable("log client closed", code="log_unavailable"))
        self._pending.clear()
        for _, waiter, _ in self._promised:
            if not waiter.done():
                waiter.set_exception(Unavailable("log client closed", code="log_unavailable"))
        self._promised.clear()

    async def _raw_post(self, path: str, body: bytes, extra: str = "") -> Answer:
        """``POST`` a batch over the keep-alive pool (a fraction of httpx's cost per
        request); any failure is :class:`Unavailable`, never retried (the batch may
        have been sequenced)."""
        assert self._raw is not None
        return await self._raw.request("POST", self._base + path, body,
                                       "application/octet-stream", extra)

    async def aclose(self) -> None:
        self.close()
        if self._raw is not None:
            self._raw.close()
        await self._client.aclose()

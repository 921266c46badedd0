"""A gateway's client of its jurisdiction's key service (:mod:`bordergate.keys.service`).

A gateway configured with a key service holds no KEK: for each subject whose
sealed values it must open or seal it sends the justifying log entry and the log
operator's promise of inclusion, and gets back that one subject's data key as a
:class:`~bordergate.keys.keyring.SubjectCipher`.  Released keys are cached here
for at most ``cache_seconds`` (0: never), bounded to ``max_entries`` subjects, in
memory only: within that lifetime a read of the same subject needs no new
release (its own entry is still logged first; the cache bounds what a gateway
that stops logging can still open).

Renewal ahead of expiry: a read of a subject whose cached key has less than a
quarter of its lifetime left (:data:`RENEW_WITHIN`) is logged with the log's
promise like a miss, served from the cached key, and its entry justifies a new
release in the background (:meth:`KeyServiceClient.renewal_due`,
:meth:`KeyServiceClient.start_renewal`), so a subject read at least once per
quarter-lifetime never waits for the key service (renewing later would release
fewer keys but let more of them expire unrenewed; earlier, the reverse).  The
bound is unchanged: every cached key was released for a logged, fresh decision
at most ``cache_seconds`` ago.

A key past its lifetime is also dropped from memory when it expires (a timer on
the event loop, the oldest first), not only when the subject is next read: the
lifetime is the bound on what a memory dump of the gateway (a custodian who
stops it logging, then reads its memory) can open, so keys of subjects not read
again must not stay for hours in the LRU (found by the keys review).  Closing
the client forgets every key.

The service's refusals become :class:`~bordergate.errors.Unavailable` with code
``key_release_refused`` and the service's code in the message (nothing is
released, 503), its faults ``key_service_unavailable``.  This module must never
log key bytes, nor keep a released key in memory past its lifetime.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from bordergate.errors import Unavailable
from bordergate.keepalive import KeepAlivePool
from bordergate.keys.keyring import SubjectCipher, WrappedDataKey
from bordergate.subjects import SubjectId

__all__ = ["RENEW_WITHIN", "KeksHeldElsewhere", "KeyServiceClient"]

#: A cached key is renewed by a read once less than this share of its lifetime is left.
RENEW_WITHIN = 0.25


class KeyServiceClient:
    """Asks one key service for data keys, with a short-lived per-subject cache."""

    def __init__(self, url: str, credential: str, *, cache_seconds: float = 10.0,
                 max_entries: int = 10_000, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 client: httpx.AsyncClient | None = None) -> None:
        """Bind the service's ``url`` and this gateway's ``credential`` to it.
        Requests go over plain keep-alive HTTP/1.1 connections
        (:mod:`bordergate.keepalive`, a fraction of httpx's cost per request) unless
        ``client`` is given or the URL is https."""
        self.url = url.rstrip("/")
        self.cache_seconds = cache_seconds
        self._headers = {"Authorization": f"Bearer {credential}"}
        parts = urlsplit(self.url)
        self._path = parts.path
        self._raw = KeepAlivePool(parts.hostname or "", parts.port or 80,
                                  headers=self._headers, timeout=timeout,
                                  code="key_service_unavailable") \
            if client is None and parts.scheme == "http" else None
        # plain http never uses TLS: no certificate store to load (~70 ms of CPU a client)
        self._client = client or httpx.AsyncClient(timeout=timeout,
                                                   verify=parts.scheme == "https")
        self._clock = clock
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, SubjectCipher]] = OrderedDict()
        self._renewing: dict[str, asyncio.Future[object]] = {}
        self._purge_at: asyncio.TimerHandle | None = None
        self._purge_loop: asyncio.AbstractEventLoop | None = None

    def cached(self, subject: SubjectId) -> SubjectCipher | None:
        """The subject's released key if it was released less than ``cache_seconds`` ago."""
        hit = self._cache.get(str(subject))
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._cache[str(subject)]
            return None
        return hit[1]

    def evict(self, subject: SubjectId) -> None:
        """Forget one subject's key (erased, or it did not open a value)."""
        self._cache.pop(str(subject), None)

    def renewal_due(self, subject: SubjectId) -> bool:
        """Whether the subject's cached key has less than :data:`RENEW_WITHIN` of its
        lifetime left and no renewal of it is under way (the read should then carry
        a promise and renew it)."""
        hit = self._cache.get(str(subject))
        return hit is not None and str(subject) not in self._renewing and \
            hit[0] - self._clock() <= self.cache_seconds * RENEW_WITHIN

    def start_renewal(self, subject: SubjectId, release: Awaitable[object]) -> None:
        """Run ``release`` (a :meth:`release` of ``subject`` for a logged decision) in
        the background; the cached key stays in use until it answers.  A failed
        renewal is dropped: the cached key then expires on time and the next read
        asks again, waiting."""
        key = str(subject)
        task = asyncio.ensure_future(release)
        self._renewing[key] = task

        def done(finished: asyncio.Future[object]) -> None:
            self._renewing.pop(key, None)
            if not finished.cancelled():
                finished.exception()  # retrieved: a failed renewal is not an error
        task.add_done_callback(done)

    async def release(self, operation: str, subject: SubjectId, *, entry: bytes,
                      promise: bytes, wrapped: WrappedDataKey | None
                      ) -> tuple[SubjectCipher, WrappedDataKey | None]:
        """The subject's data key for ``operation`` (``read``/``write``) justified by
        ``entry`` (as the log holds it) and ``promise``; with ``wrapped`` None (a
        write of a subject without a key) a new key, returned wrapped too.

        Raises:
            Unavailable: ``key_release_refused`` (the service refused: its code is in
                the message) or ``key_service_unavailable``.
        """
        body: dict[str, Any] = {
            "operation": operation, "subject": str(subject),
            "entry": base64.b64encode(entry).decode("ascii"),
            "promise": promise.decode("utf-8"),
            "wrapped": None if wrapped is None else {
                "key_id": wrapped.key_id.hex(), "kek_version": wrapped.kek_version,
                "wrapped": base64.b64encode(wrapped.wrapped).decode("ascii")}}
        answer = await self._post(body)
        try:
            cipher = SubjectCipher(subject, bytes.fromhex(answer["key_id"]),
                                   int(answer["kek_version"]),
                                   base64.b64decode(answer["data_key"], validate=True))
            created = None if wrapped is not None else WrappedDataKey(
                subject, cipher.key_id, cipher.kek_version,
                base64.b64decode(answer["wrapped"], validate=True))
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable("the key service answered garbage",
                              code="key_service_unavailable") from exc
        if self.cache_seconds > 0:
            self._cache[str(subject)] = (self._clock() + self.cache_seconds, cipher)
            self._cache.move_to_end(str(subject))
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
            self._purge_later()
        return cipher, created

    def _purge(self) -> None:
        """Drop every cached key past its lifetime.  Keys enter at the end with the
        latest expiry, so the expired ones are at the front."""
        now = self._clock()
        while self._cache:
            subject, (expires, _) = next(iter(self._cache.items()))
            if expires > now:
                break
            del self._cache[subject]

    def _purge_later(self) -> None:
        """Have the running loop drop the oldest key when its lifetime ends (one
        timer at a time, re-armed for the next oldest)."""
        loop = asyncio.get_running_loop()
        if self._purge_at is not None and self._purge_loop is loop \
                and not self._purge_at.cancelled():
            return
        self._purge_loop = loop
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._cache:
            self._purge_at = None
            return
        expires = next(iter(self._cache.values()))[0]
        self._purge_at = loop.call_later(max(0.0, expires - self._clock()) + 0.01,
                                         self._purge_due)

    def _purge_due(self) -> None:
        self._purge()
        if self._purge_loop is not None and not self._purge_loop.is_closed():
            self._arm(self._purge_loop)

    async def release_export(self, *, entry: bytes, promise: bytes,
                             wrapped: list[WrappedDataKey]) -> dict[str, SubjectCipher]:
        """The data keys of an export's subjects (each listed once), released in one
        request for their logged ``export-intent`` ``entry`` (as the log holds it)
        and its ``promise`` (:mod:`bordergate.keys.bulk`); by subject id.  Not cached:
        an export's keys serve that export only.

        Raises:
            Unavailable: ``key_release_refused`` (the service refused: its code is in
                the message) or ``key_service_unavailable``.
        """
        body: dict[str, Any] = {
            "operation": "export", "entry": base64.b64encode(entry).decode("ascii"),
            "promise": promise.decode("utf-8"),
            "subjects": [{"subject": str(w.subject), "wrapped": {
                "key_id": w.key_id.hex(), "kek_version": w.kek_version,
                "wrapped": base64.b64encode(w.wrapped).decode("ascii")}} for w in wrapped]}
        answer = await self._post(body, "/v1/data-keys")
        by_id = {str(w.subject): w.subject for w in wrapped}
        try:
            keys = {item["subject"]: SubjectCipher(
                by_id[item["subject"]], bytes.fromhex(item["key_id"]),
                int(item["kek_version"]), base64.b64decode(item["data_key"], validate=True))
                for item in answer["keys"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable("the key service answered garbage",
                              code="key_service_unavailable") from exc
        if set(keys) != set(by_id):
            raise Unavailable("the key service answered other subjects' keys",
                              code="key_service_unavailable")
        return keys

    async def _post(self, body: dict[str, Any], route: str = "/v1/data-key"
                    ) -> dict[str, Any]:
        encoded = json.dumps(body, separators=(",", ":")).encode()
        if self._raw is not None:
            raw = await self._raw.request("POST", f"{self._path}{route}", encoded)
            status, content = raw.status, raw.body
        else:
            try:
                r = await self._client.post(f"{self.url}{route}", content=encoded,
                                            headers={**self._headers,
                                                     "Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                raise Unavailable(f"key service unreachable: {exc}",
                                  code="key_service_unavailable") from exc
            status, content = r.status_code, r.content
        if status != 200:
            try:
                code = str(json.loads(content).get("code"))[:64]
            except (ValueError, AttributeError):
                code = f"http_{status}"
            if status >= 500:
                raise Unavailable(f"the key service failed ({code})",
                                  code="key_service_unavailable")
            raise Unavailable(f"the key service refused the key ({code})",
                              code="key_release_refused")
        try:
            answer = json.loads(content)
        except ValueError as exc:
            raise Unavailable("the key service answered garbage",
                              code="key_service_unavailable") from exc
        if not isinstance(answer, dict):
            raise Unavailable("the key service answered garbage",
                              code="key_service_unavailable")
        return answer

    async def health(self) -> int | None:
        """The key service's current KEK version.

        Raises:
            Unavailable: ``key_service_unavailable``.
        """
        try:
            r = await self._client.get(f"{self.url}/healthz")
            version = r.json().get("kek_version") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise Unavailable(f"key service unreachable: {exc}",
                              code="key_service_unavailable") from exc
        if r.status_code != 200 or (version is not None and type(version) is not int):
            raise Unavailable(f"the key service answered {r.status_code}",
                              code="key_service_unavailable")
        return version

    async def aclose(self) -> None:
        """Stop renewals under way, forget every cached key and close the HTTP
        connections."""
        for task in list(self._renewing.values()):
            task.cancel()
        if self._purge_at is not None:
            self._purge_at.cancel()
            self._purge_at = None
        self._cache.clear()
        if self._raw is not None:
            self._raw.close()
        await self._client.aclose()


class KeksHeldElsewhere:
    """The :class:`~bordergate.keys.backend.KeyBackend` of a gateway whose KEKs its key
    service holds: every KEK operation fails closed (``kek_held_by_key_service``,
    503), so a code path that would unwrap locally (a data-key rotation) is refused
    instead of silently needing the KEK."""

    kind = "key-service"
    inline_unwraps = True  # it fails at once, without I/O

    def __init__(self, jurisdiction: str) -> None:
        self._jurisdiction = jurisdiction

    @property
    def jurisdiction(self) -> str:
        return self._jurisdiction

    def _refuse(self) -> Unavailable:
        return Unavailable(f"the KEKs of {self._jurisdiction} are held by its key service; "
                           "this operation is not served through it",
                           code="kek_held_by_key_service")

    def versions(self) -> tuple[int, ...]:
        raise self._refuse()

    def create_version(self) -> int:
        raise self._refuse()

    def wrap(self, data_key: bytes, aad: bytes, version: int) -> bytes:
        raise self._refuse()

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        raise self._refuse()

    def destroy_version(self, version: int) -> None:
        raise self._refuse()

    def close(self) -> None:
        """Nothing to release."""

"""The gateway's client of the key service (issue 13, item 3): a released data key is
cached for at most ``cache_seconds`` and never with ``cache_seconds = 0``; refusals
become 503s with stable codes.  The key service is httpx's in-memory transport twin
(``httpx.MockTransport``), answering as ``bordergate.keys.service`` does."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from bordergate.errors import Unavailable
from bordergate.keys.keyring import WrappedDataKey
from bordergate.keys.service_client import KeyServiceClient
from bordergate.subjects import SubjectId

SUBJECT = SubjectId.mint("us")
WRAPPED = WrappedDataKey(SUBJECT, b"\x01" * 16, 1, b"\x02" * 60)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _service(calls: list[dict[str, object]], status: int = 200) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if status != 200:
            return httpx.Response(status, json={"code": "key_justification_stale"})
        return httpx.Response(200, json={
            "data_key": base64.b64encode(b"\x03" * 32).decode(), "key_id": "01" * 16,
            "kek_version": 1, "key_access": 9, "lifetime": 10})
    return httpx.MockTransport(answer)


async def _release(client: KeyServiceClient) -> None:
    await client.release("read", SUBJECT, entry=b"{}", promise=b"p", wrapped=WRAPPED)


@pytest.mark.parametrize("seconds", [10.0, 0.0], ids=["cache-10s", "no-cache"])
def test_released_keys_are_cached_for_at_most_the_lifetime(seconds: float) -> None:
    """A key released at t is served from the cache until t + cache_seconds, not after;
    with cache_seconds 0 it is never cached."""
    calls: list[dict[str, object]] = []
    clock = Clock()

    async def run() -> None:
        client = KeyServiceClient("http://keys.test", "id.secret", cache_seconds=seconds,
                                  clock=clock,
                                  client=httpx.AsyncClient(transport=_service(calls)))
        await _release(client)
        assert (client.cached(SUBJECT) is not None) == (seconds > 0)
        clock.now += seconds
        assert client.cached(SUBJECT) is None
        await client.aclose()
    asyncio.run(run())
    assert len(calls) == 1 and calls[0]["operation"] == "read"


def test_a_refusal_is_a_503_naming_the_service_code() -> None:
    """The key service's 403 becomes Unavailable key_release_refused (the gateway
    answers 503, nothing released), its code in the message; nothing is cached."""
    calls: list[dict[str, object]] = []

    async def run() -> None:
        client = KeyServiceClient("http://keys.test", "id.secret",
                                  client=httpx.AsyncClient(transport=_service(calls, 403)))
        with pytest.raises(Unavailable) as refused:
            await _release(client)
        assert refused.value.code == "key_release_refused"
        assert "key_justification_stale" in str(refused.value)
        assert client.cached(SUBJECT) is None
        await client.aclose()
    asyncio.run(run())


def test_a_key_in_the_last_quarter_of_its_lifetime_is_renewed_once_in_the_background(
        ) -> None:
    """Renewal ahead of expiry: before the last quarter of the lifetime no renewal is
    due; in it one is, exactly once while it runs; the renewal is a new release (its own
    justification) and the renewed key is cached for a whole new lifetime from its
    answer."""
    calls: list[dict[str, object]] = []
    clock = Clock()

    async def run() -> None:
        client = KeyServiceClient("http://keys.test", "id.secret", cache_seconds=10.0,
                                  clock=clock,
                                  client=httpx.AsyncClient(transport=_service(calls)))
        await _release(client)
        clock.now += 7.4
        assert not client.renewal_due(SUBJECT)
        clock.now += 0.2
        assert client.renewal_due(SUBJECT)
        client.start_renewal(SUBJECT, _release(client))
        assert not client.renewal_due(SUBJECT)  # one renewal at a time
        await asyncio.sleep(0.05)
        assert len(calls) == 2 and not client.renewal_due(SUBJECT)
        clock.now += 9.9  # 17.5 s after the first release: the renewed key still serves
        assert client.cached(SUBJECT) is not None
        clock.now += 0.2
        assert client.cached(SUBJECT) is None
        await client.aclose()
    asyncio.run(run())


def test_a_failed_renewal_leaves_the_key_to_expire_on_time() -> None:
    """A renewal the service refuses is dropped (no error escapes); the cached key is
    not extended and expires at its release time plus the lifetime."""
    calls: list[dict[str, object]] = []
    clock = Clock()

    async def run() -> None:
        answers = [_service(calls), _service(calls, 403)]  # the service then refuses

        def switching(request: httpx.Request) -> httpx.Response:
            return answers[len(calls)].handle_request(request)
        ok = KeyServiceClient("http://keys.test", "id.secret", cache_seconds=10.0, clock=clock,
                              client=httpx.AsyncClient(transport=httpx.MockTransport(switching)))
        await _release(ok)
        clock.now += 8
        ok.start_renewal(SUBJECT, _release(ok))
        await asyncio.sleep(0.05)
        assert len(calls) == 2 and ok.renewal_due(SUBJECT)  # may be tried again
        clock.now += 2
        assert ok.cached(SUBJECT) is None
        await ok.aclose()
    asyncio.run(run())

"""Keys review: a data key released to a gateway is gone from its memory when its
lifetime ends.

The promise (threat model C4, docs/design.md "Trust model": with a key service a
gateway that stops logging can still open, "for up to ``cache_seconds``", only
subjects whose keys were released for honest entries).  The key-service client
checked a key's expiry only when the subject was read again: a key of a subject
not read again stayed in the process, usable, until 10,000 newer subjects pushed
it out, so a custodian who stopped the gateway logging and dumped its memory
(gcore, /proc/PID/mem: they run the host) got every data key released in the
process's lifetime, not those of the last ``cache_seconds``.  Here the dump is
the garbage collector's list of live objects, taken after the lifetime with the
event loop running and no read since.

The key service is httpx's in-memory transport twin; the data key is a TEST-ONLY
random value.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os

import httpx

from bordergate.keys.keyring import SubjectCipher, WrappedDataKey
from bordergate.keys.service_client import KeyServiceClient
from bordergate.subjects import SubjectId


def _service(data_key: bytes) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "data_key": base64.b64encode(data_key).decode(), "key_id": "01" * 16,
            "kek_version": 1, "key_access": 9, "lifetime": 0.2})
    return httpx.MockTransport(answer)


def _live_ciphers(subject: SubjectId) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if isinstance(o, SubjectCipher) and o.subject == subject)


def test_a_released_key_leaves_memory_when_its_lifetime_ends() -> None:
    """C4: with no read of the subject after its release, the gateway holds its data
    key no longer than ``cache_seconds``: a memory dump after the lifetime finds no
    live cipher of the subject (the event loop still running, the client open)."""
    subject = SubjectId.mint("us")
    wrapped = WrappedDataKey(subject, b"\x01" * 16, 1, b"\x02" * 60)
    found: dict[str, int] = {}

    async def run() -> None:
        client = KeyServiceClient("http://keys.test", "id.secret", cache_seconds=0.2,
                                  client=httpx.AsyncClient(
                                      transport=_service(os.urandom(32))))
        cipher, _ = await client.release("read", subject, entry=b"{}", promise=b"p",
                                         wrapped=wrapped)
        del cipher
        found["during"] = _live_ciphers(subject)
        await asyncio.sleep(0.6)  # the gateway serves other subjects meanwhile
        found["after"] = _live_ciphers(subject)
        await client.aclose()

    asyncio.run(run())
    assert found["during"] == 1  # cached within its lifetime, as designed
    assert found["after"] == 0, "the data key outlived cache_seconds in the gateway's memory"

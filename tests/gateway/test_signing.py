"""Receipt signatures on the gateway's signing thread (``bordergate.gateway.signing``)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from bordergate.errors import Unavailable
from bordergate.gateway.signing import SigningThread
from bordergate.tlog.note import Signer

SIGNER = Signer.from_seed("us.signing-TEST-ONLY",
                          hashlib.sha256(b"bordergate TEST-ONLY signing thread").digest())


def test_signatures_on_the_thread_are_the_keys_own() -> None:
    """Receipts (issue 12, item 5): each message handed to the signing thread, many in
    one turn of the loop and across turns and event loops, gets exactly the signature
    the gateway's key makes inline (Ed25519 is deterministic), and it verifies."""
    thread = SigningThread(SIGNER.sign)
    messages = [b"statement %d" % i for i in range(40)]

    async def sign_all() -> list[bytes]:
        first = await asyncio.gather(*(thread.sign(m) for m in messages[:32]))
        rest = [await thread.sign(m) for m in messages[32:]]
        return [*first, *rest]

    try:
        for _ in range(2):  # a second event loop, as a test client may run
            signatures = asyncio.run(sign_all())
            assert signatures == [SIGNER.sign(m) for m in messages]
            assert all(SIGNER.verifier().verify(m, s) for m, s in zip(messages, signatures,
                                                                       strict=True))
    finally:
        thread.close()


def test_a_closed_signing_thread_fails_closed() -> None:
    """Fault: once the gateway closed its signing thread, an answer asking for a
    receipt signature gets ``receipt_signing_failed`` (503: nothing released) instead
    of waiting forever or going out unsigned."""
    thread = SigningThread(SIGNER.sign)
    thread.close()
    with pytest.raises(Unavailable) as refused:
        asyncio.run(thread.sign(b"statement"))
    assert refused.value.code == "receipt_signing_failed"
    assert refused.value.http_status == 503

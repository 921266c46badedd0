"""The serving gateway's receipt signing helper (``gateway.signing``; issue 12, item 5).

A serving gateway has its reads' receipt signatures made by a child process, a
batch per turn of its event loop.  What must hold: every caller gets the
signature of its own message, exactly the one the receipt key makes
(Ed25519 is deterministic), whatever the batching; a helper that dies fails the
reads waiting on it closed (``receipt_signer_unavailable``: logged, nothing
released) and the next read starts a new one; a gateway process whose helper is
killed answers 503 with no value, then serves again with receipts that verify.

Keys are TEST-ONLY (fixed seeds).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from bordergate.config import load_config
from bordergate.errors import Unavailable
from bordergate.gateway.signing import SigningHelper
from bordergate.policy.entities import Principal
from bordergate.receipts import check_answer, parse_receipt, verify_receipt_signature
from bordergate.tlog.note import Signer
from tests.gateway.conftest import start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, receipt_signer, write_deployment

SIGNER = Signer.from_seed("helper.receipts-TEST-ONLY", bytes(range(32)))
LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
VALUES = {"handle": "helper", "email": "helper-secret@example.test",
          "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-HELPER-1"}


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


async def _signing_then_stopped(helper: SigningHelper) -> int:
    """Start ``helper`` with a first, right signature, then stop (SIGSTOP) its process;
    its pid."""
    assert await helper.sign(b"first") == SIGNER.sign(b"first")
    pid = helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


def test_every_caller_gets_the_keys_own_signature_of_its_message() -> None:
    """Batching keeps callers apart: 600 messages of random sizes (empty to 64 KiB),
    asked for by concurrent readers over many loop turns, each answered with the
    signature the key itself makes of that message."""
    rng = random.Random(12)
    messages = [rng.randbytes(rng.choice((0, 1, 63, 64, 400, 5000, 65536)))
                for _ in range(600)]

    async def main() -> list[bytes]:
        helper = SigningHelper(SIGNER)
        try:
            async def one(i: int) -> bytes:
                await asyncio.sleep(rng.random() / 200)  # spread over many loop turns
                return await helper.sign(messages[i])
            return list(await asyncio.gather(*(one(i) for i in range(len(messages)))))
        finally:
            helper.close()

    signatures = asyncio.run(main())
    assert signatures == [SIGNER.sign(m) for m in messages]
    for message, signature in zip(messages, signatures, strict=True):
        SIGNER.verifier().verify(message, signature)


def test_a_helper_killed_mid_batch_fails_its_readers_closed_and_the_next_starts_anew() -> None:
    """Fail closed: the reads waiting on a helper that dies get
    ``receipt_signer_unavailable`` (never a signature of something else); the next
    read starts a new helper, which signs correctly."""
    async def main() -> None:
        helper = SigningHelper(SIGNER)
        try:
            pid = await _signing_then_stopped(helper)  # the batch below stays in flight
            waiting = [asyncio.ensure_future(helper.sign(b"m%d" % i)) for i in range(5)]
            await asyncio.sleep(0.1)
            assert not any(w.done() for w in waiting)
            os.kill(pid, signal.SIGKILL)
            for w in waiting:
                with pytest.raises(Unavailable) as err:
                    await asyncio.wait_for(w, 10)
                assert err.value.code == "receipt_signer_unavailable"
            assert await helper.sign(b"after") == SIGNER.sign(b"after")
            assert helper.pid not in (None, pid)
        finally:
            helper.close()

    asyncio.run(main())


def test_a_closed_helper_signs_nothing_and_its_process_is_gone() -> None:
    """Closing stops the helper process; a signature asked for after is refused."""
    async def main() -> int:
        helper = SigningHelper(SIGNER)
        await helper.sign(b"x")
        pid = helper.pid
        assert pid is not None
        helper.close()
        with pytest.raises(Unavailable) as err:
            await helper.sign(b"y")
        assert err.value.code == "receipt_signer_unavailable"
        return pid

    pid = asyncio.run(main())
    _wait_dead(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_helper_serves_one_loop_after_another() -> None:
    """A gateway used under one event loop, then another (the first closed): the
    helper of the closed loop is replaced, and signatures stay right."""
    helper = SigningHelper(SIGNER)
    try:
        assert asyncio.run(helper.sign(b"one")) == SIGNER.sign(b"one")
        first = helper.pid
        assert asyncio.run(helper.sign(b"two")) == SIGNER.sign(b"two")
        assert helper.pid != first
    finally:
        helper.close()


def _check_receipt(body: dict[str, object]) -> None:
    """The answer's receipt: signed by the registered key, describing this body."""
    import base64
    receipt = parse_receipt(body["receipt"])  # type: ignore[arg-type]
    verify_receipt_signature(receipt, [receipt_signer("us").verifier().key_string])
    check_answer(receipt, base64.b64decode(str(body["receipt_salt"])), body)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_serving_gateway_whose_helper_is_killed_releases_nothing_then_serves_again(
        tmp_path: Path) -> None:
    """Real processes: ``bordergate gateway serve`` signs reads' receipts in its
    helper process; with the helper stopped then killed, the read waiting on it
    answers 503 ``receipt_signer_unavailable`` without a value, and the next read
    is served with a receipt that verifies against the registered key."""
    config = write_deployment(tmp_path / "d")
    url = load_config(config).jurisdiction("us").public_url
    process = start_process(config, "us")
    try:
        wait_healthy(url, process)
        with httpx.Client(base_url=url, headers=Tokens().header(LOCAL, "us"),
                          timeout=30) as http:
            subject = http.post("/v1/subjects").json()["subject"]
            assert http.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                            json={"subject": subject, "values": VALUES}).status_code == 200
            params = {"purpose": "operations", "fields": "handle,email"}
            first = http.get(f"/v1/users/{subject}", params=params)
            assert first.status_code == 200, first.text
            _check_receipt(first.json())
            helpers = _children(process.pid)
            assert len(helpers) == 1  # the helper, started with the gateway
            os.kill(helpers[0], signal.SIGSTOP)

            async def read_while_killed() -> httpx.Response:
                async with httpx.AsyncClient(base_url=url, timeout=30,
                                             headers=Tokens().header(LOCAL, "us")) as client:
                    pending = asyncio.ensure_future(
                        client.get(f"/v1/users/{subject}", params=params))
                    await asyncio.sleep(0.5)
                    assert not pending.done()  # waiting on the stopped helper
                    os.kill(helpers[0], signal.SIGKILL)
                    return await pending

            r = asyncio.run(read_while_killed())
            assert r.status_code == 503
            assert r.json()["code"] == "receipt_signer_unavailable"
            assert VALUES["email"] not in r.text and VALUES["handle"] not in r.text
            again = http.get(f"/v1/users/{subject}", params=params)
            assert again.status_code == 200, again.text
            assert again.json()["fields"]["email"] == VALUES["email"]
            _check_receipt(again.json())
            assert _children(process.pid) not in ([], helpers)
    finally:
        stop_process(process)


def test_a_hung_helper_is_replaced_and_its_readers_fail_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that stops answering (stopped, not dead: no EOF) does not hold reads
    forever: after ``ANSWER_TIMEOUT`` its readers fail ``receipt_signer_unavailable``,
    it is killed, and the next read starts a new helper."""
    from bordergate.gateway import signing

    async def main() -> None:
        helper = SigningHelper(SIGNER)
        try:
            # the helper's start is not what is timed (on a loaded host a Python
            # process can take longer than the shortened timeout to come up)
            pid = await _signing_then_stopped(helper)
            monkeypatch.setattr(signing, "ANSWER_TIMEOUT", 0.5)
            started = time.monotonic()
            with pytest.raises(Unavailable) as err:
                await asyncio.wait_for(helper.sign(b"held"), 10)
            assert err.value.code == "receipt_signer_unavailable"
            assert 0.4 < time.monotonic() - started < 5
            _wait_dead(pid)  # killed, though stopped
            # the new helper's start is not what is timed: on a loaded host starting
            # a Python process can take longer than the shortened answer timeout
            monkeypatch.setattr(signing, "ANSWER_TIMEOUT", 30.0)
            assert await helper.sign(b"after") == SIGNER.sign(b"after")
            assert helper.pid != pid
        finally:
            helper.close()

    asyncio.run(main())


def test_a_module_planted_on_the_path_is_never_imported_by_the_helper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promise 6 (the attack, as an operator with write access to the working
    directory or the environment would try it): a ``bordergate`` package planted in
    the gateway's working directory and on ``PYTHONPATH``, and a ``sitecustomize``
    beside it, would run in the process that holds the receipt key if the helper
    were an ordinary ``python -c``; it starts isolated (``-I -S``) on the gateway's
    own module path instead, so none of them runs and the signatures are right."""
    planted = tmp_path / "planted"
    (planted / "bordergate" / "gateway").mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    for module in ("bordergate/__init__.py", "bordergate/gateway/__init__.py",
                   "bordergate/gateway/signing.py", "sitecustomize.py"):
        (planted / module).write_text(code)
    monkeypatch.chdir(planted)
    monkeypatch.setenv("PYTHONPATH", str(planted))

    async def main() -> bytes:
        helper = SigningHelper(SIGNER)
        try:
            return await helper.sign(b"isolated")
        finally:
            helper.close()

    assert asyncio.run(main()) == SIGNER.sign(b"isolated")
    assert not marker.exists()


def test_the_helper_reads_requests_however_the_socket_splits_them() -> None:
    """The helper's side of the protocol: requests arriving in pieces of any size,
    several in one read or one over many, are each read whole and in order, and
    the stream ends at EOF."""
    import socket
    import struct
    import threading

    from bordergate.gateway.signing import _frames

    rng = random.Random(7)
    requests = [[rng.randbytes(rng.choice((0, 1, 5, 300, 70_000)))
                 for _ in range(rng.randint(1, 6))] for _ in range(40)]
    stream = b"".join(struct.pack(">I", len(r)) + b"".join(
        struct.pack(">I", len(m)) + m for m in r) for r in requests)
    ours, theirs = socket.socketpair()

    def write() -> None:
        at = 0
        while at < len(stream):
            step = rng.choice((1, 3, 7, 4096, 100_000))
            theirs.sendall(stream[at:at + step])
            at += step
        theirs.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert list(_frames(ours)) == requests
    finally:
        writer.join()
        ours.close()

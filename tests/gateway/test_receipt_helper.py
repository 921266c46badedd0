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
import atexit
import base64
import json
import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.config import load_config
from bordergate.errors import Unavailable, VerificationError
from bordergate.gateway.signing import SigningHelper, encode_answer
from bordergate.policy.entities import Principal
from bordergate.receipts import (
    ReceiptSigner,
    check_answer,
    parse_receipt,
    released_values,
    verify_receipt_signature,
)
from bordergate.tlog.note import Signer
from tests.gateway.conftest import start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, receipt_signer, write_deployment

SIGNER = Signer.from_seed("helper.receipts-TEST-ONLY", bytes(range(32)))
RECEIPTS = ReceiptSigner(SIGNER, "us")
ORIGIN = "helper.test/log-TEST-ONLY"
LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
VALUES = {"handle": "helper", "email": "helper-secret@example.test",
          "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-HELPER-1"}


def _helper() -> SigningHelper:
    return SigningHelper(RECEIPTS, ORIGIN)


# one event loop and helper for every example of the property test below
_RUNNER = asyncio.Runner()
_HELPER = _helper()
atexit.register(_RUNNER.close)
atexit.register(_HELPER.close)


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
        helper = _helper()
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
        helper = _helper()
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
        helper = _helper()
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
    helper = _helper()
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
    monkeypatch.setattr(signing, "ANSWER_TIMEOUT", 0.5)

    async def main() -> None:
        helper = _helper()
        try:
            pid = await _signing_then_stopped(helper)
            started = time.monotonic()
            with pytest.raises(Unavailable) as err:
                await asyncio.wait_for(helper.sign(b"held"), 10)
            assert err.value.code == "receipt_signer_unavailable"
            assert 0.4 < time.monotonic() - started < 5
            _wait_dead(pid)  # killed, though stopped
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
        helper = _helper()
        try:
            return await helper.sign(b"isolated")
        finally:
            helper.close()

    assert asyncio.run(main()) == SIGNER.sign(b"isolated")
    assert not marker.exists()


_JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(st.text(min_size=1, max_size=12), _JSON_VALUES, max_size=8),
       index=st.integers(min_value=0, max_value=2**53 - 1),  # receipts: I-JSON indexes
       entry=st.binary(max_size=600), collection=st.text(min_size=1, max_size=12))
def test_a_read_receipt_made_by_the_helper_is_the_one_the_gateway_makes_of_its_answer(
        fields: dict[str, object], index: int, entry: bytes, collection: str) -> None:
    """Issue 12 item 5, the helper's half: from the answer's JSON as sent, the helper
    makes exactly the receipt the gateway's own key makes of that answer (same salt:
    same statement and signature, Ed25519 is deterministic), spliced in as the
    answer's last members; the client's checks (signature, digest of the values it
    received) pass.  Property over JSON values: big integers, floats, non-ASCII
    names and strings, nulls (withheld by having no value)."""
    body = {"collection": collection, "record": "r1", "purpose": "operations",
            "fields": fields, "withheld": [], "outcome": "allow",
            "log": {"origin": ORIGIN, "index": index}}
    encoded = encode_answer(body)
    members = _RUNNER.run(_HELPER.read_receipt(index, entry, encoded))
    sent = b"".join((encoded[:-1], b",", members, b"}"))
    answer = json.loads(sent)
    assert {k: answer[k] for k in body} == body
    salt = base64.b64decode(answer["receipt_salt"])
    receipt = parse_receipt(answer["receipt"])
    verify_receipt_signature(receipt, [SIGNER.verifier().key_string])
    check_answer(receipt, salt, answer, origin=ORIGIN, index=index)
    expected = RECEIPTS.prepare(
        origin=ORIGIN, index=index, entry=entry, action="read", collection=collection,
        fields=[n for n, v in fields.items() if v is not None],
        values=released_values("read", body), salt=salt)
    assert answer["receipt"] == expected.signed(SIGNER.sign(expected.message))
    assert sent == encode_answer({**body, "receipt": answer["receipt"],
                                  "receipt_salt": answer["receipt_salt"]})


def test_an_answer_the_helper_cannot_canonicalize_fails_alone() -> None:
    """Fail closed, for one read only: an answer whose values JCS refuses (a lone
    surrogate, which JSON can write as an escape) is refused
    ``receipt_values_not_json``; the read beside it in the same batch gets its
    receipt, and the helper serves on (same process)."""
    bad = b'{"collection":"users","fields":{"handle":"\\ud800"},"withheld":[]}'
    good = encode_answer({"collection": "users", "fields": {"handle": "ok"}, "withheld": []})

    async def main() -> None:
        helper = _helper()
        try:
            helper.start()
            pid = helper.pid
            results = await asyncio.gather(helper.read_receipt(1, b"e1", bad),
                                           helper.read_receipt(2, b"e2", good),
                                           return_exceptions=True)
            refused, members = results
            assert isinstance(refused, VerificationError)
            assert refused.code == "receipt_values_not_json"
            assert isinstance(members, bytes) and members.startswith(b'"receipt":')
            assert helper.pid == pid
            assert await helper.sign(b"after") == SIGNER.sign(b"after")
        finally:
            helper.close()

    asyncio.run(main())

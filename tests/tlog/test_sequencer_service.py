"""The sequencer as its own process, shared by several gateway workers.

Promise 3 (log before release) in the scale-out shape: workers get an index
only for durable entries, every worker's entries land exactly once, and a
dead sequencer makes appends fail (so nothing is released) instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.errors import Unavailable
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.credentials import AppendCredential, CredentialList, require_appender
from bordergate.tlog.logdir import write_key
from bordergate.tlog.remote import RemoteSequencer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.sequencer_service import encode_entries, make_sequencer_app
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.storage.memory import MemoryStorage
from tests.tlog.logkeys import log_signer

BIN = Path(sys.executable).parent / "bordergate"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, tmp: Path, *, any_entries: bool = True) -> None:
        self.dir = tmp / "log"
        self.key = tmp / "log.key"
        self.credentials = {name: AppendCredential.issue(name) for name in ("worker-a", "worker-b")}
        self.list_file = tmp / "appenders.txt"
        self.list_file.write_text(CredentialList.of(self.credentials.values()).to_text())
        self.any_entries = any_entries
        create_log(FileStorage(self.dir), log_signer())
        write_key(self.key, log_signer().key_string)
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN), "log", "sequencer", str(self.dir), "--credentials", str(self.list_file),
             "--key-file", str(self.key), "--port", str(self.port), "--interval", "0.05",
             "--unwitnessed", *(["--any-entries"] if self.any_entries else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                httpx.get(self.url + "/checkpoint", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("sequencer service did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def token(self) -> str:
        return self.credentials["worker-a"].token


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_workers_share_one_log(service: Service) -> None:
    """Promise 3: two workers' concurrent appends each get durable, distinct indexes."""
    async def worker(name: str) -> dict[int, bytes]:
        remote = RemoteSequencer(service.url, service.token, log_signer().verifier())
        entries = [f"{name}-{i}".encode() for i in range(300)]
        indexes = await asyncio.gather(*(remote.append(e) for e in entries))
        await remote.publish()
        await remote.aclose()
        return dict(zip(indexes, entries, strict=True))

    async def both() -> list[dict[int, bytes]]:
        return list(await asyncio.gather(worker("a"), worker("b")))
    a, b = asyncio.run(both())
    assert not set(a) & set(b)
    assert sorted(set(a) | set(b)) == list(range(600))
    client = LogClient(DirectorySource(service.dir), log_signer().verifier())
    signed = client.checkpoint()
    assert signed.checkpoint.size == 600
    for index, entry in {**a, **b}.items():
        assert client.entry(index, 600) == entry



def test_a_checkpoint_short_of_acknowledged_entries_is_refused(service: Service) -> None:
    """Promise 5 (published means seen): a log operator that answers ``/publish`` with
    an older, honestly signed checkpoint, one that stops short of entries it
    acknowledged, is refused by the appender (``checkpoint_not_published``), so a
    migration part or the demo's injected entry is never taken for published while
    readers of published checkpoints cannot see it.  The real service sequences;
    the stale answer is put on the wire between it and the appender."""
    stale = httpx.get(service.url + "/checkpoint").content  # size 0, before any append

    async def lying(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/publish":
            return httpx.Response(200, content=stale)
        async with httpx.AsyncClient() as real:
            answer = await real.request(request.method, service.url + request.url.raw_path.decode(),
                                        headers=request.headers, content=request.content)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    async def run() -> tuple[int, Unavailable]:
        client = httpx.AsyncClient(transport=httpx.MockTransport(lying))
        remote = RemoteSequencer(service.url, service.token, log_signer().verifier(),
                                 client=client)
        try:
            index = await remote.append(b"acknowledged entry")
            with pytest.raises(Unavailable) as info:
                await remote.publish()
            return index, info.value
        finally:
            await remote.aclose()
            await client.aclose()
    index, refused = asyncio.run(run())
    assert index == 0
    assert refused.code == "checkpoint_not_published"
    assert "short of entry 0" in str(refused)


def test_dead_sequencer_fails_appends(service: Service) -> None:
    """Promise 3: with the sequencer gone, appends fail (fail closed), then recover."""
    async def one(entry: bytes) -> int:
        remote = RemoteSequencer(service.url, service.token, log_signer().verifier(),
                                 timeout=2)
        try:
            return await remote.append(entry)
        finally:
            await remote.aclose()
    assert asyncio.run(one(b"first")) == 0
    service.stop()
    with pytest.raises(Unavailable):
        asyncio.run(one(b"lost"))
    service.start()
    assert asyncio.run(one(b"after restart")) == 1


def test_bad_token_and_oversize_are_refused(service: Service) -> None:
    """Bad input: a wrong token is 401, an oversize or truncated body 413/400; nothing logged."""
    body = encode_entries([b"x"])
    assert httpx.post(service.url + "/append", content=body,
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    auth = {"Authorization": f"Bearer {service.token}"}
    assert httpx.post(service.url + "/append", content=b"\x00\x05ab",
                      headers=auth).status_code == 400
    big = httpx.post(service.url + "/append", content=b"\x00" * (17 << 20), headers=auth)
    assert big.status_code == 413
    r = httpx.post(service.url + "/publish", headers=auth)
    assert r.status_code == 200 and b"\n0\n" in r.content


def _in_process_service(credential: AppendCredential) -> tuple[Sequencer, Any]:
    """A sequencer on a fresh in-memory log and its service app (1 KiB bodies)."""
    storage = MemoryStorage()
    create_log(storage, log_signer())
    seq = Sequencer(storage, log_signer())
    app = make_sequencer_app(seq, CredentialList.of([credential]),
                             check_entry=require_appender, max_body=1024)
    return seq, app


def test_direct_append_path_answers_as_the_starlette_route() -> None:
    """Promise 3 and the log operator's attribution (issue 12, item 2): the sequencer
    app's direct path for POST /append gives the same status, body and headers as the
    same Starlette route (on a log of its own in the same state) for accepted
    batches with and without promises, an unauthenticated or wrongly authenticated
    request, a truncated, empty or oversize body and an entry naming another
    appender; every promise it returns verifies and covers its entry; a method or
    path it does not take goes through Starlette as before."""
    from starlette.applications import Starlette

    from bordergate.tlog.promise import open_promise
    from bordergate.tlog.sequencer_service import SequencerApp

    def stamped(text: bytes) -> bytes:
        return b'{"appender":"worker-a","x":"' + text + b'"}'

    def cases(token: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
        auth = {"Authorization": f"Bearer {token}"}
        return [
            ("POST", "/append", encode_entries([stamped(b"1"), stamped(b"2")]), auth),
            ("POST", "/append?promise=1", encode_entries([stamped(b"3")]), auth),
            ("POST", "/append?promise=1&promise=0", encode_entries([stamped(b"4")]), auth),
            ("POST", "/append", encode_entries([stamped(b"5")]), {"Authorization": "Bearer x"}),
            ("POST", "/append", encode_entries([stamped(b"6")]), {}),
            ("POST", "/append", b"\x00\x05ab", auth),
            ("POST", "/append", b"", auth),
            ("POST", "/append", b"\x00" * 2048, auth),
            ("POST", "/append", encode_entries([b'{"appender":"worker-b","x":1}']), auth),
            ("POST", "/append", encode_entries([b'{"x":1}']), auth),
            ("GET", "/append", b"", auth),
        ]

    async def ask(app: Any, token: str) -> list[tuple[int, Any, dict[str, str]]]:
        out = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://seq") as client:
            for method, path, body, headers in cases(token):
                r = await client.request(method, path, content=body, headers=headers)
                answer: Any = r.json() if r.headers.get("content-type", "").endswith(
                    "json") else r.text
                if isinstance(answer, dict) and "promises" in answer:
                    for i, text in enumerate(answer["promises"]):
                        promise = open_promise(text.encode(), log_signer().verifier())
                        assert promise.index == answer["first"] + i
                    answer["promises"] = len(answer["promises"])
                out.append((r.status_code, answer, dict(r.headers)))
        return out

    credential = AppendCredential.issue("worker-a")
    direct_seq, direct_app = _in_process_service(credential)
    routed_seq, routed = _in_process_service(credential)
    assert isinstance(direct_app, SequencerApp)
    plain = Starlette(routes=routed.routes)
    with direct_seq, routed_seq:
        direct = asyncio.run(ask(direct_app, credential.token))
        by_route = asyncio.run(ask(plain, credential.token))
        assert direct_seq.size == routed_seq.size == 4
    assert [c[0] for c in direct] == [200, 200, 200, 401, 401, 400, 400, 413, 403, 403, 405]
    assert direct[0][1] == {"first": 0, "count": 2, "appender": "worker-a"}
    assert direct[1][1]["promises"] == 1 and "promises" not in direct[2][1]  # the last wins
    assert [c[1]["code"] for c in direct[3:10]] == [
        "unauthenticated", "unauthenticated", "malformed_entries", "no_entries",
        "body_too_large", "appender_mismatch", "appender_missing"]
    assert direct == by_route


def test_middleware_added_to_the_sequencer_app_must_be_applied_by_the_direct_route() -> None:
    """Promise 3: the direct append route bypasses Starlette's middleware stack, so a
    middleware added to the sequencer app without being declared by the direct route
    makes the app refuse to serve (``direct_route_middleware_mismatch``), on the
    direct route and every other; declaring it lets the app build."""
    from starlette.middleware.gzip import GZipMiddleware

    from bordergate.errors import ConfigError
    from bordergate.tlog.sequencer_service import SequencerApp

    assert SequencerApp.DIRECT_ROUTE_MIDDLEWARE == ()
    credential = AppendCredential.issue("worker-a")
    seq, app = _in_process_service(credential)
    with seq:
        for method, path in (("POST", "/append"), ("GET", "/checkpoint")):
            app = make_sequencer_app(seq, CredentialList.of([credential]))
            app.add_middleware(GZipMiddleware)

            async def main(app: Any = app, method: str = method, path: str = path) -> None:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                             base_url="http://seq") as client:
                    await client.request(method, path, content=encode_entries([b"{}"]),
                                         headers={"Authorization": f"Bearer {credential.token}"})

            with pytest.raises(ConfigError) as info:
                asyncio.run(main())
            assert info.value.code == "direct_route_middleware_mismatch"

    class Declared(SequencerApp):
        DIRECT_ROUTE_MIDDLEWARE = (GZipMiddleware,)

    declared = Declared(app._append, routes=app.routes)
    declared.add_middleware(GZipMiddleware)
    assert declared.build_middleware_stack() is not None


def test_refusals_reach_the_appender_with_their_codes(tmp_path: Path) -> None:
    """Fail closed (promise 3) and attribution (issue 12, item 2): over the keep-alive
    client, a credential the log operator does not list fails the append with
    ``sequencer_credential_refused``, an entry naming no appender or another one with
    the sequencer's own code (``appender_missing``, ``appender_mismatch``), a
    promised batch the same way; nothing of them is sequenced, and a stamped entry
    then gets index 0 and a promise that covers it."""
    service = Service(tmp_path, any_entries=False)
    service.start()
    good = RemoteSequencer(service.url, service.token, log_signer().verifier())
    stranger = RemoteSequencer(service.url, AppendCredential.issue("worker-a").token,
                               log_signer().verifier())

    async def codes() -> list[str]:
        found = []
        for remote, entry in ((stranger, b'{"appender":"worker-a","x":1}'),
                              (good, b'{"x":1}'), (good, b'{"appender":"worker-b","x":1}')):
            with pytest.raises(Unavailable) as refused:
                await remote.append(entry)
            found.append(refused.value.code)
            with pytest.raises(Unavailable) as refused:
                await remote.append_attested([entry])
            found.append(refused.value.code)
        stamped = b'{"appender":"worker-a","x":2}'
        first, promises = await good.append_promised([stamped])
        assert first == 0 and promises[0].covers(stamped)
        for remote in (good, stranger):
            await remote.aclose()
        return found

    try:
        assert asyncio.run(codes()) == [
            "sequencer_credential_refused", "sequencer_credential_refused",
            "appender_missing", "appender_missing", "appender_mismatch", "appender_mismatch"]
    finally:
        service.stop()


def test_an_escaped_second_appender_is_refused(tmp_path: Path) -> None:
    """Attribution (issue 12, item 2; found by a review): a worker's entry that names
    its own credential first and another one under an escaped key
    (``"\\u0061ppender"``, the same key to any JSON reader) is refused by the real
    service (``appender_malformed``) and nothing is sequenced; before, the check's
    fast path saw one ``"appender"`` and accepted it."""
    service = Service(tmp_path, any_entries=False)
    service.start()
    good = RemoteSequencer(service.url, service.token, log_signer().verifier())
    spoofed = b'{"appender":"worker-a","\\u0061ppender":"worker-b","x":1}'
    assert json.loads(spoofed)["appender"] == "worker-b"

    async def attempt() -> str:
        try:
            with pytest.raises(Unavailable) as refused:
                await good.append(spoofed)
            return refused.value.code
        finally:
            await good.aclose()

    try:
        assert asyncio.run(attempt()) == "appender_malformed"
        checkpoint = LogClient(DirectorySource(service.dir), log_signer().verifier())
        assert checkpoint.checkpoint().checkpoint.size == 0
    finally:
        service.stop()


def test_a_credential_appends_only_its_roles_entry_types(tmp_path: Path) -> None:
    """Attribution (issue 12, item 2; found by a review): a credential listed with a
    role appends only the entry types of that role.  The key service's credential
    sending a token revocation or a roster version (which every gateway worker
    would apply at once), and the release tool's sending bytes that name an approval
    type, are refused by the real service (``appender_role_refused``,
    ``appender_malformed``) and nothing is sequenced; its own ``key-access`` entry
    is taken."""
    from bordergate.entries import encode_entry
    service = Service(tmp_path, any_entries=False)
    keys, release = AppendCredential.issue("us-keys"), AppendCredential.issue("us-release")
    service.list_file.write_text(CredentialList.of(
        [*service.credentials.values(), keys, release],
        {"worker-a": "gateway", "us-keys": "key-service", "us-release": "release"}).to_text())
    service.start()

    def stamped(kind: str, body: dict[str, object], appender: str) -> bytes:
        entry = encode_entry(kind, 1_800_000_000.0, body)
        return b'{"appender":"' + appender.encode() + b'",' + entry[1:]

    revoke = stamped("token-revoke", {"jti": "victim-token-id", "by": {"id": "x"},
                                      "reason": "r"}, "us-keys")
    roster = stamped("roster", {"roster": "sha256:" + "0" * 64, "serial": 2, "key": "k",
                                "signature": "AA=="}, "us-keys")
    poison = b'{"appender":"us-release","type":"approval-grant"'
    access = stamped("key-access", {"jurisdiction": "us", "operation": "read",
                                    "subject": "s", "justified": 0, "by": "key-service",
                                    "leaf": "AA=="}, "us-keys")

    async def attempts() -> tuple[list[str], int]:
        codes = []
        for credential, entry in ((keys, revoke), (keys, roster), (release, poison)):
            remote = RemoteSequencer(service.url, credential.token, log_signer().verifier())
            try:
                with pytest.raises(Unavailable) as refused:
                    await remote.append(entry)
                codes.append(refused.value.code)
            finally:
                await remote.aclose()
        remote = RemoteSequencer(service.url, keys.token, log_signer().verifier())
        try:
            return codes, await remote.append(access)
        finally:
            await remote.aclose()

    try:
        codes, index = asyncio.run(attempts())
        assert codes == ["appender_role_refused", "appender_role_refused",
                         "appender_malformed"]
        assert index == 0  # nothing refused was sequenced before it
    finally:
        service.stop()

"""Guarded submissions: the sequencer's state versions (docs/log-durability.md, "State
versions"; issue 11 item 2).

Once an entry that changes a state key has an index, no guarded submission decided
under the key's older version is sequenced after it; the versions survive a restart
(rebuilt from the log); a sequencer that keeps none refuses guarded submissions; the
sequencer service answers a stale one with 409 ``stale_state``, which its client raises
as ``StaleState``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from bordergate.entry_state import approval_key, state_keys
from bordergate.errors import StaleState, Unavailable
from bordergate.tlog.credentials import AppendCredential, CredentialList
from bordergate.tlog.remote import RemoteSequencer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.sequencer_service import make_sequencer_app
from bordergate.tlog.storage.memory import MemoryStorage
from tests.audit.scenario import APPROVER1, PARENT, EntryFactory, approval_view
from tests.tlog.logkeys import log_signer


def keys_of(entry: bytes) -> Iterable[str]:
    """TEST-ONLY state keys: an entry ``set:K`` changes key K."""
    return (entry[4:].decode(),) if entry.startswith(b"set:") else ()


def _sequencer(storage: MemoryStorage | None = None) -> tuple[MemoryStorage, Sequencer]:
    if storage is None:
        storage = MemoryStorage()
        create_log(storage, log_signer())
    return storage, Sequencer(storage, log_signer(), state_keys=keys_of)


def _remote(seq: Sequencer, **client_options: Any
            ) -> tuple[RemoteSequencer, httpx.AsyncClient, AppendCredential]:
    """A sequencer service app over ``seq`` (one TEST credential), reached in process
    by an httpx client (``client_options``) and a RemoteSequencer over that client."""
    credential = AppendCredential.issue("worker")
    app = make_sequencer_app(seq, CredentialList.of([credential]))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://seq",
                               **client_options)
    remote = RemoteSequencer("http://seq", credential.token, log_signer().verifier(),
                             client=client)
    return remote, client, credential


def test_stale_guard_is_refused_and_nothing_sequenced() -> None:
    """Issue 11 item 2: a guarded entry is sequenced only under the key's current version
    (the index of its last change); after a change it is refused with StaleState naming
    the current version, and the log did not grow."""
    _, seq = _sequencer()
    with seq:
        assert seq.version("a") == -1
        assert seq.append_many([b"read under nothing"]) == 0
        assert seq.submit([b"set:a"]).result(10) == 1
        assert seq.submit([b"read", b"read 2"], expect={"a": 1}).result(10) == 2
        assert seq.submit([b"set:a"], expect={"a": 1}).result(10) == 4
        size = seq.size
        with pytest.raises(StaleState) as stale:
            seq.submit([b"read under the old state"], expect={"a": 1}).result(10)
        assert stale.value.code == "stale_state" and stale.value.current == {"a": 4}
        with pytest.raises(StaleState):
            seq.submit([b"read"], expect={"a": 4, "b": 0}).result(10)
        assert seq.size == size
        assert seq.submit([b"read"], expect={"a": 4, "b": -1}).result(10) == size
        refused = seq.submit([b"late"], expect={"a": 1})
        assert seq.publish(10).checkpoint.size == size + 1  # a refusal does not stop it
        assert isinstance(refused.exception(10), StaleState)


def test_one_batch_checks_guards_in_sequence_order() -> None:
    """Issue 11 item 2: guards queued together are checked in the order indexes are
    assigned: a change admitted first makes every later guard on the old version stale."""
    _, seq = _sequencer()
    with seq:
        seq.submit([b"set:k"]).result(10)
        futures = [seq.submit([b"read %d" % i], expect={"k": 0}) for i in range(50)]
        futures.insert(25, seq.submit([b"set:k"], expect={"k": 0}))
        futures += [seq.submit([b"read %d" % i], expect={"k": 0}) for i in range(50)]
        done = [f.exception(10) is None for f in futures]
        change = futures[25].result(10)
        admitted = [f.result(10) for f, ok in zip(futures, done, strict=True) if ok]
        assert all(i <= change for i in admitted)
        assert seq.version("k") == change


def test_versions_are_rebuilt_from_the_log_on_restart() -> None:
    """Issue 11 item 2 (fail closed across restarts): a restarted sequencer knows every
    key's version again, from full bundles and the partial one alike."""
    storage, seq = _sequencer()
    with seq:
        seq.append_many([b"filler %d" % i for i in range(300)])
        seq.append_many([b"set:early"])
        seq.append_many([b"filler"] * 10)
        seq.append_many([b"set:late"])
        versions = {k: seq.version(k) for k in ("early", "late")}
    _, again = _sequencer(storage)
    with again:
        assert {k: again.version(k) for k in ("early", "late")} == versions
        with pytest.raises(StaleState):
            again.submit([b"read"], expect={"late": versions["late"] - 1}).result(10)
        again.submit([b"read"], expect=versions).result(10)


def test_reopened_sequencer_keeps_its_state_versions() -> None:
    """Issue 11 item 2 after a recovery (found by issue 12's review): the sequencer
    that :meth:`Sequencer.reopen` returns still tracks state versions, so a guarded
    read is checked (stale refused, current accepted) instead of refused as untracked."""
    _, seq = _sequencer()
    seq.start()
    seq.submit([b"set:a"]).result(10)
    fresh = seq.reopen()  # started
    try:
        assert fresh.version("a") == 0
        with pytest.raises(StaleState):
            fresh.submit([b"read"], expect={"a": -1}).result(10)
        assert fresh.submit([b"read"], expect={"a": 0}).result(10) == 1
    finally:
        fresh.close()


def test_sequencer_without_state_keys_refuses_guards() -> None:
    """Fail closed: a sequencer that keeps no state versions cannot check a guard, so it
    refuses it (state_untracked) instead of sequencing it unchecked."""
    storage = MemoryStorage()
    create_log(storage, log_signer())
    with Sequencer(storage, log_signer()) as seq:
        with pytest.raises(Unavailable) as refused:
            seq.submit([b"read"], expect={"a": -1})
        assert refused.value.code == "state_untracked" and seq.size == 0


def test_service_answers_stale_state_and_the_client_raises_it() -> None:
    """Issue 11 item 2 across workers: POST /append-guarded sequences a current guard,
    answers 409 stale_state for a stale one, and RemoteSequencer raises StaleState."""
    _, seq = _sequencer()
    with seq:

        async def go() -> None:
            remote, client, credential = _remote(seq)
            try:
                changed = await remote.append_guarded([b"set:x"], {"x": -1})
                assert await remote.append_guarded([b"read"], {"x": changed}) == changed + 1
                await remote.append_many([b"set:x"])
                with pytest.raises(StaleState) as stale:
                    await remote.append_guarded([b"read"], {"x": changed})
                assert stale.value.current == {"x": changed + 2}
                r = await client.post("/append-guarded", content=b'{"entries": []}',
                                      headers={"Authorization": f"Bearer {credential.token}"})
                assert (r.status_code, r.json()["code"]) == (400, "malformed_entries")
            finally:
                await remote.aclose()

        asyncio.run(go())


def test_gateway_state_keys_name_each_approval_change() -> None:
    """Issue 11 item 2: every approval-* entry changes its approval's key; an access
    entry presenting an approval changes nothing; junk changes nothing."""
    a = "apr-" + "a" * 26
    f = EntryFactory()
    changes = [f.approval_request(a, PARENT),
               *(f.approval_change(k, a, APPROVER1) for k in ("approval-grant",
                                                                "approval-deny",
                                                                "approval-revoke"))]
    assert [state_keys(e) for e in changes] == [(approval_key(a),)] * 4
    assert state_keys(f.access(PARENT, ["email"], approval=approval_view(a, PARENT))) == ()
    deep = b'{"type":"approval-grant",' + b"[" * 100_000
    assert state_keys(deep) == () and state_keys(b'"type":"approval-\xff') == ()


def test_guarded_appends_batch_by_expectation_and_are_refused_whole() -> None:
    """Docs/log-durability.md "State versions" over HTTP: concurrent guarded appends
    expecting the same versions share one ``POST /append`` (``Bordergate-Expect``), are
    admitted or refused whole; appends expecting other versions (or none) never share
    their request, so one stale batch refuses none of the others."""
    _, seq = _sequencer()
    with seq:
        requests: list[str | None] = []

        async def count(request: httpx.Request) -> None:
            requests.append(request.headers.get("bordergate-expect"))

        async def go() -> None:
            remote, _, _ = _remote(seq, event_hooks={"request": [count]})
            try:
                changed = await remote.append_many([b"set:x"])
                requests.clear()
                current, stale = {"x": changed}, {"x": changed - 1}
                outcomes = await asyncio.gather(
                    *(remote.append_guarded([b"under current %d" % i], current)
                      for i in range(20)),
                    *(remote.append_guarded([b"under stale %d" % i], stale)
                      for i in range(20)),
                    *(remote.append_many([b"unguarded %d" % i]) for i in range(20)),
                    return_exceptions=True)
                admitted = outcomes[:20] + outcomes[40:]
                assert all(isinstance(i, int) for i in admitted)
                assert all(isinstance(e, StaleState) and e.current == {"x": changed}
                           for e in outcomes[20:40])
                assert sorted(admitted) == list(range(changed + 1, changed + 41))  # type: ignore[type-var]
                # fewer requests than appends, and never two expectations in one
                assert len(requests) < 60
                assert {r for r in requests} <= {None, '{"x":0}', '{"x":-1}'}
            finally:
                await remote.aclose()

        asyncio.run(go())


def test_malformed_expect_header_is_refused_and_nothing_sequenced() -> None:
    """Bad input, clear error: a ``Bordergate-Expect`` header that is not a JSON object of
    integers is 400 ``malformed_expect``, and nothing of the request is sequenced."""
    _, seq = _sequencer()
    with seq:

        async def go() -> None:
            _, client, credential = _remote(seq)
            async with client:
                for bad in ("[1]", "{}", '{"x": "1"}', '{"x": true}', "not json", "{" * 5000):
                    r = await client.post("/append", content=b"\x00\x04read", headers={
                        "Authorization": f"Bearer {credential.token}",
                        "Bordergate-Expect": bad})
                    assert (r.status_code, r.json()["code"]) == (400, "malformed_expect"), bad

        asyncio.run(go())
        assert seq.size == 0


def test_gateway_state_keys_name_roster_and_revocation_changes() -> None:
    """Docs/log-durability.md "State versions": every ``roster`` entry changes the
    ``roster`` key and every ``token-revoke`` entry (a repeated one too) the
    ``token-revocations`` key; decision entries and look-alikes change nothing."""
    from bordergate.entries import canonical_json
    from bordergate.entry_state import REVOCATIONS_KEY, ROSTER_KEY
    from bordergate.gateway.revocations import token_revoke_entry

    def entry(kind: str, **members: object) -> bytes:
        return canonical_json({"v": 2, "type": kind, "time": "2026-01-01T00:00:00Z",
                               **members})

    roster = entry("roster", roster="sha256:" + "0" * 64, serial=2)
    revoke = token_revoke_entry("a" * 16, 1.0)
    assert state_keys(roster) == (ROSTER_KEY,) and state_keys(revoke) == (REVOCATIONS_KEY,)
    assert state_keys(entry("rosterx")) == ()
    assert state_keys(entry("access", note='"type":"roster"')) == ()
    assert state_keys(entry("access", inner={"type": "roster"})) == ()
    f = EntryFactory()
    assert state_keys(f.access(PARENT, ["email"])) == ()


@pytest.mark.parametrize("over", ["service", "in-process"])
def test_a_change_never_shares_a_submission_with_reads_expecting_its_old_state(
        over: str) -> None:
    """Regression (found running tests/gateway/test_revocation_race.py on the first cut
    of batched guards): an approval's revocation expects the same *values* as the reads
    decided under the approval; batched with them, the sequencer would admit the reads
    queued after the revocation in the same submission.  Appends share a submission only
    when they pass the very same expectation object, so every read queued after the
    change is refused as stale, over HTTP and in process alike."""
    from bordergate.gateway.service import SequencerLog

    _, seq = _sequencer()
    with seq:

        async def go() -> None:
            remote, _, _ = _remote(seq)
            log: RemoteSequencer | SequencerLog = remote if over == "service" \
                else SequencerLog(seq)
            try:
                version = await log.append_many([b"set:x"])
                state = {"x": version}  # one object: the reads under this state
                outcomes = await asyncio.gather(
                    *(log.append_guarded([b"read %d" % i], state) for i in range(10)),
                    log.append_guarded([b"set:x"], dict(state)),  # equal, not the same
                    *(log.append_guarded([b"read %d" % i], state) for i in range(10, 20)),
                    return_exceptions=True)
                change = outcomes[10]
                assert isinstance(change, int)
                reads = outcomes[:10] + outcomes[11:]
                assert all(isinstance(r, StaleState) or (isinstance(r, int) and r < change)
                           for r in reads), outcomes
                assert all(isinstance(r, StaleState) for r in outcomes[11:])
            finally:
                await remote.aclose()

        asyncio.run(go())

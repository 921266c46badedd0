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
        credential = AppendCredential.issue("worker")
        app = make_sequencer_app(seq, CredentialList.of([credential]))

        async def go() -> None:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                       base_url="http://seq")
            remote = RemoteSequencer("http://seq", credential.token, log_signer().verifier(),
                                     client=client)
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

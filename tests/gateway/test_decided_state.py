"""The state a worker decides under (``gateway.decided_state``; docs/log-durability.md,
"State versions"): the versions its followers count agree with the sequencer's on
every entry they have both seen, a refused decision waits for its worker to catch up
(bounded, then 503 ``log_state_behind``), and a poked follower reads at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bordergate.entries import canonical_json
from bordergate.entry_state import REVOCATIONS_KEY, ROSTER_KEY, state_keys
from bordergate.errors import Unavailable
from bordergate.gateway import decided_state
from bordergate.gateway.decided_state import DecidedState
from bordergate.gateway.log_poller import LogPoller
from bordergate.gateway.revocations import TokenRevocations, token_revoke_entry


class _Version:
    def __init__(self, version: int) -> None:
        self.version = version


def test_revocation_version_counts_every_revoke_entry_as_the_sequencer_does() -> None:
    """A repeated revocation, and one whose other members are malformed, still moves the
    worker's version exactly as the sequencer's ``state_keys`` counts it (else every
    later decision would be refused as stale for ever); the ids are revoked."""
    revoked = TokenRevocations()
    odd = canonical_json({"v": 2, "type": "token-revoke", "time": "x", "jti": "b" * 16})
    entries = [b"filler", token_revoke_entry("a" * 16, 1.0), b"more",
               token_revoke_entry("a" * 16, 2.0), odd]
    revoked.apply(10, entries)
    counted = max(10 + i for i, e in enumerate(entries) if REVOCATIONS_KEY in state_keys(e))
    assert revoked.version == counted == 14
    assert "a" * 16 in revoked and "b" * 16 in revoked and revoked.revoked_at("a" * 16) == 11


def test_versions_are_one_object_per_state_and_name_the_roster_only_when_configured() -> None:
    """Decisions under one state share one versions object (they batch on their way to the
    log); a deployment without a roster expects no roster version."""
    revocations, roster = _Version(-1), _Version(7)
    state = DecidedState(revocations, roster)
    first = state.versions()
    assert first == {REVOCATIONS_KEY: -1, ROSTER_KEY: 7} and state.versions() is first
    revocations.version = 9
    assert state.versions() == {REVOCATIONS_KEY: 9, ROSTER_KEY: 7}
    assert DecidedState(revocations, None).versions() == {REVOCATIONS_KEY: 9}
    assert DecidedState.concerns({ROSTER_KEY: 8}) and not DecidedState.concerns({"approval/x": 1})
    # the reads under one approval version share one object too; another version does not
    under = state.versions()
    merged = state.with_approval(under, "approval/x", 4)
    assert merged == {**under, "approval/x": 4}
    assert state.with_approval(under, "approval/x", 4) is merged
    assert state.with_approval(under, "approval/x", 5) is not merged


def test_catch_up_waits_for_the_followers_and_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused decision waits until the worker has read the sequencer's versions (the
    followers poked); a worker that never catches up gets 503 log_state_behind after
    CATCH_UP_SECONDS, never an unbounded wait."""
    revocations, roster = _Version(3), _Version(5)
    state = DecidedState(revocations, roster)
    poked: list[str] = []

    class Follower:
        def poke(self) -> None:
            poked.append("poked")

    async def go() -> None:
        async def later() -> None:
            await asyncio.sleep(0.05)
            revocations.version = 4
        task = asyncio.create_task(later())
        await state.catch_up({REVOCATIONS_KEY: 4}, [Follower(), None])
        await task
        assert poked == ["poked"]
        monkeypatch.setattr(decided_state, "CATCH_UP_SECONDS", 0.1)
        started = time.monotonic()
        with pytest.raises(Unavailable) as behind:
            await state.catch_up({ROSTER_KEY: 6}, [Follower()])
        assert behind.value.code == "log_state_behind"
        assert time.monotonic() - started < 2

    asyncio.run(go())


def test_a_poked_poller_reads_at_once_and_survives_errors() -> None:
    """A follower polls on its interval, at once when poked, goes on after a failed poll
    (an OSError), and stops when closed."""
    polls: list[float] = []
    ready = threading.Event()

    class Poller(LogPoller):
        def poll(self) -> None:
            polls.append(time.monotonic())
            ready.set()
            if len(polls) == 1:
                raise OSError("log storage briefly unreadable")

    poller = Poller("test-poller", interval=60.0)
    poller.start()
    try:
        poller.poke()
        assert ready.wait(5)
        ready.clear()
        poller.poke()  # after a failed poll, still polling
        assert ready.wait(5) and len(polls) == 2
    finally:
        poller.close()
    assert not poller._thread.is_alive()

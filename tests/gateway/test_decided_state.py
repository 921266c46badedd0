"""The state a worker decides under (``gateway.decided_state``; docs/log-durability.md,
"State versions"): the versions its log follower counts agree with the sequencer's on
every entry both have seen, a refused decision waits for its worker to catch up
(bounded, then 503 ``log_state_behind``), and a poked follower reads at once, each
entry once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from types import SimpleNamespace

import pytest

from bordergate.entries import canonical_json
from bordergate.entry_state import REVOCATIONS_KEY, ROSTER_KEY, state_keys
from bordergate.errors import Unavailable
from bordergate.gateway import decided_state
from bordergate.gateway.decided_state import DecidedState
from bordergate.gateway.log_follower import LogFollower, follow
from bordergate.gateway.revocations import TokenRevocations, token_revoke_entry
from bordergate.tlog.tiles import TILE_WIDTH


class _Version:
    def __init__(self, version: int) -> None:
        self.version = version


def test_revocation_version_counts_every_revoke_entry_as_the_sequencer_does(
        caplog: pytest.LogCaptureFixture) -> None:
    """A repeated revocation, and one whose other members are malformed, still moves the
    worker's version exactly as the sequencer's ``state_keys`` counts it (else every
    later decision would be refused as stale for ever); the ids are revoked, and the
    worker's log says how many it applied (once, not again for entries read again)."""
    caplog.set_level(logging.INFO, logger="bordergate.gateway.revocations")
    revoked = TokenRevocations()
    odd = canonical_json({"v": 2, "type": "token-revoke", "time": "x", "jti": "b" * 16})
    entries = [b"filler", token_revoke_entry("a" * 16, 1.0), b"more",
               token_revoke_entry("a" * 16, 2.0), odd]
    revoked.apply(10, entries)
    counted = max(10 + i for i, e in enumerate(entries) if REVOCATIONS_KEY in state_keys(e))
    assert revoked.version == counted == 14
    assert "a" * 16 in revoked and "b" * 16 in revoked and revoked.revoked_at("a" * 16) == 11
    applied = [r.getMessage() for r in caplog.records
               if "revocations applied" in r.getMessage()]
    assert applied == ["token revocations applied: 2 (log entries up to 14 read)"]
    assert revoked.apply(10, entries) == []  # nothing new: nothing logged
    assert len([r for r in caplog.records if "revocations applied" in r.getMessage()]) == 1


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
        await state.catch_up({REVOCATIONS_KEY: 4}, Follower())
        await task
        assert poked == ["poked"]
        monkeypatch.setattr(decided_state, "CATCH_UP_SECONDS", 0.1)
        started = time.monotonic()
        with pytest.raises(Unavailable) as behind:
            await state.catch_up({ROSTER_KEY: 6}, Follower())
        assert behind.value.code == "log_state_behind"
        assert time.monotonic() - started < 2

    asyncio.run(go())


def _client(size: int, fail_first: int = 0, polls: list[float] | None = None) -> object:
    """A TEST log client: ``size`` entries ``b"e<i>"``; its first ``fail_first``
    checkpoint reads fail as a briefly unreadable storage does."""

    class Client:
        def checkpoint(self) -> SimpleNamespace:
            if polls is not None:
                polls.append(time.monotonic())
            if polls is not None and len(polls) <= fail_first:
                raise OSError("log storage briefly unreadable")
            return SimpleNamespace(checkpoint=SimpleNamespace(size=size))

        def bundle(self, index: int, width: int) -> list[bytes]:
            return [b"e%d" % (index * TILE_WIDTH + i) for i in range(width)]

    return Client()


class _Seen:
    def __init__(self, next_index: int) -> None:
        self.next_index = next_index
        self.seen: list[bytes] = []

    def apply(self, first_index: int, entries: Iterable[bytes]) -> None:
        batch = list(entries)
        assert first_index == self.next_index
        self.seen += batch
        self.next_index = first_index + len(batch)


def test_one_reading_hands_each_state_only_what_it_has_not_seen() -> None:
    """One reader of the log for every state a worker keeps from it: each bundle is read
    once, and each state gets exactly the entries from its own next index on, never one
    twice (a roster version applied twice would fail the worker closed)."""
    behind, ahead = _Seen(3), _Seen(TILE_WIDTH + 5)
    follow([behind, ahead], _client(TILE_WIDTH + 9))  # type: ignore[arg-type]
    assert behind.seen == [b"e%d" % i for i in range(3, TILE_WIDTH + 9)]
    assert ahead.seen == [b"e%d" % i for i in range(TILE_WIDTH + 5, TILE_WIDTH + 9)]
    follow([behind, ahead], _client(TILE_WIDTH + 9))  # type: ignore[arg-type]
    assert behind.next_index == ahead.next_index == TILE_WIDTH + 9
    assert len(behind.seen) == TILE_WIDTH + 6 and len(ahead.seen) == 4


def test_a_poked_follower_reads_at_once_and_survives_errors() -> None:
    """The follower polls on its interval, at once when poked, goes on after a failed
    poll (an OSError), and stops when closed."""
    polls: list[float] = []
    state = _Seen(0)
    follower = LogFollower([state], _client(2, fail_first=1, polls=polls),  # type: ignore[arg-type]
                           interval=60.0)
    follower.start()
    try:
        follower.poke()
        deadline = time.monotonic() + 5
        while len(polls) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        follower.poke()  # after a failed poll, still polling
        while state.next_index < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(polls) == 2 and state.seen == [b"e0", b"e1"]
    finally:
        follower.close()
    assert not follower._thread.is_alive()

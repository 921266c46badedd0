"""Reads racing a token revocation and a new roster version (issue 12 items 3 and 5,
docs/log-durability.md "State versions"): once the log holds a ``token-revoke`` entry,
no later entry records a read with that token, and once it holds a ``roster`` entry,
no later entry names the version it replaced; the audit finds neither
``token_revoked_use`` nor ``roster_superseded``.

The attack on the old gateway: the custodian revokes a token (or the identity
authority publishes a roster that drops a principal) through the log operator's
sequencer, as ``bordergate gateway revoke-token`` and ``bordergate roster publish``
do; the workers only learn of it when their followers next read the published log
(up to about 1.5 s later), and meanwhile served and logged reads under the old
state, which every audit then reported.  Now each decision's entry is guarded by
the versions its worker read, the sequencer refuses the stale ones, and the worker
catches up and decides again (refusing the revoked token or the dropped principal).

Real processes: two ``bordergate gateway serve`` workers sharing one ``bordergate log
sequencer`` process (docs/scale-out.md), hundreds of concurrent reads spread over
both.  Keys are TEST-ONLY (tests/gateway/deployment.py, tests/approvers.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.custody_log import open_custody_log
from bordergate.entries import Entry
from bordergate.gateway.auth import TokenIssuer
from bordergate.gateway.revocations import token_revoke_entry
from bordergate.policy.entities import Principal
from bordergate.roster import sign_roster
from bordergate.roster_commands import publish_signed_roster
from tests.approvers import AUTHORITY, roster_of
from tests.audit.scenario import APPROVER1, APPROVER2, LOCAL, PARENT
from tests.gateway.deployment import (
    Tokens,
    issuer_key,
    issuer_name,
)
from tests.gateway.test_revocation_race import (
    Workers,
    audit_findings,
    log_entries,
    roster_auditor,
    running_workers,
)

READERS = 40  # concurrent readers over both workers
READS_BEFORE = 100  # reads completed before the change is logged
READS_AFTER = 200  # reads started after the change was logged
JTI = "state-ordering-token-0001"
READ = {"purpose": "operations", "fields": "email"}
# a second local engineer, whom the roster's second version drops
READER = Principal("erin", "ttus", "local", "us", frozenset({"engineer"}))
EVERYONE = [LOCAL, PARENT, APPROVER1, APPROVER2, READER]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with running_workers(tmp_path, EVERYONE) as running:
        yield running


def bearer(principal: Principal, *, jti: str | None = None) -> dict[str, str]:
    """A TEST-ONLY token of ``principal`` for us (with the token id ``jti``)."""
    token = TokenIssuer(issuer_key("us"), issuer_name("us")).issue(
        principal, audience="us", now=time.time(), ttl=3600, jti=jti)
    return {"Authorization": f"Bearer {token}"}


async def race(w: Workers, reader: dict[str, str], change: Callable[[], None]
               ) -> dict[int, int]:
    """``READERS`` loops reading one record through both workers with the headers
    ``reader``; once ``READS_BEFORE`` reads are done, ``change`` runs (off the loop);
    ``READS_AFTER`` reads after it returned, stop.  The count of each status."""
    statuses: dict[int, int] = {}
    changed = asyncio.Event()
    done = {"reads": 0, "after": 0}
    turn = itertools.cycle(w.urls)
    limits = httpx.Limits(max_connections=2 * READERS)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        first = w.urls[0]
        writer = Tokens().header(LOCAL, "us")
        s = (await http.post(f"{first}/v1/subjects", headers=writer)).json()["subject"]
        r = await http.put(f"{first}/v1/users/us-order", params={"purpose": "operations"},
                           headers=writer, json={"subject": s, "values": {
                               "handle": "orderly", "email": "order@example.test",
                               "created_at": "2024-01-01T00:00:00Z"}})
        assert r.status_code == 200, r.text

        async def loop() -> None:
            while done["after"] < READS_AFTER:
                after = changed.is_set()
                r = await http.get(f"{next(turn)}/v1/users/us-order", params=READ,
                                   headers=reader)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    assert r.status_code == 401, r.text
                done["reads"] += 1
                done["after"] += after

        async def changer() -> None:
            while done["reads"] < READS_BEFORE:
                await asyncio.sleep(0.001)
            await asyncio.to_thread(change)
            changed.set()

        await asyncio.gather(changer(), *(loop() for _ in range(READERS)))
    return statuses


def logged_after(entries: list[Entry], kind: str, test: Callable[[Entry], bool]
                 ) -> list[int]:
    """Indexes of decision entries after the last ``kind`` entry that pass ``test``."""
    at = max(i for i, e in enumerate(entries) if e.type == kind)
    return [i for i, e in enumerate(entries)
            if i > at and e.type in ("access", "write") and test(e)]


def auditor(w: Workers) -> Path:
    return roster_auditor(w.root / "auditor.toml", w.log_dir, w.j)


# the workers run --unreviewed and the sequencer --unwitnessed (an auditor trusting no
# witness reports that); nothing else may be found
EXPECTED = {"unreviewed_start", "checkpoint_unwitnessed"}


def test_no_read_is_logged_with_a_token_after_its_revocation(workers: Workers) -> None:
    """Promises 2, 3 and the auditor's token_revoked_use: a token revoked through the log
    operator (the custodian's credential, as ``gateway revoke-token``) while hundreds of
    reads with it run on two workers: every read after the revoke entry is refused
    (401 token_revoked, never a 503), no access entry after it names the token, and the
    audit is clean of token_revoked_use."""
    w = workers

    def revoke() -> None:
        with open_custody_log(w.j) as custody:
            custody.append([token_revoke_entry(JTI, time.time(), reason="test")])

    statuses = asyncio.run(race(w, bearer(LOCAL, jti=JTI), revoke))
    assert statuses.get(200, 0) >= READS_BEFORE and statuses.get(401, 0) >= READS_AFTER
    entries = log_entries(w.log_dir, w.j)
    assert logged_after(entries, "token-revoke", lambda e: e.body.get("jti") == JTI) == []
    kinds = audit_findings(auditor(w), w.root / "state")
    assert "token_revoked_use" not in kinds
    assert set(kinds) <= EXPECTED


def test_no_read_is_logged_under_a_roster_version_after_it_was_replaced(
        workers: Workers) -> None:
    """Promise 2, issue 12 item 3 and the auditor's roster_superseded: the identity
    authority publishes a version that drops a reader while hundreds of its reads run on
    two workers: every read after the new ``roster`` entry is refused (401
    principal_not_in_roster), no access entry after it names the old version, and the
    audit is clean of roster_superseded."""
    w = workers
    old: dict[str, Any] = {}

    def publish() -> None:
        roster = roster_of("us", [p for p in EVERYONE if p is not READER], serial=2)
        old.update(publish_signed_roster(w.j, roster.document,
                                         sign_roster(roster, AUTHORITY).entry_body()))

    statuses = asyncio.run(race(w, bearer(READER), publish))
    assert statuses.get(200, 0) >= READS_BEFORE and statuses.get(401, 0) >= READS_AFTER
    entries = log_entries(w.log_dir, w.j)
    assert [e.body["roster"] for e in entries if e.type == "roster"][-1] == old["roster"]
    assert logged_after(entries, "roster", lambda e: e.body.get("roster") != old["roster"]) \
        == []
    kinds = audit_findings(auditor(w), w.root / "state")
    assert "roster_superseded" not in kinds
    assert set(kinds) <= EXPECTED

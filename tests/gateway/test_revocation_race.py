"""Reads racing a revocation (issue 11, item 2): once an approval's revoke entry has an
index, no access entry at a higher index used the approval's old state, and nothing was
released under it; the audit of the log finds no ``approval_revoked``.

Two set-ups: the real gateway's service layer in one process (hundreds of concurrent
reads on one event loop, the revoke in the middle), and two real ``bordergate gateway
serve`` workers sharing one SQLite approvals database and one ``bordergate log
sequencer`` process (docs/scale-out.md), the reads spread over both workers and the
revoke sent to one of them.  Keys are TEST-ONLY (tests/gateway/deployment.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.run import run_audit
from bordergate.config import Jurisdiction, load_config
from bordergate.entries import Entry, parse_entry
from bordergate.gateway.service import DeniedAfterLogging, SequencerLog
from bordergate.log_access import log_verifier
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.policy.entities import Principal
from bordergate.releases.publication import publish_bundle
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.tiles import TILE_WIDTH
from bordergate.tree_digest import read_tree
from tests.approvers import AUTHORITY, signed_body, with_roster
from tests.audit.scenario import APPROVER1, APPROVER2, LOCAL, PARENT, GatewayScenario
from tests.gateway.conftest import (
    start_process,
    start_sequencer_service,
    stop_process,
    wait_healthy,
)
from tests.gateway.deployment import (
    Tokens,
    two_workers_with_sequencer,
)
from tests.gateway.test_inprocess import Harness

READERS = 40  # concurrent readers
READS_BEFORE = 120  # reads completed before the revoke is sent
READS_AFTER = 120  # reads started after the revoke answered
EMAIL = "race@example.test"
READ = {"purpose": "customer_support", "fields": "email"}


async def race(read: Callable[[], Awaitable[bool]],
               revoke: Callable[[], Awaitable[None]]) -> dict[str, int]:
    """Run ``READERS`` concurrent read loops; revoke once ``READS_BEFORE`` reads are done,
    stop ``READS_AFTER`` reads after the revoke answered.  Counts released reads."""
    counts = {"reads": 0, "released": 0}
    revoked = asyncio.Event()
    after = 0

    async def reader() -> None:
        nonlocal after
        while after < READS_AFTER:
            started_after = revoked.is_set()
            released = await read()
            counts["reads"] += 1
            counts["released"] += released
            after += started_after

    async def revoker() -> None:
        while counts["reads"] < READS_BEFORE:
            await asyncio.sleep(0)
        await revoke()
        revoked.set()

    await asyncio.gather(revoker(), *(reader() for _ in range(READERS)))
    return counts


def log_entries(log_dir: Path, j: Jurisdiction) -> list[Entry]:
    """Every entry of the published log in ``log_dir`` (of jurisdiction ``j``)."""
    storage = FileStorage(log_dir)
    try:
        client = LogClient(StorageSource(storage), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        out: list[Entry] = []
        for n in range(-(-size // TILE_WIDTH)):
            out += [parse_entry(e) for e in client.bundle(n, min(TILE_WIDTH,
                                                                 size - n * TILE_WIDTH))]
        return out
    finally:
        storage.close()


def released_after_revoke(entries: list[Entry], approval: str) -> list[int]:
    """Indexes of access entries after the approval's revoke entry that released a
    field while presenting it."""
    (revoked_at,) = [i for i, e in enumerate(entries) if e.type == "approval-revoke"
                     and e.body["approval"] == approval]
    return [i for i, e in enumerate(entries) if i > revoked_at and e.type == "access"
            and e.body.get("approval") == approval and e.body["released"]]


@dataclass
class Workers:
    """Two gateway workers of ``us`` and their log operator's sequencer, running."""

    j: Jurisdiction
    urls: list[str]
    log_dir: Path
    root: Path


@contextlib.contextmanager
def running_workers(root: Path, principals: list[Principal]) -> Iterator[Workers]:
    """Two ``gateway serve`` workers of ``us`` sharing one approvals database and one
    ``log sequencer`` process (docs/scale-out.md), with the bundle published for the
    audit's replay and a TEST roster listing ``principals``; all stopped at the end."""
    config, second, port = two_workers_with_sequencer(root)
    j = load_config(config).jurisdiction("us")
    log_dir = Path(j.log.storage)
    storage = FileStorage(log_dir)
    publish_bundle(storage, read_tree(DEFAULT_BUNDLE_PATH))  # for the audit's replay
    storage.close()
    assert j.sequencer is not None
    sequencer = start_sequencer_service(j, port)
    with_roster([config, second], "us", principals)
    j = load_config(config).jurisdiction("us")  # with its roster table
    processes = [start_process(config, "us"), start_process(second, "us")]
    urls = [j.public_url, load_config(second).jurisdiction("us").public_url]
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_healthy(url, process)
        yield Workers(j, urls, log_dir, root)
    finally:
        for process in processes:
            stop_process(process)
        stop_process(sequencer)


def roster_auditor(path: Path, log_dir: Path, j: Jurisdiction) -> Path:
    """A TEST auditor's file for the log of ``j`` in ``log_dir``, trusting the TEST-ONLY
    roster authority and no witness."""
    path.write_text(f"""[auditor]
name = "TEST auditor"
time_tolerance_s = 5

[logs.us]
location = "{log_dir}"
vkey = "{log_verifier(j).key_string}"
roster_authority = ["{AUTHORITY.verifier().key_string}"]
""")
    return path


def audit_findings(auditor_toml: Path, state: Path) -> list[str]:
    run = run_audit(load_auditor_config(auditor_toml), state, reference=True)
    assert all(r.error is None and r.check is not None and r.check.ok for r in run.logs)
    return [f.kind for f in run.findings]


def test_reads_racing_a_revoke_in_one_process(tmp_path: Path) -> None:
    """Issue 11 item 2 (promises 2, 3): hundreds of concurrent reads under an approval
    race its revocation inside one gateway; no access entry after the revoke entry
    released anything under it, and the audit finds no approval_revoked."""
    sc = GatewayScenario(tmp_path)
    gw = sc.start()
    parent = sc.auth(PARENT)

    async def go() -> tuple[str, dict[str, int]]:
        s = (await gw.mint_subject(sc.auth(LOCAL))).body["subject"]
        await gw.write(sc.auth(LOCAL), "users", "us-race", purpose="operations",
                       payload={"subject": s, "values": {"handle": "racer", "email": EMAIL,
                               "created_at": "2024-01-01T00:00:00Z"}})
        asked = (await gw.request_approval(parent, {
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 3600})).body
        approval = asked["id"]
        for approver in (APPROVER1, APPROVER2):
            await gw.decide_approval(sc.auth(approver), approval, "grant",
                                     signed_body(asked, "grant", approver.id, gw.origin))

        async def read() -> bool:
            try:
                out = await gw.read(parent, "users", "us-race", fields="email",
                                    purpose="customer_support", approval=approval)
            except DeniedAfterLogging:
                return False
            return out.body["fields"].get("email") == EMAIL

        async def revoke() -> None:
            await gw.decide_approval(sc.auth(APPROVER1), approval, "revoke",
                                     signed_body(asked, "revoke", APPROVER1.id, gw.origin))

        return approval, await race(read, revoke)

    approval, counts = sc.run(go())
    sc.stop()
    assert counts["released"] >= READS_BEFORE and counts["reads"] > counts["released"]
    entries = log_entries(sc.log_dir, sc.j)
    assert released_after_revoke(entries, approval) == []
    kinds = audit_findings(sc.auditor_config(tmp_path / "auditor.toml"), tmp_path / "state")
    assert [k for k in kinds if k.startswith("approval_")] == []
    assert set(kinds) <= {"covered_person_denied"}  # the parent's reads after the revoke


def test_reads_racing_a_revoke_across_two_workers(tmp_path: Path) -> None:
    """Issue 11 item 2 (promises 2, 3; docs/scale-out.md): hundreds of concurrent reads
    spread over two gateway workers that share one approvals database and one sequencer
    process race a revoke sent to one worker; nothing is released after the revoke
    entry under the approval, and the audit finds no approval_revoked."""
    # the roster whose approvers sign their grants and revocations (issue 12 items 3, 4)
    with running_workers(tmp_path, [LOCAL, PARENT, APPROVER1, APPROVER2]) as w:
        approval, counts = asyncio.run(_race_workers(w.urls, Tokens()))
    j, log_dir = w.j, w.log_dir
    assert counts["released"] >= READS_BEFORE and counts["reads"] > counts["released"]
    entries = log_entries(log_dir, j)
    assert released_after_revoke(entries, approval) == []
    kinds = audit_findings(roster_auditor(tmp_path / "auditor.toml", log_dir, j),
                           tmp_path / "state")
    assert [k for k in kinds if k.startswith("approval_")] == []
    # the workers run --unreviewed; the parent's reads after the revoke are denied; the
    # sequencer runs --unwitnessed and the auditor trusts no witness (issue 12)
    assert "checkpoint_unwitnessed" in kinds
    assert set(kinds) <= {"unreviewed_start", "covered_person_denied", "checkpoint_unwitnessed"}


async def _race_workers(urls: list[str], tokens: Tokens) -> tuple[str, dict[str, Any]]:
    def auth(who: Any, **extra: str) -> dict[str, str]:
        return {**tokens.header(who, "us"), **extra}

    limits = httpx.Limits(max_connections=2 * READERS)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        first, other = urls
        s = (await http.post(f"{first}/v1/subjects", headers=auth(LOCAL))).json()["subject"]
        r = await http.put(f"{first}/v1/users/us-race", params={"purpose": "operations"},
                           headers=auth(LOCAL), json={"subject": s, "values": {
                               "handle": "racer", "email": EMAIL,
                               "created_at": "2024-01-01T00:00:00Z"}})
        assert r.status_code == 200, r.text
        r = await http.post(f"{first}/v1/approvals", headers=auth(PARENT), json={
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 3600})
        assert r.status_code == 201, r.text
        asked = r.json()
        approval = asked["id"]
        origin = asked["log"]["origin"]
        for approver, url in ((APPROVER1, first), (APPROVER2, other)):
            r = await http.post(f"{url}/v1/approvals/{approval}/grant", headers=auth(approver),
                                json=signed_body(asked, "grant", approver.id, origin))
            assert r.status_code == 200, r.text
        headers = auth(PARENT, **{"Bordergate-Approval": approval})
        turn = itertools.cycle(urls)

        async def read() -> bool:
            r = await http.get(f"{next(turn)}/v1/users/us-race", params=READ, headers=headers)
            assert r.status_code in (200, 403), r.text
            return r.status_code == 200 and r.json()["fields"].get("email") == EMAIL

        async def revoke() -> None:
            r = await http.post(f"{other}/v1/approvals/{approval}/revoke",
                                headers=auth(APPROVER1),
                                json=signed_body(asked, "revoke", APPROVER1.id, origin))
            assert r.status_code == 200, r.text

        return approval, await race(read, revoke)


def test_nothing_released_under_an_approval_that_expired_before_its_entry_was_durable(
        tmp_path: Path) -> None:
    """Issue 11 item 2 (expiry needs no entry): a read decided while its approval was
    valid, whose entry became durable only after the approval expired, releases nothing;
    the gateway decides it again, now denied, and logs that too."""
    harness = Harness(tmp_path)
    gw = harness.gateway
    log = gw.log
    assert isinstance(log, SequencerLog)
    base = time.time()
    clock = {"now": base}
    gw.clock = lambda: clock["now"]
    guarded = log.append_guarded

    async def slow_append(entries: Any, expect: Any) -> int:  # TEST-ONLY: the clock
        index = await guarded(entries, expect)                # passes expiry meanwhile
        clock["now"] = base + 700
        return index

    async def go(c: httpx.AsyncClient) -> tuple[httpx.Response, str]:
        await gw.announce_start(unreviewed=True, release=None)
        s = (await c.post("/v1/subjects", headers=harness.auth(LOCAL))).json()["subject"]
        r = await c.put("/v1/users/us-late", params={"purpose": "operations"},
                        headers=harness.auth(LOCAL), json={"subject": s, "values": {
                            "handle": "late", "email": EMAIL,
                            "created_at": "2024-01-01T00:00:00Z"}})
        assert r.status_code == 200, r.text
        r = await c.post("/v1/approvals", headers=harness.auth(PARENT), json={
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 600})
        asked = r.json()
        approval = asked["id"]
        for approver in (APPROVER1, APPROVER2):
            r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(approver),
                             json=harness.signed(asked, "grant", approver))
        assert r.json()["valid"]
        log.append_guarded = slow_append  # type: ignore[method-assign]
        return await c.get("/v1/users/us-late", params=READ, headers=harness.auth(
            PARENT, **{"Bordergate-Approval": approval})), approval

    try:
        r, approval = harness.run(go)
        entries = [parse_entry(e) for e in harness.entries()]
    finally:
        gw.close()
    assert r.status_code == 403 and EMAIL not in r.text
    reads = [e.body for e in entries if e.type == "access" and e.body["approval"] == approval]
    assert [b["released"] for b in reads] == [["email"], []]  # decided, then not sent

"""Bulk thresholds end to end (issue 14 item 3 acceptance): gateway and audit.

A real in-process gateway (SQLite store and bulk table, key file, Cedar, the
sequencer; the log storage is the in-memory twin so the test can read it back)
with a test schema whose ``users.country`` field carries precise geolocation,
and a threshold of 2 devices.  The gateway's clock is controlled: the reads
span the turn of a year, and a read 12 months later finds the first subject
out of the rolling window.  The log is then audited by both inspectors.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.audit.bundlestore import BundleLookup
from bordergate.audit.inspection import open_inspector
from bordergate.audit.rules.bulk import BulkRules, bulk_counters
from bordergate.config import Deployment, load_config
from bordergate.dsp.bulk import FieldCategories, parse_bulk_settings
from bordergate.entries import parse_entry
from bordergate.gateway.app import create_app
from bordergate.gateway.service import Gateway, SequencerLog
from bordergate.gateway.startup import open_gateway
from bordergate.policy.bundle import default_bundle
from bordergate.policy.engine import PolicyEngine
from bordergate.policy.entities import Principal
from bordergate.residency.schema import demo_schema_path, load_schema
from bordergate.tlog.storage.memory import MemoryStorage
from bordergate.tlog.tiles import TILE_WIDTH, TileRef, decode_bundle
from tests.approvers import keys_for, signed_body
from tests.gateway.deployment import Tokens, write_deployment
from tests.releases.keys import review_policy

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
CAROL = Principal("carol", "oracle", "custodian", "us", frozenset({"approver"}))
DAVE = Principal("dave", "oracle", "custodian", "us", frozenset({"approver"}))
PARENT = Principal("bob", "bytedance", "parent", "cn", frozenset({"engineer"}))
DAY = 86_400


def at(text: str) -> float:
    """Seconds since the epoch of a UTC ``YYYY-MM-DD`` (far enough in the future that
    the test's entries come after the real-time writes that seed it)."""
    year, month, day = map(int, text.split("-"))
    return float(calendar.timegm((year, month, day, 0, 0, 0)))


class Bench:
    """A started gateway with a controlled clock, four subjects, and its log."""

    def __init__(self, root: Path, bulk: str) -> None:
        path = write_deployment(root)
        schema = demo_schema_path().read_text(encoding="utf-8").replace(
            '[collections.users.fields.country]\nclass = "public"\n',
            '[collections.users.fields.country]\nclass = "public"\n'
            'dsp_category = "precise_geolocation"\n')
        (root / "schema.toml").write_text(schema, encoding="utf-8")
        text = path.read_text().replace('profile = "development"\n',
                                        'profile = "development"\nschema = "schema.toml"\n', 1)
        path.write_text(text + "\n[dsp.bulk]\n" + bulk)
        self.deployment: Deployment = load_config(path)
        self.storage = MemoryStorage()
        self.gateway: Gateway = open_gateway(self.deployment, "us", log_storage=self.storage)
        self.now = time.time()
        self.gateway.clock = lambda: self.now
        self.tokens = Tokens()
        self.app = create_app(self.gateway)
        self.subjects: list[str] = []

    def run(self, steps: list[tuple[int, str]]) -> list[httpx.Response]:
        """Seed four subjects (now), then read ``(subject number, UTC day)`` in order,
        all in one event loop."""
        async def main() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                await self._seed(c)
                return [await self._read(c, n, when) for n, when in steps]
        return asyncio.run(main())

    def session(self, fn: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
        """Seed four subjects (now), then ``fn`` with a client, in one event loop."""
        async def main() -> Any:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                await self._seed(c)
                return await fn(c)
        return asyncio.run(main())

    def _auth(self, who: Principal) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token(who, 'us', now=self.now)}"}

    async def _seed(self, c: httpx.AsyncClient) -> None:
        await self.gateway.announce_start(unreviewed=True, release=None)
        for n in range(4):
            r = await c.post("/v1/subjects", headers=self._auth(LOCAL))
            subject = str(r.json()["subject"])
            w = await c.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                            headers=self._auth(LOCAL), json={"subject": subject, "values": {
                                "handle": f"h{n}", "email": f"s{n}@example.test",
                                "country": "US", "created_at": "2024-01-01T00:00:00Z"}})
            assert w.status_code == 200, w.text
            self.subjects.append(subject)

    async def _read(self, c: httpx.AsyncClient, n: int, when: str) -> httpx.Response:
        """The parent organisation abroad reads subject ``n``'s public fields at ``when``."""
        self.now = at(when)
        return await c.get(f"/v1/users/{self.subjects[n]}", headers=self._auth(PARENT),
                           params={"purpose": "interoperability", "fields": "handle,country"})

    def entries(self) -> list[bytes]:
        log = self.gateway.log
        assert isinstance(log, SequencerLog)
        size = log.sequencer.size
        log.sequencer.publish()
        out: list[bytes] = []
        for index in range(size // TILE_WIDTH + 1):
            width = min(TILE_WIDTH, size - index * TILE_WIDTH)
            if width <= 0:
                break
            data = self.storage.objects.get(TileRef(-1, index, width).path)
            assert data is not None
            out += decode_bundle(data, width)
        return out

    def audit(self, threshold: int, *, reference: bool) -> Any:
        """An inspector over the log, with the auditor's own bulk rules."""
        bundle = default_bundle()
        engine = PolicyEngine(bundle)
        rules = BulkRules(FieldCategories.from_schema(load_schema(self.deployment.schema_path)),
                          parse_bulk_settings({"thresholds": {"precise_geolocation": threshold}}),
                          self.deployment.countries_of_concern)

        def lookup(digest: str) -> BundleLookup:
            if digest == bundle.digest:
                return BundleLookup(digest, engine, source="test")
            return BundleLookup(digest, None, "bundle_unavailable", "not in the test store")

        inspector = open_inspector(
            reference=reference, jurisdiction="us", origin=self.gateway.origin,
            bundles=lookup, reviewers=review_policy(), bulk=rules)
        inspector.feed_all(0, self.entries())
        inspector.finish()
        return inspector


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path, "thresholds = { precise_geolocation = 2 }\n")
    try:
        yield b
    finally:
        b.gateway.close()


@pytest.fixture
def not_counting(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path, "enabled = false\n")
    try:
        yield b
    finally:
        b.gateway.close()


def kinds(inspector: Any) -> list[tuple[str, int | None]]:
    return [(f.kind, f.index) for f in inspector.findings if f.kind.startswith("bulk_")]


def test_crossing_refused_over_a_rolling_window_across_a_year_boundary(counting: Bench) -> None:
    """§202.205 (issue 14 acceptance): a covered person (the parent organisation in cn)
    reads the geolocation of subjects on 1 and 20 Dec 2030: allowed (2 devices, the
    threshold is 'more than 2'); a third subject on 10 Jan 2031, across the year
    boundary, would make 3: refused with ``bulk_threshold_reached``, logged first as a
    ``bulk-threshold`` entry, nothing released.  On 5 Dec 2031 the 1 Dec 2030 read has
    left the rolling 12 months: the third subject is allowed (2 in the window); a
    fourth the next day is refused again (the 20 Dec 2030 read still counts)."""
    b = counting
    first, second, refused, again, fourth, repeat = b.run([
        (0, "2030-12-01"), (1, "2030-12-20"), (2, "2031-01-10"), (2, "2031-12-05"),
        (3, "2031-12-06"), (1, "2031-12-07")])
    assert first.status_code == 200 and second.status_code == 200
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "bulk_threshold_reached"
    assert "US" not in refused.text  # no value released
    index = int(refused.headers["Bordergate-Log-Index"])
    entry = parse_entry(b.entries()[index])
    assert entry.type == "bulk-threshold" and entry.body["outcome"] == "refused"
    assert {(c["counterparty"], c["count"], c["threshold"]) for c in entry.body["counters"]} \
        == {("principal:bob", 3, 2), ("org:bytedance", 3, 2)}
    assert entry.body["subject"] == b.gateway.pseudonyms.subject(b.subjects[2])
    assert again.status_code == 200, again.text
    assert again.json()["fields"]["country"] == "US"
    assert fourth.json()["code"] == "bulk_threshold_reached"
    assert repeat.status_code == 200  # counted already: no crossing


def test_the_audit_reports_the_refusals_and_recomputes_the_counters(counting: Bench) -> None:
    """The audit (both inspectors, the same findings) reports the gateway's two
    refusals as denied attempts and the near miss (2 of 2 devices is at least 80%),
    and its own counters, recomputed from the access entries alone, match the
    gateway's view: peak 2 devices per counterparty, never over."""
    b = counting
    b.run([(0, "2030-12-01"), (1, "2030-12-20"), (2, "2031-01-10"), (2, "2031-12-05"),
           (3, "2031-12-06")])
    ref, fast = b.audit(2, reference=True), b.audit(2, reference=False)
    assert kinds(ref) == kinds(fast)
    found = [k for k, _ in kinds(ref)]
    assert found.count("bulk_threshold_refused") == 2
    assert "bulk_threshold_near" in found and "bulk_threshold_crossed" not in found
    figures = {(c.counterparty, c.counter): c
               for c in bulk_counters(ref.state, ref.bulk.settings)}
    geo = figures[("org:bytedance", "precise_geolocation")]
    assert (geo.peak, geo.current, geo.threshold, geo.crossings) == (2, 2, 2, 0)


def test_the_audit_reports_a_crossing_the_gateway_did_not_stop(not_counting: Bench) -> None:
    """The audit does not rely on the gateway: with counting switched off at the gateway,
    three subjects' geolocation read between 1 Dec 2030 and 10 Jan 2031 are released,
    and the audit (threshold 2, both inspectors) reports the crossing at the third
    read's entry, after a near miss at the second."""
    b = not_counting
    answers = b.run([(0, "2030-12-01"), (1, "2030-12-20"), (2, "2031-01-10")])
    assert [r.status_code for r in answers] == [200, 200, 200]
    indexes = [int(r.headers["Bordergate-Log-Index"]) for r in answers]
    ref, fast = b.audit(2, reference=True), b.audit(2, reference=False)
    assert kinds(ref) == kinds(fast)
    assert ("bulk_threshold_crossed", indexes[2]) in kinds(ref)
    assert ("bulk_threshold_near", indexes[1]) in kinds(ref)
    crossed = next(f for f in ref.findings if f.kind == "bulk_threshold_crossed")
    assert crossed.detail["count"] == 3 and crossed.detail["threshold"] == 2


def test_require_approval_holds_the_crossing_until_two_approvers_grant(tmp_path: Path) -> None:
    """Product policy ``require_approval`` (docs/compliance.md): the read that would
    cross is refused with ``bulk_approval_required`` (logged); after the existing
    approval flow (a request, two custodian approvers' signed grants) the same read
    presenting the approval goes ahead, its ``bulk-threshold`` entry says ``approved``
    and names the approval, and the audit still reports the crossing."""
    b = Bench(tmp_path, 'thresholds = { precise_geolocation = 2 }\n'
                        'actions = { precise_geolocation = "require_approval" }\n')
    b.gateway.approver_keys = keys_for(["carol", "dave"])
    read = {"purpose": "interoperability", "fields": "handle,country"}

    async def go(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, str]:
        for n, when in [(0, "2030-12-01"), (1, "2030-12-20")]:
            assert (await b._read(c, n, when)).status_code == 200
        held = await b._read(c, 2, "2031-01-10")
        r = await c.post("/v1/approvals", headers=b._auth(PARENT), json={
            "purpose": "interoperability", "reason": "federation", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 600})
        assert r.status_code == 201, r.text
        asked = r.json()
        for who in (CAROL, DAVE):
            g = await c.post(f"/v1/approvals/{asked['id']}/grant", headers=b._auth(who),
                             json=signed_body(asked, "grant", who.id, b.gateway.origin))
            assert g.status_code == 200, g.text
        passed = await c.get(f"/v1/users/{b.subjects[2]}", params=read,
                             headers={**b._auth(PARENT), "Bordergate-Approval": asked["id"]})
        return held, passed, str(asked["id"])

    try:
        held, passed, approval = b.session(go)
        assert held.status_code == 403 and held.json()["code"] == "bulk_approval_required"
        assert passed.status_code == 200, passed.text
        assert passed.json()["fields"]["country"] == "US"
        entries = [parse_entry(e) for e in b.entries()]
        marks = [e.body for e in entries if e.type == "bulk-threshold"]
        assert [(m["outcome"], m["approval"]) for m in marks] == [
            ("refused", None), ("approved", approval)]
        index = int(passed.headers["Bordergate-Log-Index"])
        ref = b.audit(2, reference=True)
        assert ("bulk_threshold_crossed", index) in kinds(ref)
        assert kinds(ref) == kinds(b.audit(2, reference=False))
    finally:
        b.gateway.close()

"""The dashboard reads the whole log, says when its view is partial, keeps its reading
across restarts, and shows bulk counters and privacy budgets (issue 14 item 6).

A real in-process gateway (tests/dsp/test_bulk_gateway.py ``Bench``: SQLite store,
sequencer, a schema whose ``users.country`` is precise geolocation) with reads by
a covered person across a year boundary and an export; the dashboard's feed reads
its log a few entries per look, then a new feed (a restarted dashboard) continues
from the state file.  The page is checked in headless Chromium (Playwright,
/usr/bin/chromium): no console errors, the partial view said, then the complete
one, the counters and budgets shown; a screenshot is saved under test-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bordergate.gateway.dashboard import DashboardFeed, dashboard_app
from tests.chromium import ARGS, CHROMIUM
from tests.dsp.test_bulk_gateway import LOCAL, Bench

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path, "thresholds = { precise_geolocation = 2 }\n")
    b.run([(0, "2030-12-01"), (1, "2030-12-20"), (2, "2031-01-10"), (2, "2031-12-05")])

    async def export() -> None:
        auth = "Bearer " + b.tokens.token(LOCAL, "us", now=b.now)
        await b.gateway.export(auth, {"collection": "users", "group_by": "country",
                                      "purpose": "analytics_aggregate", "min_subjects": 25})
    asyncio.run(export())
    b.entries()  # publishes a checkpoint covering every entry
    try:
        yield b
    finally:
        b.gateway.close()


def read_all(feed: DashboardFeed) -> list[dict[str, Any]]:
    """Every document the feed gives until its view is complete (bounded)."""
    out = [feed.data()]
    for _ in range(200):
        if not out[-1]["view"]["partial"]:
            return out
        out.append(feed.data())
    raise AssertionError("the dashboard never caught up")


def test_the_whole_log_is_read_in_bounded_looks_and_said_partial_until_then(
        bench: Bench, tmp_path: Path) -> None:
    """Issue 14 item 6: the view covers the whole log from entry 0 (every entry counted
    by type), read at most ``per_look`` entries per look; until then ``view.partial``
    is true and says how far it got; then the bulk counters (as the audit counts:
    peak 2 devices, the refused read not counted) and the budget the export spent."""
    size = len(bench.entries())
    feed = DashboardFeed(bench.gateway, state_path=tmp_path / "dash.json", per_look=3)
    docs = read_all(feed)
    assert len(docs) >= size // 3
    first, last = docs[0], docs[-1]
    assert first["view"]["partial"] and first["view"]["entries_read"] == 3
    assert "catching up: 3 of" in first["view"]["reason"]
    assert last["view"] == {**last["view"], "partial": False, "entries_read": size,
                            "log_size": size, "restored_from": 0}
    assert sum(last["entry_types"].values()) == size
    assert last["entry_types"]["bulk-threshold"] == 1
    bulk = {(r["counterparty"], r["counter"]): r for r in last["bulk"]}
    geo = bulk[("org:bytedance", "precise_geolocation")]
    assert (geo["peak"], geo["threshold"], geo["unit"]) == (2, 2, "devices")
    budgets = {(b["scope"], b["name"]) for b in last["budgets"]}
    assert ("principal", "alice") in budgets and ("dataset", "users") in budgets
    assert all(b["spent_micro"] > 0 for b in last["budgets"])


def test_a_restarted_dashboard_continues_from_its_state_file(bench: Bench,
                                                             tmp_path: Path) -> None:
    """Issue 14 item 6: a new feed on the same state file starts where the last stopped
    (``restored_from`` is the log's size, nothing read again, the same counters); a
    state file whose last leaf hash is not the log's is dropped, the log read from
    entry 0 again and the page told why."""
    path = tmp_path / "dash.json"
    before = read_all(DashboardFeed(bench.gateway, state_path=path, per_look=4))[-1]
    size = before["view"]["log_size"]
    again = DashboardFeed(bench.gateway, state_path=path, per_look=4).data()
    assert again["view"]["restored_from"] == size and not again["view"]["partial"]
    assert again["bulk"] == before["bulk"] and again["entry_types"] == before["entry_types"]
    saved = json.loads(path.read_text())
    saved["last_leaf"] = "00" * 32
    path.write_text(json.dumps(saved))
    fresh = DashboardFeed(bench.gateway, state_path=path, per_look=4)
    docs = read_all(fresh)
    assert docs[0]["view"]["partial"] and docs[0]["view"]["restored_from"] == 0
    assert "does not match this log" in docs[0]["view"]["note"]
    assert docs[-1]["bulk"] == before["bulk"]
    path.write_text("{not json")
    broken = DashboardFeed(bench.gateway, state_path=path).data()
    assert "could not be read" in broken["view"]["note"] and not broken["view"]["partial"]


@pytest.mark.browser
def test_dashboard_page_shows_partial_view_bulk_counters_and_budgets(
        bench: Bench, tmp_path: Path) -> None:
    """Issue 14 item 6 in headless Chromium: the page first says its view is partial,
    then complete; it shows the covered person's and its organisation's bulk counters
    and the budgets spent, with no console errors and no third-party request; a
    screenshot is saved."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from tests.audit.test_browser import Server, watch

    dash = dashboard_app(bench.gateway, state_path=str(tmp_path / "dash.json"))
    dash.state.feed.per_look = 2
    app = Starlette(routes=[Route("/healthz", lambda r: PlainTextResponse("ok")),
                            Mount("/dashboard", dash)])
    with Server(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        problems = watch(page)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url + "/dashboard/")
        assert page.locator("#view").inner_text().startswith("Partial view")
        page.wait_for_function(
            "() => document.querySelector('#view').textContent.startsWith('Complete view')",
            timeout=60_000)
        bulk = page.locator("#bulk").inner_text()
        assert "org:bytedance" in bulk and "principal:bob" in bulk
        assert "precise_geolocation" in bulk and "devices" in bulk
        budgets = page.locator("#budgets").inner_text()
        assert "alice" in budgets and "users" in budgets
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gateway-dashboard-bulk.png"), full_page=True)
        assert problems == []
        assert all(u.startswith(url) for u in requests)
        browser.close()

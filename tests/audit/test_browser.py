"""The audit report and the gateway dashboard in real headless Chromium (Playwright,
/usr/bin/chromium): they load with no console errors and no network, their charts
render as non-empty SVG, and screenshots are saved under test-artifacts/ (docs/design.md,
the auditor: a report people can read; the dashboard for custodians and monitors)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.controls import CONTROLS
from bordergate.audit.evidence_package import gather_evidence
from bordergate.audit.report import build_report, write_report
from bordergate.audit.run import run_audit
from bordergate.gateway.admin import ADMIN_COOKIE, create_admin_app
from bordergate.gateway.app import create_app
from bordergate.gateway.dashboard import REPORT_ENV
from tests.audit.scenario import APPROVER1, LOCAL, GatewayScenario
from tests.gateway.deployment import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[GatewayScenario, Path]:
    """A log with clean traffic and the demo's bad actor, audited; the report directory."""
    root = tmp_path_factory.mktemp("browser")
    sc = GatewayScenario(root)
    sc.start()
    sc.run(sc.clean_traffic())
    sc.run(sc.covered_person_attempt())
    approval = sc.run(sc.request_for_single_grant())
    sc.stop()
    sc.forged_single_grant(approval)
    run = run_audit(load_auditor_config(sc.auditor_config(root / "auditor.toml")),
                    root / "state")
    doc = build_report(run)
    write_report(doc, root / "report", evidence=gather_evidence(run, doc))
    return sc, root / "report"


def watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    return problems


def test_report_renders_offline_with_charts(browser: Any,
                                            audited: tuple[GatewayScenario, Path]) -> None:
    """report.html opens from disk with no network and no console errors; the flow,
    time and bar charts are non-empty SVG; the findings and control table are there."""
    _, report = audited
    context = browser.new_context(offline=True)
    page = context.new_page()
    problems = watch(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((report / "report.html").as_uri())
    assert page.locator("svg.sankey path.link").count() > 0
    assert page.locator("svg.bars rect.bar").count() > 0
    assert page.locator("svg.hbars rect.bar").count() > 0  # denials by reason
    assert page.locator("ol.findings li").count() == 2
    assert page.locator("table.controls tbody tr").count() == len(CONTROLS)
    box = page.locator("svg.sankey").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "audit-report.png"), full_page=True)
    assert problems == []
    assert all(u.startswith("file://") for u in requests)
    context.close()


def visible_findings(page: Any) -> int:
    return int(page.locator("ol.findings li.finding:visible").count())


def test_report_filters_and_csv_work_offline(browser: Any, audited: tuple[GatewayScenario, Path]
                                             ) -> None:
    """Issue 14 item 5, for people: in report.html opened from disk with no network, the
    filters by severity, kind, jurisdiction and time range show exactly the matching
    findings; the findings and flows CSV download and hold what the filters show; the
    decisions-over-time chart has a panel of its own for the denial; printing hides the
    controls; no console errors; screenshots saved (filtered, and as printed)."""
    import csv

    _, report = audited
    doc = json.loads((report / "report.json").read_text())
    context = browser.new_context(offline=True, accept_downloads=True)
    page = context.new_page()
    problems = watch(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((report / "report.html").as_uri())
    total = len(doc["findings"])
    assert visible_findings(page) == total == 2
    critical = [f for f in doc["findings"] if f["severity"] == "critical"]
    page.select_option("#f-severity", "critical")
    assert visible_findings(page) == len(critical)
    page.select_option("#f-severity", "")
    page.select_option("#f-kind", "covered_person_denied")
    assert visible_findings(page) == 1
    assert "bob" in page.locator("ol.findings li.finding:visible dl.who").inner_text()
    page.select_option("#f-jurisdiction", "us")
    assert visible_findings(page) == 1
    with page.expect_download() as got:
        page.click("#csv-findings")
    findings_csv = ARTIFACTS / "report-findings.csv"
    ARTIFACTS.mkdir(exist_ok=True)
    got.value.save_as(findings_csv)
    rows = list(csv.DictReader(findings_csv.read_text(encoding="utf-8").splitlines()))
    assert [r["kind"] for r in rows] == ["covered_person_denied"]
    assert rows[0]["principal"] == "bob" and rows[0]["purpose"] == "customer_support"
    assert set(rows[0]["fields"].split()) == {"email", "government_id"}
    page.screenshot(path=str(ARTIFACTS / "audit-report-filtered.png"), full_page=True)
    page.fill("#f-from", "2999-01-01T00:00")
    assert visible_findings(page) == 0
    page.click("#f-reset")
    assert visible_findings(page) == total
    with page.expect_download() as got:
        page.click("#csv-flows")
    flows_csv = ARTIFACTS / "report-flows.csv"
    got.value.save_as(flows_csv)
    flows = list(csv.DictReader(flows_csv.read_text(encoding="utf-8").splitlines()))
    assert len(flows) == len(doc["flows"]) + len(doc["withheld"]) > 0
    assert {r["flow"] for r in flows} == {"released", "withheld"}
    panels = page.locator("#time svg.bars")
    assert panels.count() == 2  # allowed; partial and denied, each on its own scale
    assert panels.nth(1).locator("rect.bar").count() > 0
    assert page.locator("#scope").inner_text().count("sampled") >= 1
    assert page.locator("pre.entry").count() >= 1  # entries shown decoded
    page.emulate_media(media="print")
    assert not page.locator("#filters").is_visible()
    assert not page.locator("header nav").is_visible()
    page.screenshot(path=str(ARTIFACTS / "audit-report-print.png"), full_page=True)
    assert problems == []
    assert all(u.startswith(("file://", "blob:")) for u in requests), requests
    context.close()


class Server:
    """The real gateway app served by uvicorn on loopback, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def test_dashboard_is_live_and_self_contained(browser: Any,
                                              audited: tuple[GatewayScenario, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """/dashboard on a running gateway's admin listener, after signing in with a
    custodian's token at /login (an HttpOnly, SameSite=Strict session cookie): loads
    with no console errors and no third-party requests, draws decisions per second as
    SVG, shows the pending approval, releases, gateway starts and the last audit's
    findings, and updates as the log grows."""
    sc, report = audited
    monkeypatch.setenv(REPORT_ENV, str(report))
    gw = sc.start()
    # the audited approval is granted now (the forged grant is in the log, and start-up
    # brings the approvals table up to the log): the dashboard shows a pending one
    sc.run(sc.request_for_single_grant())
    try:
        public = create_app(gw)
        with Server(public) as url, Server(create_admin_app(gw, public)) as admin:
            page = browser.new_page()
            problems = watch(page)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(admin + "/dashboard/")
            assert page.url == admin + "/login"  # not signed in yet
            page.fill("#token", sc.auth(APPROVER1).removeprefix("Bearer "))
            page.click("button[type=submit]")
            page.wait_for_selector("#rates svg rect.bar")
            assert page.url == admin + "/dashboard/"
            cookie = next(c for c in page.context.cookies() if c["name"] == ADMIN_COOKIE)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert page.locator("#approvals tbody tr, #approvals tr").count() >= 2
            assert "approval_single_approver" in page.locator("#audit").inner_text()
            assert "NO (unreviewed)" not in page.locator("#starts").inner_text()
            size = int(page.locator("#cards .card .v").first.inner_text())
            r = httpx.get(url + "/v1/users/us-rec0", params={"purpose": "operations"},
                          headers={"Authorization": sc.auth(LOCAL)})
            assert r.status_code == 200
            page.wait_for_function(
                "n => Number(document.querySelector('#cards .card .v').textContent) > n",
                arg=size, timeout=15000)
            assert httpx.get(admin + "/dashboard/data.json").status_code == 401
            data = httpx.get(admin + "/dashboard/data.json",
                             headers={"Authorization": sc.auth(APPROVER1)}).json()
            assert data["log"]["size"] > size and data["rates"]["total_per_s"] > 0
            assert data["approvals"][0]["grants"] == 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "gateway-dashboard.png"), full_page=True)
            assert problems == []
            assert all(u.startswith(admin) for u in requests)
            page.close()
    finally:
        sc.stop()
        os.environ.pop(REPORT_ENV, None)

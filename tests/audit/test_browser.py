"""The audit report and the gateway dashboard in real headless Chromium (Playwright,
/usr/bin/chromium): they load with no console errors and no network, their charts
render as non-empty SVG, and screenshots are saved under test-artifacts/ (docs/design.md,
the auditor: a report people can read; the dashboard for custodians and monitors)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.controls import CONTROLS
from bordergate.audit.report import build_report, write_report
from bordergate.audit.run import run_audit
from bordergate.gateway.admin import ADMIN_COOKIE, create_admin_app
from bordergate.gateway.app import create_app
from bordergate.gateway.dashboard import REPORT_ENV
from tests.audit.scenario import APPROVER1, LOCAL, GatewayScenario
from tests.gateway.deployment import free_port

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium (make system-packages installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


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
    write_report(build_report(run), root / "report")
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
    assert page.locator("svg.hbars rect.bar").count() > 0
    assert page.locator("ol.findings li").count() == 2
    assert page.locator("table.controls tbody tr").count() == len(CONTROLS)
    box = page.locator("svg.sankey").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "audit-report.png"), full_page=True)
    assert problems == []
    assert all(u.startswith("file://") for u in requests)
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

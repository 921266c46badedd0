"""Real gateway processes: recovery from failing closed, readiness, and operational
data kept from ordinary principals (issue 11, items 8 and 9; docs/gateway.md,
"Liveness, readiness, recovery" and "The admin listener").

The recovery test runs its own TEST-ONLY deployment with a log disk that dies
while a file exists (tests/gateway/dead_disk_gateway.py); the others use the
session's ``running`` deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.policy.entities import Principal
from tests.gateway.conftest import RunningDeployment, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, write_deployment

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Principal("alice-ops", "ttus", "local", "us", frozenset({"engineer"}))
REQUESTER_A = Principal("req-ops-a-7731", "bytedance", "parent", "cn", frozenset({"engineer"}))
REQUESTER_B = Principal("req-ops-b-9902", "bytedance", "parent", "cn", frozenset({"analyst"}))
APPROVER_US = Principal("carol-ops", "oracle", "custodian", "us", frozenset({"approver"}))
APPROVER_EU = Principal("erin-ops", "eucustody", "custodian", "eu", frozenset({"approver"}))
MONITOR = Principal("mona-ops", "auditco", "monitor", "eu", frozenset({"monitor"}))
REASON = "fraud_signal"


def _until(check: object, what: str, timeout: float = 60.0) -> None:
    """Wait (not a timing assertion: the bound only stops a hung test) until ``check()``."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.2)


def test_gateway_recovers_from_failing_closed_without_restart(tmp_path: Path) -> None:
    """Promise 3 and item 8: a log write failure fails closed (503 on reads, /readyz
    503 naming ``log_unwritable`` with the reason, /healthz still 200: the process is
    alive); once the log takes durable writes again the same process serves reads
    again (no restart), /readyz is 200, and the log is still consistent."""
    config = write_deployment(tmp_path / "d")
    fault = tmp_path / "log-disk-dead"
    url = load_config(config).jurisdiction("us").public_url
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.dead_disk_gateway", str(config), "us", str(fault)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(url, process)
        with httpx.Client(base_url=url, headers=Tokens().header(LOCAL, "us"),
                          timeout=30) as http:
            subject = http.post("/v1/subjects").json()["subject"]
            values = {"handle": "recovering", "email": "recover@example.test",
                      "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-REC-1"}
            assert http.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                            json={"subject": subject, "values": values}).status_code == 200
            assert http.get("/readyz").status_code == 200

            fault.touch()
            r = http.get(f"/v1/users/{subject}", params={"purpose": "operations"})
            assert r.status_code == 503 and r.json()["code"] == "log_unwritable"
            assert "recover@example.test" not in r.text
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["code"] == "log_unwritable"
            assert "failing closed" in ready.json()["detail"]
            assert ready.json()["checks"]["log"]["status"] == "failing"
            assert ready.json()["checks"]["store"]["status"] == "ok"
            assert http.get("/healthz").status_code == 200
            r = http.get(f"/v1/users/{subject}", params={"purpose": "operations"})
            assert r.status_code == 503  # still failing closed while the disk is dead

            fault.unlink()
            _until(lambda: http.get("/readyz").status_code == 200, "readiness after recovery")
            assert process.poll() is None  # the same process: no restart
            r = http.get(f"/v1/users/{subject}", params={"purpose": "operations"})
            assert r.status_code == 200, r.text
            assert r.json()["fields"]["email"] == "recover@example.test"
            index = int(r.headers["Bordergate-Log-Index"])
            proof = http.get(f"/v1/log/proof/{index}")
            assert proof.status_code == 200 and proof.json()["size"] > index
            assert http.get("/healthz").status_code == 200
    finally:
        stop_process(process)


def _admin_url(running: RunningDeployment, code: str) -> str:
    j = running.deployment.jurisdiction(code)
    return f"http://{j.admin_host}:{j.admin_port}"


def _request_approval(http: httpx.Client, url: str, tokens: Tokens, who: Principal) -> str:
    r = http.post(f"{url}/v1/approvals", headers=tokens.header(who, "us"), json={
        "purpose": "trust_and_safety", "reason": REASON,
        "collections": ["users"], "classes": ["protected"], "max_duration_s": 600})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_approvals_are_listed_only_to_their_requester_and_home_approvers(
        running: RunningDeployment, tokens: Tokens) -> None:
    """Item 9: a signed-in principal listing approvals sees only its own requests;
    approvers of the home see them all, an approver of another home and an ordinary
    local principal see none of them; an approval is not readable by id by another
    requester (404, its existence not confirmed)."""
    url = running.urls["us"]
    with httpx.Client(timeout=30) as http:
        mine = _request_approval(http, url, tokens, REQUESTER_A)
        theirs = _request_approval(http, url, tokens, REQUESTER_B)

        def listed(who: Principal) -> set[str]:
            r = http.get(f"{url}/v1/approvals", headers=tokens.header(who, "us"))
            assert r.status_code == 200, r.text
            return {a["id"] for a in r.json()["approvals"]}

        assert mine in listed(REQUESTER_A) and theirs not in listed(REQUESTER_A)
        assert {a for a in listed(REQUESTER_A)} <= listed(APPROVER_US)
        assert {mine, theirs} <= listed(APPROVER_US)
        assert not {mine, theirs} & listed(APPROVER_EU)
        assert not {mine, theirs} & listed(LOCAL)
        r = http.get(f"{url}/v1/approvals/{theirs}", headers=tokens.header(REQUESTER_A, "us"))
        assert r.status_code == 404 and REQUESTER_B.id not in r.text
        r = http.get(f"{url}/v1/approvals/{theirs}", headers=tokens.header(APPROVER_US, "us"))
        assert r.status_code == 200 and r.json()["requester"] == REQUESTER_B.id


def test_dashboard_and_metrics_are_not_on_the_public_listener(
        running: RunningDeployment, tokens: Tokens) -> None:
    """Item 9: /dashboard, /dashboard/data.json and /metrics are not served on the
    public listener, not even to a custodian."""
    url = running.urls["us"]
    for path in ("/dashboard", "/dashboard/", "/dashboard/data.json", "/metrics"):
        for headers in ({}, tokens.header(APPROVER_US, "us")):
            r = httpx.get(url + path, headers=headers, timeout=30)
            assert r.status_code == 404, (path, r.status_code)
            assert "requester" not in r.text


def test_admin_listener_needs_a_custodian_or_monitor_token(
        running: RunningDeployment, tokens: Tokens) -> None:
    """Item 9: on the admin listener (loopback), the dashboard, its data and /metrics
    answer 401 without a token, 403 with an ordinary principal's or another home's
    custodian's, and 200 with this home's custodian's or a monitor's; a browser signs
    in at /login and gets an HttpOnly, SameSite=Strict session cookie; a sign-in from
    another origin is refused."""
    admin = _admin_url(running, "us")
    assert running.deployment.jurisdiction("us").admin_host == "127.0.0.1"
    paths = ("/dashboard/", "/dashboard/data.json", "/metrics")
    with httpx.Client(base_url=admin, timeout=30) as http:
        for path in paths:
            assert http.get(path).status_code == 401
            assert http.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
            for who in (LOCAL, REQUESTER_A, APPROVER_EU):
                r = http.get(path, headers=tokens.header(who, "us"))
                assert r.status_code == 403 and r.json()["code"] == "admin_only", (path, who)
            for who in (APPROVER_US, MONITOR):
                assert http.get(path, headers=tokens.header(who, "us")).status_code == 200
        assert http.get("/dashboard/", headers={"Accept": "text/html"}).headers[
            "location"] == "/login"

        token = tokens.token(APPROVER_US, "us")
        r = http.post("/login", data={"token": token},
                      headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = http.post("/login", data={"token": tokens.token(LOCAL, "us")})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = http.post("/login", data={"token": token}, headers={"Origin": admin})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
        data = http.get("/dashboard/data.json")  # the client kept the session cookie
        assert data.status_code == 200 and data.json()["jurisdiction"] == "us"
        assert http.post("/logout", headers={"Origin": admin}).status_code == 303
        http.cookies.clear()
        assert http.get("/dashboard/data.json").status_code == 401


def test_metrics_carry_no_principal_requester_or_subject_id(
        running: RunningDeployment, tokens: Tokens) -> None:
    """Item 9: after approvals by known requesters and reads by known principals of
    known subjects, /metrics (admin listener, custodian token) names none of them,
    nor any approval id or reason."""
    url = running.urls["us"]
    with httpx.Client(timeout=30) as http:
        approvals = [_request_approval(http, url, tokens, who)
                     for who in (REQUESTER_A, REQUESTER_B)]
        local = tokens.header(LOCAL, "us")
        subject = http.post(f"{url}/v1/subjects", headers=local).json()["subject"]
        r = http.put(f"{url}/v1/users/{subject}", params={"purpose": "operations"},
                     headers=local, json={"subject": subject, "values": {
                         "handle": "metrics-probe", "email": "metrics-probe@example.test",
                         "created_at": "2024-01-01T00:00:00Z",
                         "government_id": "GOV-METRICS-1"}})
        assert r.status_code == 200, r.text
        for who in (LOCAL, REQUESTER_A):
            http.get(f"{url}/v1/users/{subject}", params={"purpose": "operations"},
                     headers=tokens.header(who, "us"))
        body = http.get(_admin_url(running, "us") + "/metrics",
                        headers=tokens.header(APPROVER_US, "us")).text
    assert "bordergate_requests_total" in body
    identifiers = [LOCAL.id, REQUESTER_A.id, REQUESTER_B.id, APPROVER_US.id, subject,
                   subject.split("-", 1)[1], REASON, *approvals, "metrics-probe"]
    for identifier in identifiers:
        assert identifier not in body, identifier

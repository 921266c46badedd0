"""In-process gateway on in-memory log storage: fail closed, bad input, approvals.

The gateway is the real one (SQLite store, key file, Cedar, the sequencer),
only its log storage is the in-memory twin so that a test can make it refuse
writes (a dead disk).  Keys are TEST-ONLY (tests/gateway/deployment.py).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.gateway.admin import create_admin_app
from bordergate.gateway.app import create_app
from bordergate.gateway.approvals import ApprovalRecord, ApprovalStore
from bordergate.gateway.service import Gateway, SequencerLog
from bordergate.gateway.startup import open_gateway
from bordergate.policy.entities import Principal
from bordergate.receipts import check_answer, parse_receipt, verify_receipt_signature
from bordergate.tlog.storage.memory import MemoryStorage
from bordergate.tlog.tiles import TILE_WIDTH, TileRef, decode_bundle
from tests.approvers import approver_key, keys_for, public_text, signed_body
from tests.gateway.deployment import Tokens, receipt_signer, write_deployment

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
PARENT = Principal("bob", "bytedance", "parent", "cn", frozenset({"engineer"}))
APPROVER = Principal("carol", "oracle", "custodian", "us", frozenset({"approver"}))
APPROVER2 = Principal("dave", "oracle", "custodian", "us", frozenset({"approver"}))
APPROVER_KEYS = keys_for(["carol", "dave"])  # the roster's approver keys (TEST-ONLY)
SECRET_EMAIL = "very-secret@example.test"
SECRET_GOV = "GOV-INPROC-99"


class Harness:
    """A started in-process gateway, its storage and an async HTTP client."""

    def __init__(self, root: Path) -> None:
        self.deployment = load_config(write_deployment(root))
        self.storage = MemoryStorage()
        self.gateway: Gateway = open_gateway(self.deployment, "us", log_storage=self.storage)
        self.gateway.approver_keys = APPROVER_KEYS
        self.app = create_app(self.gateway)
        self.tokens = Tokens()
        self.subject = ""

    def run(self, fn: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                return await fn(client)
        return asyncio.run(main())

    def size(self) -> int:
        log = self.gateway.log
        assert isinstance(log, SequencerLog)
        return log.sequencer.size

    def entries(self) -> list[bytes]:
        """Every entry so far, read from the published bundles (publishes first:
        small batches stay in the write-ahead log until the next checkpoint)."""
        log = self.gateway.log
        assert isinstance(log, SequencerLog)
        if log.sequencer.size:
            log.sequencer.publish()
        out: list[bytes] = []
        for index in range(self.size() // TILE_WIDTH + 1):
            width = min(TILE_WIDTH, self.size() - index * TILE_WIDTH)
            if width <= 0:
                break
            data = self.storage.objects.get(TileRef(-1, index, width).path)
            if data is not None:
                out += decode_bundle(data, width)
        return out

    def auth(self, who: Principal, **extra: str) -> dict[str, str]:
        return {**self.tokens.header(who, "us"), **extra}

    def signed(self, approval: dict[str, Any], verdict: str, who: Principal, /,
               **changes: Any) -> dict[str, Any]:
        """A grant/deny/revoke body signed by ``who``'s own TEST-ONLY key."""
        return signed_body(approval, verdict, who.id, self.gateway.origin, **changes)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)

    async def seed(c: httpx.AsyncClient) -> str:
        await h.gateway.announce_start(unreviewed=True, release=None)
        r = await c.post("/v1/subjects", headers=h.auth(LOCAL))
        subject = str(r.json()["subject"])
        r = await c.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                        headers=h.auth(LOCAL), json={"subject": subject, "values": {
                            "handle": "inproc", "email": SECRET_EMAIL,
                            "created_at": "2024-01-01T00:00:00Z", "government_id": SECRET_GOV}})
        assert r.status_code == 200, r.text
        return subject

    h.subject = h.run(seed)
    try:
        yield h
    finally:
        h.gateway.close()


def test_entries_bundle_path_is_the_entries_tile(harness: Harness) -> None:
    """Test plumbing: the harness reads the sequencer's bundles (gateway-start first)."""
    assert harness.entries() and parse_entry(harness.entries()[0]).type == "gateway-start"


def test_dead_log_disk_means_503_and_nothing_released(harness: Harness) -> None:
    """Promise 3: once the log's storage refuses writes, reads fail with 503 and
    release nothing, and writes are not carried out."""
    subject = harness.subject

    async def go(c: httpx.AsyncClient) -> None:
        ok = await c.get(f"/v1/users/{subject}", params={"purpose": "operations"},
                         headers=harness.auth(LOCAL))
        assert ok.status_code == 200 and SECRET_EMAIL in ok.text
        harness.storage.fail_writes = True
        for _ in range(3):
            r = await c.get(f"/v1/users/{subject}", params={"purpose": "operations"},
                            headers=harness.auth(LOCAL))
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "log_unwritable"
            assert SECRET_EMAIL not in r.text and SECRET_GOV not in r.text
            assert "Bordergate-Log-Index" not in r.headers
        other = (await c.post("/v1/subjects", headers=harness.auth(LOCAL))).json()["subject"]
        w = await c.put(f"/v1/users/{other}", params={"purpose": "operations"},
                        headers=harness.auth(LOCAL), json={"subject": other, "values": {
                            "handle": "x", "email": "new@example.test",
                            "created_at": "2024-01-01T00:00:00Z"}})
        assert w.status_code == 503
        with pytest.raises(Exception, match="record"):
            harness.gateway.vault.get("users", other)

    harness.run(go)


def test_released_fields_match_the_entry_at_the_answered_index(harness: Harness) -> None:
    """Promise 3: the index in the answer names a durable access entry that allowed
    exactly the released fields; it holds pseudonyms, never the ids or values."""
    subject = harness.subject

    async def go(c: httpx.AsyncClient) -> httpx.Response:
        return await c.get(f"/v1/users/{subject}", params={"purpose": "interoperability"},
                           headers=harness.auth(PARENT))

    r = harness.run(go)
    index = int(r.headers["Bordergate-Log-Index"])
    raw = harness.entries()[index]
    entry = parse_entry(raw)
    assert entry.type == "access" and entry.body["outcome"] == "partial"
    allowed = {d["field"] for d in entry.body["decisions"] if d["allowed"]}
    assert allowed == set(r.json()["fields"]) == {"handle", "country", "created_at"}
    assert entry.body["subject"] == harness.gateway.pseudonyms.subject(subject)
    for secret in (subject, SECRET_EMAIL, SECRET_GOV, "inproc"):
        assert secret.encode() not in raw


BAD_INPUT = [
    # (name, method, path, params, who, headers, body, status, code, reaches decision)
    ("unknown collection", "GET", "/v1/nope/{s}", {"purpose": "operations"}, LOCAL, {}, None,
     400, "unknown_collection", False),
    ("unknown field", "GET", "/v1/users/{s}", {"purpose": "operations", "fields": "nope"},
     LOCAL, {}, None, 400, "unknown_field", False),
    ("unknown purpose", "GET", "/v1/users/{s}", {"purpose": "spying"}, LOCAL, {}, None,
     400, "unknown_purpose", False),
    ("missing purpose", "GET", "/v1/users/{s}", {}, LOCAL, {}, None,
     400, "missing_purpose", False),
    ("malformed record id", "GET", "/v1/users/bad.id", {"purpose": "operations"}, LOCAL, {},
     None, 400, "malformed_record_id", False),
    ("unknown record", "GET", "/v1/users/us-nothing", {"purpose": "operations"}, LOCAL, {},
     None, 404, "record_not_found", False),
    ("malformed subject id", "DELETE", "/v1/subjects/us-NOT", {"purpose": "erasure"}, LOCAL,
     {}, None, 400, "malformed_subject_id", False),
    ("no token", "GET", "/v1/users/{s}", {"purpose": "operations"}, None, {}, None,
     401, "token_missing", False),
    ("garbage token", "GET", "/v1/users/{s}", {"purpose": "operations"}, None,
     {"Authorization": "Bearer abc.def.ghi"}, None, 401, "token_malformed", False),
    ("bad json", "PUT", "/v1/users/{s}", {"purpose": "operations"}, LOCAL,
     {"Content-Type": "application/json"}, b'{"subject": ', 400, "malformed_json", False),
    ("oversize body", "PUT", "/v1/users/{s}", {"purpose": "operations"}, LOCAL, {},
     b"x" * 5000, 413, "body_too_large", False),
    ("wrong type", "PUT", "/v1/users/{s}", {"purpose": "operations"}, LOCAL, {},
     b'{"subject": "{s}", "values": {"handle": 5, "email": "a", "created_at": "x"}}',
     400, "wrong_type", False),
    ("unknown field write", "PUT", "/v1/users/{s}", {"purpose": "operations"}, LOCAL, {},
     b'{"subject": "{s}", "values": {"nope": 1}}', 400, "unknown_field", False),
    ("denied read", "GET", "/v1/users/{s}", {"purpose": "operations"}, PARENT, {}, None,
     403, "policy_denied", True),
    ("denied write", "PUT", "/v1/users/{s}", {"purpose": "operations"}, PARENT, {},
     b'{"subject": "{s}", "values": {"handle": "h", "email": "e@x.test", '
     b'"created_at": "2024-01-01T00:00:00Z"}}', 403, "policy_denied", True),
    ("denied erasure", "DELETE", "/v1/subjects/{s}", {"purpose": "erasure"}, PARENT, {}, None,
     403, "policy_denied", True),
    ("denied export", "POST", "/v1/exports", {}, PARENT, {},
     b'{"collection": "users", "group_by": "email", "purpose": "analytics_aggregate", '
     b'"min_subjects": 1}', 403, "policy_denied", True),
    ("unknown approval", "GET", "/v1/users/{s}", {"purpose": "operations",
     "approval": "apr-" + "a" * 26}, PARENT, {}, None, 404, "approval_not_found", False),
    ("malformed approval", "GET", "/v1/approvals/xyz", {}, PARENT, {}, None,
     400, "malformed_approval_id", False),
    # found by schemathesis (ST201): an empty fields= was taken for all fields and read
    ("empty fields", "GET", "/v1/users/{s}", {"purpose": "operations", "fields": ""}, LOCAL,
     {}, None, 400, "unknown_field", False),
    # found by schemathesis (ST201): an empty approval was taken for none and read
    ("empty approval on a read", "GET", "/v1/users/{s}", {"purpose": "operations",
     "approval": ""}, LOCAL, {}, None, 400, "malformed_approval_id", False),
    ("unknown route", "GET", "/nothing/here", {}, LOCAL, {}, None, 404, "route_not_found",
     False),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_a_stable_4xx_and_releases_nothing(harness: Harness,
                                                          case: tuple[Any, ...]) -> None:
    """Failure behaviour: bad tokens, ids, collections, fields, purposes, JSON and
    oversize bodies get the right 4xx problem with a stable code and release nothing;
    the attempt is logged exactly when it reached a decision."""
    _, method, path, params, who, headers, body, status, code, decided = case
    s = harness.subject
    sent = {**(harness.auth(who) if who else {}), **headers}
    before = harness.size()

    async def go(c: httpx.AsyncClient) -> httpx.Response:
        content = body.replace(b"{s}", s.encode()) if body else None
        return await c.request(method, path.replace("{s}", s), params=params, headers=sent,
                               content=content)

    r = harness.run(go)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "code"} <= set(r.json())
    assert SECRET_EMAIL not in r.text and SECRET_GOV not in r.text
    assert harness.size() == before + (1 if decided else 0)


def test_a_timestamp_its_offset_moves_into_year_one_is_written_and_read_back(
        harness: Harness) -> None:
    """Behaviour (found by schemathesis, ST202): a schema-valid timestamp of year 0002
    with an eastern offset is year 0001 in UTC; the gateway checks the values, the
    vault checks their canonical form again, and that check refused it (400
    wrong_type).  Now the write is stored and read back in UTC, as the OpenAPI
    document's pattern admits."""
    subject = harness.subject

    async def go(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        w = await c.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                        headers=harness.auth(LOCAL), json={"subject": subject, "values": {
                            "handle": "inproc", "email": SECRET_EMAIL,
                            "created_at": "0002-01-01T16:02:21.196+21:34"}})
        r = await c.get(f"/v1/users/{subject}", params={"purpose": "operations",
                                                        "fields": "created_at"},
                        headers=harness.auth(LOCAL))
        return w, r

    written, read = harness.run(go)
    assert written.status_code == 200, written.text
    assert read.status_code == 200, read.text
    assert read.json()["fields"]["created_at"] == "0001-12-31T18:28:21.196000Z"


def test_oversize_streamed_body_is_refused_without_content_length(harness: Harness) -> None:
    """Size limits before parsing: a chunked body is counted as it streams (413)."""
    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1000

    async def go(c: httpx.AsyncClient) -> httpx.Response:
        return await c.put(f"/v1/users/{harness.subject}", params={"purpose": "operations"},
                           headers=harness.auth(LOCAL), content=chunks())

    r = harness.run(go)
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_expired_token_is_401_even_when_cached(harness: Harness) -> None:
    """Promise 2: an expired token is refused (token_expired), also after a cached use."""
    expired = harness.tokens.token(LOCAL, "us", now=time.time() - 7200, ttl=3600)
    short = harness.tokens.token(LOCAL, "us", now=time.time() - 3590 - 30, ttl=3600)

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        url = f"/v1/users/{harness.subject}"
        out = [await c.get(url, params={"purpose": "operations"},
                           headers={"Authorization": f"Bearer {expired}"})]
        out.append(await c.get(url, params={"purpose": "operations"},
                               headers={"Authorization": f"Bearer {short}"}))
        harness.gateway.clock = lambda: time.time() + 60
        out.append(await c.get(url, params={"purpose": "operations"},
                               headers={"Authorization": f"Bearer {short}"}))
        return out

    first, cached_ok, later = harness.run(go)
    assert (first.status_code, first.json()["code"]) == (401, "token_expired")
    assert cached_ok.status_code == 200
    assert (later.status_code, later.json()["code"]) == (401, "token_expired")


def test_approval_lifecycle_two_distinct_custodians_logged(harness: Harness) -> None:
    """Approvals: granted only by two distinct custodian approvers (never the requester,
    never twice by one), enters the policy context, revocable; every change logged."""
    s = harness.subject

    async def go(c: httpx.AsyncClient) -> None:
        read = {"purpose": "customer_support", "fields": "email"}
        r = await c.post("/v1/approvals", headers=harness.auth(PARENT), json={
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 600})
        assert r.status_code == 201, r.text
        asked = r.json()
        approval = asked["id"]
        with_approval = harness.auth(PARENT, **{"Bordergate-Approval": approval})
        assert (await c.get(f"/v1/users/{s}", params=read, headers=with_approval)
                ).status_code == 403
        r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(PARENT))
        assert r.status_code == 403  # the requester (and not a custodian)
        r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(LOCAL))
        assert r.status_code == 403  # not a custodian approver
        r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(APPROVER),
                         json=harness.signed(asked, "grant", APPROVER))
        assert r.status_code == 200 and r.json()["state"] == "pending"
        r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(APPROVER),
                         json=harness.signed(asked, "grant", APPROVER))
        assert (r.status_code, r.json()["code"]) == (409, "already_granted_by_you")
        pending = await c.get("/v1/approvals", params={"state": "pending"},
                              headers=harness.auth(APPROVER2))
        assert [a["id"] for a in pending.json()["approvals"]] == [approval]
        r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(APPROVER2),
                         json=harness.signed(asked, "grant", APPROVER2))
        assert r.status_code == 200 and r.json()["state"] == "granted" and r.json()["valid"]
        r = await c.get(f"/v1/users/{s}", params=read, headers=with_approval)
        assert r.status_code == 200 and r.json()["fields"]["email"] == SECRET_EMAIL
        r = await c.post(f"/v1/approvals/{approval}/revoke", headers=harness.auth(PARENT))
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        r = await c.get(f"/v1/users/{s}", params=read, headers=with_approval)
        assert r.status_code == 403 and SECRET_EMAIL not in r.text
        assert r.json()["withheld"][0]["reason"] == "approval_not_valid"

    harness.run(go)
    kinds = [parse_entry(e).type for e in harness.entries()]
    assert kinds.count("approval-request") == 1
    assert kinds.count("approval-grant") == 2 and kinds.count("approval-revoke") == 1
    from bordergate.gateway.approvals import rebuild_approvals

    rebuilt = rebuild_approvals((parse_entry(e) for e in harness.entries()),
                                origin=harness.gateway.origin,
                                approver_keys=harness.gateway.approver_keys)
    (record,) = rebuilt.values()
    stored = harness.gateway.approvals.get(record.id)
    assert record == stored


class CrashBeforeRevokeStored:
    """TEST-ONLY approvals table: the process "dies" after the revoke entry is logged
    and before the table records it (every other write goes through)."""

    def __init__(self, inner: ApprovalStore) -> None:
        self.inner = inner

    def get(self, approval_id: str) -> ApprovalRecord:
        return self.inner.get(approval_id)

    def put(self, record: ApprovalRecord) -> None:
        if record.state == "revoked":
            raise RuntimeError("simulated crash between the log entry and the table update")
        self.inner.put(record)

    def list(self, state: str | None = None, *, now: float, limit: int = 500
             ) -> list[ApprovalRecord]:
        return self.inner.list(state, now=now, limit=limit)

    def close(self) -> None:
        self.inner.close()


def test_revoke_logged_but_not_stored_is_not_usable_after_restart(harness: Harness) -> None:
    """Approvals (promise 3, log first): a crash between the approval-revoke entry and
    the approvals table update leaves the table saying "granted"; the restarted
    gateway reconciles the table with its log, so the revoked approval reads nothing."""
    s = harness.subject
    read = {"purpose": "customer_support", "fields": "email"}

    async def grant_then_crash_on_revoke(c: httpx.AsyncClient) -> str:
        r = await c.post("/v1/approvals", headers=harness.auth(PARENT), json={
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 600})
        asked = r.json()
        approval = str(asked["id"])
        for approver in (APPROVER, APPROVER2):
            r = await c.post(f"/v1/approvals/{approval}/grant", headers=harness.auth(approver),
                             json=harness.signed(asked, "grant", approver))
            assert r.status_code == 200
        with_approval = harness.auth(PARENT, **{"Bordergate-Approval": approval})
        r = await c.get(f"/v1/users/{s}", params=read, headers=with_approval)
        assert r.status_code == 200 and r.json()["fields"]["email"] == SECRET_EMAIL
        harness.gateway.approvals = CrashBeforeRevokeStored(harness.gateway.approvals)
        r = await c.post(f"/v1/approvals/{approval}/revoke", headers=harness.auth(PARENT))
        assert r.status_code == 500  # the "crash": logged, never stored
        return approval

    approval = harness.run(grant_then_crash_on_revoke)
    assert [parse_entry(e).type for e in harness.entries()][-1] == "approval-revoke"
    assert harness.gateway.approvals.get(approval).state == "granted"  # the stale table
    harness.gateway.close()

    harness.gateway = open_gateway(harness.deployment, "us", log_storage=harness.storage)
    harness.gateway.approver_keys = APPROVER_KEYS
    harness.app = create_app(harness.gateway)
    assert harness.gateway.approvals.get(approval).state == "revoked"

    async def read_with_revoked(c: httpx.AsyncClient) -> httpx.Response:
        return await c.get(f"/v1/users/{s}", params=read,
                           headers=harness.auth(PARENT, **{"Bordergate-Approval": approval}))

    r = harness.run(read_with_revoked)
    assert r.status_code == 403 and SECRET_EMAIL not in r.text
    assert r.json()["withheld"][0]["reason"] == "approval_not_valid"


def test_openapi_and_health_and_metrics(harness: Harness) -> None:
    """Operations: /openapi.json is OpenAPI 3.1, /healthz names the log, /readyz is
    ready; /metrics is on the admin listener (a custodian's token) and counts."""
    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        return [await c.get("/openapi.json"), await c.get("/healthz"), await c.get("/readyz"),
                await c.get("/metrics")]

    doc, health, ready, public_metrics = harness.run(go)
    assert doc.json()["openapi"] == "3.1.0" and "/v1/users/{record_id}" in doc.json()[
        "paths"]
    assert health.json()["origin"] == "us.bordergate.test/log"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) == {"log", "sequencer", "store", "keys"}
    assert public_metrics.status_code == 404

    async def admin() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_admin_app(harness.gateway, harness.app))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
            return await c.get("/metrics", headers=harness.auth(APPROVER))

    assert "bordergate_requests_total" in asyncio.run(admin()).text


def test_direct_read_path_answers_as_the_starlette_route(harness: Harness) -> None:
    """Promises 2 and 3: the gateway app's direct path for GET /v1/{collection}/{id}
    gives the same status, problem code, body and headers (up to the log index) as
    the same Starlette route, for allowed, partial, denied and malformed reads; both
    carry a receipt of the answer (issue 12, item 5) that verifies with the gateway's
    registered key (its entry, salt and signature differ per answer), whether the
    gateway signs it itself or has its receipt helper sign it."""
    from starlette.applications import Starlette

    from bordergate.gateway.app import GatewayApp
    from bordergate.gateway.signing import SigningHelper

    assert isinstance(harness.app, GatewayApp)
    plain = Starlette(routes=harness.app.routes, exception_handlers={
        k: v for k, v in harness.app.exception_handlers.items() if k is not Exception})
    plain.state.gateway = harness.gateway
    plain.state.metrics = harness.app.state.metrics
    s = harness.subject
    cases = [
        (f"/v1/users/{s}?fields=handle,email&purpose=operations", harness.auth(LOCAL)),
        (f"/v1/users/{s}?fields=handle,email,government_id&purpose=interoperability",
         harness.auth(PARENT)),
        (f"/v1/users/{s}?fields=email&purpose=operations", harness.auth(PARENT)),
        (f"/v1/users/{s}?fields=email&purpose=operations&purpose=nope", harness.auth(LOCAL)),
        (f"/v1/users/{s}?fields=nope&purpose=operations", harness.auth(LOCAL)),
        (f"/v1/users/{s}?fields=email", harness.auth(LOCAL)),
        (f"/v1/users/{s}?fields=email&purpose=operations", {"Authorization": "Bearer x"}),
        (f"/v1/users/{s}?fields=email&purpose=operations", {}),
        ("/v1/users/no-such-record?fields=email&purpose=operations", harness.auth(LOCAL)),
        ("/v1/users/eu-AAAAAAAAAAAAAAAAAAAAAAAAAA?purpose=operations", harness.auth(LOCAL)),
        ("/v1/users/bad%20id?purpose=operations", harness.auth(LOCAL)),
        (f"/v1/users/{s}?fields=email&purpose=operations&approval=bogus", harness.auth(LOCAL)),
    ]

    async def ask(app: Any) -> list[tuple[int, Any, dict[str, str]]]:
        transport = httpx.ASGITransport(app=app)
        out = []
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for path, headers in cases:
                r = await client.get(path, headers=headers)
                body = r.json()
                if isinstance(body.get("log"), dict):
                    body["log"].pop("index")
                if "receipt" in body:  # checked, then compared up to what varies
                    receipt = parse_receipt(body["receipt"])
                    verify_receipt_signature(receipt, [receipt_signer("us").verifier().key_string])
                    check_answer(receipt, base64.b64decode(body.pop("receipt_salt")), body,
                                 index=int(r.headers["bordergate-log-index"]))
                    body["receipt"] = {k: v for k, v in body["receipt"].items() if k not in (
                        "index", "leaf_hash", "digest", "signature", "time")}
                kept = {k: v for k, v in r.headers.items()
                        if k not in ("bordergate-log-index", "content-length")}
                out.append((r.status_code, body, kept))
        return out

    direct = asyncio.run(ask(harness.app))
    routed = asyncio.run(ask(plain))
    assert [c[0] for c in direct] == [200, 200, 403, 400, 400, 400, 401, 401, 404, 421, 400, 400]
    assert [("receipt" in c[1]) for c in direct] == [True, True] + [False] * 10
    assert direct == routed
    # as a serving gateway answers: the receipt signed by its helper process
    # (gateway.signing), on both paths, the same answers
    helper = SigningHelper(harness.gateway.receipts.signer)
    harness.gateway.receipt_helper = helper
    try:
        assert asyncio.run(ask(harness.app)) == direct
        assert asyncio.run(ask(plain)) == direct
        assert helper.pid is not None  # the helper made them
    finally:
        harness.gateway.receipt_helper = None
        helper.close()


def test_middleware_added_to_the_app_must_be_applied_by_the_direct_read_route(
        harness: Harness) -> None:
    """Promises 2 and 3: the direct read route bypasses Starlette's middleware stack, so a
    middleware added to the gateway app without being declared (and applied) by the
    direct route makes the app refuse to serve, on the direct route and every other;
    declaring it lets the app build."""
    from starlette.middleware.gzip import GZipMiddleware

    from bordergate.errors import ConfigError
    from bordergate.gateway.app import GatewayApp

    assert GatewayApp.DIRECT_ROUTE_MIDDLEWARE == ()
    assert [m.cls for m in harness.app.user_middleware] == []
    url = f"/v1/users/{harness.subject}?fields=handle&purpose=operations"

    for path in (url, "/healthz"):
        app = create_app(harness.gateway)
        app.add_middleware(GZipMiddleware)

        async def ask(client: httpx.AsyncClient, path: str = path) -> httpx.Response:
            return await client.get(path, headers=harness.auth(LOCAL))

        transport = httpx.ASGITransport(app=app)

        async def main(ask: Any = ask, transport: Any = transport) -> None:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                await ask(client)

        with pytest.raises(ConfigError) as info:
            asyncio.run(main())
        assert info.value.code == "direct_route_middleware_mismatch"

    class Declared(GatewayApp):
        DIRECT_ROUTE_MIDDLEWARE = (GZipMiddleware,)

    declared = Declared(harness.gateway, harness.app.state.metrics)
    declared.add_middleware(GZipMiddleware)
    assert declared.build_middleware_stack() is not None


FORGED_GRANTS = {  # what the approver's statement gets wrong -> the gateway's code
    "unsigned": "approval_signature_missing",
    "another origin": "approval_signature_invalid",
    "another approval id": "approval_signature_invalid",
    "another request digest": "approval_request_mismatch",
    "a deny replayed as a grant": "approval_signature_invalid",
    "another approver's key": "approver_key_unknown",
    "a key not in the roster": "approver_key_unknown",
}


def _forged(harness: Harness, asked: dict[str, Any], how: str) -> dict[str, Any] | None:
    other = "apr-" + "a" * 26
    bodies: dict[str, dict[str, Any] | None] = {
        "unsigned": None,
        "another origin": harness.signed(asked, "grant", APPROVER, origin="other.example/log"),
        "another approval id": harness.signed(asked, "grant", APPROVER, approval=other),
        "another request digest": harness.signed(asked, "grant", APPROVER,
                                                 request="sha256:" + "0" * 64),
        "a deny replayed as a grant": harness.signed(asked, "grant", APPROVER, verdict="deny"),
        "another approver's key": harness.signed(asked, "grant", APPROVER,
                                                 key=approver_key("dave")),
        "a key not in the roster": harness.signed(asked, "grant", APPROVER,
                                                  key=approver_key("mallory")),
    }
    return bodies[how]


def test_approver_signature_is_checked_before_logging(harness: Harness) -> None:
    """Issue 12 item 4 (approver-signed approvals): a grant must carry a statement
    signed by the approver's own roster key for this log, approval, request digest
    and verdict.  Each forgery is refused with a stable code, logged as
    approval-refused, and the approval stays pending; a properly signed grant works,
    and the requester withdraws their own request without signing anything."""

    async def go(c: httpx.AsyncClient) -> list[tuple[int, str]]:
        r = await c.post("/v1/approvals", headers=harness.auth(PARENT), json={
            "purpose": "customer_support", "reason": "ticket", "collections": ["users"],
            "classes": ["protected"], "max_duration_s": 600})
        asked = r.json()
        answers = []
        for how in FORGED_GRANTS:
            r = await c.post(f"/v1/approvals/{asked['id']}/grant",
                             headers=harness.auth(APPROVER), json=_forged(harness, asked, how))
            answers.append((r.status_code, r.json()["code"]))
        got = await c.get(f"/v1/approvals/{asked['id']}", headers=harness.auth(APPROVER))
        assert got.json()["state"] == "pending" and got.json()["approvers"] == []
        r = await c.post(f"/v1/approvals/{asked['id']}/grant", headers=harness.auth(APPROVER),
                         json=harness.signed(got.json(), "grant", APPROVER))
        assert r.status_code == 200 and r.json()["approvers"] == ["carol"]
        r = await c.post(f"/v1/approvals/{asked['id']}/revoke", headers=harness.auth(PARENT))
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        return answers

    answers = harness.run(go)
    assert answers == [(422, code) for code in FORGED_GRANTS.values()]
    entries = [parse_entry(e) for e in harness.entries()]
    refused = [e.body["code"] for e in entries if e.type == "approval-refused"]
    assert refused == list(FORGED_GRANTS.values())
    (grant,) = [e for e in entries if e.type == "approval-grant"]
    assert grant.body["statement"]["key"] == public_text("carol")
    (revoke,) = [e for e in entries if e.type == "approval-revoke"]
    assert "statement" not in revoke.body

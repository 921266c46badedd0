"""Issue 11 items 4 and 5 against a real ``bordergate gateway serve`` process.

Item 4 (approvals too broad): an approval narrowed to one subject reads no other
subject; the cap of distinct subjects of the bundle's ``approvals.toml`` refuses
the (N+1)th subject; a duration beyond the bundle's maximum is refused; the log
holds the scope as pseudonyms only (promise 7).  Item 5 (refused approval actions
leave no trace): a self-grant, a grant by a non-approver and a conflicting (409)
grant each leave an ``approval-refused`` entry, logged before the answer
(promise 3), with no personal data, and the audit report counts them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from bordergate.audit.auditor_config import load_auditor_config
from bordergate.audit.report import build_report
from bordergate.audit.run import run_audit
from bordergate.cli import app
from bordergate.client import GatewayClient
from bordergate.config import Deployment, load_config
from bordergate.entries import encode_entry, parse_entry
from bordergate.log_access import log_verifier
from bordergate.policy import default_bundle
from bordergate.policy.entities import Principal
from bordergate.tlog.client import DirectorySource, LogClient
from tests.approvers import AUTHORITY, approver_key, signed_body, with_roster
from tests.gateway.conftest import start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, write_deployment

HOME = "us"
APPROVERS = (
    Principal("approver-1", "oracle", "custodian", HOME, frozenset({"approver"})),
    Principal("approver-2", "oracle", "custodian", HOME, frozenset({"approver"})),
)
WRITER = Principal("local-us", "ttus", "local", HOME, frozenset({"engineer"}))
PARENT = Principal("parent-abroad", "bytedance", "parent", "cn", frozenset({"engineer"}))
NOT_APPROVER = Principal("local-engineer", "ttus", "local", HOME, frozenset({"engineer"}))
LIMITS = default_bundle().approval_limits


@dataclass
class UsGateway:
    """One real us gateway process of a fresh deployment."""

    root: Path
    deployment: Deployment
    url: str
    http: httpx.Client
    tokens: Tokens

    def subject(self, tag: str) -> str:
        """A new subject with a users record (its record id is the subject id)."""
        headers = self.tokens.header(WRITER, HOME)
        subject = str(self.http.post(f"{self.url}/v1/subjects", headers=headers)
                      .json()["subject"])
        r = self.http.put(f"{self.url}/v1/users/{subject}", params={"purpose": "operations"},
                          headers=headers, json={"subject": subject, "values": {
                              "handle": f"h-{tag}", "email": f"{tag}@example.test",
                              "created_at": "2024-05-01T12:00:00Z"}})
        assert r.status_code == 200, r.text
        return subject

    def request(self, who: Principal = PARENT, **extra: Any) -> httpx.Response:
        return self.http.post(f"{self.url}/v1/approvals", headers=self.tokens.header(who, HOME),
                              json={"purpose": "customer_support", "reason": "ticket",
                                    "collections": ["users"], "classes": ["protected"],
                                    **extra})

    def act(self, approval: str, verdict: str, who: Principal, /, **changes: Any
            ) -> httpx.Response:
        """POST a grant/deny/revoke by ``who``: an approver signs it with its own
        TEST-ONLY key (``changes``: forged statement members); others send no body."""
        headers = self.tokens.header(who, HOME)
        body = None
        if who in APPROVERS or changes:
            shown = self.http.get(f"{self.url}/v1/approvals/{approval}", headers=headers)
            assert shown.status_code == 200, shown.text
            body = signed_body(shown.json(), verdict, who.id, shown.json()["log_origin"],
                               **changes)
        return self.http.post(f"{self.url}/v1/approvals/{approval}/{verdict}",
                              headers=headers, json=body)

    def granted(self, **extra: Any) -> str:
        r = self.request(**extra)
        assert r.status_code == 201, r.text
        approval = str(r.json()["id"])
        for approver in APPROVERS:
            assert self.act(approval, "grant", approver).status_code == 200
        return approval

    def read_email(self, subject: str, approval: str) -> httpx.Response:
        headers = {**self.tokens.header(PARENT, HOME), "Bordergate-Approval": approval}
        return self.http.get(f"{self.url}/v1/users/{subject}", headers=headers,
                             params={"purpose": "customer_support", "fields": "email"})

    def entries(self) -> list[bytes]:
        """Every entry of the us log under its current checkpoint."""
        j = self.deployment.jurisdiction(HOME)
        client = LogClient(DirectorySource(Path(j.log.storage)),
                           log_verifier(j))
        signed = client.checkpoint()
        out: dict[int, bytes] = {}

        def collect(first: int, batch: list[bytes]) -> None:
            out.update({first + n: e for n, e in enumerate(batch)})

        client.rebuild(signed, on_entries=collect)
        return [out[i] for i in range(len(out))]

    def wait_logged(self, index: int) -> None:
        """Wait until a checkpoint covers entry ``index`` (the proof endpoint waits)."""
        r = self.http.get(f"{self.url}/v1/log/proof/{index}")
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsGateway]:
    root = tmp_path_factory.mktemp("approval-reach")
    path = write_deployment(root)
    with_roster([path], HOME, [*APPROVERS, WRITER, PARENT, NOT_APPROVER])
    deployment = load_config(path)
    process = start_process(path, HOME)
    url = deployment.jurisdiction(HOME).public_url
    try:
        wait_healthy(url, process)
        with httpx.Client(timeout=30.0) as http:
            yield UsGateway(root, deployment, url, http, Tokens())
    finally:
        stop_process(process)


def test_approval_scoped_to_one_subject_reads_no_other(gw: UsGateway) -> None:
    """Issue 11 item 4, promises 2, 3, 7: an approval narrowed to subject A releases A's
    protected fields and refuses B's (logged, ``approval_out_of_scope``); the log holds
    the scope and the ticket, but A only as a pseudonym."""
    a, b = gw.subject("scope-a"), gw.subject("scope-b")
    approval = gw.granted(subjects=[a], ticket="T-4711")
    ok = gw.read_email(a, approval)
    assert ok.status_code == 200 and ok.json()["fields"] == {"email": "scope-a@example.test"}
    refused = gw.read_email(b, approval)
    assert refused.status_code == 403, refused.text
    assert refused.json()["withheld"][0]["reason"] == "approval_out_of_scope"
    assert "scope-b@example.test" not in refused.text
    index = int(refused.json()["log"]["index"])
    gw.wait_logged(index)
    entries = gw.entries()
    denied = parse_entry(entries[index])
    assert denied.type == "access" and denied.body["outcome"] == "deny"
    request = next(parse_entry(e) for e in entries
                   if parse_entry(e).body.get("approval") == approval
                   and parse_entry(e).type == "approval-request")
    assert request.body["scope"]["ticket"] == "T-4711"
    assert request.body["scope"]["subjects"][0].startswith("subject:")
    assert request.body["max_subjects"] == LIMITS.max_subjects
    assert all(a.encode() not in e and b.encode() not in e for e in entries)


def test_subject_cap_refuses_the_next_subject(gw: UsGateway) -> None:
    """Issue 11 item 4: under one approval, protected fields of at most the bundle's
    ``max_subjects`` distinct subjects are released; the next subject is refused
    (logged), while a subject already read stays readable."""
    assert LIMITS.max_subjects is not None
    subjects = [gw.subject(f"cap-{i}") for i in range(LIMITS.max_subjects + 1)]
    approval = gw.granted()
    for subject in subjects[:-1]:
        r = gw.read_email(subject, approval)
        assert r.status_code == 200 and "email" in r.json()["fields"], r.text
    over = gw.read_email(subjects[-1], approval)
    assert over.status_code == 403, over.text
    assert over.json()["withheld"][0]["reason"] == "approval_out_of_scope"
    assert gw.read_email(subjects[0], approval).status_code == 200


def test_duration_beyond_the_bundle_maximum_is_refused(gw: UsGateway) -> None:
    """Issue 11 item 4: the longest approval is the bundle's ``max_duration_s`` (hours,
    not days); one second more is refused with ``invalid_duration``."""
    assert LIMITS.max_duration_s <= 12 * 3600
    too_long = gw.request(max_duration_s=LIMITS.max_duration_s + 1)
    assert too_long.status_code == 400 and too_long.json()["code"] == "invalid_duration"
    assert gw.request(max_duration_s=LIMITS.max_duration_s).status_code == 201


def _audit(gw: UsGateway) -> dict[str, Any]:
    j = gw.deployment.jurisdiction(HOME)
    config = gw.root / "auditor.toml"
    config.write_text(f"""[auditor]
name = "TEST auditor"
[logs.us]
location = "{Path(j.log.storage)}"
vkey = "{log_verifier(j).key_string}"
roster_authority = ["{AUTHORITY.verifier().key_string}"]
""")
    return build_report(run_audit(load_auditor_config(config), gw.root / "audit-state"))


def test_refused_approval_actions_are_logged_and_counted(gw: UsGateway) -> None:
    """Issue 11 item 5, promise 3: a self-grant, a grant by a non-approver and a grant of
    an approval no longer pending (409) are each refused *and* logged as an
    ``approval-refused`` entry (actor, action, code; no personal data) before the
    answer; the audit report counts them by action and code."""
    r = gw.request()
    assert r.status_code == 201
    approval = str(r.json()["id"])
    answers = [gw.act(approval, "grant", PARENT), gw.act(approval, "grant", NOT_APPROVER)]
    assert [a.status_code for a in answers] == [403, 403]
    for approver in APPROVERS:
        assert gw.act(approval, "grant", approver).status_code == 200
    conflict = gw.act(approval, "grant", APPROVERS[0])
    assert conflict.status_code == 409 and conflict.json()["code"] == "approval_not_pending"
    last = int(gw.act(approval, "revoke", PARENT).json()["log"]["index"])
    gw.wait_logged(last)
    refused = [parse_entry(e) for e in gw.entries()]
    refused = [e for e in refused if e.type == "approval-refused"
               and e.body["approval"] == approval]
    assert [(e.body["actor"]["id"], e.body["action"], e.body["code"]) for e in refused] == [
        (PARENT.id, "grant", "policy_denied"), (NOT_APPROVER.id, "grant", "policy_denied"),
        (APPROVERS[0].id, "grant", "approval_not_pending")]
    assert refused[0].body["requester"] is True and refused[1].body["requester"] is False
    assert {k for e in refused for k in e.body} <= {
        "v", "type", "time", "approval", "actor", "action", "code", "requester", "bundle",
        "gateway", "release", "roster"}
    report = _audit(gw)
    counts = {r["attempt"]: r["count"] for r in report["approval_refusals"]}
    assert counts == {"grant/policy_denied": 2, "grant/approval_not_pending": 1}
    row = next(a for a in report["approvals"] if a["id"] == approval)
    assert row["refused"] == 3
    kinds = {f["kind"] for f in report["findings"]}
    assert not kinds & {"approval_scope_exceeded", "approval_subject_cap_exceeded",
                        "approval_beyond_limits", "entry_malformed"}, report["findings"]


@pytest.mark.parametrize(("changes", "code"), [
    ({"origin": "eu.bordergate.test/log"}, "approval_signature_invalid"),
    ({"approval": "apr-" + "b" * 26}, "approval_signature_invalid"),
    ({"request": "sha256:" + "c" * 64}, "approval_request_mismatch"),
    ({"key": approver_key("mallory")}, "approver_key_unknown"),
    ({"key": approver_key("approver-2")}, "approver_key_unknown"),
], ids=["another origin", "another approval", "another request", "key not in roster",
        "another approver's key"])
def test_real_gateway_refuses_a_badly_signed_grant(gw: UsGateway, changes: dict[str, Any],
                                                    code: str) -> None:
    """Issue 12 item 4: a real gateway refuses a grant whose statement is signed for
    another origin, approval or request digest, or with a key the roster does not
    list for the approver (422, stable code), logs the refusal, and the approval
    stays pending."""
    approval = str(gw.request().json()["id"])
    r = gw.act(approval, "grant", APPROVERS[0], **changes)
    assert (r.status_code, r.json()["code"]) == (422, code)
    shown = gw.http.get(f"{gw.url}/v1/approvals/{approval}",
                        headers=gw.tokens.header(APPROVERS[0], HOME)).json()
    assert shown["state"] == "pending" and shown["approvers"] == []


def test_real_gateway_refuses_an_unsigned_grant(gw: UsGateway) -> None:
    """Issue 12 item 4: a custodian approver's grant without a statement is refused
    (``approval_signature_missing``) and logged as approval-refused."""
    approval = str(gw.request().json()["id"])
    r = gw.http.post(f"{gw.url}/v1/approvals/{approval}/grant",
                     headers=gw.tokens.header(APPROVERS[0], HOME))
    assert (r.status_code, r.json()["code"]) == (422, "approval_signature_missing")
    gw.wait_logged(int(gw.request().json()["log"]["index"]))  # logged after the refusal
    entries = [parse_entry(e) for e in gw.entries()]
    assert [e.body["code"] for e in entries if e.type == "approval-refused"
            and e.body["approval"] == approval] == ["approval_signature_missing"]


def test_signed_grants_through_the_cli_and_client_end_to_end(gw: UsGateway,
                                                             tmp_path: Path) -> None:
    """Issue 12 item 4: approvers grant on their own side, one with `bordergate
    approval grant --key`, one with GatewayClient.grant(key); the approval is valid
    and releases the protected field; the requester withdraws it with `approval
    revoke` and no key; the audit finds no signature problem."""
    subject = gw.subject("signed-e2e")
    approval = str(gw.request().json()["id"])
    key_file, token_file = tmp_path / "approver-1.pem", tmp_path / "approver-1.jwt"
    key_file.write_bytes(approver_key("approver-1").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    token_file.write_text(gw.tokens.token(APPROVERS[0], HOME))
    where = ["--gateway", gw.url, "-j", HOME]
    cli = CliRunner().invoke(app, ["approval", "grant", approval, *where, "--token-file",
                                   str(token_file), "--key", str(key_file)])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["approvers"] == ["approver-1"]
    with GatewayClient(gw.url, gw.tokens.token(APPROVERS[1], HOME),
                       gateways={HOME: gw.url}) as client:
        granted = client.grant(approval, approver_key("approver-2"))
    assert granted["state"] == "granted" and granted["valid"]
    assert gw.read_email(subject, approval).status_code == 200
    token_file.write_text(gw.tokens.token(PARENT, HOME))
    cli = CliRunner().invoke(app, ["approval", "revoke", approval, *where, "--token-file",
                                   str(token_file)])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["state"] == "revoked"
    last = gw.read_email(subject, approval)
    assert last.status_code == 403
    gw.wait_logged(int(last.json()["log"]["index"]))
    entries = [parse_entry(e) for e in gw.entries()]
    changes = [e for e in entries if e.body.get("approval") == approval
               and e.type in ("approval-grant", "approval-revoke")]
    assert [("statement" in e.body) for e in changes] == [True, True, False]
    findings = _audit(gw)["findings"]
    kinds = {f["kind"] for f in findings}
    assert not kinds & {"approval_unsigned", "approval_signature_invalid"}, findings


def test_grant_entries_forged_into_the_log_grant_nothing_after_a_restart(
        tmp_path: Path) -> None:
    """Promise 2 (found by a review): while the gateway is down, the log operator
    appends two grant entries for a pending approval with ``bordergate log append``
    and the log key, naming both roster approvers but signed by neither, the last
    saying ``granted``.  The restarted gateway replays the log into its approvals
    table, checking each change's signed statement against the roster as it checks
    a live grant: the approval stays pending and the protected field is withheld.
    Before, the replay copied the entries' ``state``, and the read released it."""
    path = write_deployment(tmp_path)
    with_roster([path], HOME, [*APPROVERS, WRITER, PARENT, NOT_APPROVER])
    deployment = load_config(path)
    j = deployment.jurisdiction(HOME)
    url = j.public_url
    tokens = Tokens()
    with httpx.Client(timeout=30.0) as http:
        process = start_process(path, HOME)
        try:
            wait_healthy(url, process)
            gw = UsGateway(tmp_path, deployment, url, http, tokens)
            subject = gw.subject("forged")
            asked = gw.request()
            assert asked.status_code == 201, asked.text
            approval = str(asked.json()["id"])
        finally:
            stop_process(process)
        forged = [encode_entry("approval-grant", time.time(), {
            "approval": approval, "state": state, "approver": approver.to_json(),
            "approvals": count, "bundle": default_bundle().digest, "gateway": HOME,
            "release": None}).decode() + "\n"
            for count, (approver, state) in enumerate(
                zip(APPROVERS, ("pending", "granted"), strict=True), 1)]
        appended = subprocess.run(
            [str(Path(sys.executable).with_name("bordergate")), "log", "append",
             str(j.log.storage), "--key-file", str(j.log.key_file)],
            check=False, input="".join(forged).encode(), capture_output=True, timeout=60)
        assert appended.returncode == 0, appended.stderr.decode()
        process = start_process(path, HOME)
        try:
            wait_healthy(url, process)
            shown = http.get(f"{url}/v1/approvals/{approval}",
                             headers=tokens.header(PARENT, HOME)).json()
            assert shown["state"] == "pending" and shown["approvers"] == [], shown
            read = gw.read_email(subject, approval)
            assert "forged@example.test" not in read.text
            assert read.status_code in (403, 503), read.text
        finally:
            stop_process(process)


def test_someone_elses_approval_spends_none_of_its_subject_cap(gw: UsGateway) -> None:
    """Promise 2 (found by a review): a local engineer who may read ``email`` anyway
    presents the parent engineer's granted approval on reads of as many subjects as
    its cap allows.  Only the reads the approval serves (its requester's, in its
    collections, for its purpose) claim a subject: the requester's own first read
    under it still releases.  Before, every presented read spent a slot, and the
    requester was refused ``approval_out_of_scope``."""
    assert LIMITS.max_subjects is not None
    subjects = [gw.subject(f"burn-{i}") for i in range(LIMITS.max_subjects + 1)]
    approval = gw.granted()
    headers = {**gw.tokens.header(NOT_APPROVER, HOME), "Bordergate-Approval": approval}
    for subject in subjects[:-1]:
        r = gw.http.get(f"{gw.url}/v1/users/{subject}", headers=headers,
                        params={"purpose": "customer_support", "fields": "email"})
        assert r.status_code == 200, r.text
    own = gw.read_email(subjects[-1], approval)
    assert own.status_code == 200, own.text
    assert own.json()["fields"]["email"] == f"burn-{LIMITS.max_subjects}@example.test"


def test_a_wrong_subject_hint_is_no_unlogged_ownership_oracle(gw: UsGateway) -> None:
    """Promise 3 (found by a review): the parent engineer, who may read no field of a
    record asked for, names a subject with ``?subject=``.  A wrong guess and the right
    one get the same logged denial (403 ``policy_denied``); before, a wrong guess got
    404 with nothing logged, so the owner of a record could be found by guessing."""
    owner, other = gw.subject("hint-owner"), gw.subject("hint-other")
    answers = []
    for guess in (other, owner):
        r = gw.http.get(f"{gw.url}/v1/users/{owner}", headers=gw.tokens.header(PARENT, HOME),
                        params={"purpose": "customer_support", "fields": "email",
                                "subject": guess})
        answers.append((r.status_code, r.json()["code"]))
        gw.wait_logged(int(r.json()["log"]["index"]))
    assert answers == [(403, "policy_denied")] * 2


def test_a_malformed_approval_entry_does_not_stop_the_gateway_starting(
        tmp_path: Path) -> None:
    """Promise 3 and operability (found by a review): a party that can append to the
    log (here the log operator with ``bordergate log append``; any append credential
    can, through the sequencer) appends bytes that name an approval type but are not
    an entry.  The gateway that restarts passes over them with a warning and serves;
    before, every later start of every worker failed (503 ``malformed_entry``), for
    ever, since the log is append-only."""
    path = write_deployment(tmp_path)
    with_roster([path], HOME, [*APPROVERS, WRITER, PARENT, NOT_APPROVER])
    j = load_config(path).jurisdiction(HOME)
    poison = b'{"appender":"us-release","type":"approval-grant"\n'
    process = start_process(path, HOME)  # creates the log
    try:
        wait_healthy(j.public_url, process)
    finally:
        stop_process(process)
    appended = subprocess.run(
        [str(Path(sys.executable).with_name("bordergate")), "log", "append",
         str(j.log.storage), "--key-file", str(j.log.key_file)],
        check=False, input=poison, capture_output=True, timeout=60)
    assert appended.returncode == 0, appended.stderr.decode()
    process = start_process(path, HOME)
    try:
        wait_healthy(j.public_url, process)
        with httpx.Client(timeout=30.0) as http:
            ready = http.get(f"{j.public_url}/readyz")
            assert ready.status_code == 200, ready.text
    finally:
        stop_process(process)

"""End-to-end: real us/eu/cn gateway processes on loopback give exactly the decisions
the default policy states, log every decision before answering, and never put a
value or a raw id in the log.

The expectation function is the policy tests' independent restatement of the
trusted-partner rules (tests/policy/test_engine.py), reused here unchanged.
Tests in this module share one deployment and run in file order; the last
one scans every log for every value and id the earlier ones used.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bordergate.client import GatewayClient
from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.errors import PolicyDenied
from bordergate.log_access import log_verifier
from bordergate.policy import DecisionInput, default_bundle, replay
from bordergate.policy.entities import Principal
from bordergate.subjects import SubjectId
from bordergate.tlog.client import DirectorySource, LogClient
from tests.approvers import signed_body, with_roster
from tests.gateway.conftest import RunningDeployment, start_process, stop_process, wait_healthy
from tests.gateway.deployment import CODES, Tokens, write_deployment
from tests.policy.test_engine import (
    APPROVAL_STATES,
    ORG_KINDS,
    PURPOSES,
    expected_access,
    principal,
)

HOME = "us"
FIELDS = {"public": "handle", "protected": "email", "restricted": "government_id"}
APPROVERS = (
    Principal("approver-1", "oracle", "custodian", HOME, frozenset({"approver"})),
    Principal("approver-2", "oracle", "custodian", HOME, frozenset({"approver"})),
)
SOMEONE_ELSE = Principal("someone-else", "bytedance", "parent", "cn", frozenset({"engineer"}))
LOCAL = Principal("local-home", "ttus", "local", HOME, frozenset({"engineer"}))


@dataclass
class Seeded:
    """Every raw value and id the tests sent, to scan the logs for."""

    strings: set[str] = field(default_factory=set)
    released: dict[tuple[str, int], set[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def seeded() -> Seeded:
    return Seeded()


def us_principals() -> list[Principal]:
    """Everyone these tests present to the us gateway, as its roster lists them."""
    listed = [principal(k, h) for k in ORG_KINDS for h in (True, False)]
    listed += [*APPROVERS, SOMEONE_ELSE, LOCAL,
               Principal(f"local-{HOME}", f"tt{HOME}", "local", HOME, frozenset({"engineer"})),
               Principal("local-eu", "tteu", "local", "eu", frozenset({"engineer"}))]
    return list({p.id: p for p in listed}.values())


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """us, eu and cn gateways as real processes, us with a signed roster whose
    approvers have their own TEST-ONLY keys (issue 12 items 3, 4: approvals are
    granted with approver-signed statements)."""
    root = tmp_path_factory.mktemp("e2e-deployment")
    path = write_deployment(root)
    with_roster([path], HOME, us_principals())
    deployment = load_config(path)
    processes = {code: start_process(path, code) for code in CODES}
    urls = {code: deployment.jurisdiction(code).public_url for code in CODES}
    try:
        for code in CODES:
            wait_healthy(urls[code], processes[code])
        yield RunningDeployment(path, deployment, urls, processes)
    finally:
        for process in processes.values():
            stop_process(process)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client


def write_user(http: httpx.Client, running: RunningDeployment, tokens: Tokens,
               seeded: Seeded, code: str, tag: str) -> tuple[str, dict[str, str]]:
    """Create a subject and its users record at ``code``; returns (id, values)."""
    url = running.urls[code]
    writer = Principal(f"local-{code}", f"tt{code}", "local", code, frozenset({"engineer"}))
    headers = tokens.header(writer, code)
    subject = http.post(f"{url}/v1/subjects", headers=headers).json()["subject"]
    values = {"handle": f"handle-{tag}", "email": f"mail-{tag}@example.test",
              "created_at": "2024-05-01T12:00:00Z", "government_id": f"GOV-{tag}-7731",
              "phone": f"+1555{abs(hash(tag)) % 10**7:07d}"}
    r = http.put(f"{url}/v1/users/{subject}", params={"purpose": "operations"},
                 headers=headers, json={"subject": subject, "values": values})
    assert r.status_code == 200, r.text
    seeded.strings |= {subject, *values.values()} - {"2024-05-01T12:00:00Z"}
    return subject, values


def request_approval(http: httpx.Client, url: str, tokens: Tokens, who: Principal,
                     purpose: str, collections: list[str], classes: list[str],
                     duration: int = 3600, subjects: list[str] | None = None) -> str:
    reason = next(iter(default_bundle().purpose(purpose).reason_codes))
    r = http.post(f"{url}/v1/approvals", headers=tokens.header(who, HOME), json={
        "purpose": purpose, "reason": reason, "collections": collections,
        "classes": classes, "max_duration_s": duration, "subjects": subjects or []})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def grant_twice(http: httpx.Client, url: str, tokens: Tokens, approval: str) -> None:
    for approver in APPROVERS:  # each signs the grant with its own key
        headers = tokens.header(approver, HOME)
        shown = http.get(f"{url}/v1/approvals/{approval}", headers=headers).json()
        r = http.post(f"{url}/v1/approvals/{approval}/grant", headers=headers,
                      json=signed_body(shown, "grant", approver.id, shown["log_origin"]))
        assert r.status_code == 200, r.text
    assert http.get(f"{url}/v1/approvals/{approval}",
                    headers=tokens.header(APPROVERS[0], HOME)).json()["state"] == "granted"


def make_approval(http: httpx.Client, url: str, tokens: Tokens, who: Principal,
                  purpose: str, state: str) -> str | None:
    """An approval in the policy tests' ``state``, really requested and granted."""
    covered = ["public", "protected"]
    if state == "none":
        return None
    if state == "covering":
        approval = request_approval(http, url, tokens, who, purpose, ["users"], covered)
    elif state == "wrong_collection":
        approval = request_approval(http, url, tokens, who, purpose, ["messages"], covered)
    elif state == "wrong_class":
        approval = request_approval(http, url, tokens, who, purpose, ["users"], ["public"])
    elif state == "wrong_purpose":
        other = "trust_and_safety" if purpose != "trust_and_safety" else "legal_request"
        approval = request_approval(http, url, tokens, who, other, ["users"], covered)
    elif state == "other_requester":
        approval = request_approval(http, url, tokens, SOMEONE_ELSE, purpose, ["users"], covered)
    elif state == "expired":
        approval = request_approval(http, url, tokens, who, purpose, ["users"], covered,
                                    duration=2)
    elif state == "out_of_scope":  # narrowed to another subject
        approval = request_approval(http, url, tokens, who, purpose, ["users"], covered,
                                    subjects=[str(SubjectId.mint(HOME))])
    else:
        assert state == "not_valid"
        approval = request_approval(http, url, tokens, who, purpose, ["users"], covered)
        grant_twice(http, url, tokens, approval)
        r = http.post(f"{url}/v1/approvals/{approval}/revoke", headers=tokens.header(who, HOME))
        assert r.status_code == 200 and r.json()["state"] == "revoked", r.text
        return approval
    grant_twice(http, url, tokens, approval)
    return approval


CASES = list(itertools.product(ORG_KINDS, (True, False), PURPOSES, APPROVAL_STATES))


def test_full_read_matrix(http: httpx.Client, running: RunningDeployment, tokens: Tokens,
                          seeded: Seeded) -> None:
    """Promise 2: org kind x location x class x purpose x approval state, through real
    gateways and real approvals, gives exactly the decisions the default policy states;
    released values are exactly the stored ones."""
    url = running.urls[HOME]
    subject, values = write_user(http, running, tokens, seeded, HOME, "matrix")
    approvals = {(k, h, p, s): make_approval(http, url, tokens, principal(k, h), p, s)
                 for k, h, p, s in CASES}
    time.sleep(2.2)  # let the "expired" approvals (2 s) expire
    wrong: list[Any] = []
    for kind, at_home, purpose, state in CASES:
        who = principal(kind, at_home)
        headers = tokens.header(who, HOME)
        approval = approvals[(kind, at_home, purpose, state)]
        if approval:
            headers["Bordergate-Approval"] = approval
        r = http.get(f"{url}/v1/users/{subject}", headers=headers,
                     params={"purpose": purpose, "fields": ",".join(FIELDS.values())})
        body = r.json()
        expected = {cls: expected_access("read", kind, at_home, cls, purpose, state)
                    for cls in FIELDS}
        got = {cls: name in body.get("fields", {}) for cls, name in FIELDS.items()}
        assert r.status_code == (200 if any(expected.values()) else 403), r.text
        if got != expected:
            wrong.append(((kind, at_home, purpose, state), got, expected))
        for cls, name in FIELDS.items():
            if got[cls]:
                assert body["fields"][name] == values[name]
            else:
                assert values[name] not in r.text
        index = int(r.headers["Bordergate-Log-Index"])
        seeded.released[(HOME, index)] = {n for n in body.get("fields", {})}
    assert wrong == []


def test_parent_abroad_never_gets_restricted_nor_unapproved_protected(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: Seeded) -> None:
    """Promise 2: a parent-company principal abroad gets no protected value without a
    valid approval and no restricted value at all, even with one."""
    url = running.urls[HOME]
    subject, values = write_user(http, running, tokens, seeded, HOME, "parent")
    parent = principal("parent", False)
    for purpose in PURPOSES:
        r = http.get(f"{url}/v1/users/{subject}", params={"purpose": purpose},
                     headers=tokens.header(parent, HOME))
        for name in ("email", "phone", "government_id"):
            assert values[name] not in r.text
    approval = make_approval(http, url, tokens, parent, "customer_support", "covering")
    headers = {**tokens.header(parent, HOME), "Bordergate-Approval": str(approval)}
    r = http.get(f"{url}/v1/users/{subject}", params={"purpose": "customer_support"},
                 headers=headers)
    assert r.status_code == 200
    assert r.json()["fields"]["email"] == values["email"]
    assert values["government_id"] not in r.text
    withheld = {w["field"]: w for w in r.json()["withheld"]}
    assert withheld["government_id"]["reason"] == "policy_denied"
    assert "restricted-never-to-parent" in withheld["government_id"]["policy_ids"]
    seeded.released[(HOME, int(r.headers["Bordergate-Log-Index"]))] = set(r.json()["fields"])


def test_foreign_subject_is_421_to_its_home_and_the_client_follows(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: Seeded) -> None:
    """Promise 2: a record homed elsewhere gets 421 naming the home gateway, never a
    proxied answer; the Python client follows it openly to the home gateway."""
    subject, values = write_user(http, running, tokens, seeded, "eu", "foreign")
    local_eu = Principal("local-eu", "tteu", "local", "eu", frozenset({"engineer"}))
    r = http.get(f"{running.urls['us']}/v1/users/{subject}", params={"purpose": "operations"},
                 headers=tokens.header(local_eu, "us"))
    assert r.status_code == 421
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "wrong_jurisdiction" and r.json()["home"] == "eu"
    assert r.json()["gateway"] == running.urls["eu"] == r.headers["Location"]
    assert values["email"] not in r.text
    r = http.delete(f"{running.urls['us']}/v1/subjects/{subject}",
                    params={"purpose": "erasure"}, headers=tokens.header(local_eu, "us"))
    assert r.status_code == 421 and r.json()["gateway"] == running.urls["eu"]
    tokens_by_home = {code: tokens.token(local_eu, code) for code in running.urls}
    with GatewayClient(running.urls["us"], tokens_by_home, gateways=running.urls) as client:
        result = client.read("users", subject, purpose="operations")
    assert result.gateway == running.urls["eu"]
    assert result.fields["email"] == values["email"]
    assert result.log_origin == "eu.bordergate.test/log"
    seeded.released[("eu", result.log_index)] = set(result.fields)


def test_client_round_trip_write_read_export_erase(
        running: RunningDeployment, tokens: Tokens, seeded: Seeded) -> None:
    """Promises 2, 3, 8: the client writes, reads (log index shown), exports a
    differentially private aggregate and erases; a denied read raises PolicyDenied with
    the log index."""
    url = running.urls["cn"]
    local = Principal("local-cn", "ttcn", "local", "cn", frozenset({"engineer"}))
    with GatewayClient(url, tokens.token(local, "cn"), gateways=running.urls) as client:
        subjects = []
        for i in range(4):
            subject = client.mint_subject()
            values = {"display_name": f"name-{i}-cn", "private_account": bool(i % 2),
                      "language": "zh", "gender": f"g-{i}-x"}
            client.write("profiles", subject, subject, values, purpose="operations")
            seeded.strings |= {subject, f"name-{i}-cn", f"g-{i}-x"}
            subjects.append(subject)
        result = client.read("profiles", subjects[0], purpose="operations")
        assert result.fields["display_name"] == "name-0-cn" and result.log_index > 0
        seeded.released[("cn", result.log_index)] = set(result.fields)
        export = client.export("profiles", "language")  # k: the bundle's k_min
        # issue 11 item 3: a noised release, groups kept by a noisy threshold >= k
        assert export["noise"]["epsilon_micro"] == 1_000_000
        assert export["noise"]["threshold"] >= 25 and isinstance(export["groups"], list)
        erased = client.erase(subjects[0])
        assert erased["records"] == 1 and erased["data_key_destroyed"]
    parent = Principal("parent-abroad", "bytedance", "parent", "us", frozenset())
    with GatewayClient(url, tokens.token(parent, "cn"), gateways=running.urls) as client:
        with pytest.raises(PolicyDenied) as denied:
            client.read("profiles", subjects[1], purpose="operations", fields=["gender"])
        assert denied.value.problem["log"]["index"] > 0  # type: ignore[attr-defined]


def test_every_log_entry_parses_replays_and_holds_no_value_or_raw_id(
        http: httpx.Client, running: RunningDeployment, seeded: Seeded) -> None:
    """Promises 3, 4, 7: every entry of every log parses; every released field has its
    access entry at the index the response named; every decision replays to the same
    outcome; no seeded value, subject id or record id appears in any log."""
    assert seeded.strings and seeded.released
    bundle = default_bundle()
    for code in running.urls:
        last = max([i for (c, i) in seeded.released if c == code], default=0)
        r = http.get(f"{running.urls[code]}/v1/log/proof/{last}")  # waits for a checkpoint
        assert r.status_code == 200, r.text
        j = running.deployment.jurisdiction(code)
        client = LogClient(DirectorySource(running.log_dir(code)),
                           log_verifier(j))
        signed = client.checkpoint()
        entries: dict[int, bytes] = {}

        def collect(first: int, batch: list[bytes], into: dict[int, bytes] = entries) -> None:
            into.update({first + n: e for n, e in enumerate(batch)})

        client.rebuild(signed, on_entries=collect)
        assert len(entries) == signed.checkpoint.size
        for index, raw in entries.items():
            entry = parse_entry(raw)
            text = raw.decode("utf-8")
            leaked = [s for s in seeded.strings if s in text]
            assert leaked == [], (code, index, leaked)
            for decision in entry.body.get("decisions", []):
                replayed = replay(bundle, DecisionInput.from_json(decision["input"]),
                                  recorded_digest=entry.body["bundle"])
                assert replayed.allowed == decision["allowed"]
        kinds = [parse_entry(entries[i]).type for i in range(len(entries))]
        assert next(k for k in kinds if k != "roster") == "gateway-start"
        for (c, index), released in seeded.released.items():
            if c != code:
                continue
            entry = parse_entry(entries[index])
            assert entry.type == "access"
            allowed = {d["field"] for d in entry.body["decisions"] if d["allowed"]}
            assert released <= allowed
            assert set(entry.body["released"]) <= released

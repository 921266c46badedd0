"""Issue 11, item 7, against real gateway processes: a purpose is bound to actions
and roles, so ``purpose=analytics_aggregate`` never returns a record's values.

The attack: local staff at home asked ``GET /v1/users/{id}?purpose=analytics_aggregate``
and received every field, restricted ones included, because the local-staff permit
never looked at the purpose.  Now the read is refused with ``purpose_not_allowed``,
the refusal is an ``access`` entry with outcome ``deny`` whose recorded decisions
replay to the same denial, and an export under the same purpose still works.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bordergate.entries import parse_entry
from bordergate.log_access import log_verifier
from bordergate.policy import DecisionInput, default_bundle, replay
from bordergate.policy.entities import Principal
from bordergate.policy.purpose_binding import PURPOSE_ACTION_POLICY, PURPOSE_ROLE_POLICY
from bordergate.tlog.client import DirectorySource, LogClient
from tests.gateway.conftest import RunningDeployment
from tests.gateway.deployment import Tokens

HOME = "us"
STAFF = Principal("purpose-staff", "ttus", "local", HOME, frozenset({"engineer"}))
INTERN = Principal("purpose-intern", "ttus", "local", HOME, frozenset({"intern"}))
SECRET_GOV = "GOV-PURPOSE-4471"
SECRET_MAIL = "purpose-secret@example.test"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(http: httpx.Client, running: RunningDeployment, tokens: Tokens) -> list[str]:
    """Three users at home, written by local staff under ``operations``; their ids."""
    url, headers = running.urls[HOME], tokens.header(STAFF, HOME)
    subjects = []
    for i in range(3):
        subject = http.post(f"{url}/v1/subjects", headers=headers).json()["subject"]
        values = {"handle": f"purpose-{i}", "email": SECRET_MAIL, "country": "PT",
                  "created_at": "2024-05-01T12:00:00Z", "government_id": SECRET_GOV}
        r = http.put(f"{url}/v1/users/{subject}", params={"purpose": "operations"},
                     headers=headers, json={"subject": subject, "values": values})
        assert r.status_code == 200, r.text
        subjects.append(subject)
    return subjects


def logged_entry(http: httpx.Client, running: RunningDeployment, index: int) -> bytes:
    """The entry at ``index`` of the home log, read back and verified from its files."""
    r = http.get(f"{running.urls[HOME]}/v1/log/proof/{index}")  # waits for a checkpoint
    assert r.status_code == 200, r.text
    j = running.deployment.jurisdiction(HOME)
    client = LogClient(DirectorySource(running.log_dir(HOME)),
                       log_verifier(j))
    found: dict[int, bytes] = {}

    def collect(first: int, batch: list[bytes]) -> None:
        found.update({first + n: e for n, e in enumerate(batch)})

    client.rebuild(client.checkpoint(), on_entries=collect)
    return found[index]


def test_local_staff_aggregate_purpose_read_is_refused_and_logged(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: list[str]) -> None:
    """Item 7: the attack (a record read under analytics_aggregate) gets 403
    purpose_not_allowed and no value; the refusal is logged as a deny whose
    recorded decisions name the purpose forbid and replay to the same denial."""
    r = http.get(f"{running.urls[HOME]}/v1/users/{seeded[0]}",
                 params={"purpose": "analytics_aggregate"}, headers=tokens.header(STAFF, HOME))
    assert r.status_code == 403, r.text
    problem = r.json()
    assert problem["code"] == "purpose_not_allowed"
    assert SECRET_GOV not in r.text and SECRET_MAIL not in r.text
    assert all(value is None for value in problem.get("fields", {}).values())
    assert {w["reason"] for w in problem["withheld"]} == {"policy_denied"}
    entry = parse_entry(logged_entry(http, running, problem["log"]["index"]))
    assert entry.type == "access" and entry.body["outcome"] == "deny"
    assert entry.body["purpose"] == "analytics_aggregate"
    decisions = entry.body["decisions"]
    assert decisions and not any(d["allowed"] for d in decisions)
    bundle = default_bundle()
    for decision in decisions:
        replayed = replay(bundle, DecisionInput.from_json(decision["input"]),
                          recorded_digest=entry.body["bundle"])
        assert not replayed.allowed and PURPOSE_ACTION_POLICY in replayed.policy_ids


def test_same_staff_reads_under_a_reading_purpose(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: list[str]) -> None:
    """Item 7: the refusal is the purpose's, not the principal's: operations reads."""
    r = http.get(f"{running.urls[HOME]}/v1/users/{seeded[0]}",
                 params={"purpose": "operations"}, headers=tokens.header(STAFF, HOME))
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["government_id"] == SECRET_GOV


def test_aggregate_purpose_write_is_refused(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: list[str]) -> None:
    """Item 7: a write under analytics_aggregate is refused (logged) and nothing changes."""
    url, headers = running.urls[HOME], tokens.header(STAFF, HOME)
    r = http.put(f"{url}/v1/users/{seeded[1]}", params={"purpose": "analytics_aggregate"},
                 headers=headers, json={"subject": seeded[1], "values": {
                     "handle": "changed", "email": SECRET_MAIL, "country": "XX",
                     "created_at": "2024-05-01T12:00:00Z"}})
    assert r.status_code == 403 and r.json()["code"] == "purpose_not_allowed", r.text
    assert r.json()["log"]["index"] > 0
    after = http.get(f"{url}/v1/users/{seeded[1]}", params={"purpose": "operations"},
                     headers=headers)
    assert after.json()["fields"]["country"] == "PT"


def test_export_under_aggregate_purpose_still_works(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: list[str]) -> None:
    """Item 7: the purpose keeps the action it is for: an export (noised, issue 11 item 3)."""
    r = http.post(f"{running.urls[HOME]}/v1/exports", headers=tokens.header(STAFF, HOME),
                  json={"collection": "users", "group_by": "country",
                        "purpose": "analytics_aggregate"})
    assert r.status_code == 200, r.text
    assert r.json()["k"] == 25 and r.json()["noise"]["threshold"] >= 25
    assert SECRET_GOV not in r.text and SECRET_MAIL not in r.text


def test_role_not_bound_to_the_purpose_is_refused(
        http: httpx.Client, running: RunningDeployment, tokens: Tokens,
        seeded: list[str]) -> None:
    """Item 7: local staff at home whose roles are not bound to operations are refused."""
    r = http.get(f"{running.urls[HOME]}/v1/users/{seeded[2]}",
                 params={"purpose": "operations"}, headers=tokens.header(INTERN, HOME))
    assert r.status_code == 403, r.text
    problem = r.json()
    assert problem["code"] == "purpose_not_allowed"
    assert all(PURPOSE_ROLE_POLICY in w["policy_ids"] for w in problem["withheld"])
    assert SECRET_GOV not in r.text

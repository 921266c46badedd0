"""The bulk hold of 28 CFR 202.205 (``require_approval``) against a real gateway
process: only the approval asked for the read lifts it (found by a review).

A covered person (the parent company's engineer, listed so in the identity
authority's roster) reads a field of the precise-geolocation category until the
threshold holds the next read (``bulk_approval_required``), then presents another
covered person's granted approval, asked for another collection and purpose.
Before, any valid approval lifted the hold, with no subject cap; now the read is
held, and its ``bulk-threshold`` entry says ``refused``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.log_access import log_verifier
from bordergate.policy.entities import Principal
from bordergate.residency.schema import demo_schema_path
from bordergate.roster import Roster, RosterPrincipal, sign_roster
from bordergate.roster_commands import publish_signed_roster
from bordergate.tlog.client import DirectorySource, LogClient
from tests.approvers import AUTHORITY, ISSUED, public_key, signed_body
from tests.gateway.conftest import start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, write_deployment

ALICE = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
BOB = Principal("bob", "bytedance", "parent", "cn", frozenset({"engineer"}))
ERIN = Principal("erin", "bytedance", "parent", "cn", frozenset({"support"}))
CAROL = Principal("carol", "oracle", "custodian", "us", frozenset({"approver"}))
DAVE = Principal("dave", "oracle", "custodian", "us", frozenset({"approver"}))


def _listed(p: Principal, covered: bool = False) -> RosterPrincipal:
    return RosterPrincipal(p.id, p.org, p.org_kind, p.location, p.roles,
                           approver_keys=(public_key(p.id),) if "approver" in p.roles else (),
                           covered_person=covered,
                           covered_person_basis="202.211(a)(2) TEST" if covered else None)


def _deployment(root: Path) -> Path:
    path = write_deployment(root)
    schema = demo_schema_path().read_text().replace(
        '[collections.users.fields.country]\nclass = "public"\n',
        '[collections.users.fields.country]\nclass = "public"\n'
        'dsp_category = "precise_geolocation"\n')
    assert "precise_geolocation" in schema
    (root / "schema.toml").write_text(schema)
    text = path.read_text().replace('profile = "development"\n',
                                    'profile = "development"\nschema = "schema.toml"\n', 1)
    path.write_text(text + '\n[dsp.bulk]\nthresholds = { precise_geolocation = 1 }\n'
                    'actions = { precise_geolocation = "require_approval" }\n'
                    f'\n[jurisdictions.us.roster]\n'
                    f'authority_keys = ["{AUTHORITY.verifier().key_string}"]\n')
    roster = Roster.build(jurisdiction="us", serial=1, issued=ISSUED, principals=[
        _listed(ALICE), _listed(BOB, True), _listed(ERIN, True), _listed(CAROL),
        _listed(DAVE)])
    publish_signed_roster(load_config(path).jurisdiction("us"), roster.document,
                          sign_roster(roster, AUTHORITY).entry_body())
    return path


def test_another_principals_approval_does_not_lift_the_bulk_hold(tmp_path: Path) -> None:
    """28 CFR 202.205 (issue 14's product policy ``require_approval``)."""
    path = _deployment(tmp_path)
    j = load_config(path).jurisdiction("us")
    url = j.public_url
    tokens = Tokens()

    def auth(p: Principal, **more: str) -> dict[str, str]:
        return {**tokens.header(p, "us"), **more}

    process = start_process(path, "us")
    try:
        wait_healthy(url, process)
        with httpx.Client(base_url=url, timeout=30.0) as c:
            subjects = []
            for n in range(3):
                subject = c.post("/v1/subjects", headers=auth(ALICE)).json()["subject"]
                w = c.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                          headers=auth(ALICE), json={"subject": subject, "values": {
                              "handle": f"h{n}", "email": f"e{n}@example.test",
                              "country": "US", "created_at": "2024-01-01T00:00:00Z"}})
                assert w.status_code == 200, w.text
                subjects.append(subject)
            read = {"purpose": "interoperability", "fields": "handle,country"}
            assert c.get(f"/v1/users/{subjects[0]}", params=read,
                         headers=auth(BOB)).status_code == 200
            held = c.get(f"/v1/users/{subjects[1]}", params=read, headers=auth(BOB))
            assert (held.status_code, held.json()["code"]) == (403, "bulk_approval_required")
            asked = c.post("/v1/approvals", headers=auth(ERIN), json={
                "purpose": "customer_support", "reason": "ticket",
                "collections": ["messages"], "classes": ["protected"],
                "max_duration_s": 600}).json()
            for approver in (CAROL, DAVE):
                g = c.post(f"/v1/approvals/{asked['id']}/grant", headers=auth(approver),
                           json=signed_body(asked, "grant", approver.id, j.log.origin))
                assert g.status_code == 200, g.text
            for subject in subjects[1:]:
                r = c.get(f"/v1/users/{subject}", params=read,
                          headers=auth(BOB, **{"Bordergate-Approval": asked["id"]}))
                assert (r.status_code, r.json()["code"]) == (403, "bulk_approval_required")
                assert "US" not in r.json().get("fields", {}).values()
            last = int(r.json()["log"]["index"])
            assert c.get(f"/v1/log/proof/{last}").status_code == 200  # published
    finally:
        stop_process(process)
    client = LogClient(DirectorySource(Path(j.log.storage)), log_verifier(j))
    signed = client.checkpoint()
    entries: list[bytes] = []
    client.rebuild(signed, on_entries=lambda first, batch: entries.extend(batch))
    marks = [parse_entry(e).body for e in entries if b'"bulk-threshold"' in e]
    assert [(m["outcome"], m["approval"]) for m in marks] == [
        ("refused", None), ("refused", asked["id"]), ("refused", asked["id"])]

"""The control table's statuses (issue 14, item 4): nothing is "evidenced" on the gateway's
own entries alone; contradicting findings make a row "not evidenced"; requirements the
product cannot speak to are "outside the product" and say what the organisation must show."""

from __future__ import annotations

from typing import Any

from bordergate.audit.controls import CONTROLS, STATUSES, Evidence, control_table, row_status

_BY_ID = {c.id: c for c in CONTROLS}


def _report(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"findings": [], "logs": [], "summary": {}, "flows": [],
                            "withheld": [], "principals": {}, "key_events": {},
                            "exports": {}, "approvals": [], "releases": [],
                            "gateway_starts": []}
    return {**base, **extra}


def test_gateway_only_evidence_is_never_evidenced() -> None:
    """A row whose only evidence is the gateway's own entries is at most partially
    evidenced, even for a row without gaps."""
    row = _BY_ID["dsp-1002-method"]
    assert not row.gaps
    gateway_only = [Evidence("1000 decisions", ("gateway",))]
    assert row_status(row, gateway_only, violating=False) == "partially evidenced"
    witnessed = [Evidence("log cosigned", ("log operator", "witness"))]
    assert row_status(row, witnessed, violating=False) == "evidenced"
    assert row_status(row, witnessed, violating=True) == "not evidenced"
    assert row_status(row, [], violating=False) == "not evidenced"


def test_key_events_reported_by_gateways_only_are_partial() -> None:
    """Encryption evidence today is the gateways' key events: partially evidenced."""
    rows = {r["id"]: r for r in control_table(_report(key_events={"key_created": 3}))}
    assert rows["cisa-data-encryption"]["status"] == "partially evidenced"
    assert rows["cisa-data-encryption"]["attested_by"] == ["gateway"]


def test_reviewer_signed_releases_with_no_gap_rows_and_findings() -> None:
    """Approvals signed by two approvers evidence nothing alone when the row has gaps; a
    violating finding of a row's kinds makes it not evidenced."""
    releases = [{"approved": True}]
    starts = [{"reviewed": True}]
    clean = {r["id"]: r for r in control_table(_report(releases=releases,
                                                       gateway_starts=starts))}
    assert clean["cisa-org-change"]["status"] == "partially evidenced"
    assert "reviewer" in clean["cisa-org-change"]["attested_by"]
    bad = _report(releases=releases, gateway_starts=starts,
                  findings=[{"kind": "unreviewed_start", "severity": "critical"}])
    rows = {r["id"]: r for r in control_table(bad)}
    assert rows["cisa-org-change"]["status"] == "not evidenced"
    assert rows["cisa-org-change"]["finding_kinds"] == ["unreviewed_start"]


def test_witnessed_log_and_auditor_replay_evidence_the_method() -> None:
    """A verified log cosigned by a witness, replayed by the auditor: the methodology row
    is evidenced, and names the log operator, the witness and the auditor."""
    log = {"jurisdiction": "us", "verified": True, "size": 10, "root": "ab" * 32,
           "witnesses": {"status": "witnessed", "required": 1, "max_checkpoint_age_s": 60,
                         "cosigned_by": [{"witness": "w1", "key_id": "k", "time": "t",
                                          "fresh": True}]}}
    rows = {r["id"]: r for r in control_table(_report(logs=[log],
                                                      summary={"entries": 10}))}
    assert rows["dsp-1002-method"]["status"] == "evidenced"
    assert rows["dsp-1002-method"]["attested_by"] == ["auditor", "log operator", "witness"]
    unwitnessed = {**log, "witnesses": {"status": "unwitnessed", "cosigned_by": []}}
    rows = {r["id"]: r for r in control_table(_report(logs=[unwitnessed]))}
    assert rows["dsp-1002-method"]["attested_by"] == ["log operator"]


def test_outside_rows_say_what_the_organisation_must_show() -> None:
    """Every status is one of the four; outside rows always carry what to show instead."""
    rows = control_table(_report())
    assert {r["status"] for r in rows} <= set(STATUSES)
    outside = [r for r in rows if r["status"] == "outside the product"]
    assert {r["id"] for r in outside} >= {"cisa-sys-mfa", "cisa-org-assets",
                                          "dsp-1002-independence", "dsp-1104-rejected"}
    assert all(r["organisation_must_show"] for r in rows)
    assert all(r["evidence"] == [] for r in outside)


def test_reviewed_countries_of_concern_evidence_the_covered_person_row() -> None:
    """Item 2: the countries of concern an approved release's slice names are evidence
    signed by the reviewers; a rejected release's list is not."""
    releases = [{"approved": True, "countries_of_concern": ["CN", "RU"]},
                {"approved": False, "countries_of_concern": ["RU"]}]
    rows = {r["id"]: r for r in control_table(_report(releases=releases))}
    row = rows["dsp-covered-persons"]
    assert row["attested_by"] == ["reviewer"]
    assert [e["text"] for e in row["evidence"]] == [
        "Countries of concern in the approved releases' deployment slices: CN, RU "
        "(a reviewed setting, 28 CFR 202.601)."]
    assert row["status"] == "partially evidenced"  # the facts behind the roster are not logged

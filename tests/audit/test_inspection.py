"""The entry-by-entry inspection: each violation kind, injected on purpose, is found
at the right index, and honest entries give no finding (docs/design.md, the
auditor; promises 4, 6, 7).

Every test runs against both inspectors, the plain reference one and the
accelerated one (the ``inspector_path`` fixture), as CPython runs one suite against
its pure-Python and C modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bordergate.approval_statement import MappingApproverKeys
from bordergate.audit.findings import FINDING_KINDS
from bordergate.audit.inspection import InspectionState, ReferenceInspector, open_inspector
from bordergate.entries import encode_entry
from bordergate.releases.review import ReviewPolicy
from tests.approvers import keys_for
from tests.audit.scenario import (
    APPROVER1,
    APPROVER2,
    LOCAL,
    PARENT,
    T0,
    EntryFactory,
    approval_view,
    apr,
    permissive_bundle,
)

_PATH = {"reference": False}
APPROVER_KEYS = keys_for(["carol", "dave"])  # the roster's approver keys (TEST-ONLY)


@pytest.fixture(autouse=True, params=[False, True], ids=["accelerated", "reference"])
def inspector_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """Runs the test with the accelerated inspector, then with the reference one."""
    _PATH["reference"] = request.param
    yield
    _PATH["reference"] = False


def new_inspector(factory: EntryFactory, **settings: Any) -> ReferenceInspector:
    """An inspector of the path under test for a log of jurisdiction us."""
    settings.setdefault("approver_keys", APPROVER_KEYS)
    return open_inspector(reference=_PATH["reference"], jurisdiction="us",
                          origin="us.test/log", bundles=factory.lookup,
                          reviewers=ReviewPolicy((), 1), **settings)


def inspect(entries: list[bytes], factory: EntryFactory | None = None, *,
            approvers: tuple[str, ...] = (), starts: bool = False) -> ReferenceInspector:
    """Inspect ``entries``.  Hand-built logs have no ``gateway-start`` entry: their
    ``decision_without_start`` findings are left out unless ``starts`` (that rule has
    its own tests)."""
    factory = factory or EntryFactory()
    inspector = new_inspector(factory, approvers=approvers, tolerance=5)
    inspector.feed_all(0, entries)
    inspector.finish()
    if not starts:
        inspector.state.findings[:] = [f for f in inspector.findings
                                       if f.kind != "decision_without_start"]
    return inspector


def kinds(inspector: ReferenceInspector) -> list[tuple[str, int | None]]:
    return [(f.kind, f.index) for f in inspector.findings]


def approved(f: EntryFactory, approval: str, t: float = T0) -> list[bytes]:
    return [f.approval_request(approval, PARENT, t=t),
            f.approval_change("approval-grant", approval, APPROVER1, t=t + 1),
            f.approval_change("approval-grant", approval, APPROVER2, t=t + 2, state="granted")]


def honest_log(f: EntryFactory) -> list[bytes]:
    a = apr(1)
    return [
        f.access(LOCAL, ["handle", "email", "government_id"]),
        f.access(PARENT, ["handle", "created_at"], purpose="interoperability", t=T0 + 1),
        *approved(f, a, T0 + 2),
        f.access(PARENT, ["email"], purpose="customer_support", t=T0 + 10,
                 approval=approval_view(a, PARENT)),
        f.export(PARENT, "country", 3, t=T0 + 11),
        f.erase(LOCAL, t=T0 + 12),
        f.access(LOCAL, ["email"], t=T0 + 12),  # identical decisions: replayed once
        encode_entry("key-event", T0 + 13, {"kind": "data_key_destroyed", "kek_version": 1,
                                            "subject": "subject:" + "ef" * 32}),
    ]


def test_honest_entries_give_no_finding() -> None:
    """Promise 4: honest decisions replay to themselves; a clean log has zero findings."""
    inspector = inspect(honest_log(EntryFactory()))
    assert inspector.findings == []
    tally = inspector.tally
    assert tally.replay["decisions"] == 9 and tally.replay["mismatches"] == 0
    assert tally.flows["cn>us>protected>customer_support"] == 1
    assert inspector.state.approvals[apr(1)].state == "granted"
    assert inspector.state.approvals[apr(1)].uses == 1


def test_state_round_trips_and_continues() -> None:
    """Audit: the inspection continues from its saved state (incremental runs)."""
    f = EntryFactory()
    log = [*honest_log(f), f.access(PARENT, ["email", "government_id"],
                                    purpose="customer_support", t=T0 + 20)]
    first = inspect(log[:5], f)
    saved = json.loads(json.dumps(first.finish().to_json()))
    second = new_inspector(f, state=InspectionState.from_json(saved))
    second.feed_all(5, log[5:])
    second.finish()
    assert kinds(second) == [("covered_person_denied", len(log) - 1)]
    assert second.state.approvals[apr(1)].uses == 1


def test_forged_allow_is_a_decision_mismatch() -> None:
    """Promise 4: a decision recorded as allowed that the bundle denies is found."""
    f = EntryFactory()
    log = [f.access(LOCAL, ["handle"]),
           f.access(PARENT, ["government_id"], forged=[True], t=T0 + 1)]
    # the data-flow rules judge the release whatever the replay outcome
    assert kinds(inspect(log, f)) == [("decision_mismatch", 1),
                                      ("restricted_released_abroad", 1)]


def test_recorded_input_must_describe_the_entry() -> None:
    """Promise 4: a decision input naming another principal than its entry is found."""
    f = EntryFactory()
    honest = json.loads(f.access(PARENT, ["government_id"], t=T0))
    honest["principal"] = LOCAL.to_json()  # the entry claims a local principal
    body = {k: v for k, v in honest.items() if k not in ("v", "type", "time")}
    log = [f.access(LOCAL, ["handle"]), encode_entry("access", T0, body)]
    assert kinds(inspect(log, f)) == [("decision_input_inconsistent", 1)]


def test_released_more_than_allowed() -> None:
    """Promise 2: an entry releasing a field its decisions denied is found."""
    f = EntryFactory()
    abroad = LOCAL.__class__("erin", "ttus", "local", "eu", frozenset())
    log = [f.access(abroad, ["handle", "email"], purpose="interoperability",
                    released=["email", "handle"])]
    # the denied protected field it released went abroad with no approval too
    assert kinds(inspect(log, f)) == [("released_without_permit", 0),
                                      ("protected_released_abroad_without_approval", 0)]


@pytest.mark.parametrize(("principal", "field", "kind"), [
    (PARENT, "government_id", "restricted_released_abroad"),
    (PARENT, "email", "protected_released_abroad_without_approval"),
], ids=["restricted-abroad", "protected-abroad"])
def test_data_flow_rules_hold_even_under_a_permissive_policy(principal: object, field: str,
                                                             kind: str) -> None:
    """Promises 1, 2: whatever the policy says, the auditor's own rules find restricted
    data released abroad and protected data released abroad without an approval."""
    f = EntryFactory(permissive_bundle())
    log = [f.access(LOCAL, ["handle"]), f.access(principal, [field], t=T0 + 1)]  # type: ignore[arg-type]
    assert kinds(inspect(log, f)) == [(kind, 1)]


def test_restricted_to_parent_at_home() -> None:
    """docs/design.md, data model: restricted data is never readable by the parent organisation."""
    f = EntryFactory(permissive_bundle())
    at_home = PARENT.__class__("pat", "bytedance", "parent", "us", frozenset())
    assert kinds(inspect([f.access(at_home, ["government_id"])], f)) == [
        ("restricted_released_to_parent", 0)]


def test_exports_respect_k_and_never_restricted() -> None:
    """docs/design.md, data model: exports only over at least the bundle's k subjects,
    never restricted (the permissive bundle's exports.toml says k_min = 25)."""
    f = EntryFactory(permissive_bundle())
    log = [f.export(LOCAL, "country", 30), f.export(LOCAL, "country", 2, t=T0 + 1),
           f.export(LOCAL, "government_id", 30, t=T0 + 2)]
    assert kinds(inspect(log, f)) == [("export_below_k", 1), ("restricted_exported", 2)]


def test_export_k_min_recorded_lower_than_the_bundles() -> None:
    """Issue 11 item 3: an export allowed because the gateway recorded a smaller k_min
    than its bundle's is found: the auditor reads k from the bundle the entry names."""
    f = EntryFactory()
    log = [f.export(LOCAL, "country", 3, k_min=2)]
    assert kinds(inspect(log, f)) == [("export_below_k", 0)]


def test_gate_and_auditor_agree_on_k_for_a_public_field() -> None:
    """Issue 11 item 3: a group_by on a public field below the bundle's k is denied by
    the gate (nothing released, no finding), and at k it passes both."""
    f = EntryFactory()
    below, at_k = f.export(LOCAL, "country", 1), f.export(LOCAL, "country", 25, t=T0 + 1)
    assert json.loads(below)["outcome"] == "deny"
    assert json.loads(at_k)["outcome"] == "allow"
    assert kinds(inspect([below, at_k], f)) == []


def test_export_without_noise_record_is_not_private() -> None:
    """Issue 11 item 3: an allowed export whose entry records no noise and budget is a
    critical finding (its numbers may be exact)."""
    f = EntryFactory()
    assert kinds(inspect([f.export(LOCAL, "country", 30, private=False)], f)) == [
        ("export_not_private", 0)]


def test_budgets_are_recomputed_from_the_log() -> None:
    """Issue 11 item 3: the auditor adds each export's epsilon per principal, dataset and
    period from the entries alone; past the recorded limit it reports overspending, and a
    new period starts from zero.  Each entry records only its own epsilon here, so the
    recorded spent never shows the overspending: only the recomputation does."""
    f = EntryFactory()
    eps, limits = 1_000_000, (2_000_000, 50_000_000)
    day = 86_400
    log = [f.export(LOCAL, "country", 30, t=T0 + i, epsilon=eps, limits=limits)
           for i in range(3)]
    log.append(f.export(LOCAL, "country", 30, t=T0 + day, epsilon=eps, limits=limits))
    inspector = inspect(log, f)
    assert kinds(inspector) == [("privacy_budget_overspent", 2)]
    assert inspector.findings[0].detail["spent_micro"] == 3_000_000
    assert inspector.findings[0].detail["scope"] == "principal"


def test_budget_state_continues_across_runs() -> None:
    """Issue 11 item 3: spent budgets are part of the saved state, so an incremental
    audit run still sees the overspending of a period split between two runs."""
    f = EntryFactory()
    log = [f.export(LOCAL, "country", 30, t=T0 + i, limits=(1_000_000, 50_000_000))
           for i in range(2)]
    first = inspect(log[:1], f)
    saved = json.loads(json.dumps(first.finish().to_json()))
    second = new_inspector(f, state=InspectionState.from_json(saved))
    second.feed_all(1, log[1:])
    second.finish()
    assert kinds(second) == [("privacy_budget_overspent", 1)]


def test_denied_covered_person_is_a_denied_attempt_not_a_violation() -> None:
    """Denied attempts by the parent organisation abroad are reported as denials."""
    f = EntryFactory()
    log = [f.access(PARENT, ["email", "government_id"], purpose="customer_support")]
    inspector = inspect(log, f)
    assert kinds(inspector) == [("covered_person_denied", 0)]
    assert inspector.findings[0].category == "denied_attempt"
    assert inspector.tally.denials["restricted-never-leaves + restricted-never-to-parent"] == 1


def use(f: EntryFactory, approval: str, t: float, **kw: object) -> bytes:
    return f.access(PARENT, ["email"], purpose="customer_support", t=t,
                    approval=approval_view(approval, PARENT, **kw))  # type: ignore[arg-type]


def test_single_approver_grant_claim_and_use() -> None:
    """Approvals need two distinct custodian approvers: a grant declaring 'granted' after
    one, and a read under it, are both found as approval_single_approver."""
    f = EntryFactory()
    a = apr(2)
    log = [f.approval_request(a, PARENT),
           f.approval_change("approval-grant", a, APPROVER1, t=T0 + 1, state="granted"),
           use(f, a, T0 + 2)]
    assert kinds(inspect(log, f)) == [("approval_single_approver", 1),
                                      ("approval_single_approver", 2)]


def test_self_grant_and_non_approver() -> None:
    """Approvals are never granted by the requester or by a non-approver."""
    f = EntryFactory()
    a = apr(3)
    log = [f.approval_request(a, PARENT),
           f.approval_change("approval-grant", a, PARENT, t=T0 + 1),
           f.approval_change("approval-grant", a, LOCAL, t=T0 + 2, state="granted"),
           use(f, a, T0 + 3)]
    assert kinds(inspect(log, f)) == [("approval_self_granted", 1),
                                      ("approval_by_non_approver", 2),
                                      ("approval_self_granted", 3)]


def test_configured_approvers_only() -> None:
    """With an approver list, a custodian approver outside it does not count."""
    f = EntryFactory()
    a = apr(4)
    log = [*approved(f, a), use(f, a, T0 + 10)]
    found = kinds(inspect(log, f, approvers=("carol",)))
    assert found == [("approval_by_non_approver", 2), ("approval_single_approver", 3)]


def test_expired_revoked_unknown_and_out_of_scope_approvals() -> None:
    """An approval used after expiry, after revocation, never requested, or beyond its
    scope is found at the entry that used it."""
    f = EntryFactory()
    a, b, c, d = apr(5), apr(6), apr(7), apr(8)
    log = [*approved(f, a), *approved(f, b),
           f.approval_change("approval-revoke", b, PARENT, t=T0 + 3, state="revoked"),
           use(f, b, T0 + 10),                                                  # 7 revoked
           use(f, c, T0 + 11),                                                  # 8 unknown
           *approved(f, d, T0 + 12),
           f.access(PARENT, ["email"], purpose="trust_and_safety", t=T0 + 20,
                    approval=approval_view(d, PARENT, purpose="trust_and_safety")),  # 12
           use(f, a, T0 + 4000, expires=T0 + 5000)]                             # 13 expired
    assert kinds(inspect(log, f)) == [("approval_revoked", 7), ("approval_unknown", 8),
                                      ("approval_scope_exceeded", 12), ("approval_expired", 13)]


def test_access_decided_under_a_stale_approval_version() -> None:
    """Issue 11 item 2: an access entry's approval_version must be the index of the
    approval's last change before it; an older one (decided before a grant or
    revocation that was sequenced first) or a malformed one is approval_state_stale,
    an entry without the member (an older gateway) is not checked."""
    f = EntryFactory()
    a = apr(9)

    def read(version: object, t: float) -> bytes:
        return f.access(PARENT, ["email"], purpose="customer_support", t=t,
                        approval=approval_view(a, PARENT),
                        extra={"approval_version": version})

    log = [*approved(f, a),                                                    # 0, 1, 2
           read(2, T0 + 3), read(1, T0 + 4),                                    # 3, 4 stale
           f.access(PARENT, ["email"], purpose="customer_support", t=T0 + 5,
                    approval=approval_view(a, PARENT)),                        # 5 unrecorded
           read("2", T0 + 6)]                                                   # 6 malformed
    assert kinds(inspect(log, f)) == [("approval_state_stale", 4), ("approval_state_stale", 6)]


def test_unknown_bundle_is_flagged_for_every_entry() -> None:
    """Promise 4 (issue 12 item 6): decisions naming a bundle nobody published cannot be
    replayed; every entry naming it is its own finding (not one per digest)."""
    f = EntryFactory()
    other = "sha256:" + "0" * 64
    log = [f.access(LOCAL, ["handle"], bundle=other),
           f.access(LOCAL, ["email"], bundle=other, t=T0 + 1),
           f.access(LOCAL, ["handle"], bundle=other, t=T0 + 2)]
    inspector = inspect(log, f)
    assert kinds(inspector) == [("bundle_unavailable", 0), ("bundle_unavailable", 1),
                                ("bundle_unavailable", 2)]
    assert inspector.tally.replay["unreplayed"] == 3


def test_data_flow_rules_apply_when_replay_fails() -> None:
    """Promises 1, 2 (issue 12 item 6): an entry whose bundle is unavailable still has its
    released list judged: restricted data abroad, a covered person's denial and an export
    below the recorded k are found, and the flows (so the report's count of restricted
    fields across a border) include it."""
    f = EntryFactory()
    other = "sha256:" + "0" * 64
    log = [f.access(PARENT, ["government_id"], forged=[True], bundle=other),
           f.access(PARENT, ["email", "handle"], purpose="customer_support", t=T0 + 1,
                    bundle=other),
           f.export(LOCAL, "country", 3, t=T0 + 2, forged=[True]).replace(
               f.bundle.digest.encode(), other.encode())]
    inspector = inspect(log, f)
    found = kinds(inspector)
    assert ("restricted_released_abroad", 0) in found
    assert ("covered_person_denied", 1) in found
    assert ("export_below_k", 2) in found
    assert [k for k, _ in found].count("bundle_unavailable") == 3
    assert inspector.tally.flows["cn>us>restricted>operations"] == 1


def test_unknown_purpose_is_unreplayable() -> None:
    """Promise 4: a decision with a purpose the bundle does not declare is found."""
    f = EntryFactory(permissive_bundle())
    good = json.loads(f.access(LOCAL, ["handle"]))
    good["purpose"] = "gossip"
    good["decisions"][0]["input"]["context"]["purpose"] = "gossip"
    body = {k: v for k, v in good.items() if k not in ("v", "type", "time")}
    assert kinds(inspect([encode_entry("access", T0, body)], f)) == [
        ("decision_unreplayable", 0)]


def test_release_named_by_a_decision_must_be_approved() -> None:
    """Promise 6: a decision naming a release the log never approved is found (once)."""
    f = EntryFactory()
    rid = "sha256:" + "1" * 64
    log = [f.access(LOCAL, ["handle"], release=rid),
           f.access(LOCAL, ["handle"], release=rid, t=T0 + 1)]
    assert kinds(inspect(log, f)) == [("decision_release_mismatch", 0)]


def test_unreviewed_start() -> None:
    """Promise 6: a gateway started --unreviewed is flagged by the audit."""
    from bordergate.tlog.note import Signer
    receipt_key = Signer.from_seed("us.gateway-receipts", bytes([7] * 32)).verifier()  # TEST-ONLY
    start = encode_entry("gateway-start", T0, {"gateway": "us", "release": None,
                                               "reviewed": False, "unreviewed": True,
                                               "receipt_key": receipt_key.key_string})
    assert kinds(inspect([start])) == [("unreviewed_start", 0)]
    # issue 12.5: a format-2 start that registers no receipt key is a finding too
    bare = encode_entry("gateway-start", T0, {"gateway": "us", "release": None,
                                              "reviewed": False, "unreviewed": True})
    assert kinds(inspect([bare])) == [("unreviewed_start", 0), ("receipt_key_missing", 0)]


def test_malformed_and_out_of_order_entries() -> None:
    """Entries are well-formed and time-ordered within the tolerance."""
    f = EntryFactory()
    log = [f.access(LOCAL, ["handle"], t=T0 + 100), b'{"not": "an entry"}',
           f.access(LOCAL, ["handle"], t=T0 + 50), b"\xff\xfe",
           f.access(LOCAL, ["handle"], t=T0 + 97)]
    assert kinds(inspect(log, f)) == [("entry_malformed", 1), ("entry_time_regression", 2),
                                      ("entry_malformed", 3)]


def test_decision_time_must_match_entry_time() -> None:
    """Promise 4: a decision recorded at another time than its entry is inconsistent."""
    f = EntryFactory()
    log = [f.access(LOCAL, ["handle"], now=int(T0) - 3600)]
    assert kinds(inspect(log, f)) == [("decision_input_inconsistent", 0)]


@pytest.mark.parametrize(("value", "what"), [
    ("jane.doe@example.com", "email address"),
    ("+1 415 555 0100", "phone number"),
    ("4111111111111111", "long digit run"),
    ("us-" + "a" * 25 + "q", "raw subject id"),
    ("203.0.113.7", "IPv4 address"),
], ids=["email", "phone", "digits", "subject", "ip"])
def test_personal_data_in_an_entry_is_found_without_quoting_it(value: str, what: str) -> None:
    """Promise 7: entries carry no field values or raw ids; the finding names the kind and
    the JSON path, never the value."""
    f = EntryFactory()
    log = [f.access(LOCAL, ["handle"]), f.access(LOCAL, ["handle"], t=T0 + 1,
                                                 extra={"note": value})]
    inspector = inspect(log, f)
    assert kinds(inspector) == [("personal_data_in_entry", 1)]
    finding = inspector.findings[0]
    assert what in finding.explanation and "$.note" in finding.explanation
    assert value not in json.dumps(finding.to_json())


def test_a_hash_whose_base64_reads_as_a_phone_number_is_not_personal_data() -> None:
    """Promise 7 without false alarms (a demo run flagged a key-access entry): a
    32-byte hash in base64 is random, so it can hold '+' and digits that read as a
    phone number; it is not personal data.  The same characters elsewhere still are."""
    from bordergate.audit.personal_data import scan_entry
    leaf = "AbCd+8204115551234xyzAbCdEfGhIjKlMnOpQrStU0="
    assert len(leaf) == 44 and scan_entry(json.dumps({"leaf": "+820411"}).encode(),
                                          {"leaf": "+820411"})
    assert scan_entry(json.dumps({"leaf": leaf}).encode(), {"leaf": leaf}) == []


def test_every_kind_has_a_severity_and_category() -> None:
    """Findings name stable kinds with a severity and a category."""
    for kind in FINDING_KINDS.values():
        assert kind.severity in ("critical", "high", "medium", "low", "info")
        assert kind.category in ("violation", "denied_attempt", "integrity", "process")


def _narrowed_request(f: EntryFactory, approval: str, *, t: float = T0,
                      **changes: Any) -> bytes:
    """An approval-request naming the default bundle, with scope members changed."""
    body = json.loads(f.approval_request(approval, PARENT, t=t))
    body.update(bundle=f.bundle.digest, max_subjects=2)
    body["scope"].update(subjects=[], records=[], ticket="T-1")
    for key, value in changes.items():
        (body["scope"] if key in ("subjects", "records") else body)[key] = value
    return f.requested(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())


def _use_on(f: EntryFactory, approval: str, t: float, subject: str) -> bytes:
    return use(f, approval, t).replace(b"ab" * 32, subject.encode())


def test_approval_reach_subjects_and_cap() -> None:
    """Issue 11 item 4: a use on a subject outside the approval's subjects is
    approval_scope_exceeded; a third distinct subject under a cap of two is
    approval_subject_cap_exceeded; a subject read before stays readable."""
    f = EntryFactory()
    a, b = apr(40), apr(41)
    s1, s2, s3 = ("1" * 64), ("2" * 64), ("3" * 64)
    log = [_narrowed_request(f, a, subjects=[f"subject:{s1}"]),
           f.approval_change("approval-grant", a, APPROVER1, t=T0 + 1),
           f.approval_change("approval-grant", a, APPROVER2, t=T0 + 2, state="granted"),
           _use_on(f, a, T0 + 3, s1), _use_on(f, a, T0 + 4, s2),          # 3 ok, 4 outside
           _narrowed_request(f, b, t=T0 + 5),
           f.approval_change("approval-grant", b, APPROVER1, t=T0 + 6),
           f.approval_change("approval-grant", b, APPROVER2, t=T0 + 7, state="granted"),
           _use_on(f, b, T0 + 8, s1), _use_on(f, b, T0 + 9, s2),
           _use_on(f, b, T0 + 10, s1), _use_on(f, b, T0 + 11, s3)]       # 11: third subject
    assert kinds(inspect(log, f)) == [("approval_scope_exceeded", 4),
                                      ("approval_subject_cap_exceeded", 11)]


def test_approval_beyond_the_limits_of_its_bundle() -> None:
    """Issue 11 item 4: a request longer than its bundle's max_duration_s, or declaring
    no cap (or a higher one) than its max_subjects, is approval_beyond_limits; a request
    naming no bundle predates the limits."""
    f = EntryFactory()
    too_long = _narrowed_request(f, apr(42), expires=int(T0) + 9 * 3600)
    no_cap = _narrowed_request(f, apr(43), max_subjects=None)
    legacy = f.approval_request(apr(44), PARENT, expires=T0 + 9 * 3600)
    assert kinds(inspect([too_long, no_cap, legacy], f)) == [
        ("approval_beyond_limits", 0), ("approval_beyond_limits", 1)]


def test_refused_approval_actions_are_counted() -> None:
    """Issue 11 item 5: approval-refused entries are counted by action/code, and one
    without a known action is malformed."""
    f = EntryFactory()

    def refused(action: str, code: str, t: float) -> bytes:
        return encode_entry("approval-refused", t, {
            "approval": apr(45), "actor": PARENT.to_json(), "action": action, "code": code,
            "requester": True, "bundle": f.bundle.digest, "gateway": "us", "release": None})

    log = [f.approval_request(apr(45), PARENT), refused("grant", "policy_denied", T0 + 1),
           refused("grant", "policy_denied", T0 + 2),
           refused("revoke", "approval_not_pending", T0 + 3), refused("steal", "x", T0 + 4)]
    inspector = inspect(log, f)
    assert dict(inspector.state.tally.refused) == {"grant/policy_denied": 2,
                                                   "revoke/approval_not_pending": 1}
    assert inspector.state.approvals[apr(45)].refused == 3
    assert kinds(inspector) == [("entry_malformed", 4)]


@pytest.mark.parametrize(("sign", "expected"), [
    (None, [("approval_unsigned", 1), ("approval_unsigned", 2), ("approval_not_granted", 3)]),
    ("mallory", [("approval_signature_invalid", 1), ("approval_signature_invalid", 2),
                 ("approval_not_granted", 3)]),
    # carol's grant signed with dave's key: only dave's own grant counts
    ("dave", [("approval_signature_invalid", 1), ("approval_single_approver", 2),
              ("approval_single_approver", 3)]),
], ids=["unsigned", "unlisted key", "another approver's key"])
def test_grant_without_the_approvers_own_signature_never_counts(
        sign: str | None, expected: list[tuple[str, int]]) -> None:
    """Issue 12 item 4: a grant whose statement is missing or not signed by that
    approver's roster key never counts towards the two approvers; the grant is a
    finding naming its entry, and the read under the approval is not granted."""
    f = EntryFactory()
    a = apr(30)
    log = [f.approval_request(a, PARENT),
           f.approval_change("approval-grant", a, APPROVER1, t=T0 + 1, sign=sign),
           f.approval_change("approval-grant", a, APPROVER2, t=T0 + 2, state="granted",
                             sign=sign),
           use(f, a, T0 + 3)]
    assert kinds(inspect(log, f)) == expected


def test_statement_bound_to_origin_and_request() -> None:
    """Issue 12 item 4: a statement signed by the right key for another log, or for
    another request digest, does not count for this one."""
    f = EntryFactory()
    a = apr(31)
    elsewhere = EntryFactory(origin="eu.test/log")
    log = [f.approval_request(a, PARENT)]
    elsewhere.requests[a] = f.requests[a]
    log.append(elsewhere.approval_change("approval-grant", a, APPROVER1, t=T0 + 1))
    f.requests[a] = "sha256:" + "1" * 64
    log.append(f.approval_change("approval-grant", a, APPROVER2, t=T0 + 2, state="granted"))
    log.append(use(f, a, T0 + 3))
    assert kinds(inspect(log, f)) == [("approval_signature_invalid", 1),
                                      ("approval_signature_invalid", 2),
                                      ("approval_not_granted", 3)]


def test_requester_withdraws_unsigned_but_approver_revocation_is_signed() -> None:
    """Issue 12 item 4: the requester revokes their own request without a signature
    (it only reduces access); an approver's unsigned revocation still closes the
    approval (fail safe) but is a finding."""
    f = EntryFactory()
    a, b = apr(32), apr(33)
    log = [*approved(f, a),
           f.approval_change("approval-revoke", a, PARENT, t=T0 + 3, state="revoked"),
           *approved(f, b, T0 + 4),
           f.approval_change("approval-revoke", b, APPROVER1, t=T0 + 7, state="revoked",
                             sign=None),
           use(f, b, T0 + 8)]
    assert kinds(inspect(log, f)) == [("approval_unsigned", 7), ("approval_revoked", 8)]


def test_no_approver_keys_means_no_grant_counts() -> None:
    """Issue 12 item 4, fail closed: an auditor that knows no approver keys counts
    no grant, however it is signed."""
    f = EntryFactory()
    a = apr(34)
    inspector = new_inspector(f, approver_keys=MappingApproverKeys({}), tolerance=5)
    inspector.feed_all(0, [*approved(f, a), use(f, a, T0 + 10)])
    inspector.finish()
    assert kinds(inspector) == [("approval_signature_invalid", 1),
                                ("approval_signature_invalid", 2),
                                ("decision_without_start", 3),  # this log has no start
                                ("approval_not_granted", 3)]

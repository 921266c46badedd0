"""The default policy bundle decides exactly what docs/design.md and issue 5 state.

The expectation functions below restate the trusted-partner rules in plain
Python, independently of the Cedar text, and every combination is checked.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import ConfigError, InvalidInput, VerificationError
from bordergate.policy import (
    Approval,
    ApprovalRequest,
    Decision,
    DecisionInput,
    Field,
    PolicyBundle,
    PolicyEngine,
    Principal,
    RequestContext,
    Subject,
    default_bundle,
    replay,
)
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.tree_digest import read_tree

HOME = "us"
ABROAD = "cn"
NOW = 1_700_000_000
K_MIN = 50
ORG_KINDS = ("local", "parent", "custodian")
ORG_NAMES = {"local": "ttus", "parent": "bytedance", "custodian": "oracle"}
CLASSES = ("public", "protected", "restricted")
PURPOSES = tuple(default_bundle().purposes)
# The purpose bindings of purposes.toml, restated: the data actions each purpose
# permits (the roles of every purpose include "engineer", the tests' default role).
PURPOSE_ACTIONS = {
    "interoperability": {"read"},
    "customer_support": {"read"},
    "trust_and_safety": {"read"},
    "legal_request": {"read", "erase"},
    "analytics_aggregate": {"export"},
    "erasure": {"erase"},
    "operations": {"read", "write"},
}
APPROVAL_STATES = (
    "none",
    "covering",
    "wrong_collection",
    "wrong_class",
    "wrong_purpose",
    "other_requester",
    "expired",
    "not_valid",
    "out_of_scope",  # outside its subjects or records, or past its cap (issue 11 item 4)
)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(default_bundle())


def principal(org_kind: str, at_home: bool, roles: frozenset[str] = frozenset()) -> Principal:
    return Principal(
        id=f"{org_kind}-{'home' if at_home else 'abroad'}",
        org=ORG_NAMES[org_kind],
        org_kind=org_kind,
        location=HOME if at_home else ABROAD,
        roles=roles or frozenset({"engineer"}),
    )


def approval(state: str, who: Principal, cls: str, purpose: str) -> Approval | None:
    if state == "none":
        return None
    other_purpose = "trust_and_safety" if purpose != "trust_and_safety" else "legal_request"
    return Approval(
        id="appr-1",
        requester="someone-else" if state == "other_requester" else who.id,
        purpose=other_purpose if state == "wrong_purpose" else purpose,
        collections=frozenset({"messages" if state == "wrong_collection" else "users"}),
        classes=frozenset({"public" if state == "wrong_class" else cls}),
        valid=state != "not_valid",
        expires=NOW - 1 if state == "expired" else NOW + 3600,
        in_scope=state != "out_of_scope",
    )


def expected_access(
    action: str, org_kind: str, at_home: bool, cls: str, purpose: str, state: str
) -> bool:
    """The rules of issue 5 for read and write, restated independently."""
    if action not in PURPOSE_ACTIONS[purpose]:
        return False  # a purpose permits only its declared actions (issue 11, item 7)
    if cls == "restricted" and (not at_home or org_kind == "parent"):
        return False  # restricted never leaves and never reaches the parent
    if org_kind == "local" and at_home:
        return True  # same-jurisdiction staff of the local entity read and write
    if action != "read":
        return False
    if cls == "public" and purpose == "interoperability":
        return True
    return cls == "protected" and state == "covering"


def test_approval_view_without_scope_claim_permits_nothing(engine: PolicyEngine) -> None:
    """Issue 11 item 4: an approval the gateway does not say is in scope (a view
    without ``in_scope``, as recorded before scopes) permits no protected read."""
    who = principal("parent", False)
    view = Approval("appr-1", who.id, "customer_support", frozenset({"users"}),
                    frozenset({"protected"}), True, NOW + 3600)
    context = RequestContext(purpose="customer_support", now=NOW, gateway=HOME, k_min=K_MIN,
                             approval=view)
    item = DecisionInput(who, "read", Field("users", "email", "protected", HOME), context)
    assert not engine.decide(item).allowed


ACCESS_CASES = list(
    itertools.product(
        ("read", "write"), ORG_KINDS, (True, False), CLASSES, PURPOSES, APPROVAL_STATES
    )
)


def access_input(
    action: str, org_kind: str, at_home: bool, cls: str, purpose: str, state: str
) -> DecisionInput:
    who = principal(org_kind, at_home)
    context = RequestContext(
        purpose=purpose,
        now=NOW,
        gateway=HOME,
        k_min=K_MIN,
        approval=approval(state, who, cls, purpose),
    )
    return DecisionInput(who, action, Field("users", f"{cls}_field", cls, HOME), context)  # type: ignore[arg-type]


def test_full_access_matrix(engine: PolicyEngine) -> None:
    """Promise 2: org kind x location x class x purpose x approval state: the stated decision."""
    inputs = [access_input(*case) for case in ACCESS_CASES]
    decisions = engine.decide_many(inputs)
    wrong = [
        (case, d)
        for case, d in zip(ACCESS_CASES, decisions, strict=True)
        if d.allowed != expected_access(*case) or d.errors
    ]
    assert wrong == []
    assert len(decisions) == 2 * 3 * 2 * 3 * len(PURPOSES) * len(APPROVAL_STATES)


def test_parent_abroad_never_gets_restricted_even_with_approval(engine: PolicyEngine) -> None:
    """Promise 2: restricted never leaves; the deciding forbids are named."""
    item = access_input("read", "parent", False, "restricted", "customer_support", "covering")
    decision = engine.decide(item)
    assert not decision.allowed
    assert decision.policy_ids == ("restricted-never-leaves", "restricted-never-to-parent")


def test_allowed_decision_names_its_permit(engine: PolicyEngine) -> None:
    """Promise 4: a decision records the @id of the policy that determined it."""
    item = access_input("read", "parent", False, "protected", "customer_support", "covering")
    assert engine.decide(item) == Decision(True, ("protected-with-approval",), ())
    home = access_input("write", "local", True, "restricted", "operations", "none")
    assert engine.decide(home).policy_ids == ("local-staff-at-home",)
    nothing = access_input("read", "parent", False, "protected", "customer_support", "none")
    assert engine.decide(nothing) == Decision(False, (), ())


def expected_export(org_kind: str, at_home: bool, cls: str, purpose: str, k: int | None) -> bool:
    """Exports: aggregates only, of public or protected data, over >= k_min subjects
    whatever the class (issue 11 item 3: public group_by included)."""
    if cls == "restricted" or purpose != "analytics_aggregate":
        return False
    return k is not None and k >= K_MIN


EXPORT_CASES = list(
    itertools.product(
        ORG_KINDS,
        (True, False),
        CLASSES,
        ("analytics_aggregate", "operations"),
        (None, 0, 49, 50, 51),
    )
)


def test_export_matrix(engine: PolicyEngine) -> None:
    """Promise 2/issue 5: data leaves only as aggregates over at least k subjects (issue 11
    item 3: public fields too, the rule the auditor applies)."""
    inputs = [
        DecisionInput(
            principal(kind, home),
            "export",
            Field("videos", "views", cls, HOME),  # type: ignore[arg-type]
            RequestContext(purpose=purpose, now=NOW, gateway=HOME, k_min=K_MIN, k=k),
        )
        for kind, home, cls, purpose, k in EXPORT_CASES
    ]
    got = [d.allowed for d in engine.decide_many(inputs)]
    assert got == [expected_export(*case) for case in EXPORT_CASES]


ERASE_CASES = list(itertools.product(ORG_KINDS, (True, False), PURPOSES))


def test_erase_matrix(engine: PolicyEngine) -> None:
    """Promise 8: only the local entity or the custodian, at home, for erasure or legal purposes."""
    inputs = [
        DecisionInput(
            principal(kind, home),
            "erase",
            Subject(HOME),
            RequestContext(purpose=purpose, now=NOW, gateway=HOME, k_min=K_MIN),
        )
        for kind, home, purpose in ERASE_CASES
    ]
    got = [d.allowed for d in engine.decide_many(inputs)]
    assert got == [
        kind in ("local", "custodian") and home and purpose in ("erasure", "legal_request")
        for kind, home, purpose in ERASE_CASES
    ]


APPROVE_CASES = list(
    itertools.product(ORG_KINDS, (True, False), (True, False), (True, False), (True, False))
)


def test_approve_matrix(engine: PolicyEngine) -> None:
    """Issue 5 item 4: custodian approvers at home only; never own requests, never restricted."""
    inputs = []
    for kind, home, is_approver, own, restricted in APPROVE_CASES:
        who = principal(kind, home, frozenset({"approver"}) if is_approver else frozenset())
        request = ApprovalRequest(
            requester=who.id if own else "requester-1",
            purpose="customer_support",
            collections=frozenset({"users"}),
            classes=frozenset({"protected", "restricted"} if restricted else {"protected"}),
            home=HOME,
        )
        ctx = RequestContext(purpose="customer_support", now=NOW, gateway=HOME, k_min=K_MIN)
        inputs.append(DecisionInput(who, "approve", request, ctx))
    got = [d.allowed for d in engine.decide_many(inputs)]
    assert got == [
        kind == "custodian" and home and approver and not own and not restricted
        for kind, home, approver, own, restricted in APPROVE_CASES
    ]


def with_extra_policy(text: str) -> PolicyBundle:
    files = dict(read_tree(DEFAULT_BUNDLE_PATH))
    files["zz-extra.cedar"] = text.encode()
    return PolicyBundle(files.items(), source="test-bundle")


def test_forbid_beats_permit() -> None:
    """Promise 2: a permit-everything policy added to the bundle cannot cross a hard line."""
    bundle = with_extra_policy('@id("permit-everything")\npermit (principal, action, resource);\n')
    engine = PolicyEngine(bundle)
    restricted = access_input("read", "parent", True, "restricted", "operations", "none")
    abroad = access_input("read", "custodian", False, "restricted", "operations", "none")
    small_export = DecisionInput(
        principal("local", True),
        "export",
        Field("users", "email", "protected", HOME),
        RequestContext(purpose="analytics_aggregate", now=NOW, gateway=HOME, k_min=K_MIN, k=3),
    )
    protected = access_input("read", "parent", False, "protected", "operations", "none")
    got = engine.decide_many([restricted, abroad, small_export, protected])
    assert got[0] == Decision(False, ("restricted-never-to-parent",), ())
    assert got[1] == Decision(False, ("restricted-never-leaves",), ())
    assert got[2] == Decision(False, ("export-only-over-k-subjects",), ())
    assert got[3] == Decision(True, ("permit-everything",), ())
    assert bundle.digest != default_bundle().digest


def test_replay_gives_the_same_decision(engine: PolicyEngine) -> None:
    """Promise 4: replaying the recorded JSON with the named bundle gives the same decision."""
    inputs = [access_input(*case) for case in ACCESS_CASES[::7]]
    decisions = engine.decide_many(inputs)
    bundle = default_bundle()
    for item, decision in zip(inputs, decisions, strict=True):
        recorded = json.loads(json.dumps(item.to_json(), sort_keys=True))
        assert replay(bundle, recorded, recorded_digest=bundle.digest) == decision


def test_replay_with_another_bundle_is_refused() -> None:
    """Promise 4: an entry is replayed only with the bundle whose digest it names."""
    item = access_input("read", "local", True, "public", "operations", "none")
    with pytest.raises(VerificationError) as info:
        replay(default_bundle(), item.to_json(), recorded_digest="sha256:" + "0" * 64)
    assert info.value.code == "bundle_digest_mismatch"


def test_unknown_purpose_is_invalid_input(engine: PolicyEngine) -> None:
    """Issue 5 acceptance: an unknown purpose is a 4xx with a stable code, nothing decided."""
    item = access_input("read", "local", True, "public", "operations", "none")
    bad = replace(item, context=replace(item.context, purpose="curiosity"))
    with pytest.raises(InvalidInput) as info:
        engine.decide_many([item, bad])
    assert info.value.code == "unknown_purpose"
    assert info.value.http_status == 400


def test_empty_batch(engine: PolicyEngine) -> None:
    """Behaviour: an empty batch decides nothing."""
    assert engine.decide_many([]) == []


def test_incompatible_schema_is_refused_at_start() -> None:
    """Fail closed: a bundle whose schema cannot type bordergate's requests is a ConfigError."""
    files = dict(read_tree(DEFAULT_BUNDLE_PATH))
    schema = files["schema.cedarschema"].decode().replace("  k_min: Long,\n", "")
    files["schema.cedarschema"] = schema.encode()
    policies = files["policies.cedar"].decode()
    policies = policies.replace("context has k && context.k >= context.k_min", "context has k")
    files["policies.cedar"] = policies.encode()
    with pytest.raises(ConfigError) as info:
        PolicyEngine(PolicyBundle(files.items(), source="bad"))
    assert info.value.code == "policy_schema_incompatible"


def test_decisions_repeat_exactly_with_entity_cache(engine: PolicyEngine) -> None:
    """Promise 4: cached parsed entities give the same decisions as fresh ones."""
    inputs = [access_input(*case) for case in ACCESS_CASES[:200]]
    first = engine.decide_many(inputs)
    small_cache = PolicyEngine(default_bundle(), entity_cache_size=1)
    assert [small_cache.decide(i) for i in inputs] == first
    assert engine.decide_many(inputs) == first


# ---- recorded input parsing (untrusted: comes from a log entry) ----------------


def sample_recorded() -> dict[str, object]:
    item = access_input("read", "parent", False, "protected", "customer_support", "covering")
    return json.loads(json.dumps(item.to_json()))


def test_recorded_round_trip() -> None:
    """Promise 4: to_json/from_json round-trips the exact decision input."""
    item = access_input("read", "parent", False, "protected", "customer_support", "covering")
    assert DecisionInput.from_json(json.loads(json.dumps(item.to_json()))) == item


def _mutations() -> list[tuple[str, object]]:
    cases: list[tuple[str, object]] = [("not-an-object", [1, 2]), ("null", None)]

    def mutate(name: str, path: list[str], value: object, delete: bool = False) -> None:
        data = sample_recorded()
        node: dict[str, object] = data
        for key in path[:-1]:
            node = node[key]  # type: ignore[assignment]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        cases.append((name, data))

    mutate("missing-principal", ["principal"], None, delete=True)
    mutate("extra-top-key", ["extra"], 1)
    mutate("unknown-action", ["action"], "delete")
    mutate("action-not-string", ["action"], 7)
    mutate("roles-not-list", ["principal", "roles"], "admin")
    mutate("roles-item-not-string", ["principal", "roles"], [1])
    mutate("location-bad", ["principal", "location"], "U S")
    mutate("id-empty", ["principal", "id"], "")
    mutate("resource-type-unknown", ["resource", "type"], "Record")
    mutate("resource-not-object", ["resource"], "Field")
    mutate("class-unknown", ["resource", "class"], "secret")
    mutate("resource-missing-home", ["resource", "home"], None, delete=True)
    mutate("now-negative", ["context", "now"], -1)
    mutate("now-float", ["context", "now"], 1.5)
    mutate("now-bool", ["context", "now"], True)
    mutate("now-huge", ["context", "now"], 2**64)
    mutate("k-string", ["context", "k"], "50")
    mutate("approval-valid-not-bool", ["context", "approval", "valid"], 1)
    mutate("approval-missing-expires", ["context", "approval", "expires"], None, delete=True)
    mutate("approval-not-object", ["context", "approval"], [])
    mutate("context-extra", ["context", "note"], "x")
    mutate("action-mismatch", ["action"], "erase")
    return cases


@pytest.mark.parametrize(("name", "data"), _mutations(), ids=[n for n, _ in _mutations()])
def test_malformed_recorded_input_is_verification_error(name: str, data: object) -> None:
    """Promise 4: a malformed recorded input is a clear VerificationError, never a crash."""
    with pytest.raises(VerificationError) as info:
        DecisionInput.from_json(data)
    assert info.value.code == "decision_input_malformed"


codes = st.sampled_from(["us", "eu", "cn", "in"])
texts = st.text(min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    who=st.builds(
        Principal,
        id=texts,
        org=texts,
        org_kind=st.sampled_from(ORG_KINDS),
        location=codes,
        roles=st.frozensets(texts, max_size=3),
    ),
    field=st.builds(
        Field, collection=texts, name=texts, field_class=st.sampled_from(CLASSES), home=codes
    ),
    purpose=st.sampled_from(PURPOSES),
    k=st.none() | st.integers(0, 2**63 - 1),
    action=st.sampled_from(["read", "write", "export"]),
)
def test_property_replay_of_any_input_matches(
    who: Principal, field: Field, purpose: str, k: int | None, action: str
) -> None:
    """Promise 4: for any input, JSON round trip plus replay gives the live decision."""
    item = DecisionInput(
        who,
        action,  # type: ignore[arg-type]
        field,
        RequestContext(purpose=purpose, now=NOW, gateway="us", k_min=K_MIN, k=k),
    )
    recorded = json.loads(json.dumps(item.to_json()))
    assert DecisionInput.from_json(recorded) == item
    live = PolicyEngine(default_bundle(), entity_cache_size=0).decide(item)
    assert replay(default_bundle(), recorded) == live
    assert not live.errors


def test_request_validation_mode_gives_identical_decisions() -> None:
    """Promise 4: evaluating with per-request schema validation changes no decision."""
    inputs = [access_input(*case) for case in ACCESS_CASES]
    fast = PolicyEngine(default_bundle()).decide_many(inputs)
    strict = PolicyEngine(default_bundle(), validate_requests=True).decide_many(inputs)
    assert fast == strict


def test_policy_error_fails_closed() -> None:
    """Promise 2: a forbid that errors at run time (overflow) denies instead of being skipped."""
    bundle = with_extra_policy(
        '@id("permit-everything")\npermit (principal, action, resource);\n'
        '@id("overflowing-forbid")\nforbid (principal, action, resource)\n'
        "when { context.now + 9223372036854775807 > 0 };\n"
    )
    item = access_input("read", "parent", False, "public", "operations", "none")
    decision = PolicyEngine(bundle).decide(item)
    assert not decision.allowed
    assert decision.errors


def test_identical_inputs_in_a_batch_share_one_decision(engine: PolicyEngine) -> None:
    """Behaviour: repeated inputs in one batch get equal decisions, in order."""
    a = access_input("read", "local", True, "public", "operations", "none")
    b = access_input("read", "parent", False, "restricted", "operations", "none")
    got = engine.decide_many([a, b, a, b, a])
    assert [d.allowed for d in got] == [True, False, True, False, True]


def test_field_name_policies_are_evaluated_per_field() -> None:
    """Promise 4: fields share one evaluation only when no policy reads the field name."""
    assert not default_bundle().reads_field_name
    bundle = with_extra_policy(
        '@id("no-emails")\nforbid (principal, action, resource is Field)\n'
        'when { resource.name == "email" };\n'
    )
    assert bundle.reads_field_name
    ctx = RequestContext(purpose="operations", now=NOW, gateway=HOME, k_min=K_MIN)
    who = principal("local", True)
    email = DecisionInput(who, "read", Field("users", "email", "protected", HOME), ctx)
    phone = DecisionInput(who, "read", Field("users", "phone", "protected", HOME), ctx)
    got = PolicyEngine(bundle).decide_many([email, phone])
    assert got == [
        Decision(False, ("no-emails",), ()),
        Decision(True, ("local-staff-at-home",), ()),
    ]
    shared = PolicyEngine(default_bundle()).decide_many([email, phone])
    assert shared[0] == shared[1] == replay(default_bundle(), phone.to_json())

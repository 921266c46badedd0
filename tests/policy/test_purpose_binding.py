"""Purposes bound to actions and roles (issue 11, item 7), decided in Cedar.

``purposes.toml`` binds each purpose to the data actions it permits and the
roles that may invoke it; the bundle turns the bindings into two generated
forbids, so a denial names its rule and replays in the audit.
"""

from __future__ import annotations

import re

import pytest

from bordergate.errors import ConfigError
from bordergate.policy import (
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
from bordergate.policy.purpose_binding import (
    PURPOSE_ACTION_POLICY,
    PURPOSE_NOT_ALLOWED,
    PURPOSE_ROLE_POLICY,
    denial_code,
)
from bordergate.tree_digest import read_tree

HOME = "us"
NOW = 1_700_000_000
LOCAL = Principal("alice", "ttus", "local", HOME, frozenset({"engineer"}))
CLASSES = ("public", "protected", "restricted")


def field_input(
    who: Principal, action: str, cls: str, purpose: str, k: int | None = None
) -> DecisionInput:
    context = RequestContext(purpose=purpose, now=NOW, gateway=HOME, k_min=5, k=k)
    return DecisionInput(who, action, Field("users", f"{cls}_field", cls, HOME), context)  # type: ignore[arg-type]


def bundle_with_purposes(purposes: bytes) -> PolicyBundle:
    files = dict(read_tree(DEFAULT_BUNDLE_PATH))
    files["purposes.toml"] = purposes
    return PolicyBundle(files.items(), source="test-bundle")


def legacy_purposes() -> bytes:
    """The shipped purposes.toml without bindings: a bundle published before item 7."""
    text = (DEFAULT_BUNDLE_PATH / "purposes.toml").read_text()
    return re.sub(r"(?m)^(actions|roles) = .*\n", "", text).encode()


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(default_bundle())


def test_aggregate_purpose_never_reads_or_writes_a_record(engine: PolicyEngine) -> None:
    """Item 7: local staff at home under analytics_aggregate get no field of any class."""
    inputs = [field_input(LOCAL, a, c, "analytics_aggregate") for a in ("read", "write")
              for c in CLASSES]
    decisions = engine.decide_many(inputs)
    assert [d.allowed for d in decisions] == [False] * len(inputs)
    assert all(PURPOSE_ACTION_POLICY in d.policy_ids and not d.errors for d in decisions)
    assert denial_code(d.policy_ids for d in decisions) == PURPOSE_NOT_ALLOWED


def test_aggregate_purpose_still_exports(engine: PolicyEngine) -> None:
    """Item 7: the purpose permits exports; a public and a protected group_by over k pass."""
    decisions = engine.decide_many(
        [field_input(LOCAL, "export", c, "analytics_aggregate", k=10) for c in CLASSES[:2]]
    )
    assert [d.allowed for d in decisions] == [True, True]


def test_same_staff_read_under_a_reading_purpose_is_allowed(engine: PolicyEngine) -> None:
    """Item 7: the binding refuses by purpose, not by principal: operations still reads."""
    decisions = engine.decide_many([field_input(LOCAL, "read", c, "operations") for c in CLASSES])
    assert [d.allowed for d in decisions] == [True, True, True]


def test_principal_without_a_bound_role_is_refused(engine: PolicyEngine) -> None:
    """Item 7: a role not bound to the purpose is refused by the role forbid."""
    intern = Principal("ivan", "ttus", "local", HOME, frozenset({"intern"}))
    no_roles = Principal("nora", "ttus", "local", HOME, frozenset())
    for who in (intern, no_roles):
        decision = engine.decide(field_input(who, "read", "public", "operations"))
        assert not decision.allowed
        assert decision.policy_ids == (PURPOSE_ROLE_POLICY,)
    analyst = Principal("ana", "ttus", "local", HOME, frozenset({"analyst"}))
    export = field_input(analyst, "export", "public", "analytics_aggregate", 10)
    assert engine.decide(export).allowed
    assert not engine.decide(field_input(analyst, "read", "public", "operations")).allowed


def test_erase_is_bound_too(engine: PolicyEngine) -> None:
    """Item 7: erase is a data action; a purpose that does not permit it is refused."""
    context = RequestContext(purpose="analytics_aggregate", now=NOW, gateway=HOME, k_min=5)
    decision = engine.decide(DecisionInput(LOCAL, "erase", Subject(HOME), context))
    assert not decision.allowed and PURPOSE_ACTION_POLICY in decision.policy_ids


def test_recorded_purpose_denial_replays_to_the_same_decision(engine: PolicyEngine) -> None:
    """Promise 4: the denial's recorded input replays, with the bundle, to the same denial."""
    item = field_input(LOCAL, "read", "restricted", "analytics_aggregate")
    decision = engine.decide(item)
    replayed = replay(default_bundle(), item.to_json(), recorded_digest=engine.digest)
    assert replayed == decision and not replayed.allowed


def test_bundle_before_binding_loads_and_replays_as_made() -> None:
    """Promise 4: a bundle without bindings (old entries) loads with no generated forbid
    and decides as it did, so old entries replay unchanged; its digest differs."""
    legacy = bundle_with_purposes(legacy_purposes())
    assert PURPOSE_ACTION_POLICY not in legacy.policy_ids
    assert all(p.binding is None for p in legacy.purposes.values())
    assert legacy.digest != default_bundle().digest
    item = field_input(LOCAL, "read", "restricted", "analytics_aggregate")
    assert replay(legacy, item.to_json()).allowed


def test_generated_forbids_are_in_the_policy_text() -> None:
    """Item 7: the auditor sees the rule: the bindings are Cedar text of the bundle."""
    bundle = default_bundle()
    assert bundle.policy_ids[-2:] == (PURPOSE_ACTION_POLICY, PURPOSE_ROLE_POLICY)
    assert '(context.purpose == "analytics_aggregate" && action in [Action::"export"])' in (
        bundle.policies_text
    )
    binding = bundle.purpose("analytics_aggregate").binding
    assert binding is not None and binding.actions == {"export"}


def test_changing_a_binding_changes_the_digest() -> None:
    """Promise 4: the bindings are digested: one more action is another bundle."""
    text = (DEFAULT_BUNDLE_PATH / "purposes.toml").read_bytes()
    changed = text.replace(b'actions = ["export"]', b'actions = ["export", "read"]')
    assert changed != text
    other = bundle_with_purposes(changed)
    assert other.digest != default_bundle().digest
    read = field_input(LOCAL, "read", "public", "analytics_aggregate")
    assert PolicyEngine(other).decide(read).allowed


BASE = b'[purposes.a]\ndescription = "d"\nreason_codes = { r = "x" }\n'


@pytest.mark.parametrize(
    "extra",
    [
        b'actions = ["read"]\n',
        b'roles = ["engineer"]\n',
        b'actions = []\nroles = ["engineer"]\n',
        b'actions = ["approve"]\nroles = ["engineer"]\n',
        b'actions = ["read", "read"]\nroles = ["engineer"]\n',
        b'actions = "read"\nroles = ["engineer"]\n',
        b'actions = ["read"]\nroles = []\n',
        b'actions = ["read"]\nroles = ["a\\"b"]\n',
        b'actions = ["read"]\nroles = [1]\n',
    ],
    ids=["only-actions", "only-roles", "no-actions", "approve-not-bound", "repeated-action",
         "actions-not-list", "no-roles", "role-with-quote", "role-not-string"],
)
def test_malformed_binding_is_refused(extra: bytes) -> None:
    """Item 7: a binding is a non-empty list of data actions and one of role names."""
    with pytest.raises(ConfigError) as err:
        bundle_with_purposes(BASE + extra)
    assert err.value.code == "purposes_invalid" and "purposes.toml" in str(err.value)


def test_binding_is_all_or_none() -> None:
    """Item 7: a bundle cannot leave one purpose unbound while binding another."""
    bound = BASE + b'actions = ["read"]\nroles = ["engineer"]\n'
    unbound = b'[purposes.b]\ndescription = "d"\nreason_codes = { r = "x" }\n'
    with pytest.raises(ConfigError) as err:
        bundle_with_purposes(bound + unbound)
    assert err.value.code == "purposes_invalid"


def test_hand_written_policy_cannot_take_a_binding_id() -> None:
    """Item 7: the generated forbids' @ids are reserved; a clash is refused at load."""
    files = dict(read_tree(DEFAULT_BUNDLE_PATH))
    files["zz.cedar"] = (
        f'@id("{PURPOSE_ROLE_POLICY}")\n'
        'permit (principal, action == Action::"read", resource is Field);\n'
    ).encode()
    with pytest.raises(ConfigError) as err:
        PolicyBundle(files.items(), source="test-bundle")
    assert err.value.code == "policy_duplicate_id"


def test_denial_code_names_purpose_only_when_every_denial_is_the_binding() -> None:
    """Item 7: purpose_not_allowed only when the binding decided every denial."""
    assert denial_code([[PURPOSE_ACTION_POLICY], [PURPOSE_ROLE_POLICY, "x"]]) == PURPOSE_NOT_ALLOWED
    assert denial_code([[PURPOSE_ACTION_POLICY], ["restricted-never-leaves"]]) == "policy_denied"
    assert denial_code([[]]) == "policy_denied"
    assert denial_code([]) == "policy_denied"

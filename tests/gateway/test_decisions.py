"""Decision records, withheld reasons and the decision cache (promises 4 and 7).

The entry encoders that turn these records into bytes are tested in
``test_entry_encoders.py``."""

from __future__ import annotations

from bordergate.gateway.decisions import DecisionCache, withheld_reason
from bordergate.policy import DecisionInput, Field, PolicyEngine, RequestContext, default_bundle
from bordergate.policy.engine import Decision
from bordergate.policy.entities import Approval, Principal

ENGINE = PolicyEngine(default_bundle())
PRINCIPAL = Principal("p-1", "ttus", "local", "us", frozenset({"engineer"}))


def test_decision_cache_is_exact() -> None:
    """Promise 4: a cached decision equals a fresh one for the same complete input."""
    context = RequestContext("operations", 1, "us", 50)
    inputs = [DecisionInput(PRINCIPAL, "read", Field("users", "email", "protected", "us"),
                            context)]
    cache = DecisionCache(ENGINE.decide_many)
    first = cache.decide(inputs)
    again = cache.decide([DecisionInput(PRINCIPAL, "read",
                                        Field("users", "email", "protected", "us"), context)])
    assert first == again and first[0] == ENGINE.decide_many(inputs)


def test_withheld_reasons() -> None:
    """Reads explain each withheld field: forbids named, or why nothing permitted it."""
    approval = Approval("a", "p", "x", frozenset({"c"}), frozenset({"protected"}), True, 9)
    assert withheld_reason("restricted", Decision(False, ("f1",)), None) == {
        "reason": "policy_denied", "policy_ids": ["f1"]}
    assert withheld_reason("protected", Decision(False), None)["reason"] == "no_approval"
    assert withheld_reason("protected", Decision(False), approval)["reason"] == (
        "approval_not_valid")
    assert withheld_reason("public", Decision(False), None)["reason"] == "not_permitted"
    narrowed = Approval("a", "p", "x", frozenset({"c"}), frozenset({"protected"}), True, 9,
                        in_scope=False)
    assert withheld_reason("protected", Decision(False), narrowed)["reason"] == (
        "approval_out_of_scope")
    assert withheld_reason("public", Decision(False, (), ("boom",)), None)["reason"] == (
        "policy_error")


def test_decision_cache_is_bounded_first_in_first_out() -> None:
    """The decision cache holds at most its bound and drops the oldest input list first."""
    calls: list[int] = []

    def decide(inputs: list[DecisionInput]) -> list[Decision]:
        calls.append(len(inputs))
        return ENGINE.decide_many(inputs)

    cache = DecisionCache(decide, max_entries=2)
    inputs = [[DecisionInput(PRINCIPAL, "read", Field("users", "email", "protected", "us"),
                             RequestContext("operations", now, "us", 50))] for now in range(3)]
    for item in inputs:
        cache.decide(item)
    cache.decide(inputs[2])
    cache.decide(inputs[1])
    assert len(calls) == 3  # both newer lists were hits
    cache.decide(inputs[0])
    assert len(calls) == 4  # the oldest was evicted

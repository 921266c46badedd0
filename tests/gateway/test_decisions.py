"""Decision records and the gateway's spliced entry encoding (promises 4 and 7)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.entries import encode_entry, parse_entry
from bordergate.gateway.decisions import (
    DecisionCache,
    decision_records,
    encode_with_decisions,
    withheld_reason,
)
from bordergate.policy import DecisionInput, Field, PolicyEngine, RequestContext, default_bundle
from bordergate.policy.engine import Decision
from bordergate.policy.entities import Approval, Principal

ENGINE = PolicyEngine(default_bundle())
PRINCIPAL = Principal("p-1", "ttus", "local", "us", frozenset({"engineer"}))
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=60)
@given(names=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4,
                      unique=True),
       classes=st.lists(st.sampled_from(["public", "protected", "restricted"]), min_size=4,
                        max_size=4),
       purpose=st.sampled_from(sorted(default_bundle().purposes)),
       extra=st.dictionaries(st.sampled_from(["collection", "zzz", "aaa", "released"]), text),
       now=st.integers(0, 2**33))
def test_spliced_entry_equals_encode_entry(names: list[str], classes: list[str], purpose: str,
                                           extra: dict[str, str], now: int) -> None:
    """Promise 4: the spliced access entry is byte for byte encode_entry's canonical JSON."""
    context = RequestContext(purpose, now, "us", 50)
    inputs = [DecisionInput(PRINCIPAL, "read", Field("users", n, c, "us"), context)  # type: ignore[arg-type]
              for n, c in zip(names, classes, strict=False)]
    decisions, recorded = DecisionCache(ENGINE.decide_many).decide(inputs)
    body = {"principal": PRINCIPAL.to_json(), "collection": "users", "subject": "s",
            "record": "r", "purpose": purpose, "bundle": ENGINE.digest, **extra}
    expected = encode_entry("access", now, {**body,
                                            "decisions": decision_records(inputs, decisions)})
    assert encode_with_decisions("access", now, body, recorded) == expected
    parse_entry(expected)


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
    assert withheld_reason("public", Decision(False, (), ("boom",)), None)["reason"] == (
        "policy_error")

"""Decision records and the gateway's spliced entry encoding (promises 4 and 7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.entries import canonical_json, encode_entry, format_time, parse_entry
from bordergate.gateway.decisions import (
    DecisionCache,
    EntryTemplate,
    EntryTime,
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


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8)


@settings(max_examples=200)
@given(fixed=st.dictionaries(st.sampled_from(["approval", "bundle", "collection", "gateway",
                                              "outcome", "purpose", "release", "aaa", "zzz",
                                              "principal"]), json_value),
       slots=st.dictionaries(st.sampled_from(["subject", "record", "released", "decisions",
                                              "ab", "zz"]), json_value, min_size=1),
       now=st.floats(0, 2**33, allow_nan=False))
def test_entry_template_equals_encode_entry(fixed: dict[str, object],
                                            slots: dict[str, object], now: float) -> None:
    """Promise 4: a filled entry template is byte for byte encode_entry's canonical JSON
    (whatever the keys, values and time, including marker-like text), so the access
    entries of reads are exact."""
    required = {"principal": "p", "collection": "c", "subject": "s", "record": "r",
                "purpose": "x", "bundle": "b", "decisions": []}
    body = {k: v for k, v in {**required, **fixed}.items() if k not in slots}
    expected = encode_entry("access", now, {**body, **slots})
    template = EntryTemplate("access", body, list(slots))
    got = template.fill([canonical_json(v) for v in slots.values()], EntryTime()(now))
    assert got == expected
    parse_entry(got)


@settings(max_examples=300)
@given(times=st.lists(st.floats(0, 2**33, allow_nan=False), min_size=1, max_size=5))
def test_entry_time_equals_format_time(times: list[float]) -> None:
    """Promise 4: the cached entry time text is format_time's, also across seconds."""
    clock = EntryTime()
    for now in [*times, *(t + 0.0005 for t in times), *(t + 0.9996 for t in times)]:
        assert clock(now) == canonical_json(format_time(now))


def test_entry_template_refuses_bad_shapes() -> None:
    """Promise 4: a template checks what encode_entry checks (type, keys, size)."""
    with pytest.raises(ValueError, match="unknown entry type"):
        EntryTemplate("nope", {}, ["x"])
    with pytest.raises(ValueError, match="lacks"):
        EntryTemplate("access", {"principal": "p"}, ["subject"])
    body = {"principal": "p", "collection": "c", "record": "r", "purpose": "x",
            "bundle": "b", "decisions": []}
    with pytest.raises(ValueError, match="set by the template"):
        EntryTemplate("access", {**body, "time": 1}, ["subject"])
    template = EntryTemplate("access", body, ["subject"])
    with pytest.raises(ValueError, match="limit"):
        template.fill([canonical_json("s" * 70_000)], EntryTime()(0))


def test_spliced_entry_with_placeholder_text_in_body() -> None:
    """Promise 4: a body value that holds the splice placeholder's text (a principal
    attribute, say) still gives encode_entry's exact bytes instead of failing."""
    context = RequestContext("operations", 7, "us", 50)
    inputs = [DecisionInput(PRINCIPAL, "read", Field("users", "email", "protected", "us"),
                            context)]
    decisions, recorded = DecisionCache(ENGINE.decide_many).decide(inputs)
    body = {"principal": PRINCIPAL.to_json(), "collection": "\x00decisions\x00",
            "subject": "s", "record": "r", "purpose": "operations", "bundle": ENGINE.digest}
    expected = encode_entry("access", 7, {**body,
                                          "decisions": decision_records(inputs, decisions)})
    assert encode_with_decisions("access", 7, body, recorded) == expected

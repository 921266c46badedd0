"""The entry encoder family of ``bordergate.entries`` gives the reference's bytes.

The gateway writes entries three ways for speed: ``encode_entry`` (the
reference), ``encode_entry_with`` (members given as canonical JSON: the
``decisions`` array computed once per distinct input) and ``EntryTemplate``
filled with ``EntryTime`` (a read's access entry).  Promise 4 needs every one
of them to write exactly the canonical entry an auditor re-encodes, so each is
property-tested against ``encode_entry`` on generated bodies.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.entries import (
    EntryTemplate,
    EntryTime,
    canonical_json,
    encode_entry,
    encode_entry_with,
    format_time,
    parse_entry,
)
from bordergate.gateway.decisions import DecisionCache, decision_records
from bordergate.policy import DecisionInput, Field, PolicyEngine, RequestContext, default_bundle
from bordergate.policy.entities import Principal

ENGINE = PolicyEngine(default_bundle())
PRINCIPAL = Principal("p-1", "ttus", "local", "us", frozenset({"engineer"}))
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8)
REQUIRED = {"principal": "p", "collection": "c", "subject": "s", "record": "r",
            "purpose": "x", "bundle": "b", "decisions": []}


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
    assert encode_entry_with("access", now, body, {"decisions": recorded}) == expected
    parse_entry(expected)


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
    body = {k: v for k, v in {**REQUIRED, **fixed}.items() if k not in slots}
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
    with pytest.raises(ValueError, match="set by the entry encoder"):
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
    assert encode_entry_with("access", 7, body, {"decisions": recorded}) == expected


@settings(max_examples=200)
@given(fixed=st.dictionaries(st.sampled_from(["approval", "bundle", "collection", "gateway",
                                              "outcome", "purpose", "aaa", "zzz",
                                              "principal"]), json_value),
       encoded=st.dictionaries(st.sampled_from(["subject", "record", "decisions", "ab", "zz"]),
                               json_value, min_size=1),
       now=st.floats(0, 2**33, allow_nan=False))
def test_encode_entry_with_equals_encode_entry(fixed: dict[str, object],
                                               encoded: dict[str, object], now: float) -> None:
    """Promise 4: members passed already encoded give encode_entry's exact bytes,
    whatever the member names, values and time."""
    body = {k: v for k, v in {**REQUIRED, **fixed}.items() if k not in encoded}
    expected = encode_entry("access", now, {**body, **encoded})
    got = encode_entry_with("access", now, body,
                            {k: canonical_json(v) for k, v in encoded.items()})
    assert got == expected
    parse_entry(got)


def test_encode_entry_with_refuses_what_encode_entry_refuses() -> None:
    """Promise 4: the spliced encoder checks type, keys, overlap and size as the reference."""
    body = {k: v for k, v in REQUIRED.items() if k != "decisions"}
    with pytest.raises(ValueError, match="unknown entry type"):
        encode_entry_with("nope", 0, body, {"decisions": b"[]"})
    with pytest.raises(ValueError, match="lacks"):
        encode_entry_with("access", 0, {"principal": "p"}, {"decisions": b"[]"})
    with pytest.raises(ValueError, match="both"):
        encode_entry_with("access", 0, REQUIRED, {"decisions": b"[]"})
    with pytest.raises(ValueError, match="limit"):
        encode_entry_with("access", 0, body, {"decisions": canonical_json(["d" * 70_000])})

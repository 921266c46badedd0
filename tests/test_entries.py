"""Log entry vocabulary: canonical JSON, strict parsing, keyed pseudonyms.

Promise 4 (replayable decisions) needs entries that parse the same way for
everyone; promise 7 needs pseudonyms nobody but the custodian can link.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.entries import (
    APPROVAL_CHANGE_TYPES,
    DECISION_ACTIONS,
    ENTRY_TYPES,
    ENTRY_VERSION,
    ENTRY_VERSIONS,
    RELEASE_ENTRY_TYPES,
    Pseudonymizer,
    canonical_json,
    encode_entry,
    format_time,
    parse_entry,
    parse_time,
)
from bordergate.errors import VerificationError
from bordergate.policy.entities import ACTIONS
from bordergate.tlog.tiles import ENTRY_MAX

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k not in {"v", "type", "time"}),
                       json_values, max_size=5), st.sampled_from(sorted(ENTRY_VERSIONS)))
def test_canonical_entries_round_trip(extra: dict[str, object], version: int) -> None:
    """Promise 4: any entry, of every entry version the parser reads (issue 12 item 7:
    logs of earlier releases still audit), encodes canonically and parses back to the
    same body and version."""
    body = {"kind": "create", "kek_version": 1, **extra}
    written = encode_entry("key-event", 1_764_288_000.123, body)
    assert json.loads(written)["v"] == ENTRY_VERSION
    data = canonical_json({**json.loads(written), "v": version})
    entry = parse_entry(data)
    assert entry.type == "key-event" and entry.version == version
    assert {k: v for k, v in entry.body.items() if k not in {"v", "type", "time"}} == body
    assert canonical_json(dict(entry.body)) == data


@given(st.one_of(st.integers(-5, 10), st.booleans(), st.none(), st.text(max_size=3)))
def test_only_known_versions_parse(version: object) -> None:
    """Bad input: an entry of a version the parser does not know (or ``true``, which JSON
    compares equal to 1) is ``malformed_entry``; the sequencer's state keys read the same
    versions (entry_state)."""
    from bordergate.entry_state import _ENTRY_VERSIONS

    assert _ENTRY_VERSIONS == ENTRY_VERSIONS
    data = canonical_json({"kind": "x", "kek_version": 1, "type": "key-event", "v": version,
                           "time": "1970-01-01T00:00:00.000Z"})
    if type(version) is int and version in ENTRY_VERSIONS:
        assert parse_entry(data).version == version
        return
    with pytest.raises(VerificationError) as e:
        parse_entry(data)
    assert e.value.code == "malformed_entry"


def test_time_format_is_rfc3339_milliseconds() -> None:
    """Behaviour: entry times are RFC 3339 UTC with milliseconds."""
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert parse_time(format_time(1_764_288_000.5)) == 1_764_288_000.5


@pytest.mark.parametrize("bad", [
    b"not json", b"[1]", b'{"v":3,"type":"key-event","time":"1970-01-01T00:00:00.000Z"}',
    b'{"v":1,"type":"nope","time":"1970-01-01T00:00:00.000Z"}',
    b'{"v":1,"type":"key-event","time":"1970-01-01T00:00:00.000Z"}',
    b'{"kek_version":1,"kind":"x","time":"yesterday","type":"key-event","v":1}',
    b'{"type":"key-event","v":1,"kek_version":1,"kind":"x","time":"1970-01-01T00:00:00.000Z"}',
    b'{"kek_version":1.5,"kind":"x","time":"1970-01-01T00:00:00.000Z","type":"key-event","v":1}',
    b"\xff\xfe",
])
def test_malformed_entries_are_verification_errors(bad: bytes) -> None:
    """Bad input: malformed, non-canonical or incomplete entries are refused clearly."""
    with pytest.raises(VerificationError) as e:
        parse_entry(bad)
    assert e.value.code == "malformed_entry"


def test_encode_refuses_floats_and_unknown_types() -> None:
    """Promise 4: entries never carry floats (their text is not canonical everywhere)."""
    with pytest.raises(ValueError, match="float"):
        encode_entry("key-event", 0, {"kind": "x", "kek_version": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        encode_entry("gossip", 0, {})


def test_pseudonyms_are_keyed_and_provable() -> None:
    """Promise 7: pseudonyms differ per secret and kind; the holder can prove one."""
    a, b = Pseudonymizer(b"a" * 32), Pseudonymizer(b"b" * 32)
    p = a.subject("us-abc")
    assert p.startswith("subject:") and "us-abc" not in p
    assert p != b.subject("us-abc") and p != a.pseudonym("record", "us-abc")
    assert a.matches(p, "subject", "us-abc") and not a.matches(p, "subject", "us-abd")
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_fast_time_format_matches_datetime(epoch: float) -> None:
    """Promise 4: the fast formatter writes exactly what datetime would."""
    from datetime import UTC, datetime
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    expected = dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    assert format_time(epoch) == expected


# Epoch seconds where a float holds every millisecond exactly (to 2106, and as far back).
_EXACT_SPAN = 2**32
_CANONICAL = "2026-01-01T00:00:00.000Z"


@given(st.integers(-_EXACT_SPAN * 1000, _EXACT_SPAN * 1000 - 1))
def test_time_round_trip_is_exact(millis: int) -> None:
    """Promise 4: a time written by format_time parses back to the very same value
    and prints back to the very same string (one form per instant)."""
    epoch = millis / 1000
    text = format_time(epoch)
    assert parse_time(text) == epoch
    assert format_time(parse_time(text)) == text


@given(st.floats(-_EXACT_SPAN, _EXACT_SPAN, allow_nan=False))
def test_any_written_time_is_accepted(epoch: float) -> None:
    """Promise 4: whatever time the gateway writes (any float epoch, truncated to the
    millisecond) is accepted by the parser and prints back unchanged."""
    text = format_time(epoch)
    assert format_time(parse_time(text)) == text


# Strings near the canonical form: fields of the wrong width, other separators, other
# digits (Unicode ones too), out-of-range fields, and the canonical form itself.
_near_times = st.one_of(
    st.from_regex(r"[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}[T ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}"
                  r"\.[0-9]{0,5}[Zz]?", fullmatch=True),
    st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", fullmatch=True),
    st.builds(lambda at, char: _CANONICAL[:at] + char + _CANONICAL[at + 1:],
              st.integers(0, len(_CANONICAL) - 1), st.characters()),
    st.builds(lambda at, char: _CANONICAL[:at] + char + _CANONICAL[at:],
              st.integers(0, len(_CANONICAL)), st.characters()),
    st.text(max_size=30),
)


@given(_near_times)
def test_accepted_times_print_back_to_themselves(text: str) -> None:
    """Promise 4: the parser accepts only the canonical form: any string it accepts
    is exactly what format_time writes for the value; anything else is malformed_entry."""
    try:
        epoch = parse_time(text)
    except VerificationError as e:
        assert e.code == "malformed_entry"
    else:
        assert format_time(epoch) == text


@pytest.mark.parametrize("bad", [
    "2026-1-01T00:00:00.0000Z", "2026-01-1T00:00:00.0000Z", "2026-01-01T0:00:00.0000Z",
    "2026-01-01T00:00:00.00Z", "2026-01-01T00:00:00.0000Z", "2026-01-01T00:00:00Z",
    "2026-01-01 00:00:00.000Z", "2026-01-01T00:00:00.000z", "2026-01-01T00:00:00.000+00:00",
    "2026-01-01T00:00:00.000Z\n", " 2026-01-01T00:00:00.000Z", "+2026-01-01T00:00:0.000Z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00.000Z", "2026-01-01T00:00:00.\u0661\u0662\u0663Z",
    "2026-02-30T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-01-01T24:00:00.000Z",
    "2026-12-31T23:59:60.000Z", "0000-01-01T00:00:00.000Z", "10000-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z", "", None, 1_764_288_000,
], ids=lambda bad: repr(bad)[:32])
def test_non_canonical_times_are_refused(bad: object) -> None:
    """Bad input: a time in any but the one written form is malformed_entry, including
    the single-digit month the old parser took and instants a float cannot hold."""
    with pytest.raises(VerificationError) as e:
        parse_time(bad)  # type: ignore[arg-type]
    assert e.value.code == "malformed_entry"


def test_entry_families_are_entry_types() -> None:
    """Promise 4: the families other modules import (decisions, approval changes,
    release ledger) name only defined entry types, and decisions name Cedar actions."""
    for family in (DECISION_ACTIONS, APPROVAL_CHANGE_TYPES, RELEASE_ENTRY_TYPES):
        assert set(family) <= set(ENTRY_TYPES)
    assert set(DECISION_ACTIONS.values()) <= set(ACTIONS)
    for kind in DECISION_ACTIONS:
        assert "decisions" in ENTRY_TYPES[kind]


def test_entry_size_limit_is_the_logs() -> None:
    """Promise 4: encode_entry refuses exactly the entries the log's bundle format
    cannot hold (over ENTRY_MAX bytes), so nothing is refused later by the log."""
    overhead = len(encode_entry("migration", 0, {"batch": ""}))
    assert len(encode_entry("migration", 0, {"batch": "x" * (ENTRY_MAX - overhead)})) == ENTRY_MAX
    with pytest.raises(ValueError, match="exceeds the log's limit"):
        encode_entry("migration", 0, {"batch": "x" * (ENTRY_MAX - overhead + 1)})

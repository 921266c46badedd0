"""Log entry vocabulary: canonical JSON, strict parsing, keyed pseudonyms.

Promise 4 (replayable decisions) needs entries that parse the same way for
everyone; promise 7 needs pseudonyms nobody but the custodian can link.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.entries import (
    Pseudonymizer,
    canonical_json,
    encode_entry,
    format_time,
    parse_entry,
    parse_time,
)
from bordergate.errors import VerificationError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k not in {"v", "type", "time"}),
                       json_values, max_size=5))
def test_canonical_entries_round_trip(extra: dict[str, object]) -> None:
    """Promise 4: any entry encodes canonically and parses back to the same body."""
    body = {"kind": "create", "kek_version": 1, **extra}
    data = encode_entry("key-event", 1_764_288_000.123, body)
    entry = parse_entry(data)
    assert entry.type == "key-event"
    assert {k: v for k, v in entry.body.items() if k not in {"v", "type", "time"}} == body
    assert canonical_json(dict(entry.body)) == data


def test_time_format_is_rfc3339_milliseconds() -> None:
    """Behaviour: entry times are RFC 3339 UTC with milliseconds."""
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert parse_time(format_time(1_764_288_000.5)) == 1_764_288_000.5


@pytest.mark.parametrize("bad", [
    b"not json", b"[1]", b'{"v":2,"type":"key-event","time":"1970-01-01T00:00:00.000Z"}',
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

"""The accelerated inspector's own parsers agree with the one entry parser (issue 10, items 1, 7).

One definition of a valid entry: the accelerated path's ``fast_parse_entry`` and
its time parsers (``_fast_time``, ``_window_time``) accept exactly what
``bordergate.entries`` accepts, and only the canonical time form it writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bordergate.audit._accelerated import _fast_time, _window_time, fast_parse_entry
from bordergate.entries import ENTRY_VERSION, ENTRY_VERSIONS, format_time, parse_entry, parse_time
from bordergate.errors import VerificationError
from tests.audit.scenario import LOCAL, PARENT, EntryFactory, apr


def canonical_time(text: str) -> float | None:
    """What the canonical parser makes of ``text`` if ``format_time`` writes it back
    byte for byte, else None (the canonical form is what ``entries`` writes)."""
    try:
        t = parse_time(text)
    except (VerificationError, TypeError):
        return None
    return t if format_time(t) == text else None


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=max(0, n - 1), max_size=n + 1)


# times near the canonical form: each part one digit short or long, odd separators
near_times = st.builds(
    lambda y, mo, d, sep, h, mi, s, dot, frac, z: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{dot}{frac}{z}",
    _digits(4), _digits(2), _digits(2), st.sampled_from(["T", "T", "t", " "]), _digits(2),
    _digits(2), _digits(2), st.sampled_from([".", ".", ","]), _digits(3),
    st.sampled_from(["Z", "Z", "z", "+00:00"]))
real_times = st.floats(0, 4_102_444_800, allow_nan=False).map(format_time)


@settings(max_examples=600, deadline=None)
@given(st.one_of(near_times, real_times, st.text(max_size=30)))
@example("2026-1-01T00:00:00.0000Z")
@example("2026-01-01T00:00:00.0000")
@example("2026-01-01T0:00:00.00000Z")
@example("2026-02-30T00:00:00.000Z")
@example("2026-01-01T00:00:60.000Z")
@example("\uff12026-01-01T00:00:00.000Z")
def test_fast_time_accepts_exactly_the_canonical_form(text: str) -> None:
    """Item 7: the audit's fast time parsers accept a time string exactly when the
    canonical parser does and ``format_time`` writes it back unchanged, and then give
    the same value."""
    expected = canonical_time(text)
    assert _fast_time(text) == expected
    if text.isascii():
        assert _window_time(text.encode()) == expected


def test_one_digit_month_is_refused() -> None:
    """Item 7: the example of the issue, ``2026-1-01T00:00:00.0000Z``, is not an entry time."""
    assert _fast_time("2026-1-01T00:00:00.0000Z") is None
    assert _window_time(b"2026-1-01T00:00:00.0000Z") is None
    assert _fast_time("2026-01-01T00:00:00.000Z") == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 255), st.sampled_from([0, 1, 2]),
       st.sampled_from(sorted(ENTRY_VERSIONS)))
def test_fast_parser_accepts_only_what_parse_entry_accepts(at: int, byte: int,
                                                          which: int, version: int) -> None:
    """Entries are well-formed per entries.parse_entry: the auditor's faster parser
    returns an equal entry or declines (then parse_entry decides), for any single-byte
    change of real entries of every entry version (issue 12 item 7)."""
    f = EntryFactory()
    entry = [f.access(LOCAL, ["handle", "email"]), f.export(LOCAL, "country", 5),
             f.approval_request(apr(9), PARENT)][which]
    data = bytearray(entry.replace(b'"v":%d}' % ENTRY_VERSION, b'"v":%d}' % version))
    data[at % len(data)] = byte
    fast = fast_parse_entry(bytes(data))
    try:
        slow = parse_entry(bytes(data))
    except VerificationError:
        assert fast is None
        return
    if fast is not None:
        assert (fast.type, fast.time, fast.body) == (slow.type, slow.time, slow.body)
        assert format_time(fast.time) == fast.body["time"]


@pytest.mark.parametrize("when", ["2026-01-01T00:00:00.000Z", "1970-01-01T00:00:00.999Z",
                                  "2099-12-31T23:59:59.001Z"])
def test_fast_time_round_trips(when: str) -> None:
    """Item 7: a canonical time parses to the value that ``format_time`` writes back."""
    t = _fast_time(when)
    assert t is not None and format_time(t) == when

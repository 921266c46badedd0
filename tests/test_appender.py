"""Who appended an entry (issue 12 item 2): the ``appender`` member an appender adds
and the sequencer service's check that it names the authenticating credential."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.appender import claimed_appender, require_appender, stamp
from bordergate.entries import canonical_json, encode_entry, parse_entry
from bordergate.errors import VerificationError

ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
ENTRIES = [
    encode_entry("token-revoke", 1.5, {"jti": "j1", "by": "custodian"}),
    encode_entry("approval-refused", 2.0, {"approval": "a", "actor": "p", "action": "grant",
                                            "code": "c"}),
    encode_entry("key-event", 3.0, {"kind": "kek-created", "kek_version": 1}),
]


@given(st.sampled_from(ENTRIES), ids)
def test_stamp_is_the_canonical_entry_with_the_member(entry: bytes, appender: str) -> None:
    """stamp() gives the reference encoding of the entry plus ``appender`` (fast path
    and parse path alike), which still parses as an entry and passes the check."""
    stamped = stamp(entry, appender)
    assert stamped == canonical_json({**parse_entry(entry).body, "appender": appender})
    assert parse_entry(stamped).body["appender"] == appender
    require_appender(appender, stamped)


def test_sequencer_check_refuses_other_or_missing_appenders() -> None:
    """The service refuses an entry naming another credential (appender_mismatch),
    none (appender_missing) or naming it twice (appender_malformed)."""
    entry = ENTRIES[0]
    cases = {"appender_mismatch": stamp(entry, "us-release"),
             "appender_missing": entry,
             "appender_malformed": stamp(entry, "us-gw-1")[:-1] + b',"appender":"x"}'}
    for code, candidate in cases.items():
        with pytest.raises(VerificationError) as e:
            require_appender("us-gw-1", candidate)
        assert e.value.code == code


@given(st.binary(max_size=64))
def test_claimed_appender_never_leaks(data: bytes) -> None:
    """Untrusted bytes give an appender, None, or appender_malformed."""
    try:
        claimed_appender(data)
    except VerificationError as e:
        assert e.code == "appender_malformed"

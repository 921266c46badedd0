"""Who appended an entry (issue 12 item 2): the ``appender`` member an appender adds
and the sequencer service's check that it names the authenticating credential."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordergate.appender import (
    ROLE_TYPES,
    claimed_appender,
    require_appender,
    require_role,
    stamp,
)
from bordergate.entries import ENTRY_TYPES, canonical_json, encode_entry, parse_entry
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


keys = st.one_of(st.sampled_from(["a", "action", "app", "appendeq", "appender_", "appenders",
                                   "approval", "b", "z", "\u00e9", "a\"b", "\\", "\n"]),
                 st.text(max_size=12)).filter(lambda k: k != "appender")
values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@given(st.dictionaries(keys, values, min_size=1, max_size=6), ids)
def test_stamp_of_any_canonical_object_is_the_reference(body: dict[str, object],
                                                        appender: str) -> None:
    """The fast path (member put first when the first key sorts after it) and the
    parse path give the reference encoding for any canonical object: keys before
    and after "appender", prefixes of it, escaped and non-ASCII keys."""
    try:
        entry = canonical_json(body)
    except UnicodeEncodeError:  # a lone surrogate: not an entry anyone can encode
        return
    assert stamp(entry, appender) == canonical_json({**body, "appender": appender})


def test_a_decision_entry_is_stamped_as_the_reference() -> None:
    """A read's entry (first key "approval", after "appender") is stamped as the
    reference encodes it; an entry already naming an appender is refused."""
    entry = canonical_json({"approval": None, "bundle": "sha256:00", "type": "access",
                            "v": 2, "time": "2026-01-01T00:00:00.000Z"})
    stamped = stamp(entry, "us-gw-1")
    assert stamped == canonical_json({**json.loads(entry), "appender": "us-gw-1"})
    with pytest.raises(ValueError):
        stamp(stamped, "us-gw-1")


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


TYPES = sorted({*ENTRY_TYPES, "not-a-type"})


@given(st.sampled_from(sorted(ROLE_TYPES)), st.sampled_from(TYPES),
       st.lists(st.sampled_from([*TYPES, "Field", "Subject"]), max_size=3),
       st.booleans(), st.booleans())
def test_a_role_appends_exactly_its_entry_types(role: str, kind: str, nested: list[str],
                                                escaped: bool, after_v: bool) -> None:
    """The sequencer's role check (issue 12 item 2) accepts an entry exactly when its
    top-level type is one of the role's, whatever ``type`` members its nested objects
    hold (the path reading the entry's tail and the parse path agree: a member
    sorting after ``v`` takes the parse), and with a key spelled with an escape too."""
    body: dict[str, object] = {"appender": "a", "type": kind, "v": 2,
                               "inner": [{"type": t, "x": 1, "v": 2} for t in nested]}
    if after_v:
        body["w"] = {"type": "access", "v": 2}
    entry = canonical_json(body)
    if escaped:
        entry = entry.replace(b'"x":', b'"\\u0078":')
    if kind in ROLE_TYPES[role]:
        require_role(role, entry)
    else:
        with pytest.raises(VerificationError) as refused:
            require_role(role, entry)
        assert refused.value.code == "appender_role_refused"


def test_an_unknown_role_or_bytes_that_are_not_json_are_refused() -> None:
    """Fail closed: a role no table names refuses everything; bytes that name a type
    the role may not write but do not parse are ``appender_malformed``."""
    with pytest.raises(VerificationError) as refused:
        require_role("auditor", ENTRIES[0])
    assert refused.value.code == "appender_role_unknown"
    with pytest.raises(VerificationError) as refused:
        require_role("release", b'{"appender":"us-release","type":"approval-grant"')
    assert refused.value.code == "appender_malformed"


def test_every_role_the_auditor_knows_is_the_sequencers() -> None:
    """One table: the auditor's appender rule judges with the sequencer's roles."""
    from bordergate.audit.rules import appenders
    assert appenders.ROLE_TYPES is ROLE_TYPES

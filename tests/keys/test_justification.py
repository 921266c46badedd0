"""The key service's judgement of a justification (issue 13, item 3), pure: each
refusal has its stable code, and only a promised, well-formed, fresh, allowed
decision of the operation's type about the subject passes."""

from __future__ import annotations

import pytest

from bordergate.entries import encode_entry
from bordergate.keys.justification import (
    REFUSAL_CODES,
    JustificationRefused,
    check_justification,
)
from bordergate.tlog.note import Signer
from bordergate.tlog.promise import promise_for

LOG = Signer.from_seed("us.test/log", b"\x01" * 32)      # TEST-ONLY
OTHER = Signer.from_seed("us.test/log", b"\x02" * 32)    # TEST-ONLY
NOW = 1_800_000_000.0
SUBJECT = "subject:" + "ab" * 32


SEALED = {"users": frozenset({"email", "government_id"})}


def _entry(kind: str = "access", *, subject: str = SUBJECT, outcome: str = "allow",
           t: float = NOW, fields: tuple[str, ...] = ("email", "handle")) -> bytes:
    return encode_entry(kind, t, {
        "principal": {"id": "p"}, "collection": "users", "subject": subject,
        "record": "record:x", "purpose": "operations", "bundle": "b", "decisions": [],
        "outcome": outcome, "released": list(fields), "fields": list(fields)})


def _judge(entry: bytes | None, promise: bytes | None, *, operation: str = "read") -> str:
    try:
        check_justification(operation=operation, subject_pseudonym=SUBJECT, entry=entry,
                            promise=promise, verifier=LOG.verifier(), now=NOW, window=30,
                            sealed=SEALED)
    except JustificationRefused as exc:
        return exc.code
    return "released"


def _promised(entry: bytes, signer: Signer = LOG, t: float = NOW) -> bytes:
    return promise_for(signer, 7, entry, int(t * 1000))


CASES = {
    "released": lambda: (_entry(), _promised(_entry()), "read"),
    "partial read released": lambda: (_entry(outcome="partial"),
                                      _promised(_entry(outcome="partial")), "read"),
    "key_justification_missing": lambda: (None, None, "read"),
    "key_justification_unproven": lambda: (_entry(), _promised(_entry(), OTHER), "read"),
    "key_justification_malformed": lambda: (b"{}", _promised(b"{}"), "read"),
    "key_justification_wrong_operation": lambda: (_entry(), _promised(_entry()), "write"),
    "key_justification_subject_mismatch": lambda: (
        _entry(subject="subject:" + "cd" * 32),
        _promised(_entry(subject="subject:" + "cd" * 32)), "read"),
    "key_justification_denied": lambda: (_entry(outcome="deny"),
                                         _promised(_entry(outcome="deny")), "read"),
    "key_justification_no_sealed_field": lambda: (
        _entry(fields=("handle",)), _promised(_entry(fields=("handle",))), "read"),
    "key_justification_stale": lambda: (_entry(t=NOW - 31), _promised(_entry(t=NOW - 31)),
                                        "read"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_justification_gets_its_verdict(case: str) -> None:
    """Each case is judged with its stable code (or released)."""
    entry, promise, operation = CASES[case]()
    expected = "released" if case.endswith("released") else case
    assert _judge(entry, promise, operation=operation) == expected


def test_a_partial_write_is_denied_and_every_code_is_listed() -> None:
    """A write needs every field allowed; the codes tested are the module's list."""
    entry = _entry("write", outcome="partial")
    assert _judge(entry, _promised(entry), operation="write") == "key_justification_denied"
    assert set(REFUSAL_CODES) == {c for c in CASES if c.startswith("key_")}

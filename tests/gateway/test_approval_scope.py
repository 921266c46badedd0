"""The reach of one approval (issue 11 item 4): scopes are parsed into pseudonyms,
bad scopes are refused with ``invalid_scope``, and the subject ledger caps distinct
subjects atomically across connections to one SQLite file (as across workers)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bordergate.entries import Pseudonymizer
from bordergate.errors import ConfigError, InvalidInput
from bordergate.gateway.approval_scope import (
    MAX_SCOPE_ITEMS,
    ApprovalScope,
    MemorySubjectLedger,
    open_subject_ledger,
    parse_scope,
)
from bordergate.policy.approval_limits import parse_approval_limits
from bordergate.subjects import SubjectId

PSEUDONYMS = Pseudonymizer(b"TEST-ONLY pseudonym secret, 32 bytes!")


def scope(**payload: object) -> ApprovalScope:
    return parse_scope(payload, home="us", collections=["users"],
                       subject_pseudonym=PSEUDONYMS.subject,
                       record_pseudonym=PSEUDONYMS.record)


def test_scope_holds_pseudonyms_only() -> None:
    """Promise 7: subjects and records of a scope become pseudonyms; the ticket stays."""
    subject = str(SubjectId.mint("us"))
    parsed = scope(subjects=[subject], records=["users/rec-1"], ticket="INC-42")
    assert parsed.subjects == (PSEUDONYMS.subject(subject),)
    assert parsed.records == (PSEUDONYMS.record("users", "rec-1"),)
    assert parsed.ticket == "INC-42"
    assert subject not in repr(parsed)


@pytest.mark.parametrize("payload", [
    {"subjects": "us-x"}, {"subjects": ["not a subject"]},
    {"subjects": [str(SubjectId.mint("eu"))]}, {"records": ["messages/rec-1"]},
    {"records": ["users/bad id"]}, {"ticket": "x" * 65}, {"ticket": 7},
    {"records": [f"users/r{i}" for i in range(MAX_SCOPE_ITEMS + 1)]},
], ids=["not-a-list", "malformed-subject", "subject-abroad", "other-collection",
        "malformed-record", "long-ticket", "ticket-not-text", "too-many"])
def test_bad_scopes_are_refused(payload: dict[str, object]) -> None:
    """Bad input: every malformed scope is InvalidInput ``invalid_scope``."""
    with pytest.raises(InvalidInput) as info:
        scope(**payload)
    assert info.value.code == "invalid_scope"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL of one jurisdiction, SQLite or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'records.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_ledger_caps_distinct_subjects_across_connections(store_url: str) -> None:
    """Two ledgers on one database (two workers) racing to claim 40 subjects under a cap
    of 5 admit exactly 5 distinct subjects; a subject already claimed stays admitted."""
    ledgers = [open_subject_ledger(store_url), open_subject_ledger(store_url)]
    admitted: list[str] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        subject = f"subject:{n:064x}"
        if ledgers[n % 2].claim("apr-x", subject, 5):
            with lock:
                admitted.append(subject)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 5
    assert all(ledgers[1].claim("apr-x", s, 5) for s in admitted)
    assert ledgers[0].claim("apr-y", admitted[0], 5)  # another approval counts apart
    for ledger in ledgers:
        ledger.close()


def test_memory_ledger_matches() -> None:
    """The in-memory twin: the (N+1)th distinct subject is refused."""
    ledger = MemorySubjectLedger()
    assert [ledger.claim("a", s, 2) for s in ("s1", "s2", "s1", "s3")] == [
        True, True, True, False]


@pytest.mark.parametrize("text", [
    b"[approvals]\nmax_duration_s = 0\nmax_subjects = 3\n",
    b"[approvals]\nmax_duration_s = 3600\n",
    b"[approvals]\nmax_duration_s = 3600\nmax_subjects = true\n",
    b"[approvals]\nmax_duration_s = 3600\nmax_subjects = 3\nextra = 1\n",
    b"[other]\n", b"not toml [",
], ids=["zero", "missing", "bool", "extra", "no-table", "not-toml"])
def test_bad_approval_limits_name_the_file(text: bytes) -> None:
    """Configuration: a wrong approvals.toml is ConfigError ``approval_limits_invalid``
    naming the file."""
    with pytest.raises(ConfigError) as info:
        parse_approval_limits("bundle", text)
    assert info.value.code == "approval_limits_invalid" and "approvals.toml" in str(info.value)

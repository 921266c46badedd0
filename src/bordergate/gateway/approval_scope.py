"""How far one approval reaches: its subject and record scope, and its subject cap.

An approval request may narrow an approval to some subjects or records and
name the ticket it serves; the bundle's ``approvals.toml`` caps the distinct
subjects readable under one approval.  Subjects and records are kept and
logged only as pseudonyms (promise 7), so the approvals table and the log never
hold a raw subject id; the gateway compares the pseudonym of the record it is
about to read with the scope.

The cap is counted in a :class:`SubjectLedger` beside the approvals table (the
same SQLite file or PostgreSQL database, so every worker shares it): a subject
is *claimed* atomically before the decision, and the claim of the (N+1)th
distinct subject fails.  A claim whose read then fails to log only makes the
gateway stricter than the log shows (fail closed).

This module must never log or decide policy; it answers whether an access is
inside an approval's reach, which the policy sees as ``context.approval.in_scope``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bordergate.errors import InvalidInput
from bordergate.locations import parse_store_location
from bordergate.postgres_tables import SharedConnection
from bordergate.sqlite_connections import ThreadConnections
from bordergate.subjects import SubjectId, parse_record_id

__all__ = [
    "MAX_SCOPE_ITEMS",
    "ApprovalScope",
    "MemorySubjectLedger",
    "PostgresSubjectLedger",
    "SqliteSubjectLedger",
    "SubjectLedger",
    "open_subject_ledger",
    "parse_scope",
]

MAX_SCOPE_ITEMS = 100
_TICKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}")


@dataclass(frozen=True)
class ApprovalScope:
    """The optional narrowing of an approval (pseudonyms only).

    Attributes:
        subjects: subject pseudonyms it is limited to (empty: any subject).
        records: record pseudonyms it is limited to (empty: any record).
        ticket: the ticket or case reference it serves, if given.
    """

    subjects: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    ticket: str | None = None

    def covers(self, subject: str, record: str) -> bool:
        """Whether a record (``record``'s pseudonym, of ``subject``) is inside the scope."""
        return (not self.subjects or subject in self.subjects) and \
            (not self.records or record in self.records)


def _names(payload: Mapping[str, object], key: str) -> list[str]:
    value = payload.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value) or \
            len(value) > MAX_SCOPE_ITEMS:
        raise InvalidInput(f"body.{key} must be an array of at most {MAX_SCOPE_ITEMS} ids",
                           code="invalid_scope")
    return list(value)


def parse_scope(payload: Mapping[str, object], *, home: str, collections: Sequence[str],
                subject_pseudonym: Callable[[str], str],
                record_pseudonym: Callable[[str, str], str]) -> ApprovalScope:
    """The scope of an approval request body (``subjects``, ``records``, ``ticket``).

    ``subjects`` are subject ids homed in ``home``; ``records`` are
    ``<collection>/<record id>`` of the request's ``collections``.  Both are turned
    into pseudonyms here; the raw ids go no further.

    Raises:
        InvalidInput: ``invalid_scope`` (a subject homed elsewhere, a record of
            another collection, a malformed id or ticket, too many items).
    """
    subjects = set()
    for text in _names(payload, "subjects"):
        try:
            subject = SubjectId.parse(text)
        except InvalidInput as exc:
            raise InvalidInput("body.subjects holds a malformed subject id",
                               code="invalid_scope") from exc
        if subject.home != home:
            raise InvalidInput("body.subjects may name only subjects homed here",
                               code="invalid_scope")
        subjects.add(subject_pseudonym(str(subject)))
    records = set()
    for text in _names(payload, "records"):
        collection, _, record_id = text.partition("/")
        if collection not in collections:
            # well-formed, but naming a collection the approval does not: 422 (the
            # OpenAPI document can say each item's shape, not that cross-reference)
            outside = InvalidInput("body.records must be <collection>/<record id> of the "
                                   "approval's collections", code="invalid_scope")
            outside.http_status = 422
            raise outside
        try:
            parse_record_id(record_id)
        except InvalidInput as exc:
            raise InvalidInput("body.records holds a malformed record id",
                               code="invalid_scope") from exc
        records.add(record_pseudonym(collection, record_id))
    ticket = payload.get("ticket")
    if ticket is not None and (not isinstance(ticket, str) or not _TICKET.fullmatch(ticket)):
        raise InvalidInput("body.ticket must be 1-64 characters of A-Z a-z 0-9 . _ : / # -",
                           code="invalid_scope")
    return ApprovalScope(tuple(sorted(subjects)), tuple(sorted(records)), ticket)


class SubjectLedger(Protocol):
    """The distinct subjects read under each approval, shared by every worker."""

    def claim(self, approval_id: str, subject: str, limit: int) -> bool:
        """Record ``subject`` (a pseudonym) as read under the approval, unless that
        would make more than ``limit`` distinct subjects.  True if it is (now) recorded.

        Raises:
            Unavailable: ``store_unavailable``.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemorySubjectLedger:
    """The in-memory twin."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def claim(self, approval_id: str, subject: str, limit: int) -> bool:
        with self._lock:
            seen = self._seen.setdefault(approval_id, set())
            if subject in seen:
                return True
            if len(seen) >= limit:
                return False
            seen.add(subject)
            return True

    def close(self) -> None:
        pass


class _Claimed:
    """Claims this process has seen succeed: a claim is never taken back, so a repeated
    read of one subject under one approval needs no database round trip (bounded)."""

    _MAX = 100_000

    def __init__(self) -> None:
        self._pairs: set[tuple[str, str]] = set()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self._pairs

    def add(self, pair: tuple[str, str]) -> None:
        if len(self._pairs) >= self._MAX:
            self._pairs.clear()
        self._pairs.add(pair)


_TABLE = """CREATE TABLE IF NOT EXISTS gateway_approval_subjects (
    approval TEXT NOT NULL, subject TEXT NOT NULL, PRIMARY KEY (approval, subject))"""
_HAS = "SELECT 1 FROM gateway_approval_subjects WHERE approval = {0} AND subject = {0}"
_COUNT = "SELECT count(*) FROM gateway_approval_subjects WHERE approval = {0}"
_ADD = "INSERT INTO gateway_approval_subjects VALUES ({0}, {0})"


class SqliteSubjectLedger:
    """The ledger in a table of the jurisdiction's SQLite file (one writer at a time)."""

    def __init__(self, path: str | Path) -> None:
        """Open the table (created if missing).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._conns = ThreadConnections(path, what="approval subject ledger")
        self._claimed = _Claimed()
        self._conns.run(lambda conn: conn.execute(_TABLE))

    def claim(self, approval_id: str, subject: str, limit: int) -> bool:
        if (approval_id, subject) in self._claimed:
            return True

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")  # the count and the insert as one
            try:
                ok = _claim_in(conn.execute, "?", approval_id, subject, limit)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return ok
        ok = self._conns.run(work)
        if ok:
            self._claimed.add((approval_id, subject))
        return ok

    def close(self) -> None:
        self._conns.close()


def _claim_in(execute: Callable[..., object], mark: str, approval_id: str, subject: str,
              limit: int) -> bool:
    """The claim inside a transaction that serialises claims of one approval."""
    if execute(_HAS.format(mark), (approval_id, subject)).fetchone() is not None:  # type: ignore[attr-defined]
        return True
    count = execute(_COUNT.format(mark), (approval_id,)).fetchone()[0]  # type: ignore[attr-defined]
    if int(count) >= limit:
        return False
    execute(_ADD.format(mark), (approval_id, subject))
    return True


class PostgresSubjectLedger:
    """The ledger in a table of the jurisdiction's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        """Connect and create the table if missing.

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._claimed = _Claimed()
        self._db = SharedConnection(url, ddl=[_TABLE], what="approval subject ledger")

    def claim(self, approval_id: str, subject: str, limit: int) -> bool:
        if (approval_id, subject) in self._claimed:
            return True
        with self._db.using(transaction=True) as conn:
            # one claim per approval at a time, across every worker
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (approval_id,))
            ok = _claim_in(conn.execute, "%s", approval_id, subject, limit)
        if ok:
            self._claimed.add((approval_id, subject))
        return ok

    def close(self) -> None:
        self._db.close()


def open_subject_ledger(store_url: str) -> SubjectLedger:
    """The subject ledger beside the records a store URL names.

    Raises:
        ConfigError: ``store_url`` for an unknown scheme.
        Unavailable: ``store_unavailable``.
    """
    location = parse_store_location(store_url)
    if location.kind == "postgresql":
        return PostgresSubjectLedger(location.target)
    if location.kind == "memory":
        return MemorySubjectLedger()
    return SqliteSubjectLedger(location.target)

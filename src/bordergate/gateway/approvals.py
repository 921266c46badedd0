"""Lockbox-style access approvals: request, two custodian grants, expiry, revocation.

A principal who needs ``protected`` data from abroad asks for an approval:
a purpose and one of its reason codes, a scope (collections and field
classes), a maximum duration and (from the token) where they work.  The
approval becomes valid only when two *distinct* custodian approvers, neither
of them the requester, granted it (whether a principal may approve at all is
the policy's ``approve`` decision, taken by the gateway).  It expires by
itself (``expires`` is fixed at request time), a single denial closes it, and
the requester or an approver can revoke it at any time.  A valid approval is
what the policy sees as ``context.approval`` (:meth:`ApprovalRecord.policy_view`).

Every state change is a log entry, sequenced before the gateway answers; the
store here is only a cache of the log, rebuildable with :func:`rebuild_approvals`.
The state lives beside the jurisdiction's records (a small table in the same
SQLite file or PostgreSQL database) and never holds subject data.

The transitions are pure (values and a time in, a new value out); the stores
are one small interface with an in-memory twin.  This module must never decide
policy itself beyond the two-distinct-approvers rule, and never log.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from bordergate.approval_statement import (
    ApprovalStatement,
    ApproverKeys,
    SignedStatement,
    request_digest,
    verify_statement,
)
from bordergate.entries import Entry, canonical_json
from bordergate.errors import (
    BordergateError,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    VerificationError,
)
from bordergate.gateway.approval_scope import ApprovalScope
from bordergate.locations import parse_store_location
from bordergate.policy.entities import FIELD_CLASSES, Approval, ApprovalRequest, Principal
from bordergate.postgres_tables import SharedConnection

__all__ = [
    "APPROVALS_NEEDED",
    "ApprovalRecord",
    "ApprovalState",
    "ApprovalStore",
    "MemoryApprovalStore",
    "PostgresApprovalStore",
    "SqliteApprovalStore",
    "change_signature",
    "deny",
    "grant",
    "mint_approval_id",
    "new_request",
    "open_approval_store",
    "parse_approval_id",
    "rebuild_approvals",
    "reconcile_approvals",
    "revoke",
]

ApprovalState = Literal["pending", "granted", "denied", "revoked"]
STATES: tuple[str, ...] = ("pending", "granted", "denied", "revoked", "expired")
APPROVALS_NEEDED = 2
_ID_PREFIX = "apr-"
_ID_LENGTH = len(_ID_PREFIX) + 26
_UNSCOPED = ApprovalScope()


def mint_approval_id() -> str:
    """A fresh approval id: ``apr-`` and 128 random bits in lowercase base32."""
    raw = base64.b32encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii").lower()
    return _ID_PREFIX + raw


def parse_approval_id(text: str) -> str:
    """Check an approval id's shape and return it.

    Raises:
        InvalidInput: ``malformed_approval_id``.
    """
    ok = (isinstance(text, str) and len(text) == _ID_LENGTH and text.startswith(_ID_PREFIX)
          and all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in text[len(_ID_PREFIX):]))
    if not ok:
        raise InvalidInput("malformed approval id", code="malformed_approval_id")
    return text


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval and its state (never any subject data).

    Attributes:
        id: ``apr-...``.
        requester: the requesting principal's id.
        requester_org: their organisation.
        requester_location: where they work (from their token).
        purpose: the one purpose covered.
        reason: the reason code (one of the purpose's).
        collections: collections covered.
        classes: field classes covered.
        home: the jurisdiction whose gateway holds the approval.
        requested_at: Unix seconds.
        expires: Unix seconds; no approval is valid at or after it.
        state: pending, granted, denied or revoked.
        approvers: ids of the distinct approvers who granted, in order.
        closed_by: who denied or revoked it.
        version: bumped on every change (compare-and-set in stores).
        changed_at: the log index of the entry of its last change (its request,
            a grant, its denial or revocation): the version of its state that
            the log's sequencer checks reads against (``entry_state``); None in
            a table written before it was recorded, until reconciled.
        scope: the subjects, records (pseudonyms) and ticket it is narrowed to.
        max_subjects: distinct subjects readable under it (None: no cap).
        request_entry: the canonical text of its ``approval-request`` entry, whose
            digest approvers sign (``approval_statement``); None in a table
            written before it was kept, until reconciled.
    """

    id: str
    requester: str
    requester_org: str
    requester_location: str
    purpose: str
    reason: str
    collections: tuple[str, ...]
    classes: tuple[str, ...]
    home: str
    requested_at: int
    expires: int
    state: ApprovalState = "pending"
    approvers: tuple[str, ...] = ()
    closed_by: str | None = None
    version: int = 1
    changed_at: int | None = None
    scope: ApprovalScope = _UNSCOPED
    max_subjects: int | None = None
    request_entry: str | None = None

    @property
    def request_digest(self) -> str | None:
        """The digest approvers sign (:func:`~bordergate.approval_statement.request_digest`
        of the request entry), None while the entry is unknown."""
        if self.request_entry is None:
            return None
        return request_digest(self.request_entry.encode("utf-8"))

    def status(self, now: float) -> str:
        """The state as seen at ``now``: ``expired`` once pending/granted ones expire."""
        if self.state in ("pending", "granted") and now >= self.expires:
            return "expired"
        return self.state

    def valid(self, now: float) -> bool:
        """Granted by two distinct approvers, not closed, not expired."""
        return (self.state == "granted" and len(set(self.approvers)) >= APPROVALS_NEEDED
                and now < self.expires)

    def policy_view(self, now: float, in_scope: bool = True) -> Approval:
        """What the policy sees as ``context.approval`` (it checks expiry itself too);
        ``in_scope``: the access is inside the approval's reach (``approval_scope``)."""
        return Approval(
            id=self.id, requester=self.requester, purpose=self.purpose,
            collections=frozenset(self.collections), classes=frozenset(self.classes),
            valid=self.valid(now), expires=self.expires, in_scope=in_scope)

    def serves(self, principal_id: str, collection: str, purpose: str) -> bool:
        """Whether a read by ``principal_id`` of ``collection`` for ``purpose`` is one
        this approval was asked for: its requester's, in its collections, for its
        purpose.  Only such a read may spend its subject cap or lift a hold (the
        policy checks the same for the fields it permits)."""
        return principal_id == self.requester and collection in self.collections and \
            purpose == self.purpose

    def as_resource(self) -> ApprovalRequest:
        """The resource of the ``approve`` decision."""
        return ApprovalRequest(self.requester, self.purpose, frozenset(self.collections),
                               frozenset(self.classes), self.home)

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """The JSON form served by the API and stored (``status`` only when ``now``)."""
        out: dict[str, Any] = {
            "id": self.id, "requester": self.requester, "requester_org": self.requester_org,
            "requester_location": self.requester_location, "purpose": self.purpose,
            "reason": self.reason, "collections": list(self.collections),
            "classes": list(self.classes), "home": self.home,
            "requested_at": self.requested_at, "expires": self.expires, "state": self.state,
            "approvers": list(self.approvers), "closed_by": self.closed_by,
            "version": self.version, "changed_at": self.changed_at,
            "subjects": list(self.scope.subjects),
            "records": list(self.scope.records), "ticket": self.scope.ticket,
            "max_subjects": self.max_subjects, "request_entry": self.request_entry,
            "request_digest": self.request_digest,
        }
        if now is not None:
            out["status"] = self.status(now)
            out["valid"] = self.valid(now)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalRecord:
        """Rebuild from :meth:`to_json` output (trusted: our own store).

        Raises:
            Unavailable: ``approval_store_damaged`` if the stored form is broken.
        """
        try:
            return cls(
                id=data["id"], requester=data["requester"], requester_org=data["requester_org"],
                requester_location=data["requester_location"], purpose=data["purpose"],
                reason=data["reason"], collections=tuple(data["collections"]),
                classes=tuple(data["classes"]), home=data["home"],
                requested_at=int(data["requested_at"]), expires=int(data["expires"]),
                state=data["state"], approvers=tuple(data["approvers"]),
                closed_by=data["closed_by"], version=int(data["version"]),
                changed_at=None if data.get("changed_at") is None else int(data["changed_at"]),
                scope=ApprovalScope(tuple(data.get("subjects", ())),
                                    tuple(data.get("records", ())), data.get("ticket")),
                max_subjects=data.get("max_subjects"),
                request_entry=data.get("request_entry"))
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable(f"stored approval is damaged: {exc}",
                              code="approval_store_damaged") from exc


def new_request(requester: Principal, *, purpose: str, reason: str,
                collections: Iterable[str], classes: Iterable[str], home: str,
                now: int, duration: int, approval_id: str | None = None,
                scope: ApprovalScope = _UNSCOPED, max_subjects: int | None = None
                ) -> ApprovalRecord:
    """A pending approval request (purpose, reason and collections checked by the caller).

    Raises:
        InvalidInput: ``invalid_scope`` for an empty scope or an unknown class,
            ``invalid_duration`` for a non-positive duration.
    """
    colls = tuple(sorted(set(collections)))
    cls_ = tuple(sorted(set(classes)))
    if not colls or not cls_:
        raise InvalidInput("an approval needs at least one collection and one class",
                           code="invalid_scope")
    bad = [c for c in cls_ if c not in FIELD_CLASSES]
    if bad:
        raise InvalidInput(f"unknown field class {bad[0][:32]!r}", code="invalid_scope")
    if duration <= 0:
        raise InvalidInput("the duration must be positive", code="invalid_duration")
    return ApprovalRecord(
        id=approval_id or mint_approval_id(), requester=requester.id,
        requester_org=requester.org, requester_location=requester.location,
        purpose=purpose, reason=reason, collections=colls, classes=cls_, home=home,
        requested_at=now, expires=now + duration, scope=scope, max_subjects=max_subjects)


def _open_check(record: ApprovalRecord, now: float) -> None:
    status = record.status(now)
    if status == "expired":
        raise Conflict("the approval has expired", code="approval_expired")
    if status != "pending":
        raise Conflict(f"the approval is {status}, not pending", code="approval_not_pending")


def grant(record: ApprovalRecord, approver: str, now: float) -> ApprovalRecord:
    """Add one approver's grant; the second distinct approver makes it ``granted``.

    Raises:
        Conflict: ``approval_expired``, ``approval_not_pending``,
            ``self_approval`` (the requester), ``already_granted_by_you``.
    """
    _open_check(record, now)
    if approver == record.requester:
        raise Conflict("the requester cannot approve their own request", code="self_approval")
    if approver in record.approvers:
        raise Conflict("you already granted this approval", code="already_granted_by_you")
    approvers = (*record.approvers, approver)
    state: ApprovalState = "granted" if len(approvers) >= APPROVALS_NEEDED else "pending"
    return replace(record, approvers=approvers, state=state, version=record.version + 1)


def deny(record: ApprovalRecord, approver: str, now: float) -> ApprovalRecord:
    """Close a pending request as denied.

    Raises:
        Conflict: ``approval_expired``, ``approval_not_pending``, ``self_approval``.
    """
    _open_check(record, now)
    if approver == record.requester:
        raise Conflict("the requester cannot decide their own request", code="self_approval")
    return replace(record, state="denied", closed_by=approver, version=record.version + 1)


def revoke(record: ApprovalRecord, by: str) -> ApprovalRecord:
    """Revoke a pending or granted approval (expired ones may be revoked too).

    Raises:
        Conflict: ``approval_not_pending`` if it is already denied or revoked.
    """
    if record.state not in ("pending", "granted"):
        raise Conflict(f"the approval is already {record.state}", code="approval_not_pending")
    return replace(record, state="revoked", closed_by=by, version=record.version + 1)


def change_signature(payload: object) -> SignedStatement | None:
    """The approver's signature in the body of a grant, deny or revoke request:
    ``{"statement": {"request", "key", "signature"}}``, or None for an empty body
    (a requester withdrawing their own request signs nothing).

    Raises:
        InvalidInput: ``malformed_body`` for other members or a non-object.
        VerificationError: ``malformed_approval_signature``.
    """
    if payload is None or payload == {}:
        return None
    if not isinstance(payload, dict) or set(payload) != {"statement"}:
        raise InvalidInput("the body must be empty or {\"statement\": {...}}",
                           code="malformed_body")
    return SignedStatement.from_json(payload["statement"])


def rebuild_approvals(entries: Iterable[Entry | tuple[int, Entry]], *, origin: str,
                      approver_keys: ApproverKeys,
                      on_refused: Callable[[int, str, BordergateError], None] | None = None,
                      ) -> dict[str, ApprovalRecord]:
    """Replay ``approval-*`` entries of one log into the approvals they describe.

    ``entries`` are ``(index, entry)`` pairs in log order, or the log's entries
    from index 0 (their positions are their indexes); each record's
    ``changed_at`` is the index of its last change.  Other entry types are skipped.

    Every change is replayed through the transition the serving gateway made
    (:func:`grant`, :func:`deny`, :func:`revoke`: distinct approvers, never the
    requester, not after expiry at the entry's time), and a grant, a denial, or a
    revocation by anyone but the requester counts only with the approver's signed
    statement verified against ``approver_keys`` (the roster in force) for the
    log ``origin``: an entry's own ``state`` and ``approvals`` members are never
    believed.  Whoever can append to the log (the log operator, another append
    credential) cannot grant an approval by writing grant entries.  A change that
    does not replay is skipped and handed to ``on_refused(index, approval id, error)``.

    Raises:
        VerificationError: never; a change that does not replay is skipped.
    """
    book: dict[str, ApprovalRecord] = {}
    for position, item in enumerate(entries):
        index, entry = item if isinstance(item, tuple) else (position, item)
        body = entry.body
        if entry.type == "approval-request":
            scope = body["scope"]
            requester = body["requester"]
            book[body["approval"]] = ApprovalRecord(
                id=body["approval"], requester=requester["id"], requester_org=requester["org"],
                requester_location=requester["location"], purpose=body["purpose"],
                reason=body["reason"], collections=tuple(scope["collections"]),
                classes=tuple(scope["classes"]), home=body["gateway"],
                requested_at=body["requested_at"], expires=body["expires"],
                changed_at=index,
                scope=ApprovalScope(tuple(scope.get("subjects", ())),
                                    tuple(scope.get("records", ())), scope.get("ticket")),
                max_subjects=body.get("max_subjects"),
                request_entry=canonical_json(dict(body)).decode("utf-8"))
            continue
        approval = body.get("approval") if entry.type.startswith("approval-") else None
        record = book.get(approval) if isinstance(approval, str) else None
        if record is None or entry.type not in _REPLAYED:
            continue
        try:
            updated = _replayed_change(record, entry, origin, approver_keys)
        except (Conflict, VerificationError, InvalidInput) as exc:
            if on_refused is not None:
                on_refused(index, record.id, exc)
            continue
        book[record.id] = replace(updated, changed_at=index)
    return book


_REPLAYED = {"approval-grant": "grant", "approval-deny": "deny", "approval-revoke": "revoke"}


def _replayed_change(record: ApprovalRecord, entry: Entry, origin: str,
                     keys: ApproverKeys) -> ApprovalRecord:
    """``record`` after the change ``entry`` records, checked as the gateway checked it.

    Raises:
        Conflict: the transition's codes (``self_approval``, ``approval_expired``, ...).
        VerificationError: the signed statement is missing, malformed or does not
            verify (``approval_statement.verify_statement``'s codes).
        InvalidInput: ``malformed_entry``: the actor is not a principal.
    """
    verdict = _REPLAYED[entry.type]
    actor_member = entry.body.get("by" if verdict == "revoke" else "approver")
    actor = actor_member.get("id") if isinstance(actor_member, dict) else None
    if not isinstance(actor, str):
        raise InvalidInput("the change names no acting principal", code="malformed_entry")
    statement = entry.body.get("statement")
    if verdict != "revoke" or actor != record.requester or statement is not None:
        signed = SignedStatement.from_json(statement) if statement is not None else None
        digest = record.request_digest
        assert digest is not None  # every replayed record has its request entry
        verify_statement(ApprovalStatement(origin=origin, approval=record.id, request=digest,
                                           verdict=verdict, approver=actor), signed, keys)
    if verdict == "grant":
        return grant(record, actor, entry.time)
    if verdict == "deny":
        return deny(record, actor, entry.time)
    return revoke(record, actor)


def reconcile_approvals(store: ApprovalStore, book: Mapping[str, ApprovalRecord]
                        ) -> list[str]:
    """Bring the approvals table up to the log (``book`` from :func:`rebuild_approvals`).

    Every state change is logged before the table is written, so after a crash
    the table can only lag behind the log (a revoke logged but not stored must
    not leave the approval usable).  A record is stored as the log has it when
    the table lacks it, holds it without ``changed_at`` or ``request_entry`` (a
    table written before they were recorded), or holds it as of an earlier change
    than the last one the replay accepted.  Records are compared by the log index
    of their last change, not by counting changes: a change the replay refuses
    (a grant whose approver the roster no longer lists) must not make the table
    look ahead of the log, or a later revoke would go unrepaired.  What is stored
    then holds at most the grants the replay could verify.  Returns the ids repaired.

    Raises:
        Conflict: ``approval_changed`` if another writer changes a record meanwhile.
        Unavailable: ``store_unavailable``.
    """
    repaired = []
    for record in book.values():
        try:
            found = store.get(record.id)
            stored = found.version
            current = found.request_entry is not None and found.changed_at is not None \
                and record.changed_at is not None and found.changed_at >= record.changed_at
        except NotFound:
            stored, current = 0, False
        if current:
            continue
        for version in range(stored + 1, max(record.version, stored + 1) + 1):  # put: one on
            store.put(replace(record, version=version))
        repaired.append(record.id)
    return repaired


class ApprovalStore(Protocol):
    """Where a jurisdiction's approvals are kept (a cache of its log)."""

    def get(self, approval_id: str) -> ApprovalRecord:
        """The approval.

        Raises:
            NotFound: ``approval_not_found``.
            Unavailable: ``store_unavailable``.
        """
        ...

    def put(self, record: ApprovalRecord) -> None:
        """Insert (version 1) or replace the record whose version is one lower.

        Raises:
            Conflict: ``approval_changed`` if another writer changed it first.
            Unavailable: ``store_unavailable``.
        """
        ...

    def list(self, state: str | None = None, *, now: float, limit: int = 500
             ) -> list[ApprovalRecord]:
        """Approvals (newest first) whose status at ``now`` is ``state`` (all if None)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _not_found() -> NotFound:
    return NotFound("no such approval", code="approval_not_found")


def _changed() -> Conflict:
    return Conflict("the approval changed meanwhile; retry", code="approval_changed")


class MemoryApprovalStore:
    """The in-memory twin."""

    def __init__(self) -> None:
        self._items: dict[str, ApprovalRecord] = {}
        self._lock = threading.Lock()

    def get(self, approval_id: str) -> ApprovalRecord:
        found = self._items.get(approval_id)
        if found is None:
            raise _not_found()
        return found

    def put(self, record: ApprovalRecord) -> None:
        with self._lock:
            old = self._items.get(record.id)
            if (old.version if old else 0) != record.version - 1:
                raise _changed()
            self._items[record.id] = record

    def list(self, state: str | None = None, *, now: float, limit: int = 500
             ) -> list[ApprovalRecord]:
        items = sorted(self._items.values(), key=lambda r: (-r.requested_at, r.id))
        return [r for r in items if state is None or r.status(now) == state][:limit]

    def close(self) -> None:
        pass


_TABLE = """CREATE TABLE IF NOT EXISTS gateway_approvals (
    id TEXT PRIMARY KEY, requested_at BIGINT NOT NULL, version INTEGER NOT NULL,
    body TEXT NOT NULL)"""


class SqliteApprovalStore:
    """Approvals in a table of the jurisdiction's SQLite file."""

    def __init__(self, path: str | Path) -> None:
        """Open the table (created if missing).

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._path = Path(path)
        self._local = threading.local()
        with self._guard() as conn:
            conn.execute(_TABLE)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=5.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
        return conn

    def _guard(self) -> _SqliteGuard:
        return _SqliteGuard(self)

    def get(self, approval_id: str) -> ApprovalRecord:
        with self._guard() as conn:
            row = conn.execute("SELECT body FROM gateway_approvals WHERE id = ?",
                               (approval_id,)).fetchone()
        if row is None:
            raise _not_found()
        return ApprovalRecord.from_json(json.loads(row[0]))

    def put(self, record: ApprovalRecord) -> None:
        body = json.dumps(record.to_json(), sort_keys=True)
        with self._guard() as conn:
            if record.version == 1:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO gateway_approvals VALUES (?, ?, ?, ?)",
                    (record.id, record.requested_at, 1, body))
            else:
                cur = conn.execute(
                    "UPDATE gateway_approvals SET version = ?, body = ? "
                    "WHERE id = ? AND version = ?",
                    (record.version, body, record.id, record.version - 1))
            if cur.rowcount != 1:
                raise _changed()

    def list(self, state: str | None = None, *, now: float, limit: int = 500
             ) -> list[ApprovalRecord]:
        with self._guard() as conn:
            rows = conn.execute("SELECT body FROM gateway_approvals "
                                "ORDER BY requested_at DESC, id LIMIT 5000").fetchall()
        items = [ApprovalRecord.from_json(json.loads(r[0])) for r in rows]
        return [r for r in items if state is None or r.status(now) == state][:limit]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _SqliteGuard:
    def __init__(self, store: SqliteApprovalStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        try:
            return self.store._conn()
        except sqlite3.Error as exc:
            raise Unavailable(f"approvals store failed: {type(exc).__name__}",
                              code="store_unavailable") from exc

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise Unavailable(f"approvals store failed: {type(exc).__name__}",
                              code="store_unavailable") from exc


class PostgresApprovalStore:
    """Approvals in a table of the jurisdiction's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        """Connect and create the table if missing.

        Raises:
            Unavailable: ``store_unavailable``.
        """
        self._url = url
        self._db = SharedConnection(url, ddl=[_TABLE], what="approvals store")

    def _run(self, sql: str, args: tuple[object, ...]) -> tuple[int, list[tuple[Any, ...]]]:
        with self._db.using() as conn:
            cur = conn.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
            return cur.rowcount, rows

    def get(self, approval_id: str) -> ApprovalRecord:
        _, rows = self._run("SELECT body FROM gateway_approvals WHERE id = %s", (approval_id,))
        if not rows:
            raise _not_found()
        return ApprovalRecord.from_json(json.loads(rows[0][0]))

    def put(self, record: ApprovalRecord) -> None:
        body = json.dumps(record.to_json(), sort_keys=True)
        if record.version == 1:
            count, _ = self._run("INSERT INTO gateway_approvals VALUES (%s, %s, 1, %s) "
                                 "ON CONFLICT DO NOTHING", (record.id, record.requested_at, body))
        else:
            count, _ = self._run("UPDATE gateway_approvals SET version = %s, body = %s "
                                 "WHERE id = %s AND version = %s",
                                 (record.version, body, record.id, record.version - 1))
        if count != 1:
            raise _changed()

    def list(self, state: str | None = None, *, now: float, limit: int = 500
             ) -> list[ApprovalRecord]:
        _, rows = self._run("SELECT body FROM gateway_approvals "
                            "ORDER BY requested_at DESC, id LIMIT 5000", ())
        items = [ApprovalRecord.from_json(json.loads(r[0])) for r in rows]
        return [r for r in items if state is None or r.status(now) == state][:limit]

    def close(self) -> None:
        self._db.close()


def open_approval_store(store_url: str) -> ApprovalStore:
    """The approvals table beside the records a store URL names.

    Raises:
        ConfigError: ``store_url`` for an unknown scheme.
        Unavailable: ``store_unavailable``.
    """
    location = parse_store_location(store_url)
    if location.kind == "postgresql":
        return PostgresApprovalStore(location.target)
    if location.kind == "memory":
        return MemoryApprovalStore()
    return SqliteApprovalStore(location.target)

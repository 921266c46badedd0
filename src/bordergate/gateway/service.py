"""The gateway of one jurisdiction: authenticate, resolve, decide, fetch, log, answer.

:class:`Gateway` is the data path of docs/design.md ("Data path"),
independent of HTTP: the Starlette layer (``gateway.app``) parses requests and
renders answers, this class does the work in the order the promises demand:

1. authenticate the bearer token (``gateway.auth.VerifiedTokenCache``: verified
   tokens are cached by their exact text, their lifetime re-checked on every use)
   and, when a roster is configured, take the principal's attributes from the
   identity authority's roster version in force (``gateway.roster_in_force``);
   every entry recording the principal names that version (``roster``);
2. resolve the record or subject to its home; elsewhere -> ``WrongJurisdiction``
   (421 with the home gateway's URL), never proxied;
3. decide: one ``DecisionInput`` per field, all in one ``decide_many`` call;
4. fetch and decrypt only the allowed fields;
5. log the decision entry and wait until it is durably sequenced;
6. only then return what may be released, with the entry's index and the
   gateway's signed receipt of exactly what it released under that entry
   (``bordergate.receipts``: reads and exports, one Ed25519 signature each).

A read that presents an approval is *guarded*: its entry records the version
of the approval's state it was decided under (``approval_version``: the index
of the approval's last change entry) and the log's sequencer sequences it only
if that version is still current; else (a grant, denial or revocation got an
index first) the read is decided again under the new state
(``_read_guarded``).  Nothing is released under an approval that expired
before the entry was durable.

Writes, erasures and approval changes are logged *before* they are carried
out (a logged change that then failed is visible; an unlogged change is
impossible); their key events are logged right after.  If the log cannot
be written, the key backend or the store is down: ``Unavailable`` (503) and
nothing is released.

Every store, key-backend and file call runs on a worker thread
(``_off_loop``), except the bounded point reads of one record that the vault
declares cheap enough for the event loop (``_point_read``, see
``Vault.inline_point_reads``): a long export never stalls other requests.

This module must never return or log a value, or log a raw subject or record
id; never answer before the entry that justifies the answer is durable; and
never call a store or key backend on the event loop except through those two.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from bordergate import __version__
from bordergate.appender import logged_form
from bordergate.approval_statement import (
    ApprovalStatement,
    ApproverKeys,
    MappingApproverKeys,
    SignedStatement,
    verify_statement,
)
from bordergate.config import Limits
from bordergate.entries import (
    EntryTemplate,
    EntryTime,
    Pseudonymizer,
    canonical_json,
    encode_entry,
    encode_entry_with,
)
from bordergate.entry_state import approval_key
from bordergate.errors import (
    BordergateError,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    StaleState,
    Unavailable,
    VerificationError,
    WrongJurisdiction,
)
from bordergate.gateway import approvals as appr
from bordergate.gateway.approval_scope import MemorySubjectLedger, SubjectLedger, parse_scope
from bordergate.gateway.auth import TokenVerifier, VerifiedTokenCache
from bordergate.gateway.bulk_counters import BulkCounters
from bordergate.gateway.decided_state import DecidedState
from bordergate.gateway.decisions import (
    DecisionCache,
    access_outcome,
    decision_records,
    field_inputs,
    key_event_entry,
    withheld_reason,
)
from bordergate.gateway.export_keys import sealed_export_aggregate
from bordergate.gateway.fifo_cache import BoundedFifoCache
from bordergate.gateway.log_follower import LogFollower
from bordergate.gateway.revocations import (
    TokenRevocations,
    revocation_request,
    token_revoke_entry,
)
from bordergate.gateway.roster_in_force import RosterInForce
from bordergate.gateway.signing import SigningHelper
from bordergate.keys.events import KeyEvent, KeyEventKind
from bordergate.keys.keyring import SubjectCipher
from bordergate.keys.service_client import KeyServiceClient
from bordergate.policy.engine import Decision, PolicyEngine
from bordergate.policy.entities import DecisionInput, Principal, RequestContext, Subject
from bordergate.policy.purpose_binding import denial_code
from bordergate.privacy.budget import BudgetStore, MemoryBudgetStore, PrivacySettings
from bordergate.privacy.mechanism import ExportMechanism, OpenDPMechanism, TrueGroup
from bordergate.receipts import ReceiptSigner, UnsignedReceipt, released_values
from bordergate.residency.schema import FieldSpec, Schema
from bordergate.residency.stores import RawRecord
from bordergate.residency.vault import SealedRecord, Vault
from bordergate.subjects import SubjectId, parse_record_id
from bordergate.tlog.checkpoint import SignedCheckpoint
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.sequencer import Sequencer
from bordergate.tlog.storage import LogStorage
from bordergate.tlog.tiles import ENTRY_MAX

__all__ = [
    "DeniedAfterLogging",
    "Gateway",
    "LogAppender",
    "Outcome",
    "SequencerLog",
]

_MAX_FIELDS_PARAM = 8192
_MAX_SHAPES = 1024
_MAX_PLANS = 4096
_MAX_PSEUDONYMS = 65_536
_MAX_LISTED = 5000   # approvals read to filter by who may see them (the stores' cap)
_LIST_LIMIT = 500    # approvals answered
_NO_ROSTER: Mapping[str, str] = MappingProxyType({})  # no roster configured: no member
_STATE_ATTEMPTS = 12  # decisions of one guarded read before it answers 503
_UNKNOWN_VERSION = -2  # never current: a record without changed_at is refused


@dataclass(frozen=True)
class _ReadPlan:
    """What a read decides before it touches the store (see ``Gateway._read_plan``)."""

    allowed: list[str]
    withheld: tuple[dict[str, Any], ...]
    outcome: str
    entry: EntryTemplate
    decisions_json: bytes
    released: bytes


@dataclass(frozen=True, slots=True)
class _ReadRequest:
    """A read, checked, before it is decided."""

    principal: Principal
    collection: str
    record_id: str
    purpose: str
    specs: list[FieldSpec]
    hinted: SubjectId | None
    jti: str  # the bearer token's id, recorded in the entry (token_revoked_use)
    vouched: Mapping[str, str]  # {"roster": digest} of the version that vouched, or {}
    decided: Mapping[str, int]  # the roster and revocation versions decided under


class LogAppender(Protocol):
    """Where the gateway's entries go: an in-process sequencer or a sequencer service."""

    @property
    def origin(self) -> str:
        """The log's origin line."""
        ...

    async def append_many(self, entries: Sequence[bytes]) -> int:
        """Sequence entries contiguously and durably; the index of the first.

        Raises:
            Unavailable: the log cannot be written (``log_unwritable``).
            PushBack: the queue is full.
        """
        ...

    async def append_guarded(self, entries: Sequence[bytes],
                             expect: Mapping[str, int]) -> int:
        """As :meth:`append_many`, only if each state key's version is still the
        one expected when the entries get their indexes.  Appends passing the very
        same ``expect`` object may be submitted together (admitted or refused
        whole): pass one object only for entries that change none of its keys.

        Raises:
            StaleState: a version changed; nothing was sequenced.
            Unavailable, PushBack: as :meth:`append_many`.
        """
        ...

    async def append_promised(self, entries: Sequence[bytes],
                              expect: Mapping[str, int] | None = None
                              ) -> tuple[int, list[bytes]]:
        """As :meth:`append_many` (or :meth:`append_guarded` with ``expect``), also
        returning the log operator's signed promise of inclusion of each entry
        (``bordergate.tlog.promise``: what the key service accepts as proof).

        Raises:
            as :meth:`append_guarded`.
        """
        ...

    def checkpoint(self) -> SignedCheckpoint | None:
        """The latest published checkpoint."""
        ...

    async def publish(self, timeout: float) -> SignedCheckpoint:
        """Wait for a checkpoint covering everything appended so far."""
        ...

    def close(self) -> None:
        """Drain and stop."""
        ...


class SequencerLog:
    """A :class:`LogAppender` over a ``Sequencer`` running in this process.

    Appends made during one turn of the event loop go to the sequencer as one
    submission (one queue hand-off and one wake-up of the loop when it is
    durable, instead of one per request); each caller's entries stay
    contiguous and each caller still waits until its entries are durable.
    Guarded appends join the turn too: consecutive ones passing the very same
    ``expect`` object (a turn's decisions under one state, which change none of
    its keys) form one guarded submission, admitted or refused whole; one passing
    a mapping of its own (an approval's change) is a submission alone, so it is
    never admitted together with entries decided under the state it changes.
    """

    def __init__(self, sequencer: Sequencer) -> None:
        self.sequencer = sequencer
        self._turn: list[_TurnItem] | None = None

    @property
    def origin(self) -> str:
        return self.sequencer.origin

    async def append_many(self, entries: Sequence[bytes]) -> int:
        return await self._join_turn(entries, None)

    async def _join_turn(self, entries: Sequence[bytes],
                         expect: Mapping[str, int] | None) -> int:
        batch = list(entries)
        for e in batch:  # refused alone, not with the rest of the turn's batch
            if len(e) > ENTRY_MAX:
                raise InvalidInput(f"log entry of {len(e)} bytes exceeds 65535",
                                   code="entry_too_large")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        if self._turn is None:
            self._turn = []
            loop.call_soon(self._submit_turn, loop)
        self._turn.append((batch, waiter, expect))
        return await waiter

    def _submit_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        turn, self._turn = self._turn or [], None
        while turn:
            expect = turn[0][2]
            run = 1
            while run < len(turn) and turn[run][2] is expect:
                run += 1
            self._submit_run(loop, turn[:run], expect)
            turn = turn[run:]

    def _submit_run(self, loop: asyncio.AbstractEventLoop, run: list[_TurnItem],
                    expect: Mapping[str, int] | None) -> None:
        try:
            future: Future[int] = self.sequencer.submit([e for b, _, _ in run for e in b],
                                                        expect=expect)
        except Exception as exc:  # push back or fail closed: nobody is acknowledged
            _settle(run, None, exc)
            return

        def durable(done: Future[int]) -> None:  # on the sequencer's thread
            exc = done.exception()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, run, None if exc else done.result(), exc)

        future.add_done_callback(durable)

    async def append_guarded(self, entries: Sequence[bytes],
                             expect: Mapping[str, int]) -> int:
        if not expect:
            raise ValueError("a guarded append expects at least one state version")
        return await self._join_turn(entries, expect)

    async def append_promised(self, entries: Sequence[bytes],
                              expect: Mapping[str, int] | None = None
                              ) -> tuple[int, list[bytes]]:
        """Sequence durably (guarded by ``expect`` when given); the index of the
        first and the sequencer's signed promise of inclusion of each entry."""
        batch = list(entries)
        if any(len(e) > ENTRY_MAX for e in batch):
            raise InvalidInput("log entry exceeds 65535 bytes", code="entry_too_large")
        first = await asyncio.wrap_future(self.sequencer.submit(batch, expect=expect))
        return first, self.sequencer.promises(first, batch)

    def checkpoint(self) -> SignedCheckpoint | None:
        return self.sequencer.checkpoint

    def failure(self) -> str | None:
        """Why the log fails closed now (its sequencer refused a write), or None."""
        failure = self.sequencer.failure
        return None if failure is None else str(failure)

    def backlog(self) -> int:
        """Entries sequenced durably but not yet covered by a published checkpoint."""
        return self.sequencer.size - self.sequencer.published_size

    async def recover(self) -> bool:
        """Replace a failed sequencer by one recovered from storage (fail closed
        until then: appends meanwhile go to the failed one and get ``Unavailable``);
        whether it was replaced (False: nothing had failed).

        Raises:
            Unavailable, VerificationError, Conflict: as ``Sequencer.reopen``;
                the failed sequencer stays in place.
        """
        failed = self.sequencer
        if failed.failure is None:
            return False
        self.sequencer = await asyncio.to_thread(failed.reopen)
        return True

    async def publish(self, timeout: float) -> SignedCheckpoint:
        return await asyncio.to_thread(self.sequencer.publish, timeout)

    def close(self) -> None:
        self.sequencer.close()


#: One append of a :class:`SequencerLog` turn: entries, waiter, expected versions.
_TurnItem = tuple[list[bytes], "asyncio.Future[int]", "Mapping[str, int] | None"]


def _settle(turn: list[_TurnItem], first: int | None, exc: BaseException | None) -> None:
    """Give each waiter of a turn its first index, or the turn's error."""
    index = first or 0
    for batch, waiter, _ in turn:
        if not waiter.done():
            if exc is not None or first is None:
                waiter.set_exception(exc or Unavailable("log write failed",
                                                        code="log_unwritable"))
            else:
                waiter.set_result(index)
        index += len(batch)


@dataclass
class Outcome:
    """What an operation returns: the JSON body, the log index, the HTTP status."""

    body: dict[str, Any]
    index: int | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class DeniedAfterLogging(PolicyDenied):
    """Policy denied everything asked; the denial is in the log at ``log_index``."""

    def __init__(self, message: str, *, log_index: int, members: dict[str, Any],
                 code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.log_index = log_index
        self.members = members


def _require_purpose(purpose: str | None) -> str:
    if purpose is None or purpose == "":
        raise InvalidInput("a purpose is required (purpose=...)", code="missing_purpose")
    return purpose


def _requested_fields(raw: str | None, limit: int) -> list[str] | None:
    """The field names of ``fields=`` (None: the parameter is absent, all fields).

    A present but empty ``fields=`` is refused, not taken for all fields: it is
    how an array holding one empty name is written (found by schemathesis, ST201),
    and the OpenAPI document asks for at least one name.
    """
    if raw is None:
        return None
    parts = raw.split(",")
    if len(raw) > _MAX_FIELDS_PARAM or len(parts) > limit:  # repeated names count
        raise InvalidInput(f"at most {limit} field names per request", code="too_many_fields")
    names = list(dict.fromkeys(part.strip() for part in parts))
    if "" in names:
        raise InvalidInput("empty field name in fields=", code="unknown_field")
    return names


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _decided_again(method: Callable[Concatenate[Gateway, _P], Awaitable[_T]]
                   ) -> Callable[Concatenate[Gateway, _P], Awaitable[_T]]:
    """Run a decision again when the log took a newer roster version or token
    revocation while it was decided (``gateway.decided_state``): the sequencer
    refused the decision's entry, so nothing of it was logged or released (what
    ran before it is safe to run again: a bulk counter counts a subject once, an
    export's budget is debited again, an export's intent is logged again); wait
    until this worker has read the change, then decide again from the token on."""

    @functools.wraps(method)
    async def again(self: Gateway, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        for _ in range(_STATE_ATTEMPTS):
            try:
                return await method(self, *args, **kwargs)
            except StaleState as exc:
                if not self.decided.concerns(exc.current):
                    raise
                await self.decided.catch_up(exc.current, self.log_follower)
        raise Unavailable("the log's roster or token revocations kept changing while "
                          "the request was decided; retry", code="log_state_behind")

    return again


class Gateway:
    """One jurisdiction's gateway (see the module docstring for the order of work)."""

    def __init__(
        self,
        *,
        jurisdiction: str,
        schema: Schema,
        engine: PolicyEngine,
        verifier: TokenVerifier,
        vault: Vault,
        log: LogAppender,
        log_storage: LogStorage,
        log_verifier: Any,
        pseudonyms: Pseudonymizer,
        approvals: appr.ApprovalStore,
        peers: Mapping[str, str],
        receipts: ReceiptSigner,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        release: str | None = None,
        privacy: PrivacySettings | None = None,
        budgets: BudgetStore | None = None,
        mechanism: ExportMechanism | None = None,
        subject_ledger: SubjectLedger | None = None,
        revocations: TokenRevocations | None = None,
        approver_keys: ApproverKeys | None = None,
        roster: RosterInForce | None = None,
        key_service: KeyServiceClient | None = None,
        bulk: BulkCounters | None = None,
    ) -> None:
        self.jurisdiction = jurisdiction
        # bulk counters per counterparty and DSP category (gateway.bulk_counters)
        self.bulk = bulk if bulk is not None and bulk.active else None
        # where the dashboard keeps what it read of the log (gateway.dashboard_state)
        self.dashboard_state_path: str | None = None
        # the log's witness keys: a checkpoint's signature line counts as a cosignature
        # on the dashboard only if it verifies with one (gateway.dashboard)
        self.witness_cosigners: tuple[CosignatureVerifier, ...] = ()
        # the jurisdiction's key service (issue 13): when set, this gateway holds no KEK
        # and opens sealed values only with a key released against the logged entry
        self.key_service = key_service
        self.schema = schema
        self.engine = engine
        # token revocations of this log (gateway.revocations): checked on every request
        self.revocations = revocations if revocations is not None else TokenRevocations()
        # the worker's reader of the log for both (gateway.log_follower); set by startup
        self.log_follower: LogFollower | None = None
        self.principals = VerifiedTokenCache(verifier, revoked=self.revocations)
        # the identity authority's roster (gateway.roster_in_force): when set, a
        # principal's attributes are the roster's, never the token's
        self.roster = roster
        # the versions of both that a decision is made under (gateway.decided_state)
        self.decided = DecidedState(self.revocations, roster)
        self.vault = vault
        self.log = log
        self.log_storage = log_storage
        self.log_reader = LogClient(StorageSource(log_storage), log_verifier)
        self.pseudonyms = pseudonyms
        self.approvals = approvals
        # whose signatures a grant, deny or revoke must carry: the roster version in
        # force; without a roster, every approver's change is refused (fail closed)
        self.approver_keys: ApproverKeys = approver_keys or (
            roster if roster is not None else MappingApproverKeys({}))
        self.receipts = receipts  # signs what each answer released (bordergate.receipts)
        # a serving gateway's helper process signing reads' receipts (gateway.signing),
        # set and closed on the event loop by gateway.startup.serve_gateway; without
        # one (tests, tools), the event loop signs them itself
        self.receipt_helper: SigningHelper | None = None
        self.subject_ledger = subject_ledger or MemorySubjectLedger()
        self.peers = dict(peers)
        self.k_min = engine.bundle.k_min  # the bundle's, which the auditor checks too
        self.limits = limits or Limits()
        self.clock = clock
        self.release = release
        self.privacy = privacy or PrivacySettings()
        self.budgets = budgets or MemoryBudgetStore()
        self.mechanism = mechanism or OpenDPMechanism()
        # Settings that give no valid plan refuse the start, not each export.
        self.mechanism.plan(self.privacy.epsilon_micro, self.privacy.delta_exponent,
                            engine.bundle.k_min)
        self.bundle_digest = engine.digest
        self._inline_point_reads = vault.inline_point_reads
        self._approval_lock = asyncio.Lock()
        self._decisions = DecisionCache(engine.decide_many)
        self._shapes: BoundedFifoCache[tuple[str, str | None, str | None],
                                       tuple[str, list[FieldSpec]]] = BoundedFifoCache(_MAX_SHAPES)
        self._plans: BoundedFifoCache[tuple[Any, ...], _ReadPlan] = BoundedFifoCache(_MAX_PLANS)
        self._subject_pseudonyms: BoundedFifoCache[str, tuple[str, bytes]] = BoundedFifoCache(
            _MAX_PSEUDONYMS)
        self._record_pseudonyms: BoundedFifoCache[tuple[str, str], bytes] = BoundedFifoCache(
            _MAX_PSEUDONYMS)
        self._entry_time = EntryTime()

    # -- plumbing ----------------------------------------------------------
    @property
    def origin(self) -> str:
        """The origin of this jurisdiction's log."""
        return self.log.origin

    async def _point_read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A bounded read of one record of the vault: inline when the vault says
        such reads are cheap (``Vault.inline_point_reads``: an embedded store and
        a key backend that unwraps in memory, where a thread hop costs more than
        the read), else on a worker thread like every other store call."""
        if self._inline_point_reads:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Store, key-backend and file work that may block: on a worker thread,
        so the event loop keeps answering other requests meanwhile."""
        return await asyncio.to_thread(fn, *args)

    def authenticate(self, authorization: str | None) -> Principal:
        """The request's principal (with the roster's attributes when one is configured).

        Raises:
            Unauthenticated: 401 with the verifier's code, or the roster's
                (``principal_not_in_roster``, ``roster_claims_mismatch``).
            Unavailable: ``roster_unavailable``.
        """
        return self.authenticate_vouched(authorization)[0]

    def authenticate_vouched(self, authorization: str | None
                             ) -> tuple[Principal, Mapping[str, str]]:
        """The request's principal and the members naming the roster version that
        vouched for it (``{"roster": digest}``; empty without a roster), which every
        entry recording the principal carries.

        Raises:
            as :meth:`authenticate`.
        """
        return self._vouched(self.principals.authenticate(authorization, self.clock()))

    def _vouched(self, claimed: Principal) -> tuple[Principal, Mapping[str, str]]:
        if self.roster is None:
            return claimed, _NO_ROSTER
        return self.roster.vouch(claimed)

    def _wrong_home(self, home: str, what: str) -> BordergateError:
        url = self.peers.get(home)
        if url is None:
            return NotFound(f"{what} belongs to jurisdiction {home!r}, which this deployment "
                            "does not know", code="unknown_jurisdiction")
        return WrongJurisdiction(f"{what} is homed in {home!r}; ask its gateway",
                                 home=home, location=url)

    def _subject(self, text: str) -> SubjectId:
        subject = SubjectId.parse(text)
        if subject.home != self.jurisdiction:
            raise self._wrong_home(subject.home, "the subject")
        return subject

    def _record_hint(self, record_id: str) -> str | None:
        prefix, sep, _ = record_id.partition("-")
        return prefix if sep and prefix in self.peers else None

    def _context(self, purpose: str, now: int, approval: appr.ApprovalRecord | None = None,
                 k: int | None = None, in_scope: bool = True) -> RequestContext:
        return RequestContext(purpose=purpose, now=now, gateway=self.jurisdiction,
                              k_min=self.k_min, k=k,
                              approval=approval.policy_view(now, in_scope) if approval else None)

    async def _presented_approval(self, approval_id: str | None) -> appr.ApprovalRecord | None:
        if approval_id is None:
            return None
        appr.parse_approval_id(approval_id)  # an empty one too: the document's pattern
        record: appr.ApprovalRecord = await self._off_loop(self.approvals.get, approval_id)
        return record

    def _entry(self, kind: str, now: float, body: dict[str, Any]) -> bytes:
        body.setdefault("gateway", self.jurisdiction)
        body.setdefault("release", self.release)
        return encode_entry(kind, now, body)

    def _key_entries(self, events: Sequence[KeyEvent], now: float) -> list[bytes]:
        return [key_event_entry(e, self.pseudonyms.subject, now,
                                {"gateway": self.jurisdiction}) for e in events]

    def _attach_receipt(self, body: dict[str, Any], action: str, index: int, entry: bytes, *,
                        fields: list[str], groups: int | None = None,
                        suppressed: int | None = None, token_id: str | None = None) -> None:
        """Add the signed receipt of an answer that releases data, and its salt (for
        the requester only: it is in no log), to ``body`` (one Ed25519 signature,
        made here)."""
        unsigned = self._prepare_receipt(body, action, index, entry, fields=fields,
                                         groups=groups, suppressed=suppressed,
                                         token_id=token_id)
        self._signed_receipt(body, unsigned, self.receipts.signer.sign(unsigned.message))

    async def _attach_read_receipt(self, body: dict[str, Any], index: int, entry: bytes, *,
                                   fields: list[str], token_id: str) -> None:
        """:meth:`_attach_receipt` of a read (whose entry was filled with ``token_id``),
        signed by the receipt helper when there is one (the event loop goes on
        meanwhile; the same signature, Ed25519 is deterministic)."""
        if self.receipt_helper is None:
            self._attach_receipt(body, "read", index, entry, fields=fields, token_id=token_id)
            return
        unsigned = self._prepare_receipt(body, "read", index, entry, fields=fields,
                                         token_id=token_id)
        self._signed_receipt(body, unsigned, await self.receipt_helper.sign(unsigned.message))

    def _prepare_receipt(self, body: dict[str, Any], action: str, index: int, entry: bytes,
                         *, fields: list[str], groups: int | None = None,
                         suppressed: int | None = None,
                         token_id: str | None = None) -> UnsignedReceipt:
        return self.receipts.prepare(
            origin=self.origin, index=index, entry=logged_form(self.log, entry), action=action,
            collection=body["collection"], fields=fields,
            values=released_values(action, body), groups=groups, suppressed=suppressed,
            token_id=token_id)

    @staticmethod
    def _signed_receipt(body: dict[str, Any], unsigned: UnsignedReceipt,
                        signature: bytes) -> None:
        body["receipt"] = unsigned.signed(signature)
        body["receipt_salt"] = base64.b64encode(unsigned.salt).decode("ascii")

    def _log_headers(self, index: int) -> dict[str, str]:
        return {"Bordergate-Log-Origin": self.origin, "Bordergate-Log-Index": str(index)}

    def _decide(self, inputs: list[DecisionInput]) -> tuple[list[Decision], bytes]:
        return self._decisions.decide(inputs)

    def _decision_entry(self, kind: str, now: float, body: dict[str, Any],
                        decisions_json: bytes) -> bytes:
        body.setdefault("gateway", self.jurisdiction)
        body.setdefault("release", self.release)
        return encode_entry_with(kind, now, body, {"decisions": decisions_json})

    # -- lifecycle ---------------------------------------------------------
    async def announce_start(self, *, unreviewed: bool, release: str | None,
                             runtime: str | None = None, deployment: str | None = None
                             ) -> int:
        """Log the ``gateway-start`` entry; returns its index.

        ``runtime`` is the attested runtime's digest (None: not attested) and
        ``deployment`` the deployment slice's digest (promise 6).

        Raises:
            Unavailable: the log cannot be written.
        """
        self.release = release
        self._plans.clear()  # their entry templates name the release
        body = {
            "gateway": self.jurisdiction, "release": release,
            "reviewed": release is not None and not unreviewed,
            "unreviewed": unreviewed, "bundle": self.bundle_digest,
            "version": __version__, "origin": self.origin,
            "runtime": runtime, "deployment": deployment,
            # registers the key this gateway signs receipts with (bordergate.receipts)
            "receipt_key": self.receipts.key,
        }
        return await self.log.append_many([encode_entry("gateway-start", self.clock(), body)])

    def close(self) -> None:
        """Stop the log writer (draining it) and close the stores."""
        if self.log_follower is not None:
            self.log_follower.close()
        self.log.close()
        self.approvals.close()
        self.budgets.close()
        self.subject_ledger.close()
        if self.bulk is not None:
            self.bulk.close()
        self.vault.store.close()

    # -- subjects and records ------------------------------------------------
    async def mint_subject(self, authorization: str | None) -> Outcome:
        """Mint a new subject id homed here (no data, so nothing to log).

        Raises:
            Unauthenticated: bad token.
        """
        self.authenticate(authorization)
        subject = self.vault.mint_subject()
        return Outcome({"subject": str(subject), "home": self.jurisdiction}, status=201)

    def _specs(self, collection: str, names: list[str] | None) -> list[FieldSpec]:
        specs = self.schema.fields(collection, names)
        if len(specs) > self.limits.max_fields:
            raise InvalidInput(f"at most {self.limits.max_fields} fields per request",
                               code="too_many_fields")
        return specs

    @_decided_again
    async def read(self, authorization: str | None, collection: str, record_id: str, *,
                   fields: str | None, purpose: str | None, approval: str | None = None,
                   subject: str | None = None) -> Outcome:
        """Read a record's fields as policy allows; logged before anything returns.

        Decided again, from the token on, when the log took a newer roster version
        or token revocation while it was decided (``gateway.decided_state``).

        Raises:
            Unauthenticated, InvalidInput, NotFound, WrongJurisdiction: bad requests.
            DeniedAfterLogging: every field denied (logged).
            Unavailable: log, store or key backend down (nothing released);
                ``log_state_behind`` (this worker has not read the log's newer
                roster or revocations within ``CATCH_UP_SECONDS``).
        """
        # the state this read is decided under, read before the token and roster
        # checks use it; its entry is sequenced only if the log is still there
        decided = self.decided.versions()
        # the token's jti goes into the entry (the auditor's token_revoked_use); it is
        # URL-safe ASCII (checked by the verifier), so its JSON is itself in quotes
        token = self.principals.authenticate_token(authorization, self.clock())
        principal, vouched = self._vouched(token.principal)
        purpose, specs = self._read_shape(collection, fields, purpose)
        parse_record_id(record_id)
        hinted = self._subject(subject) if subject is not None else None
        presented = await self._presented_approval(approval)
        request = _ReadRequest(principal, collection, record_id, purpose, specs, hinted,
                               token.jti, vouched, decided)
        if presented is None:
            plan, fetched, entry = await self._decide_and_fetch(request, None, self.clock())
            opened = fetched if self.key_service is None else self._open_cached(fetched)
            renew = opened is not None and self.key_service is not None and \
                fetched.needs_key and self.key_service.renewal_due(fetched.subject)
            if opened is not None and not renew:
                # promise 3: durable before release
                index = await self.log.append_guarded([entry], decided)
                values = opened
            else:
                index, promises = await self.log.append_promised([entry], decided)
                if opened is None:
                    values = await self._open_justified(fetched, entry, promises[0])
                else:  # the cached key serves; this entry justifies its renewal
                    assert self.key_service is not None
                    values = opened
                    self.key_service.start_renewal(fetched.subject, self._release(
                        "read", fetched.subject, entry, promises[0]))
        else:
            plan, values, index, entry = await self._read_guarded(request, presented)
        allowed = plan.allowed
        body = {"collection": collection, "record": record_id, "purpose": purpose,
                "fields": {name: values.get(name) for name in allowed},
                "withheld": [dict(w) for w in plan.withheld], "outcome": plan.outcome,
                "log": {"origin": self.origin, "index": index}}
        if plan.outcome == "deny":
            raise DeniedAfterLogging("policy denied every field asked for",
                                     log_index=index, members=body,
                                     code=denial_code(w["policy_ids"] for w in plan.withheld))
        await self._attach_read_receipt(
            body, index, entry, fields=[name for name in allowed if values.get(name) is not None],
            token_id=token.jti)
        return Outcome(body, index, headers=self._log_headers(index))

    async def _read_guarded(self, request: _ReadRequest, presented: appr.ApprovalRecord
                            ) -> tuple[_ReadPlan, dict[str, Any], int, bytes]:
        """Decide, fetch and log a read under an approval, atomically with the
        approval's changes: the entry is sequenced only if the approval's version
        it was decided under is still current; else decide again under the new
        state (re-reading the approvals table until it has caught up with the log).
        Values decided under an approval that expired before the entry was
        durable are dropped and the read decided again.

        Raises:
            Unavailable: ``approval_state_unsettled`` after ``_STATE_ATTEMPTS``
                tries (the table lags the log, or the approval keeps changing).
        """
        key = approval_key(presented.id)
        floor = _UNKNOWN_VERSION
        for attempt in range(_STATE_ATTEMPTS):
            version = presented.changed_at
            if version is not None and version >= floor:
                now = self.clock()
                plan, values, entry = await self._decide_and_fetch(request, presented, now)
                promise = b""
                try:
                    expect = self.decided.with_approval(request.decided, key, version)
                    if self.key_service is None:
                        index = await self.log.append_guarded([entry], expect)
                    else:
                        index, promises = await self.log.append_promised([entry], expect)
                        promise = promises[0]
                except StaleState as exc:
                    if self.decided.concerns(exc.current):
                        raise  # the roster or revocations moved: read decides again
                    floor = exc.current.get(key, floor)
                else:
                    if presented.valid(self.clock()) or not presented.valid(int(now)):
                        if self.key_service is not None:
                            values = await self._open_justified(values, entry, promise)
                        return plan, values, index, entry
                    floor = version  # expired meanwhile: release nothing, decide again
            else:  # the approvals table lags the log (its writer is between the two)
                await asyncio.sleep(min(0.002 * 2 ** attempt, 0.1))
            presented = await self._off_loop(self.approvals.get, presented.id)
        raise Unavailable("the approval kept changing while the read was decided; retry",
                          code="approval_state_unsettled")

    async def _decide_and_fetch(self, request: _ReadRequest,
                                presented: appr.ApprovalRecord | None, now: float
                                ) -> tuple[_ReadPlan, Any, bytes]:
        """Decide a read at ``now``, fetch the allowed fields, build its entry.

        The fetched fields are the opened values (a dict), or, with a key service,
        the :class:`SealedRecord` that opens only once the entry is durable."""
        collection, record_id, hinted = request.collection, request.record_id, request.hinted
        in_scope = presented is None or not any(
            s.field_class.value == "protected" for s in request.specs) or \
            await self._within_reach(request, presented, now)
        plan = self._read_plan(request.principal, collection, request.purpose, request.specs,
                               now=int(now), presented=presented, in_scope=in_scope,
                               vouched=request.vouched)
        allowed = plan.allowed
        # Resolve: the record's owner (every record here is homed here; a record
        # that is not here may be homed elsewhere -> 421).  One store query: the
        # fetch of the allowed fields also names the owner.
        fetched: Any
        try:
            if allowed and self.key_service is not None:
                # nothing opens before the entry is durable and the key released for it
                fetched = await self._point_read(self.vault.get_sealed, collection, record_id,
                                                 allowed)
                owner, values = fetched.subject, fetched.raw
            elif allowed:
                record = await self._point_read(self.vault.get, collection, record_id, allowed)
                owner, values = record.subject, record.values
                fetched = values
            else:
                owner, values = await self._point_read(self.vault.owner, collection,
                                                       record_id), {}
                fetched = SealedRecord(collection, record_id, owner, {}, frozenset()) \
                    if self.key_service is not None else values
        except NotFound:
            home = self._record_hint(record_id)
            if hinted is None and home is not None and home != self.jurisdiction:
                raise self._wrong_home(home, "the record") from None
            raise
        except VerificationError as exc:
            raise Unavailable("a stored value does not open; nothing released",
                              code="record_unreadable") from exc
        if hinted is not None and hinted != owner and allowed:
            # only to a principal who may read some of it: a denied read is logged as
            # one whatever subject it names, so a wrong guess is no cheaper, unlogged
            # way to learn who owns a record (found by a review)
            raise NotFound("no such record of that subject", code="record_not_found")
        if self.bulk is not None and allowed:
            await self._bulk_check(request, presented, owner,
                                   [n for n in allowed if n in values], now)
        released = (plan.released if len(values) == len(allowed)
                    else canonical_json(sorted(values)))
        entry = plan.entry.fill(
            (self._pseudonym_of_subject(owner), self._pseudonym_of_record(collection, record_id),
             released, plan.decisions_json, b'"%s"' % request.jti.encode()),
            self._entry_time(now))
        return plan, fetched, entry

    def _open_cached(self, record: SealedRecord) -> dict[str, Any] | None:
        """A record fetched sealed, opened in memory with its subject's data key still
        in the key-service client's cache (released for an earlier logged decision
        less than its lifetime ago), or None: the read then needs a release, so its
        entry is logged with the log's promise.  Nothing is returned to the caller
        before the read's own entry is durable (promise 3)."""
        assert self.key_service is not None
        if not record.needs_key:
            return dict(self.vault.open_sealed(record, None).values)
        cipher = self.key_service.cached(record.subject)
        if cipher is None:
            return None
        try:
            return dict(self.vault.open_sealed(record, cipher).values)
        except VerificationError:  # erased and re-created elsewhere: ask again
            self.key_service.evict(record.subject)
            return None
    async def _bulk_check(self, request: _ReadRequest, presented: appr.ApprovalRecord | None,
                          owner: SubjectId, names: list[str], now: float) -> None:
        """Refuse a read that would take a bulk counter over its threshold (28 CFR
        202.205): the ``bulk-threshold`` entry is logged first, then
        ``bulk_threshold_reached`` or ``bulk_approval_required`` (403); an approved
        crossing is logged and goes ahead.  The shared table is asked only for a
        subject this worker has not seen counted (gateway.bulk_counters).

        Raises:
            DeniedAfterLogging: refused (logged).
            Unavailable: the shared counters or the log are down (nothing released).
        """
        assert self.bulk is not None
        principal = request.principal.to_json()
        roster = self.roster.roster if self.roster is not None else None
        listed = roster.principal(request.principal.id) if roster is not None else None
        covered = None if roster is None else bool(listed and listed.covered_person)
        claims = self.bulk.claims(principal, covered, request.collection, names)
        if not claims:
            return
        subject = self._subject_pseudonym(owner)[0]
        if self.bulk.remembered(claims, subject, now):
            return
        # only the approval asked for this read lifts the hold, inside its reach
        # (scope and subject cap): not any valid approval the caller names
        approved = presented is not None and presented.valid(int(now)) and \
            await self._within_reach(request, presented, now, owner)
        verdict = await self._off_loop(
            functools.partial(self.bulk.check, claims, subject, now, approved=approved))
        if not verdict.crossings:
            return
        body = {"principal": principal, "collection": request.collection,
                "purpose": request.purpose, "subject": subject, "gateway": self.jurisdiction,
                "counters": [x.to_json() for x in verdict.crossings],
                "outcome": "refused" if verdict.refused else "approved",
                "approval": presented.id if presented is not None else None,
                **request.vouched}
        # not guarded: the counters moved already (a bulk-threshold entry names no
        # token, and the auditor judges its principal by the read's entry)
        index, _ = await self._log_decision(self._entry("bulk-threshold", now, body), None)
        if verdict.refused is not None:
            raise DeniedAfterLogging(
                "the read would take a bulk counter of 28 CFR 202.205 over its threshold",
                log_index=index, code=verdict.refused,
                members={"collection": request.collection, "purpose": request.purpose,
                         "bulk": body["counters"],
                         "log": {"origin": self.origin, "index": index}})

    async def _open_justified(self, record: SealedRecord, entry: bytes,
                              promise: bytes) -> dict[str, Any]:
        """Open a record fetched sealed, with its subject's data key released by the
        key service against ``entry`` (durable: ``promise`` is the log's word).

        Raises:
            Unavailable: ``key_release_refused``, ``key_service_unavailable`` or
                ``record_unreadable`` (nothing released; the entry stays logged).
        """
        if not record.needs_key:
            return dict(self.vault.open_sealed(record, None).values)
        subject = record.subject
        cipher = self.key_service.cached(subject) if self.key_service else None
        for _ in range(2):  # a cached key may be stale (erased and re-created elsewhere)
            if cipher is None:
                cipher = await self._release("read", subject, entry, promise)
            try:
                return dict(self.vault.open_sealed(record, cipher).values)
            except VerificationError:
                assert self.key_service is not None
                self.key_service.evict(subject)
                cipher = None
        raise Unavailable("a stored value does not open; nothing released",
                          code="record_unreadable")

    async def _release(self, operation: str, subject: SubjectId, entry: bytes,
                       promise: bytes) -> SubjectCipher:
        """The subject's stored data key, released for ``entry`` by the key service.

        Raises:
            Unavailable: as :meth:`KeyServiceClient.release`; ``record_unreadable``
                if the subject has no data key.
        """
        assert self.key_service is not None
        stored = await self._point_read(self.vault.store.get_data_key, subject)
        if stored is None:
            raise Unavailable("the subject has no data key; nothing released",
                              code="record_unreadable")
        cipher, _ = await self.key_service.release(
            operation, subject, entry=logged_form(self.log, entry), promise=promise,
            wrapped=stored)
        return cipher

    async def _log_decision(self, entry: bytes, decided: Mapping[str, int] | None
                            ) -> tuple[int, bytes]:
        """Log a decision entry durably, guarded by the state it was ``decided``
        under (None: an entry no roster or token rule judges); its index and, with
        a key service, the log operator's promise of inclusion (else empty).

        Raises:
            StaleState: the log holds a newer roster or revocation (nothing logged).
            Unavailable, PushBack: the log cannot be written.
        """
        if self.key_service is None:
            index = await (self.log.append_many([entry]) if decided is None
                           else self.log.append_guarded([entry], decided))
            return index, b""
        index, promises = await self.log.append_promised([entry], decided)
        return index, promises[0]

    async def _store_write(self, collection: str, record_id: str, subject: SubjectId,
                           clean: Mapping[str, object], *, entry: bytes,
                           promise: bytes, logged_at: int,
                           decided: frozenset[str]) -> list[KeyEvent]:
        """Write a record whose allowed write ``entry`` is durable at ``logged_at``;
        its key events.  A subject whose erasure was logged after the entry is not
        written again (promise 8: the store refuses, ``subject_erased``), nor is a
        record that gained a field outside the ``decided`` names since it was read
        (promise 2: the replacement would remove it undecided, ``record_changed``).

        Raises:
            Conflict, Unavailable: as ``Vault.put``; with a key service, as
                :meth:`_write_cipher`.
        """
        if self.key_service is None:
            events: list[KeyEvent] = await self._off_loop(functools.partial(
                self.vault.put, collection, record_id, subject, clean, logged_at=logged_at,
                decided=decided))
            return events
        cipher, events = await self._write_cipher(subject, entry, promise, logged_at) \
            if self.vault.needs_key(collection, clean) else (None, [])
        await self._off_loop(functools.partial(
            self.vault.put_sealed_with, collection, record_id, subject, clean, cipher,
            logged_at=logged_at, decided=decided))
        return events

    async def _write_cipher(self, subject: SubjectId, entry: bytes, promise: bytes,
                            logged_at: int) -> tuple[SubjectCipher, list[KeyEvent]]:
        """The data key a write seals under, released (or created) by the key service
        for the logged write ``entry``; a created key is stored here, wrapped, unless
        the subject's erasure was logged after ``logged_at`` (``subject_erased``).

        Raises:
            Unavailable: as :meth:`KeyServiceClient.release`.
            Conflict: ``subject_erased``.
        """
        assert self.key_service is not None
        logged = logged_form(self.log, entry)
        stored = await self._off_loop(self.vault.store.get_data_key, subject)
        if stored is None:
            cipher, created = await self.key_service.release(
                "write", subject, entry=logged, promise=promise, wrapped=None)
            assert created is not None
            kept = await self._off_loop(functools.partial(
                self.vault.store.add_data_key, created, logged_at=logged_at))
            if kept.key_id == created.key_id:
                return cipher, [KeyEvent(kind=KeyEventKind.DATA_KEY_CREATED,
                                         jurisdiction=self.jurisdiction,
                                         kek_version=created.kek_version, time=self.clock(),
                                         subject=subject)]
            stored = kept  # another writer stored one first: use theirs
        cached = self.key_service.cached(subject)
        if cached is not None and cached.key_id == stored.key_id:
            return cached, []
        cipher, _ = await self.key_service.release("write", subject, entry=logged,
                                                   promise=promise, wrapped=stored)
        return cipher, []

    def _read_shape(self, collection: str, fields: str | None,
                    purpose: str | None) -> tuple[str, list[FieldSpec]]:
        """The purpose and field specs of a read, checked (cached by the raw text).

        Raises:
            InvalidInput: missing or unknown purpose, unknown collection or field.
        """
        key = (collection, fields, purpose)
        hit = self._shapes.get(key)
        if hit is not None:
            return hit
        checked = _require_purpose(purpose)
        self.engine.bundle.purpose(checked)
        shape = (checked, self._specs(collection,
                                        _requested_fields(fields, self.limits.max_fields)))
        self._shapes.put(key, shape)
        return shape

    def _read_plan(self, principal: Principal, collection: str, purpose: str,
                   specs: list[FieldSpec], *, now: int,
                   presented: appr.ApprovalRecord | None, in_scope: bool = True,
                   vouched: Mapping[str, str] = _NO_ROSTER) -> _ReadPlan:
        """The decisions of a read and its entry template (cached: a pure function
        of the principal, the request's shape, the second and the approval's view
        and version)."""
        view = presented.policy_view(now, in_scope) if presented else None
        version = presented.changed_at if presented else None
        key = (principal, collection, purpose, tuple(s.name for s in specs), now, view,
               version, vouched.get("roster"))
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        context = self._context(purpose, now, presented, in_scope=in_scope)
        inputs = field_inputs(principal, "read", collection, specs,
                              home=self.jurisdiction, context=context)
        decisions, recorded = self._decide(inputs)
        allowed = [s.name for s, d in zip(specs, decisions, strict=True) if d.allowed]
        withheld = tuple(
            {"field": s.name, "class": s.field_class.value,
             **withheld_reason(s.field_class.value, d, context.approval)}
            for s, d in zip(specs, decisions, strict=True) if not d.allowed)
        outcome = access_outcome(decisions)
        guarded = {"approval_version": version} if presented else {}
        template = EntryTemplate("access", {
            "principal": principal.to_json(), "collection": collection,
            "purpose": purpose, "bundle": self.bundle_digest,
            "approval": presented.id if presented else None,
            "outcome": outcome, "gateway": self.jurisdiction, "release": self.release,
            **guarded, **vouched,
        }, ("subject", "record", "released", "decisions", "jti"))
        plan = _ReadPlan(allowed, withheld, outcome, template, recorded,
                         canonical_json(sorted(allowed)))
        self._plans.put(key, plan)
        return plan

    async def _within_reach(self, request: _ReadRequest, presented: appr.ApprovalRecord,
                            now: float, owner: SubjectId | None = None) -> bool:
        """Whether reading the record stays inside the approval's subject and record
        scope and its cap of distinct subjects (claiming the record's subject in the
        shared ledger; only for a valid approval and a read that asks for protected
        fields, the only ones an approval permits, or that crosses a bulk threshold,
        so other reads spend no slot).  A read the approval does not serve (another
        principal's, another collection or purpose) is outside it and claims
        nothing: presenting someone else's approval spends none of its slots.
        ``owner``: the record's subject when the caller has fetched it already."""
        collection, record_id = request.collection, request.record_id
        if not presented.serves(request.principal.id, collection, request.purpose):
            return False
        limited = presented.scope.subjects or presented.scope.records or \
            presented.max_subjects is not None
        if not limited or not presented.valid(now):
            return True
        if owner is None:
            try:
                owner = await self._point_read(self.vault.owner, collection, record_id)
            except NotFound:
                return True  # the fetch that follows answers it (404 or 421)
        subject = self.pseudonyms.subject(str(owner))
        if not presented.scope.covers(subject, self.pseudonyms.record(collection, record_id)):
            return False
        if presented.max_subjects is None:
            return True
        return bool(await self._off_loop(self.subject_ledger.claim, presented.id, subject,
                                         presented.max_subjects))

    def _subject_pseudonym(self, subject: SubjectId) -> tuple[str, bytes]:
        """The subject's pseudonym and its canonical JSON (bounded cache: a read's
        bulk check and its entry both name it)."""
        key = str(subject)
        hit = self._subject_pseudonyms.get(key)
        if hit is None:
            pseudonym = self.pseudonyms.subject(key)
            hit = (pseudonym, canonical_json(pseudonym))
            self._subject_pseudonyms.put(key, hit)
        return hit

    def _pseudonym_of_subject(self, subject: SubjectId) -> bytes:
        """The subject's pseudonym as canonical JSON (bounded cache)."""
        return self._subject_pseudonym(subject)[1]

    def _pseudonym_of_record(self, collection: str, record_id: str) -> bytes:
        """The record's pseudonym as canonical JSON (bounded cache)."""
        key = (collection, record_id)
        hit = self._record_pseudonyms.get(key)
        if hit is None:
            hit = canonical_json(self.pseudonyms.record(collection, record_id))
            self._record_pseudonyms.put(key, hit)
        return hit

    @_decided_again
    async def write(self, authorization: str | None, collection: str, record_id: str,
                    payload: object, *, purpose: str | None) -> Outcome:
        """Create or replace a record if policy allows every field; logged first.

        Raises:
            Unauthenticated, InvalidInput, WrongJurisdiction: bad requests.
            DeniedAfterLogging: a field was denied (logged, nothing written).
            Conflict: ``record_owner_mismatch``; ``subject_erased`` (the subject's
                erasure was logged after this write's entry: nothing written);
                ``record_changed`` (the record gained a field this write did not
                decide since it was read: nothing written, write again).
            Unavailable: log, store or key backend down.
        """
        decided = self.decided.versions()  # before the token is checked
        principal, vouched = self.authenticate_vouched(authorization)
        purpose = _require_purpose(purpose)
        self.engine.bundle.purpose(purpose)
        if not isinstance(payload, dict):
            raise InvalidInput("the body must be a JSON object", code="malformed_body")
        unknown = sorted(set(payload) - {"subject", "values"})
        if unknown:
            raise InvalidInput(f"unknown body member {unknown[0][:40]!r}",
                               code="malformed_body")
        raw_subject, values = payload.get("subject"), payload.get("values")
        if not isinstance(raw_subject, str):
            raise InvalidInput("body.subject must be a subject id", code="malformed_subject_id")
        if not isinstance(values, dict) or not values:
            raise InvalidInput("body.values must be a non-empty object", code="malformed_body")
        parse_record_id(record_id)
        subject = self._subject(raw_subject)
        home = self._record_hint(record_id)
        if home is not None and home != subject.home:
            raise InvalidInput("the record id names another home than its subject",
                               code="record_home_mismatch")
        coll = self.schema.collection(collection)
        clean = coll.validate(values)
        try:  # the stored record's owner, and the fields it holds (sealed, never opened)
            stored: RawRecord = await self._point_read(
                self.vault.store.get_record, collection, record_id, list(coll.fields))
            owner, held = stored.subject, set(stored.fields)
        except NotFound:
            owner, held = subject, set()
        if owner != subject:
            raise Conflict("the record belongs to another subject", code="record_owner_mismatch")
        # a write replaces the whole record: a stored field the body leaves out is
        # removed, so it is decided (and logged) as written like the others, or a
        # principal allowed to write one field could delete every other
        specs = self._specs(collection, [*values, *sorted(held - set(values))])
        now = self.clock()
        context = self._context(purpose, int(now))
        inputs = field_inputs(principal, "write", collection, specs,
                              home=self.jurisdiction, context=context)
        decisions, recorded = self._decide(inputs)
        outcome = access_outcome(decisions)
        entry = self._decision_entry("write", now, {
            "principal": principal.to_json(), "collection": collection,
            "subject": self.pseudonyms.subject(str(subject)),
            "record": self.pseudonyms.record(collection, record_id),
            "purpose": purpose, "bundle": self.bundle_digest, "outcome": outcome,
            "fields": sorted(s.name for s in specs), **vouched,
        }, recorded)
        index, promise = await self._log_decision(entry, decided)
        if outcome != "allow":
            refused = [{"field": s.name, "class": s.field_class.value,
                        **withheld_reason(s.field_class.value, d, None)}
                       for s, d in zip(specs, decisions, strict=True) if not d.allowed]
            raise DeniedAfterLogging("policy denied writing some fields; nothing was written",
                                     log_index=index, code=denial_code(
                                         d.policy_ids for d in decisions if not d.allowed),
                                     members={"refused": refused,
                                              "log": {"origin": self.origin, "index": index}})
        events = await self._store_write(collection, record_id, subject, clean, entry=entry,
                                         promise=promise, logged_at=index,
                                         decided=frozenset(s.name for s in specs))
        if events:
            await self.log.append_many(self._key_entries(events, self.clock()))
        body = {"collection": collection, "record": record_id,
                "written": sorted(s.name for s in specs),
                "log": {"origin": self.origin, "index": index}}
        return Outcome(body, index, headers=self._log_headers(index))

    @_decided_again
    async def erase(self, authorization: str | None, subject_id: str, *,
                    purpose: str | None) -> Outcome:
        """Crypto-shred a subject if policy allows; logged before it is done.

        Raises:
            Unauthenticated, InvalidInput, WrongJurisdiction: bad requests.
            DeniedAfterLogging: denied (logged).
            Unavailable: log, store or key backend down.
        """
        decided = self.decided.versions()  # before the token is checked
        principal, vouched = self.authenticate_vouched(authorization)
        purpose = _require_purpose(purpose)
        self.engine.bundle.purpose(purpose)
        subject = self._subject(subject_id)
        now = self.clock()
        item = DecisionInput(principal, "erase", Subject(self.jurisdiction),
                             self._context(purpose, int(now)))
        decisions, recorded = self._decide([item])
        allowed = decisions[0].allowed
        records = len(await self._off_loop(self.vault.records_of, subject)) if allowed else 0
        entry = self._decision_entry("erase", now, {
            "principal": principal.to_json(),
            "subject": self.pseudonyms.subject(str(subject)),
            "purpose": purpose, "bundle": self.bundle_digest,
            "outcome": "allow" if allowed else "deny", "records": records, **vouched,
        }, recorded)
        index = await self.log.append_guarded([entry], decided)
        if not allowed:
            raise DeniedAfterLogging(
                "policy denied the erasure", log_index=index,
                code=denial_code([decisions[0].policy_ids]),
                members={"policy_ids": list(decisions[0].policy_ids),
                         "log": {"origin": self.origin, "index": index}})
        report = await self._off_loop(functools.partial(self.vault.erase, subject,
                                                        logged_at=index))
        if self.key_service is not None:
            self.key_service.evict(subject)
        if report.events:
            await self.log.append_many(self._key_entries(report.events, self.clock()))
        body = {"subject": subject_id, "records": report.records,
                "data_key_destroyed": report.data_key_destroyed, "residue": report.residue,
                "residue_kek_version": report.residue_kek_version,
                "log": {"origin": self.origin, "index": index}}
        return Outcome(body, index, headers=self._log_headers(index))

    @_decided_again
    async def export(self, authorization: str | None, payload: object) -> Outcome:
        """An aggregate over a collection, grouped by one field, differentially private.

        Every released number is an OpenDP draw and groups are kept by a noisy
        threshold of at least k subjects (``bordergate.privacy.mechanism``); the
        export's epsilon is debited from the principal's and the collection's
        budgets of the period, atomically across workers, before anything is
        computed or released (docs/exports.md).

        Raises:
            Unauthenticated, InvalidInput: bad requests.
            DeniedAfterLogging: denied (logged).
            PolicyDenied: ``privacy_budget_exhausted`` (nothing released).
            Unavailable: log, store or key backend down.
        """
        decided = self.decided.versions()  # before the token is checked
        token = self.principals.authenticate_token(authorization, self.clock())
        principal, vouched = self._vouched(token.principal)
        collection, group_by, purpose, k = self._export_request(payload)
        specs = self.schema.fields(collection, [group_by])
        now = self.clock()
        context = self._context(purpose, int(now), k=k)
        inputs = field_inputs(principal, "export", collection, specs,
                              home=self.jurisdiction, context=context)
        decisions, recorded = self._decide(inputs)
        body: dict[str, Any] = {
            "principal": principal.to_json(), "collection": collection, "group_by": group_by,
            "purpose": purpose, "bundle": self.bundle_digest, "k": k, **vouched,
            # the token, as a read's entry names it: the auditor's token_revoked_use, and
            # the receipt's binding to this request (receipts.check_binding)
            "jti": token.jti}
        if not decisions[0].allowed:
            index = await self.log.append_guarded([self._decision_entry("export", now, {
                **body, "outcome": "deny", "groups": 0, "suppressed": 0}, recorded)], decided)
            raise DeniedAfterLogging(
                "policy denied the export", log_index=index,
                code=denial_code([decisions[0].policy_ids]),
                members={"policy_ids": list(decisions[0].policy_ids),
                         "log": {"origin": self.origin, "index": index}})
        plan = self.mechanism.plan(self.privacy.epsilon_micro, self.privacy.delta_exponent, k)
        budget = await self._off_loop(self.budgets.spend, principal.id, collection, now,
                                      plan.epsilon_micro, self.privacy)
        if self.key_service is not None and specs[0].field_class.encrypted:
            aggregate, body["intent"] = await sealed_export_aggregate(
                self, principal, collection=collection, group_by=group_by, purpose=purpose,
                now=now)
        else:
            aggregate = await self._off_loop(lambda: self.vault.aggregate(collection, group_by))
        noisy = await self._off_loop(self.mechanism.release, plan, [
            TrueGroup(g.value, g.records, g.subjects) for g in aggregate.groups])
        groups = noisy.groups[: self.limits.max_export_groups]
        truncated = len(noisy.groups) > len(groups)
        entry = self._decision_entry("export", now, {
            **body, "outcome": "allow", "groups": len(groups), "suppressed": noisy.suppressed,
            "dp": plan.to_json(), "budget": budget.to_json()}, recorded)
        # refused as stale, the export is decided again and its budget debited again
        # (privacy accounting may over-count, never under-count)
        index = await self.log.append_guarded([entry], decided)
        answer = {"collection": collection, "group_by": group_by, "k": k,
                  "groups": [{"value": g.value, "records": g.records, "subjects": g.subjects}
                             for g in groups],
                  "suppressed": noisy.suppressed, "truncated": truncated,
                  "noise": {**plan.to_json(), "budget": budget.to_json()},
                  "log": {"origin": self.origin, "index": index}}
        # up to max_export_groups groups to encode: off the event loop, like the export
        await self._off_loop(lambda: self._attach_receipt(
            answer, "export", index, entry, fields=[group_by], groups=len(groups),
            suppressed=noisy.suppressed))
        return Outcome(answer, index, headers=self._log_headers(index))

    def _export_request(self, payload: object) -> tuple[str, str, str, int]:
        """Collection, grouping field, purpose and k of an export body.

        Raises:
            InvalidInput: a malformed body, unknown purpose, k below nothing.
        """
        if not isinstance(payload, dict):
            raise InvalidInput("the body must be a JSON object", code="malformed_body")
        unknown = sorted(set(payload) - {"collection", "group_by", "purpose", "min_subjects"})
        if unknown:
            raise InvalidInput(f"unknown body member {unknown[0][:40]!r}",
                               code="malformed_body")
        purpose = payload.get("purpose")
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInput("body.purpose is required", code="missing_purpose")
        self.engine.bundle.purpose(purpose)
        collection, group_by = payload.get("collection"), payload.get("group_by")
        if not isinstance(collection, str):
            raise InvalidInput("body.collection is required", code="unknown_collection")
        if not isinstance(group_by, str):
            raise InvalidInput("body.group_by must name a field", code="unknown_field")
        k = payload.get("min_subjects", self.k_min)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 2**31 - 1:
            raise InvalidInput("min_subjects must be a positive integer", code="invalid_k")
        return collection, group_by, purpose, k

    # -- approvals ---------------------------------------------------------
    @_decided_again
    async def request_approval(self, authorization: str | None, payload: object) -> Outcome:
        """Open a Lockbox-style approval request for the authenticated principal.

        Raises:
            Unauthenticated, InvalidInput: bad requests.
            Unavailable: log or store down.
        """
        decided = self.decided.versions()  # before the token is checked
        principal, vouched = self.authenticate_vouched(authorization)
        if not isinstance(payload, dict):
            raise InvalidInput("the body must be a JSON object", code="malformed_body")
        allowed_keys = {"purpose", "reason", "collections", "classes", "max_duration_s",
                        "subjects", "records", "ticket"}
        unknown = sorted(set(payload) - allowed_keys)
        if unknown:
            raise InvalidInput(f"unknown body member {unknown[0][:40]!r}",
                               code="malformed_body")
        purpose, reason = payload.get("purpose"), payload.get("reason")
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInput("body.purpose is required", code="missing_purpose")
        if not isinstance(reason, str) or not reason:
            raise InvalidInput("body.reason (a reason code) is required",
                               code="unknown_reason_code")
        self.engine.bundle.check_reason(purpose, reason)
        collections, classes = payload.get("collections"), payload.get("classes")
        for name, value in (("collections", collections), ("classes", classes)):
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise InvalidInput(f"body.{name} must be an array of names",
                                   code="invalid_scope")
        assert isinstance(collections, list) and isinstance(classes, list)
        for c in collections:
            self.schema.collection(c)
        duration = payload.get("max_duration_s", 3600)
        if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
            raise InvalidInput("max_duration_s must be a positive integer",
                               code="invalid_duration")
        reach = self.engine.bundle.approval_limits
        longest = min(self.limits.max_approval_seconds, reach.max_duration_s)
        if duration > longest:
            raise InvalidInput(f"max_duration_s exceeds {longest}", code="invalid_duration")
        scope = parse_scope(payload, home=self.jurisdiction, collections=collections,
                            subject_pseudonym=self.pseudonyms.subject,
                            record_pseudonym=self.pseudonyms.record)
        now = self.clock()
        record = appr.new_request(principal, purpose=purpose, reason=reason,
                                  collections=collections, classes=classes,
                                  home=self.jurisdiction, now=int(now), duration=duration,
                                  scope=scope, max_subjects=reach.max_subjects)
        entry = self._entry("approval-request", now, {
            "approval": record.id, "requester": principal.to_json(), "purpose": purpose,
            "reason": reason, "bundle": self.bundle_digest,
            "scope": {"collections": list(record.collections), "classes": list(record.classes),
                      "subjects": list(scope.subjects), "records": list(scope.records),
                      "ticket": scope.ticket},
            "requested_at": record.requested_at, "expires": record.expires,
            "max_subjects": record.max_subjects, **vouched,
        })
        async with self._approval_lock:
            index = await self.log.append_guarded([entry], decided)
            # the bytes the log holds (stamped with the append credential through the
            # log operator): approvers sign the digest of exactly those
            record = replace(record, changed_at=index,
                             request_entry=logged_form(self.log, entry).decode("utf-8"))
            await self._off_loop(self.approvals.put, record)
        body = {**record.to_json(now), "log": {"origin": self.origin, "index": index}}
        return Outcome(body, index, status=201, headers=self._log_headers(index))

    def _approve_decision(self, principal: Principal, record: appr.ApprovalRecord,
                          now: int) -> tuple[DecisionInput, Decision]:
        item = DecisionInput(principal, "approve", record.as_resource(),
                             self._context(record.purpose, now))
        return item, self.engine.decide(item)

    @_decided_again
    async def decide_approval(self, authorization: str | None, approval_id: str,
                              verdict: str, payload: object = None) -> Outcome:
        """``grant``, ``deny`` or ``revoke`` an approval; the change is logged first.

        ``payload`` is the request body: ``{"statement": {...}}``, the approver's
        signature of the change (``approval_statement``), required from everyone
        but a requester revoking their own request.  It is verified against the
        approver's keys in the roster before anything is logged.

        Raises:
            Unauthenticated, InvalidInput, NotFound: bad requests.
            PolicyDenied: the principal may not approve (or revoke) it.
            Conflict: the approval is not in a state that allows it.
            VerificationError: the signature is missing or does not verify
                (``approval_statement.verify_statement``'s codes).
            Unavailable: log or store down.
        """
        state = self.decided.versions()  # before the token is checked
        principal, vouched = self.authenticate_vouched(authorization)
        appr.parse_approval_id(approval_id)
        signed = appr.change_signature(payload)
        async with self._approval_lock:
            record: appr.ApprovalRecord = await self._off_loop(self.approvals.get, approval_id)
            now = self.clock()
            try:
                updated, kind, body, decided = self._approval_change(
                    principal, record, verdict, now)
                if signed is not None or principal.id != record.requester:
                    body["statement"] = self._checked_statement(
                        principal, record, verdict, signed)
            except (PolicyDenied, Conflict, VerificationError) as exc:
                await self._log_refused(principal, record, verdict, exc.code, now,
                                        vouched=vouched, decided=state)
                raise
            entry = self._entry(kind, now, {
                "approval": record.id, "state": updated.state, "bundle": self.bundle_digest,
                "decision": decided, **body, **vouched})
            version = _UNKNOWN_VERSION if record.changed_at is None else record.changed_at
            try:  # another worker may have changed it since it was read; a mapping of its
                # own (a change of the approval never shares a submission with its reads)
                index = await self.log.append_guarded(
                    [entry], {approval_key(record.id): version, **state})
            except StaleState as exc:
                if self.decided.concerns(exc.current):
                    raise  # the roster or revocations moved: decided again
                raise Conflict("the approval changed meanwhile; retry",
                               code="approval_changed") from None
            updated = replace(updated, changed_at=index)
            await self._off_loop(self.approvals.put, updated)
        out = {**updated.to_json(now), "log": {"origin": self.origin, "index": index}}
        return Outcome(out, index, headers=self._log_headers(index))

    def _checked_statement(self, principal: Principal, record: appr.ApprovalRecord,
                           verdict: str, signed: SignedStatement | None) -> dict[str, str]:
        """The entry's ``statement`` member, once ``signed`` is checked: this log,
        this approval, its request digest, ``verdict``, ``principal``'s own key.

        Raises:
            VerificationError: as ``verify_statement``; ``approval_request_unknown``
                when the approval's request entry is not known here yet.
        """
        digest = record.request_digest
        if digest is None:
            raise VerificationError("this approval's request entry is not known here yet; "
                                    "retry after the gateway reconciled its approvals",
                                    code="approval_request_unknown")
        statement = ApprovalStatement(origin=self.origin, approval=record.id, request=digest,
                                      verdict=verdict, approver=principal.id)
        verify_statement(statement, signed, self.approver_keys)
        assert signed is not None
        return signed.to_json()

    def _visible_approvals(self, principal: Principal, records: Sequence[appr.ApprovalRecord],
                           now: int) -> list[appr.ApprovalRecord]:
        """The records ``principal`` may see: its own requests, and those the policy
        lets it decide (``approve``: the custodian approvers of this home)."""
        others = [r for r in records if r.requester != principal.id]
        inputs = [DecisionInput(principal, "approve", r.as_resource(),
                                self._context(r.purpose, now)) for r in others]
        decisions, _ = self._decide(inputs) if inputs else ([], b"")
        decidable = {r.id for r, d in zip(others, decisions, strict=True) if d.allowed}
        return [r for r in records if r.requester == principal.id or r.id in decidable]

    async def revoke_token(self, authorization: str | None, payload: object) -> Outcome:
        """Revoke a bearer token (``gateway.revocations``): the ``token-revoke``
        entry is logged first, then applied here before the answer; the other
        workers apply it from the log.

        Raises:
            Unauthenticated, InvalidInput: bad requests.
            PolicyDenied: ``token_revoke_forbidden`` (not a custodian principal here).
            Unavailable: the log cannot be written.
        """
        principal = self.authenticate(authorization)
        jti, reason = revocation_request(principal, self.jurisdiction, payload)
        entry = token_revoke_entry(jti, self.clock(), by=principal.to_json(), reason=reason)
        index = await self.log.append_many([entry])
        self.revocations.add(jti, index)
        out = {"revoked": jti, "log": {"origin": self.origin, "index": index}}
        return Outcome(out, index, headers=self._log_headers(index))

    def _approval_change(self, principal: Principal, record: appr.ApprovalRecord,
                         verdict: str, now: float
                         ) -> tuple[appr.ApprovalRecord, str, dict[str, Any], dict[str, Any]]:
        """The approval after ``verdict``, its entry type and body, and the recorded
        ``approve`` decision.

        Raises:
            PolicyDenied: the principal may not approve (or revoke) it.
            Conflict: the approval is not in a state that allows it.
        """
        item, decision = self._approve_decision(principal, record, int(now))
        is_requester = principal.id == record.requester
        if not decision.allowed and not (verdict == "revoke" and is_requester):
            raise PolicyDenied("policy does not let you decide this approval",
                               code="policy_denied")
        decided = decision_records([item], [decision])[0]
        body: dict[str, Any]
        if verdict == "grant":
            updated = appr.grant(record, principal.id, now)
            kind, body = "approval-grant", {"approver": principal.to_json(),
                                            "approvals": len(updated.approvers)}
        elif verdict == "deny":
            updated = appr.deny(record, principal.id, now)
            kind, body = "approval-deny", {"approver": principal.to_json()}
        else:
            updated = appr.revoke(record, principal.id)
            kind, body = "approval-revoke", {"by": principal.to_json()}
        return updated, kind, body, decided

    async def _log_refused(self, principal: Principal, record: appr.ApprovalRecord,
                           verdict: str, code: str, now: float, *,
                           vouched: Mapping[str, str], decided: Mapping[str, int]) -> None:
        """Log a refused grant, deny or revoke before the refusal is answered
        (promise 3); the entry names the actor, the action and the answer's code,
        never subject data.

        Raises:
            Unavailable: the log cannot be written (then the refusal is a 503).
        """
        entry = self._entry("approval-refused", now, {
            "approval": record.id, "actor": principal.to_json(), "action": verdict,
            "code": code, "requester": principal.id == record.requester,
            "bundle": self.bundle_digest, **vouched})
        await self.log.append_guarded([entry], decided)

    async def get_approval(self, authorization: str | None, approval_id: str) -> Outcome:
        """One approval and its status now (no subject data; not logged), to its
        requester and to the principals the policy lets decide it.

        Raises:
            Unauthenticated, InvalidInput: bad requests.
            NotFound: no such approval, or not one the principal may see.
        """
        principal = self.authenticate(authorization)
        appr.parse_approval_id(approval_id)
        record = await self._off_loop(self.approvals.get, approval_id)
        if not self._visible_approvals(principal, [record], int(self.clock())):
            raise NotFound("no such approval", code="approval_not_found")
        out = {**record.to_json(self.clock()), "log_origin": self.origin}
        return Outcome(out)

    async def list_approvals(self, authorization: str | None, state: str | None) -> Outcome:
        """Approvals whose status is ``state`` (all when None), newest first: a
        requester sees its own, an approver those the policy lets it decide (its
        home's); anyone else an empty list.

        Raises:
            Unauthenticated, InvalidInput: bad requests.
        """
        principal = self.authenticate(authorization)
        if state is not None and state not in appr.STATES:
            raise InvalidInput(f"state must be one of {', '.join(appr.STATES)}",
                               code="invalid_state")
        now = self.clock()
        items = await self._off_loop(lambda: self.approvals.list(state, now=now,
                                                                 limit=_MAX_LISTED))
        visible = self._visible_approvals(principal, items, int(now))[:_LIST_LIMIT]
        return Outcome({"approvals": [r.to_json(now) for r in visible]})

    # -- log proofs ----------------------------------------------------------
    async def inclusion_proof(self, index: int) -> Outcome:
        """An inclusion proof of entry ``index`` against the current checkpoint.

        Waits (briefly) for a checkpoint covering the entry if it is newer.

        Raises:
            NotFound: ``index_out_of_range``.
            Unavailable: no checkpoint could be published.
        """
        signed = self.log.checkpoint()
        if signed is None or index >= signed.checkpoint.size:
            signed = await self.log.publish(5.0)
        size = signed.checkpoint.size
        if not 0 <= index < size:
            raise NotFound(f"index {index} is outside the log of size {size}",
                           code="index_out_of_range")

        def prove() -> tuple[bytes, list[bytes]]:
            from bordergate.tlog import merkle

            entry = self.log_reader.entry(index, size)
            return merkle.leaf_hash(entry), self.log_reader.inclusion_proof(index, size)

        leaf, proof = await asyncio.to_thread(prove)
        b64 = base64.b64encode
        return Outcome({
            "origin": self.origin, "index": index, "size": size,
            "root": b64(signed.checkpoint.root).decode(), "leaf_hash": b64(leaf).decode(),
            "proof": [b64(p).decode() for p in proof],
            "checkpoint": signed.note.decode("utf-8"),
        })

"""One audit run over every configured log: log check, inspection, proofs, state.

For each log of the auditor's configuration, :func:`run_audit`:

1. runs the log-level check (:func:`bordergate.audit.logcheck.audit_log`):
   signature, witness quorum, consistency with the last verified checkpoint,
   and the full rebuild of every new tile from the new entry bundles.  The
   entry bundles the check reads are kept aside (spooled to a temporary file)
   as it reads them; nothing is inspected before the whole check passed, so
   tampering is caught there, before any replay;
2. feeds the new entries, in index order, to an inspector continuing from the
   saved inspection state (incremental): by default the accelerated one
   (:mod:`bordergate.audit._accelerated`), with ``reference=True`` the plain
   :class:`~bordergate.audit.inspection.ReferenceInspector` (same findings, same
   state).  With the accelerated one, from :data:`PARALLEL_MIN` new entries, a
   forked helper parses and replays the last 60% meanwhile, and the inspector
   checks it from the helper's parts, in order (same findings, same state);
3. attaches to every finding an RFC 9162 inclusion proof of its entry against
   the checkpoint just audited, verified before it is written;
4. judges the audited checkpoint's witnesses (:mod:`bordergate.audit.witness_check`):
   without the auditor's quorum of fresh cosignatures by witnesses it trusts,
   the run reports ``checkpoint_unwitnessed`` or ``checkpoint_stale`` (high),
   still inspects what the log holds, and saves no state: an unwitnessed
   checkpoint never becomes the history later audits compare against;
5. saves the inspection state, and only then the log check's new state, so a
   crash never leaves entries verified but not inspected.

The reports (JSON and HTML) are written by :mod:`bordergate.audit.report`.
State layout under ``--state DIR``: ``logs/`` (the log check's state, see
:mod:`bordergate.audit.logstate_dir`) and ``inspection/<origin>.json``.

This module does the I/O of an audit; it must never write to a log, and never
save state for entries it did not verify.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import multiprocessing
import os
import pickle
import queue
import tempfile
import threading
import time as wallclock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from bordergate.approval_statement import MappingApproverKeys
from bordergate.audit._accelerated import AcceleratedInspector
from bordergate.audit.auditor_config import AuditorConfig, LogAudit
from bordergate.audit.bundlestore import BundleStore
from bordergate.audit.findings import Finding
from bordergate.audit.inspection import InspectionState, ReferenceInspector, open_inspector
from bordergate.audit.logcheck import AuditResult, audit_log
from bordergate.audit.logstate import AuditStateStore, decode_state
from bordergate.audit.logstate_dir import DirectoryStateStore, state_file_name
from bordergate.audit.rosterstore import RosterStore
from bordergate.audit.rules import keyaccess
from bordergate.audit.rules.bulk import BulkRules
from bordergate.audit.witness_check import WitnessCheck, check_witnesses
from bordergate.dsp.bulk import FieldCategories
from bordergate.errors import BordergateError, ConfigError, Unavailable, VerificationError
from bordergate.releases.ledger import ReleaseLedger
from bordergate.releases.review import reviewers_from
from bordergate.residency.schema import load_schema
from bordergate.roster import RosterAuthority
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.client import LogClient, LogSource, open_source
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.note import Ed25519Verifier
from bordergate.tlog.tiles import TILE_WIDTH, decode_bundle, parse_path

__all__ = ["MAX_PROOFS", "PARALLEL_MIN", "AuditRun", "LogRun", "run_audit"]

MAX_PROOFS = 5000
"""Findings per log that get an inclusion proof in the report (the rest: ``log prove``)."""

PARALLEL_MIN = 100_000
"""New entries from which a second process parses and replays half of them."""

Progress = Callable[[str, int, int], None]


@dataclass
class LogRun:
    """The audit of one log in one run.

    Attributes:
        audit: what the auditor trusts about it.
        check: the log-level result (None if the log could not be reached).
        error: why it could not be audited (infrastructure), if so.
        inspector: the inspection (with the release ledger): of the log when it
            verified, else of what the failed check read (``unverified``).
        new_entries: entries inspected in this run.
        proofs: inclusion proof per finding index.
        checkpoint: the audited checkpoint note.
        previous_checkpoint: the checkpoint note of the saved state this run resumed
            from (None on a first audit): entries before its size were replayed by
            earlier runs (the report's period says so).
        witnesses: what its witnesses showed (None if the log did not verify).
        log_findings: the log check's own findings.
        unverified: the log failed its check; the inspection's findings of this run
            are marked as from an unverified log, and nothing was saved.
    """

    audit: LogAudit
    check: AuditResult | None = None
    error: str | None = None
    inspector: ReferenceInspector | None = None
    new_entries: int = 0
    proofs: dict[int, dict[str, Any]] = field(default_factory=dict)
    checkpoint: str | None = None
    previous_checkpoint: str | None = None
    log_findings: list[Finding] = field(default_factory=list)
    witnesses: WitnessCheck | None = None
    unverified: bool = False

    @property
    def findings(self) -> list[Finding]:
        own = self.inspector.findings if self.inspector is not None else []
        return [*self.log_findings, *own]

    @property
    def ledger(self) -> ReleaseLedger | None:
        return self.inspector.ledger if self.inspector is not None else None


@dataclass
class AuditRun:
    """Every log's audit in one run."""

    config: AuditorConfig
    time: float
    logs: list[LogRun]

    @property
    def findings(self) -> list[Finding]:
        return [f for log in self.logs for f in log.findings]

    @property
    def ok(self) -> bool:
        """Every log verified and nothing was found."""
        return all(r.error is None and r.check is not None and r.check.ok for r in self.logs) \
            and not self.findings


def run_audit(config: AuditorConfig, state_dir: Path, *, now: float | None = None,
              progress: Progress | None = None, reference: bool = False) -> AuditRun:
    """Audit every configured log once (see the module docstring).

    Args:
        config: the auditor configuration.
        state_dir: the auditor's state directory (created if missing).
        now: the audit's reference time (default: the wall clock).
        progress: called with ``(jurisdiction, done, total)`` during the log check.
        reference: inspect with the plain reference inspector (one process, no
            caches) instead of the accelerated one; the findings are the same.

    Returns:
        The run; a log that failed verification carries a ``log_verification_failed``
        finding, and one that could not be reached (its log, or its bundle store
        while its entries were inspected) an ``error``: one log's store never stops
        the audit of the others.

    Raises:
        ConfigError: the saved state is damaged or inconsistent.
    """
    run = AuditRun(config, wallclock.time() if now is None else now, [])
    for code in sorted(config.logs):
        run.logs.append(_audit_one(config, config.logs[code], state_dir, progress,
                                   reference=reference, now=run.time))
    return run


class _SpoolingSource:
    """A log source that keeps aside every entry bundle it serves (for after the check)."""

    def __init__(self, inner: LogSource, spool: IO[bytes]) -> None:
        self.inner = inner
        self.spool = spool
        self.recording = True
        self.bundles: dict[int, tuple[int, int, int]] = {}  # bundle -> (offset, length, width)

    def fetch(self, path: str, limit: int) -> bytes | None:
        data = self.inner.fetch(path, limit)
        if data is not None and self.recording and path.startswith("tile/entries/"):
            ref = parse_path(path)
            offset = self.spool.seek(0, 2)
            self.spool.write(data)
            self.bundles[ref.index] = (offset, len(data), ref.width)
        return data

    def readable_end(self, start: int) -> int:
        """The end of the run of entries from ``start`` that the bundles read so far hold
        (for a log that failed its check: what can still be inspected)."""
        end = start
        bundle = start // TILE_WIDTH
        while (found := self.bundles.get(bundle)) is not None:
            end = max(end, bundle * TILE_WIDTH + found[2])
            if found[2] < TILE_WIDTH:
                break
            bundle += 1
        return end

    def holds(self, index: int) -> bool:
        """Whether a bundle the check read holds the entry at ``index``."""
        found = self.bundles.get(index // TILE_WIDTH)
        return found is not None and index % TILE_WIDTH < found[2]

    def entries(self, start: int, end: int) -> Iterator[list[bytes]]:
        """Yield the entries ``start <= index < end`` from the spooled bundles, in order,
        a list per bundle.

        Raises:
            VerificationError: a needed bundle was not read by the check.
        """
        if start >= end:
            return
        for bundle in range(start // TILE_WIDTH, (end + TILE_WIDTH - 1) // TILE_WIDTH):
            found = self.bundles.get(bundle)
            if found is None:
                raise VerificationError(f"entry bundle {bundle} was not verified",
                                        code="bundle_not_verified")
            offset, length, width = found
            # pread: no shared file offset (a second process reads the same spool)
            entries = decode_bundle(os.pread(self.spool.fileno(), length, offset), width)
            first = bundle * TILE_WIDTH
            if first < start or first + len(entries) > end:
                entries = entries[max(0, start - first):max(0, end - first)]
            yield entries


class _HeldStateStore:
    """Holds the log check's new state until the inspection state is saved."""

    def __init__(self, inner: AuditStateStore) -> None:
        self.inner = inner
        self.held: tuple[str, bytes] | None = None

    def read(self, origin: str) -> bytes | None:
        return self.inner.read(origin)

    def write(self, origin: str, data: bytes) -> None:
        self.held = (origin, bytes(data))

    def write_evidence(self, name: str, data: bytes) -> str:
        return self.inner.write_evidence(name, data)

    def commit(self) -> None:
        if self.held is not None:
            self.inner.write(*self.held)
            self.held = None


def _audit_one(config: AuditorConfig, audit: LogAudit, state_dir: Path,
               progress: Progress | None, *, reference: bool, now: float) -> LogRun:
    run = LogRun(audit)
    verifier = Ed25519Verifier.from_key_string(audit.vkey)
    origin = verifier.name
    cosigners = [CosignatureVerifier.from_key_string(w) for w in audit.witnesses]
    inspection_store = DirectoryStateStore(state_dir / "inspection")
    state = _load_inspection(inspection_store, origin)
    with tempfile.TemporaryFile(prefix="bordergate-audit-") as spool:
        try:
            source = _SpoolingSource(open_source(audit.location), spool)
            # the witness quorum is judged after the log check (step 4), as a finding
            client = LogClient(source, verifier, cosigners=cosigners, quorum=0)
            log_store = _HeldStateStore(DirectoryStateStore(state_dir / "logs"))
            old_size = _saved_size(log_store, verifier)
            run.previous_checkpoint = _audited_note(log_store, origin)
            if old_size is not None and state is not None and state.size < old_size:
                raise ConfigError(
                    f"{state_dir}: the inspection state of {origin} ({state.size} entries) is "
                    f"behind its log state ({old_size}); remove both to audit from scratch",
                    code="audit_state_inconsistent")
            report = None if progress is None else (
                lambda done, total: progress(audit.jurisdiction, done, total))
            result = audit_log(client, log_store, progress=report)
        except BordergateError as exc:
            if isinstance(exc, ConfigError):
                raise
            run.error = f"[{exc.code}] {exc}"
            return run
        run.check = dataclasses.replace(result, warnings=())  # step 4 says it all
        if not result.ok or result.size is None or result.root is None:
            run.log_findings.append(Finding(
                "log_verification_failed", audit.jurisdiction, origin, result.index,
                f"the log failed verification [{result.code}]: {result.reason}; the "
                "entries read were inspected and their findings are marked as from an "
                "unverified log; nothing was saved", detail={
                    "code": result.code, "path": result.path,
                    "evidence_file": result.evidence_file}))
            _inspect_unverified(run, config, audit, origin, state=state, source=source,
                                reference=reference)
            return run
        source.recording = False
        spool.flush()
        run.checkpoint = result.note.decode("utf-8") if result.note is not None else \
            _audited_note(log_store, origin)
        run.witnesses = _judge_witnesses(config, audit, run, cosigners, now)
        inspector = _inspector(config, audit, origin, state, reference=reference)
        start = inspector.state.size
        try:
            if start > (result.old_size or 0):
                _check_inspected_prefix(client, state_dir, origin, start, result)
            with _no_cyclic_gc():
                _inspect(inspector, source, start, result.size,
                         lambda: _helper_inspector(config, audit, origin))
                inspector.finish()
                # key-access claims, once every entry is inspected, on verified bytes
                keyaccess.settle_key_claims(inspector, _proven_entries(
                    source, client, result.size, result.root))
        except (VerificationError, Unavailable) as exc:
            # this log only (its bundle store down or too slow): the others go on
            run.error = f"[{exc.code}] {exc}"
            return run
    run.inspector = inspector
    run.new_entries = result.size - start
    try:
        run.proofs = _proofs(client, run.findings, result.size, result.root)
    except (VerificationError, Unavailable) as exc:
        run.error = f"inclusion proofs failed [{exc.code}]: {exc}"
        return run
    if run.witnesses is not None and run.witnesses.finding is None:
        _save_inspection(inspection_store, origin, inspector.state, result)
        log_store.commit()
    return run


def _judge_witnesses(config: AuditorConfig, audit: LogAudit, run: LogRun,
                     cosigners: list[CosignatureVerifier], now: float) -> WitnessCheck:
    """Step 4 of the module docstring; adds the finding to ``run`` if there is one."""
    assert run.checkpoint is not None and run.check is not None
    verifier = Ed25519Verifier.from_key_string(audit.vkey)
    signed = open_checkpoint(run.checkpoint.encode("utf-8"), verifier, cosigners=cosigners)
    check = check_witnesses(signed, trusted=cosigners, quorum=audit.quorum, now=now,
                            max_age=config.max_checkpoint_age)
    if check.finding is not None:
        run.log_findings.append(Finding(check.finding, audit.jurisdiction, verifier.name,
                                        None, check.explanation, detail=check.to_json()))
    return check
def _inspect_unverified(run: LogRun, config: AuditorConfig, audit: LogAudit, origin: str,
                        *, state: InspectionState | None, source: _SpoolingSource,
                        reference: bool) -> None:
    """Inspect the entries a failed log check read, from the saved state on, and mark
    the findings of this run as from an unverified log (no proofs, nothing saved).

    What a log that does not verify says is not evidence, but hiding it would let a
    damaged or rewritten log silence the audit: its findings are reported, marked.
    """
    inspector = _inspector(config, audit, origin, state, reference=reference)
    start = inspector.state.size
    before = len(inspector.findings)
    end = source.readable_end(start)
    try:
        with _no_cyclic_gc():
            _inspect(inspector, source, start, end,
                     lambda: _helper_inspector(config, audit, origin))
            inspector.finish()
    except (VerificationError, Unavailable) as exc:
        run.error = f"[{exc.code}] {exc}"
    findings = inspector.state.findings
    findings[before:] = [dataclasses.replace(f, unverified=True) for f in findings[before:]]
    run.inspector = inspector
    run.new_entries = inspector.state.size - start
    run.unverified = True


def _inspector(config: AuditorConfig, audit: LogAudit, origin: str,
               state: InspectionState | None, *, reference: bool) -> ReferenceInspector:
    bundles = BundleStore(open_source(audit.bundle_store), local_dirs=audit.bundle_dirs,
                          v1_k_min=audit.v1_k_min)
    authority = RosterAuthority.from_key_strings(audit.jurisdiction, audit.roster_authority) \
        if audit.roster_authority else None
    rosters = RosterStore(open_source(audit.bundle_store), authority)
    return open_inspector(
        reference=reference,
        jurisdiction=audit.jurisdiction, origin=origin, bundles=bundles.lookup,
        reviewers=reviewers_from(audit.reviewers, audit.required_approvals)
        if audit.reviewers else _no_reviewers(), approvers=audit.approvers,
        approver_keys=MappingApproverKeys(dict(audit.approver_keys)),
        tolerance=config.time_tolerance, state=state, rosters=rosters.lookup,
        appenders=audit.appenders, bulk=_bulk_rules(audit))


def _bulk_rules(audit: LogAudit) -> BulkRules | None:
    """The bulk rules the auditor states for a log (None: it names no schema).

    Raises:
        ConfigError: the schema cannot be read or is invalid.
    """
    if audit.schema is None:
        return None
    return BulkRules(FieldCategories.from_schema(load_schema(audit.schema)),
                     audit.bulk, audit.countries_of_concern)


def _helper_inspector(config: AuditorConfig, audit: LogAudit, origin: str
                      ) -> AcceleratedInspector:
    inspector = _inspector(config, audit, origin, None, reference=False)
    assert isinstance(inspector, AcceleratedInspector)
    return inspector


def _inspect(inspector: ReferenceInspector, source: _SpoolingSource, start: int, end: int,
             helper: Callable[[], AcceleratedInspector]) -> None:
    """Feed the entries ``start <= index < end`` to ``inspector``, in order.

    With two CPUs, at least :data:`PARALLEL_MIN` entries and no other thread
    running (an interactive progress bar has one), a forked process
    parses and replays the last 60% (:meth:`AcceleratedInspector.parse_ahead`, with
    its own inspector from ``helper``) while this one inspects the first; this
    one then checks the rest from those parts, in order, with its state
    (:meth:`AcceleratedInspector.feed_parsed`): the same checks, findings and state
    as feeding every entry here.  If the helper fails, the rest is fed here.  The
    reference inspector is always fed here, in one process.
    """
    # the helper's part costs this process about a third of inspecting it: 40/60
    mid = (start + (end - start) * 2 // 5) // TILE_WIDTH * TILE_WIDTH
    if end - start < PARALLEL_MIN or (os.cpu_count() or 1) < 2 or not start < mid < end or \
            "fork" not in multiprocessing.get_all_start_methods() or \
            threading.active_count() > 1 or \
            not isinstance(inspector, AcceleratedInspector):  # forking with threads is unsafe
        mid = end
    helping = _start_helper(helper, source, mid, end) if mid < end else None
    try:
        index = start
        for entries in source.entries(start, mid):
            inspector.feed_all(index, entries)
            index += len(entries)
        if helping is not None:
            assert isinstance(inspector, AcceleratedInspector)
            _receive(inspector, *helping)
    finally:
        if helping is not None:
            _stop_helper(*helping)
    index = inspector.state.size
    for entries in source.entries(index, end):
        inspector.feed_all(index, entries)
        index += len(entries)


def _start_helper(helper: Callable[[], AcceleratedInspector], source: _SpoolingSource, start: int,
                  end: int) -> tuple[Connection, Any]:
    context = multiprocessing.get_context("fork")
    ahead, sink = context.Pipe(duplex=False)
    worker = context.Process(target=_parse_ahead, args=(sink, helper, source, start, end),
                             daemon=True)
    worker.start()
    sink.close()
    return ahead, worker


def _receive(inspector: AcceleratedInspector, ahead: Connection, worker: Any) -> None:
    """Check the helper's parts as they come; stop quietly if it died."""
    try:
        while True:
            while not ahead.poll(1.0):
                if not worker.is_alive() and not ahead.poll(0):
                    return
            part = pickle.loads(ahead.recv_bytes())  # noqa: S301 (our own helper's parts)
            if part is None:
                return
            inspector.feed_parsed(part)
    except (EOFError, OSError):
        return  # the helper died: what it did not send is fed by the caller


def _stop_helper(ahead: Connection, worker: Any) -> None:
    ahead.close()
    worker.join(timeout=5)
    if worker.is_alive():
        worker.kill()
        worker.join()


def _parse_ahead(sink: Connection, helper: Callable[[], AcceleratedInspector],
                 source: _SpoolingSource, start: int, end: int) -> None:
    """The forked helper of :func:`_inspect`: parts to the pipe, then None.

    A thread writes the pipe, so that parsing never waits for the inspector (busy
    with the first half until it reads).
    """
    gc.disable()
    parts: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def send() -> None:
        while (data := parts.get()) is not None:
            sink.send_bytes(data)
        sink.send_bytes(pickle.dumps(None))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        for part in helper().parse_ahead(start, source.entries(start, end)):
            parts.put(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        parts.put(None)
        sender.join()
        sink.close()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small acyclic objects are made
    (its full passes over the inspector's caches would make the audit superlinear)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _audited_note(store: _HeldStateStore, origin: str) -> str | None:
    """The checkpoint note the log check just verified (held, or unchanged since last run)."""
    data = store.held[1] if store.held is not None else store.inner.read(origin)
    if data is None:
        return None
    note = json.loads(data.decode("utf-8")).get("checkpoint")
    return note if isinstance(note, str) else None


def _no_reviewers() -> Any:
    from bordergate.releases.review import ReviewPolicy

    return ReviewPolicy((), 1)


def _saved_size(store: AuditStateStore, verifier: Ed25519Verifier) -> int | None:
    data = store.read(verifier.name)
    if data is None:
        return None
    try:
        return decode_state(data, verifier).size
    except VerificationError as exc:
        raise ConfigError(str(exc), code=exc.code) from exc


def _load_inspection(store: DirectoryStateStore, origin: str) -> InspectionState | None:
    data = store.read(origin)
    if data is None:
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
        return InspectionState.from_json(doc["inspection"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{store.path(origin)}: damaged inspection state ({exc}); remove "
                          "it and the log state to audit from scratch",
                          code="audit_state_invalid") from exc


def _save_inspection(store: DirectoryStateStore, origin: str, state: InspectionState,
                     result: AuditResult) -> None:
    doc = {"type": "bordergate/audit-inspection-state/v1", "origin": origin,
           "size": result.size, "root": result.root.hex() if result.root else None,
           "inspection": state.to_json()}
    store.write(origin, json.dumps(doc, separators=(",", ":")).encode("utf-8"))


def _proven_entries(source: _SpoolingSource, client: LogClient, size: int, root: bytes
                    ) -> Callable[[int], bytes]:
    """The log's entry at an index, as verified: from the bundles the check read
    (spooled), else fetched again with an inclusion proof against the audited root.
    Never an entry read again on trust: a log server may answer a second request for
    a bundle with other bytes than the ones the check verified."""
    def entry_at(index: int) -> bytes:
        if source.holds(index):
            return next(source.entries(index, index + 1))[0]
        entry = client.entry(index, size)
        merkle.verify_inclusion(merkle.leaf_hash(entry), index, size,
                                client.inclusion_proof(index, size), root)
        return entry
    return entry_at


def _check_inspected_prefix(client: LogClient, state_dir: Path, origin: str, size: int,
                            result: AuditResult) -> None:
    """Entries inspected beyond the log state (a crash between the two saves) must still
    be the log's: the saved inspection root must be consistent with the new checkpoint."""
    path = state_dir / "inspection" / state_file_name(origin)
    root = bytes.fromhex(json.loads(path.read_text())["root"])
    assert result.size is not None and result.root is not None
    proof = client.consistency_proof(size, result.size)
    merkle.verify_consistency(size, result.size, root, result.root, proof)


def _proofs(client: LogClient, findings: list[Finding], size: int, root: bytes
            ) -> dict[int, dict[str, Any]]:
    """Verified inclusion proofs of the findings' entries against the audited checkpoint."""
    out: dict[int, dict[str, Any]] = {}
    b64 = base64.b64encode
    private = {f.index for f in findings if f.kind == "personal_data_in_entry"}
    for f in findings:
        index = f.index
        if index is None or index in out or not 0 <= index < size:
            continue
        if len(out) >= MAX_PROOFS:
            break
        entry = client.entry(index, size)
        proof = client.inclusion_proof(index, size)
        leaf = merkle.leaf_hash(entry)
        merkle.verify_inclusion(leaf, index, size, proof, root)
        out[index] = {"index": index, "tree_size": size, "root": b64(root).decode(),
                      "leaf_hash": b64(leaf).decode(),
                      "hashes": [b64(h).decode() for h in proof],
                      "entry": None if index in private else b64(entry).decode()}
    return out

"""The auditor's log check: is the log still the one verified last time, only longer?

:func:`audit_log` takes a verifying :class:`~bordergate.tlog.client.LogClient`
and an :class:`~bordergate.audit.logstate.AuditStateStore` and, for the log's
current checkpoint (promise 5: append-only and witnessed):

1. verifies the custodian's signature on it;
2. against the last verified checkpoint of the same origin (if any): refuses a
   smaller size (a rollback or a replayed older checkpoint), catches a second
   root for the same size, and verifies an RFC 9162 consistency proof built
   from the log's new tiles.  Two signed checkpoints that cannot both be true
   are written as a self-proving evidence file
   (:mod:`bordergate.tlog.evidence`) into the store, and named in the result;
3. requires the configured quorum of witness cosignatures (and warns when that
   quorum is at most half the trusted witnesses: the log operator alone could
   then show another party a different history meeting it,
   :func:`bordergate.audit.witness_check.fork_colluders`);
4. rebuilds the tree from the saved edge, reading only the new entry bundles,
   and checks that every new tile and the root are what the entries produce;
5. saves the new state only when everything verified.

A verification failure is a result (``ok=False``) with a stable ``code``, the
reason, and the entry index and tile path involved where there is one;
infrastructure problems (log unreachable, state unreadable) raise.  This
module must never write to the log, and never save a state it did not verify.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bordergate.audit.logstate import AuditState, AuditStateStore, decode_state, encode_state
from bordergate.audit.witness_check import fork_caveat, fork_colluders
from bordergate.errors import ConfigError, NotFound, VerificationError
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.client import LogClient
from bordergate.tlog.cosignature import count_witnesses
from bordergate.tlog.evidence import build_evidence
from bordergate.tlog.storage import CHECKPOINT_PATH
from bordergate.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, parse_path

__all__ = ["AuditResult", "Progress", "audit_log", "evidence_file_name"]

Progress = Callable[[int, int], None]
"""Called with ``(entries verified so far, entries to verify)`` during a rebuild."""


@dataclass(frozen=True)
class AuditResult:
    """The outcome of one log check (``ok`` or the reason it failed)."""

    ok: bool
    origin: str
    old_size: int | None
    size: int | None = None
    root: bytes | None = None
    cosignatures: tuple[str, ...] = ()
    code: str | None = None
    reason: str | None = None
    index: int | None = None
    path: str | None = None
    evidence_file: str | None = None
    warnings: tuple[str, ...] = field(default=())
    note: bytes | None = None  # the signed checkpoint fetched (judged by audit.witness_check)

    def to_json(self) -> dict[str, object]:
        """The machine-readable form (``root`` in hex)."""
        return {
            "ok": self.ok, "origin": self.origin, "old_size": self.old_size,
            "size": self.size, "root": self.root.hex() if self.root is not None else None,
            "cosignatures": list(self.cosignatures), "code": self.code,
            "reason": self.reason, "index": self.index, "path": self.path,
            "evidence_file": self.evidence_file, "warnings": list(self.warnings),
        }


class _Failed(VerificationError):
    """A check failed with its location known."""

    def __init__(self, message: str, *, code: str, index: int | None = None,
                 evidence_file: str | None = None) -> None:
        super().__init__(message, code=code)
        self.index = index
        self.evidence_file = evidence_file


def evidence_file_name(origin: str, older_size: int, newer_size: int) -> str:
    """The evidence file name for a split view between two sizes of ``origin``."""
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", origin)[:120]
    return f"split-view-{safe}-{older_size}-{newer_size}.json"


def audit_log(client: LogClient, store: AuditStateStore, *,
              progress: Progress | None = None) -> AuditResult:
    """Verify the log's current checkpoint against the saved state; save it if it holds.

    Args:
        client: the reader of the log, with its key, witness keys and quorum.
        store: the auditor's state (read, and written only on success).
        progress: called during the rebuild (see :data:`Progress`).

    Returns:
        The result; ``ok`` is False when the log failed verification.

    Raises:
        ConfigError: ``audit_state_invalid``: the saved state is damaged.
        NotFound: the log has no checkpoint and was never verified.
        Unavailable: the log or the state store cannot be reached.
    """
    origin = client.verifier.name
    saved = _load(client, store)
    old_size = saved.size if saved is not None else None
    signed: SignedCheckpoint | None = None
    try:
        signed = _current(client, saved)
        if saved is not None:
            _check_against(client, store, saved, signed)
        client.open(signed.note)  # the witness quorum
        new_state = _rebuild(client, saved, signed, progress)
    except VerificationError as exc:
        index, path = _locate(exc)
        reason = str(exc)
        if path and reason.startswith(f"{path}: {path}"):
            reason = reason[len(path) + 2:]  # the client names the path twice
        cp = signed.checkpoint if signed is not None else None
        return AuditResult(
            False, origin, old_size, cp.size if cp else None, cp.root if cp else None,
            _cosigners(signed), exc.code, reason, index, path,
            getattr(exc, "evidence_file", None), note=signed.note if signed else None)
    if new_state is not saved:
        store.write(origin, encode_state(new_state))
    return AuditResult(True, origin, old_size, signed.checkpoint.size, signed.checkpoint.root,
                       _cosigners(signed), warnings=_warnings(client, signed), note=signed.note)


def _load(client: LogClient, store: AuditStateStore) -> AuditState | None:
    data = store.read(client.verifier.name)
    if data is None:
        return None
    try:
        return decode_state(data, client.verifier)
    except VerificationError as exc:
        raise ConfigError(str(exc), code=exc.code) from exc


def _current(client: LogClient, saved: AuditState | None) -> SignedCheckpoint:
    data = client.source.fetch(CHECKPOINT_PATH, client.limits.checkpoint)
    if data is None:
        if saved is None:
            raise NotFound("the log has no checkpoint", code="checkpoint_missing")
        raise _Failed(f"the log no longer publishes a checkpoint (verified size {saved.size})",
                      code="checkpoint_missing")
    try:
        return open_checkpoint(data, client.verifier, cosigners=client.cosigners,
                               max_size=client.limits.checkpoint)
    except VerificationError as exc:
        raise VerificationError(f"checkpoint: {exc}", code=exc.code) from None


def _check_against(client: LogClient, store: AuditStateStore, saved: AuditState,
                   signed: SignedCheckpoint) -> None:
    """Refuse rollbacks and split views relative to the saved checkpoint."""
    old, new = saved.signed.checkpoint, signed.checkpoint
    if new.size < old.size:
        raise _Failed(
            f"the log's checkpoint has size {new.size}, smaller than the size {old.size} "
            f"verified before: a rollback or a replayed older checkpoint (entries from index "
            f"{new.size} are missing)", code="checkpoint_rollback", index=new.size)
    if new.size == old.size:
        if new.root != old.root:
            evidence = _evidence(client, store, saved.signed, signed)
            raise _Failed(f"split view: the log signed two roots for size {new.size}",
                          code="split_view", evidence_file=evidence)
        return
    if old.size == 0:
        return  # every tree extends the empty tree
    proof = client.consistency_proof(old.size, new.size)
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except VerificationError as exc:
        try:
            prefix_root: bytes | None = client.root(old.size, new.size)
        except VerificationError:
            prefix_root = None
        evidence = _evidence(client, store, saved.signed, signed, prefix_root=prefix_root,
                             proof=proof)
        what = "split view" if evidence else "inconsistent log"
        raise _Failed(
            f"{what}: the checkpoint of size {new.size} is not consistent with the one of "
            f"size {old.size} verified before ({exc})", code="split_view" if evidence
            else "consistency_failed", index=old.size, evidence_file=evidence) from None


def _evidence(client: LogClient, store: AuditStateStore, older: SignedCheckpoint,
              newer: SignedCheckpoint, *, prefix_root: bytes | None = None,
              proof: Sequence[bytes] = ()) -> str | None:
    """Write the evidence file if the two checkpoints prove a split view by themselves."""
    try:
        data = build_evidence(older.note, newer.note, client.verifier,
                              older_size_root_in_newer=prefix_root, proof=proof)
    except VerificationError:
        return None  # the log's tiles are damaged, not a proof of two histories
    name = evidence_file_name(older.checkpoint.origin, older.checkpoint.size,
                              newer.checkpoint.size)
    return store.write_evidence(name, data)


def _rebuild(client: LogClient, saved: AuditState | None, signed: SignedCheckpoint,
             progress: Progress | None) -> AuditState:
    if saved is not None and saved.size == signed.checkpoint.size:
        return saved
    start = saved.size if saved is not None else 0
    total = signed.checkpoint.size

    def report(done: int) -> None:
        if progress is not None:
            progress(done - start, total - start)
    result = client.rebuild(signed, start=saved.frontier if saved is not None else None,
                            progress=report if progress is not None else None)
    return AuditState(signed, result.frontier)


def _cosigners(signed: SignedCheckpoint | None) -> tuple[str, ...]:
    return tuple(sorted({c.name for c in signed.cosignatures})) if signed is not None else ()


def _warnings(client: LogClient, signed: SignedCheckpoint) -> tuple[str, ...]:
    out = []
    if client.quorum == 0:
        out.append("no witness quorum required: split views are only caught against "
                   "this auditor's own history (development setting)")
    if not signed.cosignatures:
        out.append("the checkpoint carries no valid witness cosignature")
    witnesses = count_witnesses(((c.name, c.key_id) for c in client.cosigners), client.cosigners)
    if client.quorum > 0 and fork_colluders(client.quorum, witnesses) == 0:
        out.append(fork_caveat(client.quorum, witnesses) or "")
    return tuple(out)


_PATH = re.compile(r"tile/(?:entries|[0-9]+)/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[0-9]{1,3})?")
_COVERS = re.compile(r"covers index ([0-9]+)")
_IN_BUNDLE = re.compile(r"(?:inside|length of) entry ([0-9]+)")
_INDEXES = re.compile(r"indexes ([0-9]+)\.\.")


def _locate(exc: VerificationError) -> tuple[int | None, str | None]:
    """The entry index and tile path a failure names (for the report)."""
    message = str(exc)
    match = _PATH.search(message)
    path = match.group(0) if match else None
    if isinstance(exc, _Failed) and exc.index is not None:
        return exc.index, path
    for pattern in (_COVERS, _INDEXES):
        found = pattern.search(message)
        if found:
            return int(found.group(1)), path
    if path is None:
        return None, None
    try:
        ref = parse_path(path)
    except VerificationError:
        return None, path
    if ref.is_bundle:
        first = ref.index * TILE_WIDTH
        inside = _IN_BUNDLE.search(message)
        return first + (int(inside.group(1)) if inside else 0), path
    return (ref.index * TILE_WIDTH) << (TILE_HEIGHT * ref.level), path

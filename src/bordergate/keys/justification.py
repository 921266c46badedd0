"""Key access justifications: the logged decision a key service releases a data key for.

A jurisdiction's key service (``bordergate keys serve``, :mod:`bordergate.keys.service`)
holds the KEKs; a gateway that wants a subject's data key sends, with the
request, the log entry that records the decision it acts on and the log
operator's signed promise that the entry is in the log
(:mod:`bordergate.tlog.promise`).  :func:`check_justification` is the key
service's whole judgement of that pair: the data key is released only if

1. both are present (``key_justification_missing``);
2. the log holds the entry, shown either by the log operator's promise of
   inclusion, signed by the log's key and about exactly these entry bytes, or
   by an inclusion proof of these bytes in a checkpoint the key service
   trusts: signed by the log's key and cosigned by at least the configured
   quorum of the log's witnesses (:class:`CheckpointProof`,
   :class:`TrustedCheckpoints`) (``key_justification_unproven``: no valid
   promise or proof, so nothing shows the log holds the entry;
   ``key_justification_unwitnessed``: the checkpoint lacks the witness quorum,
   or the key service trusts no witness);
3. the entry is a well-formed entry (``key_justification_malformed``) of the
   type the operation needs (``key_justification_wrong_operation``): a
   ``read`` needs an ``access`` entry, a ``write`` a ``write`` entry;
4. its subject is the subject whose key is asked for: the key service
   recomputes the pseudonym from the subject id it is given, under the log's
   pseudonym secret (``key_justification_subject_mismatch``);
5. it records an allowed decision: ``allow`` (or, for a read, ``partial``:
   some fields were allowed) (``key_justification_denied``);
6. it released (a read's ``released``) or wrote (a write's ``fields``) at
   least one sealed field of its collection, when the service is given the
   schema's sealed fields (``key_justification_no_sealed_field``): an entry
   that allowed only ``public`` fields justifies no key;
7. it is fresh: the entry's time (and a promise's time) are within
   ``window`` seconds of ``now`` (``key_justification_stale``), so a gateway
   that stops logging can decrypt for at most that window (plus the data-key
   cache lifetime).

A promise lets a read proceed before the next checkpoint; the auditor later
checks the log kept it (``key_promise_broken``, critical).  A witnessed
checkpoint needs no such later check: the witnesses have already seen the
tree that holds the entry, so a proof in one is the stronger evidence (and the
slower: the entry must wait for a cosigned checkpoint).

Erasures need no data key (the store destroys the wrapped key); an export's
bulk release is judged by :mod:`bordergate.keys.bulk`, which reuses the proof
checks here.

This module is pure: bytes and the time in, a verdict out.  It never sees key
material.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bordergate.entries import Entry, parse_entry
from bordergate.errors import PolicyDenied, VerificationError
from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.cosignature import CosignatureVerifier, count_witnesses
from bordergate.tlog.note import Verifier
from bordergate.tlog.promise import open_promise

__all__ = ["OPERATION_ENTRY_TYPES", "REFUSAL_CODES", "CheckpointProof", "JustificationRefused",
           "JustifiedAccess", "TrustedCheckpoints", "check_justification", "proven_entry"]

#: The entry type that justifies each key operation.
OPERATION_ENTRY_TYPES = MappingProxyType({"read": "access", "write": "write"})
#: The outcomes that justify each key operation.
_ALLOWED = MappingProxyType({"read": frozenset({"allow", "partial"}),
                             "write": frozenset({"allow"})})

#: Every refusal code of :func:`check_justification`.
REFUSAL_CODES = ("key_justification_missing", "key_justification_unproven",
                 "key_justification_unwitnessed",
                 "key_justification_malformed", "key_justification_wrong_operation",
                 "key_justification_subject_mismatch", "key_justification_denied",
                 "key_justification_no_sealed_field", "key_justification_stale")


class JustificationRefused(PolicyDenied):
    """The request's justification does not allow releasing the data key (403)."""


@dataclass(frozen=True)
class JustifiedAccess:
    """A checked justification: what the key service logs in its ``key-access`` entry."""

    operation: str
    subject: str  # the subject's pseudonym
    index: int  # of the justifying entry in the log
    leaf_hash: bytes  # of the justifying entry, promised or proven
    evidence: str  # "promise" or "checkpoint"


@dataclass(frozen=True)
class CheckpointProof:
    """An entry's inclusion proof (RFC 6962 audit path) in a signed checkpoint."""

    checkpoint: bytes  # the signed checkpoint note, with its witness cosignatures
    index: int
    path: tuple[bytes, ...]


@dataclass(frozen=True)
class TrustedCheckpoints:
    """The witnesses whose cosignatures make a checkpoint trusted, and how many."""

    cosigners: tuple[CosignatureVerifier, ...]
    quorum: int


def check_justification(*, operation: str, subject_pseudonym: str, entry: bytes | None,
                        promise: bytes | None, verifier: Verifier, now: float,
                        window: float,
                        sealed: Mapping[str, frozenset[str]] | None = None,
                        proof: CheckpointProof | None = None,
                        trusted: TrustedCheckpoints | None = None) -> JustifiedAccess:
    """Judge one request's justification (see the module docstring for the rules).

    Args:
        operation: ``read`` or ``write``.
        subject_pseudonym: the pseudonym of the subject whose key is asked for,
            computed by the key service from the subject id.
        entry: the entry's bytes exactly as the log holds them.
        promise: the log operator's signed promise of inclusion of ``entry``
            (or None with ``proof``).
        verifier: the log's verifier key (the promise's and checkpoint's signer).
        now: the key service's clock (seconds since the epoch).
        window: how old (or how far ahead) the entry and promise may be, seconds.
        sealed: the sealed (protected and restricted) field names of each
            collection; None skips rule 6.
        proof: instead of a promise, an inclusion proof in a checkpoint.
        trusted: the witnesses and quorum a proof's checkpoint needs (None: the
            key service trusts no checkpoint, and refuses every proof).

    Raises:
        JustificationRefused: with one of :data:`REFUSAL_CODES`.
        ValueError: an unknown operation (programmer misuse: the service checks it).
    """
    expected = OPERATION_ENTRY_TYPES.get(operation)
    if expected is None:
        raise ValueError(f"unknown key operation {operation!r}")
    index, leaf, promised_at, parsed = logged_entry(
        entry, promise, proof, verifier, trusted, expected=expected,
        needs=f"a {operation} needs an {expected!r} entry",
        missing="a data key is released only against a logged decision: send its entry and "
                "the log's promise of inclusion (or its inclusion proof in a witnessed "
                "checkpoint)")
    if parsed.body.get("subject") != subject_pseudonym:
        raise JustificationRefused("the justifying entry is about another subject",
                                   code="key_justification_subject_mismatch")
    if parsed.body.get("outcome") not in _ALLOWED[operation]:
        raise JustificationRefused("the justifying entry records a denied decision",
                                   code="key_justification_denied")
    if sealed is not None:
        named = parsed.body.get("released" if operation == "read" else "fields")
        fields = set(named) if isinstance(named, list) else set()
        if not fields & sealed.get(str(parsed.body.get("collection")), frozenset()):
            raise JustificationRefused("the justifying entry released no sealed field",
                                       code="key_justification_no_sealed_field")
    if abs(now - parsed.time) > window or \
            (promised_at is not None and abs(now - promised_at) > window):
        raise JustificationRefused(f"the justifying entry is older than {window:g} s",
                                   code="key_justification_stale")
    return JustifiedAccess(operation, subject_pseudonym, index, leaf,
                           "promise" if promised_at is not None else "checkpoint")


def logged_entry(entry: bytes | None, promise: bytes | None, proof: CheckpointProof | None,
                 verifier: Verifier, trusted: TrustedCheckpoints | None, *, expected: str,
                 needs: str, missing: str) -> tuple[int, bytes, float | None, Entry]:
    """What every justification starts with: the entry is sent with its promise or
    proof (else ``missing``), is proven in the log (:func:`proven_entry`), parses, and
    is of type ``expected`` (else ``needs`` + ", not a ... entry").  Returns its index,
    leaf hash, promise time (None for a proof) and the parsed entry.

    Raises:
        JustificationRefused: ``key_justification_missing``, ``_unproven``,
            ``_unwitnessed``, ``_malformed`` or ``_wrong_operation``.
    """
    if not entry or (not promise and proof is None):
        raise JustificationRefused(missing, code="key_justification_missing")
    index, leaf, promised_at = proven_entry(entry, promise, proof, verifier, trusted)
    try:
        parsed = parse_entry(entry)
    except VerificationError:
        raise JustificationRefused("the justifying entry is not a well-formed entry",
                                   code="key_justification_malformed") from None
    if parsed.type != expected:
        raise JustificationRefused(f"{needs}, not a {parsed.type!r} entry",
                                   code="key_justification_wrong_operation")
    return index, leaf, promised_at, parsed


def proven_entry(entry: bytes, promise: bytes | None, proof: CheckpointProof | None,
                 verifier: Verifier, trusted: TrustedCheckpoints | None
                 ) -> tuple[int, bytes, float | None]:
    """The entry's index and leaf hash, and the promise's time (None for a proof),
    from the log operator's ``promise`` if given, else from ``proof`` (rule 2).

    Raises:
        JustificationRefused: ``key_justification_unproven`` or
            ``key_justification_unwitnessed``.
    """
    if promise:
        return _promised(entry, promise, verifier)
    assert proof is not None
    return (*_proven_in_checkpoint(entry, proof, verifier, trusted), None)


def _promised(entry: bytes, promise: bytes, verifier: Verifier) -> tuple[int, bytes, float]:
    """The entry's index, leaf hash and promise time, from the log operator's promise.

    Raises:
        JustificationRefused: ``key_justification_unproven``.
    """
    try:
        promised = open_promise(promise, verifier)
    except VerificationError as exc:
        raise JustificationRefused(f"the promise of inclusion does not verify ({exc.code})",
                                   code="key_justification_unproven") from None
    if not promised.covers(entry):
        raise JustificationRefused("the promise of inclusion is about another entry",
                                   code="key_justification_unproven")
    return promised.index, promised.leaf_hash, promised.time_ms / 1000


def _proven_in_checkpoint(entry: bytes, proof: CheckpointProof, verifier: Verifier,
                          trusted: TrustedCheckpoints | None) -> tuple[int, bytes]:
    """The entry's index and leaf hash, proven in a checkpoint signed by the log's
    key and cosigned by ``trusted.quorum`` distinct trusted witnesses.

    Raises:
        JustificationRefused: ``key_justification_unwitnessed`` (no quorum, or none
            trusted) or ``key_justification_unproven`` (bad checkpoint or proof).
    """
    if trusted is None or trusted.quorum < 1:
        raise JustificationRefused("this key service trusts no witness: only promises of "
                                   "inclusion are accepted",
                                   code="key_justification_unwitnessed")
    try:
        signed = open_checkpoint(proof.checkpoint, verifier, cosigners=trusted.cosigners)
    except VerificationError as exc:
        raise JustificationRefused(f"the checkpoint does not verify ({exc.code})",
                                   code="key_justification_unproven") from None
    # witnesses, not keys: one witness under two keys or two names counts once
    witnesses = count_witnesses(((c.name, c.key_id) for c in signed.cosignatures),
                                trusted.cosigners)
    if witnesses < trusted.quorum:
        raise JustificationRefused(f"the checkpoint is cosigned by {witnesses} of the "
                                   f"{trusted.quorum} trusted witnesses required",
                                   code="key_justification_unwitnessed")
    leaf = merkle.leaf_hash(entry)
    try:
        merkle.verify_inclusion(leaf, proof.index, signed.checkpoint.size, proof.path,
                                signed.checkpoint.root)
    except VerificationError as exc:
        raise JustificationRefused(f"the inclusion proof does not verify ({exc.code})",
                                   code="key_justification_unproven") from None
    return proof.index, leaf


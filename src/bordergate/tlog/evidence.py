"""Evidence of a split view: two signed checkpoints of one log that cannot both be true.

A log that signs two inconsistent checkpoints has shown different histories to
different parties (promise 5: a split view is detected).  Anyone holding the
log's verifier key can check this file offline; it needs nothing else.

The rule (what makes the file self-evident):

* **Same size, different roots.**  Both checkpoints are signed by the log key,
  have the same size and different root hashes.  Nothing more is needed.
* **Different sizes** ``m < n``.  A failed proof proves nothing (anyone can send
  a wrong proof), so the file must carry positive proof instead: a root ``X``
  and an RFC 9162 consistency proof from ``(m, X)`` to the newer checkpoint
  ``(n, root_n)`` that verifies, with ``X`` different from the older
  checkpoint's root.  That proof shows the newer tree's first ``m`` leaves hash
  to ``X``; a second valid proof from ``(m, root_m)`` would need a SHA-256
  collision, so the two checkpoints are inconsistent.  Whoever holds the newer
  tree (an auditor with its tiles) can always build ``X`` and the proof; a
  witness can when the log's own proof folds to the newer root but another
  older root (see :func:`prefix_root_from_proof`).

The file is JSON: ``{"type", "origin", "vkey", "checkpoints": [older, newer],
"older_size_root_in_newer", "proof"}`` with the notes verbatim and hashes in
base64; the last two keys are present only for different sizes.

Pure: bytes in, values out; this module never reads or writes files.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.merkle import HASH_SIZE, consistency_roots, verify_consistency
from bordergate.tlog.note import Ed25519Verifier, Verifier, decode_base64

__all__ = [
    "EVIDENCE_TYPE",
    "MAX_EVIDENCE_SIZE",
    "SplitView",
    "build_evidence",
    "prefix_root_from_proof",
    "verify_evidence",
]

EVIDENCE_TYPE = "bordergate/split-view-evidence/v1"
MAX_EVIDENCE_SIZE = 1 << 20
_CODE = "malformed_evidence"


@dataclass(frozen=True)
class SplitView:
    """Two verified checkpoints of one log that cannot both be true."""

    origin: str
    older: SignedCheckpoint
    newer: SignedCheckpoint
    older_size_root_in_newer: bytes | None = None
    proof: tuple[bytes, ...] = ()

    def describe(self) -> str:
        """One sentence saying what the log did."""
        a, b = self.older.checkpoint, self.newer.checkpoint
        if a.size == b.size:
            return (
                f"log {self.origin} signed two different roots for size {a.size}: "
                f"{a.root.hex()} and {b.root.hex()}"
            )
        x = (self.older_size_root_in_newer or b"").hex()
        return (
            f"log {self.origin} signed size {a.size} with root {a.root.hex()}, "
            f"but its checkpoint of size {b.size} contains a tree of size {a.size} "
            f"with root {x}"
        )


def _check_split_view(
    first: SignedCheckpoint,
    second: SignedCheckpoint,
    older_root_in_newer: bytes | None,
    proof: Sequence[bytes],
) -> SplitView:
    older, newer = sorted((first, second), key=lambda s: s.checkpoint.size)
    a, b = older.checkpoint, newer.checkpoint
    origin = a.origin
    if a.size == b.size:
        if a.root == b.root:
            raise VerificationError(
                "the two checkpoints agree (same size and root)", code="not_evidence"
            )
        return SplitView(origin, older, newer)
    if a.size == 0:
        raise VerificationError(
            "every tree extends the empty tree; no evidence from size 0", code="not_evidence"
        )
    if older_root_in_newer is None or len(older_root_in_newer) != HASH_SIZE:
        raise VerificationError(
            "different sizes need the older size's root in the newer tree", code="not_evidence"
        )
    if older_root_in_newer == a.root:
        raise VerificationError(
            "the newer tree agrees with the older checkpoint", code="not_evidence"
        )
    try:
        verify_consistency(a.size, b.size, older_root_in_newer, b.root, proof)
    except VerificationError as exc:
        raise VerificationError(
            f"the proof does not tie root {older_root_in_newer.hex()} at size {a.size} "
            f"to the checkpoint of size {b.size}: {exc}",
            code="not_evidence",
        ) from exc
    return SplitView(origin, older, newer, older_root_in_newer, tuple(proof))


def build_evidence(
    note_a: bytes,
    note_b: bytes,
    verifier: Verifier,
    *,
    older_size_root_in_newer: bytes | None = None,
    proof: Sequence[bytes] = (),
) -> bytes:
    """Check that two signed checkpoints are a split view and write the evidence file.

    Args:
        note_a: one signed checkpoint note (either order).
        note_b: the other signed checkpoint note.
        verifier: the log's key; both notes must carry its valid signature.
        older_size_root_in_newer: for different sizes, the root of the newer
            tree at the older size.
        proof: for different sizes, a consistency proof from
            ``(older size, older_size_root_in_newer)`` to the newer checkpoint.

    Returns:
        The evidence file bytes (JSON, UTF-8).

    Raises:
        VerificationError: a note does not verify (``invalid_signature`` ...), or
            the two are not a split view by the rule above (``not_evidence``).
    """
    first = open_checkpoint(note_a, verifier)
    second = open_checkpoint(note_b, verifier)
    view = _check_split_view(first, second, older_size_root_in_newer, proof)
    doc: dict[str, object] = {
        "type": EVIDENCE_TYPE,
        "origin": view.origin,
        "vkey": verifier.key_string,
        "checkpoints": [view.older.note.decode("utf-8"), view.newer.note.decode("utf-8")],
    }
    if view.older_size_root_in_newer is not None:
        doc["older_size_root_in_newer"] = base64.b64encode(view.older_size_root_in_newer).decode()
        doc["proof"] = [base64.b64encode(h).decode() for h in view.proof]
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _field(doc: dict[str, object], key: str, kind: type) -> object:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise VerificationError(f"evidence field {key!r} is missing or wrong", code=_CODE)
    return value


def verify_evidence(data: bytes) -> SplitView:
    """Re-check an evidence file offline.

    Args:
        data: the evidence file (untrusted).

    Returns:
        The split view it proves; :meth:`SplitView.describe` says what happened.

    Raises:
        VerificationError: ``malformed_evidence`` for a bad file, the note and
            checkpoint codes if a checkpoint does not verify under the key in
            the file, ``not_evidence`` if the checkpoints are not inconsistent.
    """
    if len(data) > MAX_EVIDENCE_SIZE:
        raise VerificationError("evidence file is too large", code=_CODE)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError("evidence file is not UTF-8 JSON", code=_CODE) from exc
    if not isinstance(doc, dict) or doc.get("type") != EVIDENCE_TYPE:
        raise VerificationError(f"evidence file type must be {EVIDENCE_TYPE}", code=_CODE)
    vkey = str(_field(doc, "vkey", str))
    notes = _field(doc, "checkpoints", list)
    assert isinstance(notes, list)
    if len(notes) != 2 or not all(isinstance(n, str) for n in notes):
        raise VerificationError("evidence needs exactly two checkpoint notes", code=_CODE)
    verifier = Ed25519Verifier.from_key_string(vkey)
    if _field(doc, "origin", str) != verifier.name:
        raise VerificationError("evidence origin is not the key's name", code=_CODE)
    first = open_checkpoint(notes[0].encode("utf-8"), verifier)
    second = open_checkpoint(notes[1].encode("utf-8"), verifier)
    root: bytes | None = None
    proof: list[bytes] = []
    if "older_size_root_in_newer" in doc:
        root_text = str(_field(doc, "older_size_root_in_newer", str))
        root = decode_base64(root_text, code=_CODE, what="older_size_root_in_newer")
        proof_items = _field(doc, "proof", list)
        assert isinstance(proof_items, list)
        if len(proof_items) > 64 or not all(isinstance(p, str) for p in proof_items):
            raise VerificationError("evidence proof must be at most 64 strings", code=_CODE)
        proof = [decode_base64(p, code=_CODE, what="proof hash") for p in proof_items]
    return _check_split_view(first, second, root, proof)


def prefix_root_from_proof(
    old_size: int, new_size: int, new_root: bytes, proof: Sequence[bytes]
) -> bytes | None:
    """The root at ``old_size`` that a consistency proof implies, if it reaches ``new_root``.

    For an ``old_size`` that is not a power of two, an RFC 9162 consistency
    proof carries every hash needed to compute both roots, so the root of the
    newer tree at ``old_size`` can be read from it.  (For a power of two the
    proof omits that root, so nothing can be read.)

    Returns:
        The implied older root, or ``None`` if the sizes make that impossible or
        the proof does not lead to ``new_root``.
    """
    if not 0 < old_size < new_size or old_size & (old_size - 1) == 0:
        return None
    if not proof or any(len(h) != HASH_SIZE for h in proof):
        return None
    try:
        old_root, root = consistency_roots(list(proof), old_size, new_size)
    except VerificationError:
        return None
    return old_root if root == new_root else None

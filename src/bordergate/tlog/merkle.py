"""RFC 9162 section 2 Merkle tree hashing, roots and proofs (pure).

Leaves hash as SHA-256(0x00 || entry), interior nodes as
SHA-256(0x01 || left || right).  Proof *generation* takes a ``NodeReader``,
a function returning the hash of the perfect subtree at ``(level, index)``
(covering leaves ``[index * 2**level, (index + 1) * 2**level)``), so the same
code builds proofs from memory or from tiles.  Proof *verification* takes
only values and raises :class:`~bordergate.errors.VerificationError`.

This module must never do I/O, read a clock, or accept a proof it has not
fully checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from bordergate.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeReader",
    "consistency_proof",
    "consistency_roots",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "range_hash",
    "root_from_leaf_hashes",
    "root_from_subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

NodeReader = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of the perfect subtree of 2**level leaves."""


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return MTH of the leaves whose hashes are given (EMPTY_ROOT for none).

    Pairs neighbours level by level and promotes a lone right node unchanged,
    which builds exactly the left-balanced tree of RFC 9162.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha = _sha256
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        it = iter(level)
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        if odd is not None:
            level.append(odd)
    return level[0]


def perfect_subtrees(begin: int, end: int) -> list[tuple[int, int]]:
    """Split leaves ``[begin, end)`` into maximal aligned perfect subtrees.

    Returns ``(level, index)`` pairs from left to right.  When ``begin`` is
    aligned to a power of two at least ``end - begin`` (as in every range an
    RFC 9162 proof needs), folding their hashes right to left gives the range's
    MTH.
    """
    if not 0 <= begin <= end:
        raise ValueError(f"bad range [{begin}, {end})")
    out: list[tuple[int, int]] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length() - 1
        while (1 << level) > end - begin:
            level -= 1
        out.append((level, begin >> level))
        begin += 1 << level
    return out


def root_from_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree hashes (left to right, decreasing size) into one root."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(b"\x01" + h + acc).digest()
    return acc


def range_hash(begin: int, end: int, node: NodeReader) -> bytes:
    """Return MTH of leaves ``[begin, end)`` from perfect-subtree hashes."""
    return root_from_subtrees([node(level, index) for level, index in perfect_subtrees(begin, end)])


def _split(size: int) -> int:
    """Largest power of two strictly less than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_proof(index: int, size: int, node: NodeReader,
                    edge: Callable[[int, int], bytes] | None = None) -> list[bytes]:
    """Return the RFC 9162 PATH(index, D[size]) audit path, deepest hash first.

    Below level ``inner`` (the highest bit where ``index`` and ``size - 1``
    differ) the path holds the siblings on the way up, of which only the
    right-edge one may be an incomplete subtree (hashed by ``edge(begin, size)``,
    default :func:`range_hash`, which a caller may memoise); above it, the left
    siblings wherever ``index`` has a one bit.

    Raises:
        ValueError: ``index`` is not below ``size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} outside tree of size {size}")
    inner = (index ^ (size - 1)).bit_length()
    path: list[bytes] = []
    for level in range(inner):
        sibling = (index >> level) ^ 1
        begin = sibling << level
        if begin + (1 << level) <= size:
            path.append(node(level, sibling))
        elif edge is not None:
            path.append(edge(begin, size))
        else:
            path.append(range_hash(begin, size, node))
    rest, level = index >> inner, inner
    while rest:
        if rest & 1:
            path.append(node(level, rest ^ 1))
        rest >>= 1
        level += 1
    return path


def consistency_proof(old_size: int, new_size: int, node: NodeReader) -> list[bytes]:
    """Return the RFC 9162 PROOF(old_size, D[new_size]), deepest hash first.

    Raises:
        ValueError: not ``0 < old_size <= new_size``.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    proof: list[bytes] = []
    lo, hi, complete = 0, new_size, True
    while old_size != hi:
        k = _split(hi - lo)
        if old_size <= lo + k:
            proof.append(range_hash(lo + k, hi, node))
            hi = lo + k
        else:
            proof.append(range_hash(lo, lo + k, node))
            lo += k
            complete = False
    if not complete:
        proof.append(range_hash(lo, hi, node))
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is not a {HASH_SIZE}-byte hash", code="malformed_proof")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree ``(size, root)``.

    Raises:
        VerificationError: the proof is malformed or does not lead to ``root``.
    """
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    if not 0 <= index < size:
        raise VerificationError(
            f"index {index} is outside the tree of size {size}", code="inclusion_failed"
        )
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is too long", code="inclusion_failed")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short", code="inclusion_failed")
    if r != root:
        raise VerificationError(
            f"inclusion proof for index {index} does not lead to the root of size {size}",
            code="inclusion_failed",
        )


def consistency_roots(path: list[bytes], old_size: int, new_size: int) -> tuple[bytes, bytes]:
    """The (old root, new root) a consistency proof implies (RFC 9162 2.1.4.2 4-6).

    ``path`` starts with the old root itself when ``old_size`` is a power of
    two (the RFC's step 2). Evidence of a split view uses the implied old root.

    Raises:
        VerificationError: the proof has the wrong length for the sizes.
    """
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long", code="consistency_failed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short", code="consistency_failed")
    return fr, sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    A proof from size 0 is refused here (any tree extends the empty one; a
    caller that accepts ``old 0``, as a witness does, handles that itself).

    Raises:
        VerificationError: the proof is malformed or the trees are inconsistent.
    """
    if old_size < 1 or new_size < old_size:
        raise VerificationError(
            f"no consistency proof exists from size {old_size} to {new_size}",
            code="consistency_failed",
        )
    if old_size == new_size:
        if proof:
            raise VerificationError("proof between equal sizes must be empty",
                                    code="consistency_failed")
        if old_root != new_root:
            raise VerificationError(f"two different roots for size {old_size}",
                                    code="consistency_failed")
        return
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    if not proof:
        raise VerificationError("empty consistency proof", code="consistency_failed")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    fr, sr = consistency_roots(path, old_size, new_size)
    if fr != old_root:
        raise VerificationError(f"consistency proof does not reproduce the root of size {old_size}",
                                code="consistency_failed")
    if sr != new_root:
        raise VerificationError(f"consistency proof does not reproduce the root of size {new_size}",
                                code="consistency_failed")

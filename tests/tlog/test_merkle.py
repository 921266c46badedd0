"""RFC 9162 hashing and proofs against published vectors and properties.

Promise 5 (append-only and witnessed) rests on these: a proof that verifies
must mean what RFC 9162 says, and a bad one must fail.
Vectors: tests/vectors/rfc9162-merkle (transparency-dev/merkle testdata, see
tests/vectors/README.md for the source and licence).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.tlog import merkle

VECTORS = Path(__file__).parent.parent / "vectors" / "rfc9162-merkle"
LEAVES = [bytes.fromhex(h) for h in
          ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
           "606162636465666768696a6b6c6d6e6f"]]
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


def _cases(kind: str) -> list[tuple[str, dict[str, object]]]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors found"
    return [(str(f.relative_to(VECTORS / kind)), json.loads(f.read_text())) for f in files]


def _ids(v: object) -> str:
    return v if isinstance(v, str) else ""


def _b64(v: object) -> bytes:
    return base64.b64decode(v) if v else b""


@pytest.mark.parametrize(("name", "case"), _cases("inclusion"), ids=_ids)
def test_inclusion_vectors(name: str, case: dict[str, object]) -> None:
    """Promise 5: inclusion proofs verify exactly when the RFC 9162 vectors say."""
    proof = [_b64(p) for p in (case["proof"] or [])]  # type: ignore[union-attr]
    args = (_b64(case["leafHash"]), int(case["leafIdx"]), int(case["treeSize"]),  # type: ignore[call-overload]
            proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize(("name", "case"), _cases("consistency"), ids=_ids)
def test_consistency_vectors(name: str, case: dict[str, object]) -> None:
    """Promise 5: consistency proofs verify exactly when the RFC 9162 vectors say."""
    proof = [_b64(p) for p in (case["proof"] or [])]  # type: ignore[union-attr]
    args = (int(case["size1"]), int(case["size2"]),  # type: ignore[call-overload]
            _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_root_of_the_eight_published_leaves() -> None:
    """Promise 5: the tree root matches the published 8-leaf root."""
    assert merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in LEAVES]) == ROOT8
    assert merkle.root_from_leaf_hashes([]) == hashlib.sha256(b"").digest()


def _reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH, written recursively exactly as the RFC states it."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    left, right = _reference_mth(leaves[:k]), _reference_mth(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def _memory_reader(leaf_hashes: list[bytes]) -> merkle.NodeReader:
    def node(level: int, index: int) -> bytes:
        lo = index << level
        hi = lo + (1 << level)
        assert hi <= len(leaf_hashes), "reader asked for a subtree beyond the tree"
        return merkle.root_from_leaf_hashes(leaf_hashes[lo:hi])
    return node


@given(st.lists(st.binary(max_size=8), max_size=70))
@settings(max_examples=150)
def test_root_matches_rfc_definition(leaves: list[bytes]) -> None:
    """Promise 5: the fast root equals the RFC's recursive MTH for any size."""
    hashes = [merkle.leaf_hash(x) for x in leaves]
    assert merkle.root_from_leaf_hashes(hashes) == _reference_mth(leaves)


@given(st.integers(min_value=1, max_value=300), st.data())
@settings(max_examples=150)
def test_every_leaf_has_a_verifying_inclusion_proof(size: int, data: st.DataObject) -> None:
    """Promise 5: every leaf of every tree has an inclusion proof that verifies,
    and the proof fails for any other index or root."""
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = merkle.root_from_leaf_hashes(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = merkle.inclusion_proof(index, size, _memory_reader(hashes))
    merkle.verify_inclusion(hashes[index], index, size, proof, root)
    if size > 1:
        other = (index + 1) % size
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(hashes[index], other, size, proof, root)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(hashes[index], index, size, proof, bytes(32))


@given(st.integers(min_value=1, max_value=300), st.data())
@settings(max_examples=150)
def test_any_two_sizes_have_a_verifying_consistency_proof(size: int, data: st.DataObject) -> None:
    """Promise 5: any two tree sizes have a consistency proof that verifies,
    and a proof against a forked history fails."""
    old = data.draw(st.integers(min_value=1, max_value=size))
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    old_root = merkle.root_from_leaf_hashes(hashes[:old])
    new_root = merkle.root_from_leaf_hashes(hashes)
    proof = merkle.consistency_proof(old, size, _memory_reader(hashes))
    merkle.verify_consistency(old, size, old_root, new_root, proof)
    forked = list(hashes)
    forked[old - 1] = merkle.leaf_hash(b"forked")
    forked_root = merkle.root_from_leaf_hashes(forked[:old])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(old, size, forked_root, new_root, proof)


def test_proofs_refuse_garbage_hashes() -> None:
    """Bad input: a proof with a hash of the wrong length is a VerificationError."""
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(bytes(32), 0, 2, [b"short"], bytes(32))
    with pytest.raises(VerificationError):
        merkle.verify_consistency(1, 2, bytes(32), bytes(32), [b"x" * 33])


def test_perfect_subtrees_cover_the_range() -> None:
    """Behaviour: a range splits into aligned perfect subtrees that tile it exactly."""
    for begin in range(0, 40):
        for end in range(begin, 80):
            covered = []
            for level, index in merkle.perfect_subtrees(begin, end):
                lo = index << level
                covered.extend(range(lo, lo + (1 << level)))
            assert covered == list(range(begin, end))


def _rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]), written recursively as the RFC states it."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_rfc_path(m, leaves[:k]), _reference_mth(leaves[k:])]
    return [*_rfc_path(m - k, leaves[k:]), _reference_mth(leaves[:k])]


@given(st.integers(min_value=1, max_value=200), st.data())
@settings(max_examples=150)
def test_inclusion_path_equals_rfc_definition(size: int, data: st.DataObject) -> None:
    """Promise 5: the fast audit path is exactly the RFC's recursive PATH."""
    leaves = [i.to_bytes(2, "big") for i in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    hashes = [merkle.leaf_hash(x) for x in leaves]
    assert merkle.inclusion_proof(index, size, _memory_reader(hashes)) == _rfc_path(index, leaves)

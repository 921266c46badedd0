"""C2SP tlog-tiles paths, codecs and the growing edge.

Promise 5: the published tiles must be exactly what C2SP tlog-tiles says, so
that anyone's verifier can rebuild the tree from them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.errors import VerificationError
from bordergate.tlog import merkle, tiles
from bordergate.tlog.tiles import TileFrontier, TileRef
from tests.independent import c2sp


@pytest.mark.parametrize(("index", "path"), [
    (0, "000"), (7, "007"), (256, "256"), (1000, "x001/000"), (1234067, "x001/x234/067"),
])
def test_index_path_matches_spec_examples(index: int, path: str) -> None:
    """Promise 5: tile indexes are encoded as in the C2SP tlog-tiles examples."""
    assert tiles.index_path(index) == path


@pytest.mark.parametrize(("ref", "path"), [
    (TileRef(0, 1234067), "tile/0/x001/x234/067"),
    (TileRef(1, 0, 7), "tile/1/000.p/7"),
    (TileRef(-1, 5), "tile/entries/005"),
    (TileRef(-1, 1000, 255), "tile/entries/x001/000.p/255"),
])
def test_paths_round_trip(ref: TileRef, path: str) -> None:
    """Promise 5: tile and bundle paths format and parse back exactly."""
    assert ref.path == path
    assert tiles.parse_path(path) == ref


@pytest.mark.parametrize("bad", [
    "tile/0/1", "tile/0/0001", "tile/0/x000/001", "tile/0/001.p/0", "tile/0/001.p/256",
    "tile/0/001.p/007", "tile/64/000", "tile/entries/../checkpoint", "tile/0/001/", "checkpoint",
    "tile/0/x01/000", "tile//000", "tile/00/000",
])
def test_malformed_paths_are_refused(bad: str) -> None:
    """Bad input: a malformed tile path is a VerificationError (no traversal)."""
    with pytest.raises(VerificationError):
        tiles.parse_path(bad)


def test_bundle_codec_and_malformed_bundles() -> None:
    """Promise 5: entry bundles are uint16-length-prefixed; damage is detected."""
    entries = [b"", b"a", b"x" * 300, b"y" * tiles.ENTRY_MAX]
    data = tiles.join_bundle(entries)
    assert data == (b"\x00\x00" + b"\x00\x01a" + b"\x01\x2c" + b"x" * 300
                    + b"\xff\xff" + b"y" * tiles.ENTRY_MAX)
    assert data == c2sp.encode_bundle(entries)
    assert tiles.decode_bundle(data, 4) == entries
    for bad, width in [(data[:-1], 4), (data + b"\x00", 4), (data, 3), (data[:1], 1)]:
        with pytest.raises(VerificationError):
            tiles.decode_bundle(bad, width)


def test_tile_codec_refuses_wrong_length() -> None:
    """Bad input: a truncated tile is a VerificationError naming the length."""
    with pytest.raises(VerificationError, match="expected 64"):
        tiles.decode_tile(b"\x00" * 63, 2)


def _reference_tiles(entries: list[bytes]) -> dict[str, bytes]:
    """Every tile of a tree, computed straight from the C2SP definition."""
    out: dict[str, bytes] = {}
    size = len(entries)
    hashes = [merkle.leaf_hash(e) for e in entries]
    for start in range(0, size, 256):
        chunk = entries[start:start + 256]
        out[TileRef(-1, start // 256, len(chunk)).path] = c2sp.encode_bundle(chunk)
    level = 0
    while hashes:
        for start in range(0, len(hashes), 256):
            chunk = hashes[start:start + 256]
            out[TileRef(level, start // 256, len(chunk)).path] = b"".join(chunk)
        hashes = [merkle.root_from_leaf_hashes(hashes[i:i + 256])
                  for i in range(0, len(hashes) - 255, 256)]
        level += 1
    return out


def _grow(frontier: TileFrontier, entries: list[bytes], store: dict[str, bytes]) -> None:
    for ref, data in frontier.append(entries, [merkle.leaf_hash(e) for e in entries]):
        store[ref.path] = data
    for ref, data in frontier.partials():
        store[ref.path] = data


@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=6))
@settings(max_examples=40, deadline=None)
def test_frontier_writes_exactly_the_spec_tiles(batches: list[int]) -> None:
    """Promise 5: whatever the batch sizes, the edge emits the spec's tiles and root,
    and can be restored from its own partial tiles."""
    frontier = TileFrontier()
    store: dict[str, bytes] = {}
    entries: list[bytes] = []
    for n in batches:
        batch = [len(entries).to_bytes(4, "big") * (i % 3) for i in range(n)]
        entries.extend(batch)
        _grow(frontier, batch, store)
        expected = merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries])
        assert frontier.root() == expected
        restored = TileFrontier.restore(frontier.size, lambda ref: store[ref.path])
        assert [x for x in restored.levels if x] == [x for x in frontier.levels if x]
        assert restored.bundle == frontier.bundle
        assert restored.root() == frontier.root()
    reference = _reference_tiles(entries)
    # every tile of the final tree is present and exact
    for path, data in reference.items():
        assert store[path] == data, path


@given(st.integers(min_value=1, max_value=70000), st.data())
@settings(max_examples=25, deadline=None)
def test_proofs_from_tiles_verify(size: int, data: st.DataObject) -> None:
    """Promise 5: inclusion and consistency proofs built from tiles alone verify."""
    entries = [i.to_bytes(3, "big") for i in range(size)]
    store = _reference_tiles(entries)
    cache: dict[TileRef, tiles.TileHashes] = {}

    def tile(ref: TileRef) -> tiles.TileHashes:
        if ref not in cache:
            cache[ref] = tiles.TileHashes(tiles.decode_tile(store[ref.path], ref.width))
        return cache[ref]

    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries])
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = merkle.inclusion_proof(index, size, tiles.tile_node_reader(size, tile))
    merkle.verify_inclusion(merkle.leaf_hash(entries[index]), index, size, proof, root)
    old = data.draw(st.integers(min_value=1, max_value=size))
    old_root = merkle.root_from_leaf_hashes([merkle.leaf_hash(e) for e in entries[:old]])
    cproof = merkle.consistency_proof(old, size, tiles.tile_node_reader(size, tile))
    merkle.verify_consistency(old, size, old_root, root, cproof)

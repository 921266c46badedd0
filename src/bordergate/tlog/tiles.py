"""C2SP tlog-tiles: paths, tile and entry-bundle codecs, and the growing edge (pure).

A tile at level ``L`` holds up to 256 consecutive hashes of the tree at height
``8 * L``; a full tile is immutable and lives at ``tile/<L>/<N>``, the rightmost
incomplete one at ``tile/<L>/<N>.p/<W>``.  Entry bundles hold the entries
themselves, each as a big-endian uint16 length then its bytes, at
``tile/entries/<N>[.p/<W>]``.  Tile indexes are written in groups of three
digits, all but the last prefixed with ``x`` (1234067 -> ``x001/x234/067``).

:class:`TileFrontier` is the writer's in-memory right edge of the tree: fed
entries, it returns the full tiles and bundles they complete and, on demand,
the partial ones and the root.  :class:`TileHashes` is the reader's view of one
tile with its interior nodes, used to answer ``(level, index)`` node queries.

Nothing here does I/O or reads a clock; every decoder of untrusted bytes raises
:class:`~bordergate.errors.VerificationError` and nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bordergate.errors import VerificationError
from bordergate.tlog.merkle import EMPTY_ROOT, HASH_SIZE, NodeReader, root_from_subtrees

__all__ = [
    "ENTRY_MAX",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileFrontier",
    "TileHashes",
    "TileRef",
    "decode_bundle",
    "decode_tile",
    "index_path",
    "join_bundle",
    "parse_path",
    "tile_node_reader",
]

TILE_HEIGHT = 8
TILE_WIDTH = 256
# The longest entry a bundle can hold (its length is a uint16): the one entry size
# limit of bordergate, which bordergate.entries and the log's writers import.
ENTRY_MAX = 0xFFFF
ENTRIES = -1
"""The ``level`` of a :class:`TileRef` that names an entry bundle."""

_sha256 = hashlib.sha256


@dataclass(frozen=True, order=True)
class TileRef:
    """One tile or entry bundle: ``level`` (``-1`` for entries), ``index``, ``width``."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def is_bundle(self) -> bool:
        return self.level == ENTRIES

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """The C2SP path, e.g. ``tile/0/x001/234.p/7`` or ``tile/entries/000``."""
        head = "tile/entries" if self.is_bundle else f"tile/{self.level}"
        tail = "" if self.is_full else f".p/{self.width}"
        return f"{head}/{index_path(self.index)}{tail}"


def index_path(index: int) -> str:
    """Encode a tile index as C2SP path elements (``1234067`` -> ``x001/x234/067``)."""
    if index < 0:
        raise ValueError("tile index must not be negative")
    digits = str(index)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


_PATH = re.compile(
    r"tile/(?P<level>entries|[0-9]|[1-5][0-9]|6[0-3])/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


def parse_path(path: str) -> TileRef:
    """Parse a C2SP tile or bundle path strictly (leading zeros in groups only).

    Raises:
        VerificationError: not a well-formed tile path.
    """
    m = _PATH.fullmatch(path)
    if not m:
        raise VerificationError(f"not a tile path: {path[:80]!r}", code="malformed_tile_path")
    groups = m["index"].replace("x", "").split("/")
    index = int("".join(groups))
    if index_path(index) != m["index"]:
        raise VerificationError(f"non-canonical tile index in {path[:80]!r}",
                                code="malformed_tile_path")
    width = int(m["width"]) if m["width"] else TILE_WIDTH
    if m["width"] and width >= TILE_WIDTH:
        raise VerificationError(f"partial width out of range in {path[:80]!r}",
                                code="malformed_tile_path")
    level = ENTRIES if m["level"] == "entries" else int(m["level"])
    return TileRef(level, index, width)


def decode_tile(data: bytes, width: int) -> list[bytes]:
    """Split tile bytes into ``width`` hashes.

    Raises:
        VerificationError: the length is not ``width`` hashes.
    """
    if len(data) != width * HASH_SIZE:
        raise VerificationError(
            f"tile has {len(data)} bytes, expected {width * HASH_SIZE} for width {width}",
            code="malformed_tile")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


_LENGTHS: list[bytes] = []  # every 2-byte length prefix, made on first use (not at import)


def join_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries in entry-bundle encoding (each at most 65535 bytes; unchecked)."""
    lengths = _LENGTHS or _make_lengths()
    return b"".join([part for e in entries for part in (lengths[len(e)], e)])


def _make_lengths() -> list[bytes]:
    _LENGTHS.extend(n.to_bytes(2, "big") for n in range(ENTRY_MAX + 1))
    return _LENGTHS


def decode_bundle(data: bytes, width: int) -> list[bytes]:
    """Split an entry bundle into exactly ``width`` entries.

    Raises:
        VerificationError: truncated, trailing bytes, or a different count.
    """
    entries: list[bytes] = []
    append = entries.append  # the auditor's hot loop: one slice per entry, nothing more
    pos, end = 0, len(data)
    while pos < end:
        start = pos + 2
        if start > end:
            raise VerificationError(f"entry bundle truncated in the length of entry {len(entries)}",
                                    code="malformed_bundle")
        pos = start + ((data[pos] << 8) | data[start - 1])
        if pos > end:
            raise VerificationError(f"entry bundle truncated inside entry {len(entries)}",
                                    code="malformed_bundle")
        append(data[start:pos])
    if len(entries) != width:
        raise VerificationError(f"entry bundle holds {len(entries)} entries, expected {width}",
                                code="malformed_bundle")
    return entries


def _interior_levels(hashes: list[bytes]) -> list[list[bytes]]:
    """All complete interior levels over ``hashes`` (level 0 is ``hashes``)."""
    levels = [hashes]
    sha = _sha256
    while len(levels[-1]) > 1:
        prev = levels[-1]
        it = iter(prev[: len(prev) & ~1])
        levels.append([sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=True)])
    return levels


class TileHashes:
    """One decoded tile with every complete interior node above its hashes."""

    __slots__ = ("levels",)

    def __init__(self, hashes: list[bytes]) -> None:
        self.levels = _interior_levels(hashes)

    def node(self, height: int, index: int) -> bytes:
        """Hash ``index`` at ``height`` (0..8) above this tile's own hashes."""
        return self.levels[height][index]


def tile_node_reader(size: int, tile: Callable[[TileRef], TileHashes]) -> NodeReader:
    """A NodeReader over the tiles of a tree of ``size`` leaves.

    ``tile`` returns the decoded tile for a ref (the caller caches and verifies
    lengths); the reader picks the right width for the tree size.
    """
    def node(level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height
        tile_index = first // TILE_WIDTH
        count = size >> (TILE_HEIGHT * tile_level)
        full = count // TILE_WIDTH
        width = TILE_WIDTH if tile_index < full else count % TILE_WIDTH
        if tile_index > full or width == 0:
            raise ValueError(f"node ({level}, {index}) is outside the tree of size {size}")
        t = tile(TileRef(tile_level, tile_index, width))
        return t.node(height, (first % TILE_WIDTH) >> height)
    return node


def _perfect_root(hashes: Sequence[bytes], joined: bytes | None = None) -> bytes:
    """Root of a power-of-two run of hashes (``joined``: their concatenation)."""
    if len(hashes) == 1:
        return hashes[0]
    sha = _sha256
    view = memoryview(joined if joined is not None else b"".join(hashes))
    step = 2 * HASH_SIZE
    level = [sha(b"\x01" + view[i:i + step]).digest() for i in range(0, len(view), step)]
    while len(level) > 1:
        it = iter(level)
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=True)]
    return level[0]


class TileFrontier:
    """The right edge of a growing tree: the partial tile at each level.

    ``levels[L]`` holds the hashes at height ``8 * L`` that do not yet fill a
    tile; ``bundle`` holds the entries of the partial entry bundle.
    """

    def __init__(self, size: int = 0, levels: list[list[bytes]] | None = None,
                 bundle: list[bytes] | None = None) -> None:
        self.size = size
        self.levels: list[list[bytes]] = levels if levels is not None else [[]]
        self.bundle: list[bytes] = bundle if bundle is not None else []

    @classmethod
    def restore(cls, size: int, read: Callable[[TileRef], bytes]) -> TileFrontier:
        """Rebuild the edge of a tree of ``size`` from its partial tiles and bundle.

        Raises:
            VerificationError: a tile or bundle read back is malformed.
        """
        levels: list[list[bytes]] = []
        level = 0
        while True:
            count = size >> (TILE_HEIGHT * level)
            width = count % TILE_WIDTH
            levels.append(decode_tile(read(TileRef(level, count // TILE_WIDTH, width)), width)
                          if width else [])
            if count < TILE_WIDTH:
                break
            level += 1
        width = size % TILE_WIDTH
        entries = decode_bundle(read(TileRef(ENTRIES, size // TILE_WIDTH, width)), width) \
            if width else []
        return cls(size, levels, entries)

    def append(self, entries: Sequence[bytes], leaf_hashes: Sequence[bytes]
               ) -> list[tuple[TileRef, bytes]]:
        """Add entries (at most 65535 bytes each) with their leaf hashes.

        Returns the full tiles and full bundles that these entries complete, as
        ``(ref, bytes)``; the partial ones stay in memory (see :meth:`partials`).
        """
        done: list[tuple[TileRef, bytes]] = []
        first = self.size
        self._fill_bundle(first, entries, done)
        self._fill_level(0, list(leaf_hashes), done)
        self.size += len(leaf_hashes)
        return done

    def _fill_bundle(self, first: int, entries: Sequence[bytes],
                     done: list[tuple[TileRef, bytes]]) -> None:
        pending = self.bundle
        pos = 0
        index = first // TILE_WIDTH
        while pos < len(entries):
            take = TILE_WIDTH - len(pending)
            pending.extend(entries[pos:pos + take])
            pos += take
            if len(pending) == TILE_WIDTH:
                done.append((TileRef(ENTRIES, index), join_bundle(pending)))
                pending.clear()
                index += 1

    def _fill_level(self, level: int, hashes: list[bytes],
                    done: list[tuple[TileRef, bytes]]) -> None:
        while level < len(self.levels) or hashes:
            if level == len(self.levels):
                self.levels.append([])
            pending = self.levels[level]
            count = self.size >> (TILE_HEIGHT * level)
            parents: list[bytes] = []
            pos = 0
            while pos < len(hashes):
                take = min(TILE_WIDTH - len(pending), len(hashes) - pos)
                pending.extend(hashes[pos:pos + take])
                pos += take
                count += take
                if len(pending) == TILE_WIDTH:
                    joined = b"".join(pending)
                    parents.append(_perfect_root(pending, joined))
                    done.append((TileRef(level, count // TILE_WIDTH - 1), joined))
                    pending.clear()
            if not parents:
                return
            hashes = parents
            level += 1

    def partials(self) -> list[tuple[TileRef, bytes]]:
        """The partial tiles and partial bundle of the current size."""
        return self.partial_bundle() + self.partial_tiles()

    def partial_bundle(self) -> list[tuple[TileRef, bytes]]:
        """The partial entry bundle of the current size (none when aligned)."""
        if not self.bundle:
            return []
        return [(TileRef(ENTRIES, self.size // TILE_WIDTH, len(self.bundle)),
                 join_bundle(self.bundle))]

    def partial_tiles(self) -> list[tuple[TileRef, bytes]]:
        """The partial hash tiles of the current size."""
        out: list[tuple[TileRef, bytes]] = []
        for level, pending in enumerate(self.levels):
            if pending:
                count = self.size >> (TILE_HEIGHT * level)
                out.append((TileRef(level, count // TILE_WIDTH, len(pending)),
                            b"".join(pending)))
        return out

    def root(self) -> bytes:
        """MTH of the whole tree from the edge alone."""
        if self.size == 0:
            return EMPTY_ROOT
        subtrees: list[bytes] = []
        for pending in reversed(self.levels):
            pos, width = 0, len(pending)
            for bit in range(TILE_HEIGHT - 1, -1, -1):
                if width & (1 << bit):
                    subtrees.append(_perfect_root(pending[pos:pos + (1 << bit)]))
                    pos += 1 << bit
        return root_from_subtrees(subtrees)

"""An independent reader of the C2SP transparency-log formats, for tests only.

Promise 5 says the log is an RFC 9162 Merkle tree published as C2SP
tlog-tiles with C2SP checkpoints. This module checks that claim from the
outside: it was written from the specifications alone (RFC 9162 section 2,
c2sp.org/signed-note, tlog-checkpoint, tlog-tiles, tlog-cosignature) so that a
log directory written by bordergate can be checked by code that shares none of
its mistakes.

It must never import anything from ``bordergate`` (independence is the point),
and it is not production code: it favours plain, obviously correct loops over
speed. Every failure is an ``IndependentCheckFailed`` whose ``reason`` says
which file, which byte and which rule.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TILE_WIDTH",
    "Checkpoint",
    "IndependentCheckFailed",
    "Note",
    "NoteSignature",
    "TileRef",
    "VerifiedLog",
    "Verifier",
    "consistency_proof",
    "decode_bundle",
    "encode_bundle",
    "encode_tile_index",
    "inclusion_path",
    "key_id",
    "leaf_hash",
    "node_hash",
    "parse_checkpoint",
    "parse_note",
    "parse_tile_path",
    "parse_vkey",
    "required_tiles",
    "root_of",
    "root_recursive",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_log_dir",
    "verify_note",
]

HASH_SIZE = 32
TILE_WIDTH = 256
EMPTY_ROOT = hashlib.sha256(b"").digest()
SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"


class IndependentCheckFailed(Exception):
    """The checked bytes break a rule of RFC 9162 or a C2SP spec.

    Attributes:
        reason: what is wrong, naming the file, byte offset and rule when known.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------
# RFC 9162 section 2.1: hashing, roots, proofs
# --------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d0}) = SHA-256(0x00 || d0)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: SHA-256(0x01 || MTH(left) || MTH(right))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_recursive(hashes: list[bytes], start: int = 0, end: int | None = None) -> bytes:
    """MTH of the leaf hashes ``hashes[start:end]``, by the recursive RFC definition.

    Returns:
        the 32-byte Merkle Tree Hash (SHA-256 of nothing for an empty range).
    """
    stop = len(hashes) if end is None else end
    n = stop - start
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[start]
    k = _split_point(n)
    return node_hash(
        root_recursive(hashes, start, start + k), root_recursive(hashes, start + k, stop)
    )


def root_of(hashes: list[bytes]) -> bytes:
    """MTH of a list of leaf hashes, computed with a stack of perfect subtrees.

    A second, differently shaped computation of the same function as
    ``root_recursive``; the unit tests check that both agree.

    Returns:
        the 32-byte Merkle Tree Hash.
    """
    if not hashes:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (number of leaves, hash) of perfect subtrees
    for h in hashes:
        stack.append((1, h))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            right_size, right_hash = stack.pop()
            left_size, left_hash = stack.pop()
            stack.append((left_size + right_size, node_hash(left_hash, right_hash)))
    # The perfect subtrees are now in decreasing size; fold them from the right.
    _, acc = stack.pop()
    while stack:
        _, left_hash = stack.pop()
        acc = node_hash(left_hash, acc)
    return acc


def inclusion_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) over leaf hashes.

    Raises:
        IndependentCheckFailed: if index is not below the number of leaves.
    """
    if not 0 <= index < len(hashes):
        raise IndependentCheckFailed(
            f"inclusion path: index {index} not in a tree of {len(hashes)}"
        )

    def path(m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split_point(n)
        if m < k:
            return [*path(m, start, start + k), root_recursive(hashes, start + k, end)]
        return [*path(m - k, start + k, end), root_recursive(hashes, start, start + k)]

    return path(index, 0, len(hashes))


def consistency_proof(old_size: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) over leaf hashes.

    Raises:
        IndependentCheckFailed: unless 0 < old_size <= number of leaves.
    """
    if not 0 < old_size <= len(hashes):
        raise IndependentCheckFailed(f"consistency proof: old size {old_size} vs {len(hashes)}")

    def subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [root_recursive(hashes, start, end)]
        k = _split_point(n)
        if m <= k:
            return [
                *subproof(m, start, start + k, complete),
                root_recursive(hashes, start + k, end),
            ]
        return [*subproof(m - k, start + k, end, False), root_recursive(hashes, start, start + k)]

    return subproof(old_size, 0, len(hashes), True)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise IndependentCheckFailed(f"{what} is {len(value)} bytes, a SHA-256 hash is 32")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2: check that ``leaf`` is at ``index`` in the tree ``root``.

    Raises:
        IndependentCheckFailed: if the proof does not verify.
    """
    if not 0 <= index < size:
        raise IndependentCheckFailed(f"inclusion: index {index} is not below size {size}")
    _check_hash(leaf, "inclusion: leaf hash")
    _check_hash(root, "inclusion: root")
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion: proof[{i}]")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise IndependentCheckFailed("inclusion: proof is longer than the path")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IndependentCheckFailed("inclusion: proof is shorter than the path")
    if r != root:
        raise IndependentCheckFailed("inclusion: recomputed root differs from the given root")


def verify_consistency(
    old_size: int, new_size: int, proof: list[bytes], old_root: bytes, new_root: bytes
) -> None:
    """RFC 9162 2.1.4.2: check that tree ``new_root`` extends tree ``old_root``.

    Follows the conventions of the transparency-dev vectors: a proof from size
    0 is refused, equal sizes need an empty proof and equal roots.

    Raises:
        IndependentCheckFailed: if the proof does not verify.
    """
    if old_size > new_size:
        raise IndependentCheckFailed(f"consistency: old size {old_size} > new size {new_size}")
    if old_size == 0:
        raise IndependentCheckFailed("consistency: a proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise IndependentCheckFailed("consistency: equal sizes need an empty proof")
        if old_root != new_root:
            raise IndependentCheckFailed("consistency: equal sizes but different roots")
        return
    if not proof:
        raise IndependentCheckFailed("consistency: empty proof for different sizes")
    _check_hash(old_root, "consistency: old root")
    _check_hash(new_root, "consistency: new root")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency: proof[{i}]")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise IndependentCheckFailed("consistency: proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IndependentCheckFailed("consistency: proof is too short")
    if fr != old_root:
        raise IndependentCheckFailed("consistency: recomputed old root differs")
    if sr != new_root:
        raise IndependentCheckFailed("consistency: recomputed new root differs")


# --------------------------------------------------------------------------
# c2sp.org/signed-note and c2sp.org/tlog-cosignature
# --------------------------------------------------------------------------


def _strict_b64(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), padded, canonical."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise IndependentCheckFailed(f"{what}: not standard base64: {text!r}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise IndependentCheckFailed(f"{what}: non-canonical base64: {text!r}")
    return raw


def _check_key_name(name: str, what: str) -> None:
    if not name:
        raise IndependentCheckFailed(f"{what}: empty key name")
    if "+" in name or any(ch.isspace() for ch in name):
        raise IndependentCheckFailed(f"{what}: key name {name!r} has a space or '+'")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """signed-note: SHA-256(key name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[
        :4
    ]


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key ``name+hex8+base64(type || public key)``."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes


def parse_vkey(vkey: str, *, sig_type: int = SIG_ED25519) -> Verifier:
    """Parse a signed-note verifier key of the given signature type.

    Raises:
        IndependentCheckFailed: for any malformed part or a key id that does
            not match the name and key.
    """
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise IndependentCheckFailed(f"vkey {vkey!r}: need name+keyid+key")
    name, hex_id, b64 = parts
    _check_key_name(name, "vkey")
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise IndependentCheckFailed(f"vkey: key id {hex_id!r} is not 8 lowercase hex digits")
    raw = _strict_b64(b64, "vkey key")
    if len(raw) != 33 or raw[0] != sig_type:
        raise IndependentCheckFailed(
            f"vkey: key must be 33 bytes starting with 0x{sig_type:02x}, got {len(raw)} bytes"
        )
    kid = key_id(name, sig_type, raw[1:])
    if kid.hex() != hex_id:
        raise IndependentCheckFailed(f"vkey: key id {hex_id} but the key hashes to {kid.hex()}")
    return Verifier(name=name, key_id=kid, sig_type=sig_type, public_key=raw[1:])


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed signed note: the text (ending in newline) and its signature lines."""

    text: bytes
    signatures: list[NoteSignature]


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signature lines, strictly.

    Raises:
        IndependentCheckFailed: if the bytes are not a well-formed signed note.
    """
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndependentCheckFailed(f"note: not UTF-8 at byte {exc.start}") from exc
    for offset, ch in enumerate(decoded):
        if ord(ch) < 0x20 and ch != "\n":
            raise IndependentCheckFailed(f"note: control character {ord(ch):#04x} at char {offset}")
    if not decoded.endswith("\n"):
        raise IndependentCheckFailed("note: does not end with a newline")
    cut = decoded.rfind("\n\n")
    if cut < 0:
        raise IndependentCheckFailed("note: no blank line before the signatures")
    text, sig_block = decoded[: cut + 1], decoded[cut + 2 :]
    if not sig_block:
        raise IndependentCheckFailed("note: no signature lines")
    signatures = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise IndependentCheckFailed(f"note: signature line {line!r} lacks the em dash prefix")
        name, space, b64 = line[2:].partition(" ")
        if not space:
            raise IndependentCheckFailed(f"note: signature line {line!r} has no signature")
        _check_key_name(name, "note signature")
        raw = _strict_b64(b64, f"note signature of {name}")
        if len(raw) < 5:
            raise IndependentCheckFailed(f"note: signature of {name} is only {len(raw)} bytes")
        signatures.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
    return Note(text=text.encode("utf-8"), signatures=signatures)


def _ed25519_ok(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_note(data: bytes, vkey: str) -> Note:
    """Parse a note and require a valid Ed25519 signature from ``vkey``.

    Signatures by other keys are kept in the result and ignored, as the spec
    says. A signature whose name and key id match ``vkey`` but fails to verify
    rejects the whole note.

    Raises:
        IndependentCheckFailed: if no signature by the key verifies, or one fails.
    """
    verifier = parse_vkey(vkey)
    note = parse_note(data)
    good = 0
    for sig in note.signatures:
        if sig.name != verifier.name or sig.key_id != verifier.key_id:
            continue
        if len(sig.signature) != 64 or not _ed25519_ok(
            verifier.public_key, sig.signature, note.text
        ):
            raise IndependentCheckFailed(f"note: signature by {sig.name} does not verify")
        good += 1
    if good == 0:
        raise IndependentCheckFailed(
            f"note: no signature by {verifier.name}+{verifier.key_id.hex()}"
        )
    return note


def verify_cosignature(data: bytes, cosigner_vkey: str) -> int:
    """Check a cosignature/v1 (type 0x04) by ``cosigner_vkey`` on a signed checkpoint.

    The signed message is ``cosignature/v1\\ntime <t>\\n`` followed by the
    checkpoint text; the signature bytes are key id (4), timestamp (8,
    big-endian) and the Ed25519 signature (64).

    Returns:
        the cosignature's timestamp (POSIX seconds).

    Raises:
        IndependentCheckFailed: if there is no such cosignature or it is bad.
    """
    verifier = parse_vkey(cosigner_vkey, sig_type=SIG_COSIGNATURE_V1)
    note = parse_note(data)
    for sig in note.signatures:
        if sig.name != verifier.name or sig.key_id != verifier.key_id:
            continue
        if len(sig.signature) != 72:
            raise IndependentCheckFailed(
                f"cosignature: {len(sig.signature) + 4} bytes, cosignature/v1 has 76"
            )
        timestamp = int.from_bytes(sig.signature[:8], "big")
        if timestamp >= 2**63:
            raise IndependentCheckFailed("cosignature: timestamp exceeds 2^63 - 1")
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + note.text
        if not _ed25519_ok(verifier.public_key, sig.signature[8:], message):
            raise IndependentCheckFailed(f"cosignature: signature by {sig.name} does not verify")
        return timestamp
    raise IndependentCheckFailed(f"cosignature: none by {verifier.name}")


# --------------------------------------------------------------------------
# c2sp.org/tlog-checkpoint
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint body: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: list[str]


def parse_checkpoint(text: bytes) -> Checkpoint:
    """Parse a checkpoint note text strictly.

    Raises:
        IndependentCheckFailed: unless it is at least three non-empty lines
            (origin, decimal size without leading zeroes, base64 32-byte root)
            each ending in newline, plus optional non-empty extension lines.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndependentCheckFailed("checkpoint: not UTF-8") from exc
    if not decoded.endswith("\n"):
        raise IndependentCheckFailed("checkpoint: text does not end with a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) < 3:
        raise IndependentCheckFailed(f"checkpoint: {len(lines)} lines, need at least 3")
    for number, line in enumerate(lines, start=1):
        if not line:
            raise IndependentCheckFailed(f"checkpoint: line {number} is empty")
    origin, size_text, root_text, *extensions = lines
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text):
        raise IndependentCheckFailed(f"checkpoint: size {size_text!r} is not canonical decimal")
    root = _strict_b64(root_text, "checkpoint root")
    _check_hash(root, "checkpoint root")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=extensions)


# --------------------------------------------------------------------------
# c2sp.org/tlog-tiles
# --------------------------------------------------------------------------


def encode_tile_index(n: int) -> str:
    """``<N>`` as zero-padded 3-digit path elements, all but the last prefixed ``x``.

    Example: 1234067 -> ``x001/x234/067``.
    """
    if n < 0:
        raise IndependentCheckFailed(f"tile index {n} is negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        groups.insert(0, f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(groups)


@dataclass(frozen=True)
class TileRef:
    """One tile or entry bundle: level (None for entry bundles), index and width."""

    level: int | None
    index: int
    width: int

    @property
    def path(self) -> str:
        """The path below the log prefix, ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/...``."""
        kind = "entries" if self.level is None else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{kind}/{encode_tile_index(self.index)}{suffix}"


_TILE_PATH = re.compile(
    r"tile/(?P<kind>entries|0|[1-9][0-9]?)/(?P<n>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<w>[1-9][0-9]*))?"
)


def parse_tile_path(path: str) -> TileRef:
    """Parse a tile or bundle path and require it to be in its one canonical form.

    Raises:
        IndependentCheckFailed: if the path is not a canonical tlog-tiles path.
    """
    match = _TILE_PATH.fullmatch(path)
    if match is None:
        raise IndependentCheckFailed(f"{path}: not a tlog-tiles path")
    kind = match["kind"]
    level = None if kind == "entries" else int(kind)
    if level is not None and level > 63:
        raise IndependentCheckFailed(f"{path}: level above 63")
    index = int("".join(g.lstrip("x") for g in match["n"].split("/")))
    width = int(match["w"]) if match["w"] else TILE_WIDTH
    if width > 255 and match["w"]:
        raise IndependentCheckFailed(f"{path}: partial width must be 1..255")
    ref = TileRef(level=level, index=index, width=width)
    if ref.path != path:
        raise IndependentCheckFailed(f"{path}: non-canonical encoding of {ref.path}")
    return ref


def required_tiles(size: int) -> list[TileRef]:
    """Every tile and entry bundle a log of ``size`` entries must serve.

    For each level l with ``size >= 256**l``: ``size // 256**(l+1)`` full
    tiles, then one partial tile of width ``(size // 256**l) % 256`` if that is
    not zero. Entry bundles follow level 0.

    Returns:
        the refs, entry bundles first, then tiles level by level.
    """
    refs: list[TileRef] = []
    level = 0
    while size >= TILE_WIDTH**level and size > 0:
        count = size // TILE_WIDTH**level  # hashes stored at this level
        kinds: list[int | None] = [None, 0] if level == 0 else [level]
        for kind in kinds:
            refs.extend(TileRef(kind, n, TILE_WIDTH) for n in range(count // TILE_WIDTH))
            if count % TILE_WIDTH:
                refs.append(TileRef(kind, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return refs


def encode_bundle(entries: list[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length then its bytes."""
    out = bytearray()
    for entry in entries:
        if len(entry) > 0xFFFF:
            raise IndependentCheckFailed(f"entry of {len(entry)} bytes does not fit a bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes, width: int, where: str = "bundle") -> list[bytes]:
    """Decode an entry bundle that must hold exactly ``width`` entries.

    Raises:
        IndependentCheckFailed: if it is truncated, holds another number of
            entries or has trailing bytes.
    """
    entries = []
    offset = 0
    for number in range(width):
        if offset + 2 > len(data):
            raise IndependentCheckFailed(
                f"{where}: ends at byte {len(data)} inside the length of entry {number} of {width}"
            )
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise IndependentCheckFailed(
                f"{where}: entry {number} claims {length} bytes at byte {offset}, "
                f"file ends at {len(data)}"
            )
        entries.append(data[offset : offset + length])
        offset += length
    if offset != len(data):
        raise IndependentCheckFailed(
            f"{where}: {len(data) - offset} trailing bytes after {width} entries, at byte {offset}"
        )
    return entries


def _first_difference(got: bytes, want: bytes) -> int:
    for offset, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return offset
    return min(len(got), len(want))


@dataclass(frozen=True)
class VerifiedLog:
    """What an independently verified log directory holds.

    ``unserved_files`` lists files outside ``checkpoint`` and ``tile/``, which
    tlog-tiles does not define (a server must not publish them).
    """

    origin: str
    size: int
    root: bytes
    entries: list[bytes]
    checkpoint: bytes = b""
    stale_partials: list[str] = field(default_factory=list)
    unserved_files: list[str] = field(default_factory=list)


def _list_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if not p.is_dir()}


def _compare(path: str, got: bytes, want: bytes, unit: str) -> None:
    if got == want:
        return
    offset = _first_difference(got, want)
    detail = f"{path}: differs from the spec at byte {offset} ({len(got)} bytes, want {len(want)})"
    if unit == "hash":
        detail += f"; hash number {offset // HASH_SIZE} in the tile"
    raise IndependentCheckFailed(detail)


def verify_log_dir(path: str | Path, vkey: str) -> VerifiedLog:
    """Check a tlog-tiles directory byte for byte against its signed checkpoint.

    Steps: verify the checkpoint note with ``vkey``; parse its body; require
    exactly the tiles and bundles that its size needs; decode the bundles and
    hash the entries; require each level-0 tile to hold those leaf hashes and
    each level-(l+1) tile to hold the roots of the full level-l tiles; require
    the RFC 9162 root of all leaves to equal the checkpoint root. Older partial
    tiles and bundles (allowed to linger by the spec) must be prefixes of the
    current ones; any other file under ``tile/`` is an error.

    Returns:
        the origin, size, root and entries of the log.

    Raises:
        IndependentCheckFailed: naming the first file and byte that break a rule.
    """
    base = Path(path)
    checkpoint_file = base / "checkpoint"
    if not checkpoint_file.is_file():
        raise IndependentCheckFailed(f"{base}: no checkpoint file")
    checkpoint_bytes = checkpoint_file.read_bytes()
    note = verify_note(checkpoint_bytes, vkey)
    cp = parse_checkpoint(note.text)

    files = _list_files(base)
    unserved = sorted(p for p in files if p != "checkpoint" and not p.startswith("tile/"))
    tile_files = {p: f for p, f in files.items() if p.startswith("tile/")}
    required = required_tiles(cp.size)
    missing = [ref.path for ref in required if ref.path not in tile_files]
    if missing:
        raise IndependentCheckFailed(f"missing {len(missing)} tile files, first {missing[:5]}")

    entries: list[bytes] = []
    for ref in required:
        if ref.level is None:
            entries += decode_bundle(tile_files[ref.path].read_bytes(), ref.width, ref.path)
    hashes_by_level: list[list[bytes]] = [[leaf_hash(e) for e in entries]]
    level = 0
    while cp.size >= TILE_WIDTH**level and cp.size > 0:
        want = hashes_by_level[level]
        stored: list[bytes] = []
        for ref in (r for r in required if r.level == level):
            data = tile_files[ref.path].read_bytes()
            start = ref.index * TILE_WIDTH
            _compare(ref.path, data, b"".join(want[start : start + ref.width]), "hash")
            stored += [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        # The level above is recomputed from the tiles as read, not from entries.
        hashes_by_level.append(
            [
                root_of(stored[i : i + TILE_WIDTH])
                for i in range(0, len(stored) - TILE_WIDTH + 1, TILE_WIDTH)
            ]
        )
        level += 1

    root = root_of(hashes_by_level[0])
    if root != root_recursive(hashes_by_level[0]):
        raise IndependentCheckFailed("internal: the two root computations disagree")
    if root != cp.root:
        raise IndependentCheckFailed(
            f"checkpoint root {cp.root.hex()} differs from the root of the entries {root.hex()}"
        )

    stale = _check_leftovers(tile_files, {r.path for r in required}, entries, hashes_by_level)
    return VerifiedLog(
        origin=cp.origin,
        size=cp.size,
        root=cp.root,
        entries=entries,
        checkpoint=checkpoint_bytes,
        stale_partials=stale,
        unserved_files=unserved,
    )


def _check_leftovers(
    tile_files: dict[str, Path],
    required: set[str],
    entries: list[bytes],
    hashes_by_level: list[list[bytes]],
) -> list[str]:
    """Allow old partial tiles only if they are prefixes of the current data."""
    stale = []
    for rel in sorted(set(tile_files) - required):
        ref = parse_tile_path(rel)
        start = ref.index * TILE_WIDTH
        if ref.level is None:
            items = entries
            want = encode_bundle(entries[start : start + ref.width])
        else:
            items = hashes_by_level[ref.level] if ref.level < len(hashes_by_level) else []
            want = b"".join(items[start : start + ref.width])
        if ref.width == TILE_WIDTH or start + ref.width > len(items):
            raise IndependentCheckFailed(f"{rel}: extra file, not needed by the checkpoint size")
        _compare(
            rel, tile_files[rel].read_bytes(), want, "entries" if ref.level is None else "hash"
        )
        stale.append(rel)
    return stale

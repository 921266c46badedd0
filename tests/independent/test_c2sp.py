"""Tests of the independent C2SP reader against published vectors and hand-built logs.

The reader in ``tests/independent/c2sp.py`` is the yardstick of the
promise-5 interop test, so it is checked here on its own first: against the
RFC 9162 vectors of transparency-dev/merkle, the C2SP signed-note examples,
and tiny tlog-tiles directories built by hand in this file from the spec text.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.independent import c2sp
from tests.independent.c2sp import IndependentCheckFailed

VECTORS = Path(__file__).parent.parent / "vectors"
MERKLE = VECTORS / "rfc9162-merkle"
NOTE_VECTORS = json.loads((VECTORS / "signed-note" / "known-answers.json").read_text("utf-8"))

EIGHT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
EIGHT_ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")

# TEST-ONLY keys from fixed seeds. Never use them for anything but tests.
TEST_LOG_SEED = hashlib.sha256(b"bordergate test-only independent log key").digest()
TEST_WITNESS_SEED = hashlib.sha256(b"bordergate test-only independent witness key").digest()
ORIGIN = "test.bordergate.example/independent"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _vkey(name: str, key: Ed25519PrivateKey, sig_type: int = 0x01) -> str:
    pub = _raw_public(key)
    kid = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + pub).digest()[:4]
    return f"{name}+{kid.hex()}+{_b64(bytes([sig_type]) + pub)}"


def _sign_note(text: bytes, name: str, key: Ed25519PrivateKey) -> bytes:
    pub = _raw_public(key)
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    line = f"\u2014 {name} {_b64(kid + key.sign(text))}\n"
    return text + b"\n" + line.encode()


def _cosignature_line(text: bytes, name: str, key: Ed25519PrivateKey, timestamp: int) -> bytes:
    pub = _raw_public(key)
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text
    sig = kid + timestamp.to_bytes(8, "big") + key.sign(message)
    return f"\u2014 {name} {_b64(sig)}\n".encode()


# --------------------------------------------------------------------------
# RFC 9162 vectors
# --------------------------------------------------------------------------


def _cases(kind: str) -> list[Path]:
    return sorted((MERKLE / kind).rglob("*.json"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(MERKLE)) for p in paths]


def _hashes(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


@pytest.mark.parametrize("path", _cases("inclusion"), ids=_ids(_cases("inclusion")))
def test_inclusion_vectors(path: Path) -> None:
    """Promise 5: the independent inclusion verifier agrees with every RFC 9162 vector."""
    case = json.loads(path.read_text())
    args = (
        case["leafIdx"],
        case["treeSize"],
        base64.b64decode(case["leafHash"]),
        _hashes(case["proof"]),
        base64.b64decode(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(IndependentCheckFailed):
            c2sp.verify_inclusion(*args)
    else:
        c2sp.verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=_ids(_cases("consistency")))
def test_consistency_vectors(path: Path) -> None:
    """Promise 5: the independent consistency verifier agrees with every RFC 9162 vector."""
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        _hashes(case["proof"]),
        base64.b64decode(case["root1"]),
        base64.b64decode(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(IndependentCheckFailed):
            c2sp.verify_consistency(*args)
    else:
        c2sp.verify_consistency(*args)


def test_eight_leaf_root() -> None:
    """Promise 5: both root computations give the published root of the 8-leaf tree."""
    hashes = [c2sp.leaf_hash(leaf) for leaf in EIGHT_LEAVES]
    assert c2sp.root_of(hashes) == EIGHT_ROOT
    assert c2sp.root_recursive(hashes) == EIGHT_ROOT
    assert c2sp.root_of([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_generated_proofs_equal_vector_proofs(kind: str) -> None:
    """Promise 5: RFC 9162 PATH and PROOF over the 8 leaves equal the happy-path vectors."""
    hashes = [c2sp.leaf_hash(leaf) for leaf in EIGHT_LEAVES]
    for path in sorted((MERKLE / kind).glob("*/happy-path.json")):
        case = json.loads(path.read_text())
        if kind == "inclusion":
            tree = hashes[: case["treeSize"]]
            assert c2sp.root_of(tree) == base64.b64decode(case["root"])
            assert c2sp.inclusion_path(case["leafIdx"], tree) == _hashes(case["proof"]), path
        else:
            tree = hashes[: case["size2"]]
            assert c2sp.root_of(hashes[: case["size1"]]) == base64.b64decode(case["root1"])
            assert c2sp.consistency_proof(case["size1"], tree) == _hashes(case["proof"]), path


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_generated_proofs_verify(size: int, data: st.DataObject) -> None:
    """Promise 5: every RFC 9162 inclusion path and consistency proof verifies, and
    the stack and recursive root computations agree for all sizes."""
    hashes = [c2sp.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = c2sp.root_of(hashes)
    assert root == c2sp.root_recursive(hashes)
    index = data.draw(st.integers(0, size - 1))
    c2sp.verify_inclusion(index, size, hashes[index], c2sp.inclusion_path(index, hashes), root)
    old = data.draw(st.integers(1, size))
    proof = c2sp.consistency_proof(old, hashes)
    c2sp.verify_consistency(old, size, proof, c2sp.root_of(hashes[:old]), root)
    if proof:
        bad = [*proof[:-1], bytes(32)]
        with pytest.raises(IndependentCheckFailed):
            c2sp.verify_consistency(old, size, bad, c2sp.root_of(hashes[:old]), root)


# --------------------------------------------------------------------------
# signed-note, vkeys, cosignature/v1
# --------------------------------------------------------------------------


def test_note_verify_vector() -> None:
    """Promise 5: the C2SP signed-note example verifies with its published vkey."""
    case = NOTE_VECTORS["verify"][0]
    note = c2sp.verify_note(case["note"].encode(), case["vkey"])
    assert note.text == case["text"].encode()


def _key_from_private_string(skey: str) -> Ed25519PrivateKey:
    raw = base64.b64decode(skey.split("+", 4)[4])
    assert raw[0] == 0x01
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_note_sign_vector() -> None:
    """Promise 5: signing the known text with the published seed gives the exact note."""
    case = NOTE_VECTORS["sign"][0]
    key = _key_from_private_string(case["private_key"])
    assert _vkey("PeterNeumann", key) == case["vkey"]
    assert _sign_note(case["text"].encode(), "PeterNeumann", key) == case["note"].encode()
    assert c2sp.verify_note(case["note"].encode(), case["vkey"]).text == case["text"].encode()


@pytest.mark.parametrize("vkey", NOTE_VECTORS["bad_vkeys"])
def test_bad_vkeys_refused(vkey: str) -> None:
    """Promise 5: malformed verifier keys are refused."""
    with pytest.raises(IndependentCheckFailed):
        c2sp.parse_vkey(vkey)


def test_note_other_key_refused_and_unknown_signatures_ignored() -> None:
    """Promise 5: a note without a signature by the trusted key is refused; extra
    signatures by unknown keys are ignored; a bad signature by the trusted key rejects."""
    key = Ed25519PrivateKey.from_private_bytes(TEST_LOG_SEED)
    other = Ed25519PrivateKey.from_private_bytes(TEST_WITNESS_SEED)
    text = b"hello\nworld\n"
    note = _sign_note(text, "a.example", key)
    foreign = _sign_note(text, "b.example", other).split(b"\n\n")[1]
    assert len(c2sp.verify_note(note + foreign, _vkey("a.example", key)).signatures) == 2
    with pytest.raises(IndependentCheckFailed, match="no signature"):
        c2sp.verify_note(note, _vkey("a.example", other))
    tampered = note.replace(b"hello", b"hellO")
    with pytest.raises(IndependentCheckFailed, match="does not verify"):
        c2sp.verify_note(tampered, _vkey("a.example", key))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"text\n", "blank line"),
        (b"text\n\n", "no signature"),
        (b"text\n\n\xe2\x80\x94 a AAAAAAA=", "newline"),
        (b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAA=\n", "control"),
        (b"text\n\n- a AAAAAAA=\n", "em dash"),
        (b"text\n\n\xe2\x80\x94 a AAAA\n", "only"),
        (b"text\n\n\xe2\x80\x94 a AAAAAAA\n", "base64"),
        (b"text\n\n\xe2\x80\x94 a+b AAAAAAA=\n", "space or"),
        (b"\xff\n\n\xe2\x80\x94 a AAAAAAA=\n", "UTF-8"),
    ],
    ids=[
        "no-blank",
        "no-sigs",
        "no-final-newline",
        "control",
        "dash",
        "short",
        "b64",
        "plus",
        "utf8",
    ],
)
def test_malformed_notes(data: bytes, why: str) -> None:
    """Promise 5: malformed notes are refused with a reason."""
    with pytest.raises(IndependentCheckFailed, match=why):
        c2sp.parse_note(data)


def test_cosignature_spec_example_layout() -> None:
    """Promise 5: the spec's cosignature line is key id, 8-byte big-endian time, 64-byte sig."""
    note = c2sp.parse_note(NOTE_VECTORS["cosignature_example"]["note"].encode())
    witness = next(s for s in note.signatures if s.name == "witness.example.com/w1")
    assert len(witness.key_id) + len(witness.signature) == 76
    assert int.from_bytes(witness.signature[:8], "big") == 1679315147


def test_cosignature_roundtrip() -> None:
    """Promise 5: a cosignature/v1 made by hand from the spec verifies, and tampering fails."""
    log_key = Ed25519PrivateKey.from_private_bytes(TEST_LOG_SEED)
    witness = Ed25519PrivateKey.from_private_bytes(TEST_WITNESS_SEED)
    text = f"{ORIGIN}\n3\n{_b64(bytes(32))}\n".encode()
    note = _sign_note(text, ORIGIN, log_key) + _cosignature_line(
        text, "w.example", witness, 1700000000
    )
    witness_vkey = _vkey("w.example", witness, 0x04)
    assert c2sp.verify_cosignature(note, witness_vkey) == 1700000000
    with pytest.raises(IndependentCheckFailed):  # a log-type key is not a cosigner key
        c2sp.verify_cosignature(note, _vkey("w.example", witness, 0x01))
    with pytest.raises(IndependentCheckFailed, match="does not verify"):
        c2sp.verify_cosignature(note.replace(b"\n3\n", b"\n4\n"), witness_vkey)


# --------------------------------------------------------------------------
# tlog-checkpoint
# --------------------------------------------------------------------------


def test_checkpoint_parse() -> None:
    """Promise 5: the spec checkpoint example parses into origin, size and root."""
    text = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = c2sp.parse_checkpoint(text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, [])
    assert c2sp.parse_checkpoint(text + b"ext\n").extensions == ["ext"]


@pytest.mark.parametrize(
    "text",
    [
        b"o\n1\n" + _b64(bytes(32)).encode(),
        b"o\n01\n" + _b64(bytes(32)).encode() + b"\n",
        b"o\n-1\n" + _b64(bytes(32)).encode() + b"\n",
        b"\n1\n" + _b64(bytes(32)).encode() + b"\n",
        b"o\n1\n" + _b64(bytes(31)).encode() + b"\n",
        b"o\n1\n" + _b64(bytes(32)).encode() + b"\n\n",
        b"o\n1\n",
    ],
    ids=[
        "no-newline",
        "leading-zero",
        "negative",
        "empty-origin",
        "short-root",
        "empty-ext",
        "two-lines",
    ],
)
def test_checkpoint_malformed(text: bytes) -> None:
    """Promise 5: malformed checkpoint bodies are refused."""
    with pytest.raises(IndependentCheckFailed):
        c2sp.parse_checkpoint(text)


# --------------------------------------------------------------------------
# tlog-tiles: paths and tiles written by hand from the spec
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (1000000, "x001/x000/000"),
    ],
)
def test_tile_index_encoding(n: int, encoded: str) -> None:
    """Promise 5: tile indexes use 3-digit groups, all but the last prefixed with x."""
    assert c2sp.encode_tile_index(n) == encoded
    assert c2sp.parse_tile_path(f"tile/0/{encoded}").index == n


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1",
        "tile/0/x000/001",
        "tile/00/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/64/000",
        "tile/0/001/002",
        "tile/entries/000.p",
    ],
)
def test_bad_tile_paths(path: str) -> None:
    """Promise 5: non-canonical tile paths are refused."""
    with pytest.raises(IndependentCheckFailed):
        c2sp.parse_tile_path(path)


def test_spec_example_70000() -> None:
    """Promise 5: a 70,000-entry tree needs 273 full + a .p/112 level-0 tile, one full +
    a .p/17 level-1 tile, and a .p/1 level-2 tile (the spec's own example)."""
    refs = [r for r in c2sp.required_tiles(70000) if r.level is not None]
    by_level = {lvl: [r for r in refs if r.level == lvl] for lvl in (0, 1, 2)}
    assert len(by_level[0]) == 274 and by_level[0][-1].path == "tile/0/273.p/112"
    assert [r.path for r in by_level[1]] == ["tile/1/000", "tile/1/001.p/17"]
    assert [r.path for r in by_level[2]] == ["tile/2/000.p/1"]
    assert len(refs) == 274 + 2 + 1
    assert [r.path for r in c2sp.required_tiles(256)] == [
        "tile/entries/000",
        "tile/0/000",
        "tile/1/000.p/1",
    ]


def _entry(i: int) -> bytes:
    return f"entry {i}".encode() * (i % 3)


def write_log_by_hand(base: Path, entries: list[bytes], key: Ed25519PrivateKey) -> None:
    """Lay out a tlog-tiles directory straight from the spec text (test fixture)."""

    def put(rel: str, data: bytes) -> None:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)

    def index_path(n: int) -> str:
        digits = f"{n:d}"
        digits = digits.zfill((len(digits) + 2) // 3 * 3)
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        return "/".join(["x" + g for g in groups[:-1]] + groups[-1:])

    def write_level(kind: str, items: list[bytes]) -> None:
        for start in range(0, len(items), 256):
            chunk = items[start : start + 256]
            suffix = "" if len(chunk) == 256 else f".p/{len(chunk)}"
            put(f"tile/{kind}/{index_path(start // 256)}{suffix}", b"".join(chunk))

    write_level("entries", [len(e).to_bytes(2, "big") + e for e in entries])
    level_hashes = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    level = 0
    while level_hashes:
        write_level(str(level), level_hashes)
        above = []
        for start in range(0, len(level_hashes) - 255, 256):
            row = level_hashes[start : start + 256]
            while len(row) > 1:
                row = [
                    hashlib.sha256(b"\x01" + row[i] + row[i + 1]).digest()
                    for i in range(0, len(row), 2)
                ]
            above.append(row[0])
        level_hashes, level = above, level + 1
    root = c2sp.root_recursive([hashlib.sha256(b"\x00" + e).digest() for e in entries])
    body = f"{ORIGIN}\n{len(entries)}\n{_b64(root)}\n".encode()
    put("checkpoint", _sign_note(body, ORIGIN, key))


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    """TEST-ONLY Ed25519 log key from a fixed seed."""
    return Ed25519PrivateKey.from_private_bytes(TEST_LOG_SEED)


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 511, 512, 65536 + 3])
def test_hand_built_logs_verify(tmp_path: Path, log_key: Ed25519PrivateKey, size: int) -> None:
    """Promise 5: hand-built tlog-tiles logs of sizes around tile boundaries verify and
    give back their exact entries."""
    entries = [_entry(i) for i in range(size)]
    write_log_by_hand(tmp_path, entries, log_key)
    got = c2sp.verify_log_dir(tmp_path, _vkey(ORIGIN, log_key))
    assert (got.origin, got.size, got.entries) == (ORIGIN, size, entries)
    expected_files = {r.path for r in c2sp.required_tiles(size)}
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == expected_files | {"checkpoint"}


def test_size_one_by_hand_bytes(tmp_path: Path, log_key: Ed25519PrivateKey) -> None:
    """Promise 5: the size-1 log is exactly tile/entries/000.p/1 and tile/0/000.p/1."""
    write_log_by_hand(tmp_path, [b"hello"], log_key)
    assert (tmp_path / "tile/entries/000.p/1").read_bytes() == b"\x00\x05hello"
    assert (tmp_path / "tile/0/000.p/1").read_bytes() == hashlib.sha256(b"\x00hello").digest()
    assert c2sp.verify_log_dir(tmp_path, _vkey(ORIGIN, log_key)).entries == [b"hello"]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


Damage = Callable[[Path], None]
DAMAGES: dict[str, tuple[Damage, str]] = {
    "flipped-leaf-hash": (
        lambda d: _flip_byte(d / "tile/0/001.p/1", 5),
        r"tile/0/001\.p/1.*byte 5",
    ),
    "flipped-level1-hash": (
        lambda d: _flip_byte(d / "tile/1/000.p/1", 20),
        r"tile/1/000\.p/1.*byte 20",
    ),
    "flipped-entry": (lambda d: _flip_byte(d / "tile/entries/000", 5), r"tile/0/000:.*byte 32"),
    "missing-tile": (lambda d: (d / "tile/1/000.p/1").unlink(), "missing"),
    "extra-full-tile": (lambda d: (d / "tile/0/002").write_bytes(bytes(8192)), "extra file"),
    "temp-file": (lambda d: (d / "tile/0/001.p/1.tmp").write_bytes(b""), "not a tlog-tiles path"),
    "truncated-bundle": (
        lambda d: (d / "tile/entries/001.p/1").write_bytes(b"\x00\x09abc"),
        "claims 9 bytes",
    ),
    "trailing-bundle": (
        lambda d: (d / "tile/entries/001.p/1").write_bytes(
            (d / "tile/entries/001.p/1").read_bytes() + b"\x00"
        ),
        "trailing",
    ),
    "flipped-first-hash": (lambda d: _flip_byte(d / "tile/0/000", 0), r"tile/0/000:.*byte 0"),
    "future-partial": (lambda d: (d / "tile/0/001.p/2").write_bytes(bytes(64)), "extra file"),
    "bad-signature": (
        lambda d: (d / "checkpoint").write_bytes(
            (d / "checkpoint").read_bytes().replace(b"\n257\n", b"\n256\n")
        ),
        "does not verify",
    ),
    "no-checkpoint": (lambda d: (d / "checkpoint").unlink(), "no checkpoint"),
    "bad-stale-partial": (lambda d: _put(d / "tile/0/000.p/9", bytes(9 * 32)), r"tile/0/000\.p/9"),
}


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_damaged_log_refused(tmp_path: Path, log_key: Ed25519PrivateKey, damage: str) -> None:
    """Promise 5: a rewrite, gap or stray file in a log directory is detected and named."""
    write_log_by_hand(tmp_path, [_entry(i) for i in range(257)], log_key)
    harm, why = DAMAGES[damage]
    harm(tmp_path)
    with pytest.raises(IndependentCheckFailed, match=why):
        c2sp.verify_log_dir(tmp_path, _vkey(ORIGIN, log_key))


def test_stale_partials_allowed_only_as_prefixes(
    tmp_path: Path, log_key: Ed25519PrivateKey
) -> None:
    """Promise 5: partial tiles left from an older checkpoint are accepted when they are
    prefixes of the current tiles (the spec lets logs keep them), refused otherwise."""
    old, new = tmp_path / "old", tmp_path / "new"
    write_log_by_hand(old, [_entry(i) for i in range(250)], log_key)
    write_log_by_hand(new, [_entry(i) for i in range(257)], log_key)
    for rel in ("tile/0/000.p/250", "tile/entries/000.p/250"):
        (new / rel).parent.mkdir(parents=True, exist_ok=True)
        (new / rel).write_bytes((old / rel).read_bytes())
    got = c2sp.verify_log_dir(new, _vkey(ORIGIN, log_key))
    assert got.stale_partials == ["tile/0/000.p/250", "tile/entries/000.p/250"]
    _flip_byte(new / "tile/entries/000.p/250", 10)
    with pytest.raises(IndependentCheckFailed, match=r"tile/entries/000\.p/250.*byte 10"):
        c2sp.verify_log_dir(new, _vkey(ORIGIN, log_key))


def test_checkpoint_root_mismatch(tmp_path: Path, log_key: Ed25519PrivateKey) -> None:
    """Promise 5: a validly signed checkpoint whose root is not the root of the tiles fails."""
    write_log_by_hand(tmp_path, [_entry(i) for i in range(300)], log_key)
    body = f"{ORIGIN}\n300\n{_b64(bytes(32))}\n".encode()
    (tmp_path / "checkpoint").write_bytes(_sign_note(body, ORIGIN, log_key))
    with pytest.raises(IndependentCheckFailed, match="checkpoint root"):
        c2sp.verify_log_dir(tmp_path, _vkey(ORIGIN, log_key))


def test_unserved_files_reported(tmp_path: Path, log_key: Ed25519PrivateKey) -> None:
    """Promise 5: files outside checkpoint and tile/ are listed, not silently accepted."""
    write_log_by_hand(tmp_path, [b"a"], log_key)
    (tmp_path / "state.db").write_bytes(b"x")
    assert c2sp.verify_log_dir(tmp_path, _vkey(ORIGIN, log_key)).unserved_files == ["state.db"]

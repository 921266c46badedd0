"""Promise 5 cross-check: logs written by the ``bordergate log`` CLI, read back by an
independent implementation of the C2SP formats (tests/independent/c2sp.py).

These tests drive only the public CLI contract of issue 2 through subprocesses
and never import ``bordergate.tlog``: the tiles, entry bundles, checkpoint and
signed note in the directory must be exact, byte for byte, and the proofs
that ``bordergate log prove`` prints must verify (and equal the RFC 9162
PATH/PROOF lists) with code that shares nothing with bordergate.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.independent import c2sp

BORDERGATE = Path(sys.executable).parent / "bordergate"
ORIGIN = "interop.test.bordergate.example/log"


def _run(*args: str | Path, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        [str(BORDERGATE), *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"bordergate {' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout: {result.stdout[-2000:]!r}\nstderr: {result.stderr[-4000:]!r}"
        )
    return result.stdout


def _last_line(out: bytes) -> str:
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines, "no output"
    return lines[-1].strip()


@dataclass
class CliLog:
    """A log created with ``bordergate log init`` and the entries we appended to it."""

    directory: Path
    key_file: Path
    vkey: str
    entries: list[bytes] = field(default_factory=list)

    def append(self, entries: list[bytes]) -> int:
        """Append through the CLI; return the size it prints."""
        assert all(b"\n" not in e for e in entries)
        out = _run(
            "log",
            "append",
            self.directory,
            "--key-file",
            self.key_file,
            stdin=b"".join(e + b"\n" for e in entries),
        )
        self.entries += entries
        return int(_last_line(out))

    def prove(self, *args: str) -> Any:
        """Run ``bordergate log prove DIR ...`` and parse its JSON."""
        return json.loads(_run("log", "prove", self.directory, *args))


@pytest.fixture
def cli_log(tmp_path: Path) -> Iterator[CliLog]:
    """A fresh log made by ``bordergate log init`` (key kept outside the served directory)."""
    directory = tmp_path / "log"
    key_file = tmp_path / "secret" / "log.key"
    key_file.parent.mkdir()
    out = _run("log", "init", directory, "--origin", ORIGIN, "--key-file", key_file)
    yield CliLog(directory=directory, key_file=key_file, vkey=_last_line(out))


def _entries(rng: random.Random, count: int, *, big: bool = False) -> list[bytes]:
    """Entries of varied lengths, never containing a newline (the CLI's separator)."""
    alphabet = bytes(range(0x20, 0x7F))
    out = []
    for i in range(count):
        if i % 97 == 0:
            length = 0
        elif big and i % 1000 == 1:
            length = 65535
        else:
            length = rng.choice([1, 2, rng.randrange(3, 300)])
        out.append(bytes(rng.choice(alphabet) for _ in range(length)))
    return out


def _b64(value: Any) -> bytes:
    assert isinstance(value, str), value
    raw = base64.b64decode(value, validate=True)
    assert base64.b64encode(raw).decode() == value, f"non-canonical base64 {value!r}"
    return raw


def _proof(printed: Any) -> list[bytes]:
    """The ``proof`` list of base64 hashes that `bordergate log prove` prints."""
    assert isinstance(printed, dict) and isinstance(printed.get("proof"), list), printed
    return [_b64(h) for h in printed["proof"]]


def _check_proofs(log: CliLog, size: int, rng: random.Random) -> None:
    """Inclusion and consistency proofs printed by the CLI verify independently and equal
    the RFC 9162 PATH and PROOF lists."""
    leaves = [c2sp.leaf_hash(e) for e in log.entries[:size]]
    root = c2sp.root_of(leaves)
    indexes = {0, size - 1, min(255, size - 1), min(256, size - 1), rng.randrange(size)}
    for index in sorted(indexes):
        printed = log.prove("--index", str(index), "--size", str(size))
        assert (printed["index"], printed["size"]) == (index, size)
        assert _b64(printed["root"]) == root
        assert _b64(printed["leaf_hash"]) == leaves[index]
        proof = _proof(printed)
        c2sp.verify_inclusion(index, size, leaves[index], proof, root)
        assert proof == c2sp.inclusion_path(index, leaves), f"inclusion {index}@{size}"
    for old in sorted({1, max(1, size // 2), max(1, size - 1), size}):
        printed = log.prove("--old", str(old), "--size", str(size))
        assert (printed["old_size"], printed["size"]) == (old, size)
        assert _b64(printed["old_root"]) == c2sp.root_of(leaves[:old])
        assert _b64(printed["root"]) == root
        proof = _proof(printed)
        c2sp.verify_consistency(old, size, proof, c2sp.root_of(leaves[:old]), root)
        assert proof == c2sp.consistency_proof(old, leaves), f"consistency {old}->{size}"


def _check_dir(log: CliLog, expected_size: int) -> c2sp.VerifiedLog:
    got = c2sp.verify_log_dir(log.directory, log.vkey)
    assert got.origin == ORIGIN
    assert got.size == expected_size == len(log.entries)
    for i, (have, want) in enumerate(zip(got.entries, log.entries, strict=True)):
        assert have == want, f"entry {i}: {have[:40]!r} != {want[:40]!r}"
    assert got.root == c2sp.root_of([c2sp.leaf_hash(e) for e in log.entries])
    printed = _run("log", "checkpoint", log.directory)
    assert printed == got.checkpoint, "`log checkpoint` output differs from DIR/checkpoint"
    assert c2sp.parse_vkey(log.vkey).name == ORIGIN, "log key name should match the origin"
    secret = log.key_file.read_bytes()
    for p in log.directory.rglob("*"):
        assert not p.is_file() or secret not in p.read_bytes(), f"signing key found in {p}"
    return got


@pytest.mark.parametrize("size", [1, 256, 257])
def test_cli_log_verifies_independently(cli_log: CliLog, size: int) -> None:
    """Promise 5: a log of 1, 256 or 257 entries written by `bordergate log` verifies
    byte for byte with the independent C2SP reader, and its proofs verify."""
    rng = random.Random(size)
    assert cli_log.append(_entries(rng, size)) == size
    _check_dir(cli_log, size)
    _check_proofs(cli_log, size, rng)


def test_cli_empty_and_max_entries(cli_log: CliLog) -> None:
    """Promise 5: empty entries and 65535-byte entries (the bundle limit) survive the
    round trip exactly, across a tile boundary."""
    rng = random.Random(7)
    entries = [b"", b"x" * 65535, *_entries(rng, 253), b"", bytes([0x41]) * 65535, b"", b"z"]
    assert len(entries) == 259
    assert cli_log.append(entries) == 259
    _check_dir(cli_log, 259)


def test_cli_appends_across_invocations(cli_log: CliLog) -> None:
    """Promise 5: appends in several invocations give a log that verifies after each one,
    each new checkpoint consistent with the previous one by the CLI's own proof."""
    rng = random.Random(2)
    previous: c2sp.VerifiedLog | None = None
    for batch in [1, 99, 156, 1, 254, 1, 513]:
        size = cli_log.append(_entries(rng, batch))
        got = _check_dir(cli_log, len(cli_log.entries))
        assert size == got.size
        if previous is not None:
            printed = cli_log.prove("--old", str(previous.size), "--size", str(size))
            proof = _proof(printed)
            c2sp.verify_consistency(previous.size, size, proof, previous.root, got.root)
        previous = got
    _check_proofs(cli_log, len(cli_log.entries), rng)


@pytest.mark.slow
def test_cli_log_70000(cli_log: CliLog) -> None:
    """Promise 5: a 70,000-entry log (three tile levels, the spec's own example size) with
    varied entry lengths, written in two invocations, verifies independently."""
    rng = random.Random(70000)
    cli_log.append(_entries(rng, 65537, big=True))
    _check_dir(cli_log, 65537)
    assert cli_log.append(_entries(rng, 70000 - 65537)) == 70000
    got = _check_dir(cli_log, 70000)
    assert {"tile/2/000.p/1", "tile/1/001.p/17", "tile/0/273.p/112"} <= set(
        ref.path for ref in c2sp.required_tiles(got.size)
    )
    _check_proofs(cli_log, 70000, rng)
    _check_proofs(cli_log, 65537, rng)


def test_cli_binary_entries(cli_log: CliLog) -> None:
    """Promise 5: entries are bytes: NUL, CR, 0xFF and invalid UTF-8 (anything but the
    newline separator) are logged exactly as given on stdin."""
    entries = [b"\x00", b"\r", b"a\rb", b"\xff\xfe", b"\xc3\x28", bytes(range(11, 256)), b"\t \t"]
    assert cli_log.append(entries) == len(entries)
    _check_dir(cli_log, len(entries))


def test_cli_verify_agrees(cli_log: CliLog, tmp_path: Path) -> None:
    """Promise 5: `bordergate log verify` accepts what the independent reader accepts,
    including consistency with an older checkpoint file."""
    rng = random.Random(3)
    cli_log.append(_entries(rng, 300))
    old = tmp_path / "old-checkpoint"
    old.write_bytes(_check_dir(cli_log, 300).checkpoint)
    cli_log.append(_entries(rng, 50))
    _check_dir(cli_log, 350)
    _run("log", "verify", cli_log.directory, "--vkey", cli_log.vkey, "--old", old)


def test_cli_fresh_log_is_empty_tree(cli_log: CliLog) -> None:
    """Promise 5: right after `log init` the directory is a valid size-0 log whose
    checkpoint root is the RFC 9162 hash of the empty tree."""
    got = _check_dir(cli_log, 0)
    assert got.root == c2sp.EMPTY_ROOT


def test_cli_refused_entry_leaves_log_intact(cli_log: CliLog) -> None:
    """Promise 5: an entry over 65535 bytes is refused and the published log is unchanged
    and still verifies byte for byte (no gap, no partial write)."""
    cli_log.append([b"first", b"second"])
    before = _check_dir(cli_log, 2)
    result = subprocess.run(
        [
            str(BORDERGATE),
            "log",
            "append",
            str(cli_log.directory),
            "--key-file",
            str(cli_log.key_file),
        ],
        input=b"ok\n" + b"y" * 65536 + b"\n",
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0
    after = c2sp.verify_log_dir(cli_log.directory, cli_log.vkey)
    assert after.size in (2, 3)
    assert after.entries[:2] == [b"first", b"second"]
    if after.size == 2:
        assert after.checkpoint == before.checkpoint

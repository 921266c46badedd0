"""The `bordergate log` command contract, driven as a user would, plus `log serve`.

Promise 5: a log created, appended to, proven and verified from the command
line is a correct C2SP log; served over HTTP it exposes only the log's files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bordergate.tlog import merkle

BIN = Path(sys.executable).parent / "bordergate"


def run(*args: str, stdin: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([str(BIN), *args], input=stdin, capture_output=True, timeout=120,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr.decode())
    return proc


@pytest.fixture
def log_dir(tmp_path: Path) -> tuple[Path, str]:
    d = tmp_path / "log"
    out = run("log", "init", str(d), "--origin", "cli.test/log").stdout.decode()
    return d, out.strip().splitlines()[-1]


def test_init_append_prove_verify(log_dir: tuple[Path, str], tmp_path: Path) -> None:
    """Promise 5: the documented CLI round trip works and proofs verify."""
    d, vkey = log_dir
    key = d.parent / "log.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    assert not any(p.name.endswith(".key") for p in d.rglob("*")), "key inside served dir"
    assert run("log", "append", str(d), stdin=b"a\nb\n\nlast").stdout.strip() == b"4"
    old = tmp_path / "old-checkpoint"
    old.write_bytes(run("log", "checkpoint", str(d)).stdout)
    lines = b"".join(f"entry {i}\n".encode() for i in range(600))
    assert run("log", "append", str(d), stdin=lines).stdout.strip() == b"604"
    proof = json.loads(run("log", "prove", str(d), "--index", "3").stdout)
    merkle.verify_inclusion(merkle.leaf_hash(b"last"), 3, 604,
                            [_d(p) for p in proof["proof"]], _d(proof["root"]))
    cons = json.loads(run("log", "prove", str(d), "--old", "4").stdout)
    merkle.verify_consistency(4, 604, _d(cons["old_root"]), _d(cons["root"]),
                              [_d(p) for p in cons["proof"]])
    ok = run("log", "verify", str(d), "--vkey", vkey, "--old", str(old))
    assert b"verified" in ok.stdout and b"consistent with size 4" in ok.stdout


def _d(s: str) -> bytes:
    import base64
    return base64.b64decode(s)


def test_verify_fails_on_tampering_and_wrong_key(log_dir: tuple[Path, str]) -> None:
    """Promise 5: one changed byte in a bundle, or the wrong key, fails verify (exit 1)."""
    d, vkey = log_dir
    run("log", "append", str(d), stdin=b"".join(b"x%d\n" % i for i in range(300)))
    bundle = d / "tile" / "entries" / "000"
    data = bytearray(bundle.read_bytes())
    data[10] ^= 1
    bundle.write_bytes(bytes(data))
    bad = run("log", "verify", str(d), "--vkey", vkey, check=False)
    assert bad.returncode == 1 and b"tile/0/000" in bad.stderr
    other = run("log", "init", str(d.parent / "other"), "--origin", "cli.test/log").stdout
    wrong = run("log", "verify", str(d), "--vkey", other.decode().strip().splitlines()[-1],
                check=False)
    assert wrong.returncode == 1


def test_bad_usage_exits_2(log_dir: tuple[Path, str]) -> None:
    """Bad input: a bad key string or an existing log gives exit 2 and a code."""
    d, _ = log_dir
    assert run("log", "verify", str(d), "--vkey", "garbage", check=False).returncode == 2
    again = run("log", "init", str(d), "--origin", "cli.test/log", check=False)
    assert again.returncode == 2
    assert b"log_exists" in again.stderr or b"key_file_exists" in again.stderr


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(log_dir: tuple[Path, str]) -> Iterator[tuple[str, Path, str]]:
    d, vkey = log_dir
    run("log", "append", str(d), stdin=b"".join(b"s%d\n" % i for i in range(700)))
    (d / "secret.txt").write_text("not for serving")
    port = _port()
    proc = subprocess.Popen([str(BIN), "log", "serve", str(d), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/checkpoint", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield base, d, vkey
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_exposes_only_log_paths_with_cache_headers(served: tuple[str, Path, str]) -> None:
    """Promise 5: the served log is read-only, no listing or traversal, right caching."""
    base, _, vkey = served
    cp = httpx.get(base + "/checkpoint")
    assert cp.status_code == 200 and cp.headers["cache-control"] == "no-cache"
    full = httpx.get(base + "/tile/entries/000")
    assert full.status_code == 200 and "immutable" in full.headers["cache-control"]
    partial = httpx.get(base + "/tile/0/002.p/188")
    assert partial.status_code == 200 and "immutable" not in partial.headers["cache-control"]
    for path in ["/secret.txt", "/.sequencer/lock", "/tile/", "/", "/tile/../secret.txt",
                 "/tile/%2e%2e/secret.txt", "/tile/0/1"]:
        assert httpx.get(base + path).status_code == 404, path
    assert httpx.post(base + "/checkpoint").status_code == 405
    ok = run("log", "verify", base, "--vkey", vkey)
    assert b"size 700" in ok.stdout


def test_append_finds_a_key_file_given_at_init(tmp_path: Path) -> None:
    """Behaviour: `log append DIR` needs no --key-file when `log init` was given one."""
    d, key = tmp_path / "log", tmp_path / "keys" / "signing.key"
    key.parent.mkdir()
    run("log", "init", str(d), "--origin", "cli.test/keyed", "--key-file", str(key))
    assert run("log", "append", str(d), stdin=b"one\ntwo\n").stdout.strip() == b"2"
    assert key.read_bytes() not in b"".join(p.read_bytes() for p in d.rglob("*") if p.is_file())


@pytest.mark.postgres
def test_every_log_command_takes_a_postgresql_url(tmp_path: Path, postgres_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 item 3: a log kept in PostgreSQL is named by its URL in init, append,
    checkpoint, prove, verify, audit log and sequencer alike, and no directory named
    after the URL appears; without --key-file a signing command says key_file_required."""
    monkeypatch.chdir(tmp_path)  # where a directory named like the URL would appear
    key = tmp_path / "pg.key"
    no_key = run("log", "init", postgres_url, "--origin", "cli.test/pg", check=False)
    assert no_key.returncode == 2 and b"key_file_required" in no_key.stderr
    vkey = run("log", "init", postgres_url, "--origin", "cli.test/pg", "--key-file", str(key)
               ).stdout.decode().strip().splitlines()[-1]
    assert run("log", "append", postgres_url, "--key-file", str(key),
               stdin=b"a\nb\nc\n").stdout.strip() == b"3"
    assert run("log", "checkpoint", postgres_url).stdout.splitlines()[1] == b"3"
    proof = json.loads(run("log", "prove", postgres_url, "--index", "1").stdout)
    merkle.verify_inclusion(merkle.leaf_hash(b"b"), 1, 3, [_d(p) for p in proof["proof"]],
                            _d(proof["root"]))
    assert b"verified" in run("log", "verify", postgres_url, "--vkey", vkey).stdout
    audited = run("audit", "log", postgres_url, "--vkey", vkey, "--state",
                  str(tmp_path / "state"), check=False)
    assert audited.returncode == 0, audited.stderr
    other = run("log", "sequencer", "ftp://elsewhere/log", "--credentials",
                str(tmp_path / "none.txt"), check=False)
    assert other.returncode == 2 and b"log_location" in other.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg.key", "state"]

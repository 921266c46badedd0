"""`bordergate audit log` driven as an auditor would: exit codes, tampering, forks, HTTP.

Promise 5 (append-only and witnessed): a rewrite, a gap or a split view is
detected.  Each tamper test verifies a log once (state saved at size 1000),
lets it grow to 1700, damages it, and expects exit 1 with the exact entry
index or tile path, and the state file left byte for byte as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bordergate.audit.logstate_dir import state_file_name
from bordergate.tlog.tiles import TILE_WIDTH
from tests.audit.auditlogs import ENTRY_LENGTH, grow
from tests.tlog.witnessed import (
    BORDERGATE,
    ORIGIN,
    bordergate,
    free_port,
    log_signer,
    make_log,
    stop,
    wait_listening,
    witness_signer,
)

VKEY = log_signer().verifier().key_string
ITEM = 2 + ENTRY_LENGTH


def audit(location: Path | str, state: Path, *args: str) -> tuple[int, dict[str, object]]:
    proc = bordergate("audit", "log", str(location), "--vkey", VKEY, "--state", str(state),
                      "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def grown(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A log verified at size 1000 (state saved), grown to 1700; the old checkpoint."""
    log, state = tmp_path / "log", tmp_path / "state"
    make_log(log)
    old = grow(log, 1000)
    code, out = audit(log, state)
    assert code == 0 and out["size"] == 1000
    grow(log, 700)
    return log, state, old


def flip_entry_byte(log: Path, old: bytes) -> tuple[int, str]:
    data = bytearray((log / "tile/entries/005").read_bytes())
    data[10 * ITEM + 2 + 5] ^= 0x01  # inside entry 5*256+10
    (log / "tile/entries/005").write_bytes(bytes(data))
    return 5 * TILE_WIDTH + 10, "tile/0/005"


def delete_newest_bundles(log: Path, old: bytes) -> tuple[int, str]:
    (log / "tile/entries/005").unlink()
    shutil.rmtree(log / "tile/entries/006.p")
    return 5 * TILE_WIDTH, "tile/entries/005"


def truncate_last_bundle(log: Path, old: bytes) -> tuple[int, str]:
    path = log / "tile/entries/006.p/164"
    data = path.read_bytes()
    path.write_bytes(data[:-50])
    return 6 * TILE_WIDTH + (len(data) - 50) // ITEM, "tile/entries/006.p/164"


def truncate_tile(log: Path, old: bytes) -> tuple[int, str]:
    path = log / "tile/0/004"
    path.write_bytes(path.read_bytes()[:100])
    return 4 * TILE_WIDTH + 100 // 32, "tile/0/004"  # the first hash cut short


@pytest.mark.parametrize("tamper", [flip_entry_byte, delete_newest_bundles,
                                    truncate_last_bundle, truncate_tile],
                         ids=lambda f: f.__name__)
def test_tampering_is_detected_precisely(
        grown: tuple[Path, Path, bytes],
        tamper: Callable[[Path, bytes], tuple[int, str]]) -> None:
    """Promise 5: each tampering fails with exit 1, the entry index and tile path, and the
    saved state is left unchanged."""
    log, state, old = grown
    before = (state / state_file_name(ORIGIN)).read_bytes()
    index, path = tamper(log, old)
    code, out = audit(log, state)
    assert code == 1 and out["ok"] is False, out
    assert out["index"] == index, out
    assert out["path"] == path, out
    assert out["old_size"] == 1000
    assert (state / state_file_name(ORIGIN)).read_bytes() == before
    assert sorted(p.name for p in state.iterdir()) == [state_file_name(ORIGIN)]


def test_replayed_older_checkpoint(grown: tuple[Path, Path, bytes]) -> None:
    """Promise 5: verified at 1700, the log puts its signed checkpoint of 1000 back: exit 1
    naming the first index that vanished; the state stays at 1700."""
    log, state, old = grown
    assert audit(log, state)[0] == 0
    before = (state / state_file_name(ORIGIN)).read_bytes()
    (log / "checkpoint").write_bytes(old)
    code, out = audit(log, state)
    assert code == 1 and out["code"] == "checkpoint_rollback", out
    assert (out["old_size"], out["size"], out["index"]) == (1700, 1000, 1000)
    assert "smaller than the size 1700" in str(out["reason"])
    assert (state / state_file_name(ORIGIN)).read_bytes() == before


def test_tampering_before_any_state(tmp_path: Path) -> None:
    """Promise 5: a fresh audit reads every bundle, so an old change is caught too."""
    log, state = tmp_path / "log", tmp_path / "state"
    make_log(log)
    grow(log, 600)
    data = bytearray((log / "tile/entries/000").read_bytes())
    data[3 * ITEM + 2] ^= 0x20
    (log / "tile/entries/000").write_bytes(bytes(data))
    code, out = audit(log, state)
    assert code == 1 and out["index"] == 3 and out["code"] == "tile_mismatch"
    assert not (state / state_file_name(ORIGIN)).exists()


def test_human_output_names_index_and_path(grown: tuple[Path, Path, bytes]) -> None:
    """Promise 5: without --json the failure line carries the reason, index and path."""
    log, state, old = grown
    flip_entry_byte(log, old)
    proc = bordergate("audit", "log", str(log), "--vkey", VKEY, "--state", str(state))
    text = proc.stdout.decode()
    assert proc.returncode == 1
    assert text.startswith("FAILED [tile_mismatch]") and "index 1290" in text
    assert "tile/0/005" in text


def test_fork_fails_and_writes_evidence(tmp_path: Path) -> None:
    """Promise 5: state from branch A, then branch B of the same key: exit 1, an evidence
    file in --state that `audit evidence` accepts offline."""
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    make_log(a)
    make_log(b)
    grow(a, 10, b"a")
    grow(b, 12, b"b")
    code, out = audit(a, state)
    assert code == 0
    before = (state / state_file_name(ORIGIN)).read_bytes()
    code, out = audit(b, state)
    assert code == 1 and out["code"] == "split_view", out
    evidence = Path(str(out["evidence_file"]))
    assert evidence.parent == state and evidence.exists()
    proc = bordergate("audit", "evidence", str(evidence))
    assert proc.returncode == 0 and b"SPLIT VIEW PROVEN" in proc.stdout, proc.stdout
    assert (state / state_file_name(ORIGIN)).read_bytes() == before
    code, out = audit(a, state)  # branch A still verifies against the state
    assert code == 0 and out["old_size"] == 10


def test_witness_quorum_options(tmp_path: Path) -> None:
    """Promise 5: --witness/--quorum demand valid cosignatures; a short quorum is exit 1."""
    log, state = tmp_path / "log", tmp_path / "state"
    make_log(log)
    grow(log, 5, cosigners=[witness_signer(0)])
    w0, w1 = (witness_signer(n).verifier().key_string for n in (0, 1))
    code, out = audit(log, state, "--witness", w0, "--witness", w1)
    assert code == 1 and out["code"] == "witness_quorum_not_met"
    assert not (state / state_file_name(ORIGIN)).exists()
    code, out = audit(log, state, "--witness", w0, "--witness", w1, "--quorum", "1")
    assert code == 0 and out["cosignatures"] == ["witness.test/w0"]
    # 1 of 2 cannot rule out a fork by the log operator alone, and says so
    # (tests/audit/test_witness_review_fork_quorum.py)
    assert len(out["warnings"]) == 1 and "the log operator alone" in out["warnings"][0]


@pytest.mark.parametrize("args", [
    ["--vkey", "not-a-key"],
    ["--vkey", VKEY, "--quorum", "1"],
    ["--vkey", VKEY, "--witness", "garbage"],
], ids=["bad-vkey", "quorum-without-witness", "bad-witness-key"])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    """Usage errors exit 2 and write no state."""
    log = tmp_path / "log"
    make_log(log)
    proc = bordergate("audit", "log", str(log), "--state", str(tmp_path / "state"), *args)
    assert proc.returncode == 2, proc.stdout


def test_io_errors_exit_3(tmp_path: Path) -> None:
    """A missing log or an unreachable URL exit 3 (unavailable or I/O), a damaged state
    file 2 (the auditor's own file is wrong): bordergate.exit_codes."""
    state = tmp_path / "state"
    proc = bordergate("audit", "log", str(tmp_path / "none"), "--vkey", VKEY, "--state",
                      str(state))
    assert proc.returncode == 3 and b"checkpoint_missing" in proc.stderr
    proc = bordergate("audit", "log", f"http://127.0.0.1:{free_port()}", "--vkey", VKEY,
                      "--state", str(state))
    assert proc.returncode == 3 and b"log_unavailable" in proc.stderr
    log = tmp_path / "log"
    make_log(log)
    state.mkdir(exist_ok=True)
    (state / state_file_name(ORIGIN)).write_text("{}")
    proc = bordergate("audit", "log", str(log), "--vkey", VKEY, "--state", str(state))
    assert proc.returncode == 2 and b"audit_state_invalid" in proc.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The log served read-only by `bordergate log serve` on loopback."""
    log = tmp_path / "log"
    make_log(log)
    grow(log, 300)
    port = free_port()
    err = tmp_path / "serve.err"
    with err.open("wb") as handle:
        proc = subprocess.Popen([BORDERGATE, "log", "serve", str(log), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=handle)
    try:
        wait_listening(proc, port, err)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(proc)


def test_audit_over_http_and_progress(served: tuple[str, Path], tmp_path: Path) -> None:
    """Promise 5: the auditor verifies a log served over HTTP and resumes from its state."""
    url, log = served
    state = tmp_path / "state"
    code, out = audit(url, state, "--progress")
    assert code == 0 and out["size"] == 300
    grow(log, 50)
    code, out = audit(url, state)
    assert code == 0 and (out["old_size"], out["size"]) == (300, 350)

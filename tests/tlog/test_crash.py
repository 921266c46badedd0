"""Crash test: SIGKILL a writing sequencer at random moments, many times.

Promise 5 and the durability contract of the log: after every restart, every
acknowledged index is present with its exact bytes, and the new checkpoint is
consistent with every checkpoint the log ever published.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bordergate.tlog import merkle
from bordergate.tlog.checkpoint import SignedCheckpoint
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.sequencer import create_log
from bordergate.tlog.storage.fs import FileStorage
from tests.tlog.crash_writer import entry_bytes
from tests.tlog.logkeys import log_signer

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
SEED = 7


def _acked(ack_file: Path) -> int:
    """Highest acknowledged size recorded by the child (complete lines only)."""
    end = 0
    if ack_file.exists():
        for line in ack_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                end = max(end, int(parts[0]) + int(parts[1]))
    return end


def _check_entries(client: LogClient, signed: SignedCheckpoint) -> int:
    """Rebuild the whole tree, checking every entry's exact bytes; returns the count."""
    count = 0

    def check(first: int, entries: list[bytes]) -> None:
        nonlocal count
        for offset, e in enumerate(entries):
            assert e == entry_bytes(SEED, first + offset), f"index {first + offset} differs"
        count += len(entries)
    client.rebuild(signed, on_entries=check)
    return count


def _wait_for_progress(ack_file: Path, before: int, child: subprocess.Popen[bytes]) -> None:
    """Wait (at most 60 s) until the child acknowledged something past ``before``."""
    limit = time.monotonic() + 60
    while _acked(ack_file) <= before:
        assert child.poll() is None, "the crash writer exited by itself"
        assert time.monotonic() < limit, "the crash writer made no progress in 60 s"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Promise 5: no acknowledged entry is lost and no published checkpoint is
    contradicted, across many SIGKILLs of the writer at random points."""
    log_dir, ack_file = tmp_path / "log", tmp_path / "acks"
    signer = log_signer()
    create_log(FileStorage(log_dir), signer)
    rng = random.Random(1234)
    seen_checkpoints: dict[bytes, bytes] = {}   # note -> root, every one ever published
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    client_for = lambda: LogClient(DirectorySource(log_dir), signer.verifier())  # noqa: E731
    for round_no in range(KILLS):
        child = subprocess.Popen([sys.executable, "-m", "tests.tlog.crash_writer",
                                  str(log_dir), str(ack_file), str(SEED)], cwd=ROOT, env=env)
        # The kill lands at a random moment of the writing, not of the child's
        # start-up: on a loaded machine an interpreter start alone can outlast
        # any fixed delay, and a kill before the first append tests nothing.
        _wait_for_progress(ack_file, _acked(ack_file), child)
        deadline = time.monotonic() + rng.uniform(0.0, 0.6)
        while time.monotonic() < deadline:
            note = (log_dir / "checkpoint").read_bytes()
            seen_checkpoints.setdefault(note, b"")
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        acked = _acked(ack_file)
        # restart: a sequencer recovers (and publishes what recovery found)
        from bordergate.tlog.sequencer import Sequencer
        with Sequencer(FileStorage(log_dir), signer) as seq:
            assert seq.size >= acked, f"round {round_no}: acknowledged entries lost"
        client = client_for()
        signed = client.checkpoint()
        size = signed.checkpoint.size
        assert size >= acked
        checked = _check_entries(client, signed)
        assert checked == size
        for note in list(seen_checkpoints):
            old = client.open(note).checkpoint
            if old.size == 0:
                continue
            proof = client.consistency_proof(old.size, size)
            merkle.verify_consistency(old.size, size, old.root, signed.checkpoint.root, proof)
        seen_checkpoints.setdefault(signed.note, b"")
    assert _acked(ack_file) > 0, "the child never acknowledged anything"
    assert len(seen_checkpoints) > KILLS, "too few checkpoints observed to mean anything"

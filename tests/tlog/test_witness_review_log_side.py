"""Review of what one lying witness can do to the log that asks it (promise 5: witnessed).

No single party is trusted, witnesses included: the log asks several and needs
a quorum of them, so one witness must never be able to take the log down.  Each
test runs the lying witness as a real process on loopback
(``tests/tlog/witness_review_liars.py``) and, where an honest witness is
needed, a real ``bordergate witness serve``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bordergate.audit.witness_check import check_witnesses
from bordergate.errors import VerificationError
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.sequencer import Sequencer, SequencerConfig
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.witness_client import request_cosignature_sync
from bordergate.tlog.witnessing import WitnessEndpoint, WitnessQuorum, witness_endpoint
from tests.tlog.memory_log import MemoryLog, fixed_log_signer
from tests.tlog.witnessed import (
    WitnessServer,
    free_port,
    log_signer,
    make_log,
    stop,
    wait_listening,
)

ROOT = Path(__file__).resolve().parents[2]
# TEST-ONLY key of the lying witness.
TEST_ONLY_LIAR_SEED = bytes([77] * 32)


def liar_key() -> CosignatureSigner:
    return CosignatureSigner("witness.test/liar", TEST_ONLY_LIAR_SEED, lambda: 0)


def start_liar(tmp: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    err = tmp / f"liar-{port}.err"
    with err.open("ab") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "tests.tlog.witness_review_liars",
                                 args[0], str(port), *args[1:]], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=handle)
    wait_listening(proc, port, err)
    return proc, port


@pytest.fixture
def honest(tmp_path: Path) -> Iterator[WitnessServer]:
    server = WitnessServer(tmp_path, 0, [log_signer()]).start()
    try:
        yield server
    finally:
        server.stop()


def test_an_endless_witness_answer_is_cut_off(tmp_path: Path) -> None:
    """A witness cannot exhaust the log's memory: its answer is read up to MAX_RESPONSE
    bytes (64 KiB) and refused beyond (``witness_response_too_large``), not read whole first."""
    proc, port = start_liar(tmp_path, "endless")
    try:
        with httpx.Client(timeout=10) as http:
            started = time.monotonic()
            with pytest.raises(VerificationError) as refused:
                request_cosignature_sync(
                    http, f"http://127.0.0.1:{port}/add-checkpoint",
                    MemoryLog(fixed_log_signer()).append_n(3).checkpoint(), 0, [],
                    verifier=liar_key().verifier())
    finally:
        stop(proc)
    assert refused.value.code == "witness_response_too_large", refused.value
    assert "65536 bytes" in str(refused.value)  # witness_client.MAX_RESPONSE
    assert time.monotonic() - started < 5


def test_a_trickling_witness_does_not_stop_publication(tmp_path: Path,
                                                       honest: WitnessServer) -> None:
    """Quorum 1 of 2: a witness that answers one byte at a time forever costs the log its
    own cosignature only; the honest witness's cosignature publishes every checkpoint (the
    trickling answer used to hold a shared worker thread, and the next rounds' requests to
    the honest witness queued behind it: the log never published again)."""
    proc, port = start_liar(tmp_path, "trickle")
    make_log(tmp_path / "log")
    storage = FileStorage(tmp_path / "log")
    quorum = WitnessQuorum(
        [witness_endpoint(f"http://127.0.0.1:{port}", liar_key().verifier().key_string),
         witness_endpoint(honest.url, honest.verifier.key_string)], 1, timeout=2.0)
    sizes = []
    try:
        with Sequencer(storage, log_signer(), config=SequencerConfig(checkpoint_interval=0.05),
                       witnessing=quorum) as seq:
            for round_ in range(4):
                seq.append_many([b"round %d" % round_])
                signed = open_checkpoint(seq.publish(timeout=10).note,
                                         log_signer().verifier(), cosigners=[honest.verifier])
                assert [c.name for c in signed.cosignatures] == [honest.verifier.name]
                sizes.append(signed.checkpoint.size)
    finally:
        quorum.close()
        storage.close()
        stop(proc)
    assert sizes == [1, 2, 3, 4]
    assert "witness.test/liar" in quorum.last_failures


# TEST-ONLY keys of the witness with a skewed clock and of the slow honest one.
TEST_ONLY_SKEWED_SEED = bytes([78] * 32)
TEST_ONLY_SLOW_SEED = bytes([79] * 32)


def start_witness(tmp: Path, name: str, seed: bytes, *, offset: int = 0, delay: float = 0.0
                  ) -> tuple[subprocess.Popen[bytes], WitnessEndpoint]:
    """A real Witness process (witness_review_liars.py ``witness``) trusting the test log."""
    log_option = f"{log_signer().name}={log_signer().verifier().key_string}"
    proc, port = start_liar(tmp, "witness", name, str(offset), str(delay), seed.hex(),
                            log_option)
    key = CosignatureSigner(name, seed, lambda: 0).verifier().key_string
    return proc, witness_endpoint(f"http://127.0.0.1:{port}", key)


@pytest.mark.parametrize("offset", [-2 * 86400, 86400])
def test_a_witness_clock_far_off_does_not_end_the_wait_for_the_quorum(
        tmp_path: Path, offset: int, caplog: pytest.LogCaptureFixture) -> None:
    """Quorum 1 of 2: a witness that answers at once with a cosignature stamped two days
    ago (or a day ahead) does not meet the quorum by itself: the log waits for the honest
    witness, slower than the grace period, and publishes its cosignature, so a first
    audit finds the checkpoint fresh.  The log used to publish as soon as the skewed
    cosignature arrived, and every first audit found an honest log's checkpoint stale
    (``checkpoint_stale``).  When only the skewed witness answers, the log still
    publishes (it is witnessed) but says why audits will find it stale."""
    skewed_proc, skewed = start_witness(tmp_path, "witness.test/skewed",
                                        TEST_ONLY_SKEWED_SEED, offset=offset)
    slow_proc, slow = start_witness(tmp_path, "witness.test/slow", TEST_ONLY_SLOW_SEED,
                                    delay=1.5)
    trusted = [skewed.verifier, slow.verifier]
    make_log(tmp_path / "log")
    storage = FileStorage(tmp_path / "log")
    config = SequencerConfig(checkpoint_interval=0.05)
    quorum = WitnessQuorum([skewed, slow], 1, timeout=8.0, grace=0.5)
    try:
        with Sequencer(storage, log_signer(), config=config, witnessing=quorum) as seq:
            seq.append_many([b"one"])
            note = seq.publish(timeout=15).note
        signed = open_checkpoint(note, log_signer().verifier(), cosigners=trusted)
        assert slow.name in [c.name for c in signed.cosignatures]
        check = check_witnesses(signed, trusted=trusted, quorum=1, now=time.time())
        assert check.finding is None, check.explanation
        stop(slow_proc)  # now only the skewed witness answers
        with caplog.at_level(logging.WARNING, logger="bordergate.tlog.witnessing"), \
                Sequencer(storage, log_signer(), config=config, witnessing=quorum) as seq:
            seq.append_many([b"two"])
            note = seq.publish(timeout=15).note
    finally:
        quorum.close()
        storage.close()
        stop(skewed_proc)
        stop(slow_proc)
    signed = open_checkpoint(note, log_signer().verifier(), cosigners=trusted)
    assert signed.checkpoint.size == 2
    assert "witness_clock_skew" in quorum.last_failures.get(skewed.name, "")
    assert any("witness_clock_skew" in r.getMessage() for r in caplog.records)

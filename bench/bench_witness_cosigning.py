"""Benchmark: witness cosigning latency at 1 checkpoint/s (issue 12 item 1).

Starts two real witness processes (``bordergate witness serve``, each with its own
key and SQLite state, as the demo runs them) and drives a real sequencer on a
file-system log: once a second it appends a small batch and publishes a
checkpoint, which the sequencer sends to both witnesses (quorum 2) with a
consistency proof before publishing it.  Printed:

* the cosigning latency (the witnesses' round trip, both cosignatures in: the
  time :meth:`WitnessQuorum.cosign` takes), p50 and p99;
* the publication latency (``publish()`` called until the checkpoint covering
  the batch is published) with the quorum, and, in the same run, on a second
  log without witnesses (the baseline), and their ratio.

Bounded: ``--seconds`` per phase (default 15, so about 30 checkpoints).

    .venv/bin/python bench/bench_witness_cosigning.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bordergate.tlog.checkpoint import Checkpoint
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage
from bordergate.tlog.witnessing import WitnessQuorum, witness_endpoint

BIN = Path(sys.executable).with_name("bordergate")
BATCH = 20  # entries appended before each checkpoint
# BENCH-ONLY fixed seed; never use this key for anything real.
LOG_SEED = bytes([77] * 32)


class TimedCosigning:
    """Wraps the witness quorum and records how long each cosign call takes."""

    def __init__(self, inner: WitnessQuorum) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    def cosign(self, note: bytes, checkpoint: Checkpoint,
               prove: Callable[[int], list[bytes]]) -> bytes:
        started = time.perf_counter()
        out = self.inner.cosign(note, checkpoint, prove)
        self.seconds.append(time.perf_counter() - started)
        return out


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_witness(root: Path, name: str, signer: Signer) -> tuple[subprocess.Popen[bytes], str]:
    """A ``bordergate witness serve`` process trusting the log; its ``(process, URL=VKEY)``."""
    key = root / f"{name}.key"
    out = subprocess.run([str(BIN), "witness", "init", "--key-file", str(key), "--name", name],
                         capture_output=True, text=True, check=True).stdout
    vkey = out.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([str(BIN), "witness", "serve", "--key-file", str(key), "--state",
                             str(root / f"{name}.db"), "--port", str(port), "--log",
                             f"{signer.name}={signer.verifier().key_string}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}={vkey}"


def run_phase(log: Path, signer: Signer, witnessing: TimedCosigning | None,
              seconds: float) -> list[float]:
    """One checkpoint a second for ``seconds``; the publication latency of each."""
    storage = FileStorage(log)
    create_log(storage, signer)
    latencies = []
    config = SequencerConfig(checkpoint_interval=3600.0)  # publish only when asked
    with Sequencer(storage, signer, config=config, witnessing=witnessing) as seq:
        end = time.monotonic() + seconds
        tick = time.monotonic()
        while tick < end:
            seq.append_many([b"bench entry %d" % i for i in range(seq.size, seq.size + BATCH)])
            started = time.perf_counter()
            seq.publish(timeout=30)
            latencies.append(time.perf_counter() - started)
            tick += 1.0
            time.sleep(max(0.0, tick - time.monotonic()))
    storage.close()
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    signer = Signer.from_seed("bench.bordergate.example/witnessed", LOG_SEED)
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        root = Path(tmp)
        procs = []
        try:
            options = []
            for name in ("auditor-witness", "monitor-witness"):
                proc, option = start_witness(root, name, signer)
                procs.append(proc)
                options.append(option)
            endpoints = [witness_endpoint(*o.split("=", 1)) for o in options]
            timed = TimedCosigning(WitnessQuorum(endpoints, 2))
            witnessed = run_phase(root / "witnessed", signer, timed, args.seconds)
            timed.inner.close()
            bare = run_phase(root / "bare", Signer.from_seed(
                "bench.bordergate.example/bare", LOG_SEED), None, args.seconds)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    cosign = timed.seconds
    print(f"witness cosigning at 1 checkpoint/s, 2 witness processes, quorum 2, "
          f"{len(cosign)} checkpoints of {BATCH} entries")
    print(f"  cosigning latency (both cosignatures in): p50 {pct(cosign, 0.5):.1f} ms, "
          f"p99 {pct(cosign, 0.99):.1f} ms")
    print(f"  publish with quorum:    p50 {pct(witnessed, 0.5):.1f} ms, "
          f"p99 {pct(witnessed, 0.99):.1f} ms")
    print(f"  publish, no witnesses:  p50 {pct(bare, 0.5):.1f} ms, "
          f"p99 {pct(bare, 0.99):.1f} ms  (baseline, same run)")
    print(f"  ratio publish-with-quorum / without: p50 "
          f"{statistics.median(witnessed) / statistics.median(bare):.2f}x, p99 "
          f"{pct(witnessed, 0.99) / pct(bare, 0.99):.2f}x")


if __name__ == "__main__":
    main()

"""Benchmark of `bordergate audit log` (issue 3): a fresh audit of a 1,000,000-entry log.

Builds a log of 200-byte entries with the real sequencer in a temporary
directory, then runs the auditor's check (:func:`audit_log`, fresh state:
every bundle read and parsed, every leaf and tile hash recomputed and
compared, the root checked, the state saved) from the local directory.

Prints the audit rate in entries/s and its ratio against a bare loop of two
``hashlib.sha256`` calls per entry over the same entries, measured in the
same run (the hashing floor; targets: >= 200,000 entries/s and >= 0.4).
Pinned to one CPU.  Usage: python bench/bench_audit_log.py [--entries N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import random
import tempfile
import time
from pathlib import Path

from bordergate.audit.logcheck import audit_log
from bordergate.audit.logstate import MemoryStateStore
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage

ENTRY = 200
CHUNK = 65_536


def entries(n: int, seed: int = 1) -> list[bytes]:
    """``n`` distinct 200-byte entries."""
    rnd = random.Random(seed)
    bodies = [rnd.randbytes(ENTRY - 8) for _ in range(64)]
    return [i.to_bytes(8, "big") + bodies[i & 63] for i in range(n)]


def signer() -> Signer:
    return Signer.from_seed("bench.bordergate.example/audited", bytes(32))  # bench-only key


def build(folder: Path, data: list[bytes]) -> float:
    create_log(FileStorage(folder), signer())
    t = time.perf_counter()
    with Sequencer(FileStorage(folder), signer(),
                   config=SequencerConfig(checkpoint_interval=5.0)) as seq:
        futures = [seq.submit(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
        for f in futures:
            f.result()
        seq.publish(timeout=120)
    return time.perf_counter() - t


def two_hash_floor(data: list[bytes]) -> float:
    sha = hashlib.sha256
    t = time.perf_counter()
    for e in data:
        sha(e).digest()
        sha(e).digest()
    return len(data) / (time.perf_counter() - t)


def audit_rate(folder: Path, n: int) -> float:
    client = LogClient(DirectorySource(folder), signer().verifier())
    t = time.perf_counter()
    result = audit_log(client, MemoryStateStore())
    elapsed = time.perf_counter() - t
    if not result.ok or result.size != n:
        raise SystemExit(f"audit failed: {result}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true", help="cProfile one audit")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    data = entries(args.entries)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp) / "log"
        built = build(folder, data)
        print(f"log of {args.entries:,} entries built in {built:.1f} s")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            audit_rate(folder, args.entries)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        floor = max(two_hash_floor(data) for _ in range(2))
        rate = max(audit_rate(folder, args.entries) for _ in range(2))
    print(f"audit log (fresh state, local dir): {rate:,.0f} entries/s (target >= 200,000)")
    print(f"two-SHA-256 floor:                  {floor:,.0f} entries/s")
    print(f"ratio audit / floor:                {rate / floor:.2f} (target >= 0.4)")


if __name__ == "__main__":
    main()

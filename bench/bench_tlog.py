"""Benchmarks of the log (issue 2): durable appends, proofs from tiles, scaling.

Prints rates and, for each, the ratio against a baseline measured in the same
run (the machine is shared and noisy: absolute times drift, ratios hold):

* durable appends (files backend, group commit, a checkpoint each second,
  200-byte entries) vs pymerkle 7 SqliteTree (one transaction per 1,000
  entries, root after each) and vs a bare loop of two SHA-256 calls per entry;
* inclusion proofs from tiles (warm cache) vs pymerkle's prove_inclusion on
  the same entries;
* the append rate with 10 million entries already in the log vs with 10
  thousand (``--scale`` changes the large size).

Everything runs pinned to one CPU.  Usage: python bench/bench_tlog.py [--scale N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, SequencerConfig, create_log
from bordergate.tlog.storage.fs import FileStorage

ENTRY = 200
CHUNK = 4096


def entries(n: int, seed: int = 1) -> list[bytes]:
    """``n`` distinct 200-byte entries (a few distinct bodies, unique prefixes)."""
    rnd = random.Random(seed)
    bodies = [rnd.randbytes(ENTRY - 8) for _ in range(64)]
    return [i.to_bytes(8, "big") + bodies[i & 63] for i in range(n)]


def signer() -> Signer:
    return Signer.from_seed("bench.bordergate.example/log", bytes(32))  # bench-only key


def two_hash_floor(data: list[bytes]) -> float:
    """Entries/s of a bare loop of two SHA-256 calls per entry (median of 3)."""
    sha = hashlib.sha256
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        for e in data:
            sha(e).digest()
            sha(e).digest()
        rates.append(len(data) / (time.perf_counter() - t))
    return sorted(rates)[1]


def pymerkle_append(data: list[bytes], folder: Path) -> tuple[float, object]:
    from pymerkle import SqliteTree
    tree = SqliteTree(str(folder / "pymerkle.db"))
    t = time.perf_counter()
    for i in range(0, len(data), 1000):
        tree.append_entries(data[i:i + 1000])
        tree.get_root()
    return len(data) / (time.perf_counter() - t), tree


def our_append(data: list[bytes], seq: Sequencer) -> float:
    t = time.perf_counter()
    futures = [seq.submit(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
    for f in futures:
        f.result()
    seq.publish()
    return len(data) / (time.perf_counter() - t)


def open_log(folder: Path) -> Sequencer:
    storage = FileStorage(folder)
    if not (folder / "checkpoint").exists():
        create_log(FileStorage(folder), signer())
    seq = Sequencer(storage, signer(), config=SequencerConfig(checkpoint_interval=1.0))
    seq.start()
    return seq


def settle() -> None:
    """Flush what earlier phases left dirty, so no phase pays for another's writes."""
    os.sync()
    time.sleep(1)


def bench_appends(n: int, work: Path) -> None:
    data = entries(n)
    floor = two_hash_floor(data)
    settle()
    pm_rate, _ = pymerkle_append(data, work)
    settle()
    with open_log(work / "log") as seq:
        ours = our_append(data, seq)
    print(f"durable appends: {ours:,.0f} entries/s (target >= 250,000)")
    print(f"  vs pymerkle SqliteTree: {pm_rate:,.0f}/s  ratio {ours / pm_rate:.2f} (target >= 2)")
    print(f"  vs two-hash floor:      {floor:,.0f}/s  ratio {ours / floor:.2f} (target >= 0.4)")


def bench_proofs(n: int, work: Path, count: int = 50_000) -> None:
    data = entries(n, seed=2)
    (work / "p").mkdir(parents=True)
    _, tree = pymerkle_append(data, work / "p")
    with open_log(work / "plog") as seq:
        our_append(data, seq)
    # warm cache: room for every tile and node these proofs touch
    client = LogClient(DirectorySource(work / "plog"), signer().verifier(), cache_tiles=65_536)
    size = client.checkpoint().checkpoint.size
    rnd = random.Random(3)
    picks = [rnd.randrange(size) for _ in range(count)]
    for i in picks:  # warm cache: every tile these proofs need is loaded once
        client.inclusion_proof(i, size)
    t = time.perf_counter()
    for i in picks:
        client.inclusion_proof(i, size)
    ours = count / (time.perf_counter() - t)
    pm_count = count // 10
    t = time.perf_counter()
    for i in picks[:pm_count]:
        tree.prove_inclusion(i + 1, size)  # type: ignore[attr-defined]
    pm = pm_count / (time.perf_counter() - t)
    print(f"inclusion proofs from tiles (warm): {ours:,.0f}/s (target >= 50,000)")
    print(f"  vs pymerkle prove_inclusion:      {pm:,.0f}/s  ratio {ours / pm:.2f} (target >= 3)")


def bench_scaling(large: int, work: Path, probe: int = 200_000, rounds: int = 3) -> None:
    """Append rate with ``large`` entries already in the log vs with 10,000.

    The two logs are probed alternately, ``rounds`` times each, and the medians
    compared, so a burst of outside load does not land on one side only.
    """
    small_seq, large_seq = open_log(work / "small"), open_log(work / "large")
    try:
        our_append(entries(10_000, seed=4), small_seq)
        filled, step, t0 = 0, 1_000_000, time.perf_counter()
        block = entries(step, seed=6)
        while filled < large:
            our_append(block[: min(step, large - filled)], large_seq)
            filled = large_seq.size
            if time.perf_counter() - t0 > 600:
                print(f"  (stopped filling at {filled:,} entries: 10-minute bound)")
                break
        data = entries(probe, seed=5)
        small_rates, large_rates = [], []
        for _ in range(rounds):
            settle()
            small_rates.append(our_append(data, small_seq))
            settle()
            large_rates.append(our_append(data, large_seq))
    finally:
        small_seq.close()
        large_seq.close()
    small_rate, large_rate = sorted(small_rates)[rounds // 2], sorted(large_rates)[rounds // 2]
    print(f"append rate at {filled:,} entries: {large_rate:,.0f}/s; at ~10,000: "
          f"{small_rate:,.0f}/s (medians of {rounds} alternating probes)")
    print(f"  ratio {large_rate / small_rate:.2f} (target: within 20%, i.e. 0.80 to 1.20)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=10_000_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    work = Path(tempfile.mkdtemp(prefix="bench-tlog-", dir=os.environ.get("BENCH_DIR")))
    try:
        (work / "a").mkdir()
        bench_appends(args.entries, work / "a")
        bench_proofs(1_000_000, work / "b")
        if args.scale:
            bench_scaling(args.scale, work / "c")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sqlite3.threadsafety  # noqa: B018  (pymerkle uses sqlite3; fail early if missing)
    main()

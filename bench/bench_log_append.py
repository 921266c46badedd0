"""``bordergate log append`` against the library it drives (issue 16 item 6).

Workload: ``--entries`` (default 1,000,000) entries of 200 bytes, one per line
of a file, fed to ``bordergate log append DIR < FILE`` (no witnesses: the quick
start).  Measured in the same run, each the median of ``--repeat`` rounds on a
fresh log (files backend):

  library  entries already in memory, submitted to a ``Sequencer`` in chunks of
           65,536 without waiting, then one wait and a published checkpoint
           (what a caller of the library gets)
  cli      the whole ``bordergate log append`` process, from exec to exit:
           interpreter start, imports, reading and splitting stdin, appending,
           publishing the checkpoint

Prints both rates in entries/s and the ratio cli/library (1.0: the CLI costs
nothing over the library); the target is >= 350,000 entries/s for the CLI.
Run: .venv/bin/python bench/bench_log_append.py [--entries N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage

ENTRY = 200
CHUNK = 65_536
BIN = str(Path(sys.executable).with_name("bordergate"))


def write_entries(path: Path, n: int) -> list[bytes]:
    """``n`` distinct 200-byte printable entries, one per line of ``path``."""
    rnd = random.Random(16)
    bodies = [rnd.randbytes((ENTRY - 8) // 2).hex().encode() for _ in range(64)]
    data = [b"%08x" % i + bodies[i & 63] for i in range(n)]
    assert all(len(e) == ENTRY for e in data[:3])
    path.write_bytes(b"\n".join(data) + b"\n")
    return data


def new_log(folder: Path) -> tuple[FileStorage, Signer, Path]:
    """A fresh, empty log in ``folder`` with its key file (bench-only key)."""
    signer = Signer.generate("bench.bordergate.example/log")
    folder.mkdir(parents=True)
    create_log(FileStorage(folder), signer)
    key = folder.with_suffix(".key")
    key.write_text(signer.key_string + "\n")
    key.chmod(0o600)
    return FileStorage(folder), signer, key


def library_rate(data: list[bytes], folder: Path) -> float:
    storage, signer, _ = new_log(folder)
    started = time.perf_counter()
    with Sequencer(storage, signer) as seq:
        futures = [seq.submit(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
        for f in futures:
            f.result()
        size = seq.publish().checkpoint.size
    rate = len(data) / (time.perf_counter() - started)
    assert size == len(data), size
    return rate


def cli_rate(source: Path, n: int, folder: Path) -> float:
    _, _, key = new_log(folder)
    with open(source, "rb") as stdin:
        started = time.perf_counter()
        proc = subprocess.run([BIN, "log", "append", str(folder), "--key-file", str(key)],
                              stdin=stdin, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    if proc.returncode != 0 or proc.stdout.strip().splitlines()[-1] != str(n):
        raise SystemExit(f"log append failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-append-", dir=os.environ.get("BENCH_DIR")))
    try:
        source = work / "entries.txt"
        data = write_entries(source, args.entries)
        library, cli = [], []
        for r in range(args.repeat):  # interleaved: both see the same machine load
            library.append(library_rate(data, work / f"lib-{r}"))
            shutil.rmtree(work / f"lib-{r}")
            os.sync()
            cli.append(cli_rate(source, args.entries, work / f"cli-{r}"))
            shutil.rmtree(work / f"cli-{r}")
            os.sync()
        lib, out = statistics.median(library), statistics.median(cli)
        print(f"{args.entries:,} entries of {ENTRY} bytes, median of {args.repeat}")
        print(f"  library (in process):        {lib:>10,.0f} entries/s")
        print(f"  bordergate log append < file: {out:>9,.0f} entries/s  (whole process; "
              "target >= 350,000)")
        print(f"  ratio cli/library: {out / lib:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

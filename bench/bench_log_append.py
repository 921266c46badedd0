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
  lazy     the same through the ``log`` command group alone (what loading only
           the subcommand that runs gives, issue 16 item 5)
  once     an append of nothing (start-up, imports, opening and publishing the
           log): the CLI's fixed cost, which the lazy loading of subcommands
           (issue 16 item 5) cuts

Prints both rates in entries per wall second and per CPU second (the machine
is shared: CPU seconds drift less under load) and the ratios cli/library (1.0:
the CLI costs nothing over the library); the target is >= 350,000 entries/s for
the CLI.
Run: .venv/bin/python bench/bench_log_append.py [--entries N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
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


def library_rate(data: list[bytes], folder: Path) -> tuple[float, float]:
    """Entries per wall second and per CPU second (every thread of this process)."""
    storage, signer, _ = new_log(folder)
    started, cpu = time.perf_counter(), time.process_time()
    with Sequencer(storage, signer) as seq:
        futures = [seq.submit(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
        for f in futures:
            f.result()
        size = seq.publish().checkpoint.size
    rates = (len(data) / (time.perf_counter() - started),
             len(data) / (time.process_time() - cpu))
    assert size == len(data), size
    return rates


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: ``log append`` run by the ``log`` group alone: what a CLI that loads only the
#: subcommand it runs (issue 16 item 5, lazy loading) will pay.
LOG_GROUP_ONLY = [sys.executable, "-c", "import sys; from bordergate.tlog.commands import app; "
                  "sys.argv[0] = 'bordergate log'; app()"]


def cli_rate(source: Path, n: int, folder: Path, command: list[str] | None = None
             ) -> tuple[float, float]:
    """Entries per wall second and per CPU second of the whole ``log append`` process."""
    _, _, key = new_log(folder)
    with open(source, "rb") as stdin:
        started, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run([*(command or [BIN, "log"]), "append", str(folder),
                               "--key-file", str(key)],
                              stdin=stdin, capture_output=True, text=True, check=False)
        rates = (n / (time.perf_counter() - started), n / (_children_cpu() - cpu))
    if proc.returncode != 0 or proc.stdout.strip().splitlines()[-1] != str(n):
        raise SystemExit(f"log append failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return rates


def fixed_cost(folder: Path) -> float:
    """Seconds of a ``log append`` of nothing: interpreter, imports, opening the log,
    publishing (what the CLI pays once, whatever the input)."""
    _, _, key = new_log(folder)
    started = time.perf_counter()
    subprocess.run([BIN, "log", "append", str(folder), "--key-file", str(key)],
                   stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-append-", dir=os.environ.get("BENCH_DIR")))
    try:
        source = work / "entries.txt"
        data = write_entries(source, args.entries)
        library, cli, fixed, lazy = [], [], [], []
        for r in range(args.repeat):  # interleaved: both see the same machine load
            library.append(library_rate(data, work / f"lib-{r}"))
            shutil.rmtree(work / f"lib-{r}")
            os.sync()
            cli.append(cli_rate(source, args.entries, work / f"cli-{r}"))
            shutil.rmtree(work / f"cli-{r}")
            fixed.append(fixed_cost(work / f"empty-{r}"))
            lazy.append(cli_rate(source, args.entries, work / f"lazy-{r}", LOG_GROUP_ONLY))
            shutil.rmtree(work / f"lazy-{r}")
            os.sync()
            os.sync()
        print(f"{args.entries:,} entries of {ENTRY} bytes, median of {args.repeat}; "
              "entries per wall second (per CPU second)")
        med = {}
        for name, rates in (("library (in process)", library),
                            ("bordergate log append < file", cli),
                            ("  the same, log group only", lazy)):
            med[name] = [statistics.median(r[k] for r in rates) for k in (0, 1)]
            print(f"  {name:<30} {med[name][0]:>10,.0f}/s  ({med[name][1]:,.0f}/CPU s)")
        lib_m, cli_m, lazy_m = med.values()
        once = statistics.median(fixed)
        print(f"  of which once per process (an empty append: start-up, imports, publish): "
              f"{once:.2f} s; the rest runs at "
              f"{args.entries / max(args.entries / cli_m[0] - once, 1e-3):,.0f}/s")
        print(f"  ratio cli/library: {cli_m[0] / lib_m[0]:.2f} wall, {cli_m[1] / lib_m[1]:.2f} "
              f"CPU; log group only {lazy_m[0] / lib_m[0]:.2f} wall, "
              f"{lazy_m[1] / lib_m[1]:.2f} CPU  (target: the cli >= 350,000/s wall)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

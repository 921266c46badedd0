"""Gateway start-up with whole-runtime attestation, cold and warm (issue 13, promise 6).

Workload: the hash-locked runtime of this source tree (built, or reused from
``--runtime DIR`` / the cache under /tmp/bordergate-bench-runtime), about 2,500
standard library and 4,700 site-packages files.  Measured in the same run,
each the median of ``--repeat`` processes:

  bare      the isolated interpreter (``-I -S -B``, caches neutralised as the boot
            does) importing the gateway's CLI and serving modules, no attestation
  cold      the boot (``runtime_boot.py``) with ``--cold``: every file re-hashed,
            then the same imports
  warm      the boot with its stat-keyed hash cache: files stat'ed, not read
  attest-*  the attestation step alone (``--check``), cold and warm
  with-caches  ``bare`` reading the byte-code caches (what neutralising them costs)

Ratios printed against ``bare`` (1.0 = attestation costs nothing).  Neutralising
byte-code caches (every module compiled from source at each start) is in
``bare`` too: it is the price of refusing planted ``.pyc`` files.
Run: .venv/bin/python bench/bench_startup.py   (a few minutes the first time: it builds)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bordergate import runtime_boot
from bordergate.releases.runtime_build import cached_runtime

IMPORTS = ("import bordergate.cli, bordergate.gateway.startup, bordergate.gateway.app, "
           "bordergate.releases.selfcheck, uvicorn, cedarpy")


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def median(command: list[str], repeat: int) -> float:
    return statistics.median(timed(command) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runtime", type=Path, help="a built runtime (build-runtime --out)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    out = args.runtime or cached_runtime(Path("/tmp/bordergate-bench-runtime")).out
    env = out / "env"
    boot = runtime_boot.boot_command(str(env))
    python, flags, script, lock = boot[0], boot[1:6], boot[6], boot[7]
    site = str(env / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
               / "site-packages")
    bare = [python, *flags, "-c", f"import sys; sys.path.append({site!r}); {IMPORTS}"]
    # the boot's command line, then the same imports through a command that only imports
    attested = [python, *flags, script, lock, "--cold", "release", "--help"]
    warm = [python, *flags, script, lock, "release", "--help"]
    check_cold = [python, "-I", "-S", "-B", script, lock, "--cold", "--check"]
    check_warm = [python, "-I", "-S", "-B", script, lock, "--check"]
    bare_help = [python, *flags, "-c", f"import sys; sys.path.append({site!r}); "
                 "sys.argv = ['bordergate', 'release', '--help']; "
                 "from bordergate.cli import main; main()"]
    with_caches = [python, "-I", "-S", "-c", f"import sys; sys.path.append({site!r}); "
                   "sys.argv = ['bordergate', 'release', '--help']; "
                   "from bordergate.cli import main; main()"]
    timed(warm)  # fill the hash cache once
    timed(with_caches)
    results = {
        "bare": median(bare_help, args.repeat),
        "cold": median(attested, args.repeat),
        "warm": median(warm, args.repeat),
        "attest-cold": median(check_cold, args.repeat),
        "attest-warm": median(check_warm, args.repeat),
        "imports-only": median(bare, args.repeat),
        "with-caches": median(with_caches, args.repeat),
    }
    lock_files = json.loads(Path(lock).read_text())["files"]
    print(f"runtime {env}: {sum(len(v) for v in lock_files.values())} files locked")
    for name, seconds in results.items():
        print(f"  {name:<13} {seconds * 1000:8.0f} ms   ratio to bare "
              f"{seconds / results['bare']:5.2f}")


if __name__ == "__main__":
    main()

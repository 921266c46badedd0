"""CLI start-up (issue 16 item 5): what a command costs before it does any work.

Measured in the same run, each the median of ``--repeat`` processes, the cases
interleaved so that a busy machine slows them alike:

  python -c pass             the interpreter alone (the baseline)
  bordergate --help          the root: deferred groups listed by name, none imported
  log checkpoint DIR         one small command on a real log (reads the checkpoint)
  log checkpoint --help      one group loaded, its command's help
  eager imports              every command module imported, as ``bordergate.cli``
                             did before the tree was deferred (for comparison)

Prints each case's wall-clock and CPU time (user + system: the fairer figure on
a shared, busy machine), its difference from ``python -c pass`` and the ratio;
the target is a difference of at most 0.2 s for ``--help`` and ``log checkpoint``.
Run: .venv/bin/python bench/bench_cli_startup.py [--repeat N] [--before OTHER/bin/bordergate]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BORDERGATE = str(Path(sys.executable).with_name("bordergate"))
TARGET_S = 0.2
# as installed for a user: byte-code caches written once and read after (a shell with
# PYTHONDONTWRITEBYTECODE would compile every bordergate module at every start); kept
# under the run's temporary directory, not beside the sources
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
EAGER = ("import bordergate.cli, bordergate.approval_commands, bordergate.log_operator, "
         "bordergate.receipt_commands, bordergate.roster_commands, "
         "bordergate.token_commands, bordergate.custody_commands, "
         "bordergate.audit.commands, bordergate.audit.run_command, "
         "bordergate.gateway.commands, bordergate.gateway.principal_commands, "
         "bordergate.migration.commands, bordergate.releases.commands, "
         "bordergate.residency.commands, bordergate.tlog.commands, "
         "bordergate.tlog.witness_commands, typer.rich_utils")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one process."""
    start, cpu = time.perf_counter(), _cpu()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=_ENV)
    return time.perf_counter() - start, _cpu() - cpu


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--before", metavar="BORDERGATE",
                        help="another install's bordergate script (e.g. the main branch's) "
                        "to measure beside this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        log = Path(tmp) / "log"
        subprocess.run([BORDERGATE, "log", "init", str(log), "--origin", "bench.test/log"],
                       stdout=subprocess.DEVNULL, check=True)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "bordergate --help": [BORDERGATE, "--help"],
            "log checkpoint DIR": [BORDERGATE, "log", "checkpoint", str(log)],
            "log checkpoint --help": [BORDERGATE, "log", "checkpoint", "--help"],
            "eager imports (before)": [sys.executable, "-c", EAGER],
        }
        if args.before:
            cases["before: --help"] = [args.before, "--help"]
            cases["before: log checkpoint"] = [args.before, "log", "checkpoint", str(log)]
        for argv in cases.values():  # warm the byte-code and file caches
            _time(argv)
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, argv in cases.items():
                w, c = _time(argv)
                wall[name].append(w)
                cpu[name].append(c)
    for label, times in (("wall clock", wall), ("CPU (user + system)", cpu)):
        median = {name: statistics.median(t) for name, t in times.items()}
        base = median["python -c pass"]
        print(f"\n{label}, median of {args.repeat} runs each; baseline python -c pass = "
              f"{base * 1000:.0f} ms")
        print(f"{'case':<26}{'ms':>8}{'over pass':>12}{'ratio':>8}")
        for name, value in median.items():
            print(f"{name:<26}{value * 1000:>8.0f}{(value - base) * 1000:>+10.0f}ms"
                  f"{value / base:>8.1f}")
        for name in ("bordergate --help", "log checkpoint DIR"):
            over = median[name] - base
            print(f"target {name}: {over * 1000:.0f} ms over pass "
                  f"({'met' if over <= TARGET_S else 'NOT met'}: <= {TARGET_S * 1000:.0f} ms)")


if __name__ == "__main__":
    main()

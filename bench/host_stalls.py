"""The host's stalls, measured beside a benchmark: when the machine itself runs slow.

On the shared machines these benchmarks run on, the hypervisor now and then
runs the whole virtual machine at a fraction of its speed for tens of
milliseconds while the guest counts the time as its own: a process's CPU time
keeps growing, its work does not (docs/performance.md, eighth pass: both
virtual CPUs at once, a cluster of them about every two seconds, about 6 % of
the time at less than a tenth of the speed, with nothing else running).  No
steal time is reported, so the only way to see a stall is to time a fixed
piece of work.

:class:`StallMonitor` runs a small process that, every 2 ms, times a piece of
pure-Python work calibrated to take about 0.1 ms of CPU (about 5 % of one core),
and records every window in which that work took more than four times its
calibrated CPU time: the host ran slow, not another process (a process that
is merely preempted uses no CPU meanwhile).  :func:`outside` then keeps the
requests whose lifetime overlapped no such window, so that a latency tail the
host made can be told apart from one the server made.  Both are printed; the
target is judged on the whole.

This module must never change what is measured: it only watches beside it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["StallMonitor", "outside"]

_MONITOR = r'''
import sys, time
out, seconds = sys.argv[1], float(sys.argv[2])
def work(n):
    x = 0
    for _ in range(n):
        x += 1
    return x
n = 1000
while True:  # calibrate: about 0.1 ms of CPU
    c = time.thread_time(); work(n); used = time.thread_time() - c
    if used >= 1e-4:
        break
    n *= 2
samples = []
for _ in range(50):
    c = time.thread_time(); work(n); samples.append(time.thread_time() - c)
    time.sleep(0.002)
unit = sorted(samples)[len(samples) // 2]
windows, start, last = [], None, None
end = time.monotonic() + seconds
print("ready", flush=True)
while time.monotonic() < end:
    t = time.monotonic(); c = time.thread_time(); work(n)
    used, now = time.thread_time() - c, time.monotonic()
    if used > 4 * unit:
        if start is None:
            start = t
        last = now
    elif start is not None:
        windows.append((start, last)); start = None
    time.sleep(0.002)
if start is not None:
    windows.append((start, last))
with open(out, "w") as f:
    f.write(f"{unit}\n" + "".join(f"{a:.6f} {b:.6f}\n" for a, b in windows))
'''


class StallMonitor:
    """Watch the host for ``seconds`` from :meth:`start`; :meth:`windows` after."""

    def __init__(self, seconds: float, out: Path) -> None:
        self.seconds, self.out = seconds, out
        self._proc: subprocess.Popen[str] | None = None
        self._started = 0.0

    def start(self) -> None:
        """Start watching (returns once the monitor has calibrated)."""
        self._proc = subprocess.Popen([sys.executable, "-c", _MONITOR, str(self.out),
                                       str(self.seconds)], stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self._proc.stdout.readline()
        self._started = time.monotonic()

    def windows(self) -> list[tuple[float, float]]:
        """The stall windows seen (``time.monotonic`` seconds), once the watch ended."""
        assert self._proc is not None
        self._proc.wait(self.seconds + 30)
        lines = self.out.read_text().splitlines()[1:]
        return [(float(a), float(b)) for a, b in (line.split() for line in lines)]

    def summary(self, windows: list[tuple[float, float]]) -> dict[str, float]:
        """Share of the watch spent in stalls, their count and longest (ms)."""
        spans = [b - a for a, b in windows]
        return {"host_stall_share": round(sum(spans) / self.seconds, 3),
                "host_stalls": len(spans),
                "host_stall_longest_ms": round(max(spans, default=0.0) * 1000, 1)}


def outside(requests: Iterable[tuple[float, float]],
            windows: list[tuple[float, float]]) -> list[float]:
    """Latencies of the requests ``(scheduled, latency)`` (``time.monotonic``
    seconds) whose lifetime overlapped no stall window."""
    kept = []
    for scheduled, latency in requests:
        done = scheduled + latency
        if not any(a < done and scheduled < b for a, b in windows):
            kept.append(latency)
    return kept

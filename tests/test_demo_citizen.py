"""`bordergate demo` as a good citizen of the machine it runs on (issue 16 item 2).

With real processes: a taken port stops the demo before it starts anything and
names the port and the way to move every port; a stranger answering on a
gateway's port never passes for the demo's gateway; SIGTERM, SIGINT and SIGHUP
stop every process the demo started (gateways, sequencers, witnesses, key
services), checked by pid, and leave its ports free.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from bordergate.demo import Demo
from bordergate.demo_ports import DemoPorts, port_is_free
from bordergate.errors import Unavailable
from bordergate.tlog.checkpoint import Checkpoint, sign_checkpoint
from bordergate.tlog.note import Signer

BIN = Path(sys.executable).parent / "bordergate"


def _free_base() -> int:
    """A base port whose every demo port is free now (a different one per call)."""
    for base in range(21000 + (os.getpid() % 50) * 40, 40000, 40):
        if all(port_is_free(p) for p in DemoPorts(base).roles()):
            return base
    raise AssertionError("no free base port")


@pytest.mark.parametrize("offset", [0, 11, 21, 32, 1002],
                         ids=["gateway", "sequencer", "witness", "key-service", "admin"])
def test_a_taken_port_stops_the_demo_before_it_starts_anything(
        tmp_path: Path, offset: int) -> None:
    """Item 2: a port another program listens on is named with what the demo wanted it for
    and how to move every port; the demo exits 3 (unavailable) and has made nothing."""
    base = _free_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + offset))
        taken.listen()
        proc = subprocess.run(
            [str(BIN), "demo", "--data", str(tmp_path / "demo"), "--no-serve"],
            env={**os.environ, "BORDERGATE_DEMO_BASE_PORT": str(base)},
            capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error [port_in_use]: ")
    assert f"port {base + offset} (the " in proc.stderr
    assert "--base-port N" in proc.stderr and "BORDERGATE_DEMO_BASE_PORT=N" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "demo").exists()  # nothing provisioned, nothing started


class _Stranger(BaseHTTPRequestHandler):
    """Another program on the gateway's port: healthy, with a log of its own."""

    checkpoint = sign_checkpoint(Checkpoint("us.bordergate.example/log", 1, b"\0" * 32),
                                 Signer.generate("us.bordergate.example/log"))

    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.path == "/healthz" else self.checkpoint
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Stranger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_stranger_answering_on_a_gateway_port_is_not_taken_for_the_demo_gateway(
        tmp_path: Path, stranger: int) -> None:
    """Item 2: the demo sends its tokens to a gateway only once that gateway served a
    checkpoint signed by the log key this run made; a stranger that is healthy and even
    serves a checkpoint of the same origin is refused (port_taken_by_stranger)."""
    demo = Demo(tmp_path / "demo", base_port=_free_base())
    code_dir = demo.data / "data" / "us"
    code_dir.mkdir(parents=True)
    own = Signer.generate("us.bordergate.example/log")
    (code_dir / "log.vkey").write_text(own.verifier().key_string + "\n")
    demo.urls["us"] = f"http://127.0.0.1:{stranger}"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        demo.procs["us"] = sleeper  # a live process of ours that has not bound the port
        with pytest.raises(Unavailable) as caught:
            demo._wait_healthy("us", tmp_path / "us.log")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert caught.value.code == "port_taken_by_stranger"
    assert f"127.0.0.1:{stranger}" in str(caught.value)
    # and the demo's own checkpoint passes the same check
    demo._check_ours("us", sign_checkpoint(Checkpoint("us.bordergate.example/log", 1,
                                                      b"\0" * 32), own), "here")


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time (/proc) of every live descendant of ``root``."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        started[int(entry)] = fields[19]
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in out:
                out[child] = started[child]
                frontier.append(child)
    return out


def _alive(pid: int, start_time: str) -> bool:
    """Whether the process ``pid`` that started at ``start_time`` still exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] == start_time and fields[0] != "Z"


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo directory for the signal tests: its built runtime is kept between runs."""
    return tmp_path_factory.mktemp("demo-signals") / "demo"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_stops_every_process_the_demo_started(
        demo_data: Path, signum: signal.Signals) -> None:
    """Item 2: the demo, sent SIGTERM, SIGINT or SIGHUP as soon as every one of its
    parties is up (while it is still seeding: a signal may come at any time), exits 128+N
    and leaves no gateway, sequencer, witness or key service behind (checked by pid), and
    every one of its ports is free again."""
    ports = DemoPorts(_free_base())
    proc = subprocess.Popen(
        [str(BIN), "demo", "--data", str(demo_data), "--subjects", "3",
         "--base-port", str(ports.base)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    seen: list[str] = []
    kinds = {(b"gateway", b"serve"), (b"log", b"sequencer"), (b"witness", b"serve"),
             (b"keys", b"serve")}
    every = sorted([(b"gateway", b"serve")] * 3 + [(b"keys", b"serve")] * 3
                   + [(b"log", b"sequencer")] * 3 + [(b"witness", b"serve")] * 2)
    try:
        for line in proc.stdout:  # the gateways start last: then every party is up
            seen.append(line)
            if "gateways up" in line or "serving; press Ctrl-C" in line:
                break
        assert proc.poll() is None, "".join(seen[-40:])
        children = _descendants(proc.pid)
        commands = [Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
                    for p in children if Path(f"/proc/{p}/cmdline").exists()]
        served = [pair for c in commands for pair in itertools.pairwise(c)
                  if pair in kinds]
        assert sorted(served) == every, served
        assert not any(port_is_free(p) for p in ports.roles())  # all of them in use
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failed test: still stop what the demo started
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
        proc.stdout.close()
    assert proc.returncode == 128 + signum, "".join(seen[-20:]) + rest
    assert [p for p, t in children.items() if _alive(p, t)] == []
    deadline = time.monotonic() + 10  # a listener closes as its process ends
    while time.monotonic() < deadline and not all(port_is_free(p) for p in ports.roles()):
        time.sleep(0.2)
    assert [p for p in ports.roles() if not port_is_free(p)] == []

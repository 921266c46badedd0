"""TEST-ONLY helpers: witnesses as real processes, logs in directories, the CLI.

Keys come from fixed seeds and are for tests only; never use them elsewhere.
Every server binds 127.0.0.1 on a free port and is stopped by its fixture.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bordergate.tlog.cosignature import CosignatureSigner, CosignatureVerifier
from bordergate.tlog.logdir import write_key
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import create_log
from bordergate.tlog.storage.fs import FileStorage

BORDERGATE = str(Path(sys.executable).parent / "bordergate")
ORIGIN = "log.test/audited"
# TEST-ONLY seeds.
TEST_ONLY_LOG_SEED = bytes([11] * 32)
TEST_ONLY_WITNESS_SEEDS = (bytes([21] * 32), bytes([22] * 32), bytes([23] * 32))


def log_signer(origin: str = ORIGIN) -> Signer:
    """The test-only log key (fixed seed)."""
    return Signer.from_seed(origin, TEST_ONLY_LOG_SEED)


def witness_signer(number: int) -> CosignatureSigner:
    """Test-only witness key ``number`` (0..2), with the real clock."""
    return CosignatureSigner(f"witness.test/w{number}", TEST_ONLY_WITNESS_SEEDS[number],
                             lambda: int(time.time()))


def make_log(directory: Path, signer: Signer | None = None) -> Path:
    """Create an empty log in ``directory`` with its key file beside it; returns the key file."""
    signer = signer or log_signer()
    storage = FileStorage(directory)
    create_log(storage, signer)
    storage.close()
    key_file = directory.with_name(directory.name + ".key")
    if not key_file.exists():
        write_key(key_file, signer.key_string)
    return key_file


def bordergate(*args: str, stdin: bytes = b"", timeout: float = 120
               ) -> subprocess.CompletedProcess[bytes]:
    """Run the ``bordergate`` command; never raises on a non-zero exit."""
    return subprocess.run([BORDERGATE, *args], input=stdin, capture_output=True,
                          timeout=timeout, check=False)


def free_port() -> int:
    """A TCP port free on loopback right now, never handed out before in this process
    (one set for every test helper: :func:`tests.gateway.deployment.free_port`)."""
    from tests.gateway.deployment import free_port as distinct_free_port

    return distinct_free_port()


def wait_listening(proc: subprocess.Popen[bytes], port: int, err: Path) -> None:
    """Wait until ``proc`` accepts connections on ``port`` (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {err.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server process this test started."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class WitnessServer:
    """`bordergate witness serve` in a subprocess, trusting the given logs."""

    def __init__(self, tmp: Path, number: int, logs: Sequence[Signer]) -> None:
        self.dir = tmp / f"witness{number}"
        self.dir.mkdir(parents=True, exist_ok=True)
        signer = witness_signer(number)
        self.key_file = self.dir / "witness.key"
        self.key_file.write_text(signer.key_string + "\n")  # TEST-ONLY key
        self.key_file.chmod(0o600)
        self.verifier: CosignatureVerifier = signer.verifier()
        self.state = self.dir / "state.db"
        self.evidence = self.dir / "evidence"
        self.logs = [f"{s.name}={s.verifier().key_string}" for s in logs]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def option(self) -> str:
        """The ``--witness URL=VKEY`` value for this witness."""
        return f"{self.url}={self.verifier.key_string}"

    def start(self, *, same_port: bool = False) -> WitnessServer:
        """Start the process (again on its last port with ``same_port``)."""
        if not (same_port and self.port):
            self.port = free_port()
        args = [BORDERGATE, "witness", "serve", "--key-file", str(self.key_file),
                "--state", str(self.state), "--port", str(self.port),
                "--evidence-dir", str(self.evidence)]
        for log in self.logs:
            args += ["--log", log]
        err = self.dir / "stderr"
        with err.open("ab") as handle:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=handle)
        wait_listening(self.proc, self.port, err)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

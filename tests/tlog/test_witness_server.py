"""The witness as a real process on loopback: statuses, durability, crashes (promise 5).

Each test starts `bordergate witness serve` in a subprocess on a free port with
its state in a temporary SQLite file, talks to it over HTTP, and reads the
state file afterwards to check that refused requests changed nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bordergate.errors import Conflict, InvalidInput, NotFound, Unavailable
from bordergate.tlog.checkpoint import open_checkpoint
from bordergate.tlog.cosignature import CosignatureVerifier
from bordergate.tlog.evidence import verify_evidence
from bordergate.tlog.note import add_signatures
from bordergate.tlog.witness import LogState, format_add_checkpoint
from bordergate.tlog.witness_client import (
    Cosigned,
    StaleSize,
    add_checkpoint_url,
    request_cosignature,
    request_cosignature_sync,
)
from bordergate.tlog.witness_sqlite import SqliteWitnessState
from tests.tlog.memory_log import (
    ORIGIN,
    TEST_ONLY_OTHER_LOG_SEED,
    MemoryLog,
    fixed_log_signer,
    fixed_witness_signer,
)

BORDERGATE = str(Path(sys.executable).parent / "bordergate")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WitnessProcess:
    """`bordergate witness serve` in a subprocess, restartable on the same state."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.key_file = tmp / "witness.key"
        signer = fixed_witness_signer()
        self.key_file.write_text(signer.key_string + "\n")  # TEST-ONLY key
        self.key_file.chmod(0o600)
        self.verifier = signer.verifier()
        self.state = tmp / "witness.db"
        self.evidence = tmp / "evidence"
        self.proc: subprocess.Popen[bytes] | None = None  # one at a time
        self.port = 0

    @property
    def url(self) -> str:
        return add_checkpoint_url(f"http://127.0.0.1:{self.port}")

    def start(self, crash_at: str | None = None) -> None:
        """Start the witness; with ``crash_at``, through the TEST-ONLY crashing launcher."""
        self.port = _free_port()
        vkey = fixed_log_signer().verifier().key_string
        options = ["--key-file", str(self.key_file), "--state", str(self.state),
                   "--log", f"{ORIGIN}={vkey}", "--port", str(self.port),
                   "--evidence-dir", str(self.evidence)]
        command = [BORDERGATE, "witness", "serve"]
        if crash_at:
            command = [sys.executable, "-m", "tests.tlog.crashing_witness", crash_at]
        err_file = (self.tmp / "witness.err").open("ab")
        self.proc = subprocess.Popen(
            [*command, *options], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=err_file,
        )  # fmt: skip
        err_file.close()  # the child keeps its own descriptor
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.tmp / "witness.err").read_text(errors="replace")
                raise RuntimeError(f"witness exited: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("witness did not start")

    def wait_exit(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stored(self) -> LogState | None:
        store = SqliteWitnessState(self.state)
        try:
            return store.get(ORIGIN)
        finally:
            store.close()


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[WitnessProcess]:
    """A running witness process trusting the test log."""
    proc = WitnessProcess(tmp_path)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A keep-alive HTTP client."""
    with httpx.Client(timeout=30) as client:
        yield client


def post(http: httpx.Client, witness: WitnessProcess, body: bytes) -> httpx.Response:
    return http.post(witness.url, content=body)


def cosign(
    http: httpx.Client, witness: WitnessProcess, log: MemoryLog, old: int
) -> Cosigned | StaleSize:
    return request_cosignature_sync(
        http, witness.url, log.checkpoint(), old, log.proof(old), verifier=witness.verifier
    )


def verify_by_hand(witness: CosignatureVerifier, line: bytes, note: bytes) -> int:
    """Independent cosignature/v1 check from the spec text; returns the timestamp."""
    text = note[: note.rindex(b"\n\n") + 1]
    assert line.startswith("\u2014 witness.test/w1 ".encode())
    blob = base64.b64decode(line.split(b" ")[2])
    key_id = hashlib.sha256(b"witness.test/w1\n\x04" + witness.public_key).digest()[:4]
    assert blob[:4] == key_id and len(blob) == 4 + 8 + 64
    timestamp = struct.unpack(">Q", blob[4:12])[0]
    signed = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text
    Ed25519PublicKey.from_public_bytes(witness.public_key).verify(blob[12:], signed)
    return timestamp


def test_cosign_over_http(witness: WitnessProcess, http: httpx.Client) -> None:
    """Promise 5: the witness cosigns over HTTP; the cosignature checks by hand and merges."""
    log = MemoryLog(fixed_log_signer()).append_n(5)
    response = post(http, witness, format_add_checkpoint(0, [], log.checkpoint()))
    assert response.status_code == 200
    assert verify_by_hand(witness.verifier, response.content, log.checkpoint()) > 1_600_000_000
    assert witness.stored() == LogState(5, log.root(5), log.checkpoint())
    log.append_n(9)
    result = cosign(http, witness, log, 5)
    assert isinstance(result, Cosigned)
    merged = add_signatures(log.checkpoint(), result.signatures)
    opened = open_checkpoint(merged, log.signer.verifier(), cosigners=[witness.verifier])
    assert [c.name for c in opened.cosignatures] == ["witness.test/w1"]


def test_idempotent_and_stale(witness: WitnessProcess, http: httpx.Client) -> None:
    """Promise 5: the same checkpoint is re-cosigned; a stale old size gets 409 and the size."""
    log = MemoryLog(fixed_log_signer()).append_n(7)
    assert isinstance(cosign(http, witness, log, 0), Cosigned)
    assert isinstance(cosign(http, witness, log, 7), Cosigned)
    log.append_n(3)
    response = post(http, witness, format_add_checkpoint(3, log.proof(3), log.checkpoint()))
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("text/x.tlog.size")
    assert response.content == b"7\n"
    assert cosign(http, witness, log, 0) == StaleSize(7)
    assert witness.stored() == LogState(7, log.root(7), log.checkpoint(7))
    assert isinstance(cosign(http, witness, log, 7), Cosigned)  # re-sent from the size


def test_refusals_change_nothing(witness: WitnessProcess, http: httpx.Client) -> None:
    """Bad input: 400, 403, 404, 409, 413, 422 each leave the witness state unchanged."""
    log = MemoryLog(fixed_log_signer()).append_n(5)
    assert isinstance(cosign(http, witness, log, 0), Cosigned)
    before = witness.stored()
    log.append_n(6)
    bad_proof = [bytes(32)] * len(log.proof(5))
    other = MemoryLog(fixed_log_signer("log.test/unknown")).append_n(11)
    impostor = MemoryLog(fixed_log_signer(ORIGIN, TEST_ONLY_OTHER_LOG_SEED)).append_n(11)
    fork = log.fork(4, b"fork").append_n(1, b"fork")
    cases = {
        400: format_add_checkpoint(5, log.proof(5), log.checkpoint()).replace(b"old 5", b"old 05"),
        403: format_add_checkpoint(5, impostor.proof(5), impostor.checkpoint()),
        404: format_add_checkpoint(5, other.proof(5), other.checkpoint()),
        409: format_add_checkpoint(5, [], fork.checkpoint()),
        413: b"old 5\n" + b"A" * (70 * 1024),
        422: format_add_checkpoint(5, bad_proof, log.checkpoint()),
    }
    for status, body in cases.items():
        response = post(http, witness, body)
        assert response.status_code == status, (status, response.text)
        assert witness.stored() == before, status
    chunked = http.post(witness.url, content=iter([b"old 5\n"] + [b"A" * 8192] * 10))
    assert chunked.status_code == 413
    garbage = http.post(witness.url, content=os.urandom(2048))
    assert garbage.status_code == 400
    assert http.get(witness.url).status_code == 405
    assert witness.stored() == before
    # the 409 for a second root of size 5 left evidence that verifies offline
    (evidence_file,) = witness.evidence.iterdir()
    assert "size 5" in verify_evidence(evidence_file.read_bytes()).describe()


def test_async_client(witness: WitnessProcess) -> None:
    """Promise 5: the async client gets cosignatures, stale sizes and clear refusals."""
    log = MemoryLog(fixed_log_signer()).append_n(3)
    other = MemoryLog(fixed_log_signer("log.test/unknown")).append_n(3)

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            url, v = witness.url, witness.verifier
            first = await request_cosignature(client, url, log.checkpoint(), 0, [], verifier=v)
            assert isinstance(first, Cosigned)
            log.append_n(2)
            stale = await request_cosignature(client, url, log.checkpoint(), 0, [], verifier=v)
            assert stale == StaleSize(3)
            again = await request_cosignature(
                client, url, log.checkpoint(), 3, log.proof(3), verifier=v
            )
            assert isinstance(again, Cosigned)
            with pytest.raises(NotFound):
                await request_cosignature(client, url, other.checkpoint(), 0, [])
            with pytest.raises(InvalidInput) as err:  # a proof between equal sizes is wrong
                await request_cosignature(client, url, log.checkpoint(), 5, [bytes(32)])
            assert err.value.code == "witness_bad_proof"
            log.append_n(4)
            with pytest.raises(InvalidInput) as err:
                await request_cosignature(client, url, log.checkpoint(), 5, [bytes(32)] * 3)
            assert err.value.code == "witness_bad_proof"

    asyncio.run(run())


def test_unreachable_witness(http: httpx.Client) -> None:
    """Promise 5: a witness that cannot be reached is Unavailable, not a crash."""
    log = MemoryLog(fixed_log_signer()).append_n(1)
    url = add_checkpoint_url(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(Unavailable):
        request_cosignature_sync(http, url, log.checkpoint(), 0, [])


@pytest.mark.parametrize("crash_at", ["before_store", "after_store"])
def test_crash_never_cosigns_inconsistent(tmp_path: Path, crash_at: str) -> None:
    """Promise 5: killed before or after storing, the witness never cosigns two forks."""
    honest = MemoryLog(fixed_log_signer()).append_n(5)
    witness = WitnessProcess(tmp_path)
    witness.start()
    with httpx.Client(timeout=30) as http:
        assert isinstance(cosign(http, witness, honest, 0), Cosigned)
    witness.stop()

    branch_a = MemoryLog(fixed_log_signer()).append_n(5).append_n(3, b"a")
    branch_b = branch_a.fork(5, b"b").append_n(3, b"b")
    witness.start(crash_at=crash_at)
    with httpx.Client(timeout=30) as http, pytest.raises(Unavailable):
        cosign(http, witness, branch_a, 5)  # the process dies without answering
    assert witness.wait_exit() == 137
    stored = witness.stored()
    if crash_at == "before_store":
        assert stored == LogState(5, honest.root(5), honest.checkpoint())
    else:
        assert stored == LogState(8, branch_a.root(8), branch_a.checkpoint())

    witness.start()
    cosigned_roots = set()
    with httpx.Client(timeout=30) as http:
        for log in (branch_a, branch_b):
            for old in (5, 8):
                try:
                    result = cosign(http, witness, log, old)
                except InvalidInput:
                    continue  # 422: the proof does not match the witness's state
                except Conflict as exc:
                    assert exc.code == "witness_conflict"
                    continue
                if isinstance(result, Cosigned):
                    cosigned_roots.add(log.root(8))
    witness.stop()
    # exactly one of the two size-8 histories was ever cosigned
    assert len(cosigned_roots) == 1
    final = witness.stored()
    assert final is not None and final.size == 8 and final.root in cosigned_roots
    if crash_at == "after_store":
        assert cosigned_roots == {branch_a.root(8)}


def test_witness_init_command(tmp_path: Path) -> None:
    """Promise 5: `witness init` writes a 0600 key and prints its cosignature/v1 vkey last."""
    key_file = tmp_path / "w.key"
    done = subprocess.run(
        [BORDERGATE, "witness", "init", "--key-file", str(key_file), "--name", "w.test/x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    vkey = done.stdout.strip().splitlines()[-1]
    verifier = CosignatureVerifier.from_key_string(vkey)
    assert verifier.name == "w.test/x"
    assert key_file.read_text().startswith("PRIVATE+KEY+w.test/x+")
    again = subprocess.run(
        [BORDERGATE, "witness", "init", "--key-file", str(key_file), "--name", "w.test/x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_serve_rejects_bad_config(tmp_path: Path) -> None:
    """Bad input: `witness serve` with a key named unlike the origin exits 2 with a reason."""
    proc = WitnessProcess(tmp_path)
    vkey = fixed_log_signer().verifier().key_string
    done = subprocess.run(
        [BORDERGATE, "witness", "serve", "--key-file", str(proc.key_file), "--state",
         str(proc.state), "--log", f"log.test/elsewhere={vkey}", "--port", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not the origin" in done.stderr

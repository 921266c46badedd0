"""Benchmark: C2SP tlog-witness add-checkpoint requests per second on one core.

Starts one single-threaded uvicorn server process serving the real witness
(SQLite state, synchronous=FULL; concurrent requests share a durable commit,
every request is answered only after its state is durable) and, on the same
server, a bare Starlette endpoint that reads the body and returns a constant:
the baseline.  Eight httpx client processes (one per log, keep-alive) each
send a chain of growing, consistent checkpoints with real consistency proofs,
so every request verifies a log signature and a proof, is stored and cosigned;
the baseline phase sends the same bodies to the constant endpoint.

Two figures per phase: the wall-clock rate, which on a small machine is
limited by the client processes sharing the CPUs, and the server's own
capacity on one core, requests per CPU-second of the server process (read from
/proc), which is what "requests/s on one core" means.  Target (issue 3): at
least 500 add-checkpoint requests/s on one core.  Bounded: about 5 s per phase.

    .venv/bin/python bench/bench_witness.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bordergate.tlog.checkpoint import Checkpoint, sign_checkpoint
from bordergate.tlog.merkle import consistency_proof, leaf_hash, node_hash
from bordergate.tlog.note import Signer
from bordergate.tlog.witness import format_add_checkpoint

LOGS = 8
CLIENTS = LOGS  # one client process per log: a log's checkpoints go in order
CHAIN = 1500  # checkpoints per log (upper bound on requests per log)
STEP = 3  # entries added between checkpoints
PHASE_SECONDS = 4.0

# BENCH-ONLY fixed seeds; never use these keys for anything real.
WITNESS_SEED = bytes([42] * 32)


def log_signer(i: int) -> Signer:
    return Signer.from_seed(f"bench.log/{i}", bytes([i + 1] * 32))


def serve(port: int, state: str) -> None:
    """Server process: the witness and the constant endpoint on one uvicorn worker."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from bordergate.tlog.cosignature import CosignatureSigner
    from bordergate.tlog.witness import Witness
    from bordergate.tlog.witness_server import witness_routes
    from bordergate.tlog.witness_sqlite import SqliteWitnessState

    signer = CosignatureSigner("bench.witness/w", WITNESS_SEED, lambda: int(time.time()))
    logs = {log_signer(i).name: [log_signer(i).verifier()] for i in range(LOGS)}
    witness = Witness(signer, logs, SqliteWitnessState(state))

    async def constant(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse("ok\n")

    app = Starlette(
        routes=[*witness_routes(witness), Route("/constant", constant, methods=["POST"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def chain_bodies(i: int) -> list[bytes]:
    """The add-checkpoint bodies of one log growing STEP entries at a time."""
    signer = log_signer(i)
    levels: list[list[bytes]] = [[leaf_hash(b"bench-%d-%d" % (i, n)) for n in range(CHAIN * STEP)]]
    while len(levels[-1]) > 1:
        prev = levels[-1]
        levels.append([node_hash(prev[k], prev[k + 1]) for k in range(0, len(prev) - 1, 2)])

    def node(level: int, index: int) -> bytes:
        return levels[level][index]

    def root(size: int) -> bytes:
        from bordergate.tlog.merkle import range_hash

        return range_hash(0, size, node)

    bodies = []
    old = 0
    for k in range(1, CHAIN + 1):
        size = k * STEP
        note = sign_checkpoint(Checkpoint(signer.name, size, root(size)), signer)
        proof = consistency_proof(old, size, node) if old else []
        bodies.append(format_add_checkpoint(old, proof, note))
        old = size
    return bodies


def client(port: int, path: str, log_index: int) -> None:
    """Client process: send one log's chain in order until the phase time is up."""
    bodies = chain_bodies(log_index)
    print("ready", flush=True)
    sys.stdin.readline()  # wait for "go" so that every client starts together
    count = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        start = time.perf_counter()
        deadline = start + PHASE_SECONDS
        for body in bodies:
            if time.perf_counter() > deadline:
                break
            response = http.post(path, content=body)
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
            count += 1
        elapsed = time.perf_counter() - start
    print(f"{count} {elapsed}", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(port: int, path: str, server: int) -> tuple[int, float, float]:
    """Run CLIENTS client processes against ``path``; (requests, seconds, server CPU s)."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--client", str(port), path, str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(CLIENTS)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("a client failed to start")
    cpu_before = cpu_seconds(server)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    total, longest = 0, 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=PHASE_SECONDS + 60)
        if proc.returncode != 0:
            raise SystemExit(f"a client failed on {path}")
        count, elapsed = out.split()
        total += int(count)
        longest = max(longest, float(elapsed))
    return total, longest, cpu_seconds(server) - cpu_before


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--client":
        client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        state = str(Path(tmp) / "witness.db")
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), state])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("server did not start") from None
                    time.sleep(0.05)
            phase(port, "/constant", server.pid)  # warm-up
            n_const, t_const, cpu_const = phase(port, "/constant", server.pid)
            n_wit, t_wit, cpu_wit = phase(port, "/add-checkpoint", server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)
    const_rate, wit_rate = n_const / t_const, n_wit / t_wit
    const_core, wit_core = n_const / cpu_const, n_wit / cpu_wit
    print(f"server: one single-threaded uvicorn process; {CLIENTS} httpx client processes")
    print("                                   wall-clock rate     per server CPU-second")
    print(f"constant endpoint (baseline):   {const_rate:10,.0f} req/s {const_core:14,.0f} req/s")
    print(f"witness add-checkpoint:         {wit_rate:10,.0f} req/s {wit_core:14,.0f} req/s")
    ratios = f"{wit_rate / const_rate:10.2f}       {wit_core / const_core:14.2f}"
    print(f"ratio witness / constant:       {ratios}")
    verdict = "met" if wit_core >= 500 else "NOT met"
    print(f"target >= 500 add-checkpoint requests/s on one core: {verdict} ({wit_core:,.0f})")


if __name__ == "__main__":
    main()

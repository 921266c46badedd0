"""Benchmark: the cost of sovereignty on the read path of one gateway.

Measures, on loopback, against real uvicorn processes:

* the throughput of an authorized, policy-decided, decrypted and durably
  logged read of one record (5 fields, 3 classes) through ``bordergate
  gateway serve``;
* the throughput of a bare Starlette endpoint on uvicorn reading the same
  record from the same SQLite file with no auth, policy, decryption or log
  (the baseline, measured in the same run).  Both servers run the same uvicorn
  configuration (``auto``: httptools and uvloop when installed, as they are
  with bordergate's dependencies; printed as ``server``).  The gateway answers
  this route on its direct ASGI path (``gateway.app.GatewayApp``), not through
  Starlette's route table, while the baseline is a plain Starlette route;
* the p99 latency of the gateway read at a fixed 500 reads/s (open loop,
  latency measured from each request's scheduled time).

The load generator is ``wrk`` (Debian package) when installed, else a
multi-connection httpx generator in a separate process.  Bounded: about 40 s.
Targets (issue 5): ratio >= 0.5, >= 2,000 reads/s, p99 at 500/s < 20 ms.

Every gateway answer carries a signed receipt (issue 12, item 5: one Ed25519
signature per read); the bench checks it and prints, measured in this run, how
many receipts one core signs per second (``receipt_issues_per_s``, the whole
``ReceiptSigner.issue``: canonical encoding, salted digest, signature) and bare
Ed25519 signatures per second, and the share of the gateway's time that
receipts take at the measured read rate.  ``--compare-receipts`` also measures
the same gateway with receipts switched off from the outside
(``bench/gateway_without_receipts.py``) and prints the ratio.

Usage: .venv/bin/python bench/bench_gateway.py [--sequencer-process] [--compare-receipts]
(``--sequencer-process``: the log's sequencer runs as its own process, as in
docs/scale-out.md, instead of inside the gateway.)
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.gateway.auth import TokenIssuer, load_private_key
from bordergate.gateway.startup import provision
from bordergate.policy.entities import Principal

DURATION = 8.0
WARMUP = 2.0
CONNECTIONS = 32
FIXED_RATE = 500
FIXED_SECONDS = 5.0
FIELDS = "handle,email,phone,created_at,government_id"  # public x2, protected x2, restricted
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path, sequencer_port: int | None = None) -> Path:
    port = free_port()
    remote = (f'sequencer_url = "http://127.0.0.1:{sequencer_port}"\n'
              'sequencer_token_file = "us/sequencer.token"\n') if sequencer_port else ""
    (root / "bordergate.toml").write_text(f"""
[deployment]
name = "bench"
profile = "development"
[jurisdictions.us]
custodian = "bench custodian"
listen = "127.0.0.1:{port}"
store = "sqlite:us/records.db"
keys = {{ backend = "file", path = "us/kek.json" }}
[jurisdictions.us.issuer]
issuer = "https://issuer.bench"
public_keys = ["us/issuer.pub"]
private_key_file = "us/issuer.pem"
[jurisdictions.us.log]
storage = "us/log"
origin = "us.bench/log"
key_file = "us/log.key"
pseudonym_secret_file = "us/pseudonym.secret"
{remote}""")
    return root / "bordergate.toml"


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server at {url} exited")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


BASELINE = '''
import sqlite3, sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
db, port = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db, check_same_thread=False)
SQL = ("SELECT r.subject_id, f.field, f.value FROM records r LEFT JOIN record_fields f "
       "ON f.collection = r.collection AND f.record_id = r.record_id "
       "AND f.field IN (?,?,?,?,?) WHERE r.collection = ? AND r.record_id = ?")
async def read(request):
    names = request.query_params["fields"].split(",")
    rows = conn.execute(SQL, (*names, request.path_params["collection"],
                              request.path_params["record_id"])).fetchall()
    return JSONResponse({"fields": {f: v.hex() for _, f, v in rows if f}})
app = Starlette(routes=[Route("/v1/{collection}/{record_id}", read)])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            http="auto", loop="auto")
'''


def run_wrk(url: str, token: str | None, seconds: float) -> float:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    header = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script.write_text(header)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "-s", str(script), url],
            capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    finally:
        script.unlink()
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} failed requests:\n{out}")
    assert match, out
    return float(match.group(1))


async def _closed_loop(url: str, headers: dict[str, str], seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await client.get(url)
                assert r.status_code == 200, r.text
                done += 1
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return done


def run_httpx(url: str, token: str | None, seconds: float) -> float:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()
    done = asyncio.run(_closed_loop(url, headers, seconds))
    return done / (time.perf_counter() - started)


async def _fixed_rate(url: str, headers: dict[str, str]) -> list[float]:
    """Open loop: requests scheduled at FIXED_RATE/s over keep-alive connections;
    latency counts from each request's scheduled time (no coordinated omission)."""
    parts = httpx.URL(url)
    target = parts.raw_path.decode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"GET {target} HTTP/1.1\r\nHost: {parts.host}\r\n{head}\r\n").encode()
    total = int(FIXED_RATE * FIXED_SECONDS)
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        while (scheduled := await queue.get()) is not None:
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            assert b" 200 " in status, status
            latencies.append(time.perf_counter() - scheduled)
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    start = time.perf_counter() + 0.2
    for i in range(total):
        scheduled = start + i / FIXED_RATE
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(scheduled)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies


def throughput(url: str, token: str | None) -> float:
    measure = run_wrk if shutil.which("wrk") else run_httpx
    measure(url, token, WARMUP)
    return measure(url, token, DURATION)


def receipt_rates(values: dict[str, str]) -> tuple[float, float]:
    """Receipts issued and bare Ed25519 signatures per second on one core, now."""
    from bordergate.receipts import ReceiptSigner
    from bordergate.tlog.note import Signer

    signer = Signer.generate("us.bench-receipts")
    receipts = ReceiptSigner(signer, "us")
    entry = b"x" * 1500  # about an access entry of five fields
    rates = []
    for issue in (lambda i: receipts.issue(
            origin="us.bench/log", index=i, entry=entry, action="read", collection="users",
            fields=list(values), values={"fields": values}),
                  lambda i: signer.sign(entry)):
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            issue(n)
            n += 1
        rates.append(n / (time.perf_counter() - started))
    return rates[0], rates[1]


def start_gateway(config: Path, url: str, *, receipts: bool) -> subprocess.Popen[bytes]:
    command = [str(BIN / "bordergate")] if receipts else [
        sys.executable, str(Path(__file__).with_name("gateway_without_receipts.py"))]
    gateway = subprocess.Popen([*command, "gateway", "serve", "--config", str(config),
                                "--jurisdiction", "us", "--unreviewed"],
                               stdout=subprocess.DEVNULL)
    wait_up(url + "/healthz", gateway)
    return gateway


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(20)


def main() -> None:
    separate = "--sequencer-process" in sys.argv
    compare = "--compare-receipts" in sys.argv
    root = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    sequencer_port = free_port() if separate else None
    config = write_config(root, sequencer_port)
    deployment = load_config(config)
    provision(deployment)
    us = deployment.jurisdiction("us")
    assert us.issuer.private_key_file is not None
    issuer = TokenIssuer(load_private_key(us.issuer.private_key_file.read_bytes()),
                         us.issuer.issuer)
    local = Principal("bench-reader", "ttus", "local", "us", frozenset({"engineer"}))
    token = issuer.issue(local, audience="us", now=time.time(), ttl=3600)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if sequencer_port is not None:
            sequencer = subprocess.Popen(
                [str(BIN / "bordergate"), "log", "sequencer", us.log.storage, "--token-file",
                 str(root / "us/sequencer.token"), "--key-file", str(us.log.key_file),
                 "--port", str(sequencer_port)], stdout=subprocess.DEVNULL)
            procs.append(sequencer)
            wait_up(f"http://127.0.0.1:{sequencer_port}/", sequencer)
        gateway = start_gateway(config, us.public_url, receipts=True)
        procs.append(gateway)
        auth = {"Authorization": f"Bearer {token}"}
        subject = httpx.post(us.public_url + "/v1/subjects", headers=auth).json()["subject"]
        values = {"handle": "benchy", "email": "bench@example.test", "phone": "+15550100",
                  "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-BENCH-1"}
        r = httpx.put(f"{us.public_url}/v1/users/{subject}", params={"purpose": "operations"},
                      headers=auth, json={"subject": subject, "values": values})
        assert r.status_code == 200, r.text
        path = f"/v1/users/{subject}?fields={FIELDS}&purpose=operations"
        check = httpx.get(us.public_url + path, headers=auth).json()
        assert check["fields"] == values and check["outcome"] == "allow", check
        assert check["receipt"]["fields"] == sorted(values), check  # one receipt per read

        db = us.store.removeprefix("sqlite:")
        port = free_port()
        baseline = subprocess.Popen([sys.executable, "-c", BASELINE, db, str(port)],
                                    stdout=subprocess.DEVNULL)
        procs.append(baseline)
        base_url = f"http://127.0.0.1:{port}"
        wait_up(base_url + "/", baseline)
        assert len(httpx.get(base_url + path).json()["fields"]) == 5

        gateway_rate = throughput(us.public_url + path, token)
        bare_rate = throughput(base_url + path, None)
        latencies = sorted(asyncio.run(_fixed_rate(us.public_url + path, auth)))
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        issues_per_s, signs_per_s = receipt_rates(values)
        without_rate = None
        if compare:
            stop(gateway)
            procs.remove(gateway)
            plain = start_gateway(config, us.public_url, receipts=False)
            procs.append(plain)
            assert "receipt" not in httpx.get(us.public_url + path, headers=auth).json()
            without_rate = throughput(us.public_url + path, token)
        entries = sqlite3.connect(db).execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(root, ignore_errors=True)
    generator = f"wrk -t1 -c{CONNECTIONS}" if shutil.which("wrk") else "httpx"
    server = "uvicorn " + ("+".join(
        name for name in ("httptools", "uvloop") if importlib.util.find_spec(name)) or "h11")
    print(json.dumps({
        "sequencer": "separate process" if separate else "in-process",
        "load_generator": generator, "server": server, "cpus": os.cpu_count(), "records": entries,
        "gateway_reads_per_s": round(gateway_rate), "bare_reads_per_s": round(bare_rate),
        "ratio": round(gateway_rate / bare_rate, 3),
        "p50_ms_at_500_per_s": round(p50, 2), "p99_ms_at_500_per_s": round(p99, 2),
        "receipt_issues_per_s": round(issues_per_s),
        "ed25519_signs_per_s": round(signs_per_s),
        "receipt_share_of_gateway_time": round(gateway_rate / issues_per_s, 3),
        **({"gateway_reads_per_s_without_receipts": round(without_rate),
            "with_over_without_receipts": round(gateway_rate / without_rate, 3)}
           if without_rate else {}),
    }, indent=2))
    print(f"authorized+logged read: {gateway_rate:,.0f}/s vs bare {bare_rate:,.0f}/s "
          f"-> ratio {gateway_rate / bare_rate:.2f} (target >= 0.5, >= 2,000/s); "
          f"p99 at {FIXED_RATE}/s: {p99:.1f} ms (target < 20 ms); receipts: "
          f"{issues_per_s:,.0f} issued/s ({signs_per_s:,.0f} Ed25519 signs/s), "
          f"{gateway_rate / issues_per_s:.1%} of the gateway's time at its read rate"
          + (f"; with/without receipts {gateway_rate / without_rate:.2f}" if without_rate
             else ""))


if __name__ == "__main__":
    main()

"""Benchmark: the cost of sovereignty on the read path of one gateway.

Measures, on loopback, against real uvicorn processes:

* the throughput of an authorized, policy-decided, decrypted and durably
  logged read of a record (5 fields, 3 classes) chosen uniformly among
  ``SUBJECTS`` (1,000) subjects, through ``bordergate gateway serve``, with
  the log's sequencer in the gateway process and then as its own process
  (the log operator, docs/scale-out.md: the gateway appends with its
  credential and holds no log key), on the same store and log;
* the throughput of a bare Starlette endpoint on uvicorn reading the same
  record from the same SQLite file with no auth, policy, decryption or log
  (the baseline, measured in the same run, just before and just after each
  gateway row: on a shared machine the load drifts, and each ratio compares
  the gateway with the mean of its two neighbours in time).
  Both servers run the same uvicorn configuration (``auto``: httptools and
  uvloop when installed, as they are with bordergate's dependencies; printed
  as ``server``).  The gateway answers this route on its direct ASGI path
  (``gateway.app.GatewayApp``), not through Starlette's route table, while the
  baseline is a plain Starlette route;
* the p99 latency of the gateway read at a fixed 500 reads/s (open loop,
  latency measured from each request's scheduled time), and the bare server's
  at the same rate right after; with each, the host's stalls watched meanwhile
  (``bench/host_stalls.py``: the share of the run the whole machine ran at a
  fraction of its speed) and the p99 of the reads that overlapped none of them.

The load generator is ``wrk`` (Debian package) when installed, else a
multi-connection httpx generator in a separate process.  Each run first reads
every subject once (with a key service: each subject's data key is released
once), then warms up, then measures: the steady state.  Bounded: about four
minutes (two with ``--without-key-service``).
Targets (issue 5): ratio >= 0.5, >= 2,000 reads/s, p99 at 500/s < 20 ms;
(issue 12): ratio >= 0.45 with the separate sequencer; (issue 13): ratio >= 0.4
with the key service holding the KEKs and the gateway's data-key cache on
(lifetime ``KEY_CACHE_SECONDS``, stated in the output), printed with the
configuration's default lifetime and with the cache off too, and the key
service's releases (unwraps) per second per core (its CPU per read with the
cache off, where every read is one release with its ``key-access`` entry).
Gateway start-up with the runtime attestation: ``bench/bench_startup.py``.

Every answer carries a signed receipt (issue 12, item 5: one Ed25519 signature
per read); the bench checks one and prints, measured in this run, how many
receipts one CPU second issues (``receipt_issues_per_s``: canonical
encoding, salted digest, leaf hash, signature), bare Ed25519 signatures per
second, and each row's ``receipt_share_of_gateway_cpu`` (a receipt's CPU over the
gateway's CPU per read).  A serving gateway has its reads' signatures made by its
receipt helper process (``gateway.signing``); each row prints that child's CPU
per read apart (``receipt_helper_cpu_ms_per_read``), so the gateway's own and
the helper's add up to what a read costs.

Usage: .venv/bin/python bench/bench_gateway.py [--without-key-service] [--compare-receipts]
(``--without-key-service`` skips the two key-service rows: the log operator's
rows alone, in about half the time; ``--compare-receipts`` adds the separate
sequencer's row with receipts switched off from the outside,
``bench/gateway_without_receipts.py``)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bordergate.config import load_config
from bordergate.gateway.auth import TokenIssuer, load_private_key
from bordergate.gateway.startup import provision
from bordergate.policy.entities import Principal
from host_stalls import StallMonitor, outside

DURATION = 8.0
WARMUP = 2.0
CONNECTIONS = 32
FIXED_RATE = 500
FIXED_SECONDS = 5.0
FIELDS = "handle,email,phone,created_at,government_id"  # public x2, protected x2, restricted
SUBJECTS = 1000
BIN = Path(sys.executable).parent
# The gateway's data-key cache lifetimes in the key-service runs: the headline (a key
# released for a logged read serves that subject's reads for at most this long; it is
# renewed, in the background, by a read in the last quarter of its life) and the
# configuration's default, printed for information, as is the cache off.
KEY_CACHE_SECONDS = 60
KEY_CACHE_DEFAULT = 10


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path) -> Path:
    port = free_port()
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
""")
    return root / "bordergate.toml"


def operated_config(config: Path, sequencer_port: int) -> Path:
    """The same deployment with the log operator's sequencer process: the gateway
    names the verifier key and its credential, the sequencer table the log key."""
    text = config.read_text().replace(
        'key_file = "us/log.key"\n',
        'vkey_file = "us/log.vkey"\n'
        f'sequencer = {{ url = "http://127.0.0.1:{sequencer_port}", '
        'credential_file = "us/us-gw-1.cred" }\n')
    text += (f'[jurisdictions.us.sequencer]\nlisten = "127.0.0.1:{sequencer_port}"\n'
             'key_file = "us/log.key"\ncredentials_file = "us/appenders.txt"\n')
    operated = config.with_name("operated.toml")
    operated.write_text(text)
    provision(load_config(operated))
    return operated


def keyed_config(operated: Path, port: int, cache_seconds: int) -> Path:
    """The operated deployment with the us key service (issue 13) on ``port``: the
    gateway holds no KEK and caches released data keys for ``cache_seconds``."""
    text = operated.read_text().replace(
        "[jurisdictions.us.sequencer]\n",
        f'[jurisdictions.us.key_service]\nurl = "http://127.0.0.1:{port}"\n'
        'credential_file = "us/us-gw-1-keys.cred"\n'
        'credentials_file = "us/key-service-gateways.txt"\n'
        'append_credential_file = "us/us-keys.cred"\n'
        f"cache_seconds = {cache_seconds}\n"
        "[jurisdictions.us.sequencer]\n", 1)
    keyed = operated.with_name(f"keyed-{cache_seconds}.toml")
    keyed.write_text(text)
    provision(load_config(keyed))
    return keyed


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
from bordergate.residency.stores.sqlite import unpack_fields  # the store's record format
conn = sqlite3.connect(db, check_same_thread=False)
SQL = "SELECT subject_id, fields FROM records WHERE collection = ? AND record_id = ?"
async def read(request):
    names = request.query_params["fields"].split(",")
    row = conn.execute(SQL, (request.path_params["collection"],
                             request.path_params["record_id"])).fetchone()
    stored = unpack_fields(row[1])
    return JSONResponse({"fields": {f: stored[f].hex() for f in names if f in stored}})
app = Starlette(routes=[Route("/v1/{collection}/{record_id}", read)])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            http="auto", loop="auto")
'''


def run_wrk(base: str, paths: list[str], token: str | None, seconds: float) -> float:
    """wrk over ``paths``, each request's path drawn uniformly at random."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    header = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    listed = ",\n".join(f'"{p}"' for p in paths)
    script.write_text(header + f"paths = {{{listed}}}\nmath.randomseed(7)\n"
                      "request = function()\n"
                      "  return wrk.format(nil, paths[math.random(#paths)])\nend\n")
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "-s", str(script), base],
            capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    finally:
        script.unlink()
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} failed requests:\n{out}")
    assert match, out
    return float(match.group(1))


async def _closed_loop(base: str, paths: list[str], headers: dict[str, str],
                       seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CONNECTIONS)
    rng = random.Random(7)
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await client.get(base + rng.choice(paths))
                assert r.status_code == 200, r.text
                done += 1
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return done


def run_httpx(base: str, paths: list[str], token: str | None, seconds: float) -> float:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()
    done = asyncio.run(_closed_loop(base, paths, headers, seconds))
    return done / (time.perf_counter() - started)


async def _fixed_rate(base: str, paths: list[str], headers: dict[str, str]
                      ) -> tuple[list[tuple[float, float]], dict[str, int]]:
    """Open loop: requests (paths drawn uniformly) scheduled at FIXED_RATE/s over
    keep-alive connections; latency counts from each request's scheduled time (no
    coordinated omission).  Each answered read's scheduled time (``time.monotonic``,
    to compare with the host's stall windows) and latency, and the failed ones
    counted by status and problem code (a gateway that fails closed under load
    answers 503: the row reports it instead of the run stopping)."""
    parts = httpx.URL(base)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    rng = random.Random(11)
    requests = [(f"GET {p} HTTP/1.1\r\nHost: {parts.host}\r\n{head}\r\n").encode()
                for p in paths]
    total = int(FIXED_RATE * FIXED_SECONDS)
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[tuple[float, float]] = []
    failed: dict[str, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        while (scheduled := await queue.get()) is not None:
            writer.write(rng.choice(requests))
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if b" 200 " in status:
                latencies.append((scheduled, time.monotonic() - scheduled))
                continue
            try:
                code = str(json.loads(body)["code"])
            except (ValueError, KeyError, TypeError):
                code = "?"
            key = f"{status.split()[1].decode()} {code}"
            failed[key] = failed.get(key, 0) + 1
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    start = time.monotonic() + 0.2
    for i in range(total):
        scheduled = start + i / FIXED_RATE
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(scheduled)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, failed


def _percentile(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies) or [float("nan")]
    return round(ordered[max(0, int(len(ordered) * q) - 1)] * 1000, 2)


def at_fixed_rate(url: str, paths: list[str], headers: dict[str, str]) -> dict[str, Any]:
    """p50 and p99 at FIXED_RATE/s, with the host's stalls watched meanwhile
    (``bench/host_stalls.py``): their share of the run, and the p99 of the reads
    that overlapped none of them (the tail the server made, not the host)."""
    monitor = StallMonitor(FIXED_SECONDS + 1.0, Path(tempfile.mkstemp(suffix=".stalls")[1]))
    monitor.start()
    answered, failed = asyncio.run(_fixed_rate(url, paths, headers))
    windows = monitor.windows()
    monitor.out.unlink()
    latencies = [latency for _, latency in answered]
    kept = outside(answered, windows)
    return {"p50_ms_at_500_per_s": _percentile(latencies, 0.5),
            "p99_ms_at_500_per_s": _percentile(latencies, 0.99),
            "p99_ms_at_500_per_s_outside_host_stalls": _percentile(kept, 0.99),
            "reads_outside_host_stalls": round(len(kept) / max(1, len(latencies)), 3),
            **monitor.summary(windows), "failed": failed, "answered": len(latencies)}


def throughput(base: str, paths: list[str], token: str | None) -> float:
    measure = run_wrk if shutil.which("wrk") else run_httpx
    measure(base, paths, token, WARMUP)
    return measure(base, paths, token, DURATION)


def receipt_rates() -> tuple[float, float]:
    """Receipts issued (``ReceiptSigner.issue``: canonical encoding, salted digest,
    leaf hash, signature) and bare Ed25519 signatures per CPU second, now."""
    from bordergate.receipts import ReceiptSigner
    from bordergate.tlog.note import Signer

    signer = Signer.generate("us.bench-receipts")
    receipts = ReceiptSigner(signer, "us")
    values = {"handle": "benchy", "email": "bench@example.test", "phone": "+15550100",
              "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-BENCH-1"}
    # about a read's entry of five fields with their decision inputs (the receipt
    # copies its jti and time, so it is parsed as an entry)
    entry = json.dumps({"decisions": [{"field": f, "inputs": "x" * 500} for f in values],
                        "jti": "bench-token-id-0123", "time": "2026-01-01T00:00:00.000Z"},
                       separators=(",", ":")).encode()
    rates = []
    for issue in (lambda i: receipts.issue(
            origin="us.bench/log", index=i, entry=entry, action="read", collection="users",
            fields=list(values), values={"fields": values}),
                  lambda i: signer.sign(entry)):
        # per CPU second of this process, not per wall second: on a shared host
        # the wall clock counts other processes' turns
        n, started = 0, time.process_time()
        while time.process_time() - started < 1.0:
            issue(n)
            n += 1
        rates.append(n / (time.process_time() - started))
    return rates[0], rates[1]


def start_gateway(config: Path, url: str, *, receipts: bool = True
                  ) -> subprocess.Popen[bytes]:
    """``bordergate gateway serve``; with ``receipts=False`` through the bench-only
    launcher that switches them off from the outside (``--compare-receipts``)."""
    command = [str(BIN / "bordergate")] if receipts else [
        sys.executable, str(Path(__file__).with_name("gateway_without_receipts.py"))]
    gateway = subprocess.Popen([*command, "gateway", "serve", "--config",
                                str(config), "--jurisdiction", "us", "--unreviewed"],
                               stdout=subprocess.DEVNULL)
    wait_up(url + "/healthz", gateway)
    return gateway


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        print(f"{' '.join(map(str, proc.args[1:4]))} did not stop within 20 s of SIGTERM; "
              "killed", file=sys.stderr)
        proc.kill()
        proc.wait(20)


async def seed(url: str, auth: dict[str, str]) -> list[str]:
    """SUBJECTS subjects, each with one users record (through the gateway)."""
    values = {"handle": "benchy", "email": "bench@example.test", "phone": "+15550100",
              "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-BENCH-1"}
    async with httpx.AsyncClient(headers=auth, timeout=60,
                                 limits=httpx.Limits(max_connections=16)) as client:
        async def one(_: int) -> str:
            subject = (await client.post(url + "/v1/subjects")).json()["subject"]
            r = await client.put(f"{url}/v1/users/{subject}", params={"purpose": "operations"},
                                 json={"subject": subject, "values": values})
            assert r.status_code == 200, r.text
            return str(subject)
        subjects: list[str] = []
        for start in range(0, SUBJECTS, 100):
            subjects += await asyncio.gather(*(one(i) for i in range(start, start + 100)))
    return subjects


def cpu_seconds(proc: subprocess.Popen[bytes] | int) -> float:
    """User + system CPU seconds a process used so far (Linux /proc)."""
    pid = proc if isinstance(proc, int) else proc.pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helpers_cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds of a process's live children so far (the gateway's receipt
    signing helper, ``gateway.signing``: its CPU is part of what a read costs)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    total = 0.0
    for child in children:
        with contextlib.suppress(FileNotFoundError):  # exited meanwhile
            total += cpu_seconds(int(child))
    return total


async def read_each(url: str, paths: list[str], auth: dict[str, str]) -> None:
    """Read every subject once (the warm-up pass: with a key service, each subject's
    data key is released once, so what follows measures the steady state)."""
    async with httpx.AsyncClient(headers=auth, timeout=60,
                                 limits=httpx.Limits(max_connections=CONNECTIONS)) as client:
        for start in range(0, len(paths), CONNECTIONS):
            answers = await asyncio.gather(*(client.get(url + p)
                                             for p in paths[start:start + CONNECTIONS]))
            failed = [r for r in answers if r.status_code != 200]
            for r in failed:  # once more, one at a time; a second failure is an error
                again = await client.get(str(r.request.url))
                assert again.status_code == 200, again.text
            if failed:
                print(f"warm-up: {len(failed)} read(s) answered {failed[0].status_code} "
                      f"({failed[0].text[:120]}), then 200 when read again", file=sys.stderr)


def measure(label: str, url: str, paths: list[str], token: str, base_url: str,
            procs: dict[str, subprocess.Popen[bytes]],
            baseline: subprocess.Popen[bytes]) -> dict[str, object]:
    """Throughput, CPU per read of each process (where the time goes), p50/p99; the
    ratio against the bare baseline measured just before and just after (the
    machine's load drifts over a run: each row is compared with the mean of its
    two neighbours in time; both are printed)."""
    auth = {"Authorization": f"Bearer {token}"}
    measure_rate = run_wrk if shutil.which("wrk") else run_httpx
    asyncio.run(read_each(url, paths, auth))
    bare_before = throughput(base_url, paths, None)
    measure_rate(url, paths, token, WARMUP)
    before = {name: cpu_seconds(p) for name, p in procs.items()}
    helper_before = helpers_cpu_seconds(procs["gateway"])
    rate = measure_rate(url, paths, token, DURATION)
    reads = rate * DURATION
    cpu = {f"{name}_cpu_ms_per_read": round((cpu_seconds(p) - before[name]) * 1000 / reads, 3)
           for name, p in procs.items()}
    cpu["receipt_helper_cpu_ms_per_read"] = round(
        (helpers_cpu_seconds(procs["gateway"]) - helper_before) * 1000 / reads, 3)
    bare_after = throughput(base_url, paths, None)
    bare_rate = (bare_before + bare_after) / 2
    before = {name: cpu_seconds(p) for name, p in procs.items()}
    helper_before = helpers_cpu_seconds(procs["gateway"])
    fixed = at_fixed_rate(url, paths, auth)
    # at a steady rate each read travels alone and wakes every process: its CPU
    # per read (docs/performance.md, tenth pass), steadier than the p99
    answered = max(1, fixed.pop("answered"))
    cpu.update({f"{name}_cpu_ms_per_read_at_{FIXED_RATE}_per_s":
                round((cpu_seconds(p) - before[name]) * 1000 / answered, 3)
                for name, p in procs.items()})
    cpu[f"receipt_helper_cpu_ms_per_read_at_{FIXED_RATE}_per_s"] = round(
        (helpers_cpu_seconds(procs["gateway"]) - helper_before) * 1000 / answered, 3)
    bare_cpu = cpu_seconds(baseline)
    bare_fixed = at_fixed_rate(base_url, paths, {})
    cpu[f"bare_cpu_ms_per_read_at_{FIXED_RATE}_per_s"] = round(
        (cpu_seconds(baseline) - bare_cpu) * 1000 / max(1, bare_fixed["answered"]), 3)
    row = {"sequencer": label, "gateway_reads_per_s": round(rate),
           "bare_reads_per_s": round(bare_rate),
           "bare_before_and_after": [round(bare_before), round(bare_after)],
           "ratio": round(rate / bare_rate, 3), **cpu,
           **{k: v for k, v in fixed.items() if k != "failed"},
           **{f"bare_{k}": v for k, v in bare_fixed.items()
              if k.startswith(("p99", "host_stall_share"))},
           **({"failed_at_500_per_s": fixed["failed"]} if fixed["failed"] else {})}
    print(json.dumps(row), file=sys.stderr, flush=True)  # each row as soon as it is measured
    return row


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    config = write_config(root)
    deployment = load_config(config)
    provision(deployment)
    us = deployment.jurisdiction("us")
    assert us.issuer.private_key_file is not None
    issuer = TokenIssuer(load_private_key(us.issuer.private_key_file.read_bytes()),
                         us.issuer.issuer)
    local = Principal("bench-reader", "ttus", "local", "us", frozenset({"engineer"}))
    token = issuer.issue(local, audience="us", now=time.time(), ttl=3600)
    auth = {"Authorization": f"Bearer {token}"}
    procs: list[subprocess.Popen[bytes]] = []
    rows = []
    try:
        gateway = start_gateway(config, us.public_url)
        procs.append(gateway)
        subjects = asyncio.run(seed(us.public_url, auth))
        paths = [f"/v1/users/{s}?fields={FIELDS}&purpose=operations" for s in subjects]
        check = httpx.get(us.public_url + paths[0], headers=auth).json()
        assert check["outcome"] == "allow" and len(check["fields"]) == 5, check
        assert len(check["receipt"]["fields"]) == 5, check  # one signed receipt per read

        db = us.store.removeprefix("sqlite:")
        port = free_port()
        baseline = subprocess.Popen([sys.executable, "-c", BASELINE, db, str(port)],
                                    stdout=subprocess.DEVNULL)
        procs.append(baseline)
        base_url = f"http://127.0.0.1:{port}"
        wait_up(base_url + "/", baseline)
        assert len(httpx.get(base_url + paths[-1]).json()["fields"]) == 5

        rows.append(measure("in-process", us.public_url, paths, token, base_url,
                            {"gateway": gateway}, baseline))
        stop(gateway)
        procs.remove(gateway)
        sequencer_port = free_port()
        operated = operated_config(config, sequencer_port)
        # before the sequencer starts: it reads the key service's append credential once
        lifetimes = (KEY_CACHE_SECONDS, KEY_CACHE_DEFAULT, 0)
        keyed_configs = {}
        for cache in lifetimes:
            port = free_port()
            keyed_configs[cache] = (port, keyed_config(operated, port, cache))
        sequencer = subprocess.Popen(
            [str(BIN / "bordergate"), "log", "sequencer", "--config", str(operated),
             "--jurisdiction", "us", "--unwitnessed"], stdout=subprocess.DEVNULL)
        procs.append(sequencer)
        wait_up(f"http://127.0.0.1:{sequencer_port}/checkpoint", sequencer)
        gateway = start_gateway(operated, us.public_url)
        procs.append(gateway)
        rows.append(measure("separate process", us.public_url, paths, token, base_url,
                            {"gateway": gateway, "sequencer": sequencer}, baseline))
        if "--compare-receipts" in sys.argv[1:]:
            stop(gateway)
            procs.remove(gateway)
            gateway = start_gateway(operated, us.public_url, receipts=False)
            procs.append(gateway)
            assert "receipt" not in httpx.get(us.public_url + paths[0], headers=auth).json()
            rows.append(measure("separate, no receipts", us.public_url, paths, token,
                                base_url, {"gateway": gateway, "sequencer": sequencer}, baseline))
            stop(gateway)
            procs.remove(gateway)
            gateway = start_gateway(operated, us.public_url)
            procs.append(gateway)
        caches = () if "--without-key-service" in sys.argv[1:] else lifetimes
        for cache in caches:  # issue 13: the key service holds the KEKs
            stop(gateway)
            procs.remove(gateway)
            ks_port, keyed = keyed_configs[cache]
            keys = subprocess.Popen([str(BIN / "bordergate"), "keys", "serve", "--config",
                                     str(keyed), "--jurisdiction", "us"],
                                    stdout=subprocess.DEVNULL)
            procs.append(keys)
            wait_up(f"http://127.0.0.1:{ks_port}/healthz", keys)
            gateway = start_gateway(keyed, us.public_url)
            procs.append(gateway)
            label = f"key service, cache {cache} s" if cache else "key service, no cache"
            rows.append(measure(label, us.public_url, paths, token, base_url,
                                {"gateway": gateway, "sequencer": sequencer,
                                 "key_service": keys}, baseline))
            stop(keys)
            procs.remove(keys)
        records = sqlite3.connect(db).execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(root, ignore_errors=True)
    generator = f"wrk -t1 -c{CONNECTIONS}" if shutil.which("wrk") else "httpx"
    server = "uvicorn " + ("+".join(
        name for name in ("httptools", "uvloop") if importlib.util.find_spec(name)) or "h11")
    issues_per_s, signs_per_s = receipt_rates()
    for row in rows:  # the share of the gateway's CPU per read that its receipt takes
        if "no receipts" not in str(row["sequencer"]):
            row["receipt_share_of_gateway_cpu"] = round(
                1000 / issues_per_s / float(row["gateway_cpu_ms_per_read"]),  # type: ignore[arg-type]
                3)
    print(json.dumps({"load_generator": generator, "server": server, "cpus": os.cpu_count(),
                      "load_average_at_end": os.getloadavg()[0],
                      "key_cache_seconds": {"headline": KEY_CACHE_SECONDS,
                                            "default": KEY_CACHE_DEFAULT},
                      "records": records, "subjects_read_uniformly": len(paths),
                      "receipt_issues_per_s": round(issues_per_s),
                      "ed25519_signs_per_s": round(signs_per_s), "runs": rows}, indent=2))
    for row in rows:
        print(f"{row['sequencer']:>24}: {row['gateway_reads_per_s']:,}/s vs bare "
              f"{row['bare_reads_per_s']:,}/s -> ratio {row['ratio']:.2f} (targets: "
              ">= 0.5 in process, "
              f">= 0.45 separate, >= 0.4 with the key service and its "
              f"{KEY_CACHE_SECONDS} s cache); p99 at "
              f"{FIXED_RATE}/s: {row['p99_ms_at_500_per_s']} ms (target < 20 ms; "
              f"{row['p99_ms_at_500_per_s_outside_host_stalls']} ms for the reads that "
              f"overlapped none of the host's stalls, {row['host_stall_share']:.0%} of the "
              f"run; bare server {row['bare_p99_ms_at_500_per_s']} ms)"
              + (f"; FAILED at {FIXED_RATE}/s: {row['failed_at_500_per_s']}"
                 if "failed_at_500_per_s" in row else ""))
    uncached = next((r for r in rows if r["sequencer"] == "key service, no cache"), None)
    if uncached is not None and uncached.get("key_service_cpu_ms_per_read"):
        # with no cache every read is one release: key-access entry and unwrap
        per_core = 1000 / float(uncached["key_service_cpu_ms_per_read"])  # type: ignore[arg-type]
        print(f"key service: {per_core:,.0f} releases (unwraps) per second per core")
    if not shutil.which("wrk"):
        print("WARNING: no wrk (Debian package wrk; `make bench` installs it): the httpx "
              "generator saturates near a few hundred reads/s, so these ratios measure the "
              "generator, not the gateway (one such run printed 0.83 for a gateway that "
              "wrk measures at 0.31)", file=sys.stderr)


if __name__ == "__main__":
    main()

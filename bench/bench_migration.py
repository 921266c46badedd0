"""Benchmark: a legacy SQLite database migrated end to end into three SQLite homes.

End to end means everything `bordergate migrate run` does: read the batch,
find or mint subjects, decide every field, seal protected and restricted
values under per-subject data keys, log the `migration` and `key-event`
entries durably, write each home store in one transaction, write the
journal and manifest, delete the source rows, log `legacy-deletion`, and
compact the source (checkpoint + VACUUM).

Baseline, in the same run, between the same kind of databases: a plain copy
of the same rows from a copy of the same legacy file into a table of each
home's store file (SELECT, INSERT, one transaction per table and home), then
the same DELETE of the copied rows from the source and the same compaction.

The migration runs three times, each time on its own copy of the legacy file
and its own deployment, in a fresh Python process as ``bordergate migrate run``
runs (:func:`migrate_fresh`): in one process (``run_migration``, ``migrate run
--no-parallel``) and with one worker process per home (``run_parallel``, the
default of ``migrate run``), the homes' logs written by in-process sequencers
(``in_process_logs``, as in tests/migration: one writer per log); and in the
recommended layout, the demo's, where each home's log is its log operator's
sequencer service (a process per home, started before the clock) and the
migration appends with the custodian's credential, so a home takes several
workers (``worker_counts``: up to twice the cores, by records per worker).
The services' CPU during the run is counted with the migration's.

Target (issue 15): >= 20,000 records/s end to end.  Rates are printed per
wall-clock second and per CPU-second of this process and its workers (a busy
shared machine stretches the first, not the second), with the load average.

Run: .venv/bin/python bench/bench_migration.py [users]   (default 10,000 users = 100,000 records,
the size of the issue's acceptance test)
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bordergate.config import demo_config_path, load_config
from bordergate.gateway.startup import provision
from bordergate.migration.homes import open_home
from bordergate.migration.legacy import HOME_COUNTRIES, generate_legacy
from bordergate.migration.mapping import demo_mapping_path, load_mapping
from bordergate.migration.parallel import run_parallel
from bordergate.migration.plan import make_plan
from bordergate.migration.run import run_migration
from bordergate.migration.source import open_source
from bordergate.residency.schema import load_schema

#: Subjects per batch (``migrate run --batch-subjects``).
BATCH_SUBJECTS = 1_000
TABLES = {"accounts": "id", "profiles": "account_id", "watch_history": "account_id",
          "payments": "account_id", "messages": "sender_id"}


def in_process_logs(config: str) -> str:
    """The demo deployment file with each home's log written by the migration's own
    in-process sequencer (``log.key_file``) instead of a log operator's service
    (as tests/migration/conftest.py does): no fixed ports, one process measured."""
    config = re.sub(r", sequencer = \{ url = [^}]*\} \}", " }", config)
    config = re.sub(r'pseudonym_secret_file = "data/(\w+)/pseudonym.secret"',
                    r'pseudonym_secret_file = "data/\1/pseudonym.secret", '
                    r'key_file = "data/\1/log.key"', config)
    return re.sub(r"(?m)^sequencer = \{ listen.*\n", "", config)


def deployment_in(root: Path):  # type: ignore[no-untyped-def]
    root.mkdir(parents=True)
    (root / "bordergate.toml").write_text(in_process_logs(demo_config_path().read_text()))
    deployment = load_config(root / "bordergate.toml")
    provision(deployment)
    return deployment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deployment_with_operators(root: Path) -> tuple[Any, list[subprocess.Popen[bytes]]]:
    """The demo deployment (log operators' services) on free ports, provisioned,
    with each home's ``bordergate log sequencer`` running (unwitnessed, as the
    in-process rows: witnesses cosign checkpoints, not appends)."""
    root.mkdir(parents=True)
    config = demo_config_path().read_text()
    for port in re.findall(r"127\.0\.0\.1:(84\d\d)", config):
        config = config.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}")
    (root / "bordergate.toml").write_text(config)
    deployment = load_config(root / "bordergate.toml")
    provision(deployment)
    bordergate = Path(sys.executable).parent / "bordergate"
    processes = []
    for code in ("us", "eu", "cn"):
        processes.append(subprocess.Popen(
            [str(bordergate), "log", "sequencer", "--config", str(root / "bordergate.toml"),
             "--jurisdiction", code, "--unwitnessed"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        j = deployment.jurisdiction(code)
        url = f"http://{j.sequencer.listen_host}:{j.sequencer.listen_port}/checkpoint"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or processes[-1].poll() is not None:
                stop(processes)
                raise SystemExit(f"the log operator of {code} did not start")
            time.sleep(0.1)
    return deployment, processes


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu(processes: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds the running ``processes`` used so far (/proc, Linux)."""
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def plain_copy(source_path: Path, stores: dict[str, Path]) -> int:
    """Copy the rows of homed subjects into each home's store file, delete them, vacuum."""
    src = sqlite3.connect(source_path, isolation_level=None)
    src.execute("PRAGMA secure_delete = ON")
    homes = {k: HOME_COUNTRIES.get(c) for k, c in src.execute("SELECT id, country FROM accounts")}
    copied = 0
    for code, path in stores.items():
        dst = sqlite3.connect(path, isolation_level=None)
        dst.execute("PRAGMA synchronous = FULL")
        for table, owner in TABLES.items():
            cols = [c[1] for c in src.execute(f"PRAGMA table_info({table})")]
            at = cols.index(owner)
            rows = [r for r in src.execute(f"SELECT * FROM {table}")
                    if homes.get(r[at]) == code]
            if not rows:
                continue
            dst.execute("BEGIN")
            dst.execute(f"CREATE TABLE IF NOT EXISTS plain_{table} AS SELECT * FROM "
                        f"(SELECT {', '.join('NULL' for _ in rows[0])}) WHERE 0")
            dst.executemany(f"INSERT INTO plain_{table} VALUES "
                            f"({','.join('?' * len(rows[0]))})", rows)
            dst.execute("COMMIT")
            copied += len(rows)
        dst.close()
    src.execute("BEGIN")
    for table, owner in reversed(TABLES.items()):
        src.execute(f"DELETE FROM {table} WHERE {owner} IN (SELECT id FROM accounts "
                    f"WHERE country IN ({','.join('?' * len(HOME_COUNTRIES))}))",
                    list(HOME_COUNTRIES))
    src.execute("COMMIT")
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.execute("VACUUM")
    src.close()
    return copied


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (joined) children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def migrate(root: Path, legacy: Path, *, workers: bool, operators: bool = False
            ) -> tuple[int, float, float]:
    """One end-to-end migration of a copy of ``legacy``: records, wall s, CPU s."""
    shutil.copy(legacy, root.with_suffix(".db"))
    url = f"sqlite:{root.with_suffix('.db')}"
    services: list[subprocess.Popen[bytes]] = []
    if operators:
        deployment, services = deployment_with_operators(root)
    else:
        deployment = deployment_in(root)
    try:
        schema = load_schema(deployment.schema_path)
        mapping = load_mapping(demo_mapping_path(), schema)
        wall, cpu = time.perf_counter(), cpu_seconds() + process_cpu(services)
        source = open_source(url)
        plan = make_plan(source, mapping, schema, batch_subjects=BATCH_SUBJECTS)
        if workers:
            source.close()
            report = run_parallel(url, deployment, mapping, plan, schema=schema)
        else:
            homes = {code: open_home(deployment, code) for code in plan.homes}
            report = run_migration(source, mapping, plan, homes, schema=schema)
            for home in homes.values():
                home.close()
            source.close()
        return (report.records, time.perf_counter() - wall,
                cpu_seconds() + process_cpu(services) - cpu)
    finally:
        stop(services)


def migrate_fresh(root: Path, legacy: Path, *, workers: bool, operators: bool = False
                  ) -> tuple[int, float, float]:
    """:func:`migrate` in a fresh Python process, as ``bordergate migrate run`` runs.
    Run one after another in this process, a row forked its workers from a parent
    holding the earlier rows' state, and the log-operator row, measured last, lost
    10-25 % of its rate to that (14,800-15,600 records/s against 17,600-23,300 in
    a fresh process, same host, same hour)."""
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "import bench_migration as b; print(json.dumps(b.migrate(Path(sys.argv[2]), "
            "Path(sys.argv[3]), workers=sys.argv[4] == '1', operators=sys.argv[5] == '1')))")
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(root), str(legacy),
         str(int(workers)), str(int(operators))], check=True, capture_output=True, text=True)
    n, wall, cpu = json.loads(done.stdout.strip().splitlines()[-1])
    return int(n), float(wall), float(cpu)


def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        legacy = root / "legacy.db"
        source = open_source(f"sqlite:{legacy}")
        generate_legacy(source, users=users, seed=15)
        source.close()
        shutil.copy(legacy, root / "plain.db")

        base = deployment_in(root / "plain")
        stores = {c: Path(base.jurisdiction(c).store.removeprefix("sqlite:")) for c in
                  ("us", "eu", "cn")}
        stores = {c: p if p.is_absolute() else root / "plain" / p for c, p in stores.items()}
        wall, cpu = time.perf_counter(), cpu_seconds()
        copied = plain_copy(root / "plain.db", stores)
        plain_wall, plain_cpu = time.perf_counter() - wall, cpu_seconds() - cpu

        n, one_wall, one_cpu = migrate_fresh(root / "sequential", legacy, workers=False)
        assert copied == n, (copied, n)
        n, par_wall, par_cpu = migrate_fresh(root / "parallel", legacy, workers=True)
        assert copied == n, (copied, n)
        n, op_wall, op_cpu = migrate_fresh(root / "operators", legacy, workers=True,
                                           operators=True)
        assert copied == n, (copied, n)
    print(f"records: {n} ({users} users) into 3 homes, on {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"plain copy           : {n / plain_wall:>8,.0f} records/s wall, "
          f"{n / plain_cpu:>8,.0f} records/CPU-s")
    for name, w, c in (("migration, 1 process", one_wall, one_cpu),
                       ("migration, per home ", par_wall, par_cpu),
                       ("migration, operators", op_wall, op_cpu)):
        print(f"{name} : {n / w:>8,.0f} records/s wall, {n / c:>8,.0f} records/CPU-s, "
              f"ratio to plain copy {plain_wall / w:.3f} wall, {plain_cpu / c:.3f} CPU  "
              f"(target >= 20,000 records/s wall)")


if __name__ == "__main__":
    main()

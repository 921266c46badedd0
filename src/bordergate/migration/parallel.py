"""``bordergate migrate run`` on several cores: worker processes per home.

Every home gets one worker; a home whose log takes several writers (the log
operator's service: the recommended layout, and the demo's) may get more, each
on its own share of the home's batches (:func:`worker_counts`), so that a home
holding most of the subjects does not leave the other cores idle.

Each worker is exactly a custodian's run (``run_migration(only=HOME)``, what
``migrate run --home HOME`` does): it opens its own connection to the source,
only its own home's store, keys, pseudonym secret and log, and goes through
its parts' journal states in the same durable order (logged and stored before
``stored``; deleted with the deletion's facts in one source transaction;
``legacy-deletion`` logged before ``done``).  The homes' parts touch disjoint
journal rows and disjoint source rows, and the source serialises their
transactions, so any interleaving is one of the orders the sequential run or
successive ``--home`` runs could take.  The parent only creates the journal
before starting the workers and compacts the source after all of them
finished.

Killing the parent kills every worker (``PR_SET_PDEATHSIG``, checked again
after it is set, for a parent that died first), so ``kill -9`` of the command
leaves what ``kill -9`` of each custodian's run would: a new run resumes each
part from its journal state.  A worker that fails makes the run fail with its
error (same class and code) after the others stopped; nothing is compacted
then.

Workers are forked before any home is opened in the parent (no store, key or
log handle crosses a fork); Linux only (elsewhere, or with one home, the run
stays sequential).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any

from bordergate import errors
from bordergate.config import Deployment
from bordergate.migration.homes import open_home
from bordergate.migration.mapping import MigrationMapping
from bordergate.migration.plan import Plan
from bordergate.migration.run import Progress, RunReport, homes_needed, run_migration
from bordergate.migration.source import open_source
from bordergate.policy.bundle import PolicyBundle
from bordergate.policy.engine import PolicyEngine
from bordergate.residency.schema import Schema

__all__ = ["parallel_available", "run_parallel", "worker_counts"]

_PR_SET_PDEATHSIG = 1


def parallel_available() -> bool:
    """Whether workers can be tied to the parent's life (Linux ``prctl``)."""
    return sys.platform.startswith("linux")


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(70)  # cannot be tied to the parent: do nothing rather than outlive it
    if os.getppid() != parent:
        os._exit(70)  # the parent died before prctl took effect


@dataclass(frozen=True)
class _Job:
    """What one home's worker runs (inherited through the fork, never pickled)."""

    source_url: str
    base_dir: Any
    deployment: Deployment
    mapping: MigrationMapping
    plan: Plan
    schema: Schema
    code: str
    share: tuple[int, int] = (0, 1)
    engine: PolicyEngine | None = None


def _worker(conn: Connection, parent: int, job: _Job) -> None:
    _die_with_parent(parent)
    code = job.code
    try:
        source = open_source(job.source_url, base_dir=job.base_dir)
        try:
            home = open_home(job.deployment, code, engine=job.engine)
            try:
                report = run_migration(
                    source, job.mapping, job.plan, {code: home}, schema=job.schema, only=code,
                    progress=lambda records, batch: conn.send(("progress", records)),
                    compact=False, share=job.share)
            finally:
                home.close()
        finally:
            source.close()
        conn.send(("done", (report.batches, report.batches_done_before, report.retried,
                            report.records)))
    except errors.BordergateError as exc:
        conn.send(("error", (type(exc).__name__, exc.message, exc.code)))
    except BaseException as exc:  # reported to the parent, which raises
        conn.send(("error", ("Unavailable", f"migration worker of {code} failed: "
                             f"{type(exc).__name__}: {exc}", "migration_worker_failed")))
    finally:
        conn.close()


def worker_counts(deployment: Deployment, plan: Plan, codes: list[str],
                  cores: int | None = None) -> dict[str, int]:
    """Workers per home: one each; then, up to twice the cores in all, one more at a
    time to the home with the most records per worker among those whose log takes
    several writers (``log.sequencer``: the log operator's service; an in-process
    sequencer has one writer) and that have more batches than workers."""
    counts = dict.fromkeys(codes, 1)
    batches = {code: sum(1 for _, home, _, _ in plan.units if home == code) for code in codes}
    records = {code: plan.homes[code].records if code in plan.homes else 0 for code in codes}
    limit = 2 * (cores or os.cpu_count() or 1)
    while sum(counts.values()) < limit:
        open_to_more = [code for code in codes
                        if deployment.jurisdiction(code).log.sequencer is not None
                        and batches[code] > counts[code]]
        if not open_to_more:
            break
        busiest = max(open_to_more, key=lambda code: (records[code] / counts[code], code))
        counts[busiest] += 1
    return counts


def _start_workers(jobs: list[_Job]) -> dict[Connection, tuple[str, Any]]:
    """Fork one worker per job; its pipe -> (its name, its process)."""
    ctx = get_context("fork")
    workers: dict[Connection, tuple[str, Any]] = {}
    for job in jobs:
        mine, theirs = ctx.Pipe(duplex=False)
        name = f"{job.code}-{job.share[0]}"
        process = ctx.Process(target=_worker, name=f"migrate-{name}",
                              args=(theirs, os.getpid(), job))
        process.start()
        theirs.close()
        workers[mine] = (name, process)
    return workers


def _raise(name: str, message: str, code: str) -> None:
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.BordergateError)):
        cls = errors.Unavailable
    raise cls(message, code=code)


def run_parallel(source_url: str, deployment: Deployment, mapping: MigrationMapping,
                 plan: Plan, *, schema: Schema, base_dir: Any = None,
                 progress: Progress | None = None,
                 clock: Callable[[], float] | None = None) -> RunReport:
    """Migrate every part not done yet with worker processes per home
    (:func:`worker_counts`), then compact.

    Raises:
        as :func:`~bordergate.migration.run.run_migration` (a worker's error,
        re-raised with its class and code).
    """
    import time

    now = clock or time.time
    started = now()
    plan.require_runnable()
    source = open_source(source_url, base_dir=base_dir)
    try:
        source.start_journal(plan.units)  # once, before any worker reads it
        codes = sorted(homes_needed(source, plan))
        # loaded once here and inherited through the fork, not once per worker
        engine = PolicyEngine(PolicyBundle.load(deployment.policy_bundle_path))
        import bordergate.log_access
        import bordergate.log_witnessing  # noqa: F401
        if any(deployment.jurisdiction(code).log.sequencer is not None for code in codes):
            # the log operator's client runs on anyio, which imports its asyncio backend
            # on first use: 1.4 % of each worker's CPU when every worker imported it
            importlib.import_module("anyio._backends._asyncio")
        counts = worker_counts(deployment, plan, codes)
        workers = _start_workers([
            _Job(source_url, base_dir, deployment, mapping, plan, schema, code, (index, count),
                 engine)
            for code, count in counts.items()
            for index in range(count)])
        done: dict[str, tuple[int, int, int, int]] = {}
        failed: tuple[str, str, str] | None = None
        counted: dict[str, int] = {name: 0 for name, _ in workers.values()}
        open_pipes = list(workers)
        while open_pipes:
            for ready in wait(open_pipes):
                assert isinstance(ready, Connection)
                code = workers[ready][0]
                try:
                    kind, body = ready.recv()
                except EOFError:
                    open_pipes.remove(ready)
                    if code not in done and failed is None:
                        failed = ("Unavailable", f"migration worker {code} died",
                                  "migration_worker_failed")
                    continue
                if kind == "progress":
                    counted[code] = int(body)
                    if progress is not None:
                        progress(sum(counted.values()), 0)
                elif kind == "done":
                    done[code] = body
                else:
                    failed = failed or body
        for _, process in workers.values():
            process.join()
        if failed is not None:
            _raise(*failed)
        source.compact([t.table for t in mapping.tables])
    finally:
        source.close()
    batches, before, retried, records = (sum(r[i] for r in done.values()) for i in range(4))
    return RunReport(batches=batches, batches_done_before=before, retried=retried,
                     records=records, seconds=now() - started, workers=counts)

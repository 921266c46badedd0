"""Several migration workers for one home (issue 15, performance): a home whose log is
its log operator's service (the recommended layout, the demo's) takes more than one
worker, each on its own share of the home's batches, and the result is exactly what a
one-process run gives; a home whose log is written in process keeps one writer."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bordergate.config import Deployment, demo_config_path, load_config
from bordergate.errors import ConfigError, Unavailable
from bordergate.gateway.startup import provision
from bordergate.migration.homes import Home, open_home
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.parallel import run_parallel, worker_counts
from bordergate.migration.run import run_migration
from bordergate.migration.source import open_source
from bordergate.migration.verify import log_entries, verify_migration
from bordergate.residency.schema import load_schema
from tests.gateway.conftest import stop_process
from tests.gateway.deployment import free_port
from tests.gateway.test_log_operator import start_log_operator
from tests.migration.conftest import (
    HOMES,
    demo_mapping,
    home_contents,
    one_process_run,
    plan_for,
)


def _operated(directory: Path) -> Deployment:
    """The demo deployment as shipped (each home's log is its log operator's
    service, reached with the custodian's credential) on free ports, provisioned."""
    directory.mkdir(parents=True)
    config = demo_config_path().read_text()
    for port in ("8401", "8402", "8403", "8411", "8412", "8413"):
        config = config.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}")
    (directory / "bordergate.toml").write_text(config)
    deployment = load_config(directory / "bordergate.toml")
    provision(deployment)
    return deployment


@pytest.fixture
def operated(tmp_path: Path) -> Iterator[Deployment]:
    deployment = _operated(tmp_path / "operated")
    config = tmp_path / "operated" / "bordergate.toml"
    operators: list[subprocess.Popen[bytes]] = []
    try:
        for code in HOMES:
            operators.append(start_log_operator(config, code))
        yield deployment
    finally:
        for process in operators:
            stop_process(process)


def test_worker_counts_follow_records_only_where_the_log_takes_several_writers(
        tmp_path: Path, deployment: Deployment) -> None:
    """Issue 15, speed without a second writer per log: with in-process logs every home
    gets exactly one worker (one sequencer per log); with log operators the home with
    the most records per worker gets the extra workers, never more than its batches,
    and all homes together never more than twice the cores."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=140, seed=9)
    plan = plan_for(source, deployment, batch_subjects=10)
    source.close()
    assert worker_counts(deployment, plan, list(HOMES), cores=2) == dict.fromkeys(HOMES, 1)

    operated = _operated(tmp_path / "operated")
    counts = worker_counts(operated, plan, list(HOMES), cores=2)
    assert sum(counts.values()) == 4
    records = {code: plan.homes[code].records for code in HOMES}
    assert max(counts, key=counts.__getitem__) == max(records, key=records.__getitem__)
    assert all(n >= 1 for n in counts.values())

    few = plan_for(_one_batch_source(tmp_path), deployment, batch_subjects=1000)
    assert worker_counts(operated, few, list(HOMES), cores=8) == dict.fromkeys(HOMES, 1)


def _one_batch_source(tmp_path: Path):  # type: ignore[no-untyped-def]
    source = open_source(f"sqlite:{tmp_path / 'small.db'}")
    generate_legacy(source, users=30, seed=2)
    return source


def test_a_share_outside_the_workers_is_refused(tmp_path: Path, deployment: Deployment) -> None:
    """Issue 15, bad input gets a stable code: a share index not below the count is
    ``migration_share_invalid`` and nothing is migrated."""
    source = open_source(f"sqlite:{tmp_path / 'legacy.db'}")
    generate_legacy(source, users=20, seed=3)
    plan = plan_for(source, deployment, batch_subjects=10)
    with pytest.raises(ConfigError) as raised:
        run_migration(source, demo_mapping(deployment), plan, {},
                      schema=load_schema(deployment.schema_path), share=(2, 2))
    assert raised.value.code == "migration_share_invalid"
    assert source.journal() == {}
    source.close()


def test_several_workers_per_home_through_log_operators_equal_one_process(
        tmp_path: Path, operated: Deployment) -> None:
    """Issue 15, promise 8 with workers sharing a home: through the homes' log
    operators (custodian credentials, no log key in the migration) with up to four
    workers, every part ends ``done``, ``migrate verify`` matches every logged batch
    against the stores and the source, and each home holds exactly what a one-process
    run of the same data gives (equal by legacy id and values)."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=140, seed=9)
    plan = plan_for(source, operated, batch_subjects=10)
    source.close()
    assert max(worker_counts(operated, plan, list(HOMES), cores=2).values()) > 1
    schema = load_schema(operated.schema_path)
    report = run_parallel(url, operated, demo_mapping(operated), plan, schema=schema)
    assert report.records == sum(p.records for p in plan.homes.values())
    assert report.workers == worker_counts(operated, plan, sorted(HOMES))  # as reported

    # a part is done only once its log operator published it: verify sees it at once
    source = open_source(url)
    homes = {code: open_home(operated, code, write=False) for code in HOMES}
    try:
        verified = verify_migration(source, demo_mapping(operated), operated, homes)
    finally:
        for home in homes.values():
            home.close()
        source.close()
    assert verified.ok, verified.failures
    assert {row.state for row in _journal(url)} == {"done"}

    clean_deployment = one_process_run(tmp_path / "clean", users=140, seed=9,
                                       batch_subjects=10)
    for code in HOMES:
        assert home_contents(operated, code) == home_contents(clean_deployment, code)


def _journal(url: str):  # type: ignore[no-untyped-def]
    source = open_source(url)
    try:
        return list(source.journal().values())
    finally:
        source.close()


def test_parts_logged_but_not_published_are_finished_by_the_next_run(
        tmp_path: Path, operated: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15, kill -9 safety of the publication wait (one per home and run, after
    its last part): a run stopped after its ``legacy-deletion`` entries were durable
    but before its log operator published them leaves those parts ``logged`` (not
    ``done``: ``migrate verify`` says so); the next run imports and deletes nothing
    again, logs no second ``legacy-deletion``, asks the operator to publish, and
    every part is ``done`` and verified."""
    url = f"sqlite:{tmp_path / 'legacy.db'}"
    source = open_source(url)
    generate_legacy(source, users=60, seed=4)
    plan = plan_for(source, operated, batch_subjects=10)
    mapping, schema = demo_mapping(operated), load_schema(operated.schema_path)

    def stopped(self: Home) -> None:
        raise Unavailable("killed before the publication", code="test_stop")

    homes = {code: open_home(operated, code) for code in HOMES}
    with monkeypatch.context() as patched:
        patched.setattr(Home, "publish", stopped)
        with pytest.raises(Unavailable):
            run_migration(source, mapping, plan, homes, schema=schema)
    for home in homes.values():
        home.close()
    assert {row.state for row in source.journal().values()} == {"logged"}
    readers = {code: open_home(operated, code, write=False) for code in HOMES}
    unfinished = verify_migration(source, mapping, operated, readers)
    assert not unfinished.ok
    assert any("not finished (state logged)" in f for f in unfinished.failures)

    homes = {code: open_home(operated, code) for code in HOMES}
    report = run_migration(source, mapping, plan, homes, schema=schema)
    for home in homes.values():
        home.close()
    assert report.records == 0 and report.retried == 0
    assert {row.state for row in source.journal().values()} == {"done"}
    verified = verify_migration(source, mapping, operated, readers)
    assert verified.ok, verified.failures
    for code in HOMES:
        deletions = [entry.body["batch"] for _, entry in log_entries(operated, code)
                     if entry.type == "legacy-deletion"]
        assert sorted(deletions) == sorted({b for b, h in source.journal() if h == code})
    for home in readers.values():
        home.close()
    source.close()

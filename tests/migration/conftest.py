"""Migration fixtures: a provisioned three-home deployment, a legacy source, readers.

Deployments are the packaged demo deployment file provisioned into a
temporary directory (keys generated there: test-only).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bordergate.config import Deployment, demo_config_path, load_config
from bordergate.gateway.startup import provision
from bordergate.migration.homes import LEGACY_COLLECTION, Home, open_home
from bordergate.migration.legacy import generate_legacy
from bordergate.migration.mapping import MigrationMapping, demo_mapping_path, load_mapping
from bordergate.migration.plan import Plan, make_plan
from bordergate.migration.run import RunReport, homes_needed, run_migration
from bordergate.migration.source import LegacySource, open_source
from bordergate.residency.schema import load_schema
from bordergate.residency.vault import Vault

HOMES = ("cn", "eu", "us")


def in_process_logs(config: str) -> str:
    """The demo deployment file with each home's log written by the migration's own
    in-process sequencer (``log.key_file``), not by a log operator's service: these
    tests exercise the migration, not the sequencer service, and need no fixed ports
    (the development path of ``migration.homes._home_log``)."""
    config = re.sub(r", sequencer = \{ url = [^}]*\} \}", " }", config)
    config = re.sub(r'pseudonym_secret_file = "data/(\w+)/pseudonym.secret"',
                    r'pseudonym_secret_file = "data/\1/pseudonym.secret", '
                    r'key_file = "data/\1/log.key"', config)
    return re.sub(r"(?m)^sequencer = \{ listen.*\n", "", config)


def make_deployment(directory: Path) -> Deployment:
    """The demo deployment (us, eu, cn), provisioned in ``directory``, its logs
    written in process (:func:`in_process_logs`)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bordergate.toml").write_text(in_process_logs(demo_config_path().read_text()))
    deployment = load_config(directory / "bordergate.toml")
    provision(deployment)
    return deployment


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return make_deployment(tmp_path / "deploy")


def demo_mapping(deployment: Deployment) -> MigrationMapping:
    return load_mapping(demo_mapping_path(), load_schema(deployment.schema_path))


def plan_for(source: LegacySource, deployment: Deployment, batch_subjects: int = 500) -> Plan:
    return make_plan(source, demo_mapping(deployment), load_schema(deployment.schema_path),
                     batch_subjects=batch_subjects)


def migrate(source: LegacySource, deployment: Deployment, batch_subjects: int = 500
            ) -> RunReport:
    """One complete run, in process."""
    plan = plan_for(source, deployment, batch_subjects)
    homes = {code: open_home(deployment, code) for code in homes_needed(source, plan)}
    try:
        return run_migration(source, demo_mapping(deployment), plan, homes,
                             schema=load_schema(deployment.schema_path))
    finally:
        for home in homes.values():
            home.close()


@pytest.fixture
def read_homes(deployment: Deployment) -> Iterator[dict[str, Home]]:
    homes: dict[str, Home] = {}
    yield homes
    for home in homes.values():
        home.close()


def home_contents(deployment: Deployment, code: str) -> Counter[tuple[str, str, str]]:
    """(owner's legacy id, collection, values as JSON) of every migrated record of a home,
    decrypted by the custodian: equal contents mean equal by legacy id and values."""
    home = open_home(deployment, code, write=False)
    try:
        legacy: dict[str, str] = {}
        for item in home.store.field_values(LEGACY_COLLECTION, "legacy_id"):
            legacy[str(item.subject)] = home.legacy_id_of(item.subject, item.record_id)
        vault = Vault(home.schema, home.store, home.keyring)
        found: Counter[tuple[str, str, str]] = Counter()
        for collection in home.schema.collections:
            first = next(iter(home.schema.collection(collection).fields))
            for item in home.store.field_values(collection, first):
                record = vault.get(collection, item.record_id)
                found[(legacy[str(record.subject)], collection,
                       json.dumps(record.values, sort_keys=True))] += 1
        return found
    finally:
        home.close()


def store_and_log_files(deployment: Deployment) -> list[Path]:
    """Every file a home keeps: stores (with WAL), logs, keys."""
    root = deployment.jurisdiction("us").log.key_file.parent.parent
    return sorted(p for p in root.rglob("*") if p.is_file())


def one_process_run(directory: Path, *, users: int, seed: int, batch_subjects: int
                    ) -> Deployment:
    """A fresh legacy database of ``users`` (``seed``) migrated by one uninterrupted
    in-process run into a fresh deployment under ``directory``: the reference a
    parallel, resumed or shared run must equal (:func:`home_contents`)."""
    directory.mkdir()
    source = open_source(f"sqlite:{directory / 'legacy.db'}")
    generate_legacy(source, users=users, seed=seed)
    clean = make_deployment(directory / "deploy")
    migrate(source, clean, batch_subjects=batch_subjects)
    source.close()
    return clean

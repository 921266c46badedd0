"""Real gateway processes: a dead log disk fails closed; schemathesis finds no 500s.

Each test here runs its own TEST-ONLY deployment (tests/gateway/deployment.py)
so that fault injection cannot disturb the shared end-to-end deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings

from bordergate.config import load_config
from bordergate.policy.entities import Principal
from tests.gateway.conftest import fuzz_seed, start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, write_deployment

LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
ROOT = Path(__file__).resolve().parents[2]


def test_real_gateway_with_dead_log_disk_answers_503_and_releases_nothing(
        tmp_path: Path) -> None:
    """Promise 3 (real process): when the log's storage stops accepting writes
    (injected from outside by tests/gateway/dead_disk_gateway.py), reads fail
    with 503 and release no value."""
    config = write_deployment(tmp_path / "d")
    fault = tmp_path / "log-disk-dead"
    url = load_config(config).jurisdiction("us").public_url
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.dead_disk_gateway", str(config), "us", str(fault)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tokens = Tokens()
    try:
        wait_healthy(url, process)
        headers = tokens.header(LOCAL, "us")
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            subject = http.post("/v1/subjects").json()["subject"]
            values = {"handle": "dead-disk", "email": "dead-disk@example.test",
                      "created_at": "2024-01-01T00:00:00Z", "government_id": "GOV-DEAD-1"}
            r = http.put(f"/v1/users/{subject}", params={"purpose": "operations"},
                         json={"subject": subject, "values": values})
            assert r.status_code == 200
            assert http.get(f"/v1/users/{subject}",
                            params={"purpose": "operations"}).status_code == 200
            fault.touch()
            for _ in range(3):
                r = http.get(f"/v1/users/{subject}", params={"purpose": "operations"})
                assert r.status_code == 503
                assert r.json()["code"] == "log_unwritable"
                assert "Retry-After" in r.headers
                for value in values.values():
                    assert value not in r.text
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def fuzzed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real us gateway for schemathesis, with a record and a local token."""
    config = write_deployment(tmp_path_factory.mktemp("fuzz"))
    url = load_config(config).jurisdiction("us").public_url
    process = start_process(config, "us")
    try:
        wait_healthy(url, process)
        token = Tokens().token(LOCAL, "us", ttl=3600)
        yield {"url": url, "token": token}
    finally:
        stop_process(process)


def test_schemathesis_no_server_errors(fuzzed_gateway: dict[str, Any]) -> None:
    """Failure behaviour: generated requests (at most 30 per operation) against the
    served /openapi.json never get a 500, and every answer matches the documented
    statuses, content types and body shapes (seeded: ``fuzz_seed``)."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(fuzzed_gateway["url"] + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzzed_gateway['token']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    chosen = fuzz_seed()
    for number, operation in enumerate(operations):
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        (check if chosen is None else seed(chosen + number)(check))()

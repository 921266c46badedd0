"""The OpenAPI document is one tools can trust (issue 16, item 8).

``st run URL/openapi.json -H "Authorization: Bearer ..." -n 150 --checks all`` (the
schemathesis 4 CLI, exactly as a user runs it, from the repository root so that its
``schemathesis.toml`` applies) against a throwaway deployment's real gateway
process finds no failure: no server error, every answer documented (status,
content type, headers, body), schema-valid requests accepted or refused only as
documented, schema-violating ones refused, 405 with ``Allow``, and the stateful
phase reaches real subjects, records and approvals through the document's links.
The fast tests below hold the generated document to the schema and bundle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bordergate.config import load_config
from bordergate.gateway.openapi import INDEX_MAX, api_model, openapi_document
from bordergate.policy.bundle import default_bundle
from bordergate.policy.entities import Principal
from bordergate.residency.schema import demo_schema_path, load_schema
from tests.gateway.conftest import fuzz_seed, start_process, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, write_deployment

ROOT = Path(__file__).resolve().parents[2]
ST = str(Path(sys.executable).with_name("st"))
LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A TEST-ONLY deployment whose us gateway runs as a real process; bodies up to
    1 MiB, so that no schema-valid write (every string at its maximum) is too large."""
    # in memory when the machine has /dev/shm: thousands of logged requests, each
    # durable (fsync) before it answers, are what the run's time goes to on a disk
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="bordergate-st-", dir=shm)) if shm.is_dir() \
        else tmp_path_factory.mktemp("st")
    config = write_deployment(root, max_body=1 << 20)
    url = load_config(config).jurisdiction("us").public_url
    process = start_process(config, "us")
    try:
        wait_healthy(url, process)
        yield {"url": url, "token": Tokens().token(LOCAL, "us", ttl=3600)}
    finally:
        stop_process(process)
        if root.is_relative_to(shm):
            shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_schemathesis_all_checks_find_no_failure(throwaway: dict[str, Any]) -> None:
    """Issue 16 item 8 (the API description is true): the schemathesis CLI with every
    check, 150 examples per operation, against a real gateway, exits 0 with no failure
    and its stateful phase covers the document's links (seeded: ``fuzz_seed``)."""
    seed = fuzz_seed()
    run = subprocess.run(
        [ST, "run", f"{throwaway['url']}/openapi.json",
         "-H", f"Authorization: Bearer {throwaway['token']}", "-n", "150",
         "--checks", "all", "--no-color", *(["--seed", str(seed)] if seed is not None else [])],
        cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, capture_output=True,
        text=True, timeout=3300, check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    assert " 0 covered" not in report, report[-5000:]


def test_document_enumerates_the_schema_and_bundle() -> None:
    """Issue 16 item 8: one read and one write operation per collection, its field
    names as an enum, the bundle's purposes and reason codes as enums, typed values,
    a log index bounded by 2^63-1, and every operation's refusals documented."""
    schema, bundle = load_schema(demo_schema_path()), default_bundle()
    doc = openapi_document(api_model(schema, bundle, jurisdiction="us"))
    paths = doc["paths"]
    for name, coll in schema.collections.items():
        item = paths[f"/v1/{name}/{{record_id}}"]
        params = {p["name"]: p for p in item["get"]["parameters"]}
        assert params["fields"]["schema"]["items"]["enum"] == list(coll.fields)
        assert params["purpose"]["schema"]["enum"] == sorted(bundle.purposes)
        assert params["subject"]["schema"]["pattern"].startswith("^us-")
        write = doc["components"]["schemas"][item["put"]["requestBody"]["content"][
            "application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
        values = write["properties"]["values"]
        assert set(values["properties"]) == set(coll.fields)
        assert values["additionalProperties"] is False
        assert set(values.get("required", [])) == {f for f, s in coll.fields.items()
                                                    if s.required}
        assert {"403", "421", "503"} <= set(item["put"]["responses"])
    index = paths["/v1/log/proof/{index}"]["get"]["parameters"][0]["schema"]
    assert index["maximum"] == INDEX_MAX == 2**63 - 1
    approvals = doc["components"]["schemas"]["ApprovalRequest"]["oneOf"]
    assert {v["properties"]["purpose"]["const"]: v["properties"]["reason"]["enum"]
            for v in approvals} == {n: sorted(p.reason_codes)
                                    for n, p in bundle.purposes.items()}
    for path, item in paths.items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            if op.get("security"):
                assert "401" in op["responses"] and "503" in op["responses"], (path, method)


def test_405_names_the_allowed_methods(throwaway: dict[str, Any]) -> None:
    """RFC 9110 section 15.5.6 (issue 16 item 8): every 405 carries ``Allow`` with the
    path's methods, also where a record path's shape would match (``/v1/subjects/X``)."""
    url, headers = throwaway["url"], {"Authorization": f"Bearer {throwaway['token']}"}
    cases = {("DELETE", "/v1/users/r1"): {"GET", "HEAD", "PUT"},
             ("GET", "/v1/subjects/us-" + "a" * 26): {"DELETE"},
             ("PUT", "/v1/approvals/apr-" + "a" * 26): {"GET", "HEAD"},
             ("DELETE", "/v1/approvals"): {"GET", "HEAD", "POST"},
             ("GET", "/v1/exports"): {"POST"},
             ("POST", "/v1/log/checkpoint"): {"GET", "HEAD"}}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for (method, path), allowed in cases.items():
            r = http.request(method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert {m.strip() for m in r.headers["allow"].split(",")} == allowed, (method, path)
            assert r.json()["code"] == "method_not_allowed"


def test_integral_numbers_and_large_indexes_follow_the_document(
        throwaway: dict[str, Any]) -> None:
    """Issue 16 item 8: JSON Schema's integer is a value, so ``25.0`` is accepted where
    an integer is (an export's ``min_subjects``), a fractional one is refused with a
    stable code; a log index past 2^63-1 is 400 ``malformed_index``, not 404."""
    url, headers = throwaway["url"], {"Authorization": f"Bearer {throwaway['token']}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        body = b'{"collection": "users", "group_by": "country", ' \
               b'"purpose": "analytics_aggregate", "min_subjects": 25.0}'
        r = http.post("/v1/exports", content=body,
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["k"] == 25, r.text
        r = http.post("/v1/exports", content=body.replace(b"25.0", b"25.5"),
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_k"
        for index in (str(2**63), "9" * 19, "9" * 40):
            r = http.get(f"/v1/log/proof/{index}")
            assert r.status_code == 400 and r.json()["code"] == "malformed_index", index
        assert http.get(f"/v1/log/proof/{2**63 - 1}").json()["code"] == "index_out_of_range"

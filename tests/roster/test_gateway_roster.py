"""Issue 12 item 3 against real processes: gateways take principals' attributes from the
identity authority's roster version in force, never from the token.

Two workers of us append through a sequencer service; the authority's roster is signed
and published with ``bordergate roster sign/publish`` while they run.  A token whose
claims relabel the parent's engineer abroad as local staff is refused
(``roster_claims_mismatch``), one whose subject is not listed is refused
(``principal_not_in_roster``), every decision entry names the version it used, and a
newly published version takes effect on both workers.  Keys are TEST-ONLY.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.gateway.auth import TokenIssuer
from bordergate.log_access import log_verifier
from bordergate.policy.entities import Principal
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.logdir import write_key
from bordergate.tlog.storage import open_storage
from tests.gateway.conftest import (
    BORDERGATE,
    start_process,
    start_sequencer_service,
    stop_process,
    wait_healthy,
)
from tests.gateway.deployment import issuer_key, issuer_name, two_workers_with_sequencer
from tests.roster.test_document import authority_signer

ALICE = Principal("alice-us", "ttus", "local", "us", frozenset({"engineer"}))
WEI = Principal("wei-parent", "parentco", "parent", "cn", frozenset({"engineer"}))
ERIN = Principal("erin-us", "ttus", "local", "us", frozenset({"engineer"}))
#: How long a worker may take to apply a new roster version (design.md: about 2 s;
#: generous because the test machine is shared).
ROSTER_WAIT = 20.0


def _cli(*args: str) -> str:
    proc = subprocess.run([BORDERGATE, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _publish(root: Path, config: Path, serial: int, people: list[Principal]) -> str:
    """Sign (as the authority) and publish (as the custodian) roster ``serial``."""
    source = root / f"roster-{serial}.json"
    source.write_text(json.dumps({"jurisdiction": "us", "serial": serial, "principals": {
        p.id: {"org": p.org, "org_kind": p.org_kind, "location": p.location,
               "roles": sorted(p.roles), "covered_person": p.org == "parentco",
               "covered_person_basis": "202.211(a)(4): resident in a country of concern"
               if p.org == "parentco" else None} for p in people}}))
    signed = root / f"roster-{serial}.signed.json"
    _cli("roster", "sign", str(source), "--key", str(root / "authority.key"),
         "--out", str(signed))
    return str(json.loads(_cli("roster", "publish", str(signed), "--config", str(config),
                               "-j", "us"))["roster"])


def _token(who: Principal, **claims: str) -> str:
    issuer = TokenIssuer(issuer_key("us"), issuer_name("us"))
    token = issuer.issue(Principal(who.id, claims.get("org", who.org),
                                   claims.get("org_kind", who.org_kind),
                                   claims.get("location", who.location), who.roles),
                         audience="us", now=time.time())
    return f"Bearer {token}"


def _mint(http: httpx.Client, url: str, token: str) -> httpx.Response:
    return http.post(f"{url}/v1/subjects", headers={"Authorization": token})


def _until(http: httpx.Client, url: str, token: str, status: int) -> httpx.Response:
    deadline = time.monotonic() + ROSTER_WAIT
    while True:
        r = _mint(http, url, token)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_roster_in_force_decides_attributes_on_every_worker(tmp_path: Path) -> None:
    """Issue 12 item 3: a token relabelling the parent's engineer abroad as local staff is
    refused (401 roster_claims_mismatch), an unlisted subject is refused
    (principal_not_in_roster), the access entry names the roster version, and a newly
    published version takes effect on both workers."""
    config, second, port = two_workers_with_sequencer(tmp_path)
    write_key(tmp_path / "authority.key", authority_signer().key_string)
    table = (f'\n[jurisdictions.us.roster]\nauthority_keys = '
             f'["{authority_signer().verifier().key_string}"]\n')
    for path in (config, second):
        path.write_text(path.read_text() + table)
    j = load_config(config).jurisdiction("us")
    sequencer = start_sequencer_service(j, port)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        first = _publish(tmp_path, config, 1, [ALICE, WEI])
        workers = [start_process(config, "us"), start_process(second, "us")]
        urls = [j.public_url, load_config(second).jurisdiction("us").public_url]
        with httpx.Client(timeout=30.0) as http:
            for url, worker in zip(urls, workers, strict=True):
                wait_healthy(url, worker)
            alice, wei = _token(ALICE), _token(WEI)
            relabelled = _token(WEI, org="ttus", org_kind="local", location="us")
            for url in urls:
                assert _mint(http, url, alice).status_code == 201
                assert _mint(http, url, wei).status_code == 201
                r = _mint(http, url, relabelled)
                assert r.status_code == 401 and r.json()["code"] == "roster_claims_mismatch"
                r = _mint(http, url, _token(ERIN))
                assert r.status_code == 401 and r.json()["code"] == "principal_not_in_roster"
            subject = _mint(http, urls[0], alice).json()["subject"]
            r = http.put(f"{urls[0]}/v1/users/ros", params={"purpose": "operations"},
                         headers={"Authorization": alice}, json={"subject": subject, "values": {
                             "handle": "h-ros", "created_at": "2024-05-01T12:00:00Z",
                             "email": "ros@example.test", "government_id": "GOV-ROS"}})
            assert r.status_code == 200, r.text
            written = r.json()["log"]["index"]

            second_version = _publish(tmp_path, config, 2, [ERIN, WEI])
            erin = _token(ERIN)
            for url in urls:
                assert _until(http, url, erin, 201).status_code == 201
                r = _until(http, url, alice, 401)
                assert r.status_code == 401 and r.json()["code"] == "principal_not_in_roster"
            read = http.get(f"{urls[1]}/v1/users/ros", headers={"Authorization": erin},
                            params={"purpose": "operations", "fields": "handle"})
            assert read.status_code == 200, read.text
            read_index = read.json()["log"]["index"]
    finally:
        for worker in workers:
            stop_process(worker)
        stop_process(sequencer)
    storage = open_storage(j.log.storage)
    try:
        client = LogClient(StorageSource(storage), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        write_entry = parse_entry(client.entry(written, size))
        read_entry = parse_entry(client.entry(read_index, size))
    finally:
        storage.close()
    assert write_entry.type == "write" and write_entry["roster"] == first
    assert read_entry.type == "access" and read_entry["roster"] == second_version
    assert read_entry["principal"] == {**ERIN.to_json()}

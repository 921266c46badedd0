"""Issue 11 item 10 against real processes: secrets 0600, duplicate claims refused,
and a token revocation that every worker of a jurisdiction applies.

Keys here are TEST-ONLY (tests/gateway/deployment.py); never use them anywhere else.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import time
from pathlib import Path

import httpx

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.gateway.auth import TokenIssuer, key_id
from bordergate.log_access import log_verifier
from bordergate.policy.entities import Principal
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.storage import open_storage
from tests.gateway.conftest import (
    BORDERGATE,
    RunningDeployment,
    start_process,
    start_sequencer_service,
    stop_process,
    wait_healthy,
)
from tests.gateway.deployment import (
    Tokens,
    issuer_key,
    issuer_name,
    two_workers_with_sequencer,
    write_deployment,
)

LOCAL = Principal("local-us", "ttus", "local", "us", frozenset({"engineer"}))
#: Files a deployment may leave readable by others: public keys, the public log,
#: the deployment file and the demo's marker.  Everything else is a secret or
#: personal data and must be 0600.
PUBLIC = (  # key-path: where the log key lives, not the key
    "issuer.pub", "checkpoint", "deployment.toml", ".bordergate-demo", "key-path",
    "log.vkey")  # the log's verifier key (issue 12 item 2)
#: Upper bound on how long a worker takes to apply a revocation (docs/design.md
#: says 2 s: POLL_INTERVAL plus the sequencer's checkpoint interval); generous
#: here because the test machine is shared.
REVOCATION_WAIT = 20.0


def _cli(*args: str) -> str:
    proc = subprocess.run([BORDERGATE, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in root.rglob("*") if p.is_file()
            and "tile" not in p.relative_to(root).parts and "log-vkeys" not in str(p)}


def test_every_secret_written_by_demo_init_and_keygen_is_0600(tmp_path: Path) -> None:
    """Issue 11 item 10: the demo's tokens, issuer, log, witness, reviewer and KEK keys,
    pseudonym secrets and stores are written 0600 (the demo tokens were 0644); only
    public keys, the public log and the deployment file may be readable by others."""
    from bordergate.demo import Demo

    demo = Demo(tmp_path / "demo")
    demo.prepare()  # release keygen x6, gateway init
    demo.issue_tokens()
    keys = tmp_path / "demo" / "more-keys"
    keys.mkdir()
    _cli("principal", "keygen", "--key-file", str(keys / "issuer.pem"))
    _cli("witness", "init", "--key-file", str(keys / "witness.key"), "--name", "w.test/w1")
    _cli("log", "init", str(keys / "log"), "--origin", "test.example/log",
         "--key-file", str(keys / "log.key"))
    modes = _modes(tmp_path / "demo")
    assert any(name.startswith("tokens/") for name in modes)
    loose = {name: oct(mode) for name, mode in modes.items()
             if not name.endswith(PUBLIC) and mode != 0o600}
    assert loose == {}
    secrets = [n for n in modes if n.endswith((".jwt", ".pem", ".key", ".secret", "kek.json"))]
    assert len(secrets) >= 15 + 3 + 6 + 3 + 3 + 3 + 3


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _duplicate_roles_token() -> str:
    """A token of the us issuer whose claims name ``roles`` twice: an engineer,
    then an approver (PyJWT alone keeps the last)."""
    now = int(time.time())
    header = json.dumps({"alg": "EdDSA", "kid": key_id(issuer_key("us").public_key())})
    claims = json.dumps({"iss": issuer_name("us"), "aud": "us", "sub": "local-us", "org": "ttus",
                         "org_kind": "local", "loc": "us", "roles": ["engineer"],
                         "iat": now, "exp": now + 300, "jti": "duplicate-roles-001"})
    claims = claims[:-1] + ', "roles": ["approver"]}'
    signing_input = f"{_b64(header.encode())}.{_b64(claims.encode())}"
    signature = issuer_key("us").sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def test_duplicate_claim_is_refused_by_a_running_gateway(running: RunningDeployment) -> None:
    """Issue 11 item 10: a token naming a claim twice gets 401 token_duplicate_claim
    from a real gateway, not the last value's rights."""
    r = httpx.get(f"{running.urls['us']}/v1/approvals",
                  headers={"Authorization": f"Bearer {_duplicate_roles_token()}"}, timeout=10)
    assert r.status_code == 401 and "token_duplicate_claim" in r.text


def _read(http: httpx.Client, url: str, token: str) -> httpx.Response:
    return http.get(f"{url}/v1/users/rev", params={"purpose": "operations", "fields": "email"},
                    headers={"Authorization": f"Bearer {token}"})


def _wait_refused(http: httpx.Client, url: str, token: str) -> None:
    """Until the worker refuses ``token`` on a request that logs nothing (mint a
    subject), at most REVOCATION_WAIT seconds."""
    deadline = time.monotonic() + REVOCATION_WAIT
    while time.monotonic() < deadline:
        r = http.post(f"{url}/v1/subjects", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 401:
            assert "token_revoked" in r.text
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} still accepts the revoked token after {REVOCATION_WAIT} s")


def test_revoked_token_is_refused_by_every_worker(tmp_path: Path, tokens: Tokens) -> None:
    """Issue 11 item 10: `bordergate gateway revoke-token` while two workers of us serve
    appends a token-revoke entry through the sequencer; both workers then refuse the
    token (401 token_revoked, also for the cached token) while another token of the
    same principal still reads, and the revocation is an entry of the signed log."""
    config, second, port = two_workers_with_sequencer(tmp_path)
    j = load_config(config).jurisdiction("us")
    sequencer = start_sequencer_service(load_config(config).jurisdiction("us"), port)
    workers = [start_process(config, "us"), start_process(second, "us")]
    urls = [j.public_url, load_config(second).jurisdiction("us").public_url]
    issuer = TokenIssuer(issuer_key("us"), issuer_name("us"))
    revoked = issuer.issue(LOCAL, audience="us", now=time.time(), jti="stolen-token-00001")
    kept = issuer.issue(LOCAL, audience="us", now=time.time(), jti="other-token-000001")
    try:
        with httpx.Client(timeout=30.0) as http:
            for url, worker in zip(urls, workers, strict=True):
                wait_healthy(url, worker)
            headers = tokens.header(LOCAL, "us")
            subject = http.post(f"{urls[0]}/v1/subjects", headers=headers).json()["subject"]
            r = http.put(f"{urls[0]}/v1/users/rev", params={"purpose": "operations"},
                         headers=headers, json={"subject": subject, "values": {
                             "handle": "h-rev", "created_at": "2024-05-01T12:00:00Z",
                             "email": "rev@example.test", "government_id": "GOV-REV"}})
            assert r.status_code == 200, r.text
            for url in urls:  # valid, and now cached by both workers
                assert _read(http, url, revoked).status_code == 200
            out = json.loads(_cli("gateway", "revoke-token", "--config", str(config),
                                  "-j", "us", "--jti", "stolen-token-00001",
                                  "--reason", "reported stolen"))
            for url in urls:
                _wait_refused(http, url, revoked)
                r = _read(http, url, revoked)
                assert r.status_code == 401 and "token_revoked" in r.text
                assert _read(http, url, kept).status_code == 200
    finally:
        for worker in workers:
            stop_process(worker)
        stop_process(sequencer)
    storage = open_storage(j.log.storage)
    try:
        client = LogClient(StorageSource(storage), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        entry = parse_entry(client.entry(out["log"]["index"], size))
    finally:
        storage.close()
    assert entry.type == "token-revoke" and entry["jti"] == "stolen-token-00001"


def test_revoke_token_refuses_a_malformed_jti(tmp_path: Path) -> None:
    """A jti the verifier would never accept is refused with invalid_jti, nothing logged."""
    config = write_deployment(tmp_path)
    proc = subprocess.run([BORDERGATE, "gateway", "revoke-token", "--config", str(config),
                           "-j", "us", "--jti", "no"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "invalid_jti" in proc.stderr


def test_principal_issue_default_lifetime_is_short(tmp_path: Path) -> None:
    """Issue 11 item 10: `bordergate principal issue` mints 15-minute tokens by default."""
    key = tmp_path / "issuer.pem"
    _cli("principal", "keygen", "--key-file", str(key))
    token = _cli("principal", "issue", "--key-file", str(key), "--issuer", "https://i",
                 "--audience", "us", "--id", "a", "--org", "o", "--org-kind", "local",
                 "--location", "us").strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["exp"] - claims["iat"] == 900 and len(claims["jti"]) >= 16


CUSTODIAN = Principal("carol", "usdsp", "custodian", "us", frozenset({"approver"}))


def test_custodian_revokes_through_the_gateway_at_once(running: RunningDeployment,
                                                       tokens: Tokens) -> None:
    """Issue 11 item 10: with the embedded sequencer (the demo's single worker) a
    custodian principal of us revokes a token through POST /v1/tokens/revoke; the
    very next request with it is refused (token_revoked) by that worker, with no
    wait, and the revocation is a token-revoke entry of the log.  A local engineer
    may not revoke (403 token_revoke_forbidden)."""
    url = running.urls["us"]
    issuer = TokenIssuer(issuer_key("us"), issuer_name("us"))
    victim = issuer.issue(LOCAL, audience="us", now=time.time(), jti="revoke-over-http-01")
    with httpx.Client(timeout=30.0) as http:
        assert http.post(f"{url}/v1/subjects",
                         headers={"Authorization": f"Bearer {victim}"}).status_code == 201
        r = http.post(f"{url}/v1/tokens/revoke", headers=tokens.header(LOCAL, "us"),
                      json={"jti": "revoke-over-http-01"})
        assert r.status_code == 403 and "token_revoke_forbidden" in r.text
        r = http.post(f"{url}/v1/tokens/revoke", headers=tokens.header(CUSTODIAN, "us"),
                      json={"jti": "revoke-over-http-01", "reason": "laptop lost"})
        assert r.status_code == 200, r.text
        index = r.json()["log"]["index"]
        r = http.post(f"{url}/v1/subjects", headers={"Authorization": f"Bearer {victim}"})
        assert r.status_code == 401 and "token_revoked" in r.text
        raw = http.get(f"{url}/v1/log/proof/{index}").json()
    assert raw["index"] == index
    storage = open_storage(running.deployment.jurisdiction("us").log.storage)
    try:
        j = running.deployment.jurisdiction("us")
        client = LogClient(StorageSource(storage), log_verifier(j))
        entry = parse_entry(client.entry(index, client.checkpoint().checkpoint.size))
    finally:
        storage.close()
    assert entry.type == "token-revoke" and entry["jti"] == "revoke-over-http-01"
    assert entry["by"]["id"] == "carol"

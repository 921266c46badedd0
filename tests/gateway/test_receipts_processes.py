"""Receipts against real gateway processes (issue 12, item 5).

Acceptance: "a lying denial is proven from a receipt".  A compromised gateway
(``tests/gateway/lying_gateway.py``: the real gateway with its read path
replaced from the outside) logs an honest-looking denial, or an under-reported
``released`` list, and releases the data anyway; the witnessed log verifies and
the audit's replay agrees with the denial, so only the receipt the gateway
signed shows the lie: ``bordergate receipt verify`` proves it against the real
published log (exit 1, naming the discrepancy).  Also: an honest read's receipt
verifies end to end, and a tampered answer fails the client's check.

Keys are TEST-ONLY (fixed seeds: tests/gateway/deployment.py, the witness below).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bordergate.client import GatewayClient
from bordergate.config import load_config
from bordergate.errors import VerificationError
from bordergate.log_access import log_verifier
from bordergate.policy.entities import Principal
from bordergate.tlog.cosignature import CosignatureSigner
from tests.gateway.conftest import BORDERGATE, RunningDeployment, stop_process, wait_healthy
from tests.gateway.deployment import Tokens, free_port, receipt_signer, write_deployment

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
PARENT = Principal("bob", "bytedance", "parent", "cn", frozenset({"engineer"}))
SECRET_EMAIL = "receipt-secret@example.test"
VALUES = {"handle": "receipts", "email": SECRET_EMAIL, "created_at": "2024-01-01T00:00:00Z"}


def _witness_signer() -> CosignatureSigner:
    """TEST-ONLY witness key (fixed seed)."""
    return CosignatureSigner("witness.receipts.test/w1",
                             hashlib.sha256(b"bordergate TEST-ONLY receipts witness").digest(),
                             lambda: int(time.time()))


def _log_vkey(config: Path, code: str) -> str:
    return log_verifier(load_config(config).jurisdiction(code)).key_string


def _verify(receipt: Path, log_url: str, vkey: str, *options: str
            ) -> subprocess.CompletedProcess[str]:
    """``bordergate receipt verify`` as a monitor runs it, retried while the log's
    checkpoint does not cover the entry yet (exit 3)."""
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            [BORDERGATE, "receipt", "verify", str(receipt), "--vkey", vkey, "--log", log_url,
             "--gateway-key", receipt_signer("us").verifier().key_string, *options],
            capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 3 or time.monotonic() > deadline:
            return done
        time.sleep(0.3)


def _receipt_file(directory: Path, index: int) -> Path:
    found = list(directory.glob(f"*-{index}.receipt.json"))
    assert len(found) == 1, sorted(p.name for p in directory.iterdir())
    return found[0]


@dataclass
class Lying:
    config: Path
    url: str
    witness_vkey: str
    tmp: Path

    def client(self, who: Principal, receipts: str) -> GatewayClient:
        return GatewayClient(self.url, Tokens().token(who, "us"), gateways={"us": self.url},
                             receipt_keys={"us": receipt_signer("us").verifier().key_string},
                             receipt_dir=self.tmp / receipts)


@pytest.fixture
def lying(tmp_path: Path) -> Iterator[Lying]:
    """The us gateway, compromised, with a witness (quorum 1) cosigning its log."""
    config = write_deployment(tmp_path / "deployment")
    witness = _witness_signer()
    key_file = tmp_path / "witness.key"
    key_file.write_text(witness.key_string + "\n")
    port = free_port()
    log_vkey = _log_vkey(config, "us")
    processes = [subprocess.Popen(
        [BORDERGATE, "witness", "serve", "--key-file", str(key_file), "--state",
         str(tmp_path / "witness.db"), "--log", f"us.bordergate.test/log={log_vkey}",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    wvkey = witness.verifier().key_string
    text = config.read_text().replace(
        'key_file = "us/log.key"\n',
        f'key_file = "us/log.key"\nwitnesses = [ {{ url = "http://127.0.0.1:{port}", '
        f'vkey = "{wvkey}" }} ]\nquorum = 1\n')
    config.write_text(text)
    url = load_config(config).jurisdiction("us").public_url
    try:
        wait_healthy_witness(port, processes[0])
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.lying_gateway", str(config), "us"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        wait_healthy(url, processes[1])
        yield Lying(config, url, wvkey, tmp_path)
    finally:
        for process in processes:
            stop_process(process)


def wait_healthy_witness(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("witness exited")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("witness did not start")


def test_a_lying_denial_is_proven_from_a_receipt(lying: Lying) -> None:
    """Issue 12 acceptance (a lying denial is proven from a receipt), promise 3: the
    compromised gateway logs a denial of the parent's read of a protected field (the
    entry the policy's replay agrees with) but sends the value; the client's checks
    pass (the receipt matches what it got) and the monitor holding the receipt proves
    the lie against the real, witnessed log: exit 1, naming the denial."""
    with lying.client(LOCAL, "local") as local:
        subject = local.mint_subject()
        local.write("users", subject, subject, VALUES, purpose="operations")
    with lying.client(PARENT, "parent") as parent:
        got = parent.read("users", subject, purpose="operations", fields=["email"])
    assert got.fields == {"email": SECRET_EMAIL}  # released although the policy denied it
    assert got.receipt is not None and got.receipt.fields == ("email",)
    receipt = _receipt_file(lying.tmp / "parent", got.log_index)
    done = _verify(receipt, lying.url + "/v1/log", _log_vkey(lying.config, "us"),
                   "--witness", lying.witness_vkey)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cosigned by witness.receipts.test/w1" in done.stdout
    assert "INCONSISTENT" in done.stdout
    assert "records outcome 'deny' (a denial)" in done.stdout
    assert "released ['email'] without an allowing decision" in done.stdout
    assert SECRET_EMAIL not in done.stdout + receipt.read_text()  # the receipt holds no value


def test_an_under_reported_release_is_proven_from_a_receipt(lying: Lying) -> None:
    """Issue 12 (a release logged with an under-reported ``released`` list), promise 3:
    the compromised gateway leaves ``email`` out of the entry's released list but sends
    it; ``receipt verify`` against the witnessed log names the under-reported field."""
    with lying.client(LOCAL, "local") as local:
        subject = local.mint_subject()
        local.write("users", subject, subject, VALUES, purpose="operations")
        got = local.read("users", subject, purpose="operations", fields=["handle", "email"])
    assert got.fields["email"] == SECRET_EMAIL
    done = _verify(_receipt_file(lying.tmp / "local", got.log_index), lying.url + "/v1/log",
                   _log_vkey(lying.config, "us"), "--witness", lying.witness_vkey)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("released ['email'] which the entry's released list ['handle'] does not name "
            "(an under-reported release)") in done.stdout


def test_honest_read_receipt_verifies_end_to_end(running: RunningDeployment, tokens: Tokens,
                                                 tmp_path: Path) -> None:
    """Issue 12, item 5: an honest gateway's read carries a receipt that the client
    checks and that ``receipt verify`` proves consistent with the published log
    (exit 0, also as JSON with --json); a receipt checked against another log, or under a
    key that is not the gateway's, is not (exit 1), and bad options are usage errors
    (exit 2)."""
    url = running.urls["us"]
    with GatewayClient(url, tokens.token(LOCAL, "us"), gateways=running.urls,
                       receipt_keys={"us": receipt_signer("us").verifier().key_string},
                       receipt_dir=tmp_path) as client:
        subject = client.mint_subject()
        client.write("users", subject, subject, VALUES, purpose="operations")
        got = client.read("users", subject, purpose="operations", fields=["handle", "email"])
    assert client.receipts and client.receipts[-1].receipt == got.receipt
    receipt = _receipt_file(tmp_path, got.log_index)
    vkey = _log_vkey(running.path, "us")
    done = _verify(receipt, url + "/v1/log", vkey)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CONSISTENT" in done.stdout and "registered by the gateway-start entry" in done.stdout
    as_json = _verify(receipt, url + "/v1/log", vkey, "--json")  # the same, for scripts
    result = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and result["ok"] and result["consistent"], as_json.stdout
    assert result["receipt"]["index"] == got.log_index and result["registered_at"] is not None
    other = _verify(receipt, running.urls["eu"] + "/v1/log", _log_vkey(running.path, "eu"))
    assert other.returncode == 1 and "receipt_wrong_log" in other.stderr
    wrong_key = subprocess.run(
        [BORDERGATE, "receipt", "verify", str(receipt), "--gateway-key",
         receipt_signer("eu").verifier().key_string], capture_output=True, text=True,
        check=False)
    assert wrong_key.returncode == 1 and "receipt_key_untrusted" in wrong_key.stderr
    usage = subprocess.run([BORDERGATE, "receipt", "verify", str(receipt), "--log", url],
                           capture_output=True, text=True, check=False)
    assert usage.returncode == 2


class _Tampering(httpx.BaseTransport):
    """Changes one released value in every answer that has one (an attacker on the
    path, or a gateway whose body and receipt disagree)."""

    def __init__(self, strip: bool = False) -> None:
        self._inner = httpx.HTTPTransport()
        self._strip = strip

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.read()
        body = json.loads(response.content) if response.content else None
        if not isinstance(body, dict) or "receipt" not in body:
            return response
        if self._strip:
            del body["receipt"]
        else:
            body["fields"]["email"] = "someone-else@example.test"
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return httpx.Response(response.status_code, headers=headers, json=body)

    def close(self) -> None:
        self._inner.close()


@pytest.mark.parametrize(("strip", "code"), [(False, "receipt_digest_mismatch"),
                                             (True, "receipt_missing")],
                         ids=["value-changed", "receipt-removed"])
def test_tampered_answer_fails_the_client_check(running: RunningDeployment, tokens: Tokens,
                                                strip: bool, code: str) -> None:
    """Issue 12, item 5: the client refuses an answer whose values are not those the
    receipt's digest covers, or that releases data without a receipt."""
    url = running.urls["us"]
    with GatewayClient(url, tokens.token(LOCAL, "us"), gateways=running.urls) as honest:
        subject = honest.mint_subject()
        honest.write("users", subject, subject, VALUES, purpose="operations")
    with GatewayClient(url, tokens.token(LOCAL, "us"), gateways=running.urls,
                       transport=_Tampering(strip)) as client, \
            pytest.raises(VerificationError) as caught:
        client.read("users", subject, purpose="operations", fields=["handle", "email"])
    assert caught.value.code == code
    assert client.receipts == []

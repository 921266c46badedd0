"""The log operator is not the gateway (issue 12 item 2), against real processes.

The log's sequencer runs as its own process (``bordergate log sequencer --config F
-j us``) and alone holds the log key; the us gateway, the release tooling and the
key custodian each append with their own credential, and every entry names the
credential the sequencer accepted it from.  A gateway that names the log key
outside the development profile refuses to start.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bordergate.appender import stamp
from bordergate.config import Deployment, load_config
from bordergate.entries import encode_entry, parse_entry
from bordergate.errors import ConfigError, Unavailable
from bordergate.log_access import log_verifier, refuse_gateway_log_key, remote_appender
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.profile import Profile
from bordergate.tlog.client import DirectorySource, LogClient
from bordergate.tlog.credentials import AppendCredential
from bordergate.tlog.logdir import write_key
from bordergate.tlog.remote import RemoteSequencer
from tests.gateway.conftest import BORDERGATE, start_process, stop_process, wait_healthy
from tests.gateway.deployment import (
    free_port,
    second_worker,
    use_sequencer_service,
    write_deployment,
)
from tests.releases.keys import reviewer_signer


@dataclass
class Operated:
    """us with its sequencer process running (and the config naming it)."""

    config: Path
    deployment: Deployment
    sequencer: subprocess.Popen[bytes]

    def entries(self) -> list[dict[str, object]]:
        j = self.deployment.jurisdiction("us")
        client = LogClient(DirectorySource(Path(j.log.storage)), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        return [dict(parse_entry(client.entry(i, size)).body) for i in range(size)]


def start_log_operator(config: Path, code: str = "us") -> subprocess.Popen[bytes]:
    """``bordergate log sequencer --config F -j CODE``, returned once it answers."""
    j = load_config(config).jurisdiction(code)
    assert j.sequencer is not None
    url = f"http://{j.sequencer.listen_host}:{j.sequencer.listen_port}/checkpoint"
    process = subprocess.Popen([BORDERGATE, "log", "sequencer", "--config", str(config),
                                "--jurisdiction", code, "--interval", "0.1",
                                "--unwitnessed"],  # development: the test has no witnesses
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"sequencer exited: {err[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("sequencer did not start")


@pytest.fixture
def operated(tmp_path: Path) -> Iterator[Operated]:
    """A TEST-ONLY deployment whose us log has its own sequencer process; us has
    one reviewer (alice) and a policy bundle copy to propose."""
    config = write_deployment(tmp_path)
    shutil.copytree(DEFAULT_BUNDLE_PATH, tmp_path / "policy")
    alice = reviewer_signer("alice")
    (tmp_path / "alice.key").write_text(alice.key_string + "\n")
    text = config.read_text().replace("[deployment]\n", '[deployment]\npolicy_bundle = "policy"\n')
    text = text.replace("[jurisdictions.us]\n", '[jurisdictions.us]\nreviewers = [{ name = '
                        f'"alice", public_key = "{alice.verifier().key_string}" }}]\n'
                        "required_approvals = 1\n")
    config.write_text(text)
    use_sequencer_service(config, free_port())
    sequencer = start_log_operator(config)
    try:
        yield Operated(config, load_config(config), sequencer)
    finally:
        stop_process(sequencer)


def _run(*argv: str) -> str:
    """Run a CLI command to success; its standard output."""
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (argv, done.stderr)
    return done.stdout


def _refusal(url: str) -> str:
    """The code a refusing gateway answers with (it serves 503 when it cannot start)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/healthz", timeout=1)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        assert r.status_code == 503, r.text
        return str(r.json()["code"])
    raise AssertionError(f"{url} did not answer")


def test_gateway_naming_the_log_key_refuses_outside_development(tmp_path: Path) -> None:
    """Issue 12.2: under the demo profile a gateway whose log table names key_file
    serves only 503 gateway_holds_log_key (a real process); production refuses it
    too and development allows it (the embedded sequencer)."""
    config = write_deployment(tmp_path)
    config.write_text(config.read_text().replace('profile = "development"', 'profile = "demo"'))
    deployment = load_config(config)
    eu = deployment.jurisdiction("eu")
    process = start_process(config, "eu")
    try:
        assert _refusal(eu.public_url) == "gateway_holds_log_key"
    finally:
        stop_process(process)
    with pytest.raises(ConfigError) as refused:
        refuse_gateway_log_key(Profile.PRODUCTION, eu)
    assert refused.value.code == "gateway_holds_log_key"
    refuse_gateway_log_key(Profile.DEVELOPMENT, eu)


def test_gateway_with_a_wrong_credential_is_refused_by_the_sequencer(
        operated: Operated) -> None:
    """Issue 12.2: a worker presenting us-gw-1 with another secret is refused by the
    log operator (401), so it cannot log its start and serves only 503."""
    forged = operated.config.parent / "us" / "forged.cred"
    write_key(forged, AppendCredential.issue("us-gw-1").token)
    other = second_worker(operated.config, "us", name="forged.toml")
    other.write_text(other.read_text().replace("us/us-gw-1.cred", "us/forged.cred"))
    url = load_config(other).jurisdiction("us").public_url
    before = len(operated.entries())
    process = start_process(other, "us")
    try:
        assert _refusal(url) == "sequencer_credential_refused"
    finally:
        stop_process(process)
    assert len(operated.entries()) == before


def test_entry_claiming_another_appender_is_refused(operated: Operated) -> None:
    """Issue 12.2: with the gateway's credential, an entry naming the release tool's
    credential (or none) is refused by the sequencer process; nothing is logged."""
    j = operated.deployment.jurisdiction("us")
    assert j.log.sequencer is not None
    credential = j.log.sequencer.credential_file.read_text().strip()
    entry = encode_entry("token-revoke", time.time(), {"jti": "j", "by": "custodian"})

    async def send(raw: bytes) -> str:
        remote = RemoteSequencer(j.log.sequencer.url if j.log.sequencer else "", credential,
                                 log_verifier(j))
        try:
            await remote.append_many([raw])
        except Unavailable as e:
            return e.code
        finally:
            await remote.aclose()
        return "accepted"
    before = len(operated.entries())
    assert asyncio.run(send(stamp(entry, "us-release"))) == "appender_mismatch"
    assert asyncio.run(send(entry)) == "appender_missing"
    assert len(operated.entries()) == before
    assert asyncio.run(send(stamp(entry, "us-gw-1"))) == "accepted"


def test_releases_keys_and_revocations_go_through_the_running_sequencer(
        operated: Operated) -> None:
    """Issue 12.2 (promise 6): while the sequencer process and the gateway run,
    `release propose/review`, `keys rotate` and `gateway revoke-token` succeed
    through it, each entry naming its own credential; a promise of inclusion
    comes back for an entry appended with one."""
    us = operated.deployment.jurisdiction("us")
    gateway = start_process(operated.config, "us")
    try:
        wait_healthy(us.public_url, gateway)
        common = ["--config", str(operated.config), "--jurisdiction", "us"]
        proposed = _run(BORDERGATE, "release", "propose", *common)
        index = proposed.split(" at entry ")[1].split()[0]
        _run(BORDERGATE, "release", "review", index, *common, "--key-file",
             str(operated.config.parent / "alice.key"), "--verdict", "approve",
             "--note", "read it")
        _run(BORDERGATE, "keys", "rotate", *common)
        _run(BORDERGATE, "gateway", "revoke-token", *common, "--jti", "jti-0123456789abcdef")
    finally:
        stop_process(gateway)
    by_type: dict[str, set[object]] = {}
    for body in operated.entries():
        by_type.setdefault(str(body["type"]), set()).add(body.get("appender"))
    assert by_type["gateway-start"] == {"us-gw-1"}
    assert by_type["release"] == by_type["release-review"] == {"us-release"}
    assert by_type["key-event"] == by_type["token-revoke"] == {"us-custodian"}

    async def promised() -> None:
        remote = remote_appender(us, us.log.sequencer.credential_file
                                 if us.log.sequencer else Path())
        try:
            body = {"jti": "jti-2123456789abcdef", "by": "custodian"}
            entry = stamp(encode_entry("token-revoke", time.time(), body), "us-gw-1")
            first, promises = await remote.inner.append_promised([entry])
            assert promises[0].index == first and promises[0].covers(entry)
        finally:
            await remote.aclose()
    asyncio.run(promised())


def test_receipt_of_a_gateway_on_the_log_operator_names_the_logged_bytes(
        operated: Operated, tmp_path: Path) -> None:
    """Issue 12.2 with 12.5: the sequencer logs the entry stamped with the gateway's
    credential, so a receipt's leaf hash must be that of the stamped bytes; an
    honest read's receipt, from a gateway appending through the sequencer process,
    verifies end to end with `bordergate receipt verify` against the published log."""
    from bordergate.client import GatewayClient
    from bordergate.tlog.merkle import leaf_hash
    from tests.gateway.deployment import Tokens, receipt_signer
    from tests.gateway.test_receipts_processes import LOCAL, VALUES, _receipt_file, _verify

    us = operated.deployment.jurisdiction("us")
    gateway = start_process(operated.config, "us")
    try:
        wait_healthy(us.public_url, gateway)
        with GatewayClient(us.public_url, Tokens().token(LOCAL, "us"),
                           gateways={"us": us.public_url},
                           receipt_keys={"us": receipt_signer("us").verifier().key_string},
                           receipt_dir=tmp_path / "receipts") as client:
            subject = client.mint_subject()
            client.write("users", subject, subject, VALUES, purpose="operations")
            got = client.read("users", subject, purpose="operations", fields=["handle"])
        receipt = _receipt_file(tmp_path / "receipts", got.log_index)
        done = _verify(receipt, us.public_url + "/v1/log", log_verifier(us).key_string)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        stop_process(gateway)
    j = operated.deployment.jurisdiction("us")
    client_log = LogClient(DirectorySource(Path(j.log.storage)), log_verifier(j))
    size = client_log.checkpoint().checkpoint.size
    logged = client_log.entry(got.log_index, size)
    assert b'"appender":"us-gw-1"' in logged
    assert got.receipt is not None
    assert got.receipt.leaf_hash == leaf_hash(logged)

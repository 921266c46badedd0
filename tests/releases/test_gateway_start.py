"""The real gateway start-up and the ``bordergate release`` commands together (promise 6).

A TEST-ONLY deployment (tests/gateway/deployment.py) with two of three
reviewers required in ``us`` and the policy bundle in a temporary copy: the
gateway refuses to start until ``release propose`` and two ``release review``
approvals, starts after them, refuses again after one changed policy byte, and an
``--unreviewed`` start is logged and flagged.  The package is the installed one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.config import Deployment, load_config
from bordergate.errors import ConfigError
from bordergate.gateway.startup import start_gateway
from bordergate.log_access import log_verifier
from bordergate.releases.selfcheck import default_index_file
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.storage import open_storage
from tests.releases.keys import reviewer_signer
from tests.releases.reviewed_deployment import cli, ledger, reviewed_deployment, start


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A provisioned TEST-ONLY deployment; us has 3 reviewers, 2 required."""
    return reviewed_deployment(tmp_path, extra_keys=("mallory",))


def test_gateway_starts_only_after_propose_and_reviews(deployment: Path) -> None:
    """Promise 6: refuse, propose, two reviews, start; one policy byte changed: refuse."""
    root = deployment.parent
    with pytest.raises(ConfigError) as info:
        start(deployment)
    assert info.value.code == "release_package_not_approved"
    assert f"bordergate release propose --config {deployment} --jurisdiction us" \
        in str(info.value)

    code, out = cli("release", "propose", "--config", deployment, "--jurisdiction", "us")
    assert code == 0, out
    first_index = out.split("proposed at entry ")[1].split()[0]
    code, out = cli("release", "review", first_index, "--config", deployment, "--jurisdiction",
                    "us", "--key-file", root / "alice.key", "--verdict", "approve",
                    "--note", "read it all")
    assert code == 0, out
    with pytest.raises(ConfigError):
        start(deployment)  # one of two approvals
    code, out = cli("release", "review", first_index, "--config", deployment, "--jurisdiction",
                    "us", "--key-file", root / "mallory.key", "--verdict", "approve",
                    "--note", "trust me")
    assert code == 2 and "reviewer_not_configured" in out
    code, out = cli("release", "review", first_index, "--config", deployment, "--jurisdiction",
                    "us", "--key-file", root / "bob.key", "--verdict", "approve", "--note", "ok")
    assert code == 0, out

    dep = load_config(deployment)
    approved = ledger(dep).find(first_index)
    assert approved is not None and approved.state == "approved"
    assert start(deployment) == approved.id
    assert default_index_file(dep.jurisdiction("us")).exists()

    cedar = root / "policy" / "policies.cedar"
    cedar.write_bytes(cedar.read_bytes().replace(b"permit", b"permit ", 1))
    with pytest.raises(ConfigError) as info:
        start(deployment)
    assert info.value.code == "release_policy_not_approved"

    assert start(deployment, unreviewed=True) is None
    state = ledger(dep)
    assert [s.reviewed for s in state.starts] == [True, False]
    assert [f.code for f in state.findings] == ["unreviewed_start"]

    code, out = cli("release", "propose", "--config", deployment, "--jurisdiction", "us")
    assert code == 0, out
    second_index = out.split("proposed at entry ")[1].split()[0]
    code, out = cli("release", "diff", first_index, second_index, "--config", deployment,
                    "--jurisdiction", "us")
    assert code == 0, out
    assert "changed  policy/policies.cedar" in out and "package/" not in out

    code, out = cli("release", "status", "--config", deployment, "--jurisdiction", "us")
    assert code == 0, out
    assert "approved" in out and "pending" in out and "unreviewed_start" in out
    assert "review throughput: 2 proposed, 1 decided, 1 pending" in out
    code, out = cli("release", "status", "--config", deployment, "--jurisdiction", "us",
                    "--json")
    status = json.loads(out)
    assert [r["state"] for r in status["releases"]] == ["approved", "pending"]
    assert status["throughput"]["pending"] == 1


def test_propose_while_the_gateway_runs_is_refused_clearly(deployment: Path) -> None:
    """Promise 6 (operations): the log has one writer; propose says the log is busy."""
    async def run() -> tuple[int, str]:
        gateway = await start_gateway(load_config(deployment), "us", unreviewed=True)
        try:
            return await asyncio.to_thread(cli, "release", "propose", "--config", deployment,
                                           "--jurisdiction", "us")
        finally:
            gateway.close()
    code, out = asyncio.run(run())
    assert code == 1 and "log_writer_busy" in out and "is busy" in out  # refused


def test_keygen_writes_a_private_key_and_prints_the_public_one(tmp_path: Path) -> None:
    """Promise 6: a reviewer key is created 0600 and its public key goes into the config."""
    key = tmp_path / "dora.key"
    code, out = cli("release", "keygen", "--key-file", key, "--name", "dora")
    assert code == 0, out
    assert key.stat().st_mode & 0o777 == 0o600
    assert read_signer(key).verifier().key_string == out.strip().splitlines()[-1]
    code, out = cli("release", "keygen", "--key-file", key, "--name", "dora")
    assert code == 2 and "key_file_exists" in out


def test_production_profile_refuses_an_unreviewed_start(deployment: Path) -> None:
    """Profiles (promise 6): under the production profile `--unreviewed` is refused
    before anything is opened or logged, by start_gateway and by `gateway serve`
    (exit 2); only demo and development deployments may start unreviewed."""
    from bordergate.residency.schema import demo_schema_path

    text = deployment.read_text().replace(
        'profile = "development"\n', f'schema = "{demo_schema_path()}"\n')
    authority = reviewer_signer("roster-authority").verifier().key_string  # TEST-ONLY
    for code in ("us", "eu", "cn"):
        text = text.replace(f"[jurisdictions.{code}]\n", f"[jurisdictions.{code}]\n"
                            f'roster = {{ authority_keys = ["{authority}"] }}\n')
        text = text.replace(f'pseudonym_secret_file = "{code}/pseudonym.secret"\n',
                            f'pseudonym_secret_file = "{code}/pseudonym.secret"\n'
                            'witnesses = [{ url = "http://127.0.0.1:9", vkey = "w+1+x" }]\n'
                            "quorum = 1\n")
    deployment.write_text(text)
    production = load_config(deployment)
    assert production.profile.value == "production"
    size_before = _log_size(production)
    with pytest.raises(ConfigError) as info:
        asyncio.run(start_gateway(production, "us", unreviewed=True))
    assert info.value.code == "unreviewed_refused"
    result = CliRunner().invoke(app, ["gateway", "serve", "--config", str(deployment),
                                      "--jurisdiction", "us", "--unreviewed"])
    assert result.exit_code == 2 and "unreviewed_refused" in result.output
    assert _log_size(production) == size_before


def _log_size(deployment: Deployment) -> int:
    j = deployment.jurisdiction("us")
    storage = open_storage(j.log.storage)
    try:
        return LogClient(StorageSource(storage), log_verifier(j)
                         ).checkpoint().checkpoint.size
    finally:
        storage.close()


def test_release_commands_print_json(deployment: Path) -> None:
    """Issue 16 item 5 (docs/cli.md): `release propose`, `review` and `diff` with `--json`
    (and `-j`) print one JSON document on stdout whose members agree with the log: the
    release id and digests the ledger holds, the approvals it counts, the changed files;
    a refusal with `--json` is the common JSON error with its stable code."""
    root = deployment.parent
    runner = CliRunner()

    def run(*args: str | Path) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args])
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("release", "propose", "--config", deployment, "-j", "us", "--json")
    assert code == 0, err
    proposed = json.loads(out)
    dep = load_config(deployment)
    record = ledger(dep).find(str(proposed["index"]))
    assert record is not None and proposed["ok"] is True
    assert (proposed["release"], proposed["jurisdiction"], proposed["log"]) == \
        (record.id, "us", dep.jurisdiction("us").log.origin)
    assert (proposed["package"], proposed["policy"]) == \
        (record.manifest.package_digest, record.manifest.policy_digest)
    assert proposed["package_files"] == len(record.manifest.package_files)
    assert proposed["required_approvals"] == 2 and proposed["runtime"] is None
    assert proposed["bundle"].endswith(record.manifest.policy_digest.replace(":", "-") + ".tar")

    review = ("release", "review", proposed["release"][:20], "--config", deployment, "-j", "us",
              "--verdict", "approve", "--json")
    code, out, err = run(*review, "--key-file", root / "alice.key", "--note", "read it")
    assert code == 0, err
    first = json.loads(out)
    assert (first["release"], first["reviewer"], first["verdict"]) == \
        (proposed["release"], "alice", "approve")
    assert (first["approvals"], first["required"], first["state"]) == (["alice"], 2, "pending")
    assert first["index"] == proposed["index"] + 1
    code, out, err = run(*review, "--key-file", root / "mallory.key", "--note", "trust me")
    refused = json.loads(out)
    assert (code, refused["ok"], refused["error"]) == (2, False, "reviewer_not_configured")
    assert "error [reviewer_not_configured]" in err
    code, out, err = run(*review, "--key-file", root / "bob.key", "--note", "ok")
    assert code == 0, err
    second = json.loads(out)
    assert (second["approvals"], second["state"]) == (["alice", "bob"], "approved")

    cedar = root / "policy" / "policies.cedar"
    cedar.write_bytes(cedar.read_bytes().replace(b"permit", b"permit ", 1))
    code, out, err = run("release", "propose", "--config", deployment, "-j", "us", "--json")
    assert code == 0, err
    changed = json.loads(out)
    assert changed["package"] == proposed["package"] and changed["policy"] != proposed["policy"]
    code, out, err = run("release", "diff", str(proposed["index"]), str(changed["index"]),
                         "--config", deployment, "-j", "us", "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert (diff["old"], diff["new"]) == (
        {"release": proposed["release"], "index": proposed["index"]},
        {"release": changed["release"], "index": changed["index"]})
    assert diff["files"] == [{"change": "changed", "name": "policy/policies.cedar"}]
    assert diff["dependencies"] == [] and diff["empty"] is False
    code, out, err = run("release", "diff", "999", str(changed["index"]),
                         "--config", deployment, "-j", "us", "--json")
    missing = json.loads(out)
    assert (code, missing["ok"], missing["error"]) == (2, False, "release_not_found")

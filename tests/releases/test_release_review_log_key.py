"""Which log operator a gateway trusts is a reviewed setting (promise 6; no single party).

The deployment slice named the log's ``origin``, its witnesses and their
quorum, but not the log's own verifier key: the key that says which log
operator's signatures the gateway believes, for the release entries its
self-check reads and for every entry it follows.  A custodian could therefore
become its own log operator without review: sign a shadow log under the same
origin with a key of its own, copy the real log's release and review entries
into it verbatim (reviews sign the origin, the release and the entry time,
all unchanged), and point the gateway's ``log.storage``/``vkey_file`` (or
``key_file``) at it.  The gateway started "reviewed" on the shadow log and
logged there, out of sight of the real log's auditors and witnesses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.config import load_config
from bordergate.errors import ConfigError
from bordergate.gateway.startup import start_gateway
from bordergate.log_access import log_verifier
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.tlog.client import LogClient, StorageSource
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage import open_storage
from bordergate.tlog.storage.fs import FileStorage
from tests.gateway.deployment import write_deployment
from tests.releases.keys import reviewer_signer

REVIEWERS = ("alice", "bob")


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A TEST-ONLY deployment; us has 2 reviewers, 2 required."""
    path = write_deployment(tmp_path)
    shutil.copytree(DEFAULT_BUNDLE_PATH, tmp_path / "policy")
    keys = {n: reviewer_signer(n).verifier().key_string for n in REVIEWERS}
    listed = ", ".join(f'{{ name = "{n}", public_key = "{k}" }}' for n, k in keys.items())
    text = path.read_text().replace("[deployment]\n", '[deployment]\npolicy_bundle = "policy"\n')
    text = text.replace("[jurisdictions.us]\n", f"[jurisdictions.us]\nreviewers = [{listed}]\n"
                        "required_approvals = 2\n")
    path.write_text(text)
    for n in REVIEWERS:
        (tmp_path / f"{n}.key").write_text(reviewer_signer(n).key_string + "\n")
    return path


def _approve(config: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["release", "propose", "--config", str(config),
                              "--jurisdiction", "us"])
    assert out.exit_code == 0, out.output
    index = out.output.split("proposed at entry ")[1].split()[0]
    for n in REVIEWERS:
        out = runner.invoke(app, ["release", "review", index, "--config", str(config),
                                  "--jurisdiction", "us", "--key-file",
                                  str(config.parent / f"{n}.key"), "--verdict", "approve",
                                  "--note", "read it"])
        assert out.exit_code == 0, out.output


def _start(config: Path) -> str | None:
    async def run() -> str | None:
        gateway = await start_gateway(load_config(config), "us", unreviewed=False)
        gateway.close()
        return gateway.release
    return asyncio.run(run())


def test_a_shadow_log_under_the_custodians_own_key_is_not_a_reviewed_setting(
        deployment: Path) -> None:
    """Promise 6 and the log operator's separation: a gateway pointed at a log
    signed by another key than the one its approved release names refuses to start
    (``release_deployment_not_approved``, naming the ``log`` setting)."""
    _approve(deployment)
    root = deployment.parent
    assert _start(deployment) is not None  # the honest deployment starts reviewed
    j = load_config(deployment).jurisdiction("us")
    real = open_storage(j.log.storage)
    try:
        client = LogClient(StorageSource(real), log_verifier(j))
        size = client.checkpoint().checkpoint.size
        entries = [client.entry(i, size) for i in range(size)]
    finally:
        real.close()

    # the custodian's own log operator: same origin, its own key, the same entries
    custodian = Signer.from_seed(j.log.origin, os.urandom(32))
    (root / "us" / "custodian-log.key").write_text(custodian.key_string)
    shadow = FileStorage(root / "us" / "shadow-log")
    create_log(shadow, custodian)
    with Sequencer(shadow, custodian) as seq:
        seq.append_many(entries)
        seq.publish()
    text = deployment.read_text()
    text = text.replace('storage = "us/log"', 'storage = "us/shadow-log"', 1)
    text = text.replace('key_file = "us/log.key"', 'key_file = "us/custodian-log.key"', 1)
    deployment.write_text(text)

    with pytest.raises(ConfigError) as info:
        _start(deployment)
    assert info.value.code == "release_deployment_not_approved"
    assert "setting log:" in str(info.value)

"""Every writer of a log publishes only cosigned checkpoints (promise 5; issue 12 item 1).

`release propose`, `release review` and the custodian's `gateway revoke-token` each
become the log's writer for a moment.  With the deployment's two witnesses (real
`bordergate witness serve` processes, each with its own key and state) and quorum 2,
each checkpoint they publish carries both cosignatures; with one witness down the
entry stays durable but no checkpoint is published, and the command says why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.config import load_config
from bordergate.log_access import log_verifier
from bordergate.policy.bundle import DEFAULT_BUNDLE_PATH
from bordergate.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.storage import CHECKPOINT_PATH, open_storage
from tests.gateway.deployment import write_deployment
from tests.releases.keys import reviewer_signer
from tests.tlog.witnessed import WitnessServer

REVIEWERS = ("alice", "bob")
SECRET_LINE = 'pseudonym_secret_file = "us/pseudonym.secret"\n'


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[tuple[Path, list[WitnessServer]]]:
    """A TEST-ONLY deployment whose us log names two witness processes, quorum 2."""
    path = write_deployment(tmp_path)
    shutil.copytree(DEFAULT_BUNDLE_PATH, tmp_path / "policy")
    signer = read_signer(load_config(path).jurisdiction("us").log.key_file)
    servers = [WitnessServer(tmp_path, n, [signer]).start() for n in (0, 1)]
    listed = ", ".join(f'{{ name = "{n}", public_key = '
                       f'"{reviewer_signer(n).verifier().key_string}" }}' for n in REVIEWERS)
    witnesses = ", ".join(f'{{ url = "{w.url}", vkey = "{w.verifier.key_string}" }}'
                          for w in servers)
    text = path.read_text().replace("[deployment]\n", '[deployment]\npolicy_bundle = "policy"\n')
    text = text.replace("[jurisdictions.us]\n", f"[jurisdictions.us]\nreviewers = [{listed}]\n"
                        "required_approvals = 2\n")
    assert SECRET_LINE in text
    text = text.replace(SECRET_LINE, f"{SECRET_LINE}witnesses = [{witnesses}]\nquorum = 2\n")
    path.write_text(text)
    for n in REVIEWERS:
        (tmp_path / f"{n}.key").write_text(reviewer_signer(n).key_string + "\n")
    try:
        yield path, servers
    finally:
        for server in servers:
            server.stop()


def cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def published(config: Path, servers: list[WitnessServer]) -> SignedCheckpoint:
    """The us log's published checkpoint, with the witnesses' verified cosignatures."""
    j = load_config(config).jurisdiction("us")
    storage = open_storage(j.log.storage)
    try:
        note = storage.read(CHECKPOINT_PATH)
    finally:
        storage.close()
    assert note is not None
    return open_checkpoint(note, log_verifier(j),
                           cosigners=[w.verifier for w in servers])


@pytest.mark.slow
def test_release_and_custodian_writers_publish_only_cosigned_checkpoints(
        witnessed: tuple[Path, list[WitnessServer]]) -> None:
    """Promise 5: each checkpoint published by `release propose`, `release review` and
    `gateway revoke-token` is cosigned by both witness processes; with one witness
    stopped, the review's entry is durable but no checkpoint covering it is published
    (witness_quorum_unavailable, exit 3: retry) until the quorum is back."""
    config, servers = witnessed
    code, out = cli("release", "propose", "--config", config, "--jurisdiction", "us")
    assert code == 0, out
    index = out.split(" proposed at entry ")[1].split()[0]
    proposed = published(config, servers)
    assert proposed.checkpoint.size == int(index) + 1
    assert sorted(c.name for c in proposed.cosignatures) == ["witness.test/w0",
                                                             "witness.test/w1"]
    code, out = cli("release", "review", index, "--config", config, "--jurisdiction", "us",
                    "--key-file", config.parent / "alice.key", "--verdict", "approve",
                    "--note", "read it")
    assert code == 0, out
    reviewed = published(config, servers)
    assert reviewed.checkpoint.size == proposed.checkpoint.size + 1
    assert len(reviewed.cosignatures) == 2

    servers[1].stop()
    code, out = cli("release", "review", index, "--config", config, "--jurisdiction", "us",
                    "--key-file", config.parent / "bob.key", "--verdict", "approve",
                    "--note", "read it too")
    assert code == 3 and "witness_quorum_unavailable" in out, out
    assert published(config, servers) == reviewed  # nothing published short of the quorum

    servers[1].start(same_port=True)
    code, out = cli("gateway", "revoke-token", "--config", config, "--jurisdiction", "us",
                    "--jti", "j" * 22, "--reason", "lost laptop")
    assert code == 0, out
    revoked = published(config, servers)
    # the durable review entry and the revocation, both under a cosigned checkpoint
    assert revoked.checkpoint.size == reviewed.checkpoint.size + 2
    assert len(revoked.cosignatures) == 2

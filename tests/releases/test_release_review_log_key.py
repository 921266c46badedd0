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

import os
from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.errors import ConfigError
from bordergate.tlog.note import Signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage
from tests.releases.reviewed_deployment import (
    approve,
    log_entries,
    reviewed_deployment,
    start,
)

REVIEWERS = ("alice", "bob")


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A TEST-ONLY deployment; us has 2 reviewers, 2 required."""
    return reviewed_deployment(tmp_path, reviewers=REVIEWERS)


def test_a_shadow_log_under_the_custodians_own_key_is_not_a_reviewed_setting(
        deployment: Path) -> None:
    """Promise 6 and the log operator's separation: a gateway pointed at a log
    signed by another key than the one its approved release names refuses to start
    (``release_deployment_not_approved``, naming the ``log`` setting)."""
    approve(deployment, REVIEWERS)
    root = deployment.parent
    assert start(deployment) is not None  # the honest deployment starts reviewed
    j = load_config(deployment).jurisdiction("us")
    entries = log_entries(j)

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
        start(deployment)
    assert info.value.code == "release_deployment_not_approved"
    assert "setting log:" in str(info.value)

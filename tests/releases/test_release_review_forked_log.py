"""The self-check reads release entries only under a witnessed checkpoint (promise 6, promise 5).

A gateway's start-up self-check believed any checkpoint signed by the log key.
The log operator holds that key, so it could show the gateway a fork of the log
(here: the real entries with a reviewer's rejection left out, re-signed) in
which the rejected release is approved; the custodian points the gateway's
``log.storage`` at it (a location, outside the reviewed slice).  The gateway
started on a release its witnessed log says was rejected.  The jurisdiction's
witnesses and quorum are in the reviewed slice: a checkpoint they did not
cosign is not a view of the log the gateway may start from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bordergate.config import load_config
from bordergate.entries import parse_entry
from bordergate.errors import BordergateError, ConfigError
from bordergate.releases.selfcheck import default_index_file, start_check
from bordergate.tlog.logdir import read_signer
from bordergate.tlog.sequencer import Sequencer, create_log
from bordergate.tlog.storage.fs import FileStorage
from tests.releases.reviewed_deployment import (
    cli,
    log_entries,
    propose_args,
    review_args,
    reviewed_deployment,
    us_witness,
)


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[Path]:
    """A TEST-ONLY deployment whose us log names one witness process, quorum 1;
    3 reviewers, 2 required."""
    path = reviewed_deployment(tmp_path)
    with us_witness(path):
        yield path


def _cli(*args: str) -> str:
    code, out = cli(*args)
    assert code == 0, out
    return out


def _review(config: Path, index: str, name: str, verdict: str) -> None:
    _cli(*review_args(config, index, name, verdict))


def test_a_fork_without_the_rejection_is_not_a_view_to_start_from(witnessed: Path) -> None:
    """Promise 6 ("a rejection is final") and promise 5 (witnessed log): a gateway's
    self-check refuses release entries read under a checkpoint its witnesses did not
    cosign, so a log operator's fork that leaves out a rejection starts nothing."""
    config = witnessed
    out = _cli(*propose_args(config))
    index = out.split("proposed at entry ")[1].split()[0]
    _review(config, index, "alice", "reject")
    _review(config, index, "bob", "approve")
    _review(config, index, "carol", "approve")
    deployment = load_config(config)
    with pytest.raises(ConfigError):  # the witnessed log: rejected
        start_check(deployment, "us", unreviewed=False)

    # the log operator (it holds the log key) forks the log without alice's rejection
    j = deployment.jurisdiction("us")
    entries = log_entries(j)
    kept = [e for e in entries if not (parse_entry(e).type == "release-review"
                                       and parse_entry(e).body.get("verdict") == "reject")]
    assert len(kept) == len(entries) - 1
    assert j.log.key_file is not None
    signer = read_signer(j.log.key_file)
    fork = FileStorage(config.parent / "us" / "forked-log")
    create_log(fork, signer)
    with Sequencer(fork, signer) as seq:
        seq.append_many(kept)
        seq.publish()
    fork.close()
    config.write_text(config.read_text().replace('storage = "us/log"',
                                                 'storage = "us/forked-log"', 1))
    default_index_file(j).unlink(missing_ok=True)  # the custodian's file: a cache

    with pytest.raises(BordergateError) as info:
        start_check(load_config(config), "us", unreviewed=False)
    assert info.value.code == "witness_quorum_not_met", info.value

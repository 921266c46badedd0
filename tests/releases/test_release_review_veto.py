"""A rejection is final for the code it rejected, not only for one proposal of it (promise 6).

docs/releases.md: "Approved = at least ``required_approvals`` distinct
configured reviewers approved ... and none of them rejected (a rejection is
final)".  A release id hashes its manifest, and the manifest holds the time it
was proposed, so proposing the very same code, policy, runtime and settings
again gives a new release id that no rejection names.  A custodian whose
release a reviewer rejected just proposed it again and collected the
approvals of the others: the rejection blocked nothing.  Now a reviewer's
rejection holds for every release naming the same package, policy, runtime
and deployment settings, until that reviewer approves one of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bordergate.cli import app
from bordergate.errors import ConfigError
from tests.releases.reviewed_deployment import (
    propose_args,
    review_args,
    reviewed_deployment,
    start,
)


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A TEST-ONLY deployment; us has 3 reviewers, 2 required."""
    return reviewed_deployment(tmp_path)


def _cli(*args: str) -> dict[str, object]:
    out = CliRunner().invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output[out.output.index("{"):])  # after any warning line
    assert isinstance(result, dict)
    return result


def _propose(config: Path) -> str:
    return str(_cli(*propose_args(config))["release"])


def _review(config: Path, release: str, name: str, verdict: str) -> dict[str, object]:
    return _cli(*review_args(config, release, name, verdict))


def test_proposing_rejected_code_again_does_not_lift_the_rejection(deployment: Path) -> None:
    """Promise 6 ("a rejection is final"): the same code proposed again after a
    reviewer rejected it is not approved by the other reviewers alone; the gateway
    refuses it until the rejecting reviewer approves it."""
    first = _propose(deployment)
    _review(deployment, first, "alice", "reject")
    time.sleep(0.01)  # another proposal time: another release id, the same content
    second = _propose(deployment)
    assert second != first
    _review(deployment, second, "bob", "approve")
    _review(deployment, second, "carol", "approve")
    with pytest.raises(ConfigError) as info:
        start(deployment)
    assert info.value.code.startswith("release_") and \
        info.value.code.endswith("_not_approved"), info.value.code
    assert "rejected by alice" in str(info.value)
    # the rejecting reviewer can lift its own rejection by approving a proposal
    _review(deployment, second, "alice", "approve")
    assert start(deployment) == second

"""A reviewer counts once however its key is named (promise 6; threat model R1).

Approval needs ``required_approvals`` *distinct reviewers*.  A reviewer is a
key, not a name: a signed-note key string is ``name+id+base64(type||key)`` and
its id depends on the name, so the same Ed25519 key under two names gives two
different key strings.  These tests run the attack of a single reviewer who
has its one key listed twice (``alice`` and ``alice-laptop``) and then signs a
review under each name: before the fix the ledger counted two approvals and a
gateway started on a release one person approved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.entries import encode_entry, parse_entry
from bordergate.errors import ConfigError
from bordergate.releases.ledger import ReleaseLedger
from bordergate.releases.manifest import build_manifest
from bordergate.releases.review import Reviewer, ReviewPolicy, review_body, reviewers_from
from bordergate.tlog.note import Signer
from tests.releases.conftest import T0

LOG = "test.bordergate.example/log"
SEED = b"alice-one-key-for-two-names....."


def _same_key(*names: str) -> tuple[Signer, ...]:
    return tuple(Signer.from_seed(n, SEED) for n in names)


def test_one_key_under_two_names_is_refused_as_two_reviewers() -> None:
    """Promise 6 / R1: a reviewer list naming one Ed25519 key twice (under two
    names) is refused (``reviewer_key_repeated``): a quorum counts reviewers."""
    alice, laptop = _same_key("alice", "alice-laptop")
    assert alice.verifier().key_string != laptop.verifier().key_string
    with pytest.raises(ConfigError) as err:
        ReviewPolicy((Reviewer("alice", alice.verifier()),
                      Reviewer("alice-laptop", laptop.verifier())), 2)
    assert err.value.code == "reviewer_key_repeated"
    # the auditor's own list goes through the same check
    with pytest.raises(ConfigError) as err:
        reviewers_from([("alice", alice.verifier().key_string),
                        ("alice-laptop", laptop.verifier().key_string)], 2)
    assert err.value.code == "reviewer_key_repeated"


def test_one_key_signing_under_two_names_never_approves_alone(tmp_path: Path) -> None:
    """Promise 6 / R1: one person's two reviews (one key, two names) are never two
    approvals, whatever policy object the ledger is handed."""
    alice, laptop = _same_key("alice", "alice-laptop")
    policy_dir = tmp_path / "bundle"
    policy_dir.mkdir()
    (policy_dir / "policies.cedar").write_text("// empty\n")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    manifest = build_manifest(policy_dir, now=T0, package_dir=package, revision=None,
                              dependencies=())
    entries = [encode_entry("release", T0, {"release": manifest.id,
                                            "manifest": manifest.to_json()})]
    for i, signer in enumerate((alice, laptop)):
        now = T0 + 60 + i
        entries.append(encode_entry("release-review", now, review_body(
            signer, log=LOG, release=manifest.id, verdict="approve", note="ok", now=now)))
    # a policy object built without its checks (as a caller could): the ledger must
    # still count the key once
    policy = object.__new__(ReviewPolicy)
    object.__setattr__(policy, "reviewers", (Reviewer("alice", alice.verifier()),
                                             Reviewer("alice-laptop", laptop.verifier())))
    object.__setattr__(policy, "required", 2)
    ledger = ReleaseLedger(policy, log=LOG)
    ledger.add_all((i, parse_entry(e)) for i, e in enumerate(entries))
    record = ledger.releases[manifest.id]
    assert record.state == "pending", record.approvals
    assert [f.code for f in ledger.findings] == ["review_duplicate"]

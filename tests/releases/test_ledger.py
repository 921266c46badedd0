"""Release reviews and the ledger: who counts, approval rule, findings, throughput (promise 6)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.entries import encode_entry, parse_entry
from bordergate.errors import ConfigError
from bordergate.releases.ledger import APPROVED, PENDING, REJECTED, ReleaseLedger
from bordergate.releases.manifest import Manifest, build_manifest
from bordergate.releases.review import Reviewer, ReviewPolicy, review_body
from bordergate.tlog.note import Signer
from tests.base64_spelling import respelled
from tests.releases.conftest import T0
from tests.releases.keys import review_policy, reviewer_signer

LOG = "test.bordergate.example/log"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    policy = tmp_path_factory.mktemp("bundle")
    (policy / "policies.cedar").write_text("// empty\n")
    package = tmp_path_factory.mktemp("pkg")
    (package / "__init__.py").write_text("")
    return build_manifest(policy, now=T0, package_dir=package, revision=None, dependencies=())


def release_entry(m: Manifest, now: float = T0) -> bytes:
    return encode_entry("release", now, {"release": m.id, "manifest": m.to_json()})


def review(name: str, release: str, verdict: str = "approve", *, now: float = T0 + 60,
           signer: Signer | None = None, log: str = LOG, note: str = "ok") -> bytes:
    body = review_body(signer or reviewer_signer(name), log=log, release=release,
                       verdict=verdict, note=note, now=now)
    return encode_entry("release-review", now, body)


def ledger_of(*entries: bytes, policy: ReviewPolicy | None = None) -> ReleaseLedger:
    ledger = ReleaseLedger(policy or review_policy(), log=LOG)
    ledger.add_all((i, parse_entry(e)) for i, e in enumerate(entries))
    return ledger


def codes(ledger: ReleaseLedger) -> list[str]:
    return [f.code for f in ledger.findings]


def test_two_distinct_reviewers_approve(manifest: Manifest) -> None:
    """Promise 6: approved once the configured number of distinct reviewers approved."""
    one = ledger_of(release_entry(manifest), review("alice", manifest.id))
    assert one.releases[manifest.id].state == PENDING
    two = ledger_of(release_entry(manifest), review("alice", manifest.id),
                    review("bob", manifest.id, now=T0 + 120))
    record = two.releases[manifest.id]
    assert record.state == APPROVED and record.decided == (2, T0 + 120)
    assert two.approved_for(manifest.package_digest, manifest.policy_digest) is record
    assert two.approved_for(manifest.package_digest, "sha256:" + "0" * 64) is None
    assert codes(two) == []


def test_unknown_reviewer_key_does_not_count(manifest: Manifest) -> None:
    """Promise 6: a review signed by a key not in the config is reported, not counted."""
    mallory = reviewer_signer("mallory")
    # a configured name with an unconfigured key is just as unknown
    fake_bob = Signer.from_seed("bob", bytes(32))
    ledger = ledger_of(release_entry(manifest), review("alice", manifest.id),
                       review("mallory", manifest.id, signer=mallory),
                       review("bob", manifest.id, signer=fake_bob))
    assert ledger.releases[manifest.id].state == PENDING
    assert codes(ledger) == ["review_unknown_reviewer", "review_unknown_reviewer"]
    assert [f.index for f in ledger.findings] == [2, 3]


def test_duplicate_reviewer_counts_once(manifest: Manifest) -> None:
    """Promise 6: the same reviewer approving twice is one approval, and is reported."""
    ledger = ledger_of(release_entry(manifest), review("alice", manifest.id),
                       review("alice", manifest.id, now=T0 + 99))
    assert ledger.releases[manifest.id].state == PENDING
    assert list(ledger.releases[manifest.id].approvals) == ["alice"]
    assert codes(ledger) == ["review_duplicate"]


@pytest.mark.parametrize("field", ["note", "verdict", "release", "signature", "time",
                                   "signature-spelling"])
def test_tampered_review_does_not_count(manifest: Manifest, field: str) -> None:
    """Promise 6: a review whose signed statement was altered does not verify or count."""
    good = json.loads(review("bob", manifest.id, verdict="reject"))
    if field == "note":
        good["note"] = "changed"
    elif field == "verdict":
        good["verdict"] = "approve"
    elif field == "release":
        good["release"] = "sha256:" + "1" * 64
    elif field == "time":
        good["time"] = "2027-01-15T08:00:00.000Z"
    elif field == "signature-spelling":  # the same 64 bytes, other unused low bits
        good["signature"] = respelled(good["signature"])
    else:
        sig = bytearray(base64.b64decode(good["signature"]))
        sig[0] ^= 1
        good["signature"] = base64.b64encode(bytes(sig)).decode()
    tampered = json.dumps(good, sort_keys=True, separators=(",", ":")).encode()
    ledger = ledger_of(release_entry(manifest), review("alice", manifest.id), tampered,
                       review("carol", manifest.id))
    assert ledger.releases[manifest.id].state == APPROVED  # bob's "reject" never counted
    assert codes(ledger) == ["review_bad_signature"]


def test_review_signed_for_another_log_does_not_count(manifest: Manifest) -> None:
    """Promise 6: a review is bound to one log's origin; copied elsewhere it does not verify."""
    ledger = ledger_of(release_entry(manifest), review("alice", manifest.id),
                       review("bob", manifest.id, log="eu.example/log"))
    assert ledger.releases[manifest.id].state == PENDING
    assert codes(ledger) == ["review_bad_signature"]


def test_a_rejection_blocks_for_good(manifest: Manifest) -> None:
    """Promise 6: approved only if none of the reviewers rejected it."""
    ledger = ledger_of(release_entry(manifest), review("carol", manifest.id, "reject"),
                       review("alice", manifest.id), review("bob", manifest.id))
    assert ledger.releases[manifest.id].state == REJECTED
    assert ledger.approved_for(manifest.package_digest, manifest.policy_digest) is None


def test_bad_release_entries_are_reported(manifest: Manifest) -> None:
    """Bad input: a release whose id is not its manifest's, or reviews of nothing, are findings."""
    wrong_id = encode_entry("release", T0, {"release": "sha256:" + "2" * 64,
                                            "manifest": manifest.to_json()})
    broken = encode_entry("release", T0, {"release": "x", "manifest": {"format": 1}})
    ledger = ledger_of(wrong_id, broken, review("alice", manifest.id),
                       release_entry(manifest), release_entry(manifest))
    assert codes(ledger) == ["release_id_mismatch", "release_malformed",
                             "review_unknown_release", "release_duplicate"]
    assert ledger.releases[manifest.id].index == 3


def test_malformed_review_body_is_reported(manifest: Manifest) -> None:
    """Bad input: a review with ill-typed fields is a finding, never an exception."""
    body = {"release": manifest.id, "reviewer": "alice", "verdict": "maybe", "note": 3,
            "key": "x", "signature": "!!"}
    ledger = ledger_of(release_entry(manifest), encode_entry("release-review", T0, body))
    assert codes(ledger) == ["review_malformed"]


def test_starts_are_flagged_unless_reviewed(manifest: Manifest) -> None:
    """Promise 6: unreviewed starts, and starts claiming an unapproved release, are flagged."""
    def start(release: str | None, reviewed: bool, **extra: str) -> bytes:
        return encode_entry("gateway-start", T0 + 500, {"gateway": "us", "release": release,
                                                         "reviewed": reviewed, **extra})
    ledger = ledger_of(release_entry(manifest), start(None, False),
                       start(manifest.id, True),
                       review("alice", manifest.id), review("bob", manifest.id),
                       start(manifest.id, True, package=manifest.package_digest,
                             policy=manifest.policy_digest),
                       start(manifest.id, True, package="sha256:" + "3" * 64))
    assert codes(ledger) == ["unreviewed_start", "start_unapproved_release",
                             "start_digest_mismatch"]
    assert [f.index for f in ledger.findings] == [1, 2, 6]
    assert [s.reviewed for s in ledger.starts] == [False, True, True, True]


def test_throughput_shows_reviews_falling_behind(tmp_path: Path) -> None:
    """Promise 6: proposed vs decided per period, oldest pending age, median latency."""
    entries = []
    ids = []
    for n in range(4):
        policy = tmp_path / f"b{n}"
        policy.mkdir()
        (policy / "policies.cedar").write_text(f"// {n}\n")
        m = build_manifest(policy, now=T0 + n * 86400, package_dir=policy, revision=None,
                           dependencies=())
        ids.append(m.id)
        entries.append(release_entry(m, T0 + n * 86400))
    entries += [review("alice", ids[0], now=T0 + 3600), review("bob", ids[0], now=T0 + 7200),
                review("carol", ids[1], "reject", now=T0 + 86400 + 600)]
    ledger = ledger_of(*entries)
    t = ledger.throughput(T0 + 10 * 86400, period=86400)
    assert (t.proposed, t.decided, t.pending) == (4, 2, 2)
    assert t.oldest_pending_age == 8 * 86400
    assert t.median_latency == (7200 + 600) / 2
    assert [(p, d) for _, p, d in t.periods] == [(1, 1), (1, 1), (1, 0), (1, 0)]
    assert t.to_json()["oldest_pending_age_s"] == 8 * 86400


def test_review_policy_refuses_inconsistent_config() -> None:
    """Bad input: duplicate reviewers or an impossible approval count are config errors."""
    alice = Reviewer("alice", reviewer_signer("alice").verifier())
    with pytest.raises(ConfigError):
        ReviewPolicy((alice, alice), 1)
    with pytest.raises(ConfigError):
        ReviewPolicy((alice,), 2)
    with pytest.raises(ConfigError) as info:
        Reviewer.from_key_string("x", "not a key")
    assert info.value.code == "reviewer_key_invalid"


@settings(max_examples=60, deadline=None)
@given(approvers=st.lists(st.sampled_from(["alice", "bob", "carol", "mallory"]), max_size=6),
       rejecters=st.lists(st.sampled_from(["alice", "bob", "carol", "mallory"]), max_size=2),
       required=st.integers(1, 3))
def test_state_follows_the_rule(manifest: Manifest, approvers: list[str], rejecters: list[str],
                                required: int) -> None:
    """Promise 6: approved iff >= required distinct configured approvers and no configured
    rejecter, whatever the order, duplicates and unknown reviewers."""
    reviews = [review(n, manifest.id, "approve", now=T0 + i) for i, n in enumerate(approvers)]
    reviews += [review(n, manifest.id, "reject", now=T0 + 50 + i)
                for i, n in enumerate(rejecters)]
    ledger = ledger_of(release_entry(manifest), *reviews,
                       policy=review_policy(required=required))
    known = {"alice", "bob", "carol"}
    expected = REJECTED if set(rejecters) & known else \
        APPROVED if len(set(approvers) & known) >= required else PENDING
    assert ledger.releases[manifest.id].state == expected

"""A witness quorum counts witnesses, not keys (promise 5: append-only and witnessed).

Found by a review: the auditor's witness check counted ``(name, key id)`` pairs, so
(a) one witness trusted under two keys (a rotation) that cosigned with both met a
quorum of 2 alone, and (b) one public key trusted under two names let the log
operator copy one real cosignature line under the second name (cosignature/v1
does not sign the name): one cosignature counted twice.  ``LogClient`` counted
names, so the two disagreed.  One rule now serves both
(:func:`bordergate.tlog.cosignature.group_by_witness`), and the auditor's
configuration refuses one key listed twice, and one approver key listed for two
principals.  Real Ed25519 cosignatures over one checkpoint; test-only seeds.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bordergate.audit.auditor_config import parse_auditor_config
from bordergate.audit.witness_check import check_witnesses
from bordergate.errors import ConfigError, VerificationError
from bordergate.tlog.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from bordergate.tlog.client import LogClient
from bordergate.tlog.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    count_witnesses,
    group_by_witness,
)
from bordergate.tlog.note import NoteSignature, add_signatures
from tests.tlog.witnessed import TEST_ONLY_WITNESS_SEEDS, log_signer, witness_signer

NOW = 1_900_000_000
CHECKPOINT = Checkpoint(log_signer().name, 7, bytes(range(32)))
TEXT = CHECKPOINT.to_text().encode()
W0, W1 = witness_signer(0), witness_signer(1)
# TEST-ONLY: witness w0's second key (a rotation), and w0's key under another name
W0_NEW = CosignatureSigner(W0.name, bytes([99] * 32), lambda: NOW)
ALIAS = CosignatureSigner("witness.test/w0-alias", TEST_ONLY_WITNESS_SEEDS[0], lambda: NOW)


def cosigned(*signers: CosignatureSigner, copy_as: CosignatureSigner | None = None) -> bytes:
    """The checkpoint signed by the log and cosigned now by ``signers``; with
    ``copy_as``, the first cosignature line copied under that key's name and id
    (what a log operator can do without any witness's help)."""
    lines = [NoteSignature(s.name, s.key_id, s.sign_at(TEXT, NOW)) for s in signers]
    if copy_as is not None:
        lines.append(NoteSignature(copy_as.name, copy_as.key_id, lines[0].signature))
    return add_signatures(sign_checkpoint(CHECKPOINT, log_signer()), lines)


class _NoSource:
    def fetch(self, path: str, limit: int) -> bytes | None:
        return None


def opened(note: bytes, trusted: list[CosignatureVerifier], quorum: int) -> SignedCheckpoint:
    """What ``LogClient.open`` says of ``note`` with these witnesses and quorum."""
    client = LogClient(_NoSource(), log_signer().verifier(), cosigners=trusted, quorum=quorum)
    return client.open(note)


ROTATED = [W0.verifier(), W0_NEW.verifier(), W1.verifier()]
ALIASED = [W0.verifier(), ALIAS.verifier(), W1.verifier()]


def test_one_witness_with_two_keys_is_one_cosigner() -> None:
    """Promise 5: a witness trusted under two keys (rotation) that cosigns with both
    counts once: a quorum of 2 is not met by it alone, in the auditor's witness check
    and in LogClient alike; with the second witness it is."""
    note = cosigned(W0, W0_NEW)
    signed = opened(note, ROTATED, quorum=1)
    check = check_witnesses(signed, trusted=ROTATED, quorum=2, now=NOW)
    assert check.finding == "checkpoint_unwitnessed"
    assert [c.witness for c in check.cosigned] == [W0.name]
    with pytest.raises(VerificationError) as err:
        opened(note, ROTATED, quorum=2)
    assert err.value.code == "witness_quorum_not_met"
    both = cosigned(W0, W0_NEW, W1)
    assert check_witnesses(opened(both, ROTATED, quorum=2), trusted=ROTATED, quorum=2,
                           now=NOW).finding is None


def test_one_key_under_two_names_counts_once() -> None:
    """Promise 5: one honest cosignature copied under a second name that the same
    public key is trusted under verifies (cosignature/v1 does not sign the name) but
    counts once, in the auditor's witness check and in LogClient (which counted names)."""
    note = cosigned(W0, copy_as=ALIAS)
    signed = opened(note, ALIASED, quorum=1)
    assert len(signed.cosignatures) == 2  # both lines verify: the copy is not detectable
    check = check_witnesses(signed, trusted=ALIASED, quorum=2, now=NOW)
    assert check.finding == "checkpoint_unwitnessed" and len(check.cosigned) == 1
    with pytest.raises(VerificationError) as err:
        opened(note, ALIASED, quorum=2)
    assert err.value.code == "witness_quorum_not_met"


def test_grouping_joins_names_and_keys() -> None:
    """Promise 5: the shared counting rule: a witness is one name and one key, joined
    transitively; untrusted pairs are dropped; the trusted keys bound the quorum."""
    trusted = [*ROTATED, ALIAS.verifier()]
    pairs = [(v.name, v.key_id) for v in trusted]
    groups = group_by_witness([*pairs, ("witness.test/w9", 1)], trusted)
    assert groups == [tuple(sorted(pairs[:2] + pairs[3:])), (pairs[2],)]
    assert count_witnesses(pairs, trusted) == 2
    assert count_witnesses([(v.name, v.key_id) for v in ROTATED], ROTATED) == 2


def auditor(witnesses: list[CosignatureVerifier], extra: str = "") -> bytes:
    keys = ", ".join(f'"{w.key_string}"' for w in witnesses)
    return (f"[logs.us]\nlocation = 'x'\nvkey = '{log_signer().verifier().key_string}'\n"
            f"witnesses = [{keys}]\n{extra}").encode()


def test_auditor_config_refuses_one_key_listed_twice(tmp_path: Path) -> None:
    """Promise 5: the auditor's configuration refuses a witness key listed under a
    second name (or twice), naming the entry: code ``witness_key_repeated``."""
    for listed in (ALIASED, [W0.verifier(), W0.verifier()]):
        with pytest.raises(ConfigError) as err:
            parse_auditor_config(auditor(listed), base_dir=tmp_path)
        assert err.value.code == "witness_key_repeated"
        assert "logs.us.witnesses[1]" in str(err.value)


def test_auditor_config_quorum_counts_witnesses(tmp_path: Path) -> None:
    """Promise 5: keys of one witness (a rotation) are accepted but count once: the
    default quorum is the number of distinct witnesses, and no larger one is allowed."""
    config = parse_auditor_config(auditor(ROTATED), base_dir=tmp_path)
    assert config.logs["us"].quorum == 2
    with pytest.raises(ConfigError) as err:
        parse_auditor_config(auditor(ROTATED, "quorum = 3\n"), base_dir=tmp_path)
    assert "logs.us.quorum" in str(err.value)


def test_auditor_config_refuses_one_approver_key_for_two_principals(tmp_path: Path) -> None:
    """Promise 4 (approvals by two distinct approvers): one public key listed for two
    principal ids would let its one holder count as two approvers; refused,
    ``approver_key_shared``."""
    key = base64.b64encode(W1.public_key).decode()  # any real Ed25519 public key
    extra = f'approver_keys = {{ carol = ["{key}"], dave = ["{key}"] }}\n'
    with pytest.raises(ConfigError) as err:
        parse_auditor_config(auditor([W0.verifier()], extra), base_dir=tmp_path)
    assert err.value.code == "approver_key_shared" and "approver_keys.dave[0]" in str(err.value)

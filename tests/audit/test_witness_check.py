"""The witness check's rule as a property (promise 5; bordergate.audit.witness_check).

For any cosignature timestamps by any subset of three witnesses (two of them
trusted), the checkpoint is accepted exactly when at least ``quorum`` distinct
trusted witnesses cosigned it inside the freshness window; short of that the
finding is ``checkpoint_unwitnessed`` (too few trusted cosigners) or
``checkpoint_stale`` (enough, but too old), and the report lists exactly the
trusted witnesses that cosigned.  Real Ed25519 cosignatures over one checkpoint.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bordergate.audit.witness_check import FUTURE_SKEW, check_witnesses
from bordergate.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from bordergate.tlog.note import NoteSignature, add_signatures
from tests.tlog.witnessed import log_signer, witness_signer

NOW = 1_900_000_000
MAX_AGE = 3600
CHECKPOINT = Checkpoint(log_signer().name, 7, bytes(range(32)))
TRUSTED = [witness_signer(n).verifier() for n in (0, 1)]

offsets = st.one_of(st.none(), st.integers(-3 * MAX_AGE, 2 * FUTURE_SKEW))


@settings(max_examples=150, deadline=None)
@given(ages=st.tuples(offsets, offsets, offsets), quorum=st.integers(0, 2))
def test_accepted_exactly_with_a_fresh_trusted_quorum(
        ages: tuple[int | None, int | None, int | None], quorum: int) -> None:
    """Promise 5: accepted iff >= quorum (>= 1) distinct trusted witnesses cosigned within
    the window; an untrusted witness (w2) never counts."""
    text = CHECKPOINT.to_text().encode()
    note = sign_checkpoint(CHECKPOINT, log_signer())
    lines = []
    for n, offset in enumerate(ages):
        if offset is not None:
            signer = witness_signer(n)
            lines.append(NoteSignature(signer.name, signer.key_id,
                                       signer.sign_at(text, NOW + offset)))
    signed = open_checkpoint(add_signatures(note, lines), log_signer().verifier(),
                             cosigners=TRUSTED)
    check = check_witnesses(signed, trusted=TRUSTED, quorum=quorum, now=NOW, max_age=MAX_AGE)
    trusted_ages = [a for a in ages[:2] if a is not None]
    fresh = [a for a in trusted_ages if -MAX_AGE <= a <= FUTURE_SKEW]
    if quorum == 0 or len(trusted_ages) < quorum:
        assert check.finding == "checkpoint_unwitnessed"
    elif len(fresh) < quorum:
        assert check.finding == "checkpoint_stale"
    else:
        assert check.finding is None and check.status == "witnessed"
    assert [c.witness for c in check.cosigned] == [
        f"witness.test/w{n}" for n in (0, 1) if ages[n] is not None]
    assert check.to_json()["cosigned_by"] == [c.to_json() for c in check.cosigned]

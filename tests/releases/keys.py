"""TEST-ONLY reviewer keys from fixed seeds. Never use these outside the test suite."""

from __future__ import annotations

from bordergate.releases.review import Reviewer, ReviewPolicy
from bordergate.tlog.note import Signer


def reviewer_signer(name: str) -> Signer:
    """A deterministic Ed25519 reviewer key (seed derived from the name, test-only)."""
    seed = (name.encode() * 32)[:32]
    return Signer.from_seed(name, seed)


def review_policy(names: tuple[str, ...] = ("alice", "bob", "carol"), required: int = 2
                  ) -> ReviewPolicy:
    """The reviewers ``names`` (test keys), ``required`` approvals."""
    return ReviewPolicy(tuple(Reviewer(n, reviewer_signer(n).verifier()) for n in names),
                        required)

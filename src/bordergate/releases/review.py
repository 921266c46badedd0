"""Release reviews: the statement a reviewer signs, and who may sign one.

A reviewer holds an Ed25519 key in the C2SP signed-note key format (the same
format as log keys: ``PRIVATE+KEY+<name>+<id>+<base64>`` in a 0600 file; the
public ``<name>+<id>+<base64>`` verifier key string goes into the deployment
file's reviewer list).  A review signs the canonical JSON statement::

    {"context": "bordergate release-review v1", "log": "<log origin>",
     "release": "sha256:<release id>", "reviewer": "<name>",
     "verdict": "approve" | "reject", "note": "<text>", "time": "<entry time>"}

so a signature can be neither moved to another release, log, verdict or note,
nor replayed with another time.  The ``release-review`` entry carries the
statement's fields, the reviewer's verifier key and the base64 signature.

Pure: this module takes values and returns values; it must never read key
files, clocks or logs.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bordergate.entries import canonical_json, format_time
from bordergate.errors import ConfigError, VerificationError
from bordergate.tlog.note import Ed25519Verifier, Signer, decode_base64

__all__ = [
    "REVIEW_CONTEXT",
    "VERDICTS",
    "ReviewPolicy",
    "Reviewer",
    "review_body",
    "review_statement",
    "reviewers_from",
    "verify_review",
]

REVIEW_CONTEXT = "bordergate release-review v1"
VERDICTS = ("approve", "reject")
MAX_NOTE = 2000


@dataclass(frozen=True)
class Reviewer:
    """A configured reviewer: a name and an Ed25519 verifier key."""

    name: str
    verifier: Ed25519Verifier

    @classmethod
    def from_key_string(cls, name: str, public_key: str) -> Reviewer:
        """A reviewer from the deployment file's ``name`` and ``public_key``.

        Raises:
            ConfigError: the key does not parse (``reviewer_key_invalid``).
        """
        try:
            verifier = Ed25519Verifier.from_key_string(public_key.strip())
        except VerificationError as e:
            raise ConfigError(f"reviewer {name!r}: {e}", code="reviewer_key_invalid") from None
        return cls(name, verifier)


@dataclass(frozen=True)
class ReviewPolicy:
    """Who may review releases of one log, and how many approvals are needed.

    Attributes:
        reviewers: the configured reviewers (distinct names and keys).
        required: distinct approvals needed (at least 1).
    """

    reviewers: tuple[Reviewer, ...]
    required: int

    def __post_init__(self) -> None:
        names = [r.name for r in self.reviewers]
        keys = [r.verifier.key_string for r in self.reviewers]
        if len(set(names)) != len(names) or len(set(keys)) != len(keys):
            raise ConfigError("reviewers must have distinct names and keys",
                              code="reviewers_invalid")
        # a key string names its key (its id hashes the name): one Ed25519 key under
        # two names is two key strings but one reviewer, who could approve twice
        raw = [r.verifier.public_key for r in self.reviewers]
        if len(set(raw)) != len(raw):
            raise ConfigError("one reviewer key is listed under two names: approvals "
                              "count reviewers, not names", code="reviewer_key_repeated")
        if not 1 <= self.required <= max(1, len(self.reviewers)):
            raise ConfigError(f"required approvals {self.required} must be between 1 and "
                              f"the {len(self.reviewers)} configured reviewers",
                              code="reviewers_invalid")

    def identity(self, reviewer: Reviewer) -> str:
        """Who ``reviewer`` is for counting: the first configured name holding its
        Ed25519 key (one key is one reviewer, whatever names it is listed under)."""
        return next((r.name for r in self.reviewers
                     if r.verifier.public_key == reviewer.verifier.public_key), reviewer.name)

    def by_key(self, key_string: str) -> Reviewer | None:
        """The configured reviewer holding ``key_string``, if any."""
        return next((r for r in self.reviewers if r.verifier.key_string == key_string), None)


def review_statement(*, log: str, release: str, reviewer: str, verdict: str, note: str,
                     time: str) -> bytes:
    """The canonical bytes a reviewer signs (see the module docstring)."""
    return canonical_json({"context": REVIEW_CONTEXT, "log": log, "release": release,
                           "reviewer": reviewer, "verdict": verdict, "note": note,
                           "time": time})


def review_body(signer: Signer, *, log: str, release: str, verdict: str, note: str,
                now: float) -> dict[str, Any]:
    """The body of a signed ``release-review`` entry (encode it with time ``now``).

    Raises:
        ValueError: an unknown verdict or a note over 2000 characters (the
            command checks its arguments first).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}")
    if len(note) > MAX_NOTE:
        raise ValueError(f"a review note is at most {MAX_NOTE} characters")
    statement = review_statement(log=log, release=release, reviewer=signer.name,
                                 verdict=verdict, note=note, time=format_time(now))
    return {"release": release, "reviewer": signer.name, "verdict": verdict, "note": note,
            "key": signer.verifier().key_string,
            "signature": base64.b64encode(signer.sign(statement)).decode("ascii")}


def verify_review(body: Mapping[str, Any], time: str, *, log: str,
                  policy: ReviewPolicy) -> Reviewer:
    """Check a ``release-review`` entry body and return the reviewer it counts for.

    Raises:
        VerificationError: ``review_malformed`` (missing or ill-typed fields),
            ``review_unknown_reviewer`` (key not configured, or configured
            under another name), ``review_bad_signature``.
    """
    fields = {k: body.get(k) for k in ("release", "reviewer", "verdict", "note", "key",
                                        "signature")}
    if not all(isinstance(v, str) for v in fields.values()) or \
            fields["verdict"] not in VERDICTS:
        raise VerificationError("release-review lacks string release, reviewer, verdict, "
                                "note, key or signature", code="review_malformed")
    reviewer = policy.by_key(str(fields["key"]))
    if reviewer is None or reviewer.name != fields["reviewer"]:
        raise VerificationError(
            f"review by {str(fields['reviewer'])[:60]!r} with a key not configured for "
            "that reviewer", code="review_unknown_reviewer")
    try:  # canonical base64: one text per signature (another spelling does not verify)
        signature = decode_base64(str(fields["signature"]), code="review_bad_signature",
                                  what="a review's signature")
    except VerificationError:
        signature = b""
    statement = review_statement(log=log, release=str(fields["release"]),
                                 reviewer=reviewer.name, verdict=str(fields["verdict"]),
                                 note=str(fields["note"]), time=time)
    if not reviewer.verifier.verify(statement, signature):
        raise VerificationError(f"review by {reviewer.name!r}: the signature does not verify",
                                code="review_bad_signature")
    return reviewer


def reviewers_from(entries: Sequence[tuple[str, str]], required: int) -> ReviewPolicy:
    """A policy from ``(name, public key string)`` pairs.

    Raises:
        ConfigError: a key does not parse or the policy is inconsistent.
    """
    return ReviewPolicy(tuple(Reviewer.from_key_string(n, k) for n, k in entries), required)
